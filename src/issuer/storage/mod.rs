//! Storage: keeps and reads the issuer's records, and decides nothing.
//!
//! The rules (who may authenticate, limits, which events a change writes, what a deletion takes
//! with it) live in `registry`, written once. They run as plain synchronous code against a
//! [`Tx`]: one transaction of primitive reads and writes. [`Storage::write`] runs such a piece of
//! work in one write transaction and commits it only if it returns `Ok`, so a change, its audit
//! events and their webhook deliveries exist together or not at all. A backend is a
//! [`Tx`] implementation plus the way it runs work (SQLite on blocking threads, a file or in memory;
//! PostgreSQL, shared by replicas); a second backend adds a variant here and never a copy of a rule.
//!
//! The work is `FnMut` because a backend with optimistic concurrency (PostgreSQL's
//! serializable transactions) must be able to run it again after a serialization failure.

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::model::{
    AgentRecord, EventFilter, EventRecord, MembershipRecord, OrganizationRecord, Page, PageRequest,
    VerifierRecord, WebhookRecord,
};
use super::secrets::SecretHash;
pub(crate) use super::secrets::StoredAdminKey;

/// Where the issuer keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Database {
    /// SQLite in memory (same schema and code as a file; lost when the issuer stops).
    InMemory,
    /// A SQLite file, created `0600` if it does not exist.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://user:password@host:port/dbname`), which several
    /// issuer replicas may share (feature `postgres`).
    Postgres(String),
}

impl Database {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else a SQLite file path.
    pub fn parse(arg: &str) -> Self {
        if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            Self::Postgres(arg.to_owned())
        } else {
            Self::Sqlite(PathBuf::from(arg))
        }
    }

    /// Whether this is PostgreSQL (shared by replicas).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// A storage failure. The rules never see SQL errors, only these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A uniqueness constraint refused the write (e.g. a second agent with one `external_id`).
    #[error("the write conflicts with a stored record")]
    Duplicate,
    /// A page cursor that this storage did not issue.
    #[error("invalid page cursor")]
    InvalidCursor,
    /// The database was written by a newer version of this issuer.
    #[error("the database schema (version {found}) is newer than this issuer's ({known})")]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// A stored signing key is encrypted, and no key-encryption key was given
    /// (`AGENT_AUTH_KEY_ENCRYPTION_KEY`).
    #[error("the stored signing keys are encrypted; set AGENT_AUTH_KEY_ENCRYPTION_KEY")]
    KeyEncryptionKeyMissing,
    /// A stored signing key does not open with the key-encryption key given (another key, or
    /// the stored bytes were altered).
    #[error("signing key {kid} does not decrypt with the key-encryption key given")]
    KeyDecryption {
        /// The key's id.
        kid: String,
    },
    /// `--db postgres://…` in a build without the `postgres` feature.
    #[error("this build has no PostgreSQL support (cargo feature \"postgres\")")]
    PostgresNotBuilt,
    /// The backend failed (I/O, corruption, a lost connection).
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StorageError {
    pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}

/// What the token endpoint checks a presented credential against. Secrets are stored only as
/// their SHA-256; public keys as their JWK and RFC 7638 thumbprint.
#[derive(Clone)]
pub(crate) enum Credential {
    /// A shared secret's SHA-256.
    Secret(SecretHash),
    /// An agent's public key (`private_key_jwt`).
    Jwk {
        /// RFC 7638 SHA-256 thumbprint: one key belongs to one agent.
        thumbprint: [u8; 32],
        /// The public JWK as accepted at registration (`issuer::agent_keys`).
        jwk: String,
    },
    /// A wallet account (CAIP-10, canonical form): one account belongs to one agent, and
    /// [`Tx::wallet_owner`] finds it. Deleting the verifier (or its agent) removes the mapping
    /// in the same transaction.
    Wallet {
        /// The canonical account (`issuer::wallet::account`).
        account: String,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Credential::Secret(<redacted>)"),
            // Public material, but nothing needs it in logs.
            Self::Jwk { .. } => f.write_str("Credential::Jwk"),
            Self::Wallet { account } => write!(f, "Credential::Wallet({account})"),
        }
    }
}

/// A signing key as stored: PKCS#8 (v2) Ed25519 private key. `Debug` redacts the key.
#[derive(Clone)]
pub(crate) struct StoredSigningKey {
    /// JWK thumbprint (RFC 7638) of the public key.
    pub(crate) kid: String,
    /// PKCS#8 DER of the private key.
    pub(crate) pkcs8_der: Vec<u8>,
    /// Creation time (ms): the key is published from then on.
    pub(crate) created_at: i64,
    /// When it starts signing (ms): after the publish delay, so that every resource server
    /// has fetched it before it meets a token signed with it.
    pub(crate) signs_from: i64,
}

impl fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("pkcs8_der", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .finish()
    }
}

/// A webhook signing key (the bytes behind `whsec_…`). `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WebhookKey(pub(crate) Vec<u8>);

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

/// A message waiting in the outbox, as the delivery task gets it.
#[derive(Debug, Clone)]
pub(crate) struct PendingDelivery {
    /// Storage-assigned id of this queue entry.
    pub(crate) id: i64,
    /// The endpoint.
    pub(crate) webhook_id: String,
    /// The endpoint's URL.
    pub(crate) url: String,
    /// Its signing key.
    pub(crate) key: WebhookKey,
    /// `webhook-id`: the event id (stable across retries).
    pub(crate) message_id: String,
    /// The JSON body.
    pub(crate) payload: String,
    /// Attempts made so far.
    pub(crate) attempts: u32,
}

/// Counter increments of one agent or verifier: how many tokens, and the latest issue (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UsageDelta {
    pub(crate) count: u64,
    pub(crate) last_at: i64,
}

/// Who holds a wallet account: the agent and its `wallet` verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalletOwner {
    pub(crate) agent_id: String,
    pub(crate) verifier_id: String,
}

/// One transaction's primitive reads and writes. Implementations run plain SQL; every decision
/// is the caller's. Lists are oldest first unless they return a [`Page`] (newest first).
pub(crate) trait Tx {
    /// One agent (counters as stored, without buffered increments).
    fn agent(&mut self, id: &str) -> Result<Option<AgentRecord>, StorageError>;
    /// The agent with this `external_id`.
    fn agent_by_external_id(
        &mut self,
        external_id: &str,
    ) -> Result<Option<AgentRecord>, StorageError>;
    /// Agents, newest first.
    fn agents(&mut self, page: &PageRequest) -> Result<Page<AgentRecord>, StorageError>;
    /// Stores a new agent; [`StorageError::Duplicate`] if its `external_id` is taken.
    fn insert_agent(&mut self, agent: &AgentRecord) -> Result<(), StorageError>;
    /// Replaces an agent's fields (not its counters); `Duplicate` as for insert.
    fn update_agent(&mut self, agent: &AgentRecord) -> Result<(), StorageError>;
    /// Removes the agent row; `false` if there was none.
    fn delete_agent(&mut self, id: &str) -> Result<bool, StorageError>;

    /// An agent's verifiers.
    fn verifiers(&mut self, agent_id: &str) -> Result<Vec<VerifierRecord>, StorageError>;
    /// An agent's verifiers' ids with what the token endpoint checks.
    fn credentials(&mut self, agent_id: &str) -> Result<Vec<(String, Credential)>, StorageError>;
    /// Stores a verifier with its credential.
    fn insert_verifier(
        &mut self,
        verifier: &VerifierRecord,
        credential: &Credential,
    ) -> Result<(), StorageError>;
    /// Removes a verifier (a wallet's account mapping with it); `false` if there was none.
    fn delete_verifier(&mut self, id: &str) -> Result<bool, StorageError>;

    /// The holder of the wallet `account` (canonical form, compared exactly).
    fn wallet_owner(&mut self, account: &str) -> Result<Option<WalletOwner>, StorageError>;
    /// How many sign-in nonces are kept (expired ones included until purged).
    fn wallet_nonce_count(&mut self) -> Result<u64, StorageError>;
    /// Keeps a sign-in nonce until `expires_at` (ms); `Duplicate` if it is kept already.
    fn insert_wallet_nonce(&mut self, nonce: &str, expires_at: i64) -> Result<(), StorageError>;
    /// Removes `nonce` if it is kept and unexpired at `now_ms`; whether it was (single use:
    /// of concurrent transactions taking one nonce, exactly one gets `true`).
    fn take_wallet_nonce(&mut self, nonce: &str, now_ms: i64) -> Result<bool, StorageError>;
    /// Forgets the nonces that expired at or before `now_ms`.
    fn purge_wallet_nonces(&mut self, now_ms: i64) -> Result<(), StorageError>;

    /// Forgets the used client-assertion `jti`s that expired at or before `now_ms`: of one
    /// agent, or of every agent when `None`.
    fn purge_assertion_jtis(
        &mut self,
        agent_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StorageError>;
    /// How many used client-assertion `jti`s of `agent_id` are kept.
    fn assertion_jti_count(&mut self, agent_id: &str) -> Result<u64, StorageError>;
    /// Keeps a used `jti` of `agent_id` until `expires_at` (ms); `Duplicate` if it is kept
    /// already.
    fn insert_assertion_jti(
        &mut self,
        agent_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), StorageError>;

    /// One organization.
    fn organization(&mut self, id: &str) -> Result<Option<OrganizationRecord>, StorageError>;
    /// Stores an organization.
    fn insert_organization(&mut self, org: &OrganizationRecord) -> Result<(), StorageError>;
    /// One membership.
    fn membership(
        &mut self,
        org_id: &str,
        member_id: &str,
    ) -> Result<Option<MembershipRecord>, StorageError>;
    /// Every membership of one member.
    fn memberships_of(&mut self, member_id: &str) -> Result<Vec<MembershipRecord>, StorageError>;
    /// An organization's memberships, newest first.
    fn memberships(
        &mut self,
        org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<MembershipRecord>, StorageError>;
    /// Stores a membership; `Duplicate` if the member is already in the organization.
    fn insert_membership(&mut self, membership: &MembershipRecord) -> Result<(), StorageError>;
    /// Removes a membership; `false` if there was none.
    fn delete_membership(&mut self, org_id: &str, member_id: &str) -> Result<bool, StorageError>;

    /// Appends an audit event.
    /// Deletes the oldest events caused by agents beyond the newest `keep` of them.
    fn trim_agent_events(&mut self, keep: u64) -> Result<(), StorageError>;
    fn insert_event(&mut self, event: &EventRecord) -> Result<(), StorageError>;
    /// Audit events, newest first.
    fn events(
        &mut self,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<EventRecord>, StorageError>;

    /// Every webhook endpoint.
    /// Deliveries queued for `webhook_id`.
    fn pending_deliveries(&mut self, webhook_id: &str) -> Result<u64, StorageError>;
    /// Moves the delivery `delivery_id` (or, when `None`, the oldest of `webhook_id`) out of
    /// the queue into the webhook's dead letters (the newest `keep` of them are kept) and
    /// counts it in the webhook's `dropped_deliveries`.
    fn dead_letter(
        &mut self,
        delivery_id: Option<i64>,
        webhook_id: &str,
        at: i64,
        keep: u64,
    ) -> Result<(), StorageError>;
    fn webhooks(&mut self) -> Result<Vec<WebhookRecord>, StorageError>;
    /// Stores a webhook endpoint with its signing key.
    fn insert_webhook(
        &mut self,
        hook: &WebhookRecord,
        key: &WebhookKey,
    ) -> Result<(), StorageError>;
    /// Removes a webhook endpoint and its queued messages; `false` if there was none.
    fn delete_webhook(&mut self, id: &str) -> Result<bool, StorageError>;
    /// Queues `payload` for `webhook_id`, due at `due_at` (ms).
    fn enqueue_delivery(
        &mut self,
        webhook_id: &str,
        message_id: &str,
        payload: &str,
        due_at: i64,
    ) -> Result<(), StorageError>;
    /// Up to `limit` queued messages due at `now_ms`, oldest due first.
    fn due_deliveries(
        &mut self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StorageError>;
    /// [`due_deliveries`](Self::due_deliveries), leased: each is due again only at
    /// `lease_until` (unless rescheduled or removed before), so that no other replica sends
    /// it meanwhile; messages another transaction holds are skipped.
    fn lease_deliveries(
        &mut self,
        now_ms: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<PendingDelivery>, StorageError>;
    /// The earliest due instant (ms) of a queued message.
    fn next_delivery_at(&mut self) -> Result<Option<i64>, StorageError>;
    /// Counts a failed attempt and sets the next one.
    fn reschedule_delivery(&mut self, id: i64, at: i64) -> Result<(), StorageError>;
    /// Removes a queued message (delivered, or given up).
    fn delete_delivery(&mut self, id: i64) -> Result<(), StorageError>;

    /// Every signing key, oldest first.
    fn signing_keys(&mut self) -> Result<Vec<StoredSigningKey>, StorageError>;
    /// Stores a signing key.
    fn insert_signing_key(&mut self, key: &StoredSigningKey) -> Result<(), StorageError>;
    /// Removes a signing key (retired past its tokens' lifetime, or dropped after a compromise).
    fn delete_signing_key(&mut self, kid: &str) -> Result<(), StorageError>;

    /// The stored admin key, if a first start generated one.
    fn admin_key(&mut self) -> Result<Option<StoredAdminKey>, StorageError>;
    /// Stores the admin key, replacing any stored one.
    fn put_admin_key(&mut self, key: &StoredAdminKey) -> Result<(), StorageError>;

    /// Adds counter increments (rows that no longer exist are skipped).
    fn add_agent_usage(&mut self, agent_id: &str, delta: UsageDelta) -> Result<(), StorageError>;
    /// Adds counter increments of a verifier (rows that no longer exist are skipped).
    fn add_verifier_usage(
        &mut self,
        verifier_id: &str,
        delta: UsageDelta,
    ) -> Result<(), StorageError>;
}

/// The opened storage. See the module docs.
#[derive(Debug)]
pub(crate) enum Storage {
    /// SQLite, in a file or in memory.
    Sqlite(sqlite::SqliteStorage),
    /// PostgreSQL, shared by replicas.
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgStorage),
}

impl Storage {
    /// Opens `database` (creating and migrating it if needed).
    pub(crate) async fn open(database: &Database) -> Result<Self, StorageError> {
        Ok(match database {
            Database::InMemory => Self::Sqlite(sqlite::SqliteStorage::open_in_memory().await?),
            Database::Sqlite(path) => Self::Sqlite(sqlite::SqliteStorage::open(path).await?),
            #[cfg(feature = "postgres")]
            Database::Postgres(url) => Self::Postgres(postgres::PgStorage::open(url).await?),
            #[cfg(not(feature = "postgres"))]
            Database::Postgres(_) => return Err(StorageError::PostgresNotBuilt),
        })
    }

    /// Whether this process is the only writer (the registry may then keep what it read).
    pub(crate) fn is_exclusive(&self) -> bool {
        match self {
            // One process opens the file (or the memory) and writes it.
            Self::Sqlite(_) => true,
            // Other replicas write the same database.
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => false,
        }
    }

    /// Runs `work` in one write transaction; commits only if it returns `Ok`.
    pub(crate) async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        match self {
            Self::Sqlite(s) => s.write(work).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.write(work).await,
        }
    }

    /// Runs work whose statements are each whole on their own (counter increments, delivery
    /// leases): on PostgreSQL under read committed, so that replicas doing it at once never
    /// conflict; on SQLite as [`write`](Self::write).
    pub(crate) async fn write_read_committed<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        match self {
            Self::Sqlite(s) => s.write(work).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.write_read_committed(work).await,
        }
    }

    /// Runs `work` against a consistent read view (writes through it fail).
    pub(crate) async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        match self {
            Self::Sqlite(s) => s.read(work).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.read(work).await,
        }
    }
}

/// An opaque page cursor: the sequence number of the last item shown, tagged by list.
pub(crate) fn encode_cursor(tag: char, seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}{seq}"))
}

/// Reads a cursor of list `tag`.
pub(crate) fn decode_cursor(tag: char, cursor: &str) -> Result<u64, StorageError> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StorageError::InvalidCursor)?;
    let text = std::str::from_utf8(&raw).map_err(|_| StorageError::InvalidCursor)?;
    text.strip_prefix(tag)
        .and_then(|n| n.parse().ok())
        .ok_or(StorageError::InvalidCursor)
}

/// A newest-first page from rows probed with `limit + 1` (so that a further page shows).
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

#[cfg(all(test, feature = "postgres"))]
mod tests {
    /// Each SQLite migration has its PostgreSQL twin at the same place: a migration added to
    /// one list and not the other fails here.
    #[test]
    fn every_sqlite_migration_has_its_postgres_twin() {
        assert_eq!(
            super::sqlite::MIGRATIONS.len(),
            super::postgres::MIGRATIONS.len()
        );
    }
}
