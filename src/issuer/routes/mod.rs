//! HTTP: the router and the admin-key guard. Handlers validate the shape of their input, call
//! one method of the registry (which decides), and shape its answer: [`token`] (`POST /token`),
//! [`agents`] (agents and verifiers), [`me`] (self-service), [`orgs`], [`events`] (audit log),
//! [`webhooks`], [`keys`] (rotation), [`wallets`] (reverse lookup, sign-in nonces, the wallet grant), [`discovery`] (JWKS, RFC 8414 metadata, the refusing `/authorize`). Every extraction
//! helper is in [`extract`].

pub(crate) mod agents;
pub(crate) mod discovery;
pub(crate) mod events;
pub(crate) mod extract;
pub(crate) mod keys;
pub(crate) mod me;
pub(crate) mod orgs;
pub(crate) mod token;
pub(crate) mod wallets;
pub(crate) mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use super::errors::ApiError;
use super::state::Shared;
use extract::{BasicAuth, basic_credentials};

/// Builds the issuer's router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let admin = Router::new()
        .route("/v1/agents", post(agents::create).get(agents::list))
        .route(
            "/v1/agents/{id}",
            get(agents::get)
                .patch(agents::update)
                .delete(agents::delete),
        )
        .route(
            "/v1/agents/{id}/verifiers",
            post(agents::add_verifier).get(agents::list_verifiers),
        )
        .route(
            "/v1/agents/{id}/verifiers/{vid}",
            delete(agents::delete_verifier),
        )
        .route("/v1/wallets/{account}", get(wallets::lookup))
        .route("/v1/events", get(events::list))
        .route("/v1/keys/rotate", post(keys::rotate))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/webhooks/{id}", delete(webhooks::delete))
        .route("/v1/organizations", post(orgs::create))
        .route("/v1/organizations/{org}", get(orgs::get))
        .route(
            "/v1/organizations/{org}/members",
            post(orgs::add_member).get(orgs::list_members),
        )
        .route(
            "/v1/organizations/{org}/members/{member_id}",
            delete(orgs::remove_member),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            require_admin,
        ));
    // Self-service: the agent's own Bearer token for the audience "the issuer", checked by this
    // crate's middleware against the issuer's own JWKS. The static `me` segment takes priority
    // over the admin routes' `{id}`, so each path has exactly one authentication scheme.
    let auth = shared.self_auth.clone();
    let me = Router::new()
        .route("/v1/agents/me", get(me::me).delete(me::delete))
        .route("/v1/agents/me/usage", get(me::usage))
        .route("/v1/agents/me/rotate", post(me::rotate))
        .route("/v1/agents/me/deactivate", post(me::deactivate))
        .route("/v1/agents/me/reactivate", post(me::reactivate))
        .route_layer(auth);
    Router::new()
        .route("/token", post(token::token))
        .route("/wallet/nonce", post(wallets::nonce))
        .route(
            "/authorize",
            get(discovery::authorize).post(discovery::authorize),
        )
        .route("/jwks.json", get(discovery::jwks))
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .merge(admin)
        .merge(me)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

async fn not_found() -> ApiError {
    ApiError::not_found("resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Lets a request through only with the admin key as HTTP Basic credentials. Failures are
/// throttled per client address (`429 rate_limited` once its budget is spent, whatever the
/// request then presents, so that guessing gets no more verdicts). The address comes from
/// axum's `ConnectInfo` ([`Issuer::serve`](crate::issuer::Issuer::serve) provides it); a router
/// mounted without it shares one budget among all clients.
async fn require_admin(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
    if let Err(retry_after_secs) = shared.registry.admin_attempt_allowed(&client) {
        tracing::info!(
            outcome = "throttled",
            "management API: admin authentication throttled"
        );
        return ApiError::too_many_requests(
            "too many failed admin authentications from this address",
            retry_after_secs,
        )
        .into_response();
    }
    match basic_credentials(req.headers()) {
        BasicAuth::Present { user, password } if shared.admin.load().verify(&user, &password) => {
            next.run(req).await
        }
        _ => {
            shared.registry.admin_attempt_failed(&client);
            tracing::info!(
                outcome = "refused",
                "management API: admin authentication failed"
            );
            ApiError::unauthorized().into_response()
        }
    }
}
