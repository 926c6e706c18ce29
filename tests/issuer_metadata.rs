//! The issuer's RFC 8414 document as standard clients read it (the Python `mcp` SDK's
//! `OAuthMetadata` model requires `authorization_endpoint`), and the `/authorize` endpoint it
//! names, which refuses every request without redirecting anywhere.
#![cfg(feature = "issuer")]

mod issuer_support;

use agent_auth::issuer::TestIssuer;
use issuer_support::{Reply, http, read};
use serde::Deserialize;
use serde_json::json;

async fn metadata(issuer: &TestIssuer) -> Reply {
    let url = format!("{}/.well-known/oauth-authorization-server", issuer.url());
    read(http().get(url).send().await.unwrap()).await
}

#[tokio::test]
async fn the_metadata_lists_every_client_authentication_method_and_algorithm() {
    let issuer = TestIssuer::start().await;
    let r = metadata(&issuer).await;
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["issuer"], issuer.url(), "byte for byte the tokens' iss");
    assert_eq!(
        m["authorization_endpoint"],
        format!("{}/authorize", issuer.url())
    );
    assert_eq!(m["token_endpoint"], issuer.token_endpoint());
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert_eq!(
        m["token_endpoint_auth_signing_alg_values_supported"],
        json!(["EdDSA", "Ed25519", "ES256", "RS256", "PS256"])
    );
    assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(m["response_types_supported"], json!([]));
}

/// The members the Python `mcp` SDK's `OAuthMetadata` (pydantic) requires or types: the
/// three endpoints as http(s) URLs, every `*_supported` member a list of strings.
#[derive(Deserialize)]
#[allow(dead_code)]
struct McpOAuthMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: Option<String>,
    response_types_supported: Vec<String>,
    grant_types_supported: Option<Vec<String>>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
}

#[tokio::test]
async fn the_metadata_has_the_shape_of_the_python_mcp_sdk_model() {
    let issuer = TestIssuer::start().await;
    let m: McpOAuthMetadata = serde_json::from_str(&metadata(&issuer).await.text).unwrap();
    for endpoint in [&m.issuer, &m.authorization_endpoint, &m.token_endpoint] {
        let url = url::Url::parse(endpoint).unwrap();
        assert!(matches!(url.scheme(), "http" | "https"), "{endpoint}");
    }
}

#[tokio::test]
async fn authorize_refuses_every_request_without_redirecting() {
    let issuer = TestIssuer::start().await;
    let url = format!("{}/authorize", issuer.url());
    let query = "?response_type=code&client_id=agt_0123456789abcdef0123456789abcdef\
                 &redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s";
    let replies = [
        read(http().get(&url).send().await.unwrap()).await,
        read(http().get(format!("{url}{query}")).send().await.unwrap()).await,
        read(
            http()
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("response_type=token")
                .send()
                .await
                .unwrap(),
        )
        .await,
    ];
    for r in replies {
        assert_eq!(r.oauth_error(400), "unsupported_response_type");
        assert_eq!(r.header("location"), None);
    }
}
