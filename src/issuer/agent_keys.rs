//! Agents' public keys (`jwk` verifiers, for `private_key_jwt`): what a registered JWK must be,
//! its RFC 7638 thumbprint, the form it is stored in, and the verification key rebuilt from it.
//!
//! A JWK is accepted only when it is a public signing key of a supported type: OKP Ed25519
//! (EdDSA), EC P-256 (ES256) or RSA of 2048 to 4096 bits (RS256 unless it says PS256). Private
//! members, symmetric keys, other curves or algorithms, weak or non-canonical keys and keys not
//! for signing are refused. The material checks are the resource server's own
//! (`crate::jwks::VerifyingKey::from_jwk`: canonical, torsion-free Ed25519 points, on-curve EC
//! points, RSA bounds), so an assertion's signature is checked by exactly the code that checks
//! access tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::jwks::VerifyingKey;

/// The largest RSA modulus accepted, in bits: bigger keys only make each verification slower.
pub const MAX_RSA_KEY_BITS: usize = 4096;

/// The `alg` values a client assertion may carry (RFC 7523 §3, RFC 9864 for `Ed25519`), as the
/// metadata's `token_endpoint_auth_signing_alg_values_supported` lists them.
pub(crate) const ASSERTION_ALGS: [&str; 5] = ["EdDSA", "Ed25519", "ES256", "RS256", "PS256"];

/// JWK members that carry private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4,
/// RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a JWK cannot be registered. Each message describes the key's shape, never its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwkRefusal {
    #[error("jwk must be a JSON object without duplicate members")]
    NotAnObject,
    #[error("jwk contains private key material; register the public key only")]
    PrivateMembers,
    #[error("jwk is a symmetric key (kty \"oct\"); only public keys are accepted")]
    Symmetric,
    #[error("unsupported key type or curve: use OKP Ed25519, EC P-256 or RSA")]
    Unsupported,
    #[error("jwk alg does not fit the key or is not one of EdDSA, ES256, RS256, PS256")]
    Algorithm,
    #[error("jwk is not for signatures (use or key_ops)")]
    NotForSigning,
    #[error("jwk key material is malformed (base64url or length)")]
    Malformed,
    #[error(
        "jwk is a weak key (small-order, non-canonical, or an RSA modulus outside 2048..=4096 bits)"
    )]
    Weak,
}

/// A public key accepted for registration.
#[derive(Debug, Clone)]
pub(crate) struct AgentKey {
    /// What is stored: the required public members and `alg`, canonical (RFC 7638 order).
    pub(crate) stored_jwk: String,
    /// RFC 7638 SHA-256 thumbprint.
    pub(crate) thumbprint: [u8; 32],
    pub(crate) kty: &'static str,
    pub(crate) crv: Option<&'static str>,
    /// The one algorithm the key verifies.
    pub(crate) alg: Algorithm,
}

impl AgentKey {
    /// The thumbprint as the API shows it (base64url).
    pub(crate) fn thumbprint_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.thumbprint)
    }
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, JwkRefusal> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwkRefusal::Malformed),
    }
}

fn required<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, JwkRefusal> {
    member(jwk, name)?.ok_or(JwkRefusal::Malformed)
}

/// Checks a JWK submitted for registration (raw JSON, so that duplicate members are refused).
pub(crate) fn accept(raw: &RawValue) -> Result<AgentKey, JwkRefusal> {
    let parsed = crate::strict_json::parse_object(raw.get().as_bytes())
        .map_err(|_| JwkRefusal::NotAnObject)?;
    let Value::Object(jwk) = parsed else {
        return Err(JwkRefusal::NotAnObject);
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(JwkRefusal::PrivateMembers);
    }
    if let Some(key_use) = member(&jwk, "use")?
        && key_use != "sig"
    {
        return Err(JwkRefusal::NotForSigning);
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err(JwkRefusal::NotForSigning);
        }
    }
    let kty = required(&jwk, "kty")?;
    let declared = member(&jwk, "alg")?;
    // (kty, crv, alg, the RFC 7638 members in lexicographic order)
    let (kty, crv, alg, members): (_, _, _, &[&str]) = match (kty, member(&jwk, "crv")?) {
        ("oct", _) => return Err(JwkRefusal::Symmetric),
        ("OKP", Some("Ed25519")) => match declared {
            None | Some("EdDSA") | Some("Ed25519") => (
                "OKP",
                Some("Ed25519"),
                Algorithm::EdDSA,
                &["crv", "kty", "x"],
            ),
            Some(_) => return Err(JwkRefusal::Algorithm),
        },
        ("EC", Some("P-256")) => match declared {
            None | Some("ES256") => (
                "EC",
                Some("P-256"),
                Algorithm::ES256,
                &["crv", "kty", "x", "y"],
            ),
            Some(_) => return Err(JwkRefusal::Algorithm),
        },
        ("RSA", _) => {
            let alg = match declared {
                None | Some("RS256") => Algorithm::RS256,
                Some("PS256") => Algorithm::PS256,
                Some(_) => return Err(JwkRefusal::Algorithm),
            };
            ("RSA", None, alg, &["e", "kty", "n"])
        }
        _ => return Err(JwkRefusal::Unsupported),
    };
    if kty == "RSA" {
        let n = URL_SAFE_NO_PAD
            .decode(required(&jwk, "n")?)
            .map_err(|_| JwkRefusal::Malformed)?;
        let significant = n.iter().skip_while(|b| **b == 0).count();
        if significant * 8 > MAX_RSA_KEY_BITS {
            return Err(JwkRefusal::Weak);
        }
    }

    // RFC 7638 §3: the required members, lexicographic order, no whitespace. The values are
    // JSON strings, serialized by serde_json (which escapes exactly as JSON requires).
    let mut canonical = Map::new();
    for name in members {
        canonical.insert(
            (*name).to_owned(),
            Value::String(required(&jwk, name)?.to_owned()),
        );
    }
    // serde_json's Map is ordered by key (no `preserve_order` feature): lexicographic.
    let thumbprint_input = Value::Object(canonical.clone()).to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, thumbprint_input.as_bytes());
    let mut thumbprint = [0u8; 32];
    thumbprint.copy_from_slice(digest.as_ref());

    canonical.insert("alg".to_owned(), Value::String(alg.as_str().to_owned()));
    let stored_jwk = Value::Object(canonical).to_string();
    // The material checks of the resource server: the key must load exactly as it would there.
    let key = verifying_key(&stored_jwk).ok_or_else(|| material_refusal(&stored_jwk))?;
    debug_assert_eq!(key.alg(), alg);
    Ok(AgentKey {
        stored_jwk,
        thumbprint,
        kty,
        crv,
        alg,
    })
}

/// Why the crate's JWK loader refused a key whose shape was accepted above.
fn material_refusal(stored_jwk: &str) -> JwkRefusal {
    let Ok(raw) = RawValue::from_string(stored_jwk.to_owned()) else {
        return JwkRefusal::Malformed;
    };
    match VerifyingKey::from_jwk(&raw) {
        Err(crate::jwks::KeyError::Weak(_)) => JwkRefusal::Weak,
        _ => JwkRefusal::Malformed,
    }
}

/// The verification key of a stored JWK (`None` if it does not load: it then verifies nothing).
pub(crate) fn verifying_key(stored_jwk: &str) -> Option<VerifyingKey> {
    let raw = RawValue::from_string(stored_jwk.to_owned()).ok()?;
    VerifyingKey::from_jwk(&raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn rfc_7638_thumbprint_of_the_rfc_8037_key() {
        // RFC 8037 appendix A.3: the thumbprint of the A.2 public key.
        let key = accept(&raw(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        ))
        .unwrap();
        assert_eq!(
            key.thumbprint_b64(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        assert_eq!(key.alg, Algorithm::EdDSA);
        assert_eq!(
            key.stored_jwk,
            r#"{"alg":"EdDSA","crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
        );
    }

    #[test]
    fn rfc_7638_thumbprint_of_the_rfc_7638_rsa_key() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = accept(&raw(&format!(
            r#"{{"kty":"RSA","n":"{n}","e":"AQAB","alg":"RS256","kid":"2011-04-29"}}"#
        )))
        .unwrap();
        assert_eq!(
            key.thumbprint_b64(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!((key.kty, key.crv, key.alg), ("RSA", None, Algorithm::RS256));
    }
}
