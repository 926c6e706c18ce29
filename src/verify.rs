//! Token → agent, top to bottom: size → verified-token cache → compact JWS → header (alg, crit,
//! typ, kid) → key → signature → claims (iss, aud, exp, nbf) → agent (`dat.type`, `sub`
//! prefix) → cache.
//!
//! Nothing in the token decides how it is checked: the algorithm must be accepted by
//! configuration *and* equal the one bound to the key found under `kid`; `jku`, `x5u`, `jwk` and
//! `x5c` headers are never read. Claims are parsed only after the signature verified.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::agent::{Agent, AgentInner};
use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::challenge::Challenge;
use crate::clock::unix_now;
use crate::error::{AuthError, InvalidToken};
use crate::jwks::{JwksCache, VerifyingKey};
use crate::signature_batch::SignatureBatcher;
use crate::strict_json::{check_object, parse_object};
use crate::token_cache::TokenCache;

/// What a `typ` header may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TypPolicy {
    /// Absent, or `at+jwt` / `JWT` (case-insensitive, optional `application/` prefix).
    #[default]
    AtJwtOrJwt,
    /// Present and `at+jwt` (RFC 9068 §2.1), for issuers that always set it.
    RequireAtJwt,
}

/// The agent check prefix of `sub`.
const AGENT_ID_PREFIX: &str = "agt_";

/// Everything needed to turn a token into an [`Agent`].
pub(crate) struct Verifier {
    pub(crate) issuer: Box<str>,
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) typ: TypPolicy,
    pub(crate) leeway_secs: i64,
    pub(crate) max_token_bytes: usize,
    pub(crate) keys: Arc<JwksCache>,
    pub(crate) tokens: Option<TokenCache>,
    /// Batches the signatures of concurrent fresh EdDSA tokens; `None` checks each alone.
    pub(crate) batcher: Option<SignatureBatcher>,
    pub(crate) challenge: Arc<Challenge>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("typ", &self.typ)
            .field("leeway_secs", &self.leeway_secs)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish_non_exhaustive()
    }
}

/// A compact JWS whose header passed the policy checks; signature not yet verified.
struct Jws<'t> {
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
    alg: Algorithm,
    kid: Option<Box<str>>,
}

impl Verifier {
    /// Verifies `token`, fetching keys if needed.
    pub(crate) async fn verify(&self, token: &str) -> Result<Agent, AuthError> {
        match self.cached(token.as_bytes()) {
            Some(agent) => Ok(agent),
            None => self.verify_uncached(token).await,
        }
    }

    /// [`verify`](Self::verify) for a token already looked up in the cache: the signature
    /// joins a batch when other requests verify at the same time.
    pub(crate) async fn verify_uncached(&self, token: &str) -> Result<Agent, AuthError> {
        let jws = self.parse(token)?;
        let (key, key_epoch) = self.keys.key_for(jws.kid.as_deref(), jws.alg).await?;
        let signature_holds = match &self.batcher {
            Some(batcher) => batcher.verify(&key, jws.signing_input, jws.signature).await,
            None => key.verify(jws.signing_input.as_bytes(), jws.signature),
        };
        let agent = self.check_claims(&jws, &key, signature_holds)?;
        self.remember(token, &agent, key_epoch);
        Ok(agent)
    }

    /// Whether fresh EdDSA tokens should go through [`verify_uncached`](Self::verify_uncached)
    /// (to be batched) rather than [`verify_now_uncached`](Self::verify_now_uncached).
    pub(crate) fn batches_signatures(&self) -> bool {
        self.batcher.is_some()
    }

    /// Verifies `token` if that needs no I/O; `None` means "use [`verify`](Self::verify)".
    #[cfg(feature = "internals")]
    pub(crate) fn verify_now(&self, token: &str) -> Option<Result<Agent, AuthError>> {
        match self.cached(token.as_bytes()) {
            Some(agent) => Some(Ok(agent)),
            None => self.verify_now_uncached(token),
        }
    }

    /// [`verify_now`](Self::verify_now) for a token already looked up in the cache.
    pub(crate) fn verify_now_uncached(&self, token: &str) -> Option<Result<Agent, AuthError>> {
        let jws = match self.parse(token) {
            Ok(jws) => jws,
            Err(error) => return Some(Err(error)),
        };
        Some(match self.keys.key_now(jws.kid.as_deref(), jws.alg)? {
            Ok((key, key_epoch)) => {
                let signature_holds = key.verify(jws.signing_input.as_bytes(), jws.signature);
                self.check_claims(&jws, &key, signature_holds)
                    .inspect(|agent| self.remember(token, agent, key_epoch))
            }
            Err(error) => Err(error),
        })
    }

    /// A token that verified before, still unexpired, whose key is still published.
    /// Bytes, not `str`: the layer looks up the header value before any syntax check.
    pub(crate) fn cached(&self, token: &[u8]) -> Option<Agent> {
        let tokens = self.tokens.as_ref()?;
        if token.len() > self.max_token_bytes {
            return None;
        }
        let now = unix_now();
        let key_epoch = self.keys.revocation_epoch(now)?;
        tokens.get(token, now, key_epoch)
    }

    fn remember(&self, token: &str, agent: &Agent, key_epoch: u64) {
        if let Some(tokens) = &self.tokens {
            tokens.insert(token, agent, self.leeway_secs, key_epoch);
        }
    }

    /// Size, structure and header policy.
    fn parse<'t>(&self, token: &'t str) -> Result<Jws<'t>, AuthError> {
        if token.len() > self.max_token_bytes {
            return Err(InvalidToken::TooLarge.into());
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(InvalidToken::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(InvalidToken::Malformed)?;
        if payload.contains('.') || header.is_empty() || payload.is_empty() || signature.is_empty()
        {
            return Err(InvalidToken::Malformed.into());
        }

        // The whole header is parsed (a header we cannot read in full is refused), then the
        // members we act on are read from it.
        let header_json =
            parse_object(&decode_object(header)?).map_err(|_| InvalidToken::Malformed)?;
        let header = Header::deserialize(&header_json).map_err(|_| InvalidToken::Malformed)?;
        let alg = Algorithm::from_name(&header.alg)
            .filter(|alg| self.algorithms.contains(*alg))
            .ok_or(InvalidToken::UnsupportedAlgorithm)?;
        // We implement no JWS extensions, so any `crit` (RFC 7515 §4.1.11) is a rejection.
        if header.crit {
            return Err(InvalidToken::UnsupportedCritical.into());
        }
        if !typ_allowed(header.typ.as_deref(), self.typ) {
            return Err(InvalidToken::UnsupportedType.into());
        }
        Ok(Jws {
            signing_input,
            payload,
            signature,
            alg,
            kid: header.kid.map(Into::into),
        })
    }

    /// The signature's verdict, then claims, then the agent rules.
    fn check_claims(
        &self,
        jws: &Jws<'_>,
        key: &VerifyingKey,
        signature_holds: bool,
    ) -> Result<Agent, AuthError> {
        debug_assert_eq!(key.alg(), jws.alg, "key lookup binds the algorithm");
        if !signature_holds {
            return Err(InvalidToken::BadSignature.into());
        }

        // The handler can see every claim, so the whole claims set is checked first: a token
        // whose claims cannot be read whole (invalid UTF-8, nesting past serde_json's limit,
        // duplicate members) is refused rather than handed over partially.
        let raw_claims = decode_object(jws.payload)?;
        let claims_error = |error: serde_json::Error| {
            if error.is_data() {
                InvalidToken::InvalidClaim
            } else {
                InvalidToken::Malformed
            }
        };
        let claims_json = std::str::from_utf8(&raw_claims).map_err(|_| InvalidToken::Malformed)?;
        check_object(claims_json).map_err(claims_error)?;
        let claims: Claims<'_> = serde_json::from_str(claims_json).map_err(claims_error)?;
        let (Some(iss), Some(sub), Some(aud), Some(exp)) =
            (&claims.iss, &claims.sub, &claims.aud, claims.exp)
        else {
            return Err(InvalidToken::MissingClaim.into());
        };
        if **iss != *self.issuer {
            return Err(InvalidToken::WrongIssuer.into());
        }
        let audience = aud
            .0
            .iter()
            .find(|aud| self.audiences.iter().any(|accepted| **accepted == ***aud))
            .ok_or(InvalidToken::WrongAudience)?;
        let now = unix_now();
        if now >= exp.saturating_add(self.leeway_secs) {
            return Err(InvalidToken::Expired.into());
        }
        if let Some(nbf) = claims.nbf
            && now.saturating_add(self.leeway_secs) < nbf
        {
            return Err(InvalidToken::NotYetValid.into());
        }
        // Both agent markers must agree: the semantic one and the structural backstop.
        let is_agent = claims.dat.as_ref().and_then(|dat| dat.kind.as_deref()) == Some("agent");
        if !is_agent || !sub.starts_with(AGENT_ID_PREFIX) {
            return Err(InvalidToken::NotAnAgent.into());
        }

        Ok(Agent::new(AgentInner {
            id: (**sub).into(),
            scope: claims.scope.as_deref().unwrap_or_default().into(),
            client_id: claims.client_id.as_deref().map(Into::into),
            jwt_id: claims.jti.as_deref().map(Into::into),
            issuer: (**iss).into(),
            audience: (**audience).into(),
            expires_at: exp,
            issued_at: claims.iat,
            claims_json: claims_json.into(),
            claims: std::sync::OnceLock::new(),
            challenge: self.challenge.clone(),
        }))
    }
}

/// Strict base64url (no padding, no stray bits) of a JSON object.
fn decode_object(part: &str) -> Result<Vec<u8>, InvalidToken> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| InvalidToken::Malformed)?;
    // serde would also read a struct from a JSON array; a JOSE header or claims set is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(bytes),
        _ => Err(InvalidToken::Malformed),
    }
}

fn typ_allowed(typ: Option<&str>, policy: TypPolicy) -> bool {
    let Some(typ) = typ else {
        return policy == TypPolicy::AtJwtOrJwt;
    };
    let media = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    media.eq_ignore_ascii_case("at+jwt")
        || (policy == TypPolicy::AtJwtOrJwt && media.eq_ignore_ascii_case("jwt"))
}

/// The JOSE header members we act on. Unknown members are ignored, including `jku`, `x5u`,
/// `jwk` and `x5c`: keys only ever come from the configured JWKS.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    /// Present at all (even `null`) means refused: we implement no extension.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` whenever the member exists, whatever its value (including `null`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The claims we check, read from the parsed claims set (which refused duplicates); all of
/// them, unknown ones included, go to [`Agent::claims`].
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(default, borrow)]
    iss: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sub: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    aud: Option<Audience<'a>>,
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<i64>,
    #[serde(default, borrow)]
    jti: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    client_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    scope: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    dat: Option<Dat<'a>>,
}

/// `dat`: an object (a derived struct would also take an array, read by position).
struct Dat<'a> {
    kind: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Dat<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Members<'a> {
            #[serde(default, borrow, rename = "type")]
            kind: Option<Cow<'a, str>>,
        }
        struct ObjectOnly;
        impl<'de> Visitor<'de> for ObjectOnly {
            type Value = Dat<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let members = Members::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Dat { kind: members.kind })
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
struct Audience<'a>(Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Audience<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;
        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Audience(vec![Cow::Borrowed(v)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Audience(vec![Cow::Owned(v.to_owned())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<Cow<'de, str>>()? {
                    values.push(value);
                }
                Ok(Audience(values))
            }
        }
        deserializer.deserialize_any(AudienceVisitor)
    }
}

/// NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional; kept as whole
/// seconds (floored, saturating). Strings, booleans and the like are type errors.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct NumericDate;
    impl Visitor<'_> for NumericDate {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a NumericDate")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(i64::try_from(v).unwrap_or(i64::MAX)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // `as` saturates at the i64 bounds; JSON has no NaN or infinities.
            Ok(Some(v.floor() as i64))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(NumericDate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_policy() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
            "JWT",
            "jwt",
            "application/jwt",
        ] {
            assert!(typ_allowed(Some(typ), TypPolicy::AtJwtOrJwt), "{typ}");
        }
        assert!(typ_allowed(None, TypPolicy::AtJwtOrJwt));
        for typ in [
            "JOSE",
            "id_token+jwt",
            "application/",
            "",
            "at+jwt ",
            "secevent+jwt",
        ] {
            assert!(!typ_allowed(Some(typ), TypPolicy::AtJwtOrJwt), "{typ}");
        }
        assert!(typ_allowed(Some("at+JWT"), TypPolicy::RequireAtJwt));
        assert!(!typ_allowed(Some("JWT"), TypPolicy::RequireAtJwt));
        assert!(!typ_allowed(None, TypPolicy::RequireAtJwt));
    }

    #[test]
    fn parts_must_be_canonical_base64url_json_objects() {
        assert!(decode_object("eyJhIjoxfQ").is_ok()); // {"a":1}
        assert!(decode_object("eyJhIjoxfQ==").is_err()); // padding
        assert!(decode_object("eyJhIjoxfR").is_err()); // non-zero trailing bits
        assert!(decode_object("eyJh Ijoxf").is_err()); // whitespace
        assert!(decode_object("WzFd").is_err()); // [1]
    }

    #[test]
    fn dat_must_be_an_object() {
        fn kind(json: &str) -> Result<Option<String>, serde_json::Error> {
            serde_json::from_str::<Claims<'_>>(json)
                .map(|c| c.dat.and_then(|d| d.kind).map(Cow::into_owned))
        }
        assert_eq!(
            kind(r#"{"dat":{"type":"agent"}}"#).unwrap().as_deref(),
            Some("agent")
        );
        assert!(kind(r#"{"dat":["agent"]}"#).unwrap_err().is_data());
        assert!(kind(r#"{"dat":"agent"}"#).unwrap_err().is_data());
        assert!(kind(r#"{"dat":{"type":"agent","type":"user"}}"#).is_err());
    }

    #[test]
    fn numeric_dates_accept_integers_and_floats_only() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "numeric_date")]
            exp: Option<i64>,
        }
        let parse = |json: &str| serde_json::from_str::<T>(json).map(|t| t.exp);
        assert_eq!(parse(r#"{"exp":1700000000}"#).unwrap(), Some(1_700_000_000));
        assert_eq!(
            parse(r#"{"exp":1700000000.9}"#).unwrap(),
            Some(1_700_000_000)
        );
        assert_eq!(parse(r#"{"exp":1e300}"#).unwrap(), Some(i64::MAX));
        assert_eq!(
            parse(r#"{"exp":18446744073709551615}"#).unwrap(),
            Some(i64::MAX)
        );
        assert_eq!(parse(r#"{}"#).unwrap(), None);
        assert!(parse(r#"{"exp":"1700000000"}"#).is_err());
        assert!(parse(r#"{"exp":true}"#).is_err());
    }
}
