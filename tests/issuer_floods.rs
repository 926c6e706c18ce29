//! Floods and races from an agent's own token (findings 3 and 4 of the hardening review), over
//! real HTTP: the self-service write budget, the bounds on what agents' events and a webhook's
//! queue may hold, and self-service changes racing an administrator's suspension.
#![cfg(feature = "issuer")]

mod issuer_support;

use std::sync::Arc;
use std::time::Duration;

use agent_auth::issuer::{
    ActorKind, AdminClient, AdminKey, AgentClient, Clock, CreateAgent, EventQuery, EventRecord,
    EventType, Issuer, OffsetClock, OutboxBounds, SELF_SERVICE_WRITES_PER_MINUTE, TestIssuer,
};
use issuer_support::*;
use reqwest::Method;

/// Every event, newest first.
async fn all_events(admin: &AdminClient) -> Vec<EventRecord> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = admin
            .events(&EventQuery {
                limit: Some(100),
                cursor: cursor.clone(),
                ..EventQuery::default()
            })
            .await
            .unwrap();
        out.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

async fn self_service(issuer: &TestIssuer, agent: &TestAgent) -> AgentClient {
    let token = issuer.token(agent, None, Some(issuer.url())).await.unwrap();
    issuer.admin().as_agent(token.access_token)
}

use agent_auth::issuer::TestAgent;

/// Finding 3: one agent token made 51,000 self-service rotations in 13 s.
#[tokio::test]
async fn self_service_writes_beyond_ten_a_minute_get_429_with_retry_after_and_change_nothing() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &[]).await.unwrap();
    let other = issuer.provision("other", &[]).await.unwrap();
    let token = issuer
        .token(&agent, None, Some(issuer.url()))
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token.access_token.expose());
    let me = issuer.admin().as_agent(token.access_token);
    let mut last = None;
    for _ in 0..SELF_SERVICE_WRITES_PER_MINUTE {
        last = Some(me.rotate().await.unwrap());
    }
    let before = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    let events_before = all_events(issuer.admin()).await.len();

    for (method, path) in [
        (Method::POST, "/v1/agents/me/rotate"),
        (Method::POST, "/v1/agents/me/deactivate"),
        (Method::DELETE, "/v1/agents/me"),
    ] {
        let r = with_auth(&issuer, method, path, Some(&bearer)).await;
        assert_eq!(r.api_error(429), "rate_limited", "{path}");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    // Nothing changed: same verifiers (the last rotation's), no new events, still active.
    let after = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(after[0].id, last.unwrap().verifier.id);
    assert_eq!(all_events(issuer.admin()).await.len(), events_before);
    assert!(me.me().await.is_ok(), "reads are not throttled");
    // Another agent has its own budget; and the budget comes back with time.
    self_service(&issuer, &other).await.rotate().await.unwrap();
    issuer.advance_clock(Duration::from_secs(6));
    me.rotate().await.unwrap();
    assert_eq!(me.rotate().await.unwrap_err().status(), Some(429));
}

/// Finding 3: in memory, the event cap then evicted every other event; on SQLite, 4,000 calls
/// grew the database to 16.5 MB and queued 8,000 webhook deliveries.
#[tokio::test]
async fn events_agents_cause_never_evict_what_administrators_caused_and_a_webhook_queue_is_bounded()
{
    let clock = Arc::new(OffsetClock::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let key = AdminKey::generate().unwrap();
    let issuer = Issuer::builder()
        .issuer_url(&url)
        .admin_key(key.clone())
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .outbox_bounds(OutboxBounds {
            agent_events: 5,
            pending_per_webhook: 3,
        })
        .build()
        .await
        .unwrap();
    // The router alone: no delivery task, so queued messages stay queued.
    let router = issuer.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let admin = AdminClient::new(&url, key).unwrap();
    let hook = admin
        .create_webhook(
            "https://hooks.example.com/agent-auth",
            &[EventType::VerifierAdded, EventType::VerifierRemoved],
        )
        .await
        .unwrap()
        .webhook;
    let agent = admin
        .create_agent(&CreateAgent::new("flooder"))
        .await
        .unwrap()
        .data;
    let secret = admin.add_secret(&agent.id, None).await.unwrap().secret;
    let bystander = admin
        .create_agent(&CreateAgent::new("bystander"))
        .await
        .unwrap()
        .data;
    let admin_events: Vec<String> = all_events(&admin).await.into_iter().map(|e| e.id).collect();
    assert_eq!(admin_events.len(), 3);

    let token = admin
        .token(&agent.id, secret.expose(), None, Some(&url))
        .await
        .unwrap();
    let me = admin.as_agent(token.access_token);
    // Four rotations: eight agent events (a removal and an addition each).
    for _ in 0..4 {
        me.rotate().await.unwrap();
    }
    let events = all_events(&admin).await;
    let (by_agent, by_admin): (Vec<_>, Vec<_>) = events
        .iter()
        .partition(|e| e.actor.kind == ActorKind::Agent);
    // Every administrator's event survived, the bystander's creation included …
    assert_eq!(
        by_admin.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        admin_events
    );
    assert!(
        by_admin
            .iter()
            .any(|e| e.agent_id.as_deref() == Some(&bystander.id))
    );
    // … and only the newest five of the agent's are kept (the last rotation's two first).
    assert_eq!(by_agent.len(), 5);
    assert_eq!(by_agent[0].kind, EventType::VerifierAdded);

    // The webhook got nine messages (the admin's secret and eight by the agent): three stay
    // queued, the six oldest were dropped into its dead letters, counted.
    let hooks = admin.list_webhooks().await.unwrap();
    assert_eq!(hooks[0].id, hook.id);
    assert_eq!(hooks[0].dropped_deliveries, 6);
}

/// Finding 4: the self-service "not suspended" check ran outside the write's transaction, so a
/// rotation racing an administrator's suspension still went through.
#[tokio::test]
async fn self_service_changes_racing_a_suspension_never_land_after_it() {
    for _round in 0..5 {
        let issuer = TestIssuer::start().await;
        let agent = issuer.provision("bot", &[]).await.unwrap();
        let me = Arc::new(self_service(&issuer, &agent).await);
        let rotations: Vec<_> = (0..8)
            .map(|_| {
                let me = Arc::clone(&me);
                tokio::spawn(async move { me.rotate().await })
            })
            .collect();
        issuer.admin().suspend(&agent.id, "racing").await.unwrap();
        let mut succeeded = 0;
        for rotation in rotations {
            match rotation.await.unwrap() {
                Ok(_) => succeeded += 1,
                Err(e) => assert_eq!(e.code(), Some("agent_suspended"), "{e:?}"),
            }
        }
        // Newest first: nothing the agent did comes after (above) the suspension.
        let events = all_events(issuer.admin()).await;
        let suspended_at = events
            .iter()
            .position(|e| e.kind == EventType::AgentUpdated && e.actor.kind == ActorKind::Admin)
            .unwrap();
        assert!(
            events[..suspended_at]
                .iter()
                .all(|e| e.actor.kind != ActorKind::Agent),
            "an agent's change landed after its suspension"
        );
        let added_by_agent = events
            .iter()
            .filter(|e| e.kind == EventType::VerifierAdded && e.actor.kind == ActorKind::Agent)
            .count();
        assert_eq!(added_by_agent, succeeded);
        // And a suspended agent changes nothing more.
        assert_eq!(
            me.rotate().await.unwrap_err().code(),
            Some("agent_suspended")
        );
        issuer.shutdown().await;
    }
}

/// Finding 9 of the hardening review: failed admin authentications were not throttled.
#[tokio::test]
async fn failed_admin_logins_are_throttled_per_client_address() {
    let issuer = TestIssuer::start().await;
    let wrong = basic(
        issuer.admin_key().id(),
        "a-wrong-secret-of-the-right-length!!",
    );
    let right = basic(
        issuer.admin_key().id(),
        issuer.admin_key().secret().expose(),
    );
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .no_proxy()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let get = |client: reqwest::Client, authorization: String| {
        let url = format!("{}/v1/agents", issuer.url());
        async move {
            read(
                client
                    .get(url)
                    .header("authorization", authorization)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let guesser = from([127, 0, 0, 1]);
    for _ in 0..agent_auth::issuer::ADMIN_FAILURES_PER_MINUTE {
        let r = get(guesser.clone(), wrong.clone()).await;
        assert_eq!(r.api_error(401), "unauthorized");
    }
    // Budget spent: refused before the key is even looked at, the right one included.
    for authorization in [wrong.clone(), right.clone()] {
        let r = get(guesser.clone(), authorization).await;
        assert_eq!(r.api_error(429), "rate_limited");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    // Another address is not affected (127.0.0.2 is loopback too).
    let r = get(from([127, 0, 0, 2]), right.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // With time, the address gets its budget back.
    issuer.advance_clock(Duration::from_secs(7));
    let r = get(guesser.clone(), right.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
