//! How a [`TokenSource`](super::TokenSource) authenticates: a shared secret
//! (`client_secret_basic`, RFC 6749 §2.3.1) or a private Ed25519 JWK whose public half the
//! issuer holds (`private_key_jwt`, RFC 7523 §2.2, signed client assertions).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::error::TokenError;

/// A client secret. `Debug` redacts it; read it deliberately with [`expose`](Self::expose).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// Why a JWK is not a usable private Ed25519 key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwkError {
    /// Not a JSON object.
    #[error("the JWK is not a JSON object")]
    NotAnObject,
    /// `kty` is not `OKP` or `crv` is not `Ed25519`.
    #[error("only OKP Ed25519 private keys are supported")]
    Unsupported,
    /// `alg` is present and is neither `EdDSA` nor `Ed25519`.
    #[error("the JWK's alg does not fit an Ed25519 key")]
    Algorithm,
    /// `d` is missing or not 32 base64url bytes.
    #[error("the JWK has no valid private part d")]
    PrivatePart,
    /// `x` is present and is not the public key of `d`.
    #[error("the JWK's x is not the public key of its d")]
    PublicMismatch,
}

/// A private Ed25519 key as a JWK (`{"kty":"OKP","crv":"Ed25519","d":…,"x":…}`), for
/// `private_key_jwt`. `Debug` shows only the `kid` and the public `x`.
#[derive(Clone)]
pub struct PrivateJwk {
    // Boxed: the expanded key is 300-odd bytes, the rest of a credential a few words.
    key: Box<ed25519_zebra::SigningKey>,
    x: String,
    kid: Option<String>,
}

impl PrivateJwk {
    /// Parses a private JWK from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, JwkError> {
        let value: Value = serde_json::from_str(text).map_err(|_| JwkError::NotAnObject)?;
        Self::from_value(&value)
    }

    /// Reads a private JWK from a JSON value.
    pub fn from_value(jwk: &Value) -> Result<Self, JwkError> {
        let obj = jwk.as_object().ok_or(JwkError::NotAnObject)?;
        let field = |name: &str| obj.get(name).and_then(Value::as_str);
        if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") {
            return Err(JwkError::Unsupported);
        }
        if obj.contains_key("alg") && !matches!(field("alg"), Some("EdDSA" | "Ed25519")) {
            return Err(JwkError::Algorithm);
        }
        let d = field("d")
            .and_then(|d| URL_SAFE_NO_PAD.decode(d).ok())
            .and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
            .ok_or(JwkError::PrivatePart)?;
        let jwk = Self::from_seed(d, field("kid").map(str::to_owned));
        if obj.contains_key("x") && field("x") != Some(jwk.x.as_str()) {
            return Err(JwkError::PublicMismatch);
        }
        Ok(jwk)
    }

    /// A key from its 32-byte Ed25519 seed (the JWK's `d`), with an optional `kid`.
    pub fn from_seed(seed: [u8; 32], kid: Option<String>) -> Self {
        let key = Box::new(ed25519_zebra::SigningKey::from(seed));
        let public: [u8; 32] = ed25519_zebra::VerificationKeyBytes::from(&*key).into();
        Self {
            key,
            x: URL_SAFE_NO_PAD.encode(public),
            kid,
        }
    }

    /// A fresh random key (from the operating system's random source).
    pub fn generate(kid: Option<String>) -> Result<Self, TokenError> {
        let mut seed = [0u8; 32];
        getrandom_fill(&mut seed)?;
        Ok(Self::from_seed(seed, kid))
    }

    /// The public JWK to register at the issuer (`kty`, `crv`, `x`, `alg`, and `kid` when set).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": self.x, "alg": "EdDSA"});
        if let (Some(kid), Some(obj)) = (&self.kid, jwk.as_object_mut()) {
            obj.insert("kid".into(), json!(kid));
        }
        jwk
    }

    /// A signed RFC 7523 client assertion: `iss` = `sub` = `client_id`, `aud` = the token
    /// endpoint, a random `jti`, `iat` = `now`, `exp` = `now + lifetime`.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: u64,
        lifetime_secs: u64,
    ) -> Result<String, TokenError> {
        let mut jti = [0u8; 16];
        getrandom_fill(&mut jti)?;
        let mut header = json!({"alg": "EdDSA", "typ": "JWT"});
        if let (Some(kid), Some(obj)) = (&self.kid, header.as_object_mut()) {
            obj.insert("kid".into(), json!(kid));
        }
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "exp": now.saturating_add(lifetime_secs),
        });
        let mut jws = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: [u8; 64] = self.key.sign(jws.as_bytes()).into();
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jws)
    }
}

fn getrandom_fill(buf: &mut [u8]) -> Result<(), TokenError> {
    use rand_core::RngCore as _;
    rand_core::OsRng
        .try_fill_bytes(buf)
        .map_err(|_| TokenError::Assertion)
}

impl fmt::Debug for PrivateJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateJwk")
            .field("kid", &self.kid)
            .field("x", &self.x)
            .finish_non_exhaustive()
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientCredential {
    /// A shared secret, sent as HTTP Basic (`client_secret_basic`, the id and secret
    /// form-urlencoded first as RFC 6749 §2.3.1 says).
    Secret(ClientSecret),
    /// A private key: each token request carries a fresh signed assertion
    /// (`private_key_jwt`, RFC 7523).
    PrivateKeyJwt(PrivateJwk),
}

impl ClientCredential {
    /// A client secret.
    pub fn secret(secret: impl Into<String>) -> Self {
        Self::Secret(ClientSecret::new(secret))
    }

    /// A private JWK.
    pub fn private_key_jwt(jwk: PrivateJwk) -> Self {
        Self::PrivateKeyJwt(jwk)
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
pub(crate) fn basic_authorization(client_id: &str, secret: &ClientSecret) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(client_id), enc(secret.expose()));
    format!("Basic {}", STANDARD.encode(pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_urlencoded_first() {
        let header = basic_authorization("agt_1", &ClientSecret::new("a b:c"));
        let decoded = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"agt_1:a+b%3Ac");
    }

    #[test]
    fn a_jwk_roundtrips_and_its_assertion_verifies() {
        let key = PrivateJwk::generate(Some("k1".into())).unwrap();
        let public = key.public_jwk();
        let mut private = public.clone();
        private["d"] = json!(URL_SAFE_NO_PAD.encode(key.key.as_ref().as_ref()));
        let parsed = PrivateJwk::from_value(&private).unwrap();
        assert_eq!(parsed.x, key.x);

        let jws = parsed
            .assertion("agt_1", "http://127.0.0.1/token", 1_000, 60)
            .unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "agt_1");
        assert_eq!(claims["sub"], "agt_1");
        assert_eq!(claims["aud"], "http://127.0.0.1/token");
        assert_eq!(claims["exp"], 1_060);
        let vk = ed25519_zebra::VerificationKey::try_from(
            URL_SAFE_NO_PAD.decode(&key.x).unwrap().as_slice(),
        )
        .unwrap();
        let sig = ed25519_zebra::Signature::from_bytes(
            &<[u8; 64]>::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap(),
        );
        vk.verify(&sig, format!("{}.{}", parts[0], parts[1]).as_bytes())
            .unwrap();
    }

    #[test]
    fn bad_jwks_are_refused() {
        let k = PrivateJwk::generate(None).unwrap();
        let d = URL_SAFE_NO_PAD.encode(k.key.as_ref().as_ref());
        let cases = [
            (json!([]), JwkError::NotAnObject),
            (
                json!({"kty": "EC", "crv": "P-256", "d": d}),
                JwkError::Unsupported,
            ),
            (
                json!({"kty": "OKP", "crv": "X25519", "d": d}),
                JwkError::Unsupported,
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "d": d, "alg": "ES256"}),
                JwkError::Algorithm,
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519"}),
                JwkError::PrivatePart,
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "d": "AAAA"}),
                JwkError::PrivatePart,
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "d": d, "x": "AAAA"}),
                JwkError::PublicMismatch,
            ),
        ];
        for (jwk, want) in cases {
            assert_eq!(PrivateJwk::from_value(&jwk).unwrap_err(), want, "{jwk}");
        }
    }

    #[test]
    fn debug_redacts() {
        let k = PrivateJwk::generate(None).unwrap();
        let d = URL_SAFE_NO_PAD.encode(k.key.as_ref().as_ref());
        assert!(!format!("{k:?}").contains(&d));
        assert_eq!(
            format!("{:?}", ClientSecret::new("x")),
            "ClientSecret(<redacted>)"
        );
    }
}
