//! The tickets API of the seed, protected by agent-auth.
//!
//! ```text
//! cargo run --example tickets -- --issuer http://127.0.0.1:8080 \
//!     --audience https://api.example.com/tickets --listen 127.0.0.1:3000
//! ```
//!
//! `GET /tickets` needs `tickets:read`, `POST /tickets/{id}/triage` needs `tickets:triage`,
//! `GET /health` is open.

#[path = "common/tickets_api.rs"]
mod tickets_api;

use std::net::SocketAddr;

use agent_auth::{AgentAuth, Issuer};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

#[derive(Parser)]
#[command(about = "The tickets API, protected by agent-auth")]
struct Args {
    /// An issuer URL whose tokens are accepted (`iss` must equal it). Repeat it to trust
    /// several issuers.
    #[arg(long, required = true)]
    issuer: Vec<String>,
    /// JWKS URL of the `--issuer` just before it, when not `{issuer}/jwks.json`.
    #[arg(long)]
    jwks_uri: Vec<String>,
    /// The audience (resource identifier) tokens must carry, from every issuer.
    #[arg(long)]
    audience: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
}

/// Each `--issuer` with the `--jwks-uri` that follows it (before the next `--issuer`), if any.
fn issuers(args: &Args, matches: &ArgMatches) -> Result<Vec<Issuer>, String> {
    let issuer_at: Vec<usize> = matches.indices_of("issuer").into_iter().flatten().collect();
    let jwks_at: Vec<usize> = matches
        .indices_of("jwks_uri")
        .into_iter()
        .flatten()
        .collect();
    let mut issuers: Vec<(Issuer, bool)> = args
        .issuer
        .iter()
        .map(|url| (Issuer::new(url), false))
        .collect();
    for (uri, at) in args.jwks_uri.iter().zip(jwks_at) {
        let Some(owner) = issuer_at.iter().rposition(|&issuer| issuer < at) else {
            return Err(format!("--jwks-uri {uri} comes before any --issuer"));
        };
        let (issuer, has_uri) = &mut issuers[owner];
        if *has_uri {
            return Err(format!("two --jwks-uri for --issuer {}", issuer.as_str()));
        }
        *issuer = issuer.clone().jwks_uri(uri);
        *has_uri = true;
    }
    Ok(issuers.into_iter().map(|(issuer, _)| issuer).collect())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // Per-request events are at debug: ask for them with RUST_LOG=agent_auth=debug.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches)?;
    let mut issuers = issuers(&args, &matches)?.into_iter();
    let first = issuers.next().ok_or("at least one --issuer")?;
    let mut auth = AgentAuth::for_issuer(first).audience(&args.audience);
    for issuer in issuers {
        auth = auth.issuer(issuer);
    }
    let auth = auth.build()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("tickets API listening on http://{}", listener.local_addr()?);
    axum::serve(listener, tickets_api::router(auth)).await?;
    Ok(())
}
