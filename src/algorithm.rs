//! The signature algorithms a resource server may accept.
//!
//! Only asymmetric JWS algorithms exist in this type: `none` and the HMAC family cannot be named,
//! so no configuration can turn them on.

use std::fmt;

/// An asymmetric JWS algorithm (RFC 7518, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 (RFC 8037), also named `Ed25519` (RFC 9864's fully-specified name): both
    /// names mean this algorithm, and only with an OKP Ed25519 key. The bundled issuer signs
    /// with it.
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
}

impl Algorithm {
    /// Every algorithm this crate can verify, EdDSA first.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    /// The `alg` header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
        }
    }

    /// Parses an `alg` value; `None` for anything we never accept (`none`, `HS256`, unknown).
    /// Matching is exact, as RFC 7515 makes `alg` case-sensitive. `Ed25519` (RFC 9864 §2.2) is
    /// [`EdDSA`](Self::EdDSA): the only EdDSA curve accepted is Ed25519, so the two names
    /// select the same keys and the same verification.
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "Ed25519" {
            return Some(Algorithm::EdDSA);
        }
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    pub(crate) const fn is_rsa(self) -> bool {
        matches!(
            self,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        )
    }

    pub(crate) const fn bit(self) -> u16 {
        1 << (self as u16)
    }

    pub(crate) const fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of accepted algorithms, as a bit set so the per-request check is one AND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlgorithmSet(u16);

impl AlgorithmSet {
    pub(crate) fn from_iter(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        AlgorithmSet(algs.into_iter().fold(0, |bits, alg| bits | alg.bit()))
    }

    pub(crate) const fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_symmetric_algorithms_do_not_exist() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
        }
        for name in [
            "none", "None", "HS256", "HS384", "HS512", "eddsa", "ES512", "",
        ] {
            assert_eq!(Algorithm::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn set_contains_only_what_was_put_in() {
        let set = AlgorithmSet::from_iter([Algorithm::EdDSA, Algorithm::PS512]);
        assert!(set.contains(Algorithm::EdDSA));
        assert!(set.contains(Algorithm::PS512));
        assert!(!set.contains(Algorithm::RS256));
        assert!(AlgorithmSet::from_iter(Algorithm::ALL).contains(Algorithm::ES384));
        assert!(AlgorithmSet::from_iter([]).is_empty());
    }
}
