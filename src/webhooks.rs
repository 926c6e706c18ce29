//! Standard Webhooks signatures: what the bundled issuer signs its deliveries with, and what a
//! receiver checks them with.
//!
//! A delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (several
//! space-separated signatures may be present; one matching is enough). The key is the
//! base64-decoded part of the `whsec_…` secret after the prefix.
//!
//! ```
//! use std::time::Duration;
//! # fn demo(headers: &http::HeaderMap, body: &[u8]) -> Result<(), agent_auth::webhooks::WebhookError> {
//! agent_auth::webhooks::verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body, Duration::from_secs(300))?;
//! // Deduplicate on the `webhook-id` header: delivery is at-least-once.
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

/// Longest `webhook-id` accepted, in bytes.
const MAX_ID_LEN: usize = 256;
/// Longest `webhook-signature` header accepted, in bytes.
const MAX_SIGNATURE_HEADER_LEN: usize = 4096;

/// Why a delivery was not accepted. Messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The secret is not `whsec_` followed by base64.
    #[error("the webhook secret is not whsec_ followed by base64")]
    InvalidSecret,
    /// A required header is missing, repeated, too long or not text.
    #[error("header {0} is missing or malformed")]
    BadHeader(&'static str),
    /// `webhook-timestamp` is outside the tolerance (replay protection).
    #[error("the webhook timestamp is outside the tolerance")]
    StaleTimestamp,
    /// No `v1` signature matches.
    #[error("no webhook signature matches")]
    NoMatchingSignature,
}

fn key_of(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or(WebhookError::InvalidSecret)?;
    let key = STANDARD
        .decode(b64)
        .map_err(|_| WebhookError::InvalidSecret)?;
    if key.is_empty() {
        return Err(WebhookError::InvalidSecret);
    }
    Ok(key)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // Invariant: HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value (`v1,<base64>`) for a message, with the raw key.
pub(crate) fn sign_with_key(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The `webhook-signature` value (`v1,<base64>`) for a message, with a `whsec_` secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookError> {
    Ok(sign_with_key(&key_of(secret)?, id, timestamp, body))
}

fn header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
    max: usize,
) -> Result<&'a str, WebhookError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(WebhookError::BadHeader(name))?;
    if values.next().is_some() || value.len() > max {
        return Err(WebhookError::BadHeader(name));
    }
    value.to_str().map_err(|_| WebhookError::BadHeader(name))
}

/// Verifies a delivery against the system clock: the signature (constant time) and that the
/// timestamp is within `tolerance` of now.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    tolerance: Duration,
) -> Result<(), WebhookError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    verify_at(secret, headers, body, tolerance, now)
}

/// [`verify`] at `now` (Unix seconds).
pub fn verify_at(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    tolerance: Duration,
    now: i64,
) -> Result<(), WebhookError> {
    let key = key_of(secret)?;
    let id = header(headers, "webhook-id", MAX_ID_LEN)?;
    let ts_raw = header(headers, "webhook-timestamp", 20)?;
    let timestamp: i64 = ts_raw
        .parse()
        .map_err(|_| WebhookError::BadHeader("webhook-timestamp"))?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(timestamp).saturating_abs() > tolerance {
        return Err(WebhookError::StaleTimestamp);
    }
    let signatures = header(headers, "webhook-signature", MAX_SIGNATURE_HEADER_LEN)?;
    let expected = mac(&key, id, timestamp, body);
    let mut matched = false;
    for candidate in signatures.split(' ') {
        let Some(b64) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(tag) = STANDARD.decode(b64) else {
            continue;
        };
        // Constant-time comparison (hmac's verify_slice).
        matched |= expected.clone().verify_slice(&tag).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(WebhookError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        h.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&ts.to_string()).unwrap(),
        );
        h.insert("webhook-signature", HeaderValue::from_str(sig).unwrap());
        h
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, id, ts, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let h = headers(id, ts, &format!("v1,bogus {sig}"));
        let tol = Duration::from_secs(300);
        verify_at(secret, &h, body, tol, ts + 10).unwrap();
        assert_eq!(
            verify_at(secret, &h, b"{}", tol, ts),
            Err(WebhookError::NoMatchingSignature)
        );
        assert_eq!(
            verify_at(secret, &h, body, tol, ts + 301),
            Err(WebhookError::StaleTimestamp)
        );
        assert_eq!(
            verify_at("whsec_AAAA", &h, body, tol, ts),
            Err(WebhookError::NoMatchingSignature)
        );
        assert_eq!(
            verify_at("nope", &h, body, tol, ts),
            Err(WebhookError::InvalidSecret)
        );
        assert_eq!(
            verify_at(secret, &HeaderMap::new(), body, tol, ts),
            Err(WebhookError::BadHeader("webhook-id"))
        );
    }
}
