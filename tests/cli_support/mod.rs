//! Running the built `agent-auth` CLI in tests: its stdout, stderr and exit status.
#![allow(dead_code)]

use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;
use tokio::time::timeout;

use super::binary_support::{KEY_ID, KEY_SECRET, RunningIssuer, WAIT};

pub const CLI: &str = env!("CARGO_BIN_EXE_agent-auth");

/// What one run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// Success with nothing on stderr.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        self
    }

    /// Exit 1 with exactly one line on stderr, which is returned; nothing on stdout.
    pub fn refused(self) -> String {
        assert_eq!(self.code, 1, "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {self:?}");
        lines[0].to_owned()
    }

    /// The value of the `field: value` line.
    pub fn field(&self, field: &str) -> String {
        let prefix = format!("{field}: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {field}: {self:?}"))
            .to_owned()
    }
}

/// The CLI with no environment of its own.
pub fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new(CLI);
    cmd.args(args)
        .env_remove("AGENT_AUTH_ISSUER")
        .env_remove("AGENT_AUTH_ADMIN_KEY_ID")
        .env_remove("AGENT_AUTH_ADMIN_KEY_SECRET")
        .env_remove("AGENT_AUTH_CLIENT_SECRET")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

pub async fn run(mut cmd: Command) -> Run {
    let out = timeout(WAIT, cmd.output()).await.unwrap().unwrap();
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs the CLI against `issuer` with the admin key as flags.
pub async fn admin(issuer: &RunningIssuer, args: &[&str]) -> Run {
    let mut all = vec![
        "--issuer",
        issuer.url.as_str(),
        "--admin-key-id",
        KEY_ID,
        "--admin-key-secret",
        KEY_SECRET,
    ];
    all.extend_from_slice(args);
    run(cli(&all)).await
}
