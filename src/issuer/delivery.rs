//! The webhook delivery task: drains the outbox that the registry fills together with each
//! audit event.
//!
//! At-least-once: a message leaves the queue only after a `2xx` answer (or after
//! [`MAX_DELIVERY_ATTEMPTS`]); a crash between the POST and that bookkeeping sends it again,
//! with the same `webhook-id` for the receiver to deduplicate. Failed attempts are retried with
//! exponential backoff (`base · 2^attempts`, capped). API calls never wait for any of this:
//! they only wake the task.
//!
//! The HTTP client has connect and total timeouts, follows no redirects, ignores proxy
//! settings, and connects only where the [`WebhookPolicy`] allows: each URL is checked again
//! before each attempt, and names resolve only to allowed addresses (`webhook_target`). A
//! message whose target the policy refuses is dropped into the dead letters at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::clock::Clock;
use super::registry::{DeliveryOutcome, MAX_DELIVERY_ATTEMPTS, Registry};
use super::storage::PendingDelivery;
use super::webhook_target::{GuardedResolver, WebhookPolicy};

/// Messages fetched per round.
const BATCH: usize = 32;
/// Longest sleep between two looks at the queue (also covers other replicas' messages).
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Retry schedule of webhook deliveries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubles after each further one.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 5 s, doubling, at most 1 h apart: 12 attempts span about 3 hours.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt after `failures` failed attempts (≥ 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Runs the delivery loop forever.
pub(crate) async fn run(registry: Arc<Registry>, retry: RetryPolicy, policy: WebhookPolicy) {
    let registry = &*registry;
    let clock = registry.clock();
    let wake: &Notify = registry.outbox();
    let http = match reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // Names resolve only to addresses the policy allows (checked on what is connected to).
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook HTTP client could not be built; no deliveries");
            return;
        }
    };
    loop {
        let due = match registry.due_deliveries(BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "webhook queue could not be read");
                Vec::new()
            }
        };
        let full = due.len() == BATCH;
        let attempts = due.into_iter().map(|d| {
            let http = http.clone();
            async move {
                let id = d.id;
                let outcome = attempt(&http, &**clock, &d, retry, policy).await;
                if let Err(e) = registry.finish_delivery(id, &d.webhook_id, outcome).await {
                    tracing::error!(error = %e, "webhook delivery outcome not recorded");
                }
            }
        });
        futures_util::future::join_all(attempts).await;
        if full {
            continue;
        }
        let wait = match registry.next_delivery_at().await {
            Ok(Some(at)) => {
                let ms = at.saturating_sub(clock.now_ms()).max(0);
                Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(IDLE_POLL)
            }
            _ => IDLE_POLL,
        };
        if wait.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn attempt(
    http: &reqwest::Client,
    clock: &dyn Clock,
    d: &PendingDelivery,
    retry: RetryPolicy,
    policy: WebhookPolicy,
) -> DeliveryOutcome {
    let target = url::Url::parse(&d.url)
        .map_err(|_| "not a URL")
        .and_then(|url| policy.check_url(&url));
    if let Err(why) = target {
        tracing::warn!(webhook_id = %d.webhook_id, message_id = %d.message_id, reason = why, outcome = "dropped", "webhook target refused by the policy");
        return DeliveryOutcome::GiveUp;
    }
    let timestamp = clock.now_ms().div_euclid(1000);
    let signature =
        crate::webhooks::sign_with_key(&d.key.0, &d.message_id, timestamp, d.payload.as_bytes());
    let result = http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    let failures = d.attempts.saturating_add(1);
    match result {
        Ok(res) if res.status().is_success() => {
            tracing::debug!(webhook_id = %d.webhook_id, message_id = %d.message_id, outcome = "delivered", "webhook delivered");
            return DeliveryOutcome::Delivered;
        }
        Ok(res) => {
            tracing::info!(webhook_id = %d.webhook_id, message_id = %d.message_id, status = res.status().as_u16(), attempt = failures, "webhook delivery refused");
        }
        Err(e) => {
            tracing::info!(webhook_id = %d.webhook_id, message_id = %d.message_id, error = %e, attempt = failures, "webhook delivery failed");
        }
    }
    if failures >= MAX_DELIVERY_ATTEMPTS {
        tracing::warn!(webhook_id = %d.webhook_id, message_id = %d.message_id, outcome = "dropped", "webhook message dropped after the last attempt");
        return DeliveryOutcome::GiveUp;
    }
    let delay = i64::try_from(retry.delay(failures).as_millis()).unwrap_or(i64::MAX);
    DeliveryOutcome::RetryAt(clock.now_ms().saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_secs(5));
        assert_eq!(p.delay(2), Duration::from_secs(10));
        assert_eq!(p.delay(4), Duration::from_secs(40));
        assert_eq!(p.delay(40), Duration::from_secs(3600));
    }
}
