//! Records of the issuer's later additions: organizations and memberships, webhook endpoints
//! and their delivery queue (the outbox), and the logic shared by every [`Store`] backend to
//! apply an [`AgentPatch`] and to derive webhook deliveries from an audit event.
//!
//! [`Store`]: super::Store

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::store::{
    AgentPatch, AgentRecord, AgentStatus, EventRecord, EventType, Page, StoreError,
};

/// Most webhook endpoints one issuer holds.
pub const MAX_WEBHOOKS: usize = 20;
/// Most delivery attempts of one webhook message (the first included); then it is dropped.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 12;

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationRecord {
    /// `org_` + 25 lowercase base36 characters.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A member of an organization. Only agents are members in this issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRecord {
    /// The organization.
    pub organization_id: String,
    /// The member's id (`agt_…`).
    pub member_id: String,
    /// `agent` for `agt_` ids.
    pub member_type: String,
    /// The member's scopes within the organization (not put in tokens).
    pub scopes: Vec<String>,
    /// The member's title.
    pub user_title: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A webhook endpoint, as the management API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// `wh_` + 32 hex.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<EventType>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A webhook signing key (the bytes behind `whsec_…`). `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookKey(pub Vec<u8>);

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

/// A message waiting in the outbox, as the delivery task gets it.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    /// Store-assigned id of this queue entry.
    pub id: i64,
    /// The endpoint.
    pub webhook_id: String,
    /// Its URL.
    pub url: String,
    /// Its signing key.
    pub key: WebhookKey,
    /// `webhook-id`: the event id (stable across retries).
    pub message_id: String,
    /// The JSON body.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A 2xx answer: the message leaves the queue.
    Delivered,
    /// Failed; try again at this instant (ms).
    RetryAt(i64),
    /// Failed for the last time: the message leaves the queue.
    GiveUp,
}

/// The Standard Webhooks body of `event`: `{"type", "timestamp", "data"}`.
pub fn webhook_payload(event: &EventRecord) -> Result<String, StoreError> {
    let body = serde_json::json!({
        "type": event.kind.as_str(),
        "timestamp": rfc3339_ms(event.created_at),
        "data": event,
    });
    serde_json::to_string(&body).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn encode_cursor(tag: char, seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}{seq}"))
}

pub(crate) fn decode_cursor(tag: char, cursor: &str) -> Result<u64, StoreError> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::InvalidCursor)?;
    let text = std::str::from_utf8(&raw).map_err(|_| StoreError::InvalidCursor)?;
    text.strip_prefix(tag)
        .and_then(|n| n.parse().ok())
        .ok_or(StoreError::InvalidCursor)
}

/// Newest-first page over `items` (ascending by sequence), `limit + 1` probing for more.
pub(crate) fn page_of<T>(mut picked: Vec<(u64, T)>, limit: usize, tag: char) -> Page<T> {
    let next_cursor = if picked.len() > limit {
        picked.truncate(limit);
        picked.last().map(|(seq, _)| encode_cursor(tag, *seq))
    } else {
        None
    };
    Page {
        items: picked.into_iter().map(|(_, t)| t).collect(),
        next_cursor,
    }
}

/// Sets `*field` to `new` if different, noting `name` in `changed`.
fn apply<T: PartialEq>(field: &mut T, new: Option<T>, name: &str, changed: &mut Vec<String>) {
    if let Some(new) = new {
        if *field != new {
            *field = new;
            changed.push(name.to_owned());
        }
    }
}

/// Applies `patch` to `r` (every backend's `update_agent` uses this), returning the names of
/// the fields that changed. Checks the status rules and `require_status`; not `external_id`
/// uniqueness, which needs the backend's index.
pub fn apply_patch(r: &mut AgentRecord, patch: AgentPatch) -> Result<Vec<String>, StoreError> {
    if let Some(required) = patch.require_status {
        if r.status != required {
            return Err(StoreError::Conflict(format!(
                "the agent is {}, not {}",
                status_name(r.status),
                status_name(required)
            )));
        }
    }
    let (status, reason) = match (patch.status, patch.status_reason) {
        (Some(AgentStatus::Suspended), Some(reason)) => {
            (Some(AgentStatus::Suspended), Some(Some(reason)))
        }
        (Some(AgentStatus::Suspended), None) => {
            return Err(StoreError::Invalid(
                "status_reason is required to suspend an agent".into(),
            ));
        }
        (Some(s), None) => (Some(s), Some(None)),
        (Some(_), Some(_)) => {
            return Err(StoreError::Invalid(
                "status_reason is only allowed with status \"suspended\"".into(),
            ));
        }
        (None, Some(reason)) if r.status == AgentStatus::Suspended => (None, Some(Some(reason))),
        (None, Some(_)) => {
            return Err(StoreError::Invalid(
                "status_reason can only be set on a suspended agent".into(),
            ));
        }
        (None, None) => (None, None),
    };
    let mut changed = Vec::new();
    let c = &mut changed;
    apply(&mut r.name, patch.name, "name", c);
    apply(&mut r.description, patch.description, "description", c);
    apply(&mut r.model, patch.model, "model", c);
    apply(&mut r.provider, patch.provider, "provider", c);
    apply(&mut r.version, patch.version, "version", c);
    apply(&mut r.scopes, patch.scopes, "scopes", c);
    apply(&mut r.external_id, patch.external_id, "external_id", c);
    apply(&mut r.expires_at, patch.expires_at, "expires_at", c);
    apply(&mut r.status, status, "status", c);
    apply(&mut r.status_reason, reason, "status_reason", c);
    Ok(changed)
}

/// The wire name of a status.
pub(crate) fn status_name(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Active => "active",
        AgentStatus::Suspended => "suspended",
        AgentStatus::Deactivated => "deactivated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_781_222_400_123), "2026-06-12T00:00:00.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
