//! Webhooks of the bundled issuer: a receiver on 127.0.0.1:0 checks every delivery with an
//! independent implementation of the Standard Webhooks signature (aws-lc-rs HMAC, written
//! here), sees every event type, and sees retries after answering 500.
#![cfg(feature = "issuer")]

mod issuer_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_auth::issuer::{
    AdminClient, AdminKey, CreateAgent, CreateMembership, Database, EventType, Issuer,
    MAX_WEBHOOKS, TestIssuer,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use issuer_support::*;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: i64,
    body: Value,
    valid: bool,
    answered: u16,
}

struct Receiver {
    secret: std::sync::Mutex<Option<String>>,
    /// Answer 500 to this many deliveries first.
    fail_first: AtomicUsize,
    tx: mpsc::UnboundedSender<Delivery>,
}

/// The Standard Webhooks check, written independently of the crate: key = base64 after
/// `whsec_`, HMAC-SHA256 over `{id}.{timestamp}.{body}`, `v1,<base64>` among the signatures.
fn independent_check(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let expected = STANDARD.encode(aws_lc_rs::hmac::sign(&key, &signed).as_ref());
    headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .any(|s| s == format!("v1,{expected}"))
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secret = r
        .secret
        .lock()
        .unwrap()
        .clone()
        .expect("secret set before deliveries");
    let valid = independent_check(&secret, &headers, &body)
        && agent_auth::webhooks::verify(&secret, &headers, &body, Duration::from_secs(300)).is_ok();
    let fail = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answered = if fail { 500 } else { 204 };
    let _ = r.tx.send(Delivery {
        id: headers["webhook-id"].to_str().unwrap().to_owned(),
        timestamp: headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap(),
        body: serde_json::from_slice(&body).unwrap(),
        valid,
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

async fn receiver(fail_first: usize) -> (String, Arc<Receiver>, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Receiver {
        secret: std::sync::Mutex::new(None),
        fail_first: AtomicUsize::new(fail_first),
        tx,
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery in time")
        .unwrap()
}

#[tokio::test]
async fn every_event_type_is_delivered_signed() {
    let issuer = TestIssuer::start().await;
    let (url, state, mut rx) = receiver(0).await;
    let created = issuer
        .admin()
        .create_webhook(&url, &EventType::ALL)
        .await
        .unwrap();
    let secret = created.secret.expose().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(STANDARD.decode(&secret[6..]).unwrap().len(), 32);
    *state.secret.lock().unwrap() = Some(secret);

    let agent = issuer.provision("bot", &["a"]).await.unwrap();
    issuer.admin().suspend(&agent.id, "test").await.unwrap();
    let org = issuer.admin().create_organization("Acme").await.unwrap();
    let m = CreateMembership {
        member_id: agent.id.clone(),
        ..Default::default()
    };
    issuer.admin().add_member(&org.id, &m).await.unwrap();
    issuer
        .admin()
        .remove_member(&org.id, &agent.id)
        .await
        .unwrap();
    issuer
        .admin()
        .delete_verifier(&agent.id, &agent.verifier_id)
        .await
        .unwrap();
    issuer.admin().delete_agent(&agent.id).await.unwrap();

    let mut seen = HashSet::new();
    let now = unix_now();
    while seen.len() < EventType::ALL.len() {
        let d = next(&mut rx).await;
        assert!(d.valid, "{d:?}");
        assert!((d.timestamp - now).abs() < 60);
        assert!(d.id.starts_with("evt_"));
        assert_eq!(d.body["data"]["id"], d.id.as_str());
        assert_eq!(d.body["type"], d.body["data"]["type"]);
        assert!(d.body["timestamp"].as_str().unwrap().ends_with('Z'));
        seen.insert(d.body["type"].as_str().unwrap().to_owned());
    }
    let all: HashSet<String> = EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(seen, all);
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_id_until_accepted() {
    let issuer = TestIssuer::start().await;
    let (url, state, mut rx) = receiver(3).await;
    let created = issuer
        .admin()
        .create_webhook(&url, &[EventType::AgentCreated])
        .await
        .unwrap();
    *state.secret.lock().unwrap() = Some(created.secret.expose().to_owned());
    // The API call does not wait for (or fail with) the receiver.
    let agent = issuer.provision("bot", &[]).await.unwrap();
    let mut attempts: HashMap<String, Vec<u16>> = HashMap::new();
    loop {
        let d = next(&mut rx).await;
        assert!(d.valid);
        assert_eq!(d.body["data"]["agent_id"], agent.id.as_str());
        let done = d.answered == 204;
        attempts.entry(d.id).or_default().push(d.answered);
        if done {
            break;
        }
    }
    assert_eq!(attempts.len(), 1, "one message, retried: {attempts:?}");
    assert_eq!(attempts.values().next().unwrap(), &[500, 500, 500, 204]);
    // Only subscribed types are sent.
    issuer.admin().suspend(&agent.id, "x").await.unwrap();
    issuer.provision("second", &[]).await.unwrap();
    let d = next(&mut rx).await;
    assert_eq!(d.body["type"], "agent.created");
    assert_eq!(d.body["data"]["data"]["name"], "second");
}

#[tokio::test]
async fn an_unreachable_receiver_never_blocks_the_api() {
    let issuer = TestIssuer::start().await;
    // A listener that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    issuer
        .admin()
        .create_webhook(&url, &EventType::ALL)
        .await
        .unwrap();
    issuer
        .admin()
        .create_webhook("http://127.0.0.1:9/closed", &EventType::ALL)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for i in 0..5 {
        issuer.provision(&format!("bot{i}"), &[]).await.unwrap();
    }
    // A delivery to the silent listener waits out the client's 15 s timeout: the API calls
    // did not wait for it (margin for a loaded machine: they finish long before).
    assert!(started.elapsed() < Duration::from_secs(12));
    drop(silent);
}

#[tokio::test]
async fn webhook_management_validates_and_never_shows_the_secret_again() {
    let issuer = TestIssuer::start().await;
    for body in [
        json!({"url": "ftp://x/y", "events": ["agent.created"]}),
        json!({"url": "not a url", "events": ["agent.created"]}),
        json!({"url": "http://u:p@127.0.0.1/", "events": ["agent.created"]}),
        json!({"url": format!("http://127.0.0.1/{}", "a".repeat(2100)), "events": ["agent.created"]}),
        json!({"url": "http://127.0.0.1/", "events": []}),
        json!({"url": "http://127.0.0.1/", "events": ["agent.exploded"]}),
        json!({"url": "http://127.0.0.1/"}),
    ] {
        let r = admin(&issuer, Method::POST, "/v1/webhooks", Some(body.clone())).await;
        assert_eq!(r.api_error(422), "validation_error", "{body}");
    }
    let r = admin(
        &issuer,
        Method::POST,
        "/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/h", "events": ["agent.created", "agent.created"]})),
    )
    .await;
    assert_eq!(r.status, 201);
    let data = r.json()["data"].clone();
    assert_eq!(data["events"], json!(["agent.created"]));
    assert!(data["id"].as_str().unwrap().starts_with("wh_"));
    let list = admin(&issuer, Method::GET, "/v1/webhooks", None).await;
    assert!(!list.text.contains("whsec_"), "{}", list.text);
    for _ in 1..MAX_WEBHOOKS {
        issuer
            .admin()
            .create_webhook("http://127.0.0.1:9/h", &[EventType::AgentCreated])
            .await
            .unwrap();
    }
    let err = issuer
        .admin()
        .create_webhook("http://127.0.0.1:9/h", &[EventType::AgentCreated])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    let id = data["id"].as_str().unwrap();
    assert_eq!(
        admin(&issuer, Method::DELETE, &format!("/v1/webhooks/{id}"), None)
            .await
            .status,
        204
    );
    let r = admin(&issuer, Method::DELETE, &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(r.api_error(404), "not_found");
    let r = with_auth(&issuer, Method::POST, "/v1/webhooks", None).await;
    assert_eq!(r.api_error(401), "unauthorized");
}

/// An issuer with the default webhook policy (public `https` only), served on loopback.
async fn strict_issuer() -> (AdminClient, AdminKey, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let key = AdminKey::generate().unwrap();
    let issuer = Issuer::builder()
        .issuer_url(&url)
        .admin_key(key.clone())
        .build()
        .await
        .unwrap();
    tokio::spawn(issuer.serve(listener, std::future::pending()));
    (AdminClient::new(&url, key.clone()).unwrap(), key, url)
}

/// Finding 8 of the hardening review: webhook URLs could be loopback, link-local
/// (169.254.169.254), private or plain http: SSRF from the issuer's network position.
#[tokio::test]
async fn webhook_urls_to_loopback_private_link_local_or_plain_http_are_refused_at_registration() {
    let (admin, key, url) = strict_issuer().await;
    for target in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://localhost:8443/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/x",
        "https://192.168.0.10/x",
        "https://0.0.0.0/x",
        "https://[::1]/x",
        "https://[fd12::1]/x",
        "https://[fe80::1]/x",
        "https://[::ffff:169.254.169.254]/x",
    ] {
        let r = read(
            http()
                .post(format!("{url}/v1/webhooks"))
                .header("authorization", basic(key.id(), key.secret().expose()))
                .header("content-type", "application/json")
                .body(serde_json::json!({"url": target, "events": ["agent.created"]}).to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.api_error(422), "validation_error", "{target}");
    }
    assert!(
        admin.list_webhooks().await.unwrap().is_empty(),
        "nothing stored"
    );
    // A public https URL is accepted.
    admin
        .create_webhook(
            "https://hooks.example.com/agent-auth",
            &[EventType::AgentCreated],
        )
        .await
        .unwrap();
}

/// Finding 8, at delivery: the target is checked again on every attempt. A webhook stored
/// under a lenient policy (loopback over plain http), then an issuer restarted on the same
/// database with the default policy: its messages never reach the receiver, and are counted
/// as dropped.
#[tokio::test]
async fn a_delivery_never_connects_where_the_policy_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", receiver.local_addr().unwrap());
    let lenient =
        TestIssuer::start_on("127.0.0.1:0".parse().unwrap(), Database::Sqlite(db.clone())).await;
    lenient
        .admin()
        .create_webhook(&hook, &[EventType::AgentCreated])
        .await
        .unwrap();
    lenient.shutdown().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let key = AdminKey::generate().unwrap();
    let strict = Issuer::builder()
        .issuer_url(&url)
        .admin_key(key.clone())
        .database(Database::Sqlite(db))
        .build()
        .await
        .unwrap();
    tokio::spawn(strict.serve(listener, std::future::pending()));
    let admin = AdminClient::new(&url, key).unwrap();
    admin.create_agent(&CreateAgent::new("bot")).await.unwrap();
    // The delivery task takes the message at once and drops it: wait for that (hang guard).
    tokio::time::timeout(Duration::from_secs(30), async {
        while admin.list_webhooks().await.unwrap()[0].dropped_deliveries == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the refused message is dropped");
    // Nobody ever connected to the receiver.
    assert!(
        futures_util::FutureExt::now_or_never(receiver.accept()).is_none(),
        "the issuer connected to a refused target"
    );
}
