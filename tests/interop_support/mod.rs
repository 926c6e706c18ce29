//! Running third-party clients (Python, Node) against the real `agent-auth-issuer` binary and
//! `examples/mcp_server`, all on 127.0.0.1. When a tool is missing the tests print
//! `SKIPPED: …` and pass, unless `AGENT_AUTH_INTEROP_REQUIRED=1` (set by `.ci/run`): then they
//! fail.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use agent_auth::issuer::{AdminClient, AdminKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

#[path = "../binary_support/mod.rs"]
pub mod binary_support;

pub use binary_support::RunningIssuer;

/// How long a client script may run.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `Some(reason)` is a missing tool: fails the test under `AGENT_AUTH_INTEROP_REQUIRED=1`,
/// else prints `SKIPPED: reason` and tells the caller to return.
pub fn skipped(reason: Option<String>) -> bool {
    let Some(reason) = reason else {
        return false;
    };
    if std::env::var("AGENT_AUTH_INTEROP_REQUIRED").as_deref() == Ok("1") {
        panic!("AGENT_AUTH_INTEROP_REQUIRED=1 but {reason}");
    }
    println!("SKIPPED: {reason}");
    true
}

/// The built `examples/mcp_server` beside the issuer binary (`cargo test` builds examples;
/// alone: `cargo build --example mcp_server --features mcp`).
pub fn mcp_server_binary() -> Result<PathBuf, String> {
    let issuer = Path::new(binary_support::ISSUER_BIN);
    let dir = issuer.parent().ok_or("no target directory")?;
    let binary = dir.join("examples").join("mcp_server");
    match binary.is_file() {
        true => Ok(binary),
        false => Err(format!(
            "{} is not built (cargo build --example mcp_server --features mcp)",
            binary.display()
        )),
    }
}

/// A running `examples/mcp_server`.
pub struct McpServer {
    pub child: Child,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
}

impl McpServer {
    /// Starts the example against `issuer` on 127.0.0.1:0 and waits for its listening line.
    pub async fn start(binary: &Path, issuer: &str) -> Self {
        let mut child = Command::new(binary)
            .args(["--issuer", issuer, "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(binary_support::WAIT, lines.next_line())
            .await
            .expect("the MCP server starts in time")
            .unwrap()
            .expect("a listening line");
        let url = line
            .strip_prefix("MCP server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        McpServer { child, url }
    }
}

/// The issuer binary (in memory) and an admin client for it.
pub async fn issuer() -> (RunningIssuer, AdminClient) {
    let issuer = RunningIssuer::in_memory().await;
    let key = AdminKey::new(binary_support::KEY_ID, binary_support::KEY_SECRET);
    let admin = AdminClient::new(&issuer.url, key).unwrap();
    (issuer, admin)
}

/// An Ed25519 key from a 32-byte seed: the PKCS#8 PEM the clients sign with, and the public
/// JWK the issuer registers.
pub struct EdKey {
    pub pem: String,
    pub jwk: serde_json::Value,
}

impl EdKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        // RFC 8410 §7: the fixed PKCS#8 prefix of an Ed25519 private key, then the seed.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der)
        );
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(signing.verifying_key().to_bytes());
        let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x });
        EdKey { pem, jwk }
    }
}

/// What a script printed (its last stdout line, parsed) or why it failed.
pub async fn run_json(mut command: Command) -> serde_json::Value {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .expect("the client script finishes in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"))
}
