//! [`AdminClient`]'s wallet calls: register a wallet, look an account up, and sign in with
//! the wallet (nonce, then the wallet grant).

use reqwest::Method;

use super::{AdminClient, ClientError};
use crate::issuer::api::{CreateVerifier, Data, TokenResponse, WalletNonce};
use crate::issuer::model::{VerifierKind, VerifierRecord, WalletRecord};
use crate::issuer::secrets::Secret;

/// `grant_type` of sign-in with the wallet.
const WALLET_GRANT_TYPE: &str = "urn:agent-auth:params:oauth:grant-type:wallet";

impl AdminClient {
    /// `POST /v1/agents/{id}/verifiers` with `{"type": "wallet"}`: registers a CAIP-10
    /// account (`eip155:<chain>:0x…`, `solana:<genesis hash prefix>:<base58 key>`).
    pub async fn add_wallet(
        &self,
        agent_id: &str,
        name: Option<&str>,
        account: &str,
    ) -> Result<VerifierRecord, ClientError> {
        let body = CreateVerifier {
            kind: VerifierKind::Wallet,
            name: name.map(str::to_owned),
            jwk: None,
            account: Some(account.to_owned()),
        };
        let (s, b) = self
            .admin_call(
                Method::POST,
                &["v1", "agents", agent_id, "verifiers"],
                &[],
                Some(&body),
            )
            .await?;
        Ok(Self::decode::<Data<VerifierRecord>>(s, &b)?.data)
    }

    /// `GET /v1/wallets/{account}`: the agent holding `account` (EVM addresses in any letter
    /// case); a `404` [`ClientError::Api`] when none does.
    pub async fn wallet(&self, account: &str) -> Result<WalletRecord, ClientError> {
        let (s, b) = self
            .admin_call(Method::GET, &["v1", "wallets", account], &[], Self::NO_BODY)
            .await?;
        Ok(Self::decode::<Data<WalletRecord>>(s, &b)?.data)
    }

    /// `POST /wallet/nonce` (no admin key is sent: the endpoint is open).
    pub async fn wallet_nonce(&self) -> Result<WalletNonce, ClientError> {
        let res = self
            .http
            .request(Method::POST, self.url(&["wallet", "nonce"])?)
            .send()
            .await?;
        let (status, bytes) = Self::read(res).await?;
        if !status.is_success() {
            return Err(ClientError::Unexpected {
                status: status.as_u16(),
                detail: "the wallet nonce was refused".into(),
            });
        }
        Self::decode(status, &bytes)
    }

    /// `POST /token` with the wallet grant: `message` (EIP-4361 or CAIP-122 text with a nonce
    /// from [`wallet_nonce`](Self::wallet_nonce)) and its `signature` (`0x` + 65 bytes hex for
    /// EIP-191; base58 for Ed25519).
    pub async fn wallet_token(
        &self,
        message: &str,
        signature: &str,
        scopes: Option<&[&str]>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, ClientError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", WALLET_GRANT_TYPE)
            .append_pair("message", message)
            .append_pair("signature", signature);
        if let Some(scopes) = scopes {
            form.append_pair("scope", &scopes.join(" "));
        }
        if let Some(resource) = resource {
            form.append_pair("resource", resource);
        }
        self.post_token_form(Secret::new(form.finish())).await
    }
}
