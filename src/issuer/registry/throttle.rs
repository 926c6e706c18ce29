//! The self-service write budget: at most [`SELF_SERVICE_WRITES_PER_MINUTE`] writes per agent
//! per minute, on the registry's clock. A generic cell rate algorithm (one "theoretical arrival
//! time" per agent): a full burst is allowed, then one write per `60 s / budget`; an agent
//! that waits gets its budget back. Bounded: agents whose budget is full again are forgotten
//! when the table grows.
//!
//! Kept in memory, per process: with several replicas each enforces it on its own.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most self-service writes (rotate, deactivate, reactivate, delete) per agent per minute.
pub const SELF_SERVICE_WRITES_PER_MINUTE: u32 = 10;

/// How many agents' budgets are kept before those that are full again are dropped.
const TRACKED_AGENTS: usize = 10_000;

/// Per-agent write budgets.
#[derive(Debug, Default)]
pub(crate) struct WriteBudget {
    /// Agent id → when its budget is full again (ms, "theoretical arrival time").
    full_at: Mutex<HashMap<String, i64>>,
}

impl WriteBudget {
    /// Spends one write of `agent_id` at `now_ms`; `Err(seconds)` when the budget is spent,
    /// with the time until the next write is allowed (at least one second).
    pub(crate) fn spend(&self, agent_id: &str, now_ms: i64) -> Result<(), u64> {
        const WINDOW_MS: i64 = 60_000;
        let interval = WINDOW_MS / i64::from(SELF_SERVICE_WRITES_PER_MINUTE);
        let tolerance = WINDOW_MS - interval;
        // A poisoned lock only means a panic elsewhere: the map itself is always consistent.
        let mut full_at = self
            .full_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if full_at.len() >= TRACKED_AGENTS && !full_at.contains_key(agent_id) {
            full_at.retain(|_, at| *at > now_ms);
        }
        let tat = full_at.get(agent_id).copied().unwrap_or(now_ms).max(now_ms);
        if tat - now_ms > tolerance {
            let wait_ms = tat - tolerance - now_ms;
            return Err(u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1));
        }
        full_at.insert(agent_id.to_owned(), tat + interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_writes_then_one_every_six_seconds() {
        let budget = WriteBudget::default();
        for _ in 0..SELF_SERVICE_WRITES_PER_MINUTE {
            budget.spend("a", 0).unwrap();
        }
        assert_eq!(budget.spend("a", 0), Err(6));
        // Another agent has its own budget.
        budget.spend("b", 0).unwrap();
        assert_eq!(budget.spend("a", 5_999), Err(1));
        budget.spend("a", 6_000).unwrap();
        assert!(budget.spend("a", 6_000).is_err());
        // A minute later, the whole budget is back.
        for _ in 0..SELF_SERVICE_WRITES_PER_MINUTE {
            budget.spend("a", 66_000).unwrap();
        }
        assert!(budget.spend("a", 66_000).is_err());
    }
}
