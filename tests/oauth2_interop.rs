//! The Rust `oauth2` crate (5.0.0), a client nobody here wrote, against the bundled issuer on
//! 127.0.0.1: `client_credentials` with `client_secret_basic` and with `client_secret_post`,
//! `scope` and RFC 8707 `resource`; the token verifies at our layer over real HTTP, and a wrong
//! secret is the crate's `invalid_client` server response.

mod support;

use agent_auth::AgentAuth;
use agent_auth::issuer::{TestAgent, TestIssuer};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use support::{client, get_with_token, serve_api};

const API: &str = "https://api.example.com/tickets";

/// The `oauth2` crate's HTTP hook over reqwest (no redirects, no proxy: loopback only).
async fn http(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = client()
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    // Status and headers come from a parsed response: always valid parts.
    Ok(builder.body(body).unwrap())
}

/// The token endpoint, as a standard client reads it from the RFC 8414 document.
async fn token_endpoint(issuer: &TestIssuer) -> String {
    let url = format!("{}/.well-known/oauth-authorization-server", issuer.url());
    let metadata: serde_json::Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let methods = &metadata["token_endpoint_auth_methods_supported"];
    for method in ["client_secret_basic", "client_secret_post"] {
        assert!(
            methods.as_array().unwrap().iter().any(|m| m == method),
            "{metadata}"
        );
    }
    metadata["token_endpoint"].as_str().unwrap().to_owned()
}

async fn request(
    issuer: &TestIssuer,
    agent: &TestAgent,
    secret: &str,
    auth_type: AuthType,
) -> Result<BasicTokenResponse, RequestTokenError<reqwest::Error, oauth2::basic::BasicErrorResponse>>
{
    let oauth = BasicClient::new(ClientId::new(agent.id.clone()))
        .set_client_secret(ClientSecret::new(secret.to_owned()))
        .set_token_uri(TokenUrl::new(token_endpoint(issuer).await).unwrap())
        .set_auth_type(auth_type);
    oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("tickets:read".to_owned()))
        .add_extra_param("resource", API)
        .request_async(&http)
        .await
}

#[tokio::test]
async fn client_secret_basic_and_post_tokens_verify_at_the_layer() {
    let issuer = TestIssuer::start().await;
    let agent = issuer
        .provision("oauth2-crate", &["tickets:read", "tickets:triage"])
        .await
        .unwrap();
    let layer = AgentAuth::new(issuer.url()).audience(API).build().unwrap();
    let api = serve_api(layer).await;
    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let token = request(&issuer, &agent, agent.secret.expose(), auth_type.clone())
            .await
            .unwrap_or_else(|e| panic!("{auth_type:?}: {e:?}"));
        assert_eq!(token.token_type().as_ref(), "bearer");
        assert_eq!(token.expires_in().map(|d| d.as_secs()), Some(300));
        let scopes: Vec<&str> = token.scopes().unwrap().iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes, ["tickets:read"]);
        let secret = token.access_token().secret();
        let listed = get_with_token(&format!("{api}/tickets"), secret).await;
        assert_eq!(listed.status, 200, "{auth_type:?}: {listed:?}");
        assert_eq!(listed.json()["agent_id"], agent.id);
        assert_eq!(listed.json()["claims"]["aud"], API);
        // It asked for tickets:read only: triage is refused.
        let triage = support::send(
            client()
                .post(format!("{api}/tickets/7/triage"))
                .bearer_auth(secret),
        )
        .await;
        assert_eq!(
            (triage.status, triage.error().as_deref()),
            (403, Some("insufficient_scope"))
        );
    }
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_client_for_either_method() {
    let issuer = TestIssuer::start().await;
    let agent = issuer
        .provision("oauth2-crate", &["tickets:read"])
        .await
        .unwrap();
    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let error = request(&issuer, &agent, "not-the-secret", auth_type.clone())
            .await
            .unwrap_err();
        let RequestTokenError::ServerResponse(response) = &error else {
            panic!("{auth_type:?}: not a server response: {error:?}");
        };
        assert_eq!(
            *response.error(),
            BasicErrorResponseType::InvalidClient,
            "{auth_type:?}"
        );
    }
}
