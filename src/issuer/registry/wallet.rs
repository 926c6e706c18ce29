//! Wallets: the reverse lookup (account → agent), the sign-in nonces, and the wallet grant
//! (sign in with the wallet: EIP-4361 for `eip155` accounts, CAIP-122 for `solana`).
//!
//! A wallet grant is accepted only when, all of them:
//! - the message parses in full (`issuer::wallet::message`, strict);
//! - its domain is the issuer URL's `host[:port]`, its scheme (if any) the issuer URL's, its
//!   URI the issuer URL — all from the issuer's configuration, never from request headers;
//! - it has not expired (`Expiration Time`), is valid already (`Not Before`) and was not issued
//!   in the future (with [`WALLET_LEEWAY_SECS`] for the clocks of wallets);
//! - the signature verifies by the message's account (`issuer::wallet::signature`);
//! - its nonce was issued here, is unexpired and unused: it is taken, in the same write
//!   transaction that reads the account's owner, so that of concurrent sign-ins with one nonce
//!   exactly one can pass; a nonce is used up by any attempt whose signature verified;
//! - the account (chain id and address together) is a wallet verifier's, and its agent may
//!   obtain tokens now: the same state rule as for every credential (`grant`).
//!
//! Nonces live [`WALLET_NONCE_LIFETIME_SECS`]; at most [`MAX_WALLET_NONCES`] are kept at once
//! (beyond, new ones are refused until some expire: dropping one early would fail a sign-in in
//! progress), and one client address gets at most [`WALLET_NONCES_PER_MINUTE`]. Every refusal answers `invalid_grant`; the reason is only logged.

use time::OffsetDateTime;

use super::grant::{ClientGrant, grant_for};
use super::{Registry, RuleError};
use crate::issuer::model::WalletRecord;
use crate::issuer::secrets::new_id;
use crate::issuer::storage::StorageError;
use crate::issuer::wallet::message::{self, MessageError, Stamp};
use crate::issuer::wallet::signature;

/// How long a sign-in nonce is valid.
pub const WALLET_NONCE_LIFETIME_SECS: i64 = 300;
/// Most sign-in nonces kept at once.
pub const MAX_WALLET_NONCES: u64 = 10_000;
/// Most sign-in nonces one client address obtains per minute (so that one client cannot use
/// up [`MAX_WALLET_NONCES`] for everyone).
pub const WALLET_NONCES_PER_MINUTE: u32 = 60;
/// Clock skew allowed between a wallet and the issuer, for `Issued At` and `Not Before`.
pub const WALLET_LEEWAY_SECS: i64 = 30;
/// The longest signature read (`0x` + 130 hex digits; base58 of 64 bytes is shorter).
const MAX_SIGNATURE_CHARS: usize = 132;

/// What a sign-in message must name: this issuer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalletAudience<'a> {
    /// The issuer URL's scheme.
    pub(crate) scheme: &'a str,
    /// The issuer URL's `host[:port]`.
    pub(crate) domain: &'a str,
    /// The issuer URL.
    pub(crate) uri: &'a str,
}

/// A nonce handed out: the times are seconds since the epoch.
#[derive(Debug, Clone)]
pub(crate) struct IssuedNonce {
    pub(crate) nonce: String,
    pub(crate) issued_at: i64,
    pub(crate) expires_at: i64,
}

/// Why a wallet grant was refused: logged, never sent (the client gets `invalid_grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WalletRefusal {
    Malformed(MessageError),
    Scheme,
    Domain,
    Uri,
    Expired,
    NotYetValid,
    Signature,
    UnknownNonce,
    Unregistered,
    /// Suspended, expired, deleted: as for a secret.
    AgentState,
}

impl WalletRefusal {
    /// A short name for logs.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Scheme => "scheme",
            Self::Domain => "domain",
            Self::Uri => "uri",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Signature => "signature",
            Self::UnknownNonce => "nonce",
            Self::Unregistered => "unregistered",
            Self::AgentState => "agent_state",
        }
    }
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Registry {
    /// The holder of `account` (canonical form), with its agent.
    pub(crate) async fn wallet(&self, account: String) -> Result<Option<WalletRecord>, RuleError> {
        self.read_counted(move |tx| {
            let Some(owner) = tx.wallet_owner(&account)? else {
                return Ok(None);
            };
            Ok(tx.agent(&owner.agent_id)?.map(|agent| WalletRecord {
                account: account.clone(),
                agent_id: owner.agent_id,
                verifier_id: owner.verifier_id,
                agent,
            }))
        })
        .await
    }

    /// A new sign-in nonce for `client` (a client address), or `Err(seconds)` to retry after:
    /// when `client` had [`WALLET_NONCES_PER_MINUTE`], or while [`MAX_WALLET_NONCES`] are kept.
    pub(crate) async fn issue_wallet_nonce(
        &self,
        client: &str,
    ) -> Result<Result<IssuedNonce, u64>, RuleError> {
        if let Err(retry_after) = self.wallet_nonces.spend(client, self.now_ms()) {
            return Ok(Err(retry_after));
        }
        let issued_at = self.now_ms().div_euclid(1000);
        let expires_at = issued_at + WALLET_NONCE_LIFETIME_SECS;
        let nonce = new_id("")?;
        // Not audited, and nothing the token endpoint's cache holds changes: storage directly.
        self.storage
            .write(move |tx| {
                tx.purge_wallet_nonces(issued_at * 1000)?;
                if tx.wallet_nonce_count()? >= MAX_WALLET_NONCES {
                    return Ok(Err(WALLET_NONCE_LIFETIME_SECS.unsigned_abs()));
                }
                tx.insert_wallet_nonce(&nonce, expires_at * 1000)?;
                Ok::<_, RuleError>(Ok(IssuedNonce {
                    nonce: nonce.clone(),
                    issued_at,
                    expires_at,
                }))
            })
            .await
    }

    /// The wallet grant (see the module docs).
    pub(crate) async fn authenticate_wallet(
        &self,
        text: &str,
        signature_text: &str,
        audience: WalletAudience<'_>,
    ) -> Result<Result<ClientGrant, WalletRefusal>, RuleError> {
        let now = self.now_ms();
        let m = match message::parse(text) {
            Ok(m) => m,
            Err(e) => return Ok(Err(WalletRefusal::Malformed(e))),
        };
        if m.scheme.is_some_and(|s| s != audience.scheme) {
            return Ok(Err(WalletRefusal::Scheme));
        }
        if m.domain != audience.domain {
            return Ok(Err(WalletRefusal::Domain));
        }
        if m.uri != audience.uri {
            return Ok(Err(WalletRefusal::Uri));
        }
        let leeway = WALLET_LEEWAY_SECS * 1000;
        if m.expiration_time.is_some_and(|t| millis(t.at) <= now) {
            return Ok(Err(WalletRefusal::Expired));
        }
        let future = |t: Stamp<'_>| millis(t.at) > now.saturating_add(leeway);
        if future(m.issued_at) || m.not_before.is_some_and(future) {
            return Ok(Err(WalletRefusal::NotYetValid));
        }
        if signature_text.len() > MAX_SIGNATURE_CHARS
            || signature::verify(&m.account, text, signature_text).is_err()
        {
            return Ok(Err(WalletRefusal::Signature));
        }
        let account = m.account.to_string();
        let nonce = m.nonce.to_owned();
        // Nothing the token endpoint's cache holds changes: storage directly.
        let outcome = self
            .storage
            .write(move |tx| {
                if !tx.take_wallet_nonce(&nonce, now)? {
                    return Ok(Err(WalletRefusal::UnknownNonce));
                }
                let Some(owner) = tx.wallet_owner(&account)? else {
                    return Ok(Err(WalletRefusal::Unregistered));
                };
                let Some(agent) = tx.agent(&owner.agent_id)? else {
                    return Ok(Err(WalletRefusal::Unregistered));
                };
                let grant = grant_for(&agent, &owner.verifier_id, now).map(|grant| ClientGrant {
                    wallet: Some(account.clone()),
                    ..grant
                });
                Ok::<_, RuleError>(grant.ok_or(WalletRefusal::AgentState))
            })
            .await;
        match outcome {
            Err(RuleError::Storage(StorageError::Duplicate)) => {
                Ok(Err(WalletRefusal::UnknownNonce))
            }
            other => other,
        }
    }
}
