//! `TokenSource` against the real issuer (through a counting proxy): single-flight minting,
//! renewal before expiry, the typed refusal and its cooldown, bounded retries.
#![cfg(all(feature = "client", feature = "issuer"))]

mod client_support;

use std::sync::Arc;
use std::time::Duration;

use agent_auth::client::{
    ClientCredential, PrivateJwk, RetryPolicy, TokenError, TokenSource, TokenSourceBuilder,
    Transient,
};
use agent_auth::issuer::{TestAgent, TestIssuer};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use client_support::{ManualClock, Mode, Proxy};

async fn setup() -> (TestIssuer, TestAgent, Proxy) {
    let issuer = TestIssuer::start().await;
    let agent = issuer
        .provision("worker", &["tickets:read", "tickets:triage"])
        .await
        .unwrap();
    let proxy = Proxy::start(issuer.url()).await;
    (issuer, agent, proxy)
}

fn source(proxy: &Proxy, agent: &TestAgent) -> TokenSourceBuilder {
    TokenSource::builder(
        proxy.url(),
        agent.id.clone(),
        ClientCredential::secret(agent.secret.expose()),
    )
    .retry(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    })
}

#[tokio::test]
async fn a_hundred_concurrent_callers_cause_one_mint() {
    let (_issuer, agent, proxy) = setup().await;
    let tokens = source(&proxy, &agent).build().unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let tokens = tokens.clone();
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            tokens.token().await.unwrap()
        });
    }
    let all: Vec<_> = tasks.join_all().await;
    assert_eq!(proxy.token_requests(), 1, "one request at the issuer");
    assert_eq!(proxy.metadata_requests(), 1, "metadata fetched once");
    assert!(
        all.iter().all(|t| t.same_as(&all[0])),
        "everyone got that one token"
    );
    let claims = claims_of(all[0].expose());
    assert_eq!(claims["sub"], agent.id.as_str());
    // Neither the source nor the token shows a secret in Debug.
    let shown = format!("{tokens:?} {:?}", all[0]);
    assert!(!shown.contains(agent.secret.expose()) && !shown.contains(all[0].expose()));
}

#[tokio::test]
async fn a_token_is_reused_until_the_margin_and_replaced_before_it_expires() {
    let (_issuer, agent, proxy) = setup().await;
    let clock = ManualClock::new();
    let tokens = source(&proxy, &agent)
        .clock(clock.clone())
        .renew_margin(Duration::from_secs(30))
        .build()
        .unwrap();
    let first = tokens.token().await.unwrap();
    // The issuer's tokens live 300 s; renewal is due 30 s before that.
    clock.advance(Duration::from_secs(269));
    assert!(tokens.token().await.unwrap().same_as(&first));
    assert_eq!(proxy.token_requests(), 1);
    clock.advance(Duration::from_secs(2)); // 271 s: inside the margin, still unexpired
    let second = tokens.token().await.unwrap();
    assert!(!second.same_as(&first), "replaced before use");
    assert_ne!(second.expose(), first.expose());
    assert_eq!(proxy.token_requests(), 2);
    assert!(second.expires_at() > first.expires_at());
}

#[tokio::test]
async fn a_suspended_agent_gets_invalid_client_and_the_issuer_sees_one_request_per_cooldown() {
    let (issuer, agent, proxy) = setup().await;
    let clock = ManualClock::new();
    let tokens = source(&proxy, &agent)
        .clock(clock.clone())
        .refusal_cooldown(Duration::from_secs(60))
        .build()
        .unwrap();
    issuer.admin().suspend(&agent.id, "test").await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let tokens = tokens.clone();
        tasks.spawn(async move { tokens.token().await });
    }
    for result in tasks.join_all().await {
        assert!(
            matches!(result, Err(TokenError::InvalidClient { .. })),
            "{result:?}"
        );
    }
    for _ in 0..50 {
        let err = tokens.token().await.unwrap_err();
        assert_eq!(err.code(), Some("invalid_client"));
    }
    assert_eq!(
        proxy.token_requests(),
        1,
        "never retried, then answered from memory"
    );

    clock.advance(Duration::from_secs(61));
    assert!(matches!(
        tokens.token().await,
        Err(TokenError::InvalidClient { .. })
    ));
    assert_eq!(
        proxy.token_requests(),
        2,
        "one more request after the cooldown"
    );

    issuer.admin().reactivate(&agent.id).await.unwrap();
    clock.advance(Duration::from_secs(61));
    tokens
        .token()
        .await
        .expect("a reactivated agent mints again");
    assert_eq!(proxy.token_requests(), 3);
}

#[tokio::test]
async fn a_refusal_drops_the_cached_token() {
    let (issuer, agent, proxy) = setup().await;
    let clock = ManualClock::new();
    let tokens = source(&proxy, &agent).clock(clock.clone()).build().unwrap();
    tokens.token().await.unwrap();
    issuer.admin().suspend(&agent.id, "test").await.unwrap();
    clock.advance(Duration::from_secs(280)); // renewal due, old token not yet expired
    assert!(matches!(
        tokens.token().await,
        Err(TokenError::InvalidClient { .. })
    ));
    clock.advance(Duration::from_secs(1));
    assert!(
        tokens.token().await.is_err(),
        "the old token is not handed out after a refusal"
    );
    assert_eq!(proxy.token_requests(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_limit_then_fail_typed() {
    let (_issuer, agent, proxy) = setup().await;
    proxy.set_mode(Mode::Fail(503));
    let tokens = source(&proxy, &agent).build().unwrap();
    match tokens.token().await {
        Err(TokenError::Unavailable {
            attempts: 3,
            last: Transient::Status(503),
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(proxy.token_requests(), 3, "max_attempts requests, no more");
}

#[tokio::test]
async fn a_server_error_then_success_gives_a_token() {
    let (_issuer, agent, proxy) = setup().await;
    proxy.set_mode(Mode::FailFirst(500, 2));
    let tokens = source(&proxy, &agent).build().unwrap();
    tokens.token().await.expect("the third attempt succeeds");
    assert_eq!(proxy.token_requests(), 3);
}

#[tokio::test]
async fn a_hanging_issuer_times_out_each_attempt_then_fails_typed() {
    let (_issuer, agent, proxy) = setup().await;
    proxy.set_mode(Mode::Hang);
    let tokens = source(&proxy, &agent)
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        })
        .request_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    match tokens.token().await {
        Err(TokenError::Unavailable {
            attempts: 2,
            last: Transient::Timeout,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(proxy.token_requests(), 2);
}

#[tokio::test]
async fn an_unreachable_issuer_is_retried_then_fails_typed() {
    // A port that was just free: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tokens = TokenSource::builder(
        format!("http://{addr}"),
        "agt_0123456789abcdef0123456789abcdef",
        ClientCredential::secret("s"),
    )
    .retry(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    })
    .build()
    .unwrap();
    match tokens.token().await {
        Err(TokenError::Unavailable {
            attempts: 2,
            last: Transient::Transport(_),
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn renewal_failing_keeps_serving_the_unexpired_token() {
    let (_issuer, agent, proxy) = setup().await;
    let clock = ManualClock::new();
    let tokens = source(&proxy, &agent).clock(clock.clone()).build().unwrap();
    let first = tokens.token().await.unwrap();
    proxy.set_mode(Mode::Fail(502));
    clock.advance(Duration::from_secs(280));
    assert!(tokens.token().await.unwrap().same_as(&first));
    assert_eq!(proxy.token_requests(), 1 + 3);
    clock.advance(Duration::from_secs(21)); // past exp
    assert!(matches!(
        tokens.token().await,
        Err(TokenError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn a_scope_beyond_the_agent_is_refused_typed_and_not_retried() {
    let (_issuer, agent, proxy) = setup().await;
    let tokens = source(&proxy, &agent)
        .scopes(["admin:all"])
        .build()
        .unwrap();
    match tokens.token().await {
        Err(TokenError::Refused { code, .. }) => assert_eq!(code, "invalid_scope"),
        other => panic!("{other:?}"),
    }
    assert_eq!(proxy.token_requests(), 1);
}

#[tokio::test]
async fn scopes_and_resource_reach_the_token() {
    let (_issuer, agent, proxy) = setup().await;
    let tokens = source(&proxy, &agent)
        .scopes(["tickets:read"])
        .resource("https://api.example.com/tickets")
        .build()
        .unwrap();
    let token = tokens.token().await.unwrap();
    let claims = claims_of(token.expose());
    assert_eq!(claims["scope"], "tickets:read");
    assert_eq!(claims["aud"], "https://api.example.com/tickets");
    assert_eq!(token.scope(), Some("tickets:read"));
    assert!(
        proxy
            .last_token_body()
            .contains("grant_type=client_credentials"),
        "{}",
        proxy.last_token_body()
    );
    assert!(
        !proxy.last_token_body().contains("client_secret"),
        "the secret goes in the Basic header (client_secret_basic)"
    );
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused() {
    let issuer = TestIssuer::start().await;
    // The document says `issuer` without the trailing slash configured here.
    let tokens = TokenSource::builder(
        format!("{}/", issuer.url()),
        "agt_0123456789abcdef0123456789abcdef",
        ClientCredential::secret("s"),
    )
    .build()
    .unwrap();
    assert!(matches!(tokens.token().await, Err(TokenError::Metadata(_))));
}

#[tokio::test]
async fn private_key_jwt_sends_a_signed_assertion_for_the_token_endpoint() {
    let (_issuer, agent, proxy) = setup().await;
    let jwk = PrivateJwk::generate(None).unwrap();
    let tokens = TokenSource::builder(
        proxy.url(),
        agent.id.clone(),
        ClientCredential::private_key_jwt(jwk),
    )
    .retry(RetryPolicy::none())
    .build()
    .unwrap();
    // This agent has no key registered: the issuer refuses, as it must.
    let err = tokens.token().await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_client"), "{err:?}");
    let body = proxy.last_token_body();
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(form["client_id"], agent.id);
    let claims = claims_of(&form["client_assertion"]);
    assert_eq!(claims["iss"], agent.id.as_str());
    assert_eq!(claims["sub"], agent.id.as_str());
    assert_eq!(claims["aud"], format!("{}/token", proxy.url()));
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 60);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
}

#[tokio::test]
async fn private_key_jwt_with_a_registered_key_mints_tokens_the_issuer_signed() {
    const AUD: &str = "https://api.example.com/tickets";
    // Straight to the issuer: the assertion's `aud` names the token endpoint the metadata
    // gives, and the issuer accepts only its own (a proxy's URL would be refused, rightly).
    let (issuer, agent, _proxy) = setup().await;
    let jwk = PrivateJwk::generate(None).unwrap();
    issuer
        .admin()
        .add_jwk(&agent.id, Some("runtime key"), jwk.public_jwk())
        .await
        .unwrap();
    let tokens = TokenSource::builder(
        issuer.url(),
        agent.id.clone(),
        ClientCredential::private_key_jwt(jwk),
    )
    .scopes(["tickets:read"])
    .resource(AUD)
    .retry(RetryPolicy::none())
    .build()
    .unwrap();
    let first = tokens.token().await.unwrap();
    let auth = agent_auth::AgentAuth::new(&issuer)
        .audience(AUD)
        .build()
        .unwrap();
    let verified = auth.verify(first.expose()).await.unwrap();
    assert_eq!(verified.id(), agent.id);
    assert_eq!(verified.scopes().collect::<Vec<_>>(), ["tickets:read"]);
    // A second mint carries a new `jti`: the issuer's replay guard does not refuse it.
    tokens.invalidate(&first);
    let second = tokens.token().await.unwrap();
    assert_ne!(second.expose(), first.expose());
    assert_eq!(auth.verify(second.expose()).await.unwrap().id(), agent.id);
}

#[test]
fn bad_configuration_is_refused_at_build() {
    use agent_auth::client::BuildError;
    let b = |issuer: &str| TokenSource::builder(issuer, "agt_1", ClientCredential::secret("s"));
    assert!(matches!(b("not a url").build(), Err(BuildError::IssuerUrl)));
    assert!(matches!(b("ftp://x").build(), Err(BuildError::IssuerUrl)));
    assert!(matches!(
        b("http://x?q").build(),
        Err(BuildError::IssuerUrl)
    ));
    assert!(matches!(
        b("http://x").scopes(["a b"]).build(),
        Err(BuildError::Scope)
    ));
    assert!(matches!(
        b("http://x").resource("https://api#frag").build(),
        Err(BuildError::Resource)
    ));
    assert!(matches!(
        b("http://x").resource("relative").build(),
        Err(BuildError::Resource)
    ));
    assert!(matches!(
        b("https://x").token_endpoint("http://x/token").build(),
        Err(BuildError::TokenEndpoint)
    ));
    assert!(matches!(
        TokenSource::builder("http://x", "", ClientCredential::secret("s")).build(),
        Err(BuildError::ClientId)
    ));
}

fn claims_of(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
