//! End to end: tokens from the bundled issuer, verified by the middleware on the seed's tickets
//! API — both served in-process over real HTTP on 127.0.0.1.
#![cfg(feature = "issuer")]

#[path = "../examples/common/tickets_api.rs"]
mod tickets_api;

use std::net::SocketAddr;
use std::time::Duration;

use agent_auth::issuer::{TestAgent, TestIssuer, TokenSpec};
use agent_auth::{AgentAuth, AgentAuthLayer};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const API: &str = "https://api.example.com/tickets";

/// The tickets API, protected by `auth`, on 127.0.0.1:0.
async fn serve_tickets(auth: AgentAuthLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, tickets_api::router(auth))
            .await
            .unwrap();
    });
    addr
}

struct Setup {
    issuer: TestIssuer,
    api: SocketAddr,
    agent: TestAgent,
}

async fn setup(scopes: &[&str]) -> Setup {
    let issuer = TestIssuer::start().await;
    let api = serve_tickets(AgentAuth::new(&issuer).audience(API).build().unwrap()).await;
    let agent = issuer
        .provision("Support Triage Agent", scopes)
        .await
        .unwrap();
    Setup { issuer, api, agent }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn call(api: SocketAddr, method: Method, path: &str, token: &str) -> Answer {
    let r = http()
        .request(method, format!("http://{api}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    Answer {
        status: r.status(),
        challenge: r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: r.text().await.unwrap(),
    }
}

async fn list(api: SocketAddr, token: &str) -> Answer {
    call(api, Method::GET, "/tickets", token).await
}

async fn triage(api: SocketAddr, token: &str) -> Answer {
    call(api, Method::POST, "/tickets/T-1001/triage", token).await
}

fn assert_invalid_token(a: &Answer, what: &str) {
    assert_eq!(a.status, 401, "{what}: {}", a.body);
    let c = a.challenge.as_deref().unwrap_or_default();
    assert!(c.starts_with("Bearer "), "{what}: {c}");
    assert!(c.contains("error=\"invalid_token\""), "{what}: {c}");
}

async fn token(s: &Setup, scopes: Option<&[&str]>, resource: Option<&str>) -> String {
    s.issuer
        .token(&s.agent, scopes, resource)
        .await
        .unwrap()
        .access_token
        .expose()
        .to_owned()
}

#[tokio::test]
async fn issuer_tokens_are_accepted_on_the_tickets_routes() {
    let s = setup(&["tickets:read", "tickets:triage"]).await;
    let t = token(&s, None, Some(API)).await;
    let a = list(s.api, &t).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["agent_id"], s.agent.id.as_str());
    assert_eq!(
        body["scopes"],
        serde_json::json!(["tickets:read", "tickets:triage"])
    );
    let a = triage(s.api, &t).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["agent_id"], s.agent.id.as_str());
    assert_eq!(body["ticket_id"], "T-1001");
    // Both client authentication methods' tokens are equally good; so is a second agent's.
    let other = s
        .issuer
        .provision("other", &["tickets:read"])
        .await
        .unwrap();
    let t2 = s.issuer.token(&other, None, Some(API)).await.unwrap();
    let a = list(s.api, t2.access_token.expose()).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains(&other.id));
}

#[tokio::test]
async fn the_middleware_finds_the_keys_through_rfc_8414_discovery() {
    let issuer = TestIssuer::start().await;
    let api = serve_tickets(
        AgentAuth::new(&issuer)
            .audience(API)
            .discover()
            .build()
            .unwrap(),
    )
    .await;
    let agent = issuer.provision("d", &["tickets:read"]).await.unwrap();
    let t = issuer.token(&agent, None, Some(API)).await.unwrap();
    assert_eq!(list(api, t.access_token.expose()).await.status, 200);
}

#[tokio::test]
async fn missing_scopes_are_refused_with_403_insufficient_scope() {
    let s = setup(&["tickets:read", "tickets:triage"]).await;
    // Token narrowed to tickets:read.
    let t = token(&s, Some(&["tickets:read"]), Some(API)).await;
    assert_eq!(list(s.api, &t).await.status, 200);
    let a = triage(s.api, &t).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let c = a.challenge.unwrap();
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"tickets:triage\""), "{c}");
    // Token narrowed to tickets:triage cannot list.
    let t = token(&s, Some(&["tickets:triage"]), Some(API)).await;
    let a = list(s.api, &t).await;
    assert_eq!(a.status, 403);
    assert!(a.challenge.unwrap().contains("scope=\"tickets:read\""));
    assert_eq!(triage(s.api, &t).await.status, 200);
    // An agent whose ceiling lacks the scope cannot even ask for it.
    let reader = s
        .issuer
        .provision("reader", &["tickets:read"])
        .await
        .unwrap();
    let err = s
        .issuer
        .token(&reader, Some(&["tickets:triage"]), Some(API))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_scope"));
    let t = s.issuer.token(&reader, None, Some(API)).await.unwrap();
    assert_eq!(triage(s.api, t.access_token.expose()).await.status, 403);
}

#[tokio::test]
async fn a_token_for_another_audience_is_invalid_token() {
    let s = setup(&["tickets:read"]).await;
    // No resource: aud is the agent id, not this API.
    let t = token(&s, None, None).await;
    assert_invalid_token(&list(s.api, &t).await, "aud = agent id");
    let t = token(&s, None, Some("https://api.example.com/billing")).await;
    assert_invalid_token(&list(s.api, &t).await, "other resource");
}

#[tokio::test]
async fn a_suspended_agents_outstanding_token_stays_valid_until_exp() {
    let s = setup(&["tickets:read"]).await;
    // A token issued 400 s ago by the issuer's clock: its exp (iat + 300) has passed for the
    // resource server's real clock, beyond the 5 s leeway.
    s.issuer.rewind_clock(Duration::from_secs(400));
    let old = token(&s, None, Some(API)).await;
    s.issuer.reset_clock();
    let outstanding = token(&s, None, Some(API)).await;
    assert_eq!(
        list(s.api, &old).await.status,
        401,
        "exp bounds every token"
    );
    assert_eq!(list(s.api, &outstanding).await.status, 200);

    s.issuer
        .admin()
        .suspend(&s.agent.id, "investigating")
        .await
        .unwrap();
    // New tokens are refused at once …
    let err = s.issuer.token(&s.agent, None, Some(API)).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("invalid_client"))
    );
    // … while the outstanding one keeps working until its exp (the resource server does not
    // consult the issuer per request).
    let a = list(s.api, &outstanding).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let claims = decode_claims(&outstanding);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300,
        "and that is at most 5 minutes"
    );
    // Reactivated: tokens again.
    s.issuer.admin().reactivate(&s.agent.id).await.unwrap();
    let fresh = token(&s, None, Some(API)).await;
    assert_eq!(list(s.api, &fresh).await.status, 200);
    // Deleted: same story — no new tokens, the outstanding one lives out its 5 minutes.
    s.issuer.admin().delete_agent(&s.agent.id).await.unwrap();
    let err = s.issuer.token(&s.agent, None, Some(API)).await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_client"));
    assert_eq!(list(s.api, &fresh).await.status, 200);
}

fn decode_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_minted_with_the_issuers_real_key_are_invalid_token() {
    let s = setup(&["tickets:read"]).await;
    let id = s.agent.id.as_str();
    let base = || {
        TokenSpec::for_agent(id)
            .audience(API)
            .scopes(["tickets:read"])
    };
    // Control: the unaltered spec is accepted, so each refusal below is due to its one defect.
    let ok = list(s.api, &s.issuer.mint(base())).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let cases: Vec<(&str, TokenSpec)> = vec![
        ("expired", base().expired()),
        (
            "wrong audience",
            base().audience("https://api.example.com/billing"),
        ),
        ("aud = agent id", base().audience(id)),
        ("no dat (not an agent)", base().non_agent()),
        ("dat.type user", base().dat_type("user")),
        (
            "sub without agt_",
            base().subject("usr_0123456789abcdef0123456789abcdef"),
        ),
        ("wrong issuer", base().issuer("http://127.0.0.1:1")),
        (
            "issuer with trailing slash",
            base().issuer(format!("{}/", s.issuer.url())),
        ),
        ("no exp", base().without_claim("exp")),
        ("no sub", base().without_claim("sub")),
        ("no iss", base().without_claim("iss")),
        ("no aud", base().without_claim("aud")),
        ("not yet valid", base().not_before_in(600)),
        ("unknown kid", base().header("kid", "no-such-key")),
        ("alg none", base().header("alg", "none")),
        ("alg HS256", base().header("alg", "HS256")),
        ("alg ES256 on an Ed25519 key", base().header("alg", "ES256")),
        ("typ id+jwt", base().header("typ", "id+jwt")),
        (
            "unknown crit",
            base()
                .header("crit", serde_json::json!(["x-unknown"]))
                .header("x-unknown", 1),
        ),
    ];
    for (what, spec) in cases {
        let t = s.issuer.mint(spec);
        assert_invalid_token(&list(s.api, &t).await, what);
    }
    // A token signed by the issuer but altered afterwards.
    let good = s.issuer.mint(base());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = s
        .issuer
        .mint(base().scopes(["tickets:read", "tickets:triage"]));
    parts[1] = forged.split('.').nth(1).unwrap();
    assert_invalid_token(&list(s.api, &parts.join(".")).await, "payload swapped");
    // The open route stays open.
    let r = http()
        .get(format!("http://{}/health", s.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
