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
fn issuer_args(args: &Args, matches: &ArgMatches) -> Result<Vec<(String, Option<String>)>, String> {
    let issuer_at: Vec<usize> = matches.indices_of("issuer").into_iter().flatten().collect();
    let jwks_at: Vec<usize> = matches
        .indices_of("jwks_uri")
        .into_iter()
        .flatten()
        .collect();
    let mut issuers: Vec<(String, Option<String>)> =
        args.issuer.iter().map(|url| (url.clone(), None)).collect();
    for (uri, at) in args.jwks_uri.iter().zip(jwks_at) {
        let Some(owner) = issuer_at.iter().rposition(|&issuer| issuer < at) else {
            return Err(format!("--jwks-uri {uri} comes before any --issuer"));
        };
        let (issuer, jwks_uri) = &mut issuers[owner];
        if jwks_uri.is_some() {
            return Err(format!("two --jwks-uri for --issuer {issuer}"));
        }
        *jwks_uri = Some(uri.clone());
    }
    Ok(issuers)
}

/// The configuration the arguments describe: every issuer, `--audience` for all of them.
fn auth(args: &Args, matches: &ArgMatches) -> Result<AgentAuth, String> {
    let mut issuers =
        issuer_args(args, matches)?
            .into_iter()
            .map(|(url, jwks_uri)| match jwks_uri {
                Some(uri) => Issuer::new(url).jwks_uri(uri),
                None => Issuer::new(url),
            });
    let first = issuers.next().ok_or("at least one --issuer")?;
    let mut auth = AgentAuth::for_issuer(first).audience(&args.audience);
    for issuer in issuers {
        auth = auth.issuer(issuer);
    }
    Ok(auth)
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
    let auth = auth(&args, &matches)?.build()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("tickets API listening on http://{}", listener.local_addr()?);
    axum::serve(listener, tickets_api::router(auth)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issuers (with their JWKS URLs) that `argv` configures.
    fn parse(argv: &[&str]) -> Result<Vec<(String, Option<String>)>, String> {
        let argv = ["tickets"].iter().chain(argv);
        let matches = Args::command()
            .try_get_matches_from(argv)
            .map_err(|error| error.kind().to_string())?;
        let args = Args::from_arg_matches(&matches).map_err(|error| error.to_string())?;
        issuer_args(&args, &matches)
    }

    fn pair(issuer: &str, jwks_uri: Option<&str>) -> (String, Option<String>) {
        (issuer.to_owned(), jwks_uri.map(str::to_owned))
    }

    #[test]
    fn each_jwks_uri_belongs_to_the_issuer_before_it() {
        let parsed = parse(&[
            "--issuer",
            "https://a.example",
            "--audience",
            "https://api",
            "--issuer",
            "https://b.example",
            "--jwks-uri",
            "https://keys.b.example/jwks",
            "--issuer",
            "https://c.example",
            "--issuer=https://d.example",
            "--jwks-uri=https://keys.d.example/jwks",
        ]);
        assert_eq!(
            parsed.unwrap(),
            [
                pair("https://a.example", None),
                pair("https://b.example", Some("https://keys.b.example/jwks")),
                pair("https://c.example", None),
                pair("https://d.example", Some("https://keys.d.example/jwks")),
            ]
        );
    }

    #[test]
    fn one_issuer_without_jwks_uri() {
        let parsed = parse(&["--audience", "https://api", "--issuer", "https://a.example"]);
        assert_eq!(parsed.unwrap(), [pair("https://a.example", None)]);
    }

    #[test]
    fn misplaced_or_missing_arguments_are_refused() {
        let a_jwks_first = parse(&[
            "--jwks-uri",
            "https://keys.example/jwks",
            "--issuer",
            "https://a.example",
            "--audience",
            "https://api",
        ]);
        assert_eq!(
            a_jwks_first.unwrap_err(),
            "--jwks-uri https://keys.example/jwks comes before any --issuer"
        );
        let two_for_one = parse(&[
            "--issuer",
            "https://a.example",
            "--jwks-uri",
            "https://1.example/jwks",
            "--jwks-uri",
            "https://2.example/jwks",
            "--audience",
            "https://api",
        ]);
        assert_eq!(
            two_for_one.unwrap_err(),
            "two --jwks-uri for --issuer https://a.example"
        );
        // No --issuer at all: clap refuses (it is required).
        assert!(parse(&["--audience", "https://api"]).is_err());
    }

    #[test]
    fn the_issuers_build_into_one_layer() {
        let argv = [
            "tickets",
            "--issuer",
            "https://a.example",
            "--issuer",
            "https://b.example",
            "--jwks-uri",
            "https://keys.b.example/jwks",
            "--audience",
            "https://api",
        ];
        let matches = Args::command().get_matches_from(argv);
        let args = Args::from_arg_matches(&matches).unwrap();
        let layer = auth(&args, &matches).unwrap().build().unwrap();
        let metadata = layer.protected_resource_metadata();
        assert_eq!(metadata.resource, "https://api");
        assert_eq!(
            metadata.authorization_servers,
            ["https://a.example", "https://b.example"]
        );
    }
}
