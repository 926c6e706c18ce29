//! PostgreSQL storage (`tokio-postgres` with a `deadpool-postgres` pool): several issuer
//! replicas on one database.
//!
//! - The rules run as synchronous code over a [`Tx`]; here each piece of work runs on a
//!   blocking thread with one pooled connection, and each query is driven on the issuer's
//!   runtime (`Handle::block_on`): the connection's I/O stays on the runtime, the rules stay
//!   synchronous and identical for every backend.
//! - Writes are `SERIALIZABLE` transactions: replicas never decide on state another replica
//!   changed meanwhile. On a serialization failure or a deadlock (`40001`, `40P01`) the work
//!   is rolled back and run again, at most [`MAX_ATTEMPTS`] times.
//! - Usage counters are added under `READ COMMITTED` with `SET n = n + $1`: increments from
//!   several replicas add up without conflicts.
//! - Reads are `REPEATABLE READ READ ONLY` transactions (one snapshot across their queries).
//! - Migrations (the same list as SQLite's, one to one) run at open inside a transaction that
//!   holds `pg_advisory_xact_lock`, so replicas starting together apply each migration once.
//! - Writes that may meet a uniqueness constraint run under a savepoint, so that the rules can
//!   go on after [`StorageError::Duplicate`] as they do on SQLite.

mod migrations;
mod tx;

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::Handle;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{StorageError, Tx};
pub(super) use migrations::MIGRATIONS;
use tx::{PgTx, TxState};

/// Most runs of one write after serialization failures.
const MAX_ATTEMPTS: u32 = 32;
/// Pooled connections per replica.
const POOL_SIZE: usize = 16;
/// The advisory lock key that serializes migrations across replicas ("agentaut").
const MIGRATION_LOCK: i64 = 0x6167_656e_7461_7574;

/// How a transaction starts.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Serializable,
    ReadCommitted,
    ReadOnly,
}

impl Mode {
    fn begin(self) -> &'static str {
        match self {
            Self::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            Self::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Self::ReadOnly => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }
}

/// PostgreSQL storage. See the module docs.
pub(crate) struct PgStorage {
    pool: Pool,
    runtime: Handle,
}

impl std::fmt::Debug for PgStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: not shown.
        f.debug_struct("PgStorage").finish_non_exhaustive()
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::backend(e)
}

/// Whether running the transaction again may succeed.
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

impl PgStorage {
    /// Connects to `url` (`postgres://…`) and applies pending migrations.
    pub(crate) async fn open(url: &str) -> Result<Self, StorageError> {
        let config = tokio_postgres::Config::from_str(url).map_err(backend)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(backend)?;
        let storage = Self {
            pool,
            runtime: Handle::current(),
        };
        storage.migrate().await?;
        Ok(storage)
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        let mut client = self.pool.get().await.map_err(backend)?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS agent_auth_schema (version BIGINT NOT NULL)")
            .await
            .map_err(backend)?;
        let found: i64 = tx
            .query_opt("SELECT version FROM agent_auth_schema", &[])
            .await
            .map_err(backend)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(backend)?
            .unwrap_or(0);
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if found > known {
            return Err(StorageError::SchemaTooNew { found, known });
        }
        for sql in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
            tx.batch_execute(sql).await.map_err(backend)?;
        }
        tx.execute("DELETE FROM agent_auth_schema", &[])
            .await
            .map_err(backend)?;
        tx.execute(
            "INSERT INTO agent_auth_schema (version) VALUES ($1)",
            &[&known],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    /// Runs `work` in one serializable transaction (again after a serialization failure);
    /// commits only if it returns `Ok`.
    pub(crate) async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        self.run(Mode::Serializable, work).await
    }

    /// Runs work whose statements are each whole on their own (counter increments `SET n = n + $1`,
    /// delivery leases) under read committed: replicas doing it at once never conflict.
    pub(crate) async fn write_read_committed<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        self.run(Mode::ReadCommitted, work).await
    }

    /// Runs `work` against one read-only snapshot.
    pub(crate) async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        self.run(Mode::ReadOnly, work).await
    }

    async fn run<T, E, F>(&self, mode: Mode, mut work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        let client = self.pool.get().await.map_err(backend)?;
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut tx = PgTx::new(&client, &runtime);
                tx.simple(mode.begin()).map_err(backend)?;
                let out = work(&mut tx);
                let state = tx.state();
                if state != TxState::Clean || out.is_err() {
                    let rolled_back = tx.simple("ROLLBACK");
                    if state == TxState::Conflicted && attempt < MAX_ATTEMPTS {
                        rolled_back.map_err(backend)?;
                        continue;
                    }
                    return match (out, state) {
                        // A failed statement aborted the transaction, and the work went on:
                        // PostgreSQL would answer `COMMIT` by rolling back. Never report that
                        // as written.
                        (Ok(_), _) => Err(StorageError::Backend(Box::new(std::io::Error::other(
                            "a statement failed inside the transaction",
                        )))
                        .into()),
                        (Err(e), _) => Err(e),
                    };
                }
                match tx.simple("COMMIT") {
                    Ok(()) => return out,
                    Err(e) if is_conflict(&e) && attempt < MAX_ATTEMPTS => continue,
                    Err(e) => return Err(backend(e).into()),
                }
            }
        })
        .await
        .map_err(backend)?
    }
}
