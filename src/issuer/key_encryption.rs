//! Signing keys encrypted at rest: AES-256-GCM (aws-lc-rs) under a key from
//! `AGENT_AUTH_KEY_ENCRYPTION_KEY` (32 random bytes, base64 or base64url, padded or not).
//!
//! A sealed key is stored as `aek1` ‖ a random 96-bit nonce ‖ ciphertext ‖ tag, with the key's
//! `kid` as associated data: a sealed key moved to another `kid`'s row does not open. A plain
//! PKCS#8 key (a DER `SEQUENCE`, first byte `0x30`) cannot be mistaken for a sealed one.
//! Required for PostgreSQL; used for SQLite when set (keys stored plain before are sealed at
//! the next start). The key is never logged (`Debug` redacts it).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::secrets::{RandomError, fill_random};
use super::storage::StorageError;

/// The environment variable holding the key.
pub const KEY_ENCRYPTION_KEY_ENV: &str = "AGENT_AUTH_KEY_ENCRYPTION_KEY";

/// What marks a sealed signing key.
const SEALED_PREFIX: &[u8] = b"aek1";

/// Why a key-encryption key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyEncryptionKeyError {
    /// Not base64 / base64url.
    #[error("AGENT_AUTH_KEY_ENCRYPTION_KEY is not base64")]
    NotBase64,
    /// Not 32 bytes once decoded.
    #[error("AGENT_AUTH_KEY_ENCRYPTION_KEY must be 32 bytes (base64 of 32 random bytes), got {0}")]
    WrongLength(usize),
}

/// The key that seals signing keys at rest. `Debug` redacts it.
pub struct KeyEncryptionKey {
    key: LessSafeKey,
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

impl KeyEncryptionKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyEncryptionKeyError> {
        if bytes.len() != 32 {
            return Err(KeyEncryptionKeyError::WrongLength(bytes.len()));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| KeyEncryptionKeyError::WrongLength(bytes.len()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// From the base64 (or base64url, padded or not) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyEncryptionKeyError> {
        let text = text.trim();
        let bytes = [URL_SAFE_NO_PAD, URL_SAFE, STANDARD_NO_PAD, STANDARD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(KeyEncryptionKeyError::NotBase64)?;
        Self::from_bytes(&bytes)
    }

    /// From `AGENT_AUTH_KEY_ENCRYPTION_KEY`; `Ok(None)` if it is unset or empty.
    pub fn from_env() -> Result<Option<Self>, KeyEncryptionKeyError> {
        match std::env::var(KEY_ENCRYPTION_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::from_base64(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// A new random key (tests; an operator generates one with
    /// `head -c 32 /dev/urandom | base64`).
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        // 32 bytes: the only length check `from_bytes` makes.
        Self::from_bytes(&bytes).map_err(|_| RandomError)
    }

    /// Seals the PKCS#8 key of `kid`.
    pub(crate) fn seal(&self, kid: &str, plain: &[u8]) -> Result<Vec<u8>, StorageError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce).map_err(StorageError::backend)?;
        let mut out = Vec::with_capacity(SEALED_PREFIX.len() + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(SEALED_PREFIX);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut body,
            )
            .map_err(|_| StorageError::KeyDecryption { kid: kid.into() })?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a key sealed by [`seal`](Self::seal) for `kid`.
    pub(crate) fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, StorageError> {
        let refused = || StorageError::KeyDecryption { kid: kid.into() };
        let rest = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(refused)?;
        if rest.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut body)
            .map_err(|_| refused())?;
        Ok(plain.to_vec())
    }
}

/// Whether a stored key is sealed (else it is plain PKCS#8).
pub(crate) fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_kid() {
        let k = KeyEncryptionKey::generate().unwrap();
        let sealed = k.seal("kid-a", b"\x30secret pkcs8").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(k.open("kid-a", &sealed).unwrap(), b"\x30secret pkcs8");
        // Another kid, another key, a flipped bit: refused.
        assert!(k.open("kid-b", &sealed).is_err());
        let other = KeyEncryptionKey::generate().unwrap();
        assert!(other.open("kid-a", &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(k.open("kid-a", &flipped).is_err());
        assert!(format!("{k:?}").contains("redacted"));
    }

    #[test]
    fn parses_base64_of_32_bytes_only() {
        let b64 = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert!(KeyEncryptionKey::from_base64(&b64).is_ok());
        assert!(KeyEncryptionKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
        assert_eq!(
            KeyEncryptionKey::from_base64(&STANDARD.encode([7u8; 16])).unwrap_err(),
            KeyEncryptionKeyError::WrongLength(16)
        );
        assert_eq!(
            KeyEncryptionKey::from_base64("not base64!").unwrap_err(),
            KeyEncryptionKeyError::NotBase64
        );
    }
}
