//! How often and how patiently a request to the issuer is tried again: capped exponential
//! backoff with jitter, so that many agents restarting together do not retry in lockstep.

use std::time::Duration;

use rand_core::RngCore as _;

/// Retries of transport errors, timeouts and `5xx`/`429` answers. Refusals (`4xx` with an
/// OAuth error) are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1). Default 4.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles with each further one. Default 200 ms.
    pub base_delay: Duration,
    /// The longest delay between two attempts (also the most a `Retry-After` is honoured).
    /// Default 5 s.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay after failed attempt `failed` (1-based): uniformly random in `[cap/2, cap]`
    /// with `cap = min(max_delay, base_delay * 2^(failed-1))`, or the server's `Retry-After`
    /// when that is longer (still at most `max_delay`).
    pub(crate) fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        let exp = failed.saturating_sub(1).min(30);
        let cap = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = cap / 2;
        let span = u64::try_from((cap - half).as_micros()).unwrap_or(u64::MAX);
        let jitter = if span == 0 {
            0
        } else {
            rand_core::OsRng.next_u64() % (span + 1)
        };
        let delay = half + Duration::from_micros(jitter);
        match retry_after {
            Some(after) if after > delay => after.min(self.max_delay),
            _ => delay,
        }
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_their_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        for _ in 0..100 {
            let d1 = p.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d2 = p.delay(2, None);
            assert!(d2 >= Duration::from_millis(100) && d2 <= Duration::from_millis(200));
            let d9 = p.delay(9, None);
            assert!(d9 >= Duration::from_millis(175) && d9 <= Duration::from_millis(350));
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(60))),
            Duration::from_millis(350),
            "Retry-After is honoured only up to max_delay"
        );
    }
}
