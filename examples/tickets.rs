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

use agent_auth::AgentAuth;
use clap::Parser;

#[derive(Parser)]
#[command(about = "The tickets API, protected by agent-auth")]
struct Args {
    /// The issuer URL; tokens' `iss` must equal it.
    #[arg(long)]
    issuer: String,
    /// The audience (resource identifier) tokens must carry.
    #[arg(long)]
    audience: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// JWKS URL, when not `{issuer}/jwks.json`.
    #[arg(long)]
    jwks_uri: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,agent_auth=debug".into()),
        )
        .init();
    let args = Args::parse();
    let mut auth = AgentAuth::new(&args.issuer).audience(&args.audience);
    if let Some(jwks_uri) = &args.jwks_uri {
        auth = auth.jwks_uri(jwks_uri);
    }
    auth.check()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("tickets API listening on http://{}", listener.local_addr()?);
    axum::serve(listener, tickets_api::router(auth)).await?;
    Ok(())
}
