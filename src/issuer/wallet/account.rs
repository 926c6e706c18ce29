//! CAIP-10 wallet accounts (`namespace:reference:address`) of the two namespaces a `wallet`
//! verifier takes, validated and brought to one canonical form:
//!
//! - `eip155:<chain id>:0x<40 hex>`: the chain id is a decimal EIP-155 chain id without leading
//!   zeros (at most 32 characters, as CAIP-2 allows, and within `u64`); the address is stored in
//!   its EIP-55 checksum form. At registration an all-lower-case or all-upper-case address is
//!   accepted and a mixed-case one must carry a correct checksum (a typo in a checksummed
//!   address is caught); a lookup matches in any letter case.
//! - `solana:<genesis hash prefix>:<base58 public key>`: the reference is 1 to 32 base58
//!   characters (the cluster's genesis hash prefix, e.g. `5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp` for
//!   mainnet); the address is the base58 form of exactly 32 bytes, in its one canonical spelling
//!   (base58 is case-sensitive: no case folding).

use std::fmt;

use sha3::{Digest as _, Keccak256};

/// The longest account string read (CAIP-10 allows 41 + 1 + 128; ours are shorter).
pub const MAX_ACCOUNT_CHARS: usize = 128;
/// CAIP-2 references are at most 32 characters.
const MAX_REFERENCE_CHARS: usize = 32;

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Why an account string is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Longer than [`MAX_ACCOUNT_CHARS`].
    #[error("the account is longer than {MAX_ACCOUNT_CHARS} characters")]
    TooLong,
    /// Not `namespace:reference:address`.
    #[error("the account is not a CAIP-10 account id (namespace:reference:address)")]
    Shape,
    /// A namespace other than `eip155` and `solana`.
    #[error("only the eip155 and solana namespaces are supported")]
    Namespace,
    /// An `eip155` chain id that is not a decimal number without leading zeros.
    #[error("an eip155 chain id is a decimal number without leading zeros")]
    ChainId,
    /// An `eip155` address that is not `0x` and 40 hex digits.
    #[error("an eip155 address is 0x followed by 40 hex digits")]
    EvmAddress,
    /// A mixed-case `eip155` address whose EIP-55 checksum is wrong.
    #[error("the eip155 address has mixed case but a wrong EIP-55 checksum")]
    Checksum,
    /// A `solana` reference that is not 1 to 32 base58 characters.
    #[error("a solana reference is 1 to 32 base58 characters (the genesis hash prefix)")]
    SolanaReference,
    /// A `solana` address that is not the canonical base58 form of 32 bytes.
    #[error("a solana address is the base58 form of a 32-byte public key")]
    SolanaAddress,
}

/// A validated account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum WalletAccount {
    /// An EVM account.
    Eip155 { chain_id: u64, address: [u8; 20] },
    /// A Solana account: the cluster reference and the Ed25519 public key.
    Solana { reference: String, key: [u8; 32] },
}

/// How strictly letter case is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    /// Registration: a mixed-case EVM address must carry a correct EIP-55 checksum.
    Checked,
    /// Lookup: an EVM address matches in any letter case.
    Any,
}

impl WalletAccount {
    /// Reads `s` (see the module docs).
    pub(crate) fn parse(s: &str, case: Case) -> Result<Self, AccountError> {
        if s.len() > MAX_ACCOUNT_CHARS {
            return Err(AccountError::TooLong);
        }
        let mut parts = s.split(':');
        let (Some(namespace), Some(reference), Some(address), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AccountError::Shape);
        };
        match namespace {
            "eip155" => Ok(Self::Eip155 {
                chain_id: parse_chain_id(reference).ok_or(AccountError::ChainId)?,
                address: parse_evm_address(address, case)?,
            }),
            "solana" => {
                if !is_solana_reference(reference) {
                    return Err(AccountError::SolanaReference);
                }
                Ok(Self::Solana {
                    reference: reference.to_owned(),
                    key: parse_solana_key(address).ok_or(AccountError::SolanaAddress)?,
                })
            }
            _ => Err(AccountError::Namespace),
        }
    }
}

impl fmt::Display for WalletAccount {
    /// The canonical form (EIP-55 checksum for EVM addresses).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eip155 { chain_id, address } => {
                write!(f, "eip155:{chain_id}:{}", eip55(address))
            }
            Self::Solana { reference, key } => {
                write!(f, "solana:{reference}:{}", bs58::encode(key).into_string())
            }
        }
    }
}

/// A decimal chain id: no sign, no leading zero, at most 32 digits, within `u64`, not zero.
pub(crate) fn parse_chain_id(s: &str) -> Option<u64> {
    let digits = !s.is_empty()
        && s.len() <= MAX_REFERENCE_CHARS
        && s.bytes().all(|b| b.is_ascii_digit())
        && !s.starts_with('0');
    if !digits {
        return None;
    }
    s.parse().ok()
}

/// A CAIP-2 `solana` reference: 1 to 32 base58 characters.
pub(crate) fn is_solana_reference(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_REFERENCE_CHARS && s.bytes().all(|b| BASE58.contains(&b))
}

/// The 32 bytes of a canonical base58 Solana address.
pub(crate) fn parse_solana_key(s: &str) -> Option<[u8; 32]> {
    // 32 bytes take at most 44 base58 characters; the bound comes before any decoding work.
    if s.is_empty() || s.len() > 44 {
        return None;
    }
    let mut key = [0u8; 32];
    let n = bs58::decode(s).onto(&mut key[..]).ok()?;
    // `onto` writes exactly `n` bytes; a shorter key is not a public key. Re-encoding gives
    // the one canonical spelling (no extra leading `1`s).
    (n == 32 && bs58::encode(key).into_string() == s).then_some(key)
}

/// `0x` + 40 hex digits, with the letter-case rule of `case`.
pub(crate) fn parse_evm_address(s: &str, case: Case) -> Result<[u8; 20], AccountError> {
    let hex = s.strip_prefix("0x").ok_or(AccountError::EvmAddress)?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AccountError::EvmAddress);
    }
    let mut address = [0u8; 20];
    for (i, byte) in address.iter_mut().enumerate() {
        let pair = &hex[2 * i..2 * i + 2];
        *byte = u8::from_str_radix(pair, 16).map_err(|_| AccountError::EvmAddress)?;
    }
    let lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if case == Case::Checked && lower && upper && eip55(&address) != s {
        return Err(AccountError::Checksum);
    }
    Ok(address)
}

/// Whether `s` is `0x` + 40 hex digits in exactly the EIP-55 checksum form.
pub(crate) fn is_checksummed(s: &str) -> Option<[u8; 20]> {
    let address = parse_evm_address(s, Case::Any).ok()?;
    (eip55(&address) == s).then_some(address)
}

/// The EIP-55 mixed-case checksum form of `address` (`0x` + 40 hex digits).
pub(crate) fn eip55(address: &[u8; 20]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut lower = [0u8; 40];
    for (i, b) in address.iter().enumerate() {
        lower[2 * i] = HEX[usize::from(b >> 4)];
        lower[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    let hash = Keccak256::digest(lower);
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.iter().enumerate() {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
        let c = if c.is_ascii_alphabetic() && nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            *c
        };
        out.push(char::from(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // EIP-55's own test vectors.
    const CHECKSUMMED: [&str; 4] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors() {
        for s in CHECKSUMMED {
            let a = parse_evm_address(&s.to_ascii_lowercase().replace("0X", "0x"), Case::Checked)
                .unwrap();
            assert_eq!(eip55(&a), s);
            assert!(is_checksummed(s).is_some());
        }
    }

    #[test]
    fn evm_accounts() {
        let lower = "eip155:1:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        let a = WalletAccount::parse(lower, Case::Checked).unwrap();
        assert_eq!(a.to_string(), format!("eip155:1:{}", CHECKSUMMED[0]));
        let wrong = "eip155:1:0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(
            WalletAccount::parse(wrong, Case::Checked),
            Err(AccountError::Checksum)
        );
        assert_eq!(WalletAccount::parse(wrong, Case::Any).unwrap(), a);
        for bad in [
            "eip155:01:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "eip155:0:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "eip155::0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "eip155:99999999999999999999:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        ] {
            assert_eq!(
                WalletAccount::parse(bad, Case::Checked),
                Err(AccountError::ChainId)
            );
        }
        for bad in [
            "eip155:1:5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "eip155:1:0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea",
            "eip155:1:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg",
            "eip155:1:0X5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        ] {
            assert_eq!(
                WalletAccount::parse(bad, Case::Checked),
                Err(AccountError::EvmAddress)
            );
        }
        assert_eq!(
            WalletAccount::parse("cosmos:1:x", Case::Any),
            Err(AccountError::Namespace)
        );
        assert_eq!(
            WalletAccount::parse("eip155:1", Case::Any),
            Err(AccountError::Shape)
        );
    }

    #[test]
    fn solana_accounts() {
        let key = [7u8; 32];
        let b58 = bs58::encode(key).into_string();
        let s = format!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:{b58}");
        let a = WalletAccount::parse(&s, Case::Checked).unwrap();
        assert_eq!(a.to_string(), s);
        // A short key, a non-canonical spelling (leading `1` = an extra zero byte), bad chars.
        let short = bs58::encode([7u8; 31]).into_string();
        for bad in [short, format!("1{b58}"), "0OIl".to_owned()] {
            let s = format!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:{bad}");
            assert_eq!(
                WalletAccount::parse(&s, Case::Checked),
                Err(AccountError::SolanaAddress)
            );
        }
        let s = format!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp0:{b58}");
        assert_eq!(
            WalletAccount::parse(&s, Case::Checked),
            Err(AccountError::SolanaReference)
        );
    }
}
