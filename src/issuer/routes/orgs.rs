//! Management API: organizations (`/v1/organizations`) and their members
//! (`/v1/organizations/{org}/members[/{member_id}]`). Agents are the only members this issuer
//! knows; memberships are never put in tokens (query them here).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::issuer::api::{CreateMembership, CreateOrganization, Data, ListPage};
use crate::issuer::errors::ApiError;
use crate::issuer::model::{MemberType, MembershipRecord, OrganizationRecord};
use crate::issuer::secrets::{is_id, new_base36_id};
use crate::issuer::state::Shared;
use crate::issuer::validate::{self, MAX_LABEL_CHARS, MAX_NAME_CHARS, opt_text};

use super::extract::{ApiPath, ApiQuery, JsonBody, PageQuery};

/// Length of the random part of an organization id.
const ORG_ID_CHARS: usize = 25;

/// Whether `id` is `org_` + 25 lowercase base36 characters.
fn is_org_id(id: &str) -> bool {
    id.strip_prefix("org_").is_some_and(|r| {
        r.len() == ORG_ID_CHARS
            && r.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// `POST /v1/organizations`.
pub(crate) async fn create(
    State(s): State<Arc<Shared>>,
    JsonBody(body): JsonBody<CreateOrganization>,
) -> Result<Response, ApiError> {
    let org = OrganizationRecord {
        id: new_base36_id("org_", ORG_ID_CHARS)?,
        name: validate::text("name", body.name, MAX_NAME_CHARS)?,
        created_at: s.registry.now_ms(),
    };
    let org = s
        .registry
        .create_organization(org, s.admin_change())
        .await?;
    tracing::info!(organization_id = %org.id, outcome = "created", "organization created");
    Ok((StatusCode::CREATED, Json(Data { data: org })).into_response())
}

/// `GET /v1/organizations/{org}`.
pub(crate) async fn get(
    State(s): State<Arc<Shared>>,
    ApiPath(org_id): ApiPath<String>,
) -> Result<Json<Data<OrganizationRecord>>, ApiError> {
    if !is_org_id(&org_id) {
        return Err(ApiError::not_found("organization"));
    }
    match s.registry.organization(&org_id).await? {
        Some(org) => Ok(Json(Data { data: org })),
        None => Err(ApiError::not_found("organization")),
    }
}

/// `POST /v1/organizations/{org}/members`: 404 unless both the organization and the agent
/// exist, 409 if it is already a member.
pub(crate) async fn add_member(
    State(s): State<Arc<Shared>>,
    ApiPath(org_id): ApiPath<String>,
    JsonBody(body): JsonBody<CreateMembership>,
) -> Result<Response, ApiError> {
    if !is_org_id(&org_id) {
        return Err(ApiError::not_found("organization"));
    }
    if !is_id(&body.member_id, "agt_") {
        // Only agents exist in this issuer: any other id names no member.
        return Err(ApiError::not_found("member"));
    }
    let membership = MembershipRecord {
        organization_id: org_id,
        member_id: body.member_id,
        member_type: MemberType::Agent,
        scopes: validate::scopes(body.scopes)?,
        user_title: opt_text("user_title", body.user_title, MAX_LABEL_CHARS)?,
        created_at: s.registry.now_ms(),
    };
    let m = s
        .registry
        .add_membership(membership, s.admin_change())
        .await?;
    tracing::info!(organization_id = %m.organization_id, agent_id = %m.member_id, outcome = "created", "membership created");
    Ok((StatusCode::CREATED, Json(Data { data: m })).into_response())
}

/// `GET /v1/organizations/{org}/members` (newest first, paginated).
pub(crate) async fn list_members(
    State(s): State<Arc<Shared>>,
    ApiPath(org_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<ListPage<MembershipRecord>>, ApiError> {
    if !is_org_id(&org_id) {
        return Err(ApiError::not_found("organization"));
    }
    let page = s.registry.memberships(&org_id, q.into_request()?).await?;
    Ok(Json(ListPage {
        data: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `DELETE /v1/organizations/{org}/members/{member_id}`.
pub(crate) async fn remove_member(
    State(s): State<Arc<Shared>>,
    ApiPath((org_id, member_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !is_org_id(&org_id) || member_id.len() > 64 {
        return Err(ApiError::not_found("membership"));
    }
    s.registry
        .delete_membership(&org_id, &member_id, s.admin_change())
        .await?;
    tracing::info!(organization_id = %org_id, agent_id = %member_id, outcome = "deleted", "membership deleted");
    Ok(StatusCode::NO_CONTENT)
}
