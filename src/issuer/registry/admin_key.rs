//! The rules over the stored admin key: a first start stores the one it generated (unless a
//! concurrent start stored one first: then that one holds). `rotate_admin_key` replaces it.

use super::Registry;
use crate::issuer::storage::{StorageError, StoredAdminKey};

impl Registry {
    /// The stored admin key, storing `candidate` first if there is none. `true` when
    /// `candidate` was stored.
    pub(crate) async fn ensure_admin_key(
        &self,
        candidate: StoredAdminKey,
    ) -> Result<(StoredAdminKey, bool), StorageError> {
        self.storage
            .write(move |tx| match tx.admin_key()? {
                Some(stored) => Ok((stored, false)),
                None => {
                    tx.put_admin_key(&candidate)?;
                    Ok((candidate.clone(), true))
                }
            })
            .await
    }

    /// The stored admin key.
    pub(crate) async fn stored_admin_key(&self) -> Result<Option<StoredAdminKey>, StorageError> {
        self.storage.read(|tx| tx.admin_key()).await
    }
}
