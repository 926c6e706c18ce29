//! Token → agent, top to bottom: size → verified-token cache → Bearer syntax → compact JWS →
//! header (alg, crit, typ, kid) → claims read → the issuer `iss` names → that issuer's key →
//! signature → claims checked (aud, exp, nbf) → agent (`dat.type`, `sub` prefix) → cache.
//!
//! Nothing in the token decides how it is checked. The issuer must be configured: an `iss` that
//! names none is refused before any key is looked up, so it never causes a fetch. The algorithm
//! must be accepted by configuration *and* equal the one bound to the key found under `kid` in
//! that issuer's JWKS, so a key of one issuer never verifies a token claiming another; `jku`,
//! `x5u`, `jwk` and `x5c` headers are never read. Claims are read before the signature only to
//! pick the issuer; none is believed before the signature holds.
//!
//! Two entry points: [`Verifier::verify_now`] decides whatever needs no waiting (a cache hit,
//! a refusal, a token whose key is known when signatures are not batched);
//! [`Verifier::verify_waiting`] finishes what it could not, awaiting a key fetch or a batch.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::agent::{Agent, AgentInner};
use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::bearer::Bearer;
use crate::challenge::Challenge;
use crate::claims::{Claims, Header, decode_object};
use crate::clock::unix_now;
use crate::error::{AuthError, InvalidToken};
use crate::jwks::{JwksCache, VerifyingKey};
use crate::metrics::VerifierMetrics;
use crate::signature_batch::SignatureBatcher;
use crate::strict_json::read_checked;
use crate::token_cache::TokenCache;

/// What a `typ` header may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenTypeHeader {
    /// Absent, or `at+jwt` / `JWT` (case-insensitive, optional `application/` prefix).
    #[default]
    AtJwtOrJwt,
    /// Present and `at+jwt` (RFC 9068 §2.1), for issuers that always set it.
    AtJwtOnly,
}

/// The agent check prefix of `sub`.
const AGENT_ID_PREFIX: &str = "agt_";

/// One issuer whose tokens are accepted: its identifier, audiences and keys.
pub(crate) struct TrustedIssuer {
    pub(crate) issuer: Box<str>,
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) keys: Arc<JwksCache>,
}

/// Everything needed to turn a token into an [`Agent`].
pub(crate) struct Verifier {
    /// At least one; a token is checked against the one its `iss` names.
    pub(crate) issuers: Box<[TrustedIssuer]>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) typ: TokenTypeHeader,
    pub(crate) leeway_secs: i64,
    pub(crate) max_token_bytes: usize,
    pub(crate) tokens: Option<TokenCache>,
    /// Batches the signatures of concurrent fresh EdDSA tokens; `None` checks each alone.
    pub(crate) batcher: Option<SignatureBatcher>,
    pub(crate) challenge: Arc<Challenge>,
    pub(crate) metrics: VerifierMetrics,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issuers: Vec<_> = self.issuers.iter().map(|i| &i.issuer).collect();
        f.debug_struct("Verifier")
            .field("issuers", &issuers)
            .field("algorithms", &self.algorithms)
            .field("typ", &self.typ)
            .field("leeway_secs", &self.leeway_secs)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish_non_exhaustive()
    }
}

/// A token as it reaches the verifier: from an `Authorization` header, whose `b64token` syntax
/// is checked after a cache miss (a bad one is `400 invalid_request`), or as text handed to
/// [`AgentAuthLayer::verify`](crate::AgentAuthLayer::verify).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Presented<'t> {
    Header(Bearer<'t>),
    Text(&'t str),
}

/// What [`Verifier::verify_now`] decided.
#[derive(Debug)]
pub(crate) enum Now<'t> {
    Decided(Result<Agent, AuthError>),
    /// The token (syntax checked) needs a key fetch or a signature batch:
    /// [`Verifier::verify_waiting`] finishes it.
    MustWait(&'t str),
}

/// A compact JWS whose header passed the policy checks; signature not yet verified.
struct Jws<'t> {
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
    alg: Algorithm,
    kid: Option<Box<str>>,
}

/// The claims set as sent, parsed whole and strictly; nothing in it is believed yet.
struct ClaimsSet<'c> {
    json: &'c str,
    claims: Claims<'c>,
}

impl Verifier {
    /// Decides `presented` if that needs no waiting.
    pub(crate) fn verify_now<'t>(&self, presented: Presented<'t>) -> Now<'t> {
        let bytes = match presented {
            Presented::Header(bearer) => bearer.bytes(),
            Presented::Text(token) => token.as_bytes(),
        };
        if let Some(agent) = self.cached(bytes) {
            self.metrics.accepted();
            return Now::Decided(Ok(agent));
        }
        let token = match presented {
            Presented::Header(bearer) => match bearer.checked() {
                Ok(token) => token,
                Err(error) => return self.decided(Err(error.into())),
            },
            Presented::Text(token) => token,
        };
        if self.batcher.is_some() {
            // Every fresh signature may join a batch: finished where it can wait.
            return Now::MustWait(token);
        }
        let started = Instant::now();
        let jws = match self.parse(token) {
            Ok(jws) => jws,
            Err(error) => return self.decided(Err(error)),
        };
        let raw_claims = match decode_object(jws.payload) {
            Ok(raw) => raw,
            Err(error) => return self.decided(Err(error.into())),
        };
        let (index, issuer, claims) = match self.read_claims(&raw_claims) {
            Ok(read) => read,
            Err(error) => return self.decided(Err(error)),
        };
        let Some(found) = issuer.keys.key_now(jws.kid.as_deref(), jws.alg) else {
            return Now::MustWait(token);
        };
        let outcome = found.and_then(|(key, key_epoch)| {
            key.verify(jws.signing_input.as_bytes(), jws.signature)?;
            self.accept(token, &jws, &key, (index, key_epoch), issuer, &claims)
        });
        self.metrics.verified_in(started);
        self.decided(outcome)
    }

    /// Verifies a token [`verify_now`](Self::verify_now) could not decide: fetches its key if
    /// needed, and lets its signature join a batch.
    pub(crate) async fn verify_waiting(&self, token: &str) -> Result<Agent, AuthError> {
        let started = Instant::now();
        let outcome = self.verify_fresh(token).await;
        self.metrics.verified_in(started);
        self.metrics.outcome(&outcome);
        outcome
    }

    async fn verify_fresh(&self, token: &str) -> Result<Agent, AuthError> {
        let jws = self.parse(token)?;
        let raw_claims = decode_object(jws.payload)?;
        let (index, issuer, claims) = self.read_claims(&raw_claims)?;
        let (key, key_epoch) = issuer.keys.key_for(jws.kid.as_deref(), jws.alg).await?;
        match &self.batcher {
            Some(batcher) => {
                batcher
                    .verify(&key, jws.signing_input, jws.signature)
                    .await?
            }
            None => key.verify(jws.signing_input.as_bytes(), jws.signature)?,
        }
        self.accept(token, &jws, &key, (index, key_epoch), issuer, &claims)
    }

    fn decided<'t>(&self, outcome: Result<Agent, AuthError>) -> Now<'t> {
        self.metrics.outcome(&outcome);
        Now::Decided(outcome)
    }

    /// A token that verified before, still unexpired, whose key is still published.
    /// Bytes, not `str`: the layer looks up the header value before any syntax check.
    fn cached(&self, token: &[u8]) -> Option<Agent> {
        let tokens = self.tokens.as_ref()?;
        if token.len() > self.max_token_bytes {
            return None;
        }
        let now = unix_now();
        let hit = tokens.get(token, now, |issuer| {
            self.issuers.get(issuer)?.keys.revocation_epoch(now)
        });
        match hit {
            Some(_) => self.metrics.cache_hit(),
            None => self.metrics.cache_miss(),
        }
        hit
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

        // The whole header is checked (a header we cannot read in full is refused), then the
        // members we act on are read from it, borrowed: no tree is built.
        let header_bytes = decode_object(header)?;
        let header_json =
            std::str::from_utf8(&header_bytes).map_err(|_| InvalidToken::Malformed)?;
        let header: Header<'_> = read_checked(header_json).map_err(|_| InvalidToken::Malformed)?;
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

    /// The claims set parsed whole, and the configured issuer its `iss` names.
    fn read_claims<'c>(
        &self,
        raw_claims: &'c [u8],
    ) -> Result<(usize, &TrustedIssuer, ClaimsSet<'c>), AuthError> {
        // The handler can see every claim, so the whole claims set is checked: a token whose
        // claims cannot be read whole (invalid UTF-8, nesting past serde_json's limit,
        // duplicate members) is refused rather than handed over partially.
        let claims_error = |error: serde_json::Error| {
            if error.is_data() {
                InvalidToken::InvalidClaim
            } else {
                InvalidToken::Malformed
            }
        };
        let json = std::str::from_utf8(raw_claims).map_err(|_| InvalidToken::Malformed)?;
        let claims: Claims<'c> = read_checked(json).map_err(claims_error)?;
        let iss = claims.iss.as_deref().ok_or(InvalidToken::MissingClaim)?;
        let (index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, trusted)| *trusted.issuer == *iss)
            .ok_or(InvalidToken::WrongIssuer)?;
        Ok((index, issuer, ClaimsSet { json, claims }))
    }

    /// After the signature held: the claims, the agent rules, then the cache.
    fn accept(
        &self,
        token: &str,
        jws: &Jws<'_>,
        key: &VerifyingKey,
        key_epoch: (usize, u64),
        issuer: &TrustedIssuer,
        set: &ClaimsSet<'_>,
    ) -> Result<Agent, AuthError> {
        debug_assert_eq!(key.alg(), jws.alg, "key lookup binds the algorithm");
        let claims = &set.claims;
        let (Some(sub), Some(aud), Some(exp)) = (&claims.sub, &claims.aud, claims.exp) else {
            return Err(InvalidToken::MissingClaim.into());
        };
        let audience = aud
            .0
            .iter()
            .find(|aud| issuer.audiences.iter().any(|accepted| **accepted == ***aud))
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

        let agent = Agent::new(AgentInner {
            id: (**sub).into(),
            scope: claims.scope.as_deref().unwrap_or_default().into(),
            client_id: claims.client_id.as_deref().map(Into::into),
            jwt_id: claims.jti.as_deref().map(Into::into),
            issuer: (*issuer.issuer).into(),
            audience: (**audience).into(),
            expires_at: exp,
            issued_at: claims.iat,
            claims_json: set.json.into(),
            claims: std::sync::OnceLock::new(),
            challenge: self.challenge.clone(),
        });
        if let Some(tokens) = &self.tokens {
            tokens.insert(token, &agent, self.leeway_secs, key_epoch);
        }
        Ok(agent)
    }
}

fn typ_allowed(typ: Option<&str>, policy: TokenTypeHeader) -> bool {
    let Some(typ) = typ else {
        return policy == TokenTypeHeader::AtJwtOrJwt;
    };
    let media = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    media.eq_ignore_ascii_case("at+jwt")
        || (policy == TokenTypeHeader::AtJwtOrJwt && media.eq_ignore_ascii_case("jwt"))
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
            assert!(typ_allowed(Some(typ), TokenTypeHeader::AtJwtOrJwt), "{typ}");
        }
        assert!(typ_allowed(None, TokenTypeHeader::AtJwtOrJwt));
        for typ in [
            "JOSE",
            "id_token+jwt",
            "application/",
            "",
            "at+jwt ",
            "secevent+jwt",
        ] {
            assert!(
                !typ_allowed(Some(typ), TokenTypeHeader::AtJwtOrJwt),
                "{typ}"
            );
        }
        assert!(typ_allowed(Some("at+JWT"), TokenTypeHeader::AtJwtOnly));
        assert!(!typ_allowed(Some("JWT"), TokenTypeHeader::AtJwtOnly));
        assert!(!typ_allowed(None, TokenTypeHeader::AtJwtOnly));
    }
}
