//! The command line: global flags (before or after the command) and every command.

use clap::{Args, Parser, Subcommand};

/// Operate an agent-auth issuer over its management API.
///
/// Exit status: 0 on success, 1 when the issuer refuses or cannot be reached (one line on
/// stderr), 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "agent-auth", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The issuer URL.
    #[arg(long, env = "AGENT_AUTH_ISSUER", global = true, value_name = "URL")]
    pub issuer: Option<String>,
    /// The admin key id.
    #[arg(
        long,
        env = "AGENT_AUTH_ADMIN_KEY_ID",
        global = true,
        value_name = "ID"
    )]
    pub admin_key_id: Option<String>,
    /// The admin key secret.
    #[arg(
        long,
        env = "AGENT_AUTH_ADMIN_KEY_SECRET",
        global = true,
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub admin_key_secret: Option<String>,
    /// Print the API's `data` as one JSON document.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, show, suspend, reactivate and delete agents.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Add, list and remove an agent's secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Get an access token with an agent's id and secret (client_credentials).
    Token {
        /// The agent id.
        #[arg(long, value_name = "ID")]
        client_id: String,
        /// The agent's secret.
        #[arg(
            long,
            env = "AGENT_AUTH_CLIENT_SECRET",
            hide_env_values = true,
            value_name = "S"
        )]
        client_secret: String,
        /// A scope to ask for (repeatable; none: all of the agent's).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// The resource (RFC 8707) the token is for: its `aud`.
        #[arg(long, value_name = "URI")]
        resource: Option<String>,
    },
    /// Show the audit log, newest first.
    Events {
        /// Only events of this type (e.g. agent.created).
        #[arg(long = "type", value_name = "T")]
        kind: Option<String>,
        /// Only events about this agent.
        #[arg(long = "agent", value_name = "ID")]
        agent: Option<String>,
        /// At most this many events (1..=100).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=100))]
        limit: u16,
    },
    /// Wallet verifiers: register a blockchain account, find the agent holding one.
    #[command(subcommand)]
    Wallets(WalletsCommand),
    /// Rotate the issuer's signing key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create organizations and add agents to them.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Create an agent (with an existing --external-id: report that agent, unchanged).
    Create {
        /// Its name.
        #[arg(long, value_name = "N")]
        name: String,
        /// A scope it may hold (repeatable).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// Your key for it, for idempotent provisioning.
        #[arg(long, value_name = "X")]
        external_id: Option<String>,
        /// Its lifetime in seconds.
        #[arg(long, value_name = "SECS")]
        expires_in: Option<u64>,
    },
    /// List every agent, newest first.
    List,
    /// Show one agent.
    Show {
        /// The agent id.
        id: String,
    },
    /// Suspend an agent: it gets no new tokens.
    Suspend {
        /// The agent id.
        id: String,
        /// Why (recorded as its status_reason).
        #[arg(long, value_name = "R")]
        reason: String,
    },
    /// Reactivate a suspended agent.
    Reactivate {
        /// The agent id.
        id: String,
    },
    /// Delete an agent with its secrets and memberships.
    Delete {
        /// The agent id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Add a secret to an agent and print it (the only time it is shown).
    Add {
        /// The agent id.
        agent: String,
        /// A label for the secret.
        #[arg(long, value_name = "N")]
        name: Option<String>,
    },
    /// List an agent's verifiers (never a secret).
    List {
        /// The agent id.
        agent: String,
    },
    /// Remove one of an agent's verifiers.
    Remove {
        /// The agent id.
        agent: String,
        /// The verifier id (v_…).
        vid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WalletsCommand {
    /// Register a CAIP-10 account (eip155:<chain>:0x…, solana:<genesis hash prefix>:<key>).
    Add {
        agent: String,
        account: String,
        #[arg(long, value_name = "N")]
        name: Option<String>,
    },
    /// The agent holding an account (EVM addresses in any letter case).
    Show { account: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key (published now, signing after the issuer's publish delay).
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Create an organization.
    Create {
        /// Its name.
        #[arg(long, value_name = "N")]
        name: String,
    },
    /// Add an agent to an organization.
    AddMember {
        /// The organization id (org_…).
        org: String,
        /// The agent id.
        agent: String,
        /// A scope it holds in the organization (repeatable).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
    },
}
