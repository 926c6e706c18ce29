//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, RFC 7521 §4.2): a JWT that
//! the agent signed with a private key whose public half is one of its `jwk` verifiers.
//!
//! Accepted only when, all of them:
//! - it is a compact JWS of at most [`MAX_ASSERTION_BYTES`], header and claims strict JSON
//!   (duplicate members refused), no `crit`, `typ` absent, `JWT` or `client-authentication+jwt`;
//! - `iss` = `sub` = the agent id (and = `client_id` when the request sends one);
//! - `aud` (a string or an array) contains the token endpoint URL or the issuer identifier;
//! - `exp` is present, not past (with [`ASSERTION_LEEWAY_SECS`]), and at most
//!   [`MAX_ASSERTION_LIFETIME_SECS`] ahead; `nbf` and `iat`, when present, not in the future;
//! - `jti` is present (1 to [`MAX_JTI_CHARS`] characters) and not used before by this agent:
//!   used ones are kept in storage until the assertion would have expired, at most
//!   [`MAX_ASSERTION_JTIS_PER_AGENT`] per agent (beyond, the agent is refused until some
//!   expire: forgetting one early would let it be replayed);
//! - its signature verifies under one of the agent's keys whose algorithm is the header's
//!   `alg` (no `kid` needed: the keys are tried; the algorithm is the key's, never the token's
//!   alone), with the resource server's own verification (`crate::jwks`, `crate::ed25519`);
//! - the agent may obtain tokens now: the same state rule as for secrets (`grant`).
//!
//! Every refusal answers `invalid_client`, whatever the reason; the reason is only logged.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use serde::Deserialize as _;

use super::grant::ClientGrant;
use super::{Registry, RuleError};
use crate::algorithm::Algorithm;
use crate::claims::{Claims, Header, decode_object};
use crate::issuer::agent_keys::ASSERTION_ALGS;
use crate::issuer::secrets::is_id;
use crate::issuer::storage::StorageError;
use crate::strict_json::{parse_object, read_checked};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The largest client assertion read.
pub const MAX_ASSERTION_BYTES: usize = 8 * 1024;
/// How far ahead of now an assertion's `exp` may be (common clients, authlib among them,
/// default to one hour).
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// Clock skew allowed between the agent and the issuer, for `exp`, `nbf` and `iat`.
pub const ASSERTION_LEEWAY_SECS: i64 = 30;
/// The longest `jti` accepted.
pub const MAX_JTI_CHARS: usize = 256;
/// Most used `jti`s kept per agent at once (each until its assertion expires).
pub const MAX_ASSERTION_JTIS_PER_AGENT: u64 = 10_000;
/// How often expired `jti`s of every agent are forgotten (each agent's own are also forgotten
/// whenever it presents an assertion).
const JTI_PURGE_INTERVAL_MS: i64 = 60_000;

/// Why an assertion was refused: logged, never sent (the client gets `invalid_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssertionRefusal {
    TooLarge,
    Malformed,
    Algorithm,
    Critical,
    Type,
    /// `iss`, `sub` and `client_id` disagree, or are not an agent id.
    Subject,
    Audience,
    Expiry,
    Lifetime,
    NotYetValid,
    Jti,
    UnknownClient,
    Signature,
    /// Suspended, expired, deleted meanwhile: as for a secret.
    AgentState,
    Replayed,
    TooManyJtis,
}

impl AssertionRefusal {
    /// A short name for logs.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::Critical => "crit",
            Self::Type => "typ",
            Self::Subject => "iss_sub",
            Self::Audience => "aud",
            Self::Expiry => "exp",
            Self::Lifetime => "lifetime",
            Self::NotYetValid => "nbf_iat",
            Self::Jti => "jti",
            Self::UnknownClient => "unknown_client",
            Self::Signature => "signature",
            Self::AgentState => "agent_state",
            Self::Replayed => "replayed_jti",
            Self::TooManyJtis => "too_many_jtis",
        }
    }
}

/// The audiences an assertion may name: this issuer's token endpoint or its identifier.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AssertionAudience<'a> {
    pub(crate) token_endpoint: &'a str,
    pub(crate) issuer: &'a str,
}

/// An assertion whose shape and claims passed; its signature not checked yet.
struct Parsed<'t> {
    signing_input: &'t str,
    signature: &'t str,
    alg: Algorithm,
    agent_id: String,
    jti: String,
    /// `exp`, seconds.
    exp: i64,
}

/// `typ`: absent, `JWT`, or `client-authentication+jwt` (draft-ietf-oauth-rfc7523bis), case-
/// insensitive, with an optional `application/` prefix.
fn typ_allowed(typ: Option<&str>) -> bool {
    let Some(typ) = typ else { return true };
    let media = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    media.eq_ignore_ascii_case("jwt") || media.eq_ignore_ascii_case("client-authentication+jwt")
}

/// Structure, header, and every claim that needs no key; `now` in seconds.
fn parse<'t>(
    assertion: &'t str,
    client_id: Option<&str>,
    audience: AssertionAudience<'_>,
    now: i64,
) -> Result<Parsed<'t>, AssertionRefusal> {
    use AssertionRefusal as R;
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(R::TooLarge);
    }
    let (signing_input, signature) = assertion.rsplit_once('.').ok_or(R::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(R::Malformed)?;
    if payload.contains('.') || header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(R::Malformed);
    }
    let header_json = parse_object(&decode_object(header).map_err(|_| R::Malformed)?)
        .map_err(|_| R::Malformed)?;
    let header = Header::deserialize(&header_json).map_err(|_| R::Malformed)?;
    if !ASSERTION_ALGS.contains(&&*header.alg) {
        return Err(R::Algorithm);
    }
    let alg = Algorithm::from_name(&header.alg).ok_or(R::Algorithm)?;
    if header.crit {
        return Err(R::Critical);
    }
    if !typ_allowed(header.typ.as_deref()) {
        return Err(R::Type);
    }

    let raw = decode_object(payload).map_err(|_| R::Malformed)?;
    let json = std::str::from_utf8(&raw).map_err(|_| R::Malformed)?;
    let claims: Claims<'_> = read_checked(json).map_err(|_| R::Malformed)?;

    let (Some(iss), Some(sub)) = (claims.iss.as_deref(), claims.sub.as_deref()) else {
        return Err(R::Subject);
    };
    if iss != sub || !is_id(sub, "agt_") || client_id.is_some_and(|id| id != sub) {
        return Err(R::Subject);
    }
    let aud_ok = claims.aud.as_ref().is_some_and(|aud| {
        aud.0
            .iter()
            .any(|a| *a == audience.token_endpoint || *a == audience.issuer)
    });
    if !aud_ok {
        return Err(R::Audience);
    }
    let exp = claims.exp.ok_or(R::Expiry)?;
    if now >= exp.saturating_add(ASSERTION_LEEWAY_SECS) {
        return Err(R::Expiry);
    }
    if exp > now.saturating_add(MAX_ASSERTION_LIFETIME_SECS + ASSERTION_LEEWAY_SECS) {
        return Err(R::Lifetime);
    }
    let future = |t: Option<i64>| t.is_some_and(|t| t > now.saturating_add(ASSERTION_LEEWAY_SECS));
    if future(claims.nbf) || future(claims.iat) {
        return Err(R::NotYetValid);
    }
    let jti = claims.jti.as_deref().ok_or(R::Jti)?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI_CHARS {
        return Err(R::Jti);
    }
    Ok(Parsed {
        signing_input,
        signature,
        alg,
        agent_id: sub.to_owned(),
        jti: jti.to_owned(),
        exp,
    })
}

/// When the expired `jti`s of every agent are next forgotten, and whether any were kept since.
#[derive(Debug, Default)]
pub(crate) struct JtiPurge {
    next_at: AtomicI64,
    pending: AtomicBool,
}

impl Registry {
    /// Token endpoint: the grant of the agent that signed `assertion`, if every rule of the
    /// module docs holds (and its `jti` is now used); else why not.
    pub(crate) async fn authenticate_assertion(
        &self,
        assertion: &str,
        client_id: Option<&str>,
        audience: AssertionAudience<'_>,
    ) -> Result<Result<ClientGrant, AssertionRefusal>, RuleError> {
        let now_ms = self.clock.now_ms();
        let parsed = match parse(assertion, client_id, audience, now_ms.div_euclid(1000)) {
            Ok(parsed) => parsed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let Some(entry) = self.auth_entry(&parsed.agent_id).await? else {
            return Ok(Err(AssertionRefusal::UnknownClient));
        };
        let verified = entry.keys.iter().find(|(_, key)| {
            key.alg() == parsed.alg
                && key
                    .verify(parsed.signing_input.as_bytes(), parsed.signature)
                    .is_ok()
        });
        let Some((verifier_id, _)) = verified else {
            return Ok(Err(AssertionRefusal::Signature));
        };
        let Some(grant) = self.grant(&entry, verifier_id) else {
            return Ok(Err(AssertionRefusal::AgentState));
        };
        // Kept until the assertion is refused as expired anyway.
        let keep_until = parsed
            .exp
            .saturating_add(ASSERTION_LEEWAY_SECS)
            .saturating_mul(1000);
        if let Err(refusal) = self
            .use_jti(grant.agent_id.clone(), parsed.jti, keep_until, now_ms)
            .await?
        {
            return Ok(Err(refusal));
        }
        Ok(Ok(grant))
    }

    /// Marks `jti` of `agent_id` used until `keep_until` (ms), unless it is used already or
    /// the agent has [`MAX_ASSERTION_JTIS_PER_AGENT`] kept.
    async fn use_jti(
        &self,
        agent_id: String,
        jti: String,
        keep_until: i64,
        now_ms: i64,
    ) -> Result<Result<(), AssertionRefusal>, RuleError> {
        // `storage.write`, not `self.write`: a used jti changes nothing the token endpoint's
        // cache keeps, and clearing it on every assertion would defeat it.
        let outcome = self
            .storage
            .write(move |tx| {
                tx.purge_assertion_jtis(Some(&agent_id), now_ms)?;
                if tx.assertion_jti_count(&agent_id)? >= MAX_ASSERTION_JTIS_PER_AGENT {
                    return Ok(Err(AssertionRefusal::TooManyJtis));
                }
                match tx.insert_assertion_jti(&agent_id, &jti, keep_until) {
                    Ok(()) => Ok(Ok(())),
                    // The jti is kept already; or the agent was deleted meanwhile (its row is
                    // gone, the reference fails): refused either way.
                    Err(StorageError::Duplicate) => Ok(Err(AssertionRefusal::Replayed)),
                    Err(e) => Err(RuleError::Storage(e)),
                }
            })
            .await?;
        self.jti_purge.pending.store(true, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Forgets the expired `jti`s of every agent, at most once per minute and only after some
    /// were kept (so an idle issuer does not write).
    pub(crate) async fn purge_expired_jtis(&self) -> Result<(), RuleError> {
        let now = self.clock.now_ms();
        if !self.jti_purge.pending.load(Ordering::Relaxed)
            || now < self.jti_purge.next_at.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        self.jti_purge.pending.store(false, Ordering::Relaxed);
        self.jti_purge
            .next_at
            .store(now.saturating_add(JTI_PURGE_INTERVAL_MS), Ordering::Relaxed);
        self.storage
            .write(move |tx| Ok::<_, RuleError>(tx.purge_assertion_jtis(None, now)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::issuer::clock::{Clock, OffsetClock};
    use crate::issuer::model::{AgentRecord, AgentStatus};
    use crate::issuer::registry::OutboxBounds;
    use crate::issuer::storage::{Database, Storage};

    #[tokio::test]
    async fn used_jtis_are_bounded_per_agent_and_forgotten_after_they_expire() {
        let storage = Storage::open(&Database::InMemory).await.unwrap();
        let clock = Arc::new(OffsetClock::new());
        let registry = Registry::new(
            storage,
            Arc::clone(&clock) as Arc<dyn Clock>,
            OutboxBounds::default(),
        );
        let now = registry.now_ms();
        let agent = AgentRecord {
            id: "agt_0123456789abcdef0123456789abcdef".to_owned(),
            name: "keyed".to_owned(),
            description: None,
            model: None,
            provider: None,
            version: None,
            status: AgentStatus::Active,
            status_reason: None,
            scopes: Vec::new(),
            resources: Vec::new(),
            external_id: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            token_count: 0,
            last_activity_at: None,
        };
        let id = agent.id.clone();
        registry
            .storage
            .write(move |tx| Ok::<_, RuleError>(tx.insert_agent(&agent)?))
            .await
            .unwrap();
        let keep_until = now + 60_000;
        let use_jti =
            |jti: &str, keep: i64, at: i64| registry.use_jti(id.clone(), jti.to_owned(), keep, at);
        for n in 0..MAX_ASSERTION_JTIS_PER_AGENT {
            let jti = format!("j{n}");
            assert_eq!(use_jti(&jti, keep_until, now).await.unwrap(), Ok(()), "{n}");
        }
        assert_eq!(
            use_jti("one more", keep_until, now).await.unwrap(),
            Err(AssertionRefusal::TooManyJtis)
        );
        assert_eq!(
            use_jti("j0", keep_until, now).await.unwrap(),
            Err(AssertionRefusal::TooManyJtis),
            "full: refused before a replay is even looked at"
        );
        // At their keep-until instant (their assertions are refused as expired from then on)
        // they are forgotten, and the agent may go on.
        let later = keep_until + 60_000;
        assert_eq!(use_jti("j0", later, keep_until).await.unwrap(), Ok(()));
        assert_eq!(
            use_jti("j0", later, keep_until).await.unwrap(),
            Err(AssertionRefusal::Replayed)
        );
    }

    #[test]
    fn typ_policy() {
        for typ in [
            "JWT",
            "jwt",
            "application/jwt",
            "client-authentication+jwt",
            "application/Client-Authentication+JWT",
        ] {
            assert!(typ_allowed(Some(typ)), "{typ}");
        }
        assert!(typ_allowed(None));
        for typ in ["at+jwt", "dpop+jwt", "JOSE", "", "application/", "jwt "] {
            assert!(!typ_allowed(Some(typ)), "{typ}");
        }
    }
}
