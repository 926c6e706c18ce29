//! Several issuer replicas on one PostgreSQL database behave as one issuer (DESIGN §7): a
//! throwaway PostgreSQL from the system's packages, replicas in process (an injected clock) and
//! as the real binary (killed with SIGKILL), a webhook receiver on 127.0.0.1.
//!
//! Without PostgreSQL installed each test prints `SKIPPED: PostgreSQL not installed` and
//! returns, unless `AGENT_AUTH_REQUIRE_POSTGRES=1` (CI), where it fails.

mod binary_support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_auth::issuer::{
    AdminClient, AdminKey, ClientError, Clock, CreateAgent, DELIVERY_LEASE_MS, Database, EventType,
    Issuer, KeyEncryptionKey, OffsetClock, POSTGRES_SKIPPED, RetryPolicy, TestPostgres,
    WebhookPolicy,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use binary_support::{ISSUER_BIN, RunningIssuer, WAIT};
use tokio::sync::{Notify, oneshot};

/// What every replica shares: the issuer URL, the admin key, the key-encryption key.
const ISSUER_URL: &str = "https://issuer.replicas.test";

struct Shared {
    db: String,
    kek: [u8; 32],
    admin: AdminKey,
}

async fn postgres() -> Option<(TestPostgres, Shared)> {
    let Some(pg) = TestPostgres::start().await.expect("PostgreSQL starts") else {
        println!("{POSTGRES_SKIPPED}");
        return None;
    };
    let db = pg.create_database().await.unwrap();
    let mut kek = [0u8; 32];
    aws_lc_rs::rand::fill(&mut kek).unwrap();
    let shared = Shared {
        db,
        kek,
        admin: AdminKey::generate().unwrap(),
    };
    Some((pg, shared))
}

/// A replica in this process, on its own port and clock.
struct Replica {
    issuer: Issuer,
    admin: AdminClient,
    clock: Arc<OffsetClock>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Replica {
    async fn start(s: &Shared) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clock = Arc::new(OffsetClock::new());
        let issuer = Issuer::builder()
            .issuer_url(ISSUER_URL)
            .admin_key(s.admin.clone())
            .database(Database::Postgres(s.db.clone()))
            .key_encryption_key(KeyEncryptionKey::from_bytes(&s.kek).unwrap())
            .clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .key_publish_delay(Duration::from_secs(10))
            .webhook_policy(WebhookPolicy {
                allow_insecure: true,
                allow_private: true,
            })
            .webhook_retry(RetryPolicy {
                base: Duration::from_millis(50),
                max: Duration::from_secs(1),
            })
            .build()
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(issuer.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        let admin = AdminClient::new(&format!("http://{addr}"), s.admin.clone()).unwrap();
        Self {
            issuer,
            admin,
            clock,
            addr,
            stop: Some(stop),
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The public keys a replica publishes: kid → raw Ed25519 key.
async fn jwks(base: &str) -> HashMap<String, Vec<u8>> {
    let bytes = reqwest::get(format!("{base}/jwks.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let x = URL_SAFE_NO_PAD.decode(k["x"].as_str().unwrap()).unwrap();
            (k["kid"].as_str().unwrap().to_owned(), x)
        })
        .collect()
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Whether `token`'s signature verifies with the key of its `kid` in `keys`.
fn verifies(token: &str, keys: &HashMap<String, Vec<u8>>) -> bool {
    let Some(x) = keys.get(&kid_of(token)) else {
        return false;
    };
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, x)
        .verify(signed.as_bytes(), &sig)
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behave_as_one_issuer() {
    let Some((_pg, s)) = postgres().await else {
        return;
    };
    let a = Replica::start(&s).await;
    let b = Replica::start(&s).await;
    // One signing key, whichever started first.
    assert_eq!(a.issuer.signing_kid(), b.issuer.signing_kid());

    let agent = a
        .admin
        .create_agent(&CreateAgent::new("shared").scopes(["read"]))
        .await
        .unwrap()
        .data;
    let secret = b.admin.add_secret(&agent.id, Some("s")).await.unwrap();
    let secret = secret.secret.expose().to_owned();

    // Concurrent tokens from both replicas, and management writes through both meanwhile.
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 25;
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let admin = if w % 2 == 0 { &a.admin } else { &b.admin }.clone();
        let (id, secret) = (agent.id.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            for _ in 0..PER_WORKER {
                tokens.push(
                    admin
                        .token(&id, &secret, None, None)
                        .await
                        .unwrap()
                        .access_token,
                );
            }
            tokens
        }));
        let admin = if w % 2 == 0 { &b.admin } else { &a.admin }.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let created = admin
                    .create_agent(&CreateAgent::new(format!("w{w}-{i}")))
                    .await
                    .unwrap()
                    .data;
                admin.suspend(&created.id, "load").await.unwrap();
            }
            Vec::new()
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.extend(t.await.unwrap());
    }
    assert_eq!(tokens.len(), WORKERS * PER_WORKER);

    // Every token verifies on both replicas' JWKS.
    let (keys_a, keys_b) = (jwks(&a.base()).await, jwks(&b.base()).await);
    for t in &tokens {
        assert!(verifies(t.expose(), &keys_a) && verifies(t.expose(), &keys_b));
    }

    // Counters exact across replicas once both flushed.
    a.issuer.flush().await.unwrap();
    b.issuer.flush().await.unwrap();
    for r in [&a, &b] {
        let got = r.admin.get_agent(&agent.id).await.unwrap();
        assert_eq!(got.token_count, (WORKERS * PER_WORKER) as u64);
        let verifiers = r.admin.list_verifiers(&agent.id).await.unwrap();
        assert_eq!(verifiers[0].usage_count, (WORKERS * PER_WORKER) as u64);
    }
    // The management writes of both replicas are all there, once each.
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = a
            .admin
            .list_agents(Some(100), cursor.as_deref())
            .await
            .unwrap();
        all.extend(page.data);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(all.len(), 1 + WORKERS * 5);

    // A suspension through one replica refuses at the other, at the next token request.
    b.admin.suspend(&agent.id, "compromised").await.unwrap();
    match a.admin.token(&agent.id, &secret, None, None).await {
        Err(ClientError::OAuth { status, error, .. }) => {
            assert_eq!((status, error.as_str()), (401, "invalid_client"));
        }
        other => panic!("a suspended agent got {other:?}"),
    }
    b.admin.reactivate(&agent.id).await.unwrap();
    a.admin.token(&agent.id, &secret, None, None).await.unwrap();
    // A removed secret too.
    let vid = b.admin.list_verifiers(&agent.id).await.unwrap()[0]
        .id
        .clone();
    b.admin.delete_verifier(&agent.id, &vid).await.unwrap();
    assert!(matches!(
        a.admin.token(&agent.id, &secret, None, None).await,
        Err(ClientError::OAuth { status: 401, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once_and_agree_on_one_signing_key() {
    let Some((_pg, s)) = postgres().await else {
        return;
    };
    let starts = (0..4).map(|_| Replica::start(&s));
    let replicas = futures_util::future::join_all(starts).await;
    let kid = replicas[0].issuer.signing_kid();
    assert!(replicas.iter().all(|r| r.issuer.signing_kid() == kid));
    let (client, conn) = tokio_postgres::connect(&s.db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let keys = client
        .query("SELECT count(*) FROM signing_keys", &[])
        .await
        .unwrap();
    assert_eq!(keys[0].get::<_, i64>(0), 1);
    let version = client
        .query("SELECT version FROM agent_auth_schema", &[])
        .await
        .unwrap();
    assert_eq!(version.len(), 1, "one schema version row");
    // A database written by a newer issuer is refused, not downgraded.
    client
        .execute("UPDATE agent_auth_schema SET version = version + 1", &[])
        .await
        .unwrap();
    let newer = Issuer::builder()
        .issuer_url(ISSUER_URL)
        .admin_key(s.admin.clone())
        .database(Database::Postgres(s.db.clone()))
        .key_encryption_key(KeyEncryptionKey::from_bytes(&s.kek).unwrap())
        .build()
        .await;
    assert!(matches!(
        newer,
        Err(agent_auth::issuer::IssuerError::Storage(
            agent_auth::issuer::StorageError::SchemaTooNew { .. }
        ))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_published_by_every_replica_before_either_signs_with_it() {
    let Some((_pg, s)) = postgres().await else {
        return;
    };
    let a = Replica::start(&s).await;
    let b = Replica::start(&s).await;
    let agent = a
        .admin
        .create_agent(&CreateAgent::new("r"))
        .await
        .unwrap()
        .data;
    let secret = a.admin.add_secret(&agent.id, None).await.unwrap().secret;
    let old = a.issuer.signing_kid();

    let rotated = a.admin.rotate_signing_key().await.unwrap();
    let new = rotated.kid.clone();
    assert_ne!(new, old);
    assert!(jwks(&a.base()).await.contains_key(&new));
    // B rereads the keys at its next flush (every second in the background; here at once).
    b.issuer.flush().await.unwrap();
    assert!(jwks(&b.base()).await.contains_key(&new));
    // Both publish it; neither signs with it yet.
    for r in [&a, &b] {
        let t = r
            .admin
            .token(&agent.id, secret.expose(), None, None)
            .await
            .unwrap();
        assert_eq!(kid_of(t.access_token.expose()), old);
    }
    // Once the publish delay has passed on their clocks, both sign with it; the old key
    // stays published (its tokens are still valid).
    for r in [&a, &b] {
        r.clock.advance(Duration::from_secs(11));
        let t = r
            .admin
            .token(&agent.id, secret.expose(), None, None)
            .await
            .unwrap();
        assert_eq!(kid_of(t.access_token.expose()), new);
        for other in [&a, &b] {
            let keys = jwks(&other.base()).await;
            assert!(verifies(t.access_token.expose(), &keys));
            assert!(keys.contains_key(&old));
        }
    }
}

/// A webhook receiver: requests that arrive while it is closed hang (and are never answered);
/// once open, each is recorded (its `webhook-id` and body) and answered 200.
#[derive(Default)]
struct Receiver {
    open: std::sync::atomic::AtomicBool,
    got: Mutex<Vec<(String, serde_json::Value)>>,
    arrived: Notify,
    hung: std::sync::atomic::AtomicUsize,
}

async fn receiver() -> (Arc<Receiver>, String) {
    use axum::routing::post;
    let state = Arc::new(Receiver::default());
    let st = Arc::clone(&state);
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let st = Arc::clone(&st);
            async move {
                use std::sync::atomic::Ordering;
                if !st.open.load(Ordering::SeqCst) {
                    st.hung.fetch_add(1, Ordering::SeqCst);
                    st.arrived.notify_waiters();
                    std::future::pending::<()>().await;
                }
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                st.got
                    .lock()
                    .unwrap()
                    .push((id, serde_json::from_str(&body).unwrap()));
                st.arrived.notify_waiters();
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_nothing_acknowledged_and_another_delivers_its_webhooks() {
    let Some((_pg, s)) = postgres().await else {
        return;
    };
    let (hooks, hook_url) = receiver().await;

    // Replica A: the real binary, counters written through.
    let mut cmd = tokio::process::Command::new(ISSUER_BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--issuer-url", ISSUER_URL])
        .args(["--db", &s.db, "--durable-counters"])
        .args(["--allow-insecure-webhooks", "--allow-private-webhooks"])
        .env("AGENT_AUTH_ADMIN_KEY_ID", s.admin.id())
        .env("AGENT_AUTH_ADMIN_KEY_SECRET", s.admin.secret().expose())
        .env("AGENT_AUTH_KEY_ENCRYPTION_KEY", STANDARD.encode(s.kek))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut a = RunningIssuer::spawn(cmd).await;
    // The issuer URL is shared; this replica's own address is the one it listens on.
    let a_addr = a
        .lines
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let a_admin = AdminClient::new(&format!("http://{a_addr}"), s.admin.clone()).unwrap();
    a_admin
        .create_webhook(&hook_url, &[EventType::AgentCreated])
        .await
        .unwrap();
    let agent = a_admin
        .create_agent(&CreateAgent::new("burst"))
        .await
        .unwrap()
        .data;
    let secret = a_admin.add_secret(&agent.id, None).await.unwrap().secret;
    let secret = secret.expose().to_owned();

    // A burst of agent creations and tokens through A; A is killed in the middle of it.
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let issued = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let admin = a_admin.clone();
        let (created, issued, sent) =
            (Arc::clone(&created), Arc::clone(&issued), Arc::clone(&sent));
        let (id, secret) = (agent.id.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering;
            for i in 0..200 {
                if w % 2 == 0 {
                    match admin
                        .create_agent(&CreateAgent::new(format!("b{w}-{i}")))
                        .await
                    {
                        Ok(c) => created.lock().unwrap().push(c.data.id),
                        Err(_) => return,
                    }
                } else {
                    sent.fetch_add(1, Ordering::SeqCst);
                    match admin.token(&id, &secret, None, None).await {
                        Ok(_) => issued.fetch_add(1, Ordering::SeqCst),
                        Err(_) => return,
                    };
                }
            }
        }));
    }
    // Kill A once it holds webhook deliveries in flight (leased, the receiver not answering)
    // and has acknowledged some of the burst.
    loop {
        let arrived = hooks.arrived.notified();
        if hooks.hung.load(std::sync::atomic::Ordering::SeqCst) > 0
            && created.lock().unwrap().len() >= 20
        {
            break;
        }
        tokio::time::timeout(WAIT, arrived)
            .await
            .expect("A delivers");
    }
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let created = created.lock().unwrap().clone();
    let issued = issued.load(std::sync::atomic::Ordering::SeqCst);
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);

    // Replica B takes over; the receiver answers from now on.
    hooks.open.store(true, std::sync::atomic::Ordering::SeqCst);
    let b = Replica::start(&s).await;
    // Nothing A acknowledged is lost: every agent it created, every token it counted.
    for id in &created {
        b.admin.get_agent(id).await.unwrap();
    }
    let count = b.admin.get_agent(&agent.id).await.unwrap().token_count;
    assert!(
        count >= issued && count <= sent,
        "{issued} acknowledged, {sent} sent, {count} counted"
    );
    // The messages A held are leased to it: B sends them once the lease has run out on its
    // clock, and those A never held at once.
    b.clock.advance(Duration::from_millis(
        u64::try_from(DELIVERY_LEASE_MS).unwrap() + 1_000,
    ));
    let want: HashSet<String> = created.iter().cloned().chain([agent.id.clone()]).collect();
    let delivered = || -> HashSet<String> {
        hooks
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body["data"]["agent_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !want.is_subset(&delivered()) {
        let arrived = hooks.arrived.notified();
        // A write through B wakes its delivery task (else it looks again within 5 s).
        b.admin.create_organization("wake").await.unwrap();
        assert!(
            tokio::time::timeout_at(deadline, arrived).await.is_ok(),
            "B delivered {} of {} agent.created events",
            want.intersection(&delivered()).count(),
            want.len()
        );
    }
    // One delivery per webhook-id: the receiver answered each.
    let got = hooks.got.lock().unwrap();
    let ids: HashSet<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "a message was delivered twice");
}
