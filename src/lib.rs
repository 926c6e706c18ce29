//! # agent-auth
//!
//! Let an HTTP API trust AI agents. Agents get their own identity from an OAuth 2.0 issuer
//! (`client_credentials`, short-lived EdDSA JWTs); [`AgentAuth`] verifies those tokens on every
//! request, insists that the caller is an agent (`dat.type == "agent"` **and** a `sub` starting
//! with `agt_`), and hands the handler a typed [`Agent`]. [`RequireScopes`] guards single routes.
//!
//! ## Quickstart
//!
//! ```no_run
//! use agent_auth::{Agent, AgentAuth, RequireScopes};
//! use axum::{Json, Router, routing::{get, post}};
//! use serde_json::{Value, json};
//!
//! async fn list(agent: Agent) -> Json<Value> {
//!     Json(json!({ "agent_id": agent.id(), "tickets": [] }))
//! }
//!
//! async fn triage(agent: Agent) -> Json<Value> {
//!     Json(json!({ "agent_id": agent.id(), "triaged": true }))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = AgentAuth::new("http://127.0.0.1:8080")       // the issuer; `iss` must equal it
//!     .audience("https://api.example.com/tickets")         // accepted `aud` values
//!     .build()?;                                           // every configuration problem at once
//! let app = Router::new()
//!     .route("/tickets", get(list).layer(RequireScopes::all(["tickets:read"])))
//!     .route("/tickets/{id}/triage", post(triage).layer(RequireScopes::all(["tickets:triage"])))
//!     .layer(auth);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## What is checked, and what a refusal looks like
//!
//! | request | response |
//! |---|---|
//! | no `Authorization: Bearer` (or another scheme) | `401`, `WWW-Authenticate: Bearer realm="…"` |
//! | two `Authorization` headers, `Bearer` without token, bad syntax | `400`, `error="invalid_request"` |
//! | bad signature, `alg` not bound to the key, wrong `iss`/`aud`, expired, not an agent, … | `401`, `error="invalid_token"` |
//! | agent lacks a route's scope | `403`, `error="insufficient_scope"`, `scope="…"` |
//! | keys unobtainable (issuer down, nothing cached) | `503` with `Retry-After` |
//!
//! Keys come from the issuer's JWKS (see [`AgentAuth`] for the cache rules). Only asymmetric
//! [`Algorithm`]s exist; `none` and `HS*` cannot be configured.
//!
//! Several issuers ([`Issuer`], [`AgentAuth::issuer`]), optional authentication
//! ([`AgentAuth::optional`]), [`metrics`] and [`AgentAuthLayer::readiness`] are described on the
//! types.
//!
//! ## Features
//!
//! * `axum` (default): [`Agent`] is an extractor; [`axum::resource_metadata_router`].
//! * `mcp`: [`mcp::McpToolScopes`], per-tool scopes for an MCP server.
//! * `issuer`: the bundled OAuth 2.0 issuer for agents, usable in-process in tests.
//! * `client`: the agent's side (`client::TokenSource`, a tower layer adding `Authorization`,
//!   provisioning); no issuer code.
//! * `reqwest-middleware`: `client`'s `AuthorizationMiddleware` for `reqwest-middleware`.
//! * `cli`: the `agent-auth` operator command line.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod algorithm;
mod bearer;
mod challenge;
mod claims;
mod clock;
mod config;
mod ed25519;
mod error;
mod jwks;
mod layer;
mod metadata;
pub mod metrics;
mod readiness;
mod scopes;
mod signature_batch;
mod strict_json;
mod token_cache;
mod verify;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
#[cfg(feature = "issuer")]
pub mod issuer;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "webhooks")]
pub mod webhooks;

pub use agent::Agent;
pub use algorithm::Algorithm;
pub use config::{AgentAuth, ConfigError, ConfigProblem, Issuer, UrlProblem};
pub use error::{AuthError, InvalidRequest, InvalidToken};
pub use jwks::JwksFetchError;
pub use layer::{AgentAuthLayer, AgentAuthService, ResponseFuture};
pub use metadata::ProtectedResourceMetadata;
pub use readiness::{IssuerReadiness, KeyRefreshError, Readiness};
pub use scopes::{RequireScopes, RequireScopesService};
pub use verify::TokenTypeHeader;

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(all(doctest, feature = "issuer"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
