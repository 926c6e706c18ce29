//! Replacing the admin key kept in the database (`agent-auth-issuer rotate-admin-key`).

use super::errors::IssuerError;
use super::secrets::AdminKey;
use super::storage::{Database, Storage};

/// Generates a new admin key and stores it (its id and the SHA-256 of its secret) in
/// `database`, replacing the kept one; returns it, to be shown once. An issuer running on
/// that database accepts only the new key within [`FLUSH_INTERVAL`](super::FLUSH_INTERVAL);
/// one started with a key from the environment is unaffected.
pub async fn rotate_admin_key(database: &Database) -> Result<AdminKey, IssuerError> {
    let storage = Storage::open(database).await?;
    let key = AdminKey::generate()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let stored = key.stored(now);
    storage
        .write(move |tx| tx.put_admin_key(&stored))
        .await
        .map_err(IssuerError::from)?;
    tracing::info!(key_id = %key.id(), "admin key replaced");
    Ok(key)
}
