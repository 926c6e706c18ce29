//! `agent-auth`: the operator's command line over an issuer's management API (feature `cli`).
//!
//! ```text
//! agent-auth [--issuer URL] [--admin-key-id ID] [--admin-key-secret S] [--json] <command>
//! ```
//!
//! The global flags (also `AGENT_AUTH_ISSUER`, `AGENT_AUTH_ADMIN_KEY_ID`,
//! `AGENT_AUTH_ADMIN_KEY_SECRET`) go before or after the command. Exit status: 0 on success; 1
//! when the issuer refuses (its error code and message on stderr) or cannot be reached; 2 on a
//! usage error. Every failure is one line on stderr. A secret is printed only by the command
//! that created it (`secrets add`), and a token only by `token`.

mod args;
mod commands;
mod output;

use std::process::ExitCode;

use agent_auth::client::{BuildError, ManagementError, TokenError};
use clap::{CommandFactory, Parser};

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The command line is incomplete or invalid (exit 2).
    Usage(String),
    /// A management call failed (exit 1).
    Management(ManagementError),
    /// The token request failed (exit 1).
    Token(TokenError),
}

impl From<ManagementError> for Failure {
    fn from(e: ManagementError) -> Self {
        match e {
            ManagementError::InvalidUrl => Self::Usage("--issuer is not an http(s) URL".into()),
            ManagementError::InvalidKey => {
                Self::Usage("the admin key cannot be sent in a header".into())
            }
            e => Self::Management(e),
        }
    }
}

impl From<TokenError> for Failure {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

impl From<BuildError> for Failure {
    fn from(e: BuildError) -> Self {
        Self::Usage(e.to_string())
    }
}

/// `e: cause: cause…` on one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line.replace(['\n', '\r'], " ")
}

fn one_line(failure: &Failure, issuer: &str) -> String {
    match failure {
        Failure::Usage(message) => message.clone(),
        Failure::Management(ManagementError::Api { code, message, .. }) => {
            format!("{code}: {message}")
        }
        Failure::Management(ManagementError::Transport(e)) => {
            format!("cannot reach the issuer at {issuer}: {}", with_causes(e))
        }
        Failure::Management(ManagementError::Timeout) => {
            format!("the issuer at {issuer} did not answer in time")
        }
        Failure::Management(e) => with_causes(e),
        Failure::Token(TokenError::InvalidClient { description }) => {
            format!("invalid_client: {description}")
        }
        Failure::Token(TokenError::Refused { code, description }) => {
            format!("{code}: {description}")
        }
        Failure::Token(TokenError::Unavailable { last, .. }) => {
            format!("cannot reach the issuer at {issuer}: {}", with_causes(last))
        }
        Failure::Token(e) => with_causes(e),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let issuer = cli.global.issuer.clone().unwrap_or_default();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            // clap's own usage error: "error: …", the usage line, exit 2.
            args::Cli::command()
                .error(clap::error::ErrorKind::MissingRequiredArgument, message)
                .exit()
        }
        Err(failure) => {
            eprintln!("error: {}", one_line(&failure, &issuer));
            ExitCode::FAILURE
        }
    }
}
