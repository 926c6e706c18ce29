//! SQLite storage (`rusqlite`, bundled SQLite): the issuer's embedded default.
//!
//! - A file: one writer connection and a few read-only reader connections, WAL mode (readers
//!   never block the writer), `synchronous=FULL` (an acknowledged write survives a crash of the
//!   process or the machine), foreign keys on, a busy timeout. The file (and its `-wal`/`-shm`
//!   companions, which SQLite creates with the same mode) is created `0600`.
//! - In memory: the same schema and SQL on one private connection that serves reads and writes.
//! - Writes run on blocking threads (`tokio::task::spawn_blocking`), one immediate transaction
//!   each; a read is one deferred transaction (a consistent snapshot across its queries), run
//!   in place when a connection is free and on a blocking thread otherwise.
//! - Schema migrations live here and run at open, tracked by `PRAGMA user_version`.

mod admin_key;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{StorageError, Tx};
use tx::SqliteTx;

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied. Each has its
/// PostgreSQL twin at the same place in `../postgres/migrations.rs` (a test compares the lists).
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    r#"
ALTER TABLE signing_keys ADD COLUMN signs_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN by_agent INTEGER NOT NULL DEFAULT 0;
UPDATE events SET by_agent = 1 WHERE json_extract(record, '$.actor.type') = 'agent';
CREATE INDEX events_by_agent ON events(by_agent, seq);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, id);
ALTER TABLE webhooks ADD COLUMN dropped INTEGER NOT NULL DEFAULT 0;
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    dropped_at INTEGER NOT NULL
);
CREATE INDEX dead_letters_webhook ON dead_letters(webhook_id, id);
"#,
    // The admin key generated at a first start (its id and the SHA-256 of its secret), kept
    // so that a restart keeps it; one row at most.
    r#"
CREATE TABLE admin_key (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
    // Keyed agents (`jwk` verifiers, `private_key_jwt`): a key's public JWK beside its RFC 7638
    // thumbprint (in `hash`), one agent per key, and the client assertions' used `jti`s, kept
    // until the assertion expires.
    r#"
ALTER TABLE verifiers ADD COLUMN jwk TEXT;
CREATE UNIQUE INDEX verifiers_jwk_thumbprint ON verifiers(hash) WHERE jwk IS NOT NULL;
CREATE TABLE assertion_jtis (
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, jti)
) WITHOUT ROWID;
CREATE INDEX assertion_jtis_expiry ON assertion_jtis(expires_at);
"#,
    // Wallets (`wallet` verifiers): the reverse lookup account → verifier, one agent per
    // account, gone with its verifier (and so with its agent) in the same transaction; and the
    // sign-in nonces, kept until used or expired.
    r#"
CREATE TABLE wallet_accounts (
    account TEXT PRIMARY KEY,
    verifier_id TEXT NOT NULL UNIQUE REFERENCES verifiers(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX wallet_accounts_agent ON wallet_accounts(agent_id);
CREATE TABLE wallet_nonces (
    nonce TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX wallet_nonces_expiry ON wallet_nonces(expires_at);
"#,
];

/// Reader connections of a file database, besides the writer.
const READERS: usize = 3;

type Shared = Arc<Mutex<Connection>>;

/// SQLite storage. See the module docs.
pub(crate) struct SqliteStorage {
    writer: Shared,
    /// Empty in memory: reads then use the writer's connection.
    readers: Vec<Shared>,
    next_reader: AtomicUsize,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // Every transaction either commits or rolls back when dropped, so a panic while holding
    // a connection leaves no half-written state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::backend(e)
}

/// Creates `path` with mode 0600 if it does not exist; tightens it to 0600 if it does.
fn restrict(path: &Path) -> Result<(), StorageError> {
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

fn configure(conn: &Connection, durable: bool) -> Result<(), StorageError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    let pragmas = if durable {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
    } else {
        "PRAGMA foreign_keys = ON;"
    };
    conn.execute_batch(pragmas).map_err(backend)
}

fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if found > known {
        return Err(StorageError::SchemaTooNew { found, known });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, applying pending migrations.
    pub(crate) async fn open(path: &Path) -> Result<Self, StorageError> {
        let p = path.to_path_buf();
        let (writer, readers) = tokio::task::spawn_blocking(move || {
            restrict(&p)?;
            let rw = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let mut writer = Connection::open_with_flags(&p, rw).map_err(backend)?;
            configure(&writer, true)?;
            migrate(&mut writer)?;
            let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let mut readers = Vec::with_capacity(READERS);
            for _ in 0..READERS {
                let conn = Connection::open_with_flags(&p, ro).map_err(backend)?;
                configure(&conn, false)?;
                readers.push(Arc::new(Mutex::new(conn)));
            }
            Ok::<_, StorageError>((writer, readers))
        })
        .await
        .map_err(backend)??;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers,
            next_reader: AtomicUsize::new(0),
            path: Some(path.to_path_buf()),
        })
    }

    /// A private in-memory database with the same schema.
    pub(crate) async fn open_in_memory() -> Result<Self, StorageError> {
        let writer = tokio::task::spawn_blocking(|| {
            let mut conn = Connection::open_in_memory().map_err(backend)?;
            configure(&conn, false)?;
            migrate(&mut conn)?;
            Ok::<_, StorageError>(conn)
        })
        .await
        .map_err(backend)??;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            path: None,
        })
    }

    /// Runs `work` in one immediate transaction on a blocking thread; commits on `Ok`.
    pub(crate) async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        run(
            Arc::clone(&self.writer),
            TransactionBehavior::Immediate,
            work,
        )
        .await
    }

    /// Runs `work` in one deferred transaction on a reader connection: right here when one is
    /// free (the reads the rules ask for are indexed lookups of a few microseconds, less than
    /// handing them to a blocking thread and back), else on a blocking thread.
    pub(crate) async fn read<T, E, F>(&self, mut work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        let pool: &[Shared] = if self.readers.is_empty() {
            std::slice::from_ref(&self.writer)
        } else {
            &self.readers
        };
        let first = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..pool.len() {
            let conn = &pool[(first + i) % pool.len()];
            let free = match conn.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut guard) = free {
                return in_transaction(&mut guard, TransactionBehavior::Deferred, &mut work);
            }
        }
        let conn = Arc::clone(&pool[first % pool.len()]);
        run(conn, TransactionBehavior::Deferred, work).await
    }
}

/// Runs `work` in one transaction on `conn`; commits on `Ok`, rolls back otherwise.
fn in_transaction<T, E, F>(
    conn: &mut Connection,
    behavior: TransactionBehavior,
    work: &mut F,
) -> Result<T, E>
where
    E: From<StorageError>,
    F: FnMut(&mut dyn Tx) -> Result<T, E>,
{
    let tx = conn.transaction_with_behavior(behavior).map_err(backend)?;
    let out = work(&mut SqliteTx::new(&tx))?;
    tx.commit().map_err(backend)?;
    Ok(out)
}

async fn run<T, E, F>(conn: Shared, behavior: TransactionBehavior, mut work: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StorageError> + Send + 'static,
    F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
{
    tokio::task::spawn_blocking(move || in_transaction(&mut lock(&conn), behavior, &mut work))
        .await
        .map_err(backend)?
}
