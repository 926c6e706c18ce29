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
//! A suspended agent (its last tokens still live) may read but not change itself. Events record
//! the agent as the actor (`{"type": "agent", "id": "agt_…"}`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::Agent;
use crate::issuer::Shared;
use crate::issuer::api::{AgentUsage, CreatedSecret, Data};
use crate::issuer::errors::ApiError;
use crate::issuer::secrets::{Secret, new_id};
use crate::issuer::store::{
    Actor, AgentPatch, AgentRecord, AgentStatus, CredentialInfo, VerifierKind, VerifierRecord,
    VerifierStatus,
};

fn err(e: crate::issuer::StoreError) -> ApiError {
    ApiError::from_store(e, "agent")
}

fn suspended() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "agent_suspended",
        "an administrator suspended this agent; only an administrator can reactivate it",
    )
}

/// The calling agent's current record (404 if it was deleted while its token lives on).
async fn current(s: &Shared, agent: &Agent) -> Result<AgentRecord, ApiError> {
    s.store
        .get_agent(agent.id())
        .await
        .map_err(err)?
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// The calling agent, refused if an administrator suspended it.
async fn not_suspended(s: &Shared, agent: &Agent) -> Result<AgentRecord, ApiError> {
    let record = current(s, agent).await?;
    if record.status == AgentStatus::Suspended {
        return Err(suspended());
    }
    Ok(record)
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
    let verifiers = s.store.list_verifiers(agent.id()).await.map_err(err)?;
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
    not_suspended(&s, &agent).await?;
    let now = s.clock.now_ms();
    let secret = Secret::generate()?;
    let verifier = VerifierRecord {
        id: new_id("v_")?,
        agent_id: agent.id().to_owned(),
        kind: VerifierKind::Secret,
        status: VerifierStatus::Active,
        name: Some("self-rotated".to_owned()),
        credential: CredentialInfo {
            algorithm: "sha256".to_owned(),
        },
        usage_count: 0,
        last_used_at: None,
        created_at: now,
    };
    let change = s.change_by(now, Actor::agent(agent.id()))?;
    let verifier = s
        .store
        .replace_verifiers(verifier, secret.hash(), &change)
        .await
        .map_err(err)?;
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
    not_suspended(s, agent).await?;
    let now = s.clock.now_ms();
    let patch = AgentPatch {
        status: Some(to),
        require_status: Some(from),
        ..AgentPatch::default()
    };
    let change = s.change_by(now, Actor::agent(agent.id()))?;
    let record = match s.store.update_agent(agent.id(), patch, &change).await {
        Ok(r) => r,
        // Suspended between the check and the update: still the administrator's call.
        Err(crate::issuer::StoreError::Conflict(m)) => {
            if current(s, agent).await?.status == AgentStatus::Suspended {
                return Err(suspended());
            }
            return Err(ApiError::new(StatusCode::CONFLICT, "conflict", m));
        }
        Err(e) => return Err(err(e)),
    };
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
    not_suspended(&s, &agent).await?;
    let change = s.change_by(s.clock.now_ms(), Actor::agent(agent.id()))?;
    s.store
        .delete_agent(agent.id(), &change)
        .await
        .map_err(err)?;
    tracing::info!(agent_id = %agent.id(), outcome = "deleted", "agent deleted itself");
    Ok(StatusCode::NO_CONTENT)
}
