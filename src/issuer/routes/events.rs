//! Management API: the audit log, `GET /v1/events?type=&agent_id=&limit=&cursor=`, newest first.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::issuer::api::ListPage;
use crate::issuer::errors::ApiError;
use crate::issuer::model::{EventFilter, EventRecord, EventType};
use crate::issuer::state::Shared;

use super::extract::{ApiQuery, PageQuery};

#[derive(Debug, Deserialize)]
pub(crate) struct EventQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    agent_id: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/events`.
pub(crate) async fn list(
    State(s): State<Arc<Shared>>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<ListPage<EventRecord>>, ApiError> {
    let kind = q
        .kind
        .map(|k| {
            EventType::parse(&k).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                ApiError::bad_request(format!("unknown event type; known: {}", known.join(", ")))
            })
        })
        .transpose()?;
    if q.agent_id.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::bad_request("agent_id is too long"));
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .into_request()?;
    let filter = EventFilter {
        kind,
        agent_id: q.agent_id,
    };
    let page = s.registry.events(filter, page).await?;
    Ok(Json(ListPage {
        data: page.items,
        next_cursor: page.next_cursor,
    }))
}
