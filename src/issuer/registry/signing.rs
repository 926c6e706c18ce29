//! The rules over stored signing keys: one key at first start, however many replicas start at
//! once; a rotation adds a key (and, when immediate, forgets every older one in the same
//! transaction); keys that left the JWKS for good are forgotten. When each key signs and is
//! published is decided by `keys`, from what is stored here.

use std::sync::Arc;

use super::Registry;
use crate::issuer::key_encryption::{KeyEncryptionKey, is_sealed};
use crate::issuer::storage::{StorageError, StoredSigningKey, Tx};

type Kek = Option<Arc<KeyEncryptionKey>>;

/// `key` as it is stored: sealed when there is a key-encryption key.
fn sealed(kek: &Kek, key: &StoredSigningKey) -> Result<StoredSigningKey, StorageError> {
    let mut out = key.clone();
    if let Some(kek) = kek {
        out.pkcs8_der = kek.seal(&key.kid, &key.pkcs8_der)?;
    }
    Ok(out)
}

/// Every stored key, opened.
fn opened(kek: &Kek, tx: &mut dyn Tx) -> Result<Vec<StoredSigningKey>, StorageError> {
    tx.signing_keys()?
        .into_iter()
        .map(|mut key| {
            if is_sealed(&key.pkcs8_der) {
                let kek = kek.as_ref().ok_or(StorageError::KeyEncryptionKeyMissing)?;
                key.pkcs8_der = kek.open(&key.kid, &key.pkcs8_der)?;
            }
            Ok(key)
        })
        .collect()
}

impl Registry {
    /// The stored signing keys, storing `candidate` first if there are none (in one
    /// transaction, so that concurrent starts agree on one key). With a key-encryption key,
    /// keys stored plain before are sealed now.
    pub(crate) async fn ensure_signing_key(
        &self,
        candidate: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StorageError> {
        let kek = self.key_encryption.clone();
        self.storage
            .write(move |tx| {
                let stored = tx.signing_keys()?;
                if stored.is_empty() {
                    tx.insert_signing_key(&sealed(&kek, &candidate)?)?;
                } else if kek.is_some() {
                    for plain in stored.iter().filter(|k| !is_sealed(&k.pkcs8_der)) {
                        tx.delete_signing_key(&plain.kid)?;
                        tx.insert_signing_key(&sealed(&kek, plain)?)?;
                    }
                }
                opened(&kek, tx)
            })
            .await
    }

    /// The stored signing keys as they are now (other replicas may have changed them).
    pub(crate) async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StorageError> {
        let kek = self.key_encryption.clone();
        self.storage.read(move |tx| opened(&kek, tx)).await
    }

    /// Stores a new signing key; `immediate` (after a compromise) also forgets every older key,
    /// so that it leaves the JWKS at once. Returns every stored key.
    pub(crate) async fn rotate_signing_key(
        &self,
        key: StoredSigningKey,
        immediate: bool,
    ) -> Result<Vec<StoredSigningKey>, StorageError> {
        let kek = self.key_encryption.clone();
        self.storage
            .write(move |tx| {
                if immediate {
                    for old in tx.signing_keys()? {
                        tx.delete_signing_key(&old.kid)?;
                    }
                }
                tx.insert_signing_key(&sealed(&kek, &key)?)?;
                opened(&kek, tx)
            })
            .await
    }

    /// Forgets the keys `kids` (retired, out of the JWKS, no unexpired token carries them).
    /// Returns every stored key.
    pub(crate) async fn forget_signing_keys(
        &self,
        kids: Vec<String>,
    ) -> Result<Vec<StoredSigningKey>, StorageError> {
        let kek = self.key_encryption.clone();
        self.storage
            .write(move |tx| {
                for kid in &kids {
                    tx.delete_signing_key(kid)?;
                }
                opened(&kek, tx)
            })
            .await
    }
}
