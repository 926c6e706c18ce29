//! Starting the real `agent-auth-issuer` binary in tests (port 0, loopback) and reading what
//! it prints.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

pub const ISSUER_BIN: &str = env!("CARGO_BIN_EXE_agent-auth-issuer");
pub const WAIT: Duration = Duration::from_secs(20);

pub const KEY_ID: &str = "key_cli_tests";
pub const KEY_SECRET: &str = "cli-tests-secret-0123456789abcdef012";

/// The issuer binary with a clean environment for its admin key.
pub fn issuer_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(ISSUER_BIN);
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

/// A running issuer binary.
pub struct RunningIssuer {
    pub child: Child,
    pub url: String,
    /// Its stdout lines up to and including the "listening" line.
    pub lines: Vec<String>,
}

impl RunningIssuer {
    /// Starts `cmd` and waits for its "listening" line.
    pub async fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout).lines();
        let mut lines = Vec::new();
        loop {
            let line = timeout(WAIT, reader.next_line())
                .await
                .expect("the issuer starts in time")
                .unwrap()
                .expect("stdout open until listening");
            lines.push(line.clone());
            if let Some(rest) = line.strip_prefix("agent-auth issuer ") {
                let url = rest.split(' ').next().unwrap().to_owned();
                return Self { child, url, lines };
            }
        }
    }

    /// In memory, with the tests' admin key from the environment.
    pub async fn in_memory() -> Self {
        let mut cmd = issuer_cmd(&["--in-memory", "--listen", "127.0.0.1:0"]);
        cmd.env("AGENT_AUTH_ADMIN_KEY_ID", KEY_ID)
            .env("AGENT_AUTH_ADMIN_KEY_SECRET", KEY_SECRET);
        Self::spawn(cmd).await
    }

    /// On the SQLite file `db`, with the key kept there.
    pub async fn on_file(db: &Path) -> Self {
        Self::spawn(issuer_cmd(&[
            "--db",
            db.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]))
        .await
    }

    /// The value of the printed `NAME=value` line, if printed.
    pub fn printed(&self, name: &str) -> Option<String> {
        printed(&self.lines, name)
    }

    /// SIGINT, then waits for the exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        let status = timeout(WAIT, self.child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// The value of the line `NAME=value` among `lines` (asserting it appears at most once).
pub fn printed(lines: &[String], name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(&prefix)).collect();
    assert!(found.len() <= 1, "{name} printed more than once: {lines:?}");
    found.first().map(|l| l[prefix.len()..].to_owned())
}

/// `GET {url}/v1/agents` with this admin key: the status.
pub async fn admin_status(url: &str, id: &str, secret: &str) -> u16 {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{url}/v1/agents"))
        .basic_auth(id, Some(secret))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
