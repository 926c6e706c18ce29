//! `rmcp`'s own client against `examples/mcp_server.rs` (its code, served on 127.0.0.1:0) and
//! the bundled issuer: the client discovers everything from the server's first `401` (RFC 9728
//! document, then the issuer's RFC 8414 document), gets a client-credentials token for
//! `resource=http://…/mcp`, lists the tools and calls them; an agent without `tickets:triage`
//! is refused `triage_ticket` with the exact challenge, and its step-up is refused by the
//! issuer; an agent that holds only a P-256 key (no secret) authenticates with rmcp's
//! `private_key_jwt` (ES256). Also: the README shows the example's code verbatim.

#[allow(dead_code)] // its `main` and `Args` are the binary's, not used here
#[path = "../examples/mcp_server.rs"]
mod mcp_server;

use agent_auth::issuer::{CreateAgent, TestAgent, TestIssuer};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{
    AuthClient, AuthorizationManager, ClientCredentialsConfig, JwtSigningAlgorithm,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

/// The example's app on 127.0.0.1:0, trusting `issuer`. Returns the MCP URL.
async fn serve_example(issuer: &TestIssuer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = mcp_server::app(agent_auth::Issuer::new(issuer.url()), addr).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/mcp")
}

/// What rmcp's client learns from an unauthenticated connection attempt: the `401` challenge.
async fn first_challenge(mcp: &str) -> String {
    let transport = StreamableHttpClientTransport::from_uri(mcp);
    let error = ClientConfig::default().serve(transport).await.unwrap_err();
    let challenge = error.auth_challenge().expect("a 401 with a challenge");
    challenge.to_owned()
}

/// rmcp's client-credentials flow (client_secret_post), seeded by `challenge`: the RFC 9728
/// document it names, then the issuer's metadata, then the token request with `resource`.
async fn authorize(
    mcp: &str,
    challenge: &str,
    agent: &TestAgent,
    scopes: &[&str],
) -> Result<AuthorizationManager, rmcp::transport::auth::AuthError> {
    let config = ClientCredentialsConfig::ClientSecret {
        client_id: agent.id.clone(),
        client_secret: agent.secret.expose().to_owned(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        resource: Some(mcp.to_owned()),
    };
    authorize_with(mcp, challenge, &config).await
}

/// rmcp's client-credentials flow with any client authentication `config`.
async fn authorize_with(
    mcp: &str,
    challenge: &str,
    config: &ClientCredentialsConfig,
) -> Result<AuthorizationManager, rmcp::transport::auth::AuthError> {
    let mut manager = AuthorizationManager::new(mcp).await?;
    let resolved = manager
        .resolve_metadata_from_challenge(Some(challenge))
        .await?;
    manager.set_metadata(resolved.metadata);
    manager.validate_client_credentials_metadata(config)?;
    manager.configure_client_credentials(config)?;
    manager.exchange_client_credentials(config).await?;
    Ok(manager)
}

/// A P-256 key (rmcp's `private_key_jwt` signs ES256 or RS*, from a PEM): its PKCS#8 PEM and
/// its public JWK.
fn es256_key() -> (String, Value) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let encoded = STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    // The public key: 0x04, then x and y, 32 bytes each.
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    (pem, jwk)
}

/// rmcp's `private_key_jwt` configuration for `client_id`, signing with `pem`.
fn private_key_jwt(
    client_id: &str,
    pem: &str,
    mcp: &str,
    scopes: &[&str],
) -> ClientCredentialsConfig {
    ClientCredentialsConfig::PrivateKeyJwt {
        client_id: client_id.to_owned(),
        signing_key: pem.as_bytes().to_vec(),
        signing_algorithm: JwtSigningAlgorithm::ES256,
        token_endpoint_audience: None,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        resource: Some(mcp.to_owned()),
    }
}

/// An MCP session through rmcp's authenticated transport.
async fn connect(
    mcp: &str,
    manager: AuthorizationManager,
) -> RunningService<RoleClient, ClientConfig> {
    let client = AuthClient::new(reqwest::Client::new(), manager);
    let config = StreamableHttpClientTransportConfig::with_uri(mcp);
    let transport = StreamableHttpClientTransport::with_client(client, config);
    ClientConfig::default().serve(transport).await.unwrap()
}

/// Calls `list_tickets` and checks the tool saw `agent_id` as its caller.
async fn assert_lists_as(session: &RunningService<RoleClient, ClientConfig>, agent_id: &str) {
    let listed = session
        .call_tool(call("list_tickets", json!({})))
        .await
        .unwrap();
    assert_eq!(text_json(&listed)["agent_id"], agent_id);
}

/// The JSON text of a tool result.
fn text_json(result: &CallToolResult) -> Value {
    let text = result.content[0].as_text().expect("text content");
    serde_json::from_str(&text.text).unwrap()
}

fn call(name: &str, arguments: Value) -> CallToolRequestParams {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object")
    };
    CallToolRequestParams::new(name.to_owned()).with_arguments(arguments)
}

#[tokio::test]
async fn rmcp_discovers_from_the_401_lists_and_calls_both_tools() {
    let issuer = TestIssuer::start().await;
    let mcp = serve_example(&issuer).await;
    let challenge = first_challenge(&mcp).await;
    let origin = mcp.trim_end_matches("/mcp");
    assert_eq!(
        challenge,
        format!(
            r#"Bearer realm="{mcp}", resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp", scope="tickets:read""#
        )
    );
    let agent = issuer
        .provision("mcp-full", &["tickets:read", "tickets:triage"])
        .await
        .unwrap();
    let manager = authorize(
        &mcp,
        &challenge,
        &agent,
        &["tickets:read", "tickets:triage"],
    )
    .await
    .unwrap();
    let session = connect(&mcp, manager).await;

    let tools = session.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|tool| &*tool.name).collect();
    names.sort();
    assert_eq!(names, ["list_tickets", "triage_ticket"]);

    assert_lists_as(&session, &agent.id).await;
    let triaged = session
        .call_tool(call("triage_ticket", json!({"id": "7"})))
        .await
        .unwrap();
    let triaged = text_json(&triaged);
    assert_eq!(
        (&triaged["agent_id"], &triaged["id"], &triaged["triaged"]),
        (&json!(agent.id), &json!("7"), &json!(true))
    );
    session.cancel().await.unwrap();
}

#[tokio::test]
async fn a_read_only_agent_is_refused_triage_and_its_step_up_is_refused_by_the_issuer() {
    let issuer = TestIssuer::start().await;
    let mcp = serve_example(&issuer).await;
    let challenge = first_challenge(&mcp).await;
    let reader = issuer
        .provision("mcp-reader", &["tickets:read"])
        .await
        .unwrap();
    // The challenge's basic scope is all it asks for.
    let manager = authorize(&mcp, &challenge, &reader, &["tickets:read"])
        .await
        .unwrap();
    let session = connect(&mcp, manager).await;

    assert_lists_as(&session, &reader.id).await;

    let refused = session
        .call_tool(call("triage_ticket", json!({"id": "7"})))
        .await
        .unwrap_err();
    let origin = mcp.trim_end_matches("/mcp");
    assert_eq!(
        refused.auth_challenge(),
        Some(&*format!(
            r#"Bearer realm="{mcp}", resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp", error="insufficient_scope", error_description="missing required scope", scope="tickets:triage""#
        )),
        "{refused:?}"
    );
    // The step-up the 403 invites: the issuer refuses a scope the agent does not hold.
    let step_up = authorize(
        &mcp,
        &challenge,
        &reader,
        &["tickets:read", "tickets:triage"],
    )
    .await;
    let error = step_up
        .err()
        .expect("the issuer refuses the step-up")
        .to_string();
    assert!(error.contains("invalid_scope"), "{error}");
    // The session still works for what the agent may do.
    assert_lists_as(&session, &reader.id).await;
    session.cancel().await.unwrap();
}

#[tokio::test]
async fn rmcp_private_key_jwt_an_agent_without_any_secret_calls_both_tools() {
    let issuer = TestIssuer::start().await;
    let mcp = serve_example(&issuer).await;
    let challenge = first_challenge(&mcp).await;
    let both = ["tickets:read", "tickets:triage"];
    let agent = issuer
        .admin()
        .create_agent(&CreateAgent::new("mcp-keyed").scopes(both))
        .await
        .unwrap()
        .data;
    let (pem, jwk) = es256_key();
    issuer
        .admin()
        .add_jwk(&agent.id, Some("rmcp"), jwk)
        .await
        .unwrap();
    let verifiers = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    assert_eq!(verifiers.len(), 1, "one key, no secret");

    let manager = authorize_with(
        &mcp,
        &challenge,
        &private_key_jwt(&agent.id, &pem, &mcp, &both),
    )
    .await
    .unwrap();
    let session = connect(&mcp, manager).await;
    assert_lists_as(&session, &agent.id).await;
    let triaged = session
        .call_tool(call("triage_ticket", json!({"id": "9"})))
        .await
        .unwrap();
    assert_eq!(text_json(&triaged)["triaged"], true);
    session.cancel().await.unwrap();

    // An assertion signed with a key the agent never registered: invalid_client.
    let (other_pem, _) = es256_key();
    let refused = authorize_with(
        &mcp,
        &challenge,
        &private_key_jwt(&agent.id, &other_pem, &mcp, &both),
    )
    .await
    .err()
    .expect("the issuer refuses an unregistered key")
    .to_string();
    assert!(refused.contains("invalid_client"), "{refused}");
    let verifiers = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    assert_eq!(
        verifiers[0].usage_count, 1,
        "only the good assertion was counted"
    );
}

#[tokio::test]
async fn the_example_serves_rfc_9728_at_both_urls_and_health_open() {
    let issuer = TestIssuer::start().await;
    let mcp = serve_example(&issuer).await;
    let origin = mcp.trim_end_matches("/mcp");
    let expected = json!({
        "resource": mcp,
        "authorization_servers": [issuer.url()],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["tickets:read", "tickets:triage"],
    });
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = reqwest::get(format!("{origin}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let document: Value = response.json().await.unwrap();
        assert_eq!(document, expected, "{path}");
    }
    let health = reqwest::get(format!("{origin}/health")).await.unwrap();
    assert_eq!(
        (health.status().as_u16(), health.text().await.unwrap()),
        (200, "ok".to_owned())
    );
}

#[test]
fn the_readme_shows_the_examples_code_verbatim() {
    let example = include_str!("../examples/mcp_server.rs");
    let readme = include_str!("../README.md");
    let begin =
        "// README: begin (the README's \"Protecting an MCP server\" shows this part, verbatim)\n";
    let region = example
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once("// README: end\n"))
        .map(|(region, _)| region)
        .expect("the example marks its README region");
    let section = readme
        .split_once("## Protecting an MCP server")
        .map(|(_, rest)| rest)
        .expect("the README has the section");
    let block = section
        .split_once("```rust,ignore\n")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .map(|(block, _)| block)
        .expect("the section has the code block");
    assert_eq!(block, region, "README and examples/mcp_server.rs differ");
}
