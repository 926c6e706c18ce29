//! Rate budgets on the registry's clock: at most `per_minute` events per key (an agent's
//! self-service writes, a client address's failed admin logins). A generic cell rate
//! algorithm, one "theoretical arrival time" per key: a full burst is allowed, then one event
//! per `60 s / per_minute`; a key that waits gets its budget back. Bounded: keys whose budget is
//! full again are forgotten when the table grows, and past [`TRACKED_KEYS`] live keys it starts
//! over (memory stays bounded whatever the traffic; a flood of fresh keys then only resets
//! budgets).
//!
//! Kept in memory, per process: with several replicas each enforces it on its own.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most self-service writes (rotate, deactivate, reactivate, delete) per agent per minute.
pub const SELF_SERVICE_WRITES_PER_MINUTE: u32 = 10;

/// Most failed admin authentications per client address per minute.
pub const ADMIN_FAILURES_PER_MINUTE: u32 = 10;

/// How many keys' budgets are kept at most.
const TRACKED_KEYS: usize = 10_000;

const WINDOW_MS: i64 = 60_000;

/// Per-key budgets of `per_minute` events.
#[derive(Debug)]
pub(crate) struct RateBudget {
    per_minute: u32,
    /// Key → when its budget is full again (ms, "theoretical arrival time").
    full_at: Mutex<HashMap<String, i64>>,
}

impl RateBudget {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            full_at: Mutex::new(HashMap::new()),
        }
    }

    fn interval(&self) -> i64 {
        WINDOW_MS / i64::from(self.per_minute)
    }

    /// `Err(seconds)` (at least one) while `key` has no event left at `now_ms`.
    pub(crate) fn check(&self, key: &str, now_ms: i64) -> Result<(), u64> {
        let full_at = self.lock();
        let tat = full_at.get(key).copied().unwrap_or(now_ms).max(now_ms);
        self.verdict(tat, now_ms)
    }

    /// Spends one event of `key` at `now_ms`; `Err(seconds)` when none is left (nothing spent).
    pub(crate) fn spend(&self, key: &str, now_ms: i64) -> Result<(), u64> {
        let mut full_at = self.lock();
        if full_at.len() >= TRACKED_KEYS && !full_at.contains_key(key) {
            full_at.retain(|_, at| *at > now_ms);
            if full_at.len() >= TRACKED_KEYS {
                full_at.clear();
            }
        }
        let tat = full_at.get(key).copied().unwrap_or(now_ms).max(now_ms);
        self.verdict(tat, now_ms)?;
        full_at.insert(key.to_owned(), tat + self.interval());
        Ok(())
    }

    fn verdict(&self, tat: i64, now_ms: i64) -> Result<(), u64> {
        let tolerance = WINDOW_MS - self.interval();
        if tat - now_ms > tolerance {
            let wait_ms = tat - tolerance - now_ms;
            return Err(u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // A poisoned lock only means a panic elsewhere: the map itself is always consistent.
        self.full_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_writes_then_one_every_six_seconds() {
        let budget = RateBudget::new(SELF_SERVICE_WRITES_PER_MINUTE);
        for _ in 0..SELF_SERVICE_WRITES_PER_MINUTE {
            budget.spend("a", 0).unwrap();
        }
        assert_eq!(budget.spend("a", 0), Err(6));
        assert_eq!(budget.check("a", 0), Err(6));
        // Another key has its own budget.
        budget.spend("b", 0).unwrap();
        assert_eq!(budget.spend("a", 5_999), Err(1));
        budget.check("a", 6_000).unwrap();
        budget.spend("a", 6_000).unwrap();
        assert!(budget.spend("a", 6_000).is_err());
        // A minute later, the whole budget is back.
        for _ in 0..SELF_SERVICE_WRITES_PER_MINUTE {
            budget.spend("a", 66_000).unwrap();
        }
        assert!(budget.spend("a", 66_000).is_err());
    }
}
