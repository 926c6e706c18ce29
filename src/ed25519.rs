//! The one Ed25519 verification rule, for a signature checked alone and for a batch alike.
//!
//! RFC 8032 §5.1.7 allows two equations: `[S]B = R + [k]A` (cofactorless) and
//! `[8][S]B = [8]R + [8][k]A` (cofactored). They differ exactly on signatures whose `R` has a
//! small-order component, which only the private key's holder can make (`R` is hashed into
//! `k`). A batch check can only be cofactored, so checking single signatures cofactorless would
//! make a token's verdict depend on whether it arrived alone or with others (and the verified-
//! token cache would then keep whichever came first). Both paths therefore check:
//!
//! - `S` canonical (`S` < ℓ), `R` the canonical encoding of a point (RFC 8032 §5.1.3);
//! - `A` canonical and torsion-free (checked once, when the JWK is loaded: `jwks::keys`);
//! - the cofactored equation, by ed25519-zebra (ZIP 215), one signature at a time or batched.
//!
//! A signature checked alone goes to aws-lc-rs's cofactorless check first, which is faster
//! than any cofactored check we have (its field arithmetic is assembly). Its acceptance is the
//! cofactored acceptance: it means `R` is the encoding of `[S]B − [k]A`, and then
//! `[8]R = [8][S]B − [8][k]A` holds too (`k` is the same hash of the same bytes). Only when it
//! refuses does the cofactored check decide, so the verdict is always the cofactored one, and
//! an honest token costs one aws-lc-rs check. The price falls on refused signatures (a forged
//! token costs both checks, about 2.2 times one); their rate is what the caller's limits bound.
//!
//! Written here rather than taken whole from a crate: no single crate offers both the strict
//! encodings and the cofactored equation for one signature and for a batch.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use curve25519_dalek::Scalar;

/// The signature `signature` (base64url, as in a token) if its encoding is acceptable:
/// 64 bytes, `S` < ℓ, `R` a canonical point encoding.
pub(crate) fn decode_signature(signature: &str) -> Option<ed25519_zebra::Signature> {
    signature_bytes(signature).map(|bytes| ed25519_zebra::Signature::from_bytes(&bytes))
}

/// [`decode_signature`]'s checks, on the raw 64 bytes.
fn signature_bytes(signature: &str) -> Option<[u8; 64]> {
    let mut bytes = [0u8; 64];
    if URL_SAFE_NO_PAD.decode_slice(signature, &mut bytes).ok()? != 64 {
        return None;
    }
    let (r, s) = bytes.split_at(32);
    let s: [u8; 32] = s.try_into().ok()?;
    let canonical_s = bool::from(Scalar::from_canonical_bytes(s).is_some());
    (canonical_s && is_canonical_point_encoding(r)).then_some(bytes)
}

/// Checks `signature` (base64url) over `message` under `key`, alone: the cofactored verdict,
/// reached through the cofactorless check when that one accepts (module doc).
pub(crate) fn verify(
    key: &ed25519_zebra::VerificationKey,
    message: &[u8],
    signature: &str,
) -> bool {
    let Some(bytes) = signature_bytes(signature) else {
        return false;
    };
    let cofactorless = UnparsedPublicKey::new(&ED25519, key.as_ref());
    if cofactorless.verify(message, &bytes).is_ok() {
        return true;
    }
    // Refused cofactorless: the cofactored equation (ed25519-zebra) decides.
    key.verify(&ed25519_zebra::Signature::from_bytes(&bytes), message)
        .is_ok()
}

/// Whether `bytes` is the one encoding of an Edwards point's `y` and sign that RFC 8032
/// §5.1.3 decodes: `y` < p, and no sign bit on the two points with `x` = 0 (`y` = 1, `y` = p − 1).
/// ed25519-zebra decodes other encodings too (ZIP 215); they are refused here.
pub(crate) fn is_canonical_point_encoding(bytes: &[u8]) -> bool {
    let Ok(bytes) = <[u8; 32]>::try_from(bytes) else {
        return false;
    };
    let sign = bytes[31] >> 7;
    let mut y = bytes;
    y[31] &= 0x7f;
    // p = 2^255 − 19, little-endian: ed ff … ff 7f.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let below_p = y.iter().rev().cmp(p.iter().rev()) == std::cmp::Ordering::Less;
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut p_minus_one = p;
    p_minus_one[0] = 0xec;
    below_p && !(sign == 1 && (y == one || y == p_minus_one))
}
