//! The outgoing side: the tower layer and the `reqwest-middleware` middleware add the token,
//! and on `401 invalid_token` renew exactly once and retry exactly once. Also idempotent
//! provisioning.
#![cfg(all(feature = "client", feature = "issuer", feature = "reqwest-middleware"))]

mod client_support;

use std::sync::{Arc, Mutex};

use agent_auth::client::{
    AgentSpec, AuthorizationError, AuthorizationLayer, AuthorizationMiddleware, ClientCredential,
    ClientSecret, ManagementClient, ManagementError, TokenError, TokenSource,
};
use agent_auth::issuer::{CreateAgent, TestAgent, TestIssuer};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use client_support::Proxy;
use tower::{Layer, Service, ServiceExt};

/// How the fake resource server answers.
#[derive(Clone, Copy)]
enum Api {
    /// `401 invalid_token` for the first `n` requests, then `200`.
    RefuseFirst(usize),
    /// `401 invalid_token` for every request carrying the first token it saw, `200` for others.
    RefuseFirstToken,
    /// `401` with a challenge without `error` for every request.
    ChallengeWithoutError,
}

struct ApiState {
    mode: Api,
    seen: Mutex<Vec<String>>,
}

struct FakeApi {
    url: String,
    state: Arc<ApiState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApi {
    async fn start(mode: Api) -> Self {
        let state = Arc::new(ApiState {
            mode,
            seen: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&state);
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
            let s = Arc::clone(&s);
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let (n, first) = {
                    let mut seen = s.seen.lock().unwrap();
                    seen.push(auth.clone());
                    (seen.len(), seen[0] == auth)
                };
                let refuse = match s.mode {
                    Api::RefuseFirst(k) => n <= k,
                    Api::RefuseFirstToken => first,
                    Api::ChallengeWithoutError => false,
                };
                match s.mode {
                    _ if refuse => (
                        StatusCode::UNAUTHORIZED,
                        [(
                            "www-authenticate",
                            r#"Bearer realm="api", error="invalid_token", error_description="expired""#,
                        )],
                        String::new(),
                    )
                        .into_response(),
                    Api::ChallengeWithoutError => (
                        StatusCode::UNAUTHORIZED,
                        [("www-authenticate", r#"Bearer realm="api""#)],
                        String::new(),
                    )
                        .into_response(),
                    _ => (StatusCode::OK, format!("ok:{body}")).into_response(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, task }
    }

    fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn setup() -> (TestIssuer, TestAgent, Proxy, TokenSource) {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("worker", &["tickets:read"]).await.unwrap();
    let proxy = Proxy::start(issuer.url()).await;
    let tokens = TokenSource::builder(
        proxy.url(),
        agent.id.clone(),
        ClientCredential::secret(agent.secret.expose()),
    )
    .build()
    .unwrap();
    (issuer, agent, proxy, tokens)
}

/// A tower HTTP client over reqwest: `http::Request<String>` in, `http::Response<String>` out.
fn http_service() -> impl Service<
    http::Request<String>,
    Response = http::Response<String>,
    Error = reqwest::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    tower::service_fn(move |req: http::Request<String>| {
        let client = client.clone();
        async move {
            let req = reqwest::Request::try_from(req.map(reqwest::Body::from))?;
            let res = client.execute(req).await?;
            let mut out = http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                out = out.header(k, v);
            }
            Ok(out.body(res.text().await?).unwrap())
        }
    })
}

fn post(url: &str) -> http::Request<String> {
    http::Request::post(format!("{url}/tickets"))
        .body("payload".to_owned())
        .unwrap()
}

#[tokio::test]
async fn the_tower_layer_adds_the_token() {
    let (_issuer, _agent, proxy, tokens) = setup().await;
    let api = FakeApi::start(Api::RefuseFirst(0)).await;
    let mut svc = AuthorizationLayer::new(tokens.clone()).layer(http_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(post(&api.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.body(), "ok:payload");
    let token = tokens.token().await.unwrap();
    assert_eq!(api.seen(), [format!("Bearer {}", token.expose())]);
    assert_eq!(proxy.token_requests(), 1);
}

#[tokio::test]
async fn the_tower_layer_renews_once_and_retries_once_on_invalid_token() {
    let (_issuer, _agent, proxy, tokens) = setup().await;
    let api = FakeApi::start(Api::RefuseFirst(1)).await;
    let mut svc = AuthorizationLayer::new(tokens.clone()).layer(http_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(post(&api.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the retry with a new token succeeds");
    assert_eq!(res.body(), "ok:payload", "the body was sent again");
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0], seen[1], "the retry carries the renewed token");
    assert_eq!(proxy.token_requests(), 2, "renewed exactly once");
}

#[tokio::test]
async fn the_tower_layer_gives_up_after_one_retry() {
    let (_issuer, _agent, proxy, tokens) = setup().await;
    let api = FakeApi::start(Api::RefuseFirst(usize::MAX)).await;
    let mut svc = AuthorizationLayer::new(tokens).layer(http_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(post(&api.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the second refusal is the answer");
    assert_eq!(api.seen().len(), 2, "one retry, no loop");
    assert_eq!(proxy.token_requests(), 2);
}

#[tokio::test]
async fn a_challenge_without_invalid_token_is_not_retried() {
    let (_issuer, _agent, proxy, tokens) = setup().await;
    let api = FakeApi::start(Api::ChallengeWithoutError).await;
    let mut svc = AuthorizationLayer::new(tokens).layer(http_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(post(&api.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(api.seen().len(), 1);
    assert_eq!(proxy.token_requests(), 1);
}

#[tokio::test]
async fn concurrent_refusals_of_one_token_cause_one_renewal() {
    let (_issuer, _agent, proxy, tokens) = setup().await;
    let api = FakeApi::start(Api::RefuseFirstToken).await;
    let svc = AuthorizationLayer::new(tokens.clone()).layer(http_service());
    let old = tokens.token().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut svc = svc.clone();
        let url = api.url.clone();
        tasks.spawn(async move { svc.ready().await.unwrap().call(post(&url)).await.unwrap() });
    }
    for res in tasks.join_all().await {
        assert_eq!(res.status(), 200);
    }
    let old = format!("Bearer {}", old.expose());
    let refused = api.seen().iter().filter(|a| **a == old).count();
    assert!(refused >= 1, "the old token was refused");
    assert_eq!(
        api.seen().len(),
        10 + refused,
        "each refused request retried once"
    );
    assert_eq!(
        proxy.token_requests(),
        2,
        "one renewal for every refusal of that token"
    );
}

#[tokio::test]
async fn a_suspended_agent_surfaces_the_typed_error_through_the_layer() {
    let (issuer, agent, _proxy, tokens) = setup().await;
    issuer.admin().suspend(&agent.id, "test").await.unwrap();
    let api = FakeApi::start(Api::RefuseFirst(0)).await;
    let mut svc = AuthorizationLayer::new(tokens).layer(http_service());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(post(&api.url))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthorizationError::Token(TokenError::InvalidClient { .. })
        ),
        "{err:?}"
    );
    assert!(api.seen().is_empty(), "nothing sent without a token");
}

fn middleware_client(tokens: TokenSource) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap())
        .with(AuthorizationMiddleware::new(tokens))
        .build()
}

#[tokio::test]
async fn the_reqwest_middleware_renews_once_and_retries_once_on_invalid_token() {
    let (_issuer, _agent, proxy, tokens) = setup().await;
    let api = FakeApi::start(Api::RefuseFirst(1)).await;
    let client = middleware_client(tokens.clone());
    let res = client
        .post(format!("{}/tickets", api.url))
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok:payload");
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0], seen[1]);
    let current = tokens.token().await.unwrap();
    assert_eq!(seen[1], format!("Bearer {}", current.expose()));
    assert_eq!(proxy.token_requests(), 2, "renewed exactly once");
}

#[tokio::test]
async fn the_reqwest_middleware_gives_up_after_one_retry() {
    let (_issuer, _agent, proxy, tokens) = setup().await;
    let api = FakeApi::start(Api::RefuseFirst(usize::MAX)).await;
    let res = middleware_client(tokens)
        .get(format!("{}/tickets", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(api.seen().len(), 2);
    assert_eq!(proxy.token_requests(), 2);
}

#[tokio::test]
async fn the_reqwest_middleware_surfaces_the_typed_error() {
    let (issuer, agent, _proxy, tokens) = setup().await;
    issuer.admin().suspend(&agent.id, "test").await.unwrap();
    let api = FakeApi::start(Api::RefuseFirst(0)).await;
    let err = middleware_client(tokens)
        .get(format!("{}/tickets", api.url))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(e) = err else {
        panic!("{err:?}");
    };
    assert!(matches!(
        e.downcast_ref::<TokenError>(),
        Some(TokenError::InvalidClient { .. })
    ));
    assert!(api.seen().is_empty());
}

fn management(issuer: &TestIssuer) -> ManagementClient {
    let key = issuer.admin_key();
    ManagementClient::new(
        issuer.url(),
        key.id(),
        &ClientSecret::new(key.secret().expose()),
    )
    .unwrap()
}

#[tokio::test]
async fn provision_creates_once_then_reports_already_existed_without_a_secret() {
    let issuer = TestIssuer::start().await;
    let mgmt = management(&issuer);
    let spec = AgentSpec::new("nightly triage").scopes(["tickets:read"]);
    let first = mgmt.provision("wf-42", &spec).await.unwrap();
    assert!(!first.already_existed);
    assert!(first.agent_id.starts_with("agt_"));
    let secret = first.secret.clone().expect("the first run gets the secret");
    assert_eq!(secret.expose().len(), 42);

    let again = mgmt.provision("wf-42", &spec).await.unwrap();
    assert!(again.already_existed);
    assert_eq!(again.agent_id, first.agent_id);
    assert!(again.secret.is_none(), "secrets are stored hashed");
    assert_eq!(
        issuer
            .admin()
            .list_verifiers(&first.agent_id)
            .await
            .unwrap()
            .len(),
        1,
        "no second secret"
    );

    // The provisioned secret works.
    let tokens = TokenSource::builder(
        issuer.url(),
        first.agent_id.clone(),
        ClientCredential::Secret(secret),
    )
    .build()
    .unwrap();
    tokens.token().await.unwrap();
}

#[tokio::test]
async fn provision_gives_a_secret_to_an_existing_agent_that_has_none() {
    let issuer = TestIssuer::start().await;
    // An earlier run created the agent but failed before its secret.
    let made = issuer
        .admin()
        .create_agent(&CreateAgent::new("half done").external_id("wf-7"))
        .await
        .unwrap()
        .data;
    let out = management(&issuer)
        .provision("wf-7", &AgentSpec::new("half done"))
        .await
        .unwrap();
    assert!(out.already_existed);
    assert_eq!(out.agent_id, made.id);
    assert!(out.secret.is_some());
}

#[tokio::test]
async fn provision_with_a_wrong_admin_key_is_refused_typed() {
    let issuer = TestIssuer::start().await;
    let mgmt = ManagementClient::new(issuer.url(), "key_wrong", &ClientSecret::new("x")).unwrap();
    match mgmt.provision("wf-1", &AgentSpec::new("a")).await {
        Err(ManagementError::Api { status: 401, .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// End to end with a real resource server: a token the API refuses (here: already expired
/// by the API's clock, minted while the issuer's clock was behind) is renewed once by the
/// layer, and the retry passes the API's `AgentAuth`.
#[tokio::test]
async fn a_token_refused_by_a_real_agent_auth_api_is_renewed_once() {
    use agent_auth::{Agent, AgentAuth};
    const AUD: &str = "https://api.example.com/tickets";
    let (issuer, agent, proxy, _) = setup().await;
    let auth = AgentAuth::new(&issuer).audience(AUD).build().unwrap();
    let app = axum::Router::new()
        .route(
            "/tickets",
            axum::routing::post(|agent: Agent| async move { agent.id().to_owned() }),
        )
        .layer(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tokens = TokenSource::builder(
        proxy.url(),
        agent.id.clone(),
        ClientCredential::secret(agent.secret.expose()),
    )
    .resource(AUD)
    .build()
    .unwrap();
    issuer.rewind_clock(std::time::Duration::from_secs(600));
    let stale = tokens.token().await.unwrap();
    issuer.reset_clock();

    let mut svc = AuthorizationLayer::new(tokens.clone()).layer(http_service());
    let res = svc.ready().await.unwrap().call(post(&api)).await.unwrap();
    assert_eq!(res.status(), 200, "{res:?}");
    assert_eq!(res.body(), &agent.id);
    assert_eq!(proxy.token_requests(), 2, "renewed exactly once");
    assert!(!tokens.token().await.unwrap().same_as(&stale));
    server.abort();
}

#[tokio::test]
async fn provision_registers_the_wallets_of_the_spec_once() {
    let issuer = TestIssuer::start().await;
    let mgmt = management(&issuer);
    let lower = "eip155:8453:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
    let canonical = "eip155:8453:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let spec = AgentSpec::new("payer").wallets([lower]);
    let first = mgmt.provision("wf-pay", &spec).await.unwrap();
    // Again, and with the account in its other spelling: nothing new, no error.
    let again = mgmt.provision("wf-pay", &spec).await.unwrap();
    let spec = AgentSpec::new("payer").wallets([canonical]);
    mgmt.provision("wf-pay", &spec).await.unwrap();
    assert_eq!(again.agent_id, first.agent_id);
    let verifiers = issuer
        .admin()
        .list_verifiers(&first.agent_id)
        .await
        .unwrap();
    let kinds: Vec<_> = verifiers.iter().map(|v| format!("{:?}", v.kind)).collect();
    assert_eq!(kinds, ["Secret", "Wallet"]);
    let found = mgmt.wallet(lower).await.unwrap();
    assert_eq!(found["agent_id"], first.agent_id.as_str());
    assert_eq!(found["account"], canonical);
    // An account another agent holds: the issuer's 409.
    let err = mgmt
        .provision("wf-other", &AgentSpec::new("other").wallets([canonical]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ManagementError::Api { status: 409, ref code, .. } if code == "conflict"),
        "{err:?}"
    );
}
