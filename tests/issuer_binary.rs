//! The `agent-auth-issuer` binary: storage flags, admin key from the environment or generated,
//! serving on a bound port, graceful shutdown on SIGINT.
#![cfg(feature = "issuer")]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_agent-auth-issuer");
const WAIT: Duration = Duration::from_secs(20);

fn issuer_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("AGENT_AUTH_ADMIN_KEY_ID")
        .env_remove("AGENT_AUTH_ADMIN_KEY_SECRET")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Reads stdout lines until the "listening" line; returns (all lines, issuer URL).
async fn wait_listening(child: &mut Child) -> (Vec<String>, String) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    loop {
        let line = timeout(WAIT, lines.next_line())
            .await
            .expect("the issuer starts in time")
            .unwrap()
            .expect("stdout open until listening");
        seen.push(line.clone());
        if let Some(rest) = line.strip_prefix("agent-auth issuer ") {
            let url = rest.split(' ').next().unwrap().to_owned();
            return (seen, url);
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn interrupt_and_wait(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(ok.success());
    timeout(WAIT, child.wait())
        .await
        .expect("exits after SIGINT")
        .unwrap()
}

#[tokio::test]
async fn db_and_in_memory_together_are_refused() {
    let out = timeout(WAIT, issuer_cmd(&["--db", "x", "--in-memory"]).output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success(), "the flags are exclusive");
}

#[tokio::test]
async fn in_memory_with_env_admin_key_serves_and_shuts_down_on_ctrl_c() {
    let mut cmd = issuer_cmd(&["--in-memory", "--listen", "127.0.0.1:0"]);
    cmd.env("AGENT_AUTH_ADMIN_KEY_ID", "key_test").env(
        "AGENT_AUTH_ADMIN_KEY_SECRET",
        "s3cret-for-tests-0123456789abcdef",
    );
    let mut child = cmd.spawn().unwrap();
    let (lines, url) = wait_listening(&mut child).await;
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("s3cret-for-tests-0123456789abcdef")),
        "env secret never printed"
    );
    assert!(!lines.iter().any(|l| l.contains("Generated admin key")));

    let r = http()
        .get(format!("{url}/v1/agents"))
        .basic_auth("key_test", Some("s3cret-for-tests-0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .get(format!("{url}/v1/agents"))
        .basic_auth("key_test", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let meta: serde_json::Value = serde_json::from_str(
        &http()
            .get(format!("{url}/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        meta["issuer"],
        url.as_str(),
        "default issuer URL uses the bound port"
    );

    let status = interrupt_and_wait(child).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn without_env_key_a_generated_key_is_printed_once_and_works() {
    let mut child = issuer_cmd(&[
        "--in-memory",
        "--listen",
        "127.0.0.1:0",
        "--issuer-url",
        "https://issuer.example.test",
    ])
    .spawn()
    .unwrap();
    let (lines, url) = wait_listening(&mut child).await;
    assert_eq!(url, "https://issuer.example.test");
    let find = |prefix: &str| {
        let found: Vec<&String> = lines.iter().filter(|l| l.contains(prefix)).collect();
        assert_eq!(found.len(), 1, "{prefix} printed once: {lines:?}");
        found[0].split_once('=').unwrap().1.to_owned()
    };
    let id = find("AGENT_AUTH_ADMIN_KEY_ID=");
    let secret = find("AGENT_AUTH_ADMIN_KEY_SECRET=");
    assert!(id.starts_with("key_"));
    assert_eq!(secret.len(), 42);
    // The listening line names the bound address.
    let addr = lines.last().unwrap().rsplit(' ').next().unwrap().to_owned();
    let r = http()
        .get(format!("http://{addr}/v1/events"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status = interrupt_and_wait(child).await;
    assert!(status.success(), "{status:?}");
}

/// One lifecycle against the real binary, whatever its storage flags: create, secret, token
/// (verified by the middleware against the binary's JWKS), suspension refusing tokens,
/// reactivation, self-service, key rotation, deletion refusing tokens, the audit trail, and
/// the counters. Both storage modes run this same function.
async fn lifecycle_on_the_binary(storage: &[&str]) {
    use agent_auth::AgentAuth;
    use agent_auth::issuer::{AdminClient, AdminKey, CreateAgent, EventQuery, EventType};

    const API: &str = "https://api.example.com";
    let (key_id, key_secret) = ("key_lifecycle", "lifecycle-secret-0123456789abcdef01");
    let mut args = storage.to_vec();
    args.extend(["--listen", "127.0.0.1:0"]);
    let mut cmd = issuer_cmd(&args);
    cmd.env("AGENT_AUTH_ADMIN_KEY_ID", key_id)
        .env("AGENT_AUTH_ADMIN_KEY_SECRET", key_secret);
    let mut child = cmd.spawn().unwrap();
    let (_, url) = wait_listening(&mut child).await;
    let admin = AdminClient::new(&url, AdminKey::new(key_id, key_secret)).unwrap();

    let agent = admin
        .create_agent(&CreateAgent::new("lifecycle bot").scopes(["tickets:read"]))
        .await
        .unwrap()
        .data;
    let secret = admin
        .add_secret(&agent.id, Some("primary"))
        .await
        .unwrap()
        .secret;
    let token = admin
        .token(&agent.id, secret.expose(), None, Some(API))
        .await
        .unwrap();
    let auth = AgentAuth::new(&url).audience(API).build().unwrap();
    let verified = auth
        .verify(token.access_token.expose())
        .await
        .expect("the binary's token verifies against its JWKS");
    assert_eq!(verified.id(), agent.id);

    admin.suspend(&agent.id, "lifecycle test").await.unwrap();
    let refused = admin.token(&agent.id, secret.expose(), None, None).await;
    assert_eq!(refused.unwrap_err().code(), Some("invalid_client"));
    admin.reactivate(&agent.id).await.unwrap();

    let own = admin
        .token(&agent.id, secret.expose(), None, Some(&url))
        .await
        .unwrap();
    let usage = admin.as_agent(own.access_token).usage().await.unwrap();
    assert_eq!(usage.agent_id, agent.id);

    let rotated = admin.rotate_signing_key().await.unwrap();
    assert!(rotated.published.len() >= 2, "the old key stays published");

    admin.delete_agent(&agent.id).await.unwrap();
    let gone = admin.token(&agent.id, secret.expose(), None, None).await;
    assert_eq!(gone.unwrap_err().code(), Some("invalid_client"));

    let events = admin
        .events(&EventQuery {
            agent_id: Some(agent.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    let kinds: Vec<EventType> = events.iter().rev().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventType::AgentCreated,
            EventType::VerifierAdded,
            EventType::AgentUpdated,
            EventType::AgentUpdated,
            EventType::AgentDeleted,
        ]
    );
    // The deleted agent's record in its last event carries the exact counters: two tokens
    // were issued (the suspended and the deleted attempts were not).
    assert_eq!(events[0].data["token_count"], 2);
    assert!(interrupt_and_wait(child).await.success());
}

#[tokio::test]
async fn the_lifecycle_holds_in_memory() {
    lifecycle_on_the_binary(&["--in-memory"]).await;
}

#[tokio::test]
async fn the_lifecycle_holds_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    lifecycle_on_the_binary(&["--db", db.to_str().unwrap()]).await;
    assert!(db.exists(), "the state is in the file");
}

/// Finding 9 of the hardening review: a one-character admin secret was accepted.
#[tokio::test]
async fn an_admin_secret_shorter_than_32_characters_refuses_to_start_with_exit_2() {
    for secret in ["x", "0123456789abcdef0123456789abcde"] {
        let out = timeout(
            WAIT,
            issuer_cmd(&["--in-memory", "--listen", "127.0.0.1:0"])
                .env("AGENT_AUTH_ADMIN_KEY_ID", "key_test")
                .env("AGENT_AUTH_ADMIN_KEY_SECRET", secret)
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(out.status.code(), Some(2), "{secret:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            lines,
            ["error: invalid admin key: the secret must be at least 32 characters"],
            "{stderr}"
        );
        assert!(
            !stderr.contains(secret) || secret.len() == 1,
            "the secret is not echoed"
        );
        assert!(out.stdout.is_empty(), "it never listened");
    }
}
