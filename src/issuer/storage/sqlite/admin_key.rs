//! The SQL of the stored admin key (one row at most: `singleton = 1`).

use rusqlite::{Connection, OptionalExtension, params};

use crate::issuer::secrets::SecretHash;
use crate::issuer::storage::{StorageError, StoredAdminKey};

fn backend(e: rusqlite::Error) -> StorageError {
    StorageError::backend(e)
}

pub(super) fn load(conn: &Connection) -> Result<Option<StoredAdminKey>, StorageError> {
    let row = conn
        .query_row(
            "SELECT id, secret_hash, created_at FROM admin_key WHERE singleton = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((id, hash, created_at)) = row else {
        return Ok(None);
    };
    let hash: [u8; 32] = hash.try_into().map_err(|_| {
        StorageError::backend(std::io::Error::other("admin key hash is not 32 bytes"))
    })?;
    Ok(Some(StoredAdminKey {
        id,
        secret_hash: SecretHash::from_bytes(hash),
        created_at,
    }))
}

pub(super) fn store(conn: &Connection, key: &StoredAdminKey) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO admin_key (singleton, id, secret_hash, created_at) VALUES (1, ?1, ?2, ?3) \
         ON CONFLICT (singleton) DO UPDATE SET id = excluded.id, \
         secret_hash = excluded.secret_hash, created_at = excluded.created_at",
        params![
            key.id,
            key.secret_hash.as_bytes().as_slice(),
            key.created_at
        ],
    )
    .map_err(backend)?;
    Ok(())
}
