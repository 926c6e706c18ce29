//! The axum side: extractor rejections, guards without the auth layer, RFC 9728 metadata.

mod support;

use agent_auth::{Agent, ProtectedResourceMetadata, RequireScopes};
use axum::Router;
use axum::routing::get;
use serde_json::json;
use support::*;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_agent_extractor_without_the_layer_is_a_500_not_a_pass() {
    let app =
        Router::new()
            .route(
                "/strict",
                get(|agent: Agent| async move { agent.id().to_owned() }),
            )
            .route(
                "/optional",
                get(|agent: Option<Agent>| async move {
                    format!("{:?}", agent.map(|a| a.id().to_owned()))
                }),
            );
    let base = serve(app).await;
    let strict = send(client().get(format!("{base}/strict"))).await;
    assert_eq!(strict.status, 500);
    assert!(strict.body.contains("AgentAuth layer is not installed"));
    let optional = send(client().get(format!("{base}/optional"))).await;
    assert_eq!(optional.status, 200);
    assert_eq!(optional.body, "None");
}

#[tokio::test]
async fn a_scope_guard_without_the_layer_refuses_with_500() {
    let app = Router::new().route(
        "/guarded",
        get(|| async { "reached" }).layer(RequireScopes::all(["tickets:read"])),
    );
    let base = serve(app).await;
    let outcome = send(client().get(format!("{base}/guarded"))).await;
    assert_eq!(outcome.status, 500);
    assert_ne!(outcome.body, "reached");
}

#[tokio::test]
async fn the_metadata_router_serves_rfc_9728_at_the_advertised_path() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    // The advertised URL's host is irrelevant to routing; its path decides where we serve.
    let auth = jwks
        .auth()
        .resource_metadata("https://api.example.com/.well-known/oauth-protected-resource/tickets")
        .build()
        .unwrap();
    let metadata = auth
        .protected_resource_metadata()
        .scopes_supported(["tickets:read", "tickets:triage"]);
    let app = Router::new()
        .route(
            "/tickets",
            get(|agent: Agent| async move { agent.id().to_owned() }),
        )
        .layer(auth.clone())
        .merge(agent_auth::axum::resource_metadata_router(
            &auth,
            metadata.clone(),
        ));
    let base = serve(app).await;

    let outcome = send(client().get(format!(
        "{base}/.well-known/oauth-protected-resource/tickets"
    )))
    .await;
    assert_eq!(outcome.status, 200);
    assert_eq!(
        outcome.json(),
        json!({
            "resource": AUDIENCE,
            "authorization_servers": [jwks.issuer()],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["tickets:read", "tickets:triage"],
        })
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&metadata.to_json()).unwrap(),
        outcome.json()
    );

    let challenge = send(client().get(format!("{base}/tickets"))).await;
    assert_eq!(challenge.status, 401);
    assert!(challenge.challenge.unwrap().contains(
        r#"resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/tickets""#
    ));
    assert_eq!(
        ProtectedResourceMetadata::well_known_path(None),
        "/.well-known/oauth-protected-resource"
    );
}

#[tokio::test]
async fn algorithms_outside_the_configured_set_are_refused() {
    let ed = TestKey::ed25519("ed");
    let rsa = TestKey::rsa("rsa");
    let jwks = JwksServer::start(&[&ed, &rsa]).await;
    let api = serve_api(
        jwks.auth()
            .algorithms([agent_auth::Algorithm::EdDSA])
            .build()
            .unwrap(),
    )
    .await;
    let ok = get_with_token(
        &format!("{api}/tickets"),
        &ed.token(&jwks.issuer(), json!({})),
    )
    .await;
    assert_eq!(ok.status, 200);
    let refused = get_with_token(
        &format!("{api}/tickets"),
        &rsa.token(&jwks.issuer(), json!({})),
    )
    .await;
    assert_eq!(refused.status, 401);
    assert!(refused.challenge.unwrap().contains("unsupported algorithm"));
}
