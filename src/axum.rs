//! axum integration: [`Agent`] as an extractor and a router serving RFC 9728 metadata.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::agent::Agent;
use crate::layer::AgentAuthLayer;
use crate::metadata::ProtectedResourceMetadata;

/// Rejection of the [`Agent`] extractor: the route is not behind
/// [`AgentAuthLayer`]. This is a server bug, so it answers `500`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no verified agent on this request: the AgentAuth layer is not installed on this route")]
pub struct MissingAgentLayer;

impl IntoResponse for MissingAgentLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Agent {
    type Rejection = MissingAgentLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Agent>()
            .cloned()
            .ok_or(MissingAgentLayer)
    }
}

/// `Option<Agent>`: `None` on routes without the layer.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Agent {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Agent>().cloned())
    }
}

impl IntoResponse for ProtectedResourceMetadata {
    fn into_response(self) -> Response {
        (
            [(axum::http::header::CACHE_CONTROL, "public, max-age=3600")],
            axum::Json(self),
        )
            .into_response()
    }
}

const ROOT_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A router answering `GET` on the RFC 9728 well-known path of `auth`'s
/// [`resource_metadata`](crate::AgentAuth::resource_metadata) URL with `metadata`, and on the
/// root well-known path `/.well-known/oauth-protected-resource` too when that URL is
/// path-suffixed (`…/oauth-protected-resource/mcp` for a resource at `/mcp`): MCP clients try
/// both. Merge it outside the auth layer: the document is public.
pub fn resource_metadata_router<S>(
    auth: &AgentAuthLayer,
    metadata: ProtectedResourceMetadata,
) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let path = ProtectedResourceMetadata::well_known_path(auth.resource_metadata_url());
    let serve = axum::routing::get(move || {
        let metadata = metadata.clone();
        async move { metadata }
    });
    let router = axum::Router::new().route(&path, serve.clone());
    match path == ROOT_WELL_KNOWN {
        true => router,
        false => router.route(ROOT_WELL_KNOWN, serve),
    }
}
