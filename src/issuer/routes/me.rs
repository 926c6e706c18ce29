//! Agent self-service (`/v1/agents/me…`), authenticated by the agent's own Bearer token whose
//! `aud` is the issuer URL, verified by this crate's own [`AgentAuth`](crate::AgentAuth)
//! middleware against the issuer's JWKS.
//!
//! - `GET /v1/agents/me`, `GET /v1/agents/me/usage`;
//! - `POST /v1/agents/me/rotate`: a new secret, shown once; every old secret stops working at
//!   once (tokens already issued live on until `exp`);
//! - `POST /v1/agents/me/deactivate`, `POST /v1/agents/me/reactivate` (undoes a
//!   self-deactivation only: after an administrator's suspension it is `403`);
//! - `DELETE /v1/agents/me`.
//!
//! A suspended agent (its last tokens still live) may read but not change itself (the registry
//! checks that inside each change's transaction). Events record the agent as the actor
//! (`{"type": "agent", "id": "agt_…"}`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::Agent;
use crate::issuer::api::{AgentUsage, CreatedSecret, Data};
use crate::issuer::errors::ApiError;
use crate::issuer::model::{AgentRecord, AgentStatus};
use crate::issuer::secrets::Secret;
use crate::issuer::state::Shared;
use crate::issuer::storage::Credential;

use super::agents::secret_verifier;

/// The calling agent's current record (404 if it was deleted while its token lives on).
async fn current(s: &Shared, agent: &Agent) -> Result<AgentRecord, ApiError> {
    s.registry
        .agent(agent.id())
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// `GET /v1/agents/me`.
pub(crate) async fn me(
    State(s): State<Arc<Shared>>,
    agent: Agent,
) -> Result<Json<Data<AgentRecord>>, ApiError> {
    Ok(Json(Data {
        data: current(&s, &agent).await?,
    }))
}

/// `GET /v1/agents/me/usage`.
pub(crate) async fn usage(
    State(s): State<Arc<Shared>>,
    agent: Agent,
) -> Result<Json<Data<AgentUsage>>, ApiError> {
    let record = current(&s, &agent).await?;
    let verifiers = s.registry.verifiers(agent.id()).await?;
    Ok(Json(Data {
        data: AgentUsage {
            agent_id: record.id,
            token_count: record.token_count,
            last_activity_at: record.last_activity_at,
            verifiers,
        },
    }))
}

/// `POST /v1/agents/me/rotate`.
pub(crate) async fn rotate(
    State(s): State<Arc<Shared>>,
    agent: Agent,
) -> Result<Response, ApiError> {
    let secret = Secret::generate()?;
    let verifier = secret_verifier(
        agent.id().to_owned(),
        Some("self-rotated".to_owned()),
        s.registry.now_ms(),
    )?;
    let credential = Credential::Secret(secret.hash());
    let verifier = s
        .registry
        .replace_own_verifiers(verifier, credential, s.agent_change(agent.id()))
        .await?;
    tracing::info!(agent_id = %agent.id(), verifier_id = %verifier.id, outcome = "rotated", "agent rotated its secret");
    Ok((
        StatusCode::CREATED,
        Json(Data {
            data: CreatedSecret { verifier, secret },
        }),
    )
        .into_response())
}

/// Applies a self-service status change `from` → `to`.
async fn set_status(
    s: &Shared,
    agent: &Agent,
    from: AgentStatus,
    to: AgentStatus,
) -> Result<Json<Data<AgentRecord>>, ApiError> {
    let record = s
        .registry
        .set_own_status(agent.id(), from, to, s.agent_change(agent.id()))
        .await?;
    tracing::info!(agent_id = %agent.id(), status = ?record.status, outcome = "status_changed", "agent changed its own status");
    Ok(Json(Data { data: record }))
}

/// `POST /v1/agents/me/deactivate`: no new tokens until it reactivates itself.
pub(crate) async fn deactivate(
    State(s): State<Arc<Shared>>,
    agent: Agent,
) -> Result<Json<Data<AgentRecord>>, ApiError> {
    set_status(&s, &agent, AgentStatus::Active, AgentStatus::Deactivated).await
}

/// `POST /v1/agents/me/reactivate`: only after a self-deactivation.
pub(crate) async fn reactivate(
    State(s): State<Arc<Shared>>,
    agent: Agent,
) -> Result<Json<Data<AgentRecord>>, ApiError> {
    set_status(&s, &agent, AgentStatus::Deactivated, AgentStatus::Active).await
}

/// `DELETE /v1/agents/me`.
pub(crate) async fn delete(
    State(s): State<Arc<Shared>>,
    agent: Agent,
) -> Result<StatusCode, ApiError> {
    s.registry
        .delete_self(agent.id(), s.agent_change(agent.id()))
        .await?;
    tracing::info!(agent_id = %agent.id(), outcome = "deleted", "agent deleted itself");
    Ok(StatusCode::NO_CONTENT)
}
