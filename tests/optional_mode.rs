//! `AgentAuth::optional()` (DESIGN §11) over real HTTP: a request without credentials reaches
//! the handler with `Option<Agent>` = `None`; any bad credentials are still refused with the
//! usual status and error code; a good token gives `Some(agent)`.

mod support;

use agent_auth::{Agent, RequireScopes};
use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};
use support::*;

/// What the handler saw.
async fn me(agent: Option<Agent>) -> Json<Value> {
    Json(json!({ "agent": agent.map(|agent| agent.id().to_owned()) }))
}

struct App {
    issuer: JwksServer,
    key: TestKey,
    url: String,
}

impl App {
    async fn start() -> Self {
        let key = TestKey::ed25519("k1");
        let issuer = JwksServer::start(&[&key]).await;
        let layer = issuer.auth().optional().build().unwrap();
        let app = axum::Router::new()
            .route("/me", get(me))
            .route(
                "/scoped",
                get(me).layer(RequireScopes::all(["tickets:read"])),
            )
            .layer(layer);
        let addr = serve_router(app).await;
        App {
            issuer,
            key,
            url: format!("http://{addr}"),
        }
    }

    async fn get(&self, path: &str, authorization: &[&str]) -> Outcome {
        let mut request = client().get(format!("{}{path}", self.url));
        for value in authorization {
            request = request.header("authorization", *value);
        }
        send(request).await
    }
}

#[tokio::test]
async fn without_credentials_the_handler_runs_without_an_agent() {
    let app = App::start().await;
    for authorization in [&[][..], &["Basic dXNlcjpwYXNz"], &["Bearerabc"]] {
        let outcome = app.get("/me", authorization).await;
        assert_eq!(outcome.status, 200, "{authorization:?}");
        assert_eq!(outcome.challenge, None);
        assert_eq!(
            outcome.json(),
            json!({ "agent": null }),
            "{authorization:?}"
        );
    }
    assert_eq!(
        app.issuer.fetches(),
        0,
        "nothing to verify, nothing fetched"
    );
}

#[tokio::test]
async fn with_a_good_token_the_handler_gets_the_agent() {
    let app = App::start().await;
    let token = app.key.token(&app.issuer.issuer(), json!({}));
    let bearer = format!("Bearer {token}");
    for path in ["/me", "/scoped"] {
        let outcome = app.get(path, &[&bearer]).await;
        assert_eq!(outcome.status, 200, "{path}");
        assert_eq!(outcome.json(), json!({ "agent": AGENT_ID }), "{path}");
    }
}

#[tokio::test]
async fn bad_credentials_are_still_refused() {
    let app = App::start().await;
    let issuer = app.issuer.issuer();
    let impostor = TestKey::ed25519("k1");
    let invalid_token = |description: &str| {
        (
            401,
            Some("invalid_token".to_owned()),
            Some(description.to_owned()),
        )
    };
    let invalid_request = |description: &str| {
        (
            400,
            Some("invalid_request".to_owned()),
            Some(description.to_owned()),
        )
    };
    let bearer = |token: String| format!("Bearer {token}");
    let cases = [
        (
            vec![bearer(impostor.token(&issuer, json!({})))],
            invalid_token("signature verification failed"),
        ),
        (
            vec![bearer(
                app.key.token(&issuer, json!({ "exp": now() - 3600 })),
            )],
            invalid_token("token expired"),
        ),
        (
            vec![bearer(
                app.key.token("https://elsewhere.example", json!({})),
            )],
            invalid_token("wrong issuer"),
        ),
        (
            vec![bearer("not-a-jwt".to_owned())],
            invalid_token("malformed token"),
        ),
        (
            vec!["Bearer".to_owned()],
            invalid_request("Bearer scheme without a token"),
        ),
        (
            vec!["Bearer a b".to_owned()],
            invalid_request("malformed Bearer credentials"),
        ),
        (
            vec![bearer("a".into()), bearer("b".into())],
            invalid_request("more than one Authorization header"),
        ),
    ];
    for (authorization, expected) in cases {
        let authorization: Vec<&str> = authorization.iter().map(String::as_str).collect();
        let outcome = app.get("/me", &authorization).await;
        let got = (outcome.status, outcome.error(), outcome.error_description());
        assert_eq!(got, expected, "{authorization:?}");
        assert_ne!(outcome.body, r#"{"agent":null}"#, "the handler never ran");
    }
}

#[tokio::test]
async fn a_route_that_needs_scopes_still_needs_a_token() {
    let app = App::start().await;
    let outcome = app.get("/scoped", &[]).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.error(), None, "no credentials: a bare challenge");
    let challenge = outcome.challenge.expect("a Bearer challenge");
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
}
