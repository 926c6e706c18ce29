//! Where the token endpoint is: the issuer's RFC 8414 metadata, fetched from the well-known
//! URI built as RFC 8414 §3.1 says and checked as §3.3 demands (its `issuer` must be the
//! configured issuer URL, byte for byte).

use url::Url;

use super::error::TokenError;

/// The metadata URL of `issuer`: `/.well-known/oauth-authorization-server` inserted between
/// the host and the issuer's path.
pub(crate) fn metadata_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url
}

/// What the token source needs from the metadata.
#[derive(Debug, serde::Deserialize)]
struct Metadata {
    issuer: String,
    token_endpoint: Option<String>,
}

/// Checks a metadata document and returns its token endpoint.
pub(crate) fn token_endpoint_from(issuer: &str, body: &[u8]) -> Result<Url, TokenError> {
    let meta: Metadata = serde_json::from_slice(body)
        .map_err(|_| TokenError::Metadata("not a metadata document"))?;
    if meta.issuer != issuer {
        return Err(TokenError::Metadata(
            "its issuer is not the configured issuer URL",
        ));
    }
    let endpoint = meta
        .token_endpoint
        .ok_or(TokenError::Metadata("no token_endpoint"))?;
    let endpoint = Url::parse(&endpoint)
        .map_err(|_| TokenError::Metadata("token_endpoint is not an absolute URL"))?;
    check_endpoint(issuer, &endpoint).map_err(|()| {
        TokenError::Metadata("token_endpoint is not http(s), or http for an https issuer")
    })?;
    Ok(endpoint)
}

/// A token endpoint must be `http`/`https`, and `https` when the issuer is (a document must
/// not downgrade where the secret goes).
pub(crate) fn check_endpoint(issuer: &str, endpoint: &Url) -> Result<(), ()> {
    let https_issuer = issuer.starts_with("https:");
    match endpoint.scheme() {
        "https" => Ok(()),
        "http" if !https_issuer => Ok(()),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_goes_between_host_and_path() {
        let at = |s: &str| metadata_url(&Url::parse(s).unwrap()).to_string();
        assert_eq!(
            at("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            at("https://idp.example.com/tenant/a"),
            "https://idp.example.com/.well-known/oauth-authorization-server/tenant/a"
        );
    }

    #[test]
    fn documents_are_checked() {
        let iss = "https://idp.example.com";
        let doc = |v: serde_json::Value| token_endpoint_from(iss, v.to_string().as_bytes());
        assert!(doc(serde_json::json!({"issuer": iss, "token_endpoint": "https://idp.example.com/token"})).is_ok());
        for bad in [
            serde_json::json!({"issuer": "https://idp.example.com/", "token_endpoint": "https://idp.example.com/token"}),
            serde_json::json!({"issuer": iss}),
            serde_json::json!({"issuer": iss, "token_endpoint": "/token"}),
            serde_json::json!({"issuer": iss, "token_endpoint": "http://idp.example.com/token"}),
            serde_json::json!({"issuer": iss, "token_endpoint": "ftp://idp.example.com/token"}),
        ] {
            assert!(
                matches!(doc(bad.clone()), Err(TokenError::Metadata(_))),
                "{bad}"
            );
        }
    }
}
