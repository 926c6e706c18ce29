//! An MCP server (streamable HTTP, the `rmcp` crate) at `/mcp`, protected by agent-auth
//! (DESIGN §6): RFC 9728 metadata at `/.well-known/oauth-protected-resource/mcp` and at the root,
//! `resource_metadata` in every challenge, `tickets:read` named by the 401, and per-tool
//! scopes decided from the JSON-RPC body.
//!
//! ```text
//! cargo run --example mcp_server --features mcp -- --issuer http://127.0.0.1:8080 \
//!     --listen 127.0.0.1:3001
//! ```
//!
//! Tools: `list_tickets` (needs `tickets:read`) and `triage_ticket` with argument `id` (needs
//! `tickets:triage`); both answer JSON text with the caller's `agent_id`. Tokens must carry
//! `aud` = `http://{listen}/mcp` (the bound address; MCP clients ask for it with `resource`).
//! `GET /health` is open.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;

// README: begin (the README's "Protecting an MCP server" shows this part, verbatim)
use agent_auth::axum::resource_metadata_router;
use agent_auth::mcp::McpToolScopes;
use agent_auth::{Agent, AgentAuth, Issuer};
use axum::{Router, routing::get};
use rmcp::handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde_json::json;
use tower::ServiceBuilder;

/// The tickets tools. Each reads the verified [`Agent`] that `AgentAuth` put into the HTTP
/// request, which `rmcp` hands to tools as `http::request::Parts`.
#[derive(Clone)]
struct Tickets {
    tool_router: ToolRouter<Self>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct TriageArgs {
    /// The ticket to triage.
    id: String,
}

fn caller(parts: &http::request::Parts) -> Result<&Agent, ErrorData> {
    let agent = parts.extensions.get::<Agent>();
    agent.ok_or_else(|| ErrorData::internal_error("no verified agent: is AgentAuth outside?", None))
}

#[tool_router]
impl Tickets {
    #[tool(description = "List the open tickets (needs tickets:read).")]
    async fn list_tickets(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let agent = caller(&parts)?;
        let tickets = json!([{ "id": "1", "title": "Printer on fire" }]);
        let body = json!({ "agent_id": agent.id(), "tickets": tickets });
        Ok(CallToolResult::success(vec![ContentBlock::text(
            body.to_string(),
        )]))
    }

    #[tool(description = "Triage one ticket (needs tickets:triage).")]
    async fn triage_ticket(
        &self,
        Parameters(TriageArgs { id }): Parameters<TriageArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let agent = caller(&parts)?;
        let body = json!({ "agent_id": agent.id(), "id": id, "triaged": true });
        Ok(CallToolResult::success(vec![ContentBlock::text(
            body.to_string(),
        )]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tickets {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The whole app for a server bound at `addr`: `/mcp` behind the layers, the metadata and
/// `/health` open.
pub fn app(issuer: Issuer, addr: SocketAddr) -> Result<Router, agent_auth::ConfigError> {
    let resource = format!("http://{addr}/mcp");
    let auth = AgentAuth::for_issuer(issuer)
        .audience(&resource)
        .resource_metadata(format!(
            "http://{addr}/.well-known/oauth-protected-resource/mcp"
        ))
        .basic_scopes(["tickets:read"]) // named by the 401 without a token
        .build()?;
    let tool_scopes = McpToolScopes::new()
        .tool("list_tickets", ["tickets:read"])
        .tool("triage_ticket", ["tickets:triage"]);
    let mcp = StreamableHttpService::new(
        || {
            Ok(Tickets {
                tool_router: Tickets::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(), // Host checked: loopback names only
    );
    let metadata = auth
        .protected_resource_metadata()
        .scopes_supported(["tickets:read", "tickets:triage"]);
    Ok(Router::new()
        .nest_service(
            "/mcp",
            ServiceBuilder::new()
                .layer(auth.clone())
                .layer(tool_scopes)
                .service(mcp),
        )
        .merge(resource_metadata_router(&auth, metadata)) // both well-known URLs
        .route("/health", get(|| async { "ok" })))
}
// README: end

#[derive(Parser)]
#[command(about = "An MCP server (streamable HTTP) protected by agent-auth")]
struct Args {
    /// The issuer whose tokens are accepted (`iss` must equal it, byte for byte).
    #[arg(long)]
    issuer: String,
    /// The issuer's JWKS URL, when not `{issuer}/jwks.json`.
    #[arg(long)]
    jwks_uri: Option<String>,
    /// Address to listen on (port 0: any free port; the audience follows the bound address).
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // Per-request events are at debug: ask for them with RUST_LOG=agent_auth=debug.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let issuer = match args.jwks_uri {
        Some(uri) => Issuer::new(args.issuer).jwks_uri(uri),
        None => Issuer::new(args.issuer),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let app = app(issuer, addr)?;
    // Tests and scripts read this line for the bound address.
    println!("MCP server listening on http://{addr}/mcp");
    axum::serve(listener, app).await?;
    Ok(())
}
