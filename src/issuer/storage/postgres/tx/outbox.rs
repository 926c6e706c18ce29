//! Webhook endpoints, their delivery queue (leased across replicas) and dead letters.

use super::{PgTx, from_json, get, to_i64, to_u64};
use crate::issuer::model::WebhookRecord;
use crate::issuer::storage::{PendingDelivery, StorageError, WebhookKey};

pub(super) fn webhooks(tx: &mut PgTx<'_>) -> Result<Vec<WebhookRecord>, StorageError> {
    let rows = tx.query("SELECT record, dropped FROM webhooks ORDER BY seq", &[])?;
    rows.iter()
        .map(|r| {
            let mut hook: WebhookRecord = from_json(&get::<String>(r, 0)?)?;
            hook.dropped_deliveries = to_u64(get(r, 1)?);
            Ok(hook)
        })
        .collect()
}

pub(super) fn pending(tx: &mut PgTx<'_>, webhook_id: &str) -> Result<u64, StorageError> {
    let rows = tx.query(
        "SELECT count(*) FROM deliveries WHERE webhook_id = $1",
        &[&webhook_id],
    )?;
    rows.first().map_or(Ok(0), |r| get::<i64>(r, 0).map(to_u64))
}

pub(super) fn dead_letter(
    tx: &mut PgTx<'_>,
    delivery_id: Option<i64>,
    webhook_id: &str,
    at: i64,
    keep: u64,
) -> Result<(), StorageError> {
    let moved = tx.query(
        "DELETE FROM deliveries WHERE webhook_id = $2 AND id = coalesce($1,
             (SELECT min(id) FROM deliveries WHERE webhook_id = $2))
         RETURNING message_id, attempts",
        &[&delivery_id, &webhook_id],
    )?;
    let Some(row) = moved.first() else {
        return Ok(());
    };
    let message_id: String = get(row, 0)?;
    let attempts: i64 = get(row, 1)?;
    tx.execute(
        "INSERT INTO dead_letters (webhook_id, message_id, attempts, dropped_at)
         VALUES ($1, $2, $3, $4)",
        &[&webhook_id, &message_id, &attempts, &at],
    )?;
    tx.execute(
        "UPDATE webhooks SET dropped = dropped + 1 WHERE id = $1",
        &[&webhook_id],
    )?;
    tx.execute(
        "DELETE FROM dead_letters WHERE webhook_id = $1 AND id <= (
             SELECT id FROM dead_letters WHERE webhook_id = $1
             ORDER BY id DESC LIMIT 1 OFFSET $2)",
        &[&webhook_id, &to_i64(keep)],
    )?;
    Ok(())
}

/// Up to `limit` messages due at `now_ms`, oldest due first. With `lease_until`, they are
/// also leased: due again only then, so that no other replica sends them meanwhile (rows
/// another transaction holds are skipped, not waited for); a replica that dies holding a
/// lease leaves its messages to the others once it runs out.
pub(super) fn due(
    tx: &mut PgTx<'_>,
    now_ms: i64,
    limit: usize,
    lease_until: Option<i64>,
) -> Result<Vec<PendingDelivery>, StorageError> {
    let limit = to_i64(limit as u64);
    let rows = match lease_until {
        None => tx.query(
            "SELECT d.id, w.record, w.key, d.message_id, d.payload, d.attempts, d.webhook_id
             FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.next_at <= $1 ORDER BY d.next_at, d.id LIMIT $2",
            &[&now_ms, &limit],
        )?,
        Some(until) => tx.query(
            "WITH leased AS (
                 UPDATE deliveries SET next_at = $3 WHERE id IN (
                     SELECT id FROM deliveries WHERE next_at <= $1
                     ORDER BY next_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id, webhook_id, message_id, payload, attempts)
             SELECT d.id, w.record, w.key, d.message_id, d.payload, d.attempts, d.webhook_id
             FROM leased d JOIN webhooks w ON w.id = d.webhook_id ORDER BY d.id",
            &[&now_ms, &limit, &until],
        )?,
    };
    rows.iter()
        .map(|r| {
            let hook: WebhookRecord = from_json(&get::<String>(r, 1)?)?;
            Ok(PendingDelivery {
                id: get(r, 0)?,
                webhook_id: get(r, 6)?,
                url: hook.url,
                key: WebhookKey(get(r, 2)?),
                message_id: get(r, 3)?,
                payload: get(r, 4)?,
                attempts: u32::try_from(get::<i64>(r, 5)?).unwrap_or(u32::MAX),
            })
        })
        .collect()
}
