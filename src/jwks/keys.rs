//! JWK → verification key, and the key set a JWKS document turns into.
//!
//! Each key's algorithm is fixed here, from the JWK (`alg`, `kty`, `crv`), so that a token can
//! never choose how its own signature is checked. A JWK we cannot use safely is skipped with a
//! warning; it never poisons the rest of the set.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use curve25519_dalek::edwards::CompressedEdwardsY;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::algorithm::Algorithm;
use crate::error::InvalidToken;

/// RSA keys below this size are refused (NIST SP 800-131A; RFC 7518 §3.3 asks for 2048).
const MIN_RSA_BITS: usize = 2048;

/// A public key bound to exactly one algorithm.
pub(crate) struct VerifyingKey {
    kid: Option<Box<str>>,
    alg: Algorithm,
    key: DecodingKey,
    /// The public key material, to tell whether a refreshed set still holds this key.
    material: Box<[u8]>,
    /// EdDSA keys only: the decoded point, checked by [`crate::ed25519`] alone and in batches.
    ed25519: Option<ed25519_zebra::VerificationKey>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    pub(crate) fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key as the batch verifier takes it; `None` for other algorithms.
    pub(crate) fn ed25519(&self) -> Option<ed25519_zebra::VerificationKeyBytes> {
        self.ed25519.map(ed25519_zebra::VerificationKeyBytes::from)
    }

    /// Checks `signature` (base64url, as in the token) over `signing_input`: `Ok` only when it
    /// holds, so no caller can act on a verdict it did not get.
    pub(crate) fn verify(&self, signing_input: &[u8], signature: &str) -> Result<(), InvalidToken> {
        if self.signature_holds(signing_input, signature) {
            Ok(())
        } else {
            Err(InvalidToken::BadSignature)
        }
    }

    fn signature_holds(&self, signing_input: &[u8], signature: &str) -> bool {
        if let Some(key) = &self.ed25519 {
            // The same rule as a batch (cofactored, strict encodings): `crate::ed25519`.
            return crate::ed25519::verify(key, signing_input, signature);
        }
        // jsonwebtoken decodes the signature with the strict URL_SAFE_NO_PAD engine and runs the
        // aws-lc-rs verifier bound to `self.alg`; any error is a failed verification.
        jsonwebtoken::crypto::verify(
            signature,
            signing_input,
            &self.key,
            self.alg.to_jsonwebtoken(),
        )
        .unwrap_or(false)
    }
}

/// Why a JWK was skipped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("not a JSON object with string members: {0}")]
    Json(#[from] serde_json::Error),
    #[error("key is not for signatures (use={0})")]
    NotForSigning(String),
    #[error("key_ops does not allow verify")]
    NoVerifyOp,
    #[error("unsupported key type or curve")]
    Unsupported,
    #[error("alg {0:?} does not fit the key type")]
    AlgMismatch(String),
    #[error("malformed key material")]
    Malformed,
    #[error("weak key: {0}")]
    Weak(&'static str),
}

/// The members of a JWK we look at (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2). Private members
/// (`d`, `p`, …) are ignored: we only ever verify.
#[derive(Deserialize)]
struct Jwk<'a> {
    #[serde(borrow)]
    kty: &'a str,
    #[serde(default, borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, rename = "use")]
    key_use: Option<&'a str>,
    #[serde(default)]
    key_ops: Option<Vec<&'a str>>,
    #[serde(default)]
    alg: Option<&'a str>,
    #[serde(default)]
    crv: Option<&'a str>,
    #[serde(default)]
    x: Option<&'a str>,
    #[serde(default)]
    y: Option<&'a str>,
    #[serde(default)]
    n: Option<&'a str>,
    #[serde(default)]
    e: Option<&'a str>,
}

impl VerifyingKey {
    /// Builds a key from one JWK, or says why it cannot be used.
    pub(crate) fn from_jwk(raw: &RawValue) -> Result<Self, KeyError> {
        let jwk: Jwk<'_> = serde_json::from_str(raw.get())?;
        if let Some(key_use) = jwk.key_use
            && key_use != "sig"
        {
            return Err(KeyError::NotForSigning(key_use.to_owned()));
        }
        if let Some(ops) = &jwk.key_ops
            && !ops.contains(&"verify")
        {
            return Err(KeyError::NoVerifyOp);
        }
        let declared = match jwk.alg {
            None => None,
            Some(name) => Some(
                Algorithm::from_name(name).ok_or_else(|| KeyError::AlgMismatch(name.to_owned()))?,
            ),
        };
        let (alg, (key, material)) = match (jwk.kty, jwk.crv) {
            ("OKP", Some("Ed25519")) => (Algorithm::EdDSA, ed25519_key(jwk.x)?),
            ("EC", Some("P-256")) => (Algorithm::ES256, ec_key(jwk.x, jwk.y, 32)?),
            ("EC", Some("P-384")) => (Algorithm::ES384, ec_key(jwk.x, jwk.y, 48)?),
            ("RSA", _) => (declared.unwrap_or(Algorithm::RS256), rsa_key(jwk.n, jwk.e)?),
            _ => return Err(KeyError::Unsupported),
        };
        // A declared alg must name the algorithm the key type implies (for RSA: any RSA alg).
        if let Some(declared) = declared {
            let fits = if alg.is_rsa() {
                declared.is_rsa()
            } else {
                declared == alg
            };
            if !fits {
                return Err(KeyError::AlgMismatch(declared.as_str().to_owned()));
            }
        }
        let ed25519 = match alg {
            // 32 bytes, checked in `ed25519_key`: a canonical, torsion-free point.
            Algorithm::EdDSA => <[u8; 32]>::try_from(&*material)
                .ok()
                .and_then(|bytes| ed25519_zebra::VerificationKey::try_from(bytes).ok()),
            _ => None,
        };
        Ok(VerifyingKey {
            kid: jwk.kid.map(|kid| kid.into()),
            alg,
            key,
            material,
            ed25519,
        })
    }
}

fn decode_b64(value: Option<&str>) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(value.ok_or(KeyError::Malformed)?)
        .map_err(|_| KeyError::Malformed)
}

/// A decoding key and its public material.
type KeyMaterial = (DecodingKey, Box<[u8]>);

/// Ed25519 public keys must be canonical encodings of points outside the small-order subgroup
/// (RFC 8032 §5.1.7, "Taming the many EdDSAs"): aws-lc-rs refuses non-canonical signatures but
/// not weak keys, so weak keys are refused here, once, when the key is loaded.
fn ed25519_key(x: Option<&str>) -> Result<KeyMaterial, KeyError> {
    let bytes: [u8; 32] = decode_b64(x)?.try_into().map_err(|_| KeyError::Malformed)?;
    let compressed = CompressedEdwardsY(bytes);
    let point = compressed.decompress().ok_or(KeyError::Malformed)?;
    if point.compress() != compressed {
        return Err(KeyError::Weak("non-canonical Ed25519 point encoding"));
    }
    if point.is_small_order() {
        return Err(KeyError::Weak("small-order Ed25519 point"));
    }
    // A = a·B never has a small-order component; one that does can only be a crafted key, and
    // it would let batched and single verification disagree (src/signature_batch.rs).
    if !point.is_torsion_free() {
        return Err(KeyError::Weak("Ed25519 point with a small-order component"));
    }
    Ok((DecodingKey::from_ed_der(&bytes), bytes.into()))
}

fn ec_key(
    x: Option<&str>,
    y: Option<&str>,
    coordinate_len: usize,
) -> Result<KeyMaterial, KeyError> {
    let (x_bytes, y_bytes) = (decode_b64(x)?, decode_b64(y)?);
    if x_bytes.len() != coordinate_len || y_bytes.len() != coordinate_len {
        return Err(KeyError::Malformed);
    }
    // Both coordinates decoded above, so these strings are valid base64url.
    let key = DecodingKey::from_ec_components(x.unwrap_or_default(), y.unwrap_or_default())
        .map_err(|_| KeyError::Malformed)?;
    Ok((key, [x_bytes, y_bytes].concat().into()))
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<KeyMaterial, KeyError> {
    let (n_bytes, e_bytes) = (decode_b64(n)?, decode_b64(e)?);
    let n_trimmed = strip_leading_zeros(&n_bytes);
    let bits = match n_trimmed.first() {
        None => 0,
        Some(top) => n_trimmed.len() * 8 - top.leading_zeros() as usize,
    };
    if bits < MIN_RSA_BITS {
        return Err(KeyError::Weak("RSA modulus shorter than 2048 bits"));
    }
    if strip_leading_zeros(&e_bytes).is_empty() {
        return Err(KeyError::Malformed);
    }
    let key = DecodingKey::from_rsa_raw_components(&n_bytes, &e_bytes);
    Ok((key, [n_bytes, e_bytes].concat().into()))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The outcome of looking a token's key up.
pub(crate) enum Lookup<'a> {
    Found(&'a Arc<VerifyingKey>),
    /// No key with this `kid` (or, without a `kid`, none for the algorithm): worth a refetch.
    Unknown,
    /// A key exists under this `kid` but for another algorithm: the token is lying; no refetch.
    AlgorithmMismatch,
    /// No `kid` and several keys fit: refuse rather than guess.
    Ambiguous,
}

/// The usable keys of one JWKS document, indexed by `kid`.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeySet {
    by_kid: HashMap<Box<str>, Arc<VerifyingKey>>,
    all: Vec<Arc<VerifyingKey>>,
}

/// The outer shape of a JWKS document; each key is parsed on its own.
#[derive(Deserialize)]
struct JwksDocument<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

impl KeySet {
    /// Parses a JWKS document. The document must be a JSON object with a `keys` array; keys
    /// that cannot be used are skipped (and logged with their position and `kid`).
    pub(crate) fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        // serde would also read the struct from a JSON array by position (`[[jwk]]`).
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(serde::de::Error::custom("a JWKS must be a JSON object"));
        }
        let document: JwksDocument<'_> = serde_json::from_slice(body)?;
        let mut set = KeySet::default();
        for (index, raw) in document.keys.into_iter().enumerate() {
            match VerifyingKey::from_jwk(raw) {
                Ok(key) => set.insert(key),
                Err(error) => tracing::warn!(index, %error, "skipping unusable JWK"),
            }
        }
        Ok(set)
    }

    fn insert(&mut self, key: VerifyingKey) {
        let key = Arc::new(key);
        if let Some(kid) = &key.kid {
            if self.by_kid.contains_key(kid) {
                // Two keys under one kid make the lookup ambiguous: keep the first, as jose does
                // for its first match, and say so.
                tracing::warn!(kid = %kid, "duplicate kid in JWKS; keeping the first key");
                return;
            }
            self.by_kid.insert(kid.clone(), key.clone());
        }
        self.all.push(key);
    }

    /// Whether every key of `older` is still here, under the same `kid`, for the same
    /// algorithm, with the same material. When not, tokens verified with `older` must be
    /// verified again.
    pub(crate) fn retains_all(&self, older: &KeySet) -> bool {
        older.all.iter().all(|old| {
            let same = |new: &Arc<VerifyingKey>| {
                new.kid == old.kid && new.alg == old.alg && new.material == old.material
            };
            match &old.kid {
                Some(kid) => self.by_kid.get(kid).is_some_and(same),
                None => self.all.iter().any(same),
            }
        })
    }

    /// Number of usable keys.
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// Finds the key for a token's `kid` and `alg`. A token without `kid` is accepted only when
    /// exactly one key of its algorithm is published.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(key) if key.alg == alg => Lookup::Found(key),
                Some(_) => Lookup::AlgorithmMismatch,
                None => Lookup::Unknown,
            },
            None => {
                let mut fitting = self.all.iter().filter(|key| key.alg == alg);
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Found(key),
                    (None, _) => Lookup::Unknown,
                    (Some(_), Some(_)) => Lookup::Ambiguous,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8037 appendix A.2 public key.
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn parse(doc: &str) -> KeySet {
        KeySet::parse(doc.as_bytes()).expect("valid document")
    }

    #[test]
    fn ed25519_key_is_bound_to_eddsa_and_found_by_kid() {
        let set = parse(&format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}}]}}"#
        ));
        assert_eq!(set.len(), 1);
        assert!(
            matches!(set.find(Some("a"), Algorithm::EdDSA), Lookup::Found(k) if k.alg() == Algorithm::EdDSA)
        );
        assert!(matches!(
            set.find(Some("a"), Algorithm::ES256),
            Lookup::AlgorithmMismatch
        ));
        assert!(matches!(
            set.find(Some("b"), Algorithm::EdDSA),
            Lookup::Unknown
        ));
        assert!(matches!(set.find(None, Algorithm::EdDSA), Lookup::Found(_)));
    }

    #[test]
    fn an_ed25519_key_with_a_small_order_component_is_refused() {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        let honest = ED25519_BASEPOINT_POINT * curve25519_dalek::Scalar::from(7u64);
        let encode = |point: curve25519_dalek::EdwardsPoint| {
            URL_SAFE_NO_PAD.encode(point.compress().as_bytes())
        };
        let jwk = |x: String| {
            RawValue::from_string(format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#)).unwrap()
        };
        assert!(VerifyingKey::from_jwk(&jwk(encode(honest))).is_ok());
        for torsion in &EIGHT_TORSION[1..] {
            let mixed = honest + torsion;
            assert!(
                matches!(
                    VerifyingKey::from_jwk(&jwk(encode(mixed))),
                    Err(KeyError::Weak(_))
                ),
                "mixed-order key accepted: {:?}",
                VerifyingKey::from_jwk(&jwk(encode(mixed))).map(|_| ())
            );
        }
    }

    #[test]
    fn bad_keys_are_skipped_not_fatal() {
        let doc = format!(
            r#"{{"keys":[
                {{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"{ED_X}"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"ops","key_ops":["sign"],"x":"{ED_X}"}},
                {{"kty":"OKP","crv":"Ed448","kid":"ed448","x":"{ED_X}"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"lying","alg":"RS256","x":"{ED_X}"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"hs","alg":"HS256","x":"{ED_X}"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"short","x":"AAAA"}},
                {{"kty":"RSA","kid":"rsa-small","n":"AQAB","e":"AQAB"}},
                {{"kty":"WAT"}},
                42,
                {{"kty":"OKP","crv":"Ed25519","kid":"good","x":"{ED_X}"}}
            ]}}"#
        );
        let set = parse(&doc);
        assert_eq!(set.len(), 1);
        assert!(matches!(
            set.find(Some("good"), Algorithm::EdDSA),
            Lookup::Found(_)
        ));
    }

    #[test]
    fn small_order_and_non_canonical_ed25519_keys_are_refused() {
        // The identity point (small order), and y = p (a non-canonical encoding of y = 0).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut y_is_p = [0xffu8; 32];
        y_is_p[0] = 0xed;
        y_is_p[31] = 0x7f;
        for bytes in [identity, y_is_p] {
            let x = URL_SAFE_NO_PAD.encode(bytes);
            let err = ed25519_key(Some(&x)).expect_err("must be refused");
            assert!(
                matches!(err, KeyError::Weak(_) | KeyError::Malformed),
                "{err}"
            );
        }
    }

    #[test]
    fn duplicate_kid_keeps_the_first_key() {
        let set = parse(&format!(
            r#"{{"keys":[
                {{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{ED_X}"}},
                {{"kty":"RSA","kid":"k","n":"{n}","e":"AQAB"}}
            ]}}"#,
            n = URL_SAFE_NO_PAD.encode([0xc5u8; 256])
        ));
        assert!(matches!(
            set.find(Some("k"), Algorithm::EdDSA),
            Lookup::Found(_)
        ));
        assert!(matches!(
            set.find(Some("k"), Algorithm::RS256),
            Lookup::AlgorithmMismatch
        ));
        // The second key is dropped entirely, not reachable without a kid either.
        assert_eq!(set.len(), 1);
        assert!(matches!(set.find(None, Algorithm::RS256), Lookup::Unknown));
    }

    #[test]
    fn missing_kid_with_two_keys_of_one_algorithm_is_ambiguous() {
        let set = parse(&format!(
            r#"{{"keys":[
                {{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"b","x":"{ED_X}"}}
            ]}}"#
        ));
        assert!(matches!(
            set.find(None, Algorithm::EdDSA),
            Lookup::Ambiguous
        ));
    }

    #[test]
    fn a_document_without_keys_is_an_error() {
        assert!(KeySet::parse(br#"{"nokeys":[]}"#).is_err());
        assert!(KeySet::parse(b"not json").is_err());
        assert_eq!(parse(r#"{"keys":[]}"#).len(), 0);
    }
}
