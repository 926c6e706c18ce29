//! [`SqliteStore`]: the durable [`Store`](super::Store), the binary's default.
//!
//! - `rusqlite` (bundled SQLite) on blocking threads (`tokio::task::spawn_blocking`): one
//!   writer connection and a few reader connections, WAL mode (readers never block the writer),
//!   `synchronous=FULL` (an acknowledged write survives a crash of the process or the machine),
//!   foreign keys on, a busy timeout.
//! - Every mutation is one transaction that also writes its audit event and queues its webhook
//!   deliveries (the outbox), so an event and its deliveries exist exactly when the change does.
//! - Schema migrations live in the crate ([`MIGRATIONS`]) and run at open, tracked by
//!   `PRAGMA user_version`. Signing keys are stored in the database; the file (and its `-wal` /
//!   `-shm` companions, which SQLite creates with the same mode) is created `0600`.
//! - Usage counters do not take a write transaction per token: the token endpoint adds to an
//!   in-memory buffer that [`Store::flush`](super::Store::flush) writes in one transaction (the
//!   issuer flushes every second and at graceful shutdown). **Durability window:** a crash
//!   (`SIGKILL`, power loss) loses at most the counter increments of the last flush interval;
//!   reads always include the buffered increments.
//!
//! The SQL is plain (no SQLite-only constructs beyond `AUTOINCREMENT`/`INSERT OR IGNORE`), so a
//! PostgreSQL backend behind the same trait is a translation, not a redesign.

mod extra;
mod ops;
mod rows;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags};

use super::store::StoreError;

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
pub const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE agents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    external_id TEXT UNIQUE,
    record TEXT NOT NULL,
    token_count INTEGER NOT NULL DEFAULT 0,
    last_activity_at INTEGER
);
CREATE TABLE verifiers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    hash BLOB NOT NULL,
    record TEXT NOT NULL,
    usage_count INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER
);
CREATE INDEX verifiers_agent ON verifiers(agent_id);
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE memberships (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    member_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    record TEXT NOT NULL,
    UNIQUE (organization_id, member_id)
);
CREATE INDEX memberships_member ON memberships(member_id);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    agent_id TEXT,
    record TEXT NOT NULL
);
CREATE INDEX events_kind ON events(kind, seq);
CREATE INDEX events_agent ON events(agent_id, seq);
CREATE TABLE webhooks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    key BLOB NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_at);
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    pkcs8 BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
"#];

/// Reader connections besides the writer.
const READERS: usize = 3;

/// The SQLite store. See the module docs.
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    usage: Arc<Mutex<UsageBuffer>>,
    /// Bumped by every flush, so that readers can detect a flush between their database read
    /// and their look at the buffer.
    flushes: Arc<AtomicU64>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Counter increments not yet written: id → (count, latest use).
#[derive(Debug, Default)]
pub(crate) struct UsageBuffer {
    pub(crate) agents: HashMap<String, (u64, i64)>,
    pub(crate) verifiers: HashMap<String, (u64, i64)>,
}

impl UsageBuffer {
    fn bump(map: &mut HashMap<String, (u64, i64)>, id: &str, now_ms: i64) {
        match map.get_mut(id) {
            Some((n, last)) => {
                *n = n.saturating_add(1);
                *last = (*last).max(now_ms);
            }
            None => {
                map.insert(id.to_owned(), (1, now_ms));
            }
        }
    }
}

pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every transaction either commits or rolls back when dropped, so a panic while holding
    // a connection leaves no half-written state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Creates `path` with mode 0600 if it does not exist; tightens it to 0600 if it does.
fn restrict(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(backend)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(backend)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(backend)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(StoreError::Invalid(format!(
            "the database schema (version {version}) is newer than this issuer ({known})"
        )));
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applying pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let (writer, readers) = tokio::task::spawn_blocking(move || {
            restrict(&p)?;
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let mut writer = Connection::open_with_flags(&p, flags).map_err(backend)?;
            configure(&writer)?;
            migrate(&mut writer)?;
            let mut readers = Vec::with_capacity(READERS);
            for _ in 0..READERS {
                let conn = Connection::open_with_flags(&p, flags).map_err(backend)?;
                configure(&conn)?;
                readers.push(Arc::new(Mutex::new(conn)));
            }
            Ok::<_, StoreError>((writer, readers))
        })
        .await
        .map_err(backend)??;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers,
            next_reader: AtomicUsize::new(0),
            usage: Arc::new(Mutex::new(UsageBuffer::default())),
            flushes: Arc::new(AtomicU64::new(0)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate (write) transaction on a blocking thread; commits if it
    /// returns `Ok`.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&conn);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let out = f(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
        .map_err(backend)?
    }

    /// Runs `f` on a reader connection on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len().max(1);
        let conn = match self.readers.get(i) {
            Some(c) => Arc::clone(c),
            None => Arc::clone(&self.writer),
        };
        tokio::task::spawn_blocking(move || f(&lock(&conn)))
            .await
            .map_err(backend)?
    }

    /// Reads with `f`, then adds the buffered counter increments with `merge`; retried if a
    /// flush happened in between (which moved increments from the buffer to the database).
    pub(crate) async fn read_with_usage<T, F, M>(&self, f: F, merge: M) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + Sync + 'static,
        M: Fn(&mut T, &UsageBuffer),
    {
        let f = Arc::new(f);
        loop {
            let before = self.flushes.load(Ordering::SeqCst);
            let g = Arc::clone(&f);
            let mut value = self.read(move |c| g(c)).await?;
            let usage = lock(&self.usage);
            if self.flushes.load(Ordering::SeqCst) == before {
                merge(&mut value, &usage);
                return Ok(value);
            }
        }
    }

    /// A copy of the buffered counter increments.
    pub(crate) fn usage_snapshot(&self) -> UsageBuffer {
        let u = lock(&self.usage);
        UsageBuffer {
            agents: u.agents.clone(),
            verifiers: u.verifiers.clone(),
        }
    }

    pub(crate) fn bump_usage(&self, agent_id: &str, verifier_id: &str, now_ms: i64) {
        let mut usage = lock(&self.usage);
        UsageBuffer::bump(&mut usage.agents, agent_id, now_ms);
        UsageBuffer::bump(&mut usage.verifiers, verifier_id, now_ms);
    }

    /// Writes the buffered counters in one transaction.
    pub(crate) async fn flush_usage(&self) -> Result<(), StoreError> {
        let usage = Arc::clone(&self.usage);
        let writer = Arc::clone(&self.writer);
        let flushes = Arc::clone(&self.flushes);
        tokio::task::spawn_blocking(move || {
            // Held for the whole write: the token path waits at most one short transaction.
            let mut buf = lock(&usage);
            if buf.agents.is_empty() && buf.verifiers.is_empty() {
                return Ok(());
            }
            let mut conn = lock(&writer);
            let tx = conn.transaction().map_err(backend)?;
            for (id, (n, last)) in &buf.agents {
                tx.execute(
                    "UPDATE agents SET token_count = token_count + ?1,
                     last_activity_at = max(coalesce(last_activity_at, ?2), ?2) WHERE id = ?3",
                    rusqlite::params![i64::try_from(*n).unwrap_or(i64::MAX), last, id],
                )
                .map_err(backend)?;
            }
            for (id, (n, last)) in &buf.verifiers {
                tx.execute(
                    "UPDATE verifiers SET usage_count = usage_count + ?1,
                     last_used_at = max(coalesce(last_used_at, ?2), ?2) WHERE id = ?3",
                    rusqlite::params![i64::try_from(*n).unwrap_or(i64::MAX), last, id],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            *buf = UsageBuffer::default();
            flushes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .map_err(backend)?
    }
}
