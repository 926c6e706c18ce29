//! HTTP extraction, in one place: HTTP Basic credentials, bounded bodies, the media type, and
//! the extractors that turn every malformed input into the management API's JSON error shape
//! (never axum's plain-text rejections).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::issuer::HttpLimits;
use crate::issuer::errors::ApiError;
use crate::issuer::model::PageRequest;
use crate::issuer::serve::BodyDeadline;
use crate::issuer::validate::{self, MAX_BODY_BYTES};

/// `?limit=&cursor=`.
#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
}

impl PageQuery {
    pub(crate) fn into_request(self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest {
            limit: validate::page_limit(self.limit)?,
            cursor: validate::cursor(self.cursor)?,
        })
    }
}

/// What an `Authorization` header holds, as far as HTTP Basic is concerned.
pub(crate) enum BasicAuth {
    /// No `Authorization` header.
    Absent,
    /// More than one `Authorization` header.
    Multiple,
    /// A header with another scheme (e.g. `Bearer`).
    OtherScheme,
    /// `Basic` with undecodable credentials.
    Malformed,
    /// `Basic` user name and password, raw bytes (RFC 7617).
    Present {
        /// The user name.
        user: Vec<u8>,
        /// The password.
        password: Vec<u8>,
    },
}

/// Standard base64, padding optional (some clients strip it).
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses HTTP Basic credentials (scheme name case-insensitive, RFC 7235).
pub(crate) fn basic_credentials(headers: &HeaderMap) -> BasicAuth {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return BasicAuth::Absent;
    };
    if values.next().is_some() {
        return BasicAuth::Multiple;
    }
    let Ok(value) = value.to_str() else {
        return BasicAuth::Malformed;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return BasicAuth::OtherScheme;
    }
    let Ok(decoded) = BASIC_B64.decode(rest.trim()) else {
        return BasicAuth::Malformed;
    };
    match decoded.iter().position(|&b| b == b':') {
        Some(i) => BasicAuth::Present {
            user: decoded[..i].to_vec(),
            password: decoded[i + 1..].to_vec(),
        },
        None => BasicAuth::Malformed,
    }
}

/// Why a body could not be read.
pub(crate) enum BodyError {
    /// Over the limit.
    TooLarge,
    /// The connection failed mid-body.
    Read,
    /// It did not arrive in time (the answer then closes the connection).
    Timeout,
}

/// Reads a body of at most `limit` bytes (checks `Content-Length` first, then counts), within
/// the request's body deadline (the server's [`HttpLimits::body_timeout`], the default when
/// the router is mounted elsewhere).
///
pub(crate) async fn read_body(parts: &Parts, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let deadline = parts
        .extensions
        .get::<BodyDeadline>()
        .map_or(HttpLimits::default().body_timeout, |d| d.0);
    let headers = &parts.headers;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let collected = tokio::time::timeout(deadline, Limited::new(body, limit).collect())
        .await
        .map_err(|_| BodyError::Timeout)?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Read),
    }
}

/// The media type of the request (lowercase, without parameters).
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(essence)
}

/// [`JsonBody`], or `T::default()` for a request without a body and without a `Content-Type`
/// (an empty `POST`).
pub(crate) struct OptionalJsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared_empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
        if req.headers().get(header::CONTENT_TYPE).is_none() && declared_empty {
            let (parts, body) = req.into_parts();
            let bytes = read_body(&parts, body, 0)
                .await
                .map_err(|_| ApiError::unsupported_media_type())?;
            debug_assert!(bytes.is_empty());
            return Ok(Self(T::default()));
        }
        JsonBody::from_request(req, state)
            .await
            .map(|JsonBody(value)| Self(value))
    }
}

/// A JSON body of at most [`MAX_BODY_BYTES`]: 415 without a JSON media type, 413 when too
/// large, 400 `invalid_json` when malformed, 422 `validation_error` when well-formed JSON of
/// the wrong shape (missing, unknown or mistyped fields).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let is_json = media_type(req.headers()).is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
        if !is_json {
            return Err(ApiError::unsupported_media_type());
        }
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts, body, MAX_BODY_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => ApiError::payload_too_large(MAX_BODY_BYTES),
                BodyError::Read => ApiError::bad_request("the request body could not be read"),
                BodyError::Timeout => ApiError::request_timeout(),
            })?;
        // Parse to a value first: syntax errors are 400, and only an object is accepted (serde
        // would otherwise also map a JSON array onto a struct, field by position).
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid_json(format!("malformed JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::validation("the body must be a JSON object"));
        }
        // Deserialize from the bytes, not the value: a `Value` keeps only the last of duplicate
        // members, while the typed parse refuses a body that names a field twice.
        serde_json::from_slice::<T>(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::validation(e.to_string()))
    }
}

/// Path parameters; anything undecodable is a 404.
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|_| ApiError::not_found("resource"))
    }
}

/// Query parameters; anything undecodable is a 400 `invalid_request`.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(|q| q.len() > 4096) {
            return Err(ApiError::bad_request("query string too long"));
        }
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(t)| ApiQuery(t))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}
