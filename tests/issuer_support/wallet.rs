//! Wallets for the wallet tests: EVM keys (secp256k1, `k256`) signing EIP-191 `personal_sign`,
//! Solana keys (Ed25519, `ed25519-dalek`), and EIP-4361 / CAIP-122 messages built from a nonce
//! of the issuer. Addresses and checksums are computed here independently of the crate.

use agent_auth::issuer::{TestIssuer, WalletNonce};
use ed25519_dalek::Signer as _;
use k256::ecdsa::SigningKey;
use sha3::{Digest as _, Keccak256};

use reqwest::Method;
use serde_json::json;

use super::keyed::agent_without_secret;
use super::{Reply, admin, form, token_raw};

pub const SOLANA_MAINNET: &str = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp";
pub const WALLET_GRANT: &str = "urn:agent-auth:params:oauth:grant-type:wallet";

/// A wallet that can sign sign-in messages.
pub enum Wallet {
    Evm { key: SigningKey, chain_id: u64 },
    Solana { key: ed25519_dalek::SigningKey },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// EIP-55 checksum of a lower-case hex address (without `0x`).
pub fn checksum(lower: &str) -> String {
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::from("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0xf;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

impl Wallet {
    /// An EVM wallet from a fixed seed byte (a valid secp256k1 scalar for any 1..=255).
    pub fn evm(seed: u8, chain_id: u64) -> Self {
        let key = SigningKey::from_slice(&[seed; 32]).unwrap();
        Wallet::Evm { key, chain_id }
    }

    pub fn solana(seed: u8) -> Self {
        Wallet::Solana {
            key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// The address as a message carries it (EIP-55 checksum; base58).
    pub fn address(&self) -> String {
        match self {
            Wallet::Evm { key, .. } => {
                let point = key.verifying_key().to_encoded_point(false);
                let hash = Keccak256::digest(&point.as_bytes()[1..]);
                checksum(&hex(&hash[12..]))
            }
            Wallet::Solana { key } => bs58::encode(key.verifying_key().as_bytes()).into_string(),
        }
    }

    /// The message's `Chain ID`.
    pub fn chain_id(&self) -> String {
        match self {
            Wallet::Evm { chain_id, .. } => chain_id.to_string(),
            Wallet::Solana { .. } => SOLANA_MAINNET.to_owned(),
        }
    }

    /// The CAIP-10 account (canonical).
    pub fn account(&self) -> String {
        match self {
            Wallet::Evm { chain_id, .. } => format!("eip155:{chain_id}:{}", self.address()),
            Wallet::Solana { .. } => format!("solana:{SOLANA_MAINNET}:{}", self.address()),
        }
    }

    fn chain_name(&self) -> &'static str {
        match self {
            Wallet::Evm { .. } => "Ethereum",
            Wallet::Solana { .. } => "Solana",
        }
    }

    /// EIP-191 `personal_sign` (`0x` + r ‖ s ‖ v) or Ed25519 (base58).
    pub fn sign(&self, message: &str) -> String {
        match self {
            Wallet::Evm { key, .. } => {
                let mut h = Keccak256::new();
                h.update(format!("\x19Ethereum Signed Message:\n{}", message.len()));
                h.update(message.as_bytes());
                let digest = h.finalize();
                let (sig, id) = key.sign_prehash_recoverable(&digest).unwrap();
                let mut raw = sig.to_bytes().to_vec();
                raw.push(27 + id.to_byte());
                format!("0x{}", hex(&raw))
            }
            Wallet::Solana { key } => {
                bs58::encode(key.sign(message.as_bytes()).to_bytes()).into_string()
            }
        }
    }
}

/// The fields of a sign-in message, from a nonce, each replaceable by a test.
#[derive(Debug, Clone)]
pub struct Message {
    pub domain: String,
    pub address: String,
    pub statement: Option<String>,
    pub uri: String,
    pub chain_id: String,
    pub nonce: String,
    pub issued_at: String,
    pub expiration_time: Option<String>,
    pub not_before: Option<String>,
    chain: &'static str,
}

impl Message {
    pub fn new(wallet: &Wallet, nonce: &WalletNonce) -> Self {
        Message {
            domain: nonce.domain.clone(),
            address: wallet.address(),
            statement: Some("Sign in to agent-auth.".to_owned()),
            uri: nonce.uri.clone(),
            chain_id: wallet.chain_id(),
            nonce: nonce.nonce.clone(),
            issued_at: nonce.issued_at.clone(),
            expiration_time: Some(nonce.expiration_time.clone()),
            not_before: None,
            chain: wallet.chain_name(),
        }
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "{} wants you to sign in with your {} account:\n{}\n\n",
            self.domain, self.chain, self.address
        );
        if let Some(st) = &self.statement {
            s.push_str(st);
            s.push('\n');
        }
        s.push_str(&format!(
            "\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri, self.chain_id, self.nonce, self.issued_at
        ));
        if let Some(t) = &self.expiration_time {
            s.push_str(&format!("\nExpiration Time: {t}"));
        }
        if let Some(t) = &self.not_before {
            s.push_str(&format!("\nNot Before: {t}"));
        }
        s
    }
}

/// `POST /wallet/nonce`.
pub async fn nonce(issuer: &TestIssuer) -> WalletNonce {
    issuer.admin().wallet_nonce().await.unwrap()
}

/// The wallet grant with `message` and `signature` (and `extra` form pairs).
pub async fn sign_in(
    issuer: &TestIssuer,
    message: &str,
    signature: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut pairs = vec![
        ("grant_type", WALLET_GRANT),
        ("message", message),
        ("signature", signature),
    ];
    pairs.extend_from_slice(extra);
    token_raw(issuer, &form(&pairs), None).await
}

pub async fn register(issuer: &TestIssuer, agent: &str, account: &str) -> Reply {
    admin(
        issuer,
        Method::POST,
        &format!("/v1/agents/{agent}/verifiers"),
        Some(json!({"type": "wallet", "name": "treasury", "account": account})),
    )
    .await
}

pub async fn lookup(issuer: &TestIssuer, account: &str) -> Reply {
    admin(issuer, Method::GET, &format!("/v1/wallets/{account}"), None).await
}

/// An agent with `scopes` holding `wallet`; returns its id.
pub async fn wallet_agent(issuer: &TestIssuer, scopes: &[&str], wallet: &Wallet) -> String {
    let agent = agent_without_secret(issuer, scopes).await;
    let r = register(issuer, &agent, &wallet.account()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    agent
}

/// A signed message for `wallet` with a fresh nonce, edited by `edit`.
pub async fn signed(
    issuer: &TestIssuer,
    wallet: &Wallet,
    edit: impl FnOnce(&mut Message),
) -> (String, String) {
    let mut m = Message::new(wallet, &nonce(issuer).await);
    edit(&mut m);
    let text = m.text();
    let sig = wallet.sign(&text);
    (text, sig)
}

pub async fn refused_with(
    issuer: &TestIssuer,
    text: &str,
    sig: &str,
    extra: &[(&str, &str)],
) -> String {
    sign_in(issuer, text, sig, extra).await.oauth_error(400)
}
