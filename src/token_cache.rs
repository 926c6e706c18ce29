//! The verified-token cache: a token that verified once is served from memory until its `exp`
//! (leeway included, never longer) and never after its signing key left the JWKS.
//!
//! The key is the whole token, compared byte for byte, so a token sharing a prefix with a
//! cached one, or differing in one byte, misses. Only tokens that passed every check are
//! stored, so filling the cache takes tokens the issuer really signed. Entries are bounded by
//! count and by bytes; a hit allocates nothing and takes no lock held across an await (moka's
//! concurrent map).

use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::agent::Agent;

/// Bytes an entry costs beyond its token and claims: the `Agent` allocation, its boxed
/// fields, and moka's bookkeeping (measured by `benches/verify.rs` at about 680, rounded up).
const ENTRY_OVERHEAD_BYTES: usize = 720;

/// Cache bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenCacheLimits {
    pub(crate) max_entries: u64,
    pub(crate) max_bytes: u64,
}

#[derive(Clone)]
struct Entry {
    agent: Agent,
    /// Unix seconds after which the token is expired (`exp` + leeway).
    valid_until: i64,
    /// The key-set revocation epoch when the token verified.
    key_epoch: u64,
}

pub(crate) struct TokenCache {
    entries: Cache<Box<str>, Entry, ahash::RandomState>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

/// Each entry lives until its token expires.
struct UntilExpiry;

impl Expiry<Box<str>, Entry> for UntilExpiry {
    fn expire_after_create(&self, _: &Box<str>, entry: &Entry, _: Instant) -> Option<Duration> {
        let left = entry.valid_until.saturating_sub(crate::verify::unix_now());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

impl TokenCache {
    pub(crate) fn new(limits: TokenCacheLimits) -> Self {
        // Every entry weighs at least max_bytes / max_entries, so a total weight within
        // max_bytes also keeps the count within max_entries.
        let min_weight = (limits.max_bytes / limits.max_entries.max(1)).max(1);
        let entries = Cache::<Box<str>, Entry>::builder()
            .max_capacity(limits.max_bytes)
            .weigher(move |token, entry: &Entry| {
                let bytes = token.len() + entry.agent.claims_len() + ENTRY_OVERHEAD_BYTES;
                u32::try_from((bytes as u64).max(min_weight)).unwrap_or(u32::MAX)
            })
            .expire_after(UntilExpiry)
            .build_with_hasher(ahash::RandomState::new());
        TokenCache { entries }
    }

    /// The agent of `token` if it verified before, is not expired at `now` (Unix seconds) and
    /// its key is still published (`key_epoch` unchanged).
    pub(crate) fn get(&self, token: &str, now: i64, key_epoch: u64) -> Option<Agent> {
        let entry = self.entries.get(token)?;
        if now < entry.valid_until && entry.key_epoch == key_epoch {
            Some(entry.agent)
        } else {
            None
        }
    }

    /// Remembers a token that just passed every check.
    pub(crate) fn insert(&self, token: &str, agent: &Agent, leeway_secs: i64, key_epoch: u64) {
        let entry = Entry {
            agent: agent.clone(),
            valid_until: agent.expires_at().saturating_add(leeway_secs),
            key_epoch,
        };
        self.entries.insert(token.into(), entry);
    }

    /// Applies pending evictions and reports (entries, weighted bytes).
    pub(crate) fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}
