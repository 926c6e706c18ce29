//! Secrets and identifiers: OS-CSPRNG randomness, generated ids, agent secrets, their SHA-256
//! verifiers, constant-time comparison and the admin key.
//!
//! Everything that holds secret material here redacts itself in `Debug` and never implements
//! `Display`, so a stray `{:?}` or `tracing` field cannot leak it.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Length of a generated agent secret, in characters.
pub const SECRET_LEN: usize = 42;

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The operating system's random number generator failed (it never does on a healthy system; the
/// issuer fails closed if it does).
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|_| RandomError)
}

/// `prefix` followed by 32 lowercase hex digits (128 random bits), e.g. `agt_…`, `v_…`, `evt_…`.
pub(crate) fn new_id(prefix: &str) -> Result<String, RandomError> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    push_hex(&mut id, &bytes);
    Ok(id)
}

/// `prefix` followed by `len` lowercase base36 characters (uniform: rejection sampling), e.g.
/// organization ids (`org_` + 25).
pub(crate) fn new_base36_id(prefix: &str, len: usize) -> Result<String, RandomError> {
    const B36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    let mut pool = [0u8; 64];
    let mut have = 0;
    while have < len {
        fill_random(&mut pool)?;
        // 252 = 7 * 36: bytes at or above it would bias the distribution.
        for &b in pool.iter().filter(|&&b| b < 252) {
            if have == len {
                break;
            }
            id.push(char::from(B36[usize::from(b % 36)]));
            have += 1;
        }
    }
    Ok(id)
}

/// Appends the lowercase hex form of `bytes` to `out`.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// Whether `id` is `prefix` followed by exactly 32 lowercase hex digits.
pub(crate) fn is_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A secret string: an agent secret, an admin key secret or an access token.
///
/// `Debug` prints `Secret(<redacted>)`; read the value deliberately with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Generates a [`SECRET_LEN`]-character alphanumeric secret from the OS CSPRNG (uniform:
    /// rejection sampling, no modulo bias).
    pub fn generate() -> Result<Self, RandomError> {
        let mut out = String::with_capacity(SECRET_LEN);
        let mut pool = [0u8; 64];
        while out.len() < SECRET_LEN {
            fill_random(&mut pool)?;
            // 248 = 4 * 62: bytes at or above it would bias the distribution.
            for &b in pool.iter().filter(|&&b| b < 248) {
                if out.len() == SECRET_LEN {
                    break;
                }
                out.push(char::from(ALPHANUMERIC[usize::from(b % 62)]));
            }
        }
        Ok(Self(out))
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 verifier of this secret.
    pub(crate) fn hash(&self) -> SecretHash {
        SecretHash::of(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// SHA-256 of a secret: the only form in which the issuer stores agent secrets.
///
/// Equality is constant-time ([`SecretHash::ct_eq`]); there is deliberately no `PartialEq`.
#[derive(Clone, Copy)]
pub(crate) struct SecretHash([u8; 32]);

impl SecretHash {
    /// SHA-256 of `secret`.
    pub(crate) fn of(secret: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// Rebuilds a hash read back from storage.
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 hash bytes (for storage backends).
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub(crate) fn ct_eq(&self, other: &SecretHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

/// The management API's admin key: HTTP Basic user name (`id`) and password (`secret`).
#[derive(Clone, Debug)]
pub struct AdminKey {
    id: String,
    secret: Secret,
}

impl AdminKey {
    /// An admin key with the given id and secret.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: Secret::new(secret),
        }
    }

    /// A fresh random admin key (`key_` + 32 hex id, 42-character secret).
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self {
            id: new_id("key_")?,
            secret: Secret::generate()?,
        })
    }

    /// The key id (HTTP Basic user name). Not secret.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key secret (HTTP Basic password).
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// What the database keeps of this key: its id and its secret's SHA-256.
    pub(crate) fn stored(&self, created_at: i64) -> StoredAdminKey {
        StoredAdminKey {
            id: self.id.clone(),
            secret_hash: self.secret.hash(),
            created_at,
        }
    }

    pub(crate) fn verifier(&self) -> AdminVerifier {
        AdminVerifier {
            id: self.id.clone(),
            id_hash: SecretHash::of(self.id.as_bytes()),
            secret_hash: self.secret.hash(),
        }
    }
}

/// The admin key as stored: its id and the SHA-256 of its secret (never the secret).
#[derive(Debug, Clone)]
pub(crate) struct StoredAdminKey {
    pub(crate) id: String,
    pub(crate) secret_hash: SecretHash,
    /// When it was generated (ms).
    pub(crate) created_at: i64,
}

/// What the server keeps of the admin key: hashes, compared in constant time.
#[derive(Debug, Clone)]
pub(crate) struct AdminVerifier {
    id: String,
    id_hash: SecretHash,
    secret_hash: SecretHash,
}

impl AdminVerifier {
    /// The verifier of a stored key.
    pub(crate) fn from_stored(key: &StoredAdminKey) -> Self {
        Self {
            id: key.id.clone(),
            id_hash: SecretHash::of(key.id.as_bytes()),
            secret_hash: key.secret_hash,
        }
    }

    /// Whether `key` is the key this verifies (same id and secret hash).
    pub(crate) fn is(&self, key: &StoredAdminKey) -> bool {
        self.id == key.id && self.secret_hash.ct_eq(&key.secret_hash)
    }

    /// Whether the presented id and secret match, in constant time (both are always compared).
    pub(crate) fn verify(&self, id: &[u8], secret: &[u8]) -> bool {
        let id_ok = SecretHash::of(id).0.ct_eq(&self.id_hash.0);
        let secret_ok = SecretHash::of(secret).0.ct_eq(&self.secret_hash.0);
        bool::from(id_ok & secret_ok)
    }

    /// The admin key id (recorded as the actor of audit events).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_42_alphanumeric_and_distinct() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.expose().len(), SECRET_LEN);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn ids_have_prefix_and_32_hex() {
        let id = new_id("agt_").unwrap();
        assert!(is_id(&id, "agt_"), "{id}");
        assert!(!is_id("agt_123", "agt_"));
        assert!(!is_id(&id.to_uppercase(), "agt_"));
    }

    #[test]
    fn hash_compare_and_admin_verify() {
        let s = Secret::new("abc");
        assert!(s.hash().ct_eq(&SecretHash::of(b"abc")));
        assert!(!s.hash().ct_eq(&SecretHash::of(b"abd")));
        let key = AdminKey::new("key_1", "pw");
        let v = key.verifier();
        assert!(v.verify(b"key_1", b"pw"));
        assert!(!v.verify(b"key_1", b"px"));
        assert!(!v.verify(b"key_2", b"pw"));
    }
}
