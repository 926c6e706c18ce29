//! Rules of the audit log and its outbox: every change's events are written in the change's
//! transaction together with one queued delivery per webhook subscribed to the event's type;
//! webhook endpoints (at most [`MAX_WEBHOOKS`]); the delivery queue's bookkeeping; and the
//! bounds that keep a flood from filling storage: at most [`MAX_AGENT_EVENTS`] events caused
//! by agents (the oldest go; events administrators caused are never evicted by them), at most
//! [`MAX_PENDING_DELIVERIES`] queued per webhook (the oldest goes to the dead letters, counted
//! in `dropped_deliveries`, as does a message that failed its last attempt).

use serde::Serialize;

use crate::issuer::model::{
    ActorKind, EventFilter, EventRecord, EventType, Page, PageRequest, WebhookRecord,
};
use crate::issuer::secrets::new_id;
use crate::issuer::storage::{PendingDelivery, StorageError, Tx, WebhookKey};

use super::{Change, MAX_WEBHOOKS, Object, Registry, RuleError};

/// Most events caused by agents (self-service) kept; the oldest of them go first.
pub const MAX_AGENT_EVENTS: u64 = 100_000;
/// Most messages queued for one webhook; a new one then drops the oldest.
pub const MAX_PENDING_DELIVERIES: u64 = 1_000;
/// Dead letters (dropped messages: id and attempts) kept per webhook.
const MAX_DEAD_LETTERS: u64 = 1_000;
/// How long a replica holds the webhook messages it is sending (storage shared by replicas):
/// longer than an attempt can take (15 s), so that no other replica sends them meanwhile;
/// short enough that a dead replica's messages are sent by another within a minute.
pub const DELIVERY_LEASE_MS: i64 = 30_000;

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryOutcome {
    /// A 2xx answer: the message leaves the queue.
    Delivered,
    /// Failed; try again at this instant (ms).
    RetryAt(i64),
    /// Failed for the last time: the message leaves the queue for the dead letters.
    GiveUp,
}

/// Writes one audit event of `change` (a fresh `evt_` id; `data` is `object` after the change)
/// and queues it for every webhook subscribed to `kind`.
pub(super) fn emit(
    tx: &mut dyn Tx,
    change: &Change,
    kind: EventType,
    agent_id: Option<&str>,
    object: &impl Serialize,
    changed: Vec<String>,
) -> Result<(), RuleError> {
    let event = EventRecord {
        id: new_id("evt_")?,
        kind,
        created_at: change.at,
        agent_id: agent_id.map(str::to_owned),
        actor: change.actor.clone(),
        data: serde_json::to_value(object).map_err(StorageError::backend)?,
        changed,
    };
    tx.insert_event(&event)?;
    if event.actor.kind == ActorKind::Agent {
        // What agents cause is bounded apart: it never evicts what administrators caused.
        tx.trim_agent_events(change.bounds.agent_events)?;
    }
    let mut payload = None;
    for hook in tx.webhooks()? {
        if !hook.events.contains(&kind) {
            continue;
        }
        // A full queue (a receiver down for long, or a flood) drops its oldest message.
        while tx.pending_deliveries(&hook.id)? >= change.bounds.pending_per_webhook.max(1) {
            tx.dead_letter(None, &hook.id, change.at, MAX_DEAD_LETTERS)?;
            tracing::warn!(webhook_id = %hook.id, outcome = "dead_lettered", "webhook queue full: oldest message dropped");
        }
        let body = match &payload {
            Some(p) => p,
            None => payload.insert(webhook_payload(&event)?),
        };
        tx.enqueue_delivery(&hook.id, &event.id, body, event.created_at)?;
    }
    Ok(())
}

/// The Standard Webhooks body of `event`: `{"type", "timestamp", "data"}`.
fn webhook_payload(event: &EventRecord) -> Result<String, StorageError> {
    let body = serde_json::json!({
        "type": event.kind.as_str(),
        "timestamp": rfc3339_ms(event.created_at),
        "data": event,
    });
    serde_json::to_string(&body).map_err(StorageError::backend)
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

impl Registry {
    /// Audit events, newest first.
    pub(crate) async fn events(
        &self,
        filter: EventFilter,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, RuleError> {
        self.storage
            .read(move |tx| Ok(tx.events(&filter, &page)?))
            .await
    }

    /// Stores a webhook endpoint (at most [`MAX_WEBHOOKS`]); from now on every event of its
    /// types is queued for it.
    pub(crate) async fn create_webhook(
        &self,
        hook: WebhookRecord,
        key: WebhookKey,
    ) -> Result<WebhookRecord, RuleError> {
        self.write(move |tx| {
            if tx.webhooks()?.len() >= MAX_WEBHOOKS {
                return Err(RuleError::TooManyWebhooks);
            }
            tx.insert_webhook(&hook, &key)?;
            Ok(hook.clone())
        })
        .await
    }

    /// The webhook endpoints, oldest first.
    pub(crate) async fn webhooks(&self) -> Result<Vec<WebhookRecord>, RuleError> {
        self.storage.read(|tx| Ok(tx.webhooks()?)).await
    }

    /// Removes a webhook endpoint and its queued messages.
    pub(crate) async fn delete_webhook(&self, id: &str) -> Result<(), RuleError> {
        let id = id.to_owned();
        self.write(move |tx| match tx.delete_webhook(&id)? {
            true => Ok(()),
            false => Err(RuleError::NotFound(Object::Webhook)),
        })
        .await
    }

    /// Up to `limit` queued messages due now, oldest due first. When other replicas share the
    /// storage, each is leased to this one for [`DELIVERY_LEASE_MS`]: no other replica sends
    /// it meanwhile, and if this one dies, another sends it once the lease has run out.
    pub(crate) async fn due_deliveries(
        &self,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, RuleError> {
        let now = self.now_ms();
        if self.storage.is_exclusive() {
            return self
                .storage
                .read(move |tx| Ok(tx.due_deliveries(now, limit)?))
                .await;
        }
        let until = now.saturating_add(DELIVERY_LEASE_MS);
        self.storage
            .write_read_committed(move |tx| Ok(tx.lease_deliveries(now, limit, until)?))
            .await
    }

    /// The earliest instant (ms) at which a queued message is due.
    pub(crate) async fn next_delivery_at(&self) -> Result<Option<i64>, RuleError> {
        self.storage.read(|tx| Ok(tx.next_delivery_at()?)).await
    }

    /// Records the outcome of an attempt at delivery `id`.
    pub(crate) async fn finish_delivery(
        &self,
        id: i64,
        webhook_id: &str,
        outcome: DeliveryOutcome,
    ) -> Result<(), RuleError> {
        let webhook_id = webhook_id.to_owned();
        let now = self.clock.now_ms();
        self.storage
            .write(move |tx| {
                match outcome {
                    DeliveryOutcome::Delivered => tx.delete_delivery(id),
                    DeliveryOutcome::GiveUp => {
                        tx.dead_letter(Some(id), &webhook_id, now, MAX_DEAD_LETTERS)
                    }
                    DeliveryOutcome::RetryAt(at) => tx.reschedule_delivery(id, at),
                }?;
                Ok(())
            })
            .await
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
