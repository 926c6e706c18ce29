//! Management API: webhook endpoints (`/v1/webhooks[/{id}]`). Creating one returns its
//! signing secret (`whsec_` + base64 of 32 random bytes) this once; deliveries follow the
//! Standard Webhooks specification (see [`crate::webhooks`] and the issuer's delivery task).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::issuer::api::{CreateWebhook, CreatedWebhook, Data, ListPage};
use crate::issuer::errors::ApiError;
use crate::issuer::model::{EventType, WebhookRecord};
use crate::issuer::secrets::{Secret, fill_random, is_id, new_id};
use crate::issuer::state::Shared;
use crate::issuer::storage::WebhookKey;
use crate::issuer::webhook_target::WebhookPolicy;

use super::extract::{ApiPath, JsonBody};

/// Longest webhook URL, in bytes.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;

fn check_url(raw: &str, policy: WebhookPolicy) -> Result<(), ApiError> {
    let bad = |m: &'static str| Err(ApiError::validation(m));
    if raw.len() > MAX_WEBHOOK_URL_LEN {
        return bad("url is too long");
    }
    let Ok(url) = url::Url::parse(raw) else {
        return bad("url must be an absolute URL");
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return bad("url must be an http or https URL with a host");
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return bad("url must not contain user info or a fragment");
    }
    policy.check_url(&url).map_err(ApiError::validation)
}

fn parse_events(names: Vec<String>) -> Result<Vec<EventType>, ApiError> {
    if names.is_empty() || names.len() > EventType::ALL.len() * 2 {
        return Err(ApiError::validation(format!(
            "events must list 1 to {} event types",
            EventType::ALL.len()
        )));
    }
    let mut out = Vec::new();
    for name in names {
        let kind = EventType::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            ApiError::validation(format!("unknown event type; known: {}", known.join(", ")))
        })?;
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(out)
}

/// `POST /v1/webhooks`.
pub(crate) async fn create(
    State(s): State<Arc<Shared>>,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> Result<Response, ApiError> {
    check_url(&body.url, s.webhook_policy)?;
    let events = parse_events(body.events)?;
    let mut key = vec![0u8; 32];
    fill_random(&mut key)?;
    let secret = Secret::new(format!("whsec_{}", STANDARD.encode(&key)));
    let webhook = WebhookRecord {
        id: new_id("wh_")?,
        url: body.url,
        events,
        created_at: s.registry.now_ms(),
        dropped_deliveries: 0,
    };
    let webhook = s.registry.create_webhook(webhook, WebhookKey(key)).await?;
    tracing::info!(webhook_id = %webhook.id, outcome = "created", "webhook created");
    Ok((
        StatusCode::CREATED,
        Json(Data {
            data: CreatedWebhook { webhook, secret },
        }),
    )
        .into_response())
}

/// `GET /v1/webhooks` (at most 20, one page).
pub(crate) async fn list(
    State(s): State<Arc<Shared>>,
) -> Result<Json<ListPage<WebhookRecord>>, ApiError> {
    let data = s.registry.webhooks().await?;
    Ok(Json(ListPage {
        data,
        next_cursor: None,
    }))
}

/// `DELETE /v1/webhooks/{id}` (its queued messages are dropped).
pub(crate) async fn delete(
    State(s): State<Arc<Shared>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !is_id(&id, "wh_") {
        return Err(ApiError::not_found("webhook"));
    }
    s.registry.delete_webhook(&id).await?;
    tracing::info!(webhook_id = %id, outcome = "deleted", "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}
