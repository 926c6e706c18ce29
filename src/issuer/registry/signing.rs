//! The rules over stored signing keys: one key at first start, however many replicas start at
//! once; a rotation adds a key (and, when immediate, forgets every older one in the same
//! transaction); keys that left the JWKS for good are forgotten. When each key signs and is
//! published is decided by `keys`, from what is stored here.

use super::Registry;
use crate::issuer::storage::{StorageError, StoredSigningKey};

impl Registry {
    /// The stored signing keys, storing `candidate` first if there are none (in one
    /// transaction, so that concurrent starts agree on one key).
    pub(crate) async fn ensure_signing_key(
        &self,
        candidate: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StorageError> {
        self.storage
            .write(move |tx| {
                if tx.signing_keys()?.is_empty() {
                    tx.insert_signing_key(&candidate)?;
                }
                tx.signing_keys()
            })
            .await
    }

    /// Stores a new signing key; `immediate` (after a compromise) also forgets every older key,
    /// so that it leaves the JWKS at once. Returns every stored key.
    pub(crate) async fn rotate_signing_key(
        &self,
        key: StoredSigningKey,
        immediate: bool,
    ) -> Result<Vec<StoredSigningKey>, StorageError> {
        self.storage
            .write(move |tx| {
                if immediate {
                    for old in tx.signing_keys()? {
                        tx.delete_signing_key(&old.kid)?;
                    }
                }
                tx.insert_signing_key(&key)?;
                tx.signing_keys()
            })
            .await
    }

    /// Forgets the keys `kids` (retired, out of the JWKS, no unexpired token carries them).
    /// Returns every stored key.
    pub(crate) async fn forget_signing_keys(
        &self,
        kids: Vec<String>,
    ) -> Result<Vec<StoredSigningKey>, StorageError> {
        self.storage
            .write(move |tx| {
                for kid in &kids {
                    tx.delete_signing_key(kid)?;
                }
                tx.signing_keys()
            })
            .await
    }
}
