//! Management API: `POST /v1/keys/rotate` — a new Ed25519 key, published at once and signing
//! after the publish delay; `{"immediate": true}` (after a compromise) signs with it at once
//! and drops every older key. Retired keys stay in the JWKS until every token they signed has
//! expired (`keys` decides each key's life).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::issuer::api::{Data, RotateKey, RotatedKey};
use crate::issuer::errors::{ApiError, IssuerError};
use crate::issuer::state::Shared;

use super::extract::OptionalJsonBody;

/// `POST /v1/keys/rotate`.
pub(crate) async fn rotate(
    State(s): State<Arc<Shared>>,
    OptionalJsonBody(body): OptionalJsonBody<RotateKey>,
) -> Result<Json<Data<RotatedKey>>, ApiError> {
    let (key, set) = s.rotate_keys(body.immediate).await.map_err(|e| match e {
        IssuerError::Storage(e) => ApiError::from(crate::issuer::registry::RuleError::from(e)),
        e => {
            tracing::error!(error = %e, "signing key rotation failed");
            ApiError::internal()
        }
    })?;
    tracing::info!(kid = %key.kid, immediate = body.immediate, outcome = "rotated", "signing key rotated");
    Ok(Json(Data {
        data: RotatedKey {
            kid: key.kid,
            signs_from: key.signs_from,
            published: set.kids().to_vec(),
        },
    }))
}
