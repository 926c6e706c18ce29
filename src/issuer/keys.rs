//! Signing keys: Ed25519 key pairs loaded once, compact-JWS signing, the JWKS document the
//! issuer serves (pre-serialized, with its `ETag`), and each key's life.
//!
//! A key's life, all decided here from the stored keys and the time:
//!
//! 1. **Published, not signing** from its creation until `signs_from` (the publish delay,
//!    default [`DEFAULT_KEY_PUBLISH_DELAY`], the JWKS `max-age`): every resource server has
//!    fetched it before the first token it signed arrives, so none meets an unknown `kid`.
//! 2. **Signing**: the newest key whose `signs_from` has passed.
//! 3. **Retired, still published** once a newer key signs, for [`RETIRED_KEY_PUBLISHED_MS`]
//!    (every token it signed has expired by then, with a margin for clock skew).
//! 4. **Gone**: out of the JWKS, and the issuer deletes it from storage.
//!
//! An immediate rotation (after a compromise) deletes every older key and signs with the new
//! one at once. The key ring holds its key set behind an `ArcSwap`: rotation swaps in a new set
//! without locking the token path; the set is rebuilt when its next change is due. Every set
//! is also handed, in process, to the middleware that guards self-service
//! ([`KeyRing::new`]'s mirror): self-service never trusts whoever answers at the public URL.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::Serialize;

use super::secrets::SecretHash;
use super::storage::StoredSigningKey;
use crate::jwks::JwksCache;

/// How long a key stays in the JWKS after a newer key replaced it: the token lifetime (300 s)
/// plus a 60 s margin for clock skew and verifier leeway.
pub const RETIRED_KEY_PUBLISHED_MS: i64 = (TOKEN_LIFETIME_SECS + 60) * 1000;

/// Lifetime of every access token, in seconds (fixed by design).
pub const TOKEN_LIFETIME_SECS: i64 = 300;

/// How long a new key is published before it signs, by default: the JWKS `max-age` (300 s), so
/// that resource servers caching the JWKS have the key before its first token.
pub const DEFAULT_KEY_PUBLISH_DELAY: std::time::Duration = std::time::Duration::from_secs(300);

/// Signing-key failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A stored key could not be loaded (corrupt PKCS#8 or not Ed25519).
    #[error("signing key {kid} could not be loaded: {reason}")]
    Load {
        /// The key's id.
        kid: String,
        /// Why (from the crypto library; contains no key material).
        reason: String,
    },
    /// Key generation failed.
    #[error("signing key generation failed")]
    Generate,
    /// There is no signing key.
    #[error("no signing key")]
    NoKey,
    /// Claims or header could not be serialized.
    #[error("token could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The JWKS document could not be read back as keys for self-service.
    #[error("the JWKS could not be handed to self-service: {0}")]
    Mirror(#[source] serde_json::Error),
}

/// One loaded Ed25519 signing key with its pre-encoded JWS header.
pub(crate) struct SigningKey {
    kid: String,
    created_at: i64,
    pair: Ed25519KeyPair,
    /// base64url of `{"alg":"EdDSA","kid":…,"typ":"at+jwt"}`.
    header_b64: String,
    /// base64url of the 32-byte public key (the JWK `x`).
    x: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key (base64url of the raw key).
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(SecretHash::of(canonical.as_bytes()).as_bytes())
}

impl SigningKey {
    /// A new random key in its storable form, published from `now_ms` and signing from
    /// `signs_from`; its `kid` is the RFC 7638 thumbprint.
    pub(crate) fn generate(now_ms: i64, signs_from: i64) -> Result<StoredSigningKey, KeyError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?;
        let der = pair.to_pkcs8().map_err(|_| KeyError::Generate)?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Ok(StoredSigningKey {
            kid: thumbprint(&x),
            pkcs8_der: der.as_ref().to_vec(),
            created_at: now_ms,
            signs_from,
        })
    }

    /// Loads a stored key.
    pub(crate) fn load(stored: &StoredSigningKey) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(&stored.pkcs8_der).map_err(|e| KeyError::Load {
            kid: stored.kid.clone(),
            reason: e.to_string(),
        })?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let header = serde_json::to_vec(&Header {
            alg: "EdDSA",
            kid: &stored.kid,
            typ: "at+jwt",
        })?;
        Ok(Self {
            kid: stored.kid.clone(),
            created_at: stored.created_at,
            pair,
            header_b64: URL_SAFE_NO_PAD.encode(header),
            x,
        })
    }

    /// The key id.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// When the key was created (ms).
    pub(crate) fn created_at(&self) -> i64 {
        self.created_at
    }

    /// A compact JWS with the standard access-token header.
    pub(crate) fn sign(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims)?;
        Ok(self.sign_parts(&self.header_b64, &payload))
    }

    /// A compact JWS with an arbitrary header (test tokens), signed with this key.
    pub(crate) fn sign_with_header(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, KeyError> {
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        Ok(self.sign_parts(&header, &serde_json::to_vec(claims)?))
    }

    fn sign_parts(&self, header_b64: &str, payload: &[u8]) -> String {
        let payload_len = payload.len().div_ceil(3) * 4;
        let mut jws = String::with_capacity(header_b64.len() + payload_len + 90);
        jws.push_str(header_b64);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jws);
        let signature = self.pair.sign(jws.as_bytes());
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
        jws
    }

    fn jwk(&self) -> Jwk<'_> {
        Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x: &self.x,
            kid: &self.kid,
            alg: "EdDSA",
            key_use: "sig",
        }
    }
}

#[derive(Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    crv: &'static str,
    x: &'a str,
    kid: &'a str,
    alg: &'static str,
    #[serde(rename = "use")]
    key_use: &'static str,
}

#[derive(Serialize)]
struct Jwks<'a> {
    keys: Vec<Jwk<'a>>,
}

/// The published key set: the active key and the serialized JWKS.
#[derive(Debug)]
pub(crate) struct KeySet {
    active: Arc<SigningKey>,
    jwks_body: Bytes,
    etag: String,
    kids: Vec<String>,
    /// When this set stops being the right one (ms): a pending key starts signing, or a
    /// retired key leaves the JWKS.
    next_change_at: Option<i64>,
    /// Retired keys past their publication: no unexpired token can carry them.
    expired: Vec<String>,
}

impl KeySet {
    fn build(mut stored: Vec<StoredSigningKey>, now_ms: i64) -> Result<Self, KeyError> {
        // In signing order; the newest key whose time has come signs (the first key signs
        // anyway if none has: a store holds at least one key that may sign).
        stored.sort_by_key(|k| (k.signs_from, k.created_at));
        let active_at = stored
            .iter()
            .rposition(|k| k.signs_from <= now_ms)
            .unwrap_or(0);
        let mut next_change_at: Option<i64> = None;
        let mut soonest = |at: i64| next_change_at = Some(next_change_at.map_or(at, |n| n.min(at)));
        let mut expired = Vec::new();
        let mut published = Vec::with_capacity(stored.len());
        for (i, key) in stored.iter().enumerate() {
            if i > active_at {
                // Pending: published now, signing from `signs_from`.
                soonest(key.signs_from);
                published.push(key);
            } else if i < active_at {
                // Retired when its successor started signing.
                let until = stored[i + 1]
                    .signs_from
                    .max(stored[i + 1].created_at)
                    .saturating_add(RETIRED_KEY_PUBLISHED_MS);
                if now_ms < until {
                    soonest(until);
                    published.push(key);
                } else {
                    expired.push(key.kid.clone());
                }
            }
        }
        let active = SigningKey::load(stored.get(active_at).ok_or(KeyError::NoKey)?)?;
        let others = published
            .into_iter()
            .map(SigningKey::load)
            .collect::<Result<Vec<_>, _>>()?;
        // The signing key first, then the others newest first.
        let keys: Vec<&SigningKey> = std::iter::once(&active)
            .chain(others.iter().rev())
            .collect();
        let jwks_body = serde_json::to_vec(&Jwks {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        })?;
        let digest = SecretHash::of(&jwks_body);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_bytes()[..16]));
        let kids = keys.iter().map(|k| k.kid.clone()).collect();
        Ok(Self {
            active: Arc::new(active),
            jwks_body: Bytes::from(jwks_body),
            etag,
            kids,
            next_change_at,
            expired,
        })
    }

    /// The kids in the JWKS, the signing one first.
    pub(crate) fn kids(&self) -> &[String] {
        &self.kids
    }

    /// The key that signs new tokens.
    pub(crate) fn active(&self) -> &SigningKey {
        &self.active
    }

    /// `{"keys":[…]}`.
    pub(crate) fn jwks_body(&self) -> Bytes {
        self.jwks_body.clone()
    }

    /// Strong `ETag` of the JWKS body, quoted.
    pub(crate) fn etag(&self) -> &str {
        &self.etag
    }

    /// Stored keys that left the JWKS for good: storage may forget them.
    pub(crate) fn expired(&self) -> &[String] {
        &self.expired
    }
}

/// The issuer's signing keys.
#[derive(Debug)]
pub(crate) struct KeyRing {
    current: ArcSwap<KeySet>,
    /// Every stored key (the published ones are derived from it and the time).
    stored: std::sync::Mutex<Vec<StoredSigningKey>>,
    /// The self-service verifier's key cache: given every set this ring publishes.
    mirror: Arc<JwksCache>,
}

impl KeyRing {
    /// Loads the stored keys as published at `now_ms` and hands them to `mirror`.
    pub(crate) fn new(
        stored: Vec<StoredSigningKey>,
        now_ms: i64,
        mirror: Arc<JwksCache>,
    ) -> Result<Self, KeyError> {
        let set = KeySet::build(stored.clone(), now_ms)?;
        mirror_into(&mirror, &set)?;
        Ok(Self {
            current: ArcSwap::from_pointee(set),
            stored: std::sync::Mutex::new(stored),
            mirror,
        })
    }

    /// The current key set (cheap: an `Arc` load), possibly past its next change.
    pub(crate) fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// The key set at `now_ms`: rebuilt first if its next change is due (one atomic load and
    /// a comparison otherwise).
    pub(crate) fn at(&self, now_ms: i64) -> Result<Arc<KeySet>, KeyError> {
        let set = self.current();
        if set.next_change_at.is_some_and(|t| now_ms >= t) {
            let stored = self
                .stored
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            return self.publish(stored, now_ms);
        }
        Ok(set)
    }

    /// Whether `stored` differs from the keys this ring holds (by id and times).
    pub(crate) fn differs_from(&self, stored: &[StoredSigningKey]) -> bool {
        let held = self
            .stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ids = |keys: &[StoredSigningKey]| -> Vec<(String, i64, i64)> {
            let mut v: Vec<_> = keys
                .iter()
                .map(|k| (k.kid.clone(), k.created_at, k.signs_from))
                .collect();
            v.sort();
            v
        };
        ids(&held) != ids(stored)
    }

    /// Replaces the stored keys (after a rotation or a pruning) and republishes at `now_ms`.
    pub(crate) fn replace(
        &self,
        stored: Vec<StoredSigningKey>,
        now_ms: i64,
    ) -> Result<Arc<KeySet>, KeyError> {
        let set = self.publish(stored.clone(), now_ms)?;
        *self
            .stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stored;
        Ok(set)
    }

    fn publish(&self, stored: Vec<StoredSigningKey>, now_ms: i64) -> Result<Arc<KeySet>, KeyError> {
        let set = Arc::new(KeySet::build(stored, now_ms)?);
        mirror_into(&self.mirror, &set)?;
        self.current.store(Arc::clone(&set));
        Ok(set)
    }
}

/// Hands `set`'s public keys to the self-service verifier, parsed exactly as a fetched JWKS.
fn mirror_into(mirror: &JwksCache, set: &KeySet) -> Result<(), KeyError> {
    let keys = crate::jwks::KeySet::parse(&set.jwks_body).map_err(KeyError::Mirror)?;
    mirror.serve_local(keys);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifiable_jws_and_publishes_jwk() {
        let stored = SigningKey::generate(1, 1).unwrap();
        assert!(format!("{stored:?}").contains("<redacted>"));
        let set = KeySet::build(vec![stored.clone()], 1).unwrap();
        let jws = set.active().sign(&serde_json::json!({"a": 1})).unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "EdDSA", "kid": stored.kid, "typ": "at+jwt"})
        );
        let jwks: serde_json::Value = serde_json::from_slice(&set.jwks_body()).unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        let public =
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, x);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert_eq!(jwks["keys"][0]["kid"], stored.kid.as_str());
        assert!(set.etag().starts_with('"'));
    }
}
