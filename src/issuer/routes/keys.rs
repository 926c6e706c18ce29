//! Management API: `POST /v1/keys/rotate` — a new Ed25519 key signs new tokens from now on;
//! the previous keys stay in the JWKS until every token they signed has expired.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::issuer::api::{Data, RotatedKey};
use crate::issuer::errors::ApiError;
use crate::issuer::keys::SigningKey;
use crate::issuer::state::Shared;

/// `POST /v1/keys/rotate`.
pub(crate) async fn rotate(
    State(s): State<Arc<Shared>>,
) -> Result<Json<Data<RotatedKey>>, ApiError> {
    let now = s.registry.now_ms();
    // Strictly newer than the current key, whatever the clock did.
    let newest = s.keys.current().active().created_at();
    let key = SigningKey::generate(now.max(newest.saturating_add(1))).map_err(|e| {
        tracing::error!(error = %e, "signing key generation failed");
        ApiError::internal()
    })?;
    let stored = s
        .registry
        .add_signing_key(key)
        .await
        .map_err(|e| ApiError::from(crate::issuer::registry::RuleError::from(e)))?;
    let set = s.keys.replace(stored, now).map_err(|e| {
        tracing::error!(error = %e, "signing keys could not be loaded");
        ApiError::internal()
    })?;
    let kid = set.active().kid().to_owned();
    tracing::info!(kid = %kid, outcome = "rotated", "signing key rotated");
    // Self-service must accept the new key's tokens at once (bounded by the middleware's HTTP
    // timeout; a failure only delays that until the next refetch).
    if let Err(e) = s.self_auth.refresh_keys().await {
        tracing::warn!(error = %e, "self-service keys not refreshed after rotation");
    }
    Ok(Json(Data {
        data: RotatedKey {
            kid,
            published: set.kids().to_vec(),
        },
    }))
}
