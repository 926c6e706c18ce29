//! Wallets: the reverse lookup (`GET /v1/wallets/{account}`, admin), the sign-in nonce
//! (`POST /wallet/nonce`, open) and the form side of the wallet grant at `/token`
//! (`grant_type=urn:agent-auth:params:oauth:grant-type:wallet`, `message`, `signature`). The
//! registry decides (`registry::wallet`).

use std::sync::Arc;

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::issuer::api::{Data, WalletNonce};
use crate::issuer::errors::{ApiError, OAuthError};
use crate::issuer::model::WalletRecord;
use crate::issuer::registry::{ClientGrant, RuleError, WalletAudience};
use crate::issuer::state::Shared;
use crate::issuer::wallet::account::{Case, WalletAccount};

use super::extract::ApiPath;

/// `grant_type` of sign-in with the wallet.
pub(crate) const WALLET_GRANT_TYPE: &str = "urn:agent-auth:params:oauth:grant-type:wallet";

/// A CAIP-10 account from the API, or `422 invalid_account`.
pub(crate) fn account(text: &str, case: Case) -> Result<WalletAccount, ApiError> {
    WalletAccount::parse(text, case).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_account",
            e.to_string(),
        )
    })
}

/// `GET /v1/wallets/{account}`: EVM addresses match in any letter case.
pub(crate) async fn lookup(
    State(s): State<Arc<Shared>>,
    ApiPath(text): ApiPath<String>,
) -> Result<Json<Data<WalletRecord>>, ApiError> {
    let account = account(&text, Case::Any)?.to_string();
    match s.registry.wallet(account).await? {
        Some(record) => Ok(Json(Data { data: record })),
        None => Err(ApiError::not_found("wallet")),
    }
}

fn rfc3339(secs: i64) -> Result<String, ApiError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(ApiError::internal)
}

/// `POST /wallet/nonce`. Budgeted per client address (axum's `ConnectInfo`, as for failed
/// admin logins; a router mounted without it shares one budget among all clients).
pub(crate) async fn nonce(
    State(s): State<Arc<Shared>>,
    req: Request,
) -> Result<Response, ApiError> {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
    let issued = match s.registry.issue_wallet_nonce(&client).await? {
        Ok(issued) => issued,
        Err(retry_after_secs) => {
            tracing::info!(outcome = "throttled", "wallet nonce refused");
            return Err(ApiError::too_many_requests(
                "too many sign-in nonces; retry later",
                retry_after_secs,
            ));
        }
    };
    let body = WalletNonce {
        nonce: issued.nonce,
        domain: s.wallet_domain.clone(),
        uri: s.issuer_url.clone(),
        issued_at: rfc3339(issued.issued_at)?,
        expiration_time: rfc3339(issued.expires_at)?,
    };
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The wallet grant's authentication: the grant of the account that signed `message`, or
/// `invalid_grant`.
pub(crate) async fn authenticate(
    s: &Shared,
    message: Option<&str>,
    signature: Option<&str>,
) -> Result<ClientGrant, OAuthError> {
    let (Some(message), Some(signature)) = (message, signature) else {
        return Err(OAuthError::invalid_request(
            "the wallet grant requires message and signature",
        ));
    };
    let audience = WalletAudience {
        scheme: &s.wallet_scheme,
        domain: &s.wallet_domain,
        uri: &s.issuer_url,
    };
    let outcome = s
        .registry
        .authenticate_wallet(message, signature, audience)
        .await
        .map_err(|e: RuleError| {
            tracing::error!(error = %e, "token endpoint: storage failed");
            OAuthError::server_error()
        })?;
    outcome.map_err(|refusal| {
        tracing::info!(
            method = "wallet",
            reason = refusal.reason(),
            outcome = "invalid_grant",
            "token refused"
        );
        OAuthError::invalid_grant("the wallet sign-in message or its signature is not valid")
    })
}
