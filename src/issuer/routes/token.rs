//! The token endpoint, `POST /token`: OAuth 2.0 `client_credentials` (RFC 6749 §4.4) with
//! client authentication by `client_secret_basic`, `client_secret_post` or `private_key_jwt`
//! (RFC 7523; one method per request), RFC 8707 `resource` → `aud`, and errors per RFC 6749
//! §5.2.
//!
//! Hot path: parse the form, SHA-256 the presented secret, one registry decision (one read,
//! constant-time hash comparison), sign with the preloaded key, bump the buffered counters. A
//! client assertion is decided by the registry too (`registry::assertion`), which also marks
//! its `jti` used (one write). The wallet grant (`routes::wallets`, `registry::wallet`) takes no
//! client authentication: a signed sign-in message; its token carries a `wallet` claim.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::issuer::api::TokenResponse;
use crate::issuer::errors::OAuthError;
use crate::issuer::keys::TOKEN_LIFETIME_SECS;
use crate::issuer::registry::{
    AssertionAudience, ClientGrant, JWT_BEARER_ASSERTION_TYPE, RuleError,
};
use crate::issuer::secrets::{Secret, is_id, new_id};
use crate::issuer::state::Shared;
use crate::issuer::validate::{MAX_BODY_BYTES, MAX_SCOPES, is_scope_token};

use super::extract::{BasicAuth, BodyError, basic_credentials, media_type, read_body};
use super::wallets::{self, WALLET_GRANT_TYPE};

#[derive(Serialize)]
struct AgentDat {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The access token's claims (the token format in the module docs of `crate::issuer`).
#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
    dat: AgentDat,
    /// The CAIP-10 account that signed in (wallet grant only).
    #[serde(skip_serializing_if = "Option::is_none")]
    wallet: Option<&'a str>,
}

/// The recognised form parameters; each at most once (RFC 6749 §3.2). Empty values count as
/// omitted (RFC 6749 §3.1); unrecognised parameters are ignored.
#[derive(Default)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    /// Wallet grant: the signed EIP-4361 / CAIP-122 text.
    message: Option<String>,
    /// Wallet grant: its signature.
    signature: Option<String>,
}

impl TokenForm {
    fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut form = Self::default();
        let mut seen = [false; 9];
        for (key, value) in url::form_urlencoded::parse(body) {
            let (slot, i) = match key.as_ref() {
                "grant_type" => (&mut form.grant_type, 0),
                "client_id" => (&mut form.client_id, 1),
                "client_secret" => (&mut form.client_secret, 2),
                "scope" => (&mut form.scope, 3),
                "resource" => (&mut form.resource, 4),
                "client_assertion_type" => (&mut form.client_assertion_type, 5),
                "client_assertion" => (&mut form.client_assertion, 6),
                "message" => (&mut form.message, 7),
                "signature" => (&mut form.signature, 8),
                _ => continue,
            };
            if std::mem::replace(&mut seen[i], true) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {key} is repeated"
                )));
            }
            if !value.is_empty() {
                *slot = Some(value.into_owned());
            }
        }
        Ok(form)
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (RFC 6749 §2.3.1 Basic
/// credentials): `+` is a space, `%XX` a byte; the result must be UTF-8.
fn form_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// How the client authenticated.
enum ClientAuth {
    /// `client_secret_basic` or `client_secret_post`.
    Secret {
        client_id: String,
        secret: Secret,
        /// Through the `Authorization` header (errors then carry a `WWW-Authenticate`
        /// challenge).
        header: bool,
    },
    /// `private_key_jwt`: the assertion (redacted in `Debug` like any credential), and the
    /// `client_id` parameter if sent.
    Assertion {
        assertion: Secret,
        client_id: Option<String>,
    },
}

fn client_auth(basic: BasicAuth, form: &mut TokenForm) -> Result<ClientAuth, OAuthError> {
    if matches!(basic, BasicAuth::Multiple) {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    if form.client_assertion.is_some() || form.client_assertion_type.is_some() {
        // An assertion beside any other method, or of another type, or a type without an
        // assertion: client authentication failed (RFC 6749 §2.3 allows one method).
        let basic_used = !matches!(basic, BasicAuth::Absent);
        if basic_used || form.client_secret.is_some() {
            return Err(OAuthError::invalid_client(basic_used));
        }
        return match (
            form.client_assertion_type.take(),
            form.client_assertion.take(),
        ) {
            (Some(kind), Some(assertion)) if kind == JWT_BEARER_ASSERTION_TYPE => {
                Ok(ClientAuth::Assertion {
                    assertion: Secret::new(assertion),
                    client_id: form.client_id.take(),
                })
            }
            _ => Err(OAuthError::invalid_client(false)),
        };
    }
    match basic {
        // Refused above.
        BasicAuth::Multiple => Err(OAuthError::invalid_request(
            "more than one Authorization header",
        )),
        BasicAuth::OtherScheme | BasicAuth::Malformed => Err(OAuthError::invalid_client(true)),
        BasicAuth::Present { user, password } => {
            if form.client_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: HTTP Basic or client_secret in the body, not both",
                ));
            }
            let (Some(client_id), Some(secret)) = (form_decode(&user), form_decode(&password))
            else {
                return Err(OAuthError::invalid_client(true));
            };
            if form.client_id.as_ref().is_some_and(|id| *id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the HTTP Basic user name",
                ));
            }
            Ok(ClientAuth::Secret {
                client_id,
                secret: Secret::new(secret),
                header: true,
            })
        }
        BasicAuth::Absent => match (form.client_id.take(), form.client_secret.take()) {
            (Some(client_id), Some(secret)) => Ok(ClientAuth::Secret {
                client_id,
                secret: Secret::new(secret),
                header: false,
            }),
            (None, Some(_)) => Err(OAuthError::invalid_request(
                "client_secret without client_id",
            )),
            (Some(_), None) => Err(OAuthError::invalid_client(false)),
            // No credentials at all: invite HTTP Basic.
            (None, None) => Err(OAuthError::invalid_client(true)),
        },
    }
}

/// `scope` → the requested scope tokens (deduplicated, in request order).
fn requested_scopes(scope: &str) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(OAuthError::invalid_scope(
                "scope is not a list of scope tokens",
            ));
        }
        if !out.iter().any(|s| s == token) {
            out.push(token.to_owned());
        }
        if out.len() > MAX_SCOPES {
            return Err(OAuthError::invalid_scope("too many scopes"));
        }
    }
    if out.is_empty() {
        return Err(OAuthError::invalid_scope("scope is empty"));
    }
    Ok(out)
}

/// RFC 8707: an absolute URI without a fragment.
fn check_resource(resource: &str) -> Result<(), OAuthError> {
    crate::issuer::validate::resource_syntax(resource).map_err(OAuthError::invalid_target)
}

/// The grant of the authenticated client, or `invalid_client`.
async fn authenticate(s: &Shared, auth: ClientAuth) -> Result<ClientGrant, OAuthError> {
    let storage_failed = |e: RuleError| {
        tracing::error!(error = %e, "token endpoint: storage failed");
        OAuthError::server_error()
    };
    match auth {
        ClientAuth::Secret {
            client_id,
            secret,
            header,
        } => {
            let grant = s
                .registry
                .authenticate_secret(&client_id, secret.hash())
                .await
                .map_err(storage_failed)?;
            grant.ok_or_else(|| {
                // Log the client id only when it has the shape of one (never echo input).
                let client = if is_id(&client_id, "agt_") {
                    client_id.as_str()
                } else {
                    "<malformed>"
                };
                tracing::info!(
                    client_id = client,
                    outcome = "invalid_client",
                    "token refused"
                );
                OAuthError::invalid_client(header)
            })
        }
        ClientAuth::Assertion {
            assertion,
            client_id,
        } => {
            let audience = AssertionAudience {
                token_endpoint: &s.token_endpoint,
                issuer: &s.issuer_url,
            };
            let outcome = s
                .registry
                .authenticate_assertion(assertion.expose(), client_id.as_deref(), audience)
                .await
                .map_err(storage_failed)?;
            outcome.map_err(|refusal| {
                tracing::info!(
                    method = "private_key_jwt",
                    reason = refusal.reason(),
                    outcome = "invalid_client",
                    "token refused"
                );
                OAuthError::invalid_client(false)
            })
        }
    }
}

/// `POST /token`.
pub(crate) async fn token(State(s): State<Arc<Shared>>, req: Request) -> Response {
    match issue(&s, req).await {
        Ok(res) => res,
        Err(e) => {
            tracing::debug!(error = e.code(), "token request refused");
            e.into_response()
        }
    }
}

async fn issue(s: &Shared, req: Request) -> Result<Response, OAuthError> {
    let (parts, body) = req.into_parts();
    if media_type(&parts.headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let basic = basic_credentials(&parts.headers);
    let bytes = read_body(&parts, body, MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => OAuthError::payload_too_large(MAX_BODY_BYTES),
            BodyError::Read => OAuthError::invalid_request("the request body could not be read"),
            BodyError::Timeout => OAuthError::request_timeout(),
        })?;
    let mut form = TokenForm::parse(&bytes)?;
    let wallet = form.grant_type.as_deref() == Some(WALLET_GRANT_TYPE);
    let auth = if wallet {
        // The signed message is the authentication: no client credentials beside it.
        let any_client_auth = !matches!(basic, BasicAuth::Absent)
            || form.client_secret.is_some()
            || form.client_assertion.is_some()
            || form.client_assertion_type.is_some();
        if any_client_auth {
            return Err(OAuthError::invalid_request(
                "the wallet grant takes no client authentication",
            ));
        }
        None
    } else {
        Some(client_auth(basic, &mut form)?)
    };
    match form.grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) if wallet => {}
        Some(_) => return Err(OAuthError::unsupported_grant_type()),
    }
    let requested = form.scope.as_deref().map(requested_scopes).transpose()?;
    if let Some(resource) = &form.resource {
        check_resource(resource)?;
    }

    let grant = match auth {
        Some(auth) => authenticate(s, auth).await?,
        None => {
            wallets::authenticate(s, form.message.as_deref(), form.signature.as_deref()).await?
        }
    };

    let scopes = match requested {
        None => grant.scopes.clone(),
        Some(requested) => {
            if let Some(extra) = requested.iter().find(|r| !grant.scopes.contains(r)) {
                tracing::info!(agent_id = %grant.agent_id, outcome = "invalid_scope", "token refused");
                return Err(OAuthError::invalid_scope(format!(
                    "scope {extra} is not granted to this client"
                )));
            }
            requested
        }
    };
    let aud = grant
        .audience(form.resource.as_deref(), &s.issuer_url)
        .map_err(|refusal| {
            tracing::info!(agent_id = %grant.agent_id, outcome = "invalid_target", "token refused");
            OAuthError::invalid_target(refusal.to_string())
        })?;
    let scope = scopes.join(" ");
    let now = s.registry.now_ms();
    let iat = now.div_euclid(1000);
    let jti = new_id("").map_err(|_| OAuthError::server_error())?;
    let claims = AccessClaims {
        iss: &s.issuer_url,
        sub: &grant.agent_id,
        aud,
        exp: iat + TOKEN_LIFETIME_SECS,
        iat,
        jti: &jti,
        client_id: &grant.agent_id,
        scope: &scope,
        dat: AgentDat { kind: "agent" },
        wallet: grant.wallet.as_deref(),
    };
    let keys = s.keys.at(now).map_err(|e| {
        tracing::error!(error = %e, "token endpoint: signing keys could not be rebuilt");
        OAuthError::server_error()
    })?;
    let access_token = keys.active().sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "token endpoint: signing failed");
        OAuthError::server_error()
    })?;
    s.registry
        .record_token_issued(&grant, now)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "token endpoint: usage counters not written");
            OAuthError::server_error()
        })?;
    tracing::info!(agent_id = %grant.agent_id, verifier_id = %grant.verifier_id, outcome = "issued", "token issued");

    let mut res = Json(TokenResponse {
        access_token: Secret::new(access_token),
        token_type: "Bearer".to_owned(),
        expires_in: TOKEN_LIFETIME_SECS.unsigned_abs(),
        scope,
    })
    .into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode(b"a+b%3Ac").as_deref(), Some("a b:c"));
        assert_eq!(form_decode(b"%zz"), None);
        assert_eq!(form_decode(b"%4"), None);
        assert_eq!(form_decode(b"%FF"), None);
    }

    #[test]
    fn scopes_and_resources() {
        assert_eq!(requested_scopes("a  b a").unwrap(), vec!["a", "b"]);
        assert!(requested_scopes("   ").is_err());
        assert!(requested_scopes("a\"b").is_err());
        assert!(check_resource("https://api.example.com/tickets").is_ok());
        assert!(check_resource("urn:example:tickets").is_ok());
        assert!(check_resource("/tickets").is_err());
        assert!(check_resource("https://api.example.com/#x").is_err());
        assert!(check_resource("https://api.example.com/ x").is_err());
    }
}
