//! The verified-token cache: a token that verified once is served from memory until its `exp`
//! (leeway included, never longer) and never after its signing key left the JWKS.
//!
//! The key is the whole token, compared byte for byte, so a token sharing a prefix with a
//! cached one, or differing in one byte, misses. Only tokens that passed every check are
//! stored, so filling the cache takes tokens the issuer really signed. Entries are bounded by
//! count and by bytes. A hit allocates nothing and holds a shard's read lock only for the
//! lookup (quick_cache: measured 65 ns per hit on a 550-byte token against moka's 164 ns, see
//! BENCHMARKS.md); no lock is ever held across an await.

use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};

use crate::agent::Agent;

/// Bytes an entry costs beyond its token and claims JSON: the `Agent` allocation, its boxed
/// fields and the cache's bookkeeping come to about 450 (`benches/verify.rs` measures 1,329
/// bytes per entry for a 549-byte token), and the claims map that `Agent::claims` builds on
/// first use to about 1,100 more. Entries are weighed as if every handler asked for it.
const ENTRY_OVERHEAD_BYTES: usize = 1600;

/// A shard never holds less than this many bytes, so that one large entry always fits.
const MIN_SHARD_BYTES: u64 = 256 * 1024;

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
    /// Which configured issuer's keys verified it.
    issuer: usize,
    /// That issuer's key-set revocation epoch when the token verified.
    key_epoch: u64,
}

/// An entry weighs its bytes, and at least `max_bytes / max_entries`: a total weight within
/// `max_bytes` then also keeps the count within `max_entries`.
#[derive(Clone)]
struct EntryWeight {
    min_weight: u64,
}

impl Weighter<Box<[u8]>, Entry> for EntryWeight {
    fn weight(&self, token: &Box<[u8]>, entry: &Entry) -> u64 {
        let bytes = token.len() + entry.agent.claims_len() + ENTRY_OVERHEAD_BYTES;
        (bytes as u64).max(self.min_weight)
    }
}

pub(crate) struct TokenCache {
    entries: Cache<Box<[u8]>, Entry, EntryWeight, ahash::RandomState>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl TokenCache {
    pub(crate) fn new(limits: TokenCacheLimits) -> Self {
        let max_entries = limits.max_entries.max(1);
        let shards = (limits.max_bytes / MIN_SHARD_BYTES).clamp(1, 16);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(usize::try_from(max_entries.min(1 << 20)).unwrap_or(1 << 20))
            .weight_capacity(limits.max_bytes)
            .shards(shards as usize)
            .build();
        let weigher = EntryWeight {
            min_weight: (limits.max_bytes / max_entries).max(1),
        };
        let entries = match options {
            Ok(options) => Cache::with_options(
                options,
                weigher,
                ahash::RandomState::new(),
                Default::default(),
            ),
            // Only an out-of-range hot allocation can fail to build, and none is set.
            Err(_) => Cache::with(
                1024,
                limits.max_bytes,
                weigher,
                ahash::RandomState::new(),
                Default::default(),
            ),
        };
        TokenCache { entries }
    }

    /// The agent of `token` if it verified before, is not expired at `now` (Unix seconds) and
    /// its key is still published: `key_epoch` gives the current revocation epoch of an
    /// issuer's keys (`None` when they are not usable), which must be the one it verified under.
    pub(crate) fn get(
        &self,
        token: &[u8],
        now: i64,
        key_epoch: impl FnOnce(usize) -> Option<u64>,
    ) -> Option<Agent> {
        let entry = self.entries.get(token)?;
        if now < entry.valid_until && key_epoch(entry.issuer) == Some(entry.key_epoch) {
            Some(entry.agent)
        } else {
            // Expired or revoked: it can never be served again.
            self.entries.remove(token);
            None
        }
    }

    /// Remembers a token that just passed every check.
    pub(crate) fn insert(
        &self,
        token: &str,
        agent: &Agent,
        leeway_secs: i64,
        (issuer, key_epoch): (usize, u64),
    ) {
        let entry = Entry {
            agent: agent.clone(),
            valid_until: agent.expires_at().saturating_add(leeway_secs),
            issuer,
            key_epoch,
        };
        self.entries.insert(token.as_bytes().into(), entry);
    }

    /// (entries, weighted bytes).
    pub(crate) fn usage(&self) -> (u64, u64) {
        (self.entries.len() as u64, self.entries.weight())
    }
}
