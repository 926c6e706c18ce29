//! The signatures of a sign-in message, checked with well-kept crates (no hand-written
//! cryptography):
//!
//! - `eip155`: EIP-191 `personal_sign` — `0x` + 65 bytes hex (`r ‖ s ‖ v`, `v` 27/28 or 0/1)
//!   over Keccak-256 of `"\x19Ethereum Signed Message:\n" ‖ len ‖ message`; the public key is
//!   recovered on secp256k1 (`k256`), its address must be the message's. A high `s` (which no
//!   wallet produces; EIP-2) is refused. Contract wallets (EIP-1271) are not supported.
//! - `solana`: Ed25519 (`aws-lc-rs`) over the message bytes, the signature base58 (64 bytes),
//!   the public key the message's address.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha3::{Digest as _, Keccak256};

use super::account::WalletAccount;

/// Why a signature does not verify (logged, never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureRefusal {
    /// Not the encoding of the account's namespace.
    Encoding,
    /// Well-formed, but not by the message's account.
    Mismatch,
}

/// Checks `signature` over `message` by `account`.
pub(crate) fn verify(
    account: &WalletAccount,
    message: &str,
    signature: &str,
) -> Result<(), SignatureRefusal> {
    match account {
        WalletAccount::Eip155 { address, .. } => {
            let recovered = recover_eip191(message.as_bytes(), signature)?;
            if &recovered == address {
                Ok(())
            } else {
                Err(SignatureRefusal::Mismatch)
            }
        }
        WalletAccount::Solana { key, .. } => {
            // 64 bytes take at most 88 base58 characters: bounded before decoding.
            if signature.len() > 88 {
                return Err(SignatureRefusal::Encoding);
            }
            let mut sig = [0u8; 64];
            match bs58::decode(signature).onto(&mut sig[..]) {
                Ok(64) => {}
                _ => return Err(SignatureRefusal::Encoding),
            }
            UnparsedPublicKey::new(&ED25519, key)
                .verify(message.as_bytes(), &sig)
                .map_err(|_| SignatureRefusal::Mismatch)
        }
    }
}

/// The EIP-191 (`personal_sign`, version `0x45`) digest of `message`.
pub(crate) fn eip191_digest(message: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(message.len().to_string().as_bytes());
    h.update(message);
    h.finalize().into()
}

/// The Ethereum address of a secp256k1 public key: the last 20 bytes of Keccak-256 of its
/// uncompressed point (without the `0x04` tag).
pub(crate) fn address_of(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_encoded_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

fn recover_eip191(message: &[u8], signature: &str) -> Result<[u8; 20], SignatureRefusal> {
    let hex = signature
        .strip_prefix("0x")
        .filter(|h| h.len() == 130)
        .ok_or(SignatureRefusal::Encoding)?;
    let mut raw = [0u8; 65];
    for (i, byte) in raw.iter_mut().enumerate() {
        let pair = hex
            .get(2 * i..2 * i + 2)
            .ok_or(SignatureRefusal::Encoding)?;
        if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SignatureRefusal::Encoding);
        }
        *byte = u8::from_str_radix(pair, 16).map_err(|_| SignatureRefusal::Encoding)?;
    }
    let v = match raw[64] {
        27 | 28 => raw[64] - 27,
        0 | 1 => raw[64],
        _ => return Err(SignatureRefusal::Encoding),
    };
    let sig = Signature::from_slice(&raw[..64]).map_err(|_| SignatureRefusal::Encoding)?;
    if sig.normalize_s().is_some() {
        return Err(SignatureRefusal::Encoding);
    }
    let id = RecoveryId::from_byte(v).ok_or(SignatureRefusal::Encoding)?;
    let key = VerifyingKey::recover_from_prehash(&eip191_digest(message), &sig, id)
        .map_err(|_| SignatureRefusal::Mismatch)?;
    Ok(address_of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;

    #[test]
    fn recovers_the_signer() {
        let key = SigningKey::from_slice(&[0x11; 32]).unwrap();
        let address = address_of(key.verifying_key());
        let message = "hello";
        let (sig, id) = key
            .sign_prehash_recoverable(&eip191_digest(message.as_bytes()))
            .unwrap();
        let mut raw = sig.to_bytes().to_vec();
        raw.push(27 + id.to_byte());
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let account = WalletAccount::Eip155 {
            chain_id: 1,
            address,
        };
        assert_eq!(verify(&account, message, &format!("0x{hex}")), Ok(()));
        assert_eq!(
            verify(&account, "hellO", &format!("0x{hex}")),
            Err(SignatureRefusal::Mismatch)
        );
        assert_eq!(
            verify(&account, message, &hex),
            Err(SignatureRefusal::Encoding)
        );
        // A well-known vector: the private key 1's address.
        let one = SigningKey::from_slice(&{
            let mut k = [0u8; 32];
            k[31] = 1;
            k
        })
        .unwrap();
        assert_eq!(
            crate::issuer::wallet::account::eip55(&address_of(one.verifying_key())),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }
}
