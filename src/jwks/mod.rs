//! The issuer's signing keys: fetched, cached, refreshed.
//!
//! Readers never lock: the current [`KeySet`] sits behind an [`ArcSwap`]. Writers (a refresh)
//! serialise on one async mutex, which makes every fetch single-flight. Three things fetch:
//!
//! * the background task, shortly before the keys' freshness runs out (and, after a failure,
//!   again after the cooldown), for as long as any layer clone is alive;
//! * a token whose `kid` we do not know, at most once per cooldown however many such tokens
//!   arrive;
//! * a request finding no usable keys at all (never fetched, or the last good keys older than
//!   `max_stale`), at most once per cooldown; meanwhile such requests get `503`.
//!
//! A failed refresh keeps the last good keys: they keep verifying for up to `max_stale`.

mod fetch;
mod keys;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use tokio::sync::{Mutex, Notify};
use url::Url;

use crate::algorithm::Algorithm;
use crate::error::{AuthError, InvalidToken};
use crate::metrics::JwksMetrics;
pub use fetch::JwksFetchError;
use fetch::{Fetcher, JwksResponse};
#[cfg(feature = "issuer")]
pub(crate) use keys::KeyError;
pub(crate) use keys::{KeySet, Lookup, VerifyingKey};

/// Where the JWKS lives.
#[derive(Debug, Clone)]
pub(crate) enum JwksSource {
    Uri(Url),
    /// Read `jwks_uri` from the issuer's RFC 8414 metadata on first use.
    Discover,
}

/// Cache bounds and timings.
#[derive(Debug, Clone)]
pub(crate) struct JwksConfig {
    pub(crate) source: JwksSource,
    pub(crate) default_ttl: Duration,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) max_stale: Duration,
}

/// One immutable generation of keys.
#[derive(Debug)]
struct KeyState {
    keys: KeySet,
    generation: u64,
    /// When the background task should fetch again.
    refresh_at: Instant,
    /// After this the keys are too old to trust; `None` until the first successful fetch.
    usable_until: Option<Instant>,
    /// The same deadline in Unix seconds, for the token cache's clock (0 until the first fetch).
    usable_until_unix: i64,
    /// When these keys were last fetched or confirmed (`304`); `None` before the first fetch.
    confirmed_at: Option<Instant>,
    /// Changes whenever a refresh drops or changes a key: what was verified under an older
    /// epoch must be verified again (the token cache compares it on every hit).
    revocation_epoch: u64,
}

impl KeyState {
    fn usable(&self, now: Instant) -> bool {
        self.usable_until.is_some_and(|until| now < until)
    }
}

/// What only the (single) refresher touches.
#[derive(Debug, Default)]
struct RefreshState {
    jwks_uri: Option<Url>,
    etag: Option<HeaderValue>,
}

/// The shared key cache; clones of the layer hold one `Arc` of it.
pub(crate) struct JwksCache {
    issuer: Box<str>,
    config: JwksConfig,
    fetcher: Fetcher,
    state: ArcSwap<KeyState>,
    refresh: Mutex<RefreshState>,
    /// Time base for the atomics below.
    epoch: Instant,
    /// Milliseconds after `epoch` (plus one; zero = never) of the last on-demand fetch.
    last_on_demand: AtomicU64,
    /// Counts fetches that reached the network, for diagnostics and tests.
    fetches: AtomicU64,
    background_started: AtomicBool,
    /// Keys come from [`serve_local`](Self::serve_local): nothing is ever fetched.
    local: AtomicBool,
    /// Wakes the background task: new keys (a new deadline to compute) or the cache dropped.
    wake: Arc<Notify>,
    metrics: JwksMetrics,
}

/// What a readiness probe wants to know of one issuer's keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyStatus {
    pub(crate) keys: usize,
    pub(crate) age: Option<Duration>,
    pub(crate) usable: bool,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("issuer", &self.issuer)
            .field("keys", &self.state.load().keys.len())
            .finish_non_exhaustive()
    }
}

impl Drop for JwksCache {
    fn drop(&mut self) {
        // Wake the background task so it notices the cache is gone and exits now.
        self.wake.notify_one();
    }
}

impl JwksCache {
    pub(crate) fn new(issuer: &str, config: JwksConfig) -> Result<Self, reqwest::Error> {
        let fetcher = Fetcher::new(config.timeout, config.max_bytes)?;
        let now = Instant::now();
        let jwks_uri = match &config.source {
            JwksSource::Uri(url) => Some(url.clone()),
            JwksSource::Discover => None,
        };
        Ok(JwksCache {
            issuer: issuer.into(),
            fetcher,
            state: ArcSwap::from_pointee(KeyState {
                keys: KeySet::default(),
                generation: 0,
                refresh_at: now,
                usable_until: None,
                usable_until_unix: 0,
                confirmed_at: None,
                revocation_epoch: 0,
            }),
            refresh: Mutex::new(RefreshState {
                jwks_uri,
                etag: None,
            }),
            epoch: now,
            last_on_demand: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            background_started: AtomicBool::new(false),
            local: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            metrics: JwksMetrics::register(issuer),
            config,
        })
    }

    /// Serves `keys`, handed over in process, and never fetches again: an unknown `kid` is
    /// refused at once, and keys never go stale. For a verifier that lives beside its issuer
    /// (the bundled issuer's self-service, which must not trust whoever answers at its public
    /// URL) and for offline verification (fuzzing, conformance tests). Call it again with the
    /// new set after each change; dropping or changing a key invalidates what was verified
    /// with it, exactly as a fetched change does.
    #[cfg(any(feature = "issuer", feature = "internals"))]
    pub(crate) fn serve_local(&self, keys: KeySet) {
        let forever = Duration::from_secs(100 * 365 * 24 * 60 * 60);
        let now = Instant::now();
        self.local.store(true, Ordering::Release);
        let current = self.state.load_full();
        let revoked = !keys.retains_all(&current.keys);
        self.state.store(Arc::new(KeyState {
            keys,
            generation: current.generation + 1,
            refresh_at: now + forever,
            usable_until: Some(now + forever),
            usable_until_unix: crate::clock::unix_now()
                .saturating_add(i64::try_from(forever.as_secs()).unwrap_or(i64::MAX)),
            confirmed_at: Some(now),
            revocation_epoch: current.revocation_epoch + u64::from(revoked),
        }));
        self.wake.notify_one();
    }

    /// The keys held now, how long ago they were fetched or confirmed, and whether they may
    /// verify (fetched once and not older than `max_stale`).
    pub(crate) fn status(&self) -> KeyStatus {
        let state = self.state.load();
        let now = Instant::now();
        KeyStatus {
            keys: state.keys.len(),
            age: state
                .confirmed_at
                .map(|at| now.saturating_duration_since(at)),
            usable: state.usable(now),
        }
    }

    /// Number of JWKS or metadata requests sent so far.
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The key for `kid`/`alg` if it can be decided without I/O: `None` means "call
    /// [`key_for`](Self::key_for)", which may fetch.
    pub(crate) fn key_now(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<Result<(Arc<VerifyingKey>, u64), AuthError>> {
        self.start_background_refresh();
        let state = self.state.load();
        let now = Instant::now();
        if !state.usable(now) {
            return None;
        }
        match state.keys.find(kid, alg) {
            Lookup::Found(key) => Some(Ok((key.clone(), state.revocation_epoch))),
            Lookup::AlgorithmMismatch => Some(Err(InvalidToken::KeyAlgorithmMismatch.into())),
            Lookup::Ambiguous => Some(Err(InvalidToken::AmbiguousKey.into())),
            Lookup::Unknown if self.is_local() || self.cooldown_left(now).is_some() => {
                Some(Err(InvalidToken::UnknownKey.into()))
            }
            Lookup::Unknown => None,
        }
    }

    /// The key for `kid`/`alg`, fetching the JWKS if the key is unknown or no keys are usable
    /// (each at most once per cooldown, single-flight).
    pub(crate) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Arc<VerifyingKey>, u64), AuthError> {
        if let Some(decided) = self.key_now(kid, alg) {
            return decided;
        }
        if self.is_local() {
            // Local keys are never fetched: decided without I/O, or refused.
            return self
                .key_now(kid, alg)
                .unwrap_or(Err(AuthError::KeysUnavailable {
                    retry_after: self.config.cooldown,
                }));
        }
        let (seen, had_keys) = {
            let state = self.state.load();
            (state.generation, state.usable(Instant::now()))
        };
        {
            let mut refresh = self.refresh.lock().await;
            // Another request may have refreshed while we queued: use its result.
            if self.state.load().generation == seen && self.cooldown_left(Instant::now()).is_none()
            {
                self.mark_on_demand_fetch();
                match self.refresh_locked(&mut refresh).await {
                    // Getting the first keys is not a refetch: a key published right after
                    // start-up must not wait out a cooldown. A failure keeps the cooldown.
                    Ok(()) if !had_keys => self.last_on_demand.store(0, Ordering::Release),
                    Ok(()) => {}
                    Err(error) => {
                        tracing::warn!(%error, issuer = %self.issuer, "JWKS fetch failed");
                    }
                }
            }
        }
        let state = self.state.load();
        let now = Instant::now();
        if !state.usable(now) {
            return Err(AuthError::KeysUnavailable {
                retry_after: self.cooldown_left(now).unwrap_or(self.config.cooldown),
            });
        }
        match state.keys.find(kid, alg) {
            Lookup::Found(key) => Ok((key.clone(), state.revocation_epoch)),
            Lookup::AlgorithmMismatch => Err(InvalidToken::KeyAlgorithmMismatch.into()),
            Lookup::Ambiguous => Err(InvalidToken::AmbiguousKey.into()),
            Lookup::Unknown => Err(InvalidToken::UnknownKey.into()),
        }
    }

    /// The current revocation epoch, or `None` when no keys are usable at `now_unix` (then
    /// nothing verified earlier may be trusted either). One atomic load, no clock read.
    pub(crate) fn revocation_epoch(&self, now_unix: i64) -> Option<u64> {
        let state = self.state.load();
        (now_unix < state.usable_until_unix).then_some(state.revocation_epoch)
    }

    /// Fetches now (single-flight with every other fetch), whatever the cooldown says; the
    /// cooldown then counts from this fetch.
    pub(crate) async fn refresh(&self) -> Result<(), JwksFetchError> {
        if self.is_local() {
            return Ok(());
        }
        let mut refresh = self.refresh.lock().await;
        self.mark_on_demand_fetch();
        self.refresh_locked(&mut refresh).await
    }

    fn is_local(&self) -> bool {
        self.local.load(Ordering::Acquire)
    }

    fn mark_on_demand_fetch(&self) {
        let since_epoch = self.epoch.elapsed().as_millis() as u64;
        self.last_on_demand
            .store(since_epoch + 1, Ordering::Release);
    }

    /// Time left before another on-demand fetch is allowed; `None` if one is allowed now.
    fn cooldown_left(&self, now: Instant) -> Option<Duration> {
        let last = self.last_on_demand.load(Ordering::Acquire);
        if last == 0 {
            return None;
        }
        let at = self.epoch + Duration::from_millis(last - 1);
        let next = at + self.config.cooldown;
        next.checked_duration_since(now)
            .filter(|left| !left.is_zero())
    }

    /// One fetch, counted in the metrics by its result.
    async fn refresh_locked(&self, refresh: &mut RefreshState) -> Result<(), JwksFetchError> {
        let outcome = self.fetch_locked(refresh).await;
        match &outcome {
            Ok(Some(keys)) => {
                self.metrics.fetched.increment(1);
                self.metrics.keys.set(*keys as f64);
            }
            Ok(None) => self.metrics.not_modified.increment(1),
            Err(_) => self.metrics.failed.increment(1),
        }
        outcome.map(drop)
    }

    /// One fetch; on success the new key set replaces the old one for every reader at once.
    /// Returns the number of keys of a new document, `None` for `304 Not Modified`.
    async fn fetch_locked(
        &self,
        refresh: &mut RefreshState,
    ) -> Result<Option<usize>, JwksFetchError> {
        let jwks_uri = match &refresh.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                self.fetches.fetch_add(1, Ordering::Relaxed);
                let uri = self.fetcher.discover_jwks_uri(&self.issuer).await?;
                refresh.jwks_uri = Some(uri.clone());
                uri
            }
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let current = self.state.load_full();
        let etag = refresh
            .etag
            .as_ref()
            .filter(|_| current.usable_until.is_some());
        let (keys, max_age) = match self.fetcher.jwks(&jwks_uri, etag).await? {
            JwksResponse::NotModified { max_age } => (None, max_age),
            JwksResponse::Modified {
                body,
                etag,
                max_age,
            } => {
                let keys = KeySet::parse(&body)?;
                refresh.etag = etag;
                (Some(keys), max_age)
            }
        };
        let ttl = max_age
            .unwrap_or(self.config.default_ttl)
            .clamp(self.config.min_ttl, self.config.max_ttl)
            // A zero TTL would make the background task spin.
            .max(Duration::from_secs(1));
        let now = Instant::now();
        // Refresh a little before the freshness runs out, so readers never see a gap.
        let refresh_at = now + ttl - ttl / 10;
        let usable_for = ttl.max(self.config.max_stale);
        let usable_until = Some(now + usable_for);
        let usable_until_unix = crate::clock::unix_now()
            .saturating_add(i64::try_from(usable_for.as_secs()).unwrap_or(i64::MAX));
        let fetched = keys.as_ref().map(KeySet::len);
        let next = match keys {
            Some(keys) => {
                tracing::debug!(issuer = %self.issuer, keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS refreshed");
                let revoked = !keys.retains_all(&current.keys);
                KeyState {
                    keys,
                    generation: current.generation + 1,
                    refresh_at,
                    usable_until,
                    usable_until_unix,
                    confirmed_at: Some(now),
                    revocation_epoch: current.revocation_epoch + u64::from(revoked),
                }
            }
            None => {
                tracing::debug!(issuer = %self.issuer, "JWKS not modified");
                // Same keys: rebuild the state around them (the key set is shared via `Arc`s).
                KeyState {
                    keys: current.keys.clone(),
                    generation: current.generation + 1,
                    refresh_at,
                    usable_until,
                    usable_until_unix,
                    confirmed_at: Some(now),
                    revocation_epoch: current.revocation_epoch,
                }
            }
        };
        self.state.store(Arc::new(next));
        self.wake.notify_one();
        Ok(fetched)
    }

    /// Starts the background refresher once, from inside a Tokio runtime.
    fn start_background_refresh(self: &Arc<Self>) {
        if self.is_local()
            || self.background_started.load(Ordering::Relaxed)
            || self.background_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Not in a runtime: allow a later call to start it.
            self.background_started.store(false, Ordering::Release);
            return;
        };
        let cache = Arc::downgrade(self);
        let wake = self.wake.clone();
        runtime.spawn(background_refresh(cache, wake));
    }
}

/// Refreshes before the keys go stale; after a failure, retries once per cooldown. Ends when the
/// last layer clone is dropped.
async fn background_refresh(cache: Weak<JwksCache>, wake: Arc<Notify>) {
    let mut retry_at: Option<Instant> = None;
    loop {
        let wake_at = {
            let Some(cache) = cache.upgrade() else { return };
            let state = cache.state.load();
            if state.usable_until.is_none() && retry_at.is_none() {
                // Nothing fetched yet: the first request fetches on demand and wakes us.
                Instant::now() + cache.config.max_ttl
            } else {
                retry_at.unwrap_or(state.refresh_at)
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake_at.into()) => {}
            // New keys or the cache dropped: recompute (or exit) at the top of the loop.
            () = wake.notified() => continue,
        }
        let Some(cache) = cache.upgrade() else { return };
        if cache.is_local() {
            return;
        }
        if cache.state.load().refresh_at > Instant::now()
            && cache.state.load().usable_until.is_some()
        {
            // Someone refreshed meanwhile; sleep until the new deadline.
            retry_at = None;
            continue;
        }
        // A scheduled refresh, not an on-demand one: it leaves the unknown-kid cooldown alone.
        let outcome = {
            let mut refresh = cache.refresh.lock().await;
            cache.refresh_locked(&mut refresh).await
        };
        match outcome {
            Ok(()) => retry_at = None,
            Err(error) => {
                tracing::warn!(%error, issuer = %cache.issuer, "background JWKS refresh failed; keeping last good keys");
                retry_at = Some(Instant::now() + cache.config.cooldown);
            }
        }
    }
}
