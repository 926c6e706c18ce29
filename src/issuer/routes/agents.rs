//! Management API: agents (`/v1/agents[/{id}]`) and their verifiers, secrets and public keys
//! (`/v1/agents/{id}/verifiers[/{vid}]`). Each handler validates its input and makes one
//! registry call, which decides and writes the change with its audit event.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::issuer::agent_keys;
use crate::issuer::api::{CreateAgent, CreatedAgent, CreatedSecret, Data, ListPage, UpdateAgent};
use crate::issuer::errors::ApiError;
use crate::issuer::model::{
    AgentRecord, AgentStatus, CredentialInfo, VerifierKind, VerifierRecord, VerifierStatus,
};
use crate::issuer::registry::{AgentPatch, Created};
use crate::issuer::secrets::{Secret, new_id};
use crate::issuer::state::Shared;
use crate::issuer::storage::Credential;
use crate::issuer::validate::{self, *};

use super::extract::{ApiPath, ApiQuery, JsonBody, PageQuery};
use super::wallets;
use crate::issuer::wallet::account::Case;

/// A new secret verifier record for `agent_id` (the secret itself is never stored).
pub(crate) fn secret_verifier(
    agent_id: String,
    name: Option<String>,
    now: i64,
) -> Result<VerifierRecord, ApiError> {
    Ok(VerifierRecord {
        id: new_id("v_")?,
        agent_id,
        kind: VerifierKind::Secret,
        status: VerifierStatus::Active,
        name,
        credential: CredentialInfo {
            algorithm: Some("sha256".to_owned()),
            ..CredentialInfo::default()
        },
        usage_count: 0,
        last_used_at: None,
        created_at: now,
    })
}

/// `POST /v1/agents`.
pub(crate) async fn create(
    State(s): State<Arc<Shared>>,
    JsonBody(body): JsonBody<CreateAgent>,
) -> Result<Response, ApiError> {
    let now = s.registry.now_ms();
    let expires_at = body
        .expires_in
        .map(|secs| validate::expires_at(now, secs))
        .transpose()?;
    let agent = AgentRecord {
        id: new_id("agt_")?,
        name: validate::text("name", body.name, MAX_NAME_CHARS)?,
        description: opt_text("description", body.description, MAX_DESCRIPTION_CHARS)?,
        model: opt_text("model", body.model, MAX_LABEL_CHARS)?,
        provider: opt_text("provider", body.provider, MAX_LABEL_CHARS)?,
        version: opt_text("version", body.version, MAX_LABEL_CHARS)?,
        status: AgentStatus::Active,
        status_reason: None,
        scopes: validate::scopes(body.scopes)?,
        resources: validate::resources(body.resources)?,
        external_id: opt_text("external_id", body.external_id, MAX_EXTERNAL_ID_CHARS)?,
        created_at: now,
        updated_at: now,
        expires_at,
        token_count: 0,
        last_activity_at: None,
    };
    let outcome = s.registry.create_agent(agent, s.admin_change()).await?;
    let (status, agent, already_existed) = match outcome {
        Created::New(a) => {
            tracing::info!(agent_id = %a.id, outcome = "created", "agent created");
            (StatusCode::CREATED, a, false)
        }
        Created::Existing(a) => {
            tracing::info!(agent_id = %a.id, outcome = "already_existed", "agent create replayed");
            (StatusCode::OK, a, true)
        }
    };
    Ok((
        status,
        Json(CreatedAgent {
            data: agent,
            already_existed,
        }),
    )
        .into_response())
}

/// `GET /v1/agents`.
pub(crate) async fn list(
    State(s): State<Arc<Shared>>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<ListPage<AgentRecord>>, ApiError> {
    let page = s.registry.agents(q.into_request()?).await?;
    Ok(Json(ListPage {
        data: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /v1/agents/{id}`.
pub(crate) async fn get(
    State(s): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Data<AgentRecord>>, ApiError> {
    match s.registry.agent(&id).await? {
        Some(agent) => Ok(Json(Data { data: agent })),
        None => Err(ApiError::not_found("agent")),
    }
}

/// `PATCH /v1/agents/{id}`.
pub(crate) async fn update(
    State(s): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<UpdateAgent>,
) -> Result<Json<Data<AgentRecord>>, ApiError> {
    // One clock reading: a new `expires_at` counts from the same instant as `updated_at`.
    let change = s.admin_change();
    let now = change.at;
    let status_reason = opt_text("status_reason", body.status_reason, MAX_REASON_CHARS)?;
    match (body.status, &status_reason) {
        (Some(AgentStatus::Suspended), None) => {
            return Err(ApiError::validation(
                "status_reason is required to suspend an agent",
            ));
        }
        (Some(AgentStatus::Active), Some(_)) => {
            return Err(ApiError::validation(
                "status_reason is only allowed with status \"suspended\"",
            ));
        }
        (Some(AgentStatus::Deactivated), _) => {
            return Err(ApiError::validation(
                "status must be \"active\" or \"suspended\" (only an agent deactivates itself)",
            ));
        }
        _ => {}
    }
    let patch = AgentPatch {
        name: body
            .name
            .map(|n| validate::text("name", n, MAX_NAME_CHARS))
            .transpose()?,
        description: patch_text("description", body.description, MAX_DESCRIPTION_CHARS)?,
        model: patch_text("model", body.model, MAX_LABEL_CHARS)?,
        provider: patch_text("provider", body.provider, MAX_LABEL_CHARS)?,
        version: patch_text("version", body.version, MAX_LABEL_CHARS)?,
        scopes: body.scopes.map(validate::scopes).transpose()?,
        resources: body.resources.map(validate::resources).transpose()?,
        external_id: patch_text("external_id", body.external_id, MAX_EXTERNAL_ID_CHARS)?,
        expires_at: body
            .expires_in
            .map(|e| e.map(|secs| validate::expires_at(now, secs)).transpose())
            .transpose()?,
        status: body.status,
        status_reason,
    };
    let agent = s.registry.update_agent(&id, patch, change).await?;
    tracing::info!(agent_id = %agent.id, status = ?agent.status, outcome = "updated", "agent updated");
    Ok(Json(Data { data: agent }))
}

/// `DELETE /v1/agents/{id}`.
pub(crate) async fn delete(
    State(s): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    s.registry.delete_agent(&id, s.admin_change()).await?;
    tracing::info!(agent_id = %id, outcome = "deleted", "agent deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /v1/agents/{id}/verifiers` as read here: [`crate::issuer::CreateVerifier`] with the JWK
/// kept raw, so that a JWK naming a member twice is refused rather than read by its last one.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifierBody {
    #[serde(rename = "type")]
    kind: VerifierKind,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    jwk: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    account: Option<String>,
}

/// `POST /v1/agents/{id}/verifiers`: a new secret, returned this once; or the agent's public
/// key (`{"type": "jwk", "jwk": {…}}`); or a wallet (`{"type": "wallet", "account": …}`).
pub(crate) async fn add_verifier(
    State(s): State<Arc<Shared>>,
    ApiPath(agent_id): ApiPath<String>,
    JsonBody(body): JsonBody<VerifierBody>,
) -> Result<Response, ApiError> {
    let name = opt_text("name", body.name, MAX_NAME_CHARS)?;
    match (body.kind, body.jwk, body.account) {
        (VerifierKind::Secret, None, None) => {}
        (VerifierKind::Jwk, Some(jwk), None) => return add_jwk(&s, agent_id, name, &jwk).await,
        (VerifierKind::Wallet, None, Some(account)) => {
            return add_wallet(&s, agent_id, name, &account).await;
        }
        (VerifierKind::Jwk, None, _) => {
            return Err(ApiError::validation("type \"jwk\" requires a jwk"));
        }
        (VerifierKind::Wallet, _, None) => {
            return Err(ApiError::validation("type \"wallet\" requires an account"));
        }
        (_, Some(_), _) => {
            return Err(ApiError::validation(
                "jwk is only allowed with type \"jwk\"",
            ));
        }
        (_, _, Some(_)) => {
            return Err(ApiError::validation(
                "account is only allowed with type \"wallet\"",
            ));
        }
    }
    let secret = Secret::generate()?;
    let verifier = secret_verifier(agent_id, name, s.registry.now_ms())?;
    let credential = Credential::Secret(secret.hash());
    let verifier = s
        .registry
        .add_verifier(verifier, credential, s.admin_change())
        .await?;
    tracing::info!(agent_id = %verifier.agent_id, verifier_id = %verifier.id, outcome = "added", "secret verifier added");
    Ok((
        StatusCode::CREATED,
        Json(Data {
            data: CreatedSecret { verifier, secret },
        }),
    )
        .into_response())
}

/// Registers `jwk` (checked by `agent_keys`) as a verifier of `agent_id`.
async fn add_jwk(
    s: &Shared,
    agent_id: String,
    name: Option<String>,
    jwk: &serde_json::value::RawValue,
) -> Result<Response, ApiError> {
    let key = agent_keys::accept(jwk).map_err(|refusal| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_jwk",
            refusal.to_string(),
        )
    })?;
    let verifier = VerifierRecord {
        id: new_id("v_")?,
        agent_id,
        kind: VerifierKind::Jwk,
        status: VerifierStatus::Active,
        name,
        credential: CredentialInfo {
            kty: Some(key.kty.to_owned()),
            crv: key.crv.map(str::to_owned),
            alg: Some(key.alg.as_str().to_owned()),
            thumbprint: Some(key.thumbprint_b64()),
            ..CredentialInfo::default()
        },
        usage_count: 0,
        last_used_at: None,
        created_at: s.registry.now_ms(),
    };
    let credential = Credential::Jwk {
        thumbprint: key.thumbprint,
        jwk: key.stored_jwk,
    };
    let verifier = s
        .registry
        .add_verifier(verifier, credential, s.admin_change())
        .await?;
    tracing::info!(agent_id = %verifier.agent_id, verifier_id = %verifier.id, outcome = "added", "jwk verifier added");
    Ok((StatusCode::CREATED, Json(Data { data: verifier })).into_response())
}

/// Registers the wallet `account` (CAIP-10, validated and made canonical) as a verifier of
/// `agent_id`; `409` if any agent holds it already.
async fn add_wallet(
    s: &Shared,
    agent_id: String,
    name: Option<String>,
    account: &str,
) -> Result<Response, ApiError> {
    let account = wallets::account(account, Case::Checked)?.to_string();
    let verifier = VerifierRecord {
        id: new_id("v_")?,
        agent_id,
        kind: VerifierKind::Wallet,
        status: VerifierStatus::Active,
        name,
        credential: CredentialInfo {
            account: Some(account.clone()),
            ..CredentialInfo::default()
        },
        usage_count: 0,
        last_used_at: None,
        created_at: s.registry.now_ms(),
    };
    let verifier = s
        .registry
        .add_verifier(verifier, Credential::Wallet { account }, s.admin_change())
        .await?;
    tracing::info!(agent_id = %verifier.agent_id, verifier_id = %verifier.id, outcome = "added", "wallet verifier added");
    Ok((StatusCode::CREATED, Json(Data { data: verifier })).into_response())
}

/// `GET /v1/agents/{id}/verifiers` (at most 20, so never more than one page).
pub(crate) async fn list_verifiers(
    State(s): State<Arc<Shared>>,
    ApiPath(agent_id): ApiPath<String>,
) -> Result<Json<ListPage<VerifierRecord>>, ApiError> {
    let data = s.registry.verifiers(&agent_id).await?;
    Ok(Json(ListPage {
        data,
        next_cursor: None,
    }))
}

/// `DELETE /v1/agents/{id}/verifiers/{vid}`.
pub(crate) async fn delete_verifier(
    State(s): State<Arc<Shared>>,
    ApiPath((agent_id, verifier_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.registry
        .delete_verifier(&agent_id, &verifier_id, s.admin_change())
        .await?;
    tracing::info!(agent_id = %agent_id, verifier_id = %verifier_id, outcome = "removed", "verifier removed");
    Ok(StatusCode::NO_CONTENT)
}
