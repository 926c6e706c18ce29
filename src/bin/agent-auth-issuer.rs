//! `agent-auth-issuer`: the bundled OAuth 2.0 issuer for AI agents, as a server.
//!
//! ```text
//! agent-auth-issuer [--db PATH|postgres://… | --in-memory] [--listen 127.0.0.1:8080] [--issuer-url URL]
//!                   [--key-publish-delay SECS] [--durable-counters]
//!                   [--allow-insecure-webhooks] [--allow-private-webhooks]
//! ```
//!
//! State lives in SQLite by default (`--db`, default `agent-auth-issuer.db` in the working
//! directory; created `0600`); `--in-memory` keeps it in memory (lost on exit); `--db
//! postgres://…` keeps it in PostgreSQL (feature `postgres`), which several replicas may share.
//!
//! Signing keys are encrypted at rest with `AGENT_AUTH_KEY_ENCRYPTION_KEY` (base64 of 32 random
//! bytes): required with PostgreSQL, used with SQLite when set; missing (with PostgreSQL) or
//! malformed, it exits 2.
//!
//! The admin key comes from `AGENT_AUTH_ADMIN_KEY_ID` / `AGENT_AUTH_ADMIN_KEY_SECRET` (a secret
//! of at least 32 characters, else it exits 2). If they are unset, the key kept in the
//! database is used; a first start generates one, keeps its hash and prints it once to stdout
//! as two lines, `AGENT_AUTH_ADMIN_KEY_ID=…` and `AGENT_AUTH_ADMIN_KEY_SECRET=…` (with
//! `--in-memory`, every start generates and prints one). `agent-auth-issuer rotate-admin-key
//! --db PATH` replaces the kept key and prints the new one the same way. Logs go to stderr
//! (`RUST_LOG`).

use std::net::SocketAddr;
use std::process::ExitCode;

use agent_auth::issuer::{
    AdminKey, Database, Issuer, IssuerError, KeyEncryptionKey, StorageError, WebhookPolicy,
};
use clap::{ArgGroup, Parser, Subcommand};

/// The database file when neither `--db` nor `--in-memory` is given.
const DEFAULT_DB: &str = "agent-auth-issuer.db";

/// The bundled agent-auth issuer: management API, client_credentials token endpoint, JWKS.
#[derive(Debug, Parser)]
#[command(name = "agent-auth-issuer", version, about)]
#[command(group(ArgGroup::new("storage").args(["db", "in_memory"])))]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Issuer URL: the tokens' `iss` (default: http://{listen}, with the bound port).
    #[arg(long)]
    issuer_url: Option<String>,
    /// SQLite database file, the default storage (created 0600 if missing), or a
    /// `postgres://user:password@host:port/dbname` URL (replicas may share it).
    #[arg(long, value_name = "PATH|URL")]
    db: Option<String>,
    /// Keep everything in memory (lost on exit).
    #[arg(long)]
    in_memory: bool,
    /// Seconds a rotated signing key is published before it signs (the JWKS max-age).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    key_publish_delay: u64,
    /// Write usage counters with each token instead of once a second (a crash, even SIGKILL,
    /// then loses none; by default it loses at most the last second's counts).
    #[arg(long)]
    durable_counters: bool,
    /// Accept `http` webhook URLs to loopback (local development).
    #[arg(long)]
    allow_insecure_webhooks: bool,
    /// Accept webhooks to loopback, private and link-local addresses.
    #[arg(long)]
    allow_private_webhooks: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replace the admin key kept in the database and print the new one (a running issuer on
    /// that database switches to it within a second).
    RotateAdminKey {
        /// The issuer's SQLite database file or PostgreSQL URL.
        #[arg(long, value_name = "PATH|URL")]
        db: String,
    },
}

/// Where the admin key comes from.
enum KeySource {
    /// The environment (never stored).
    Env(AdminKey),
    /// Generated now for an in-memory issuer (printed once).
    Generated(AdminKey),
    /// The database (generated and printed at a first start).
    Stored,
}

fn print_key(key: &AdminKey) {
    // Printed once, on purpose: this is how the operator learns the key.
    println!("AGENT_AUTH_ADMIN_KEY_ID={}", key.id());
    println!("AGENT_AUTH_ADMIN_KEY_SECRET={}", key.secret().expose());
}

async fn rotate(db: String) -> ExitCode {
    let database = Database::parse(&db);
    match agent_auth::issuer::rotate_admin_key(&database).await {
        Ok(key) => {
            let place = if database.is_postgres() {
                "the PostgreSQL database".to_owned()
            } else {
                db
            };
            eprintln!("The admin key kept in {place} was replaced (shown once):");
            print_key(&key);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", with_causes(&e));
            ExitCode::FAILURE
        }
    }
}

fn admin_key_source(in_memory: bool) -> Result<KeySource, String> {
    let id = std::env::var("AGENT_AUTH_ADMIN_KEY_ID").ok();
    let secret = std::env::var("AGENT_AUTH_ADMIN_KEY_SECRET").ok();
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(KeySource::Env(AdminKey::new(id, secret))),
        (None, None) if in_memory => AdminKey::generate()
            .map(KeySource::Generated)
            .map_err(|e| e.to_string()),
        (None, None) => Ok(KeySource::Stored),
        _ => Err(
            "set both AGENT_AUTH_ADMIN_KEY_ID and AGENT_AUTH_ADMIN_KEY_SECRET, or neither".into(),
        ),
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, before the future
/// is first polled: a supervisor that signals as soon as it reads "listening" must not kill
/// the process with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let wait = {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                (Ok(mut int), Err(_)) => {
                    int.recv().await;
                }
                (Err(_), Ok(mut term)) => {
                    term.recv().await;
                }
                // No signal handler: run until killed.
                (Err(_), Err(_)) => std::future::pending::<()>().await,
            }
        }
    };
    #[cfg(not(unix))]
    let wait = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handler: run until killed.
            std::future::pending::<()>().await;
        }
    };
    async move {
        wait.await;
        tracing::info!("shutting down");
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
    line
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::RotateAdminKey { db }) = args.command {
        return rotate(db).await;
    }

    let database = if args.in_memory {
        Database::InMemory
    } else {
        Database::parse(args.db.as_deref().unwrap_or(DEFAULT_DB))
    };
    let key_encryption = match KeyEncryptionKey::from_env() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    let source = match admin_key_source(args.in_memory) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    // The bound address (differs from --listen with port 0).
    let local = listener.local_addr().unwrap_or(args.listen);
    let issuer_url = args.issuer_url.unwrap_or_else(|| format!("http://{local}"));
    let builder = match &source {
        KeySource::Env(key) | KeySource::Generated(key) => Issuer::builder().admin_key(key.clone()),
        KeySource::Stored => Issuer::builder().admin_key_from_database(),
    };
    let builder = match key_encryption {
        Some(k) => builder.key_encryption_key(k),
        None => builder,
    };
    let issuer = match builder
        .issuer_url(issuer_url)
        .database(database)
        .key_publish_delay(std::time::Duration::from_secs(args.key_publish_delay))
        .durable_counters(args.durable_counters)
        .webhook_policy(WebhookPolicy {
            allow_insecure: args.allow_insecure_webhooks,
            allow_private: args.allow_private_webhooks,
        })
        .build()
        .await
    {
        Ok(issuer) => issuer,
        // A configuration the operator must fix (exit 2), not a failure at run time.
        Err(
            e @ (IssuerError::InvalidAdminKey(_)
            | IssuerError::InvalidIssuerUrl(_)
            | IssuerError::KeyEncryptionKeyRequired
            | IssuerError::Storage(StorageError::PostgresNotBuilt)),
        ) => {
            eprintln!("error: {}", with_causes(&e));
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {}", with_causes(&e));
            return ExitCode::FAILURE;
        }
    };
    let generated = match source {
        KeySource::Generated(key) => Some(key),
        KeySource::Stored => issuer.take_generated_admin_key(),
        KeySource::Env(_) => None,
    };
    if let Some(key) = generated {
        eprintln!(
            "Generated admin key (shown once; only its hash is kept; set \
             AGENT_AUTH_ADMIN_KEY_ID/_SECRET to choose one):"
        );
        print_key(&key);
    }
    let shutdown = shutdown_signal();
    println!("agent-auth issuer {} listening on {local}", issuer.url());
    match issuer.serve(listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
