//! Wallets: the formats behind `wallet` verifiers and sign-in with the wallet (DESIGN §9).
//!
//! - `account` — CAIP-10 accounts of the `eip155` and `solana` namespaces, validated and
//!   brought to their canonical form (EIP-55 checksum for EVM addresses);
//! - `message` — the strict EIP-4361 / CAIP-122 message parser (fuzzed: `fuzz/`);
//! - `signature` — EIP-191 `personal_sign` recovery on secp256k1 and Ed25519 verification.
//!
//! What is accepted (domain, URI, nonce, times, the registered account) is decided in
//! `registry::wallet`.

pub(crate) mod account;
pub(crate) mod message;
pub(crate) mod signature;

pub use account::{AccountError, MAX_ACCOUNT_CHARS};
pub use message::{MAX_MESSAGE_BYTES, MAX_NONCE_CHARS, MessageError};
