//! The SQLite store: state and signing keys survive a restart (in-process, on the same file
//! and address), the file is private, and a SIGKILLed binary loses no acknowledged write.
#![cfg(feature = "issuer")]

mod issuer_support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use agent_auth::AgentAuth;
use agent_auth::issuer::{
    AdminKey, CreateAgent, CreateMembership, Database, EventQuery, EventType, Issuer, IssuerError,
    TestIssuer,
};
use issuer_support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::timeout;

const API: &str = "https://api.example.com";

fn sqlite(path: &std::path::Path) -> Database {
    Database::Sqlite(path.to_path_buf())
}

/// Opens the database at `path` the way the issuer does (creating, tightening, migrating it).
async fn open(path: &std::path::Path) -> Result<Issuer, IssuerError> {
    Issuer::builder()
        .issuer_url("http://127.0.0.1:9")
        .admin_key(AdminKey::new("admin", "admin-secret-0123456789abcdef0123"))
        .database(sqlite(path))
        .build()
        .await
}

#[tokio::test]
async fn state_and_signing_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    let issuer = TestIssuer::start_on("127.0.0.1:0".parse().unwrap(), sqlite(&db)).await;
    let addr = issuer.addr();
    let agent = issuer.provision("bot", &["tickets:read"]).await.unwrap();
    let org = issuer.admin().create_organization("Acme").await.unwrap();
    issuer
        .admin()
        .add_member(
            &org.id,
            &CreateMembership {
                member_id: agent.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let hook = issuer
        .admin()
        .create_webhook("http://127.0.0.1:9/hook", &[EventType::AgentUpdated])
        .await
        .unwrap();
    let rotated = issuer.admin().rotate_signing_key().await.unwrap();
    let token = issuer.token(&agent, None, Some(API)).await.unwrap();
    let kid = issuer.issuer().signing_kid();
    let events_before = issuer.admin().events(&EventQuery::default()).await.unwrap();
    issuer
        .admin()
        .suspend(&agent.id, "queued for the webhook")
        .await
        .unwrap();
    issuer.admin().reactivate(&agent.id).await.unwrap();
    issuer.shutdown().await;

    let issuer = TestIssuer::start_on(addr, sqlite(&db)).await;
    assert_eq!(issuer.url(), format!("http://{addr}"));
    // Keys: the same key signs, the rotated-in key is still only published, and it signs
    // from the same moment as before the restart.
    assert_eq!(issuer.issuer().signing_kid(), kid);
    assert_ne!(kid, rotated.kid);
    let jwks = read(http().get(issuer.jwks_uri()).send().await.unwrap())
        .await
        .json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks["keys"][1]["kid"], rotated.kid.as_str());
    // The token minted before the restart verifies after it, with the middleware.
    let auth = AgentAuth::new(&issuer).audience(API).build().unwrap();
    assert_eq!(
        auth.verify(token.access_token.expose()).await.unwrap().id(),
        agent.id
    );
    // Agents (with counters flushed at shutdown), verifiers, memberships, events, webhooks.
    let a = issuer.admin().get_agent(&agent.id).await.unwrap();
    assert_eq!(a.token_count, 1);
    let v = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].usage_count, 1);
    let members = issuer
        .admin()
        .list_members(&org.id, None, None)
        .await
        .unwrap();
    assert_eq!(members.data.len(), 1);
    let events = issuer.admin().events(&EventQuery::default()).await.unwrap();
    assert_eq!(events.data.len(), events_before.data.len() + 2);
    assert_eq!(&events.data[2..], &events_before.data[..]);
    let hooks = issuer.admin().list_webhooks().await.unwrap();
    assert_eq!(hooks, [hook.webhook]);
    // The secret still works.
    assert_eq!(
        token_post(&issuer, &agent.id, agent.secret.expose(), &[])
            .await
            .status,
        200
    );
    // Once its delay has passed, the rotated-in key signs.
    issuer.advance_clock(Duration::from_millis(
        u64::try_from(rotated.signs_from - issuer.now_ms()).unwrap() + 1,
    ));
    assert_eq!(issuer.issuer().signing_kid(), rotated.kid);
    issuer.shutdown().await;

    // The webhook queue survived too (two agent.updated messages for the unreachable URL).
    let conn = rusqlite::Connection::open(&db).unwrap();
    let queued: Vec<String> = conn
        .prepare("SELECT webhook_id FROM deliveries")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|id| *id == hooks[0].id));
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    let issuer = TestIssuer::start_on("127.0.0.1:0".parse().unwrap(), sqlite(&db)).await;
    issuer.provision("bot", &[]).await.unwrap();
    for name in ["issuer.db", "issuer.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
    // An existing, too-open file is tightened.
    issuer.shutdown().await;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    open(&db).await.unwrap();
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    open(&db).await.unwrap();
    let conn = rusqlite_free_set_version(&db);
    assert!(conn);
    let err = open(&db).await.unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

/// Sets `user_version` to 999 with the sqlite3 file format only (no SQL client in the tests):
/// the header field at offset 60 is the big-endian user version.
fn rusqlite_free_set_version(db: &std::path::Path) -> bool {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    f.seek(SeekFrom::Start(60)).unwrap();
    f.write_all(&999u32.to_be_bytes()).unwrap();
    true
}

const BIN: &str = env!("CARGO_BIN_EXE_agent-auth-issuer");

async fn spawn_binary(db: &std::path::Path, listen: &str) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(BIN)
        .args(["--db", db.to_str().unwrap(), "--listen", listen])
        .env("AGENT_AUTH_ADMIN_KEY_ID", "key_test")
        .env(
            "AGENT_AUTH_ADMIN_KEY_SECRET",
            "s3cret-for-tests-0123456789abcdef",
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("listening line");
        if let Some(rest) = line.strip_prefix("agent-auth issuer ") {
            let url = rest.split(' ').next().unwrap().to_owned();
            return (child, url);
        }
    }
}

#[tokio::test]
async fn sigkill_during_a_burst_of_writes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    let (mut child, url) = spawn_binary(&db, "127.0.0.1:0").await;
    let addr: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    let key = agent_auth::issuer::AdminKey::new("key_test", "s3cret-for-tests-0123456789abcdef");
    let client = agent_auth::issuer::AdminClient::new(&url, key.clone()).unwrap();

    // Writers create agents as fast as they can, recording every acknowledged id.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, tx) = (client.clone(), tx.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                match client
                    .create_agent(&CreateAgent::new(format!("w{w}-{i}")))
                    .await
                {
                    Ok(created) => {
                        if tx.send(created.data.id).is_err() {
                            return;
                        }
                    }
                    Err(_) => return, // the process is gone
                }
            }
        }));
    }
    drop(tx);
    // Kill once at least 40 writes were acknowledged, in the middle of the burst.
    let mut acked = Vec::new();
    while acked.len() < 40 {
        acked.push(rx.recv().await.unwrap());
    }
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    child.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    while let Ok(id) = rx.try_recv() {
        acked.push(id);
    }

    let (_child, url2) = spawn_binary(&db, &addr.to_string()).await;
    assert_eq!(url2, url);
    let client = agent_auth::issuer::AdminClient::new(&url2, key).unwrap();
    for id in &acked {
        client
            .get_agent(id)
            .await
            .unwrap_or_else(|e| panic!("{id} lost: {e}"));
    }
    // Every acknowledged creation also has its event.
    let mut events = 0;
    let mut cursor = None;
    loop {
        let page = client
            .events(&EventQuery {
                kind: Some(EventType::AgentCreated),
                limit: Some(100),
                cursor,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        events += page.data.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert!(
        events >= acked.len(),
        "{events} events for {} agents",
        acked.len()
    );
}

#[tokio::test]
async fn queued_webhook_messages_are_delivered_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    // A port with nobody listening yet.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = probe.local_addr().unwrap();
    drop(probe);
    let issuer = TestIssuer::start_on("127.0.0.1:0".parse().unwrap(), sqlite(&db)).await;
    let addr = issuer.addr();
    issuer
        .admin()
        .create_webhook(&format!("http://{hook_addr}/h"), &[EventType::AgentCreated])
        .await
        .unwrap();
    let agent = issuer.provision("bot", &[]).await.unwrap();
    issuer.shutdown().await;

    // The receiver comes up, then the issuer restarts on the same file.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/h",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(String::from_utf8(body.to_vec()).unwrap());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(hook_addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let issuer = TestIssuer::start_on(addr, sqlite(&db)).await;
    let body = timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["type"], "agent.created");
    assert_eq!(body["data"]["agent_id"], agent.id.as_str());
    issuer.shutdown().await;
}
