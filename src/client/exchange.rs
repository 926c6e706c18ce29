//! The HTTP side of minting: fetching the metadata and sending the token request, each
//! attempt bounded by a timeout and a body limit, transient failures retried as the
//! [`RetryPolicy`] says. Refusals come back at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use url::Url;

use super::credential::{ClientCredential, basic_authorization};
use super::discovery;
use super::error::{TokenError, Transient};
use super::http::{OAuthErrorBody, read_limited, retry_after};
use super::retry::RetryPolicy;

/// Most bytes read of a metadata document or a token response.
const MAX_BODY: usize = 64 * 1024;
/// The longest `expires_in` believed (a day): a larger one is clamped.
const MAX_EXPIRES_IN: u64 = 86_400;
/// The lifetime assumed when a token response omits `expires_in` (RFC 6749 makes it optional).
pub(crate) const DEFAULT_EXPIRES_IN: u64 = 60;

/// A successful token response.
#[derive(Debug)]
pub(crate) struct Minted {
    pub(crate) access_token: String,
    pub(crate) expires_in: Duration,
    pub(crate) scope: Option<String>,
}

/// What one attempt gave: a final outcome, or a failure worth another try.
enum Attempt<T> {
    Done(Result<T, TokenError>),
    Retry(Transient, Option<Duration>),
}

/// The request-independent settings of an exchange.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) http: reqwest::Client,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
}

impl Exchange {
    /// Runs `attempt` until it is done or the attempts are used up.
    async fn with_retries<T, F, Fut>(
        &self,
        what: &'static str,
        mut attempt: F,
    ) -> Result<T, TokenError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let attempts = self.retry.attempts();
        let mut n = 0;
        loop {
            n += 1;
            let outcome = match tokio::time::timeout(self.timeout, attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Retry(Transient::Timeout, None),
            };
            match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retry(last, _) if n >= attempts => {
                    tracing::warn!(what, attempts = n, reason = %last, "issuer unavailable, giving up");
                    return Err(TokenError::Unavailable { attempts: n, last });
                }
                Attempt::Retry(reason, after) => {
                    let delay = self.retry.delay(n, after);
                    tracing::debug!(what, attempt = n, %reason, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The token endpoint named by `issuer`'s metadata.
    pub(crate) async fn discover(&self, issuer: &str, base: &Url) -> Result<Url, TokenError> {
        let url = discovery::metadata_url(base);
        self.with_retries("metadata", || async {
            let res = match self
                .http
                .get(url.clone())
                .header(ACCEPT, "application/json")
                .send()
                .await
            {
                Ok(res) => res,
                Err(e) => return Attempt::Retry(Transient::Transport(e), None),
            };
            let status = res.status();
            if is_transient(status) {
                return Attempt::Retry(
                    Transient::Status(status.as_u16()),
                    retry_after(res.headers()),
                );
            }
            if !status.is_success() {
                return Attempt::Done(Err(TokenError::Metadata("the metadata endpoint refused")));
            }
            match read_limited(res, MAX_BODY).await {
                Err(e) => Attempt::Retry(Transient::Transport(e), None),
                Ok(None) => Attempt::Done(Err(TokenError::Metadata("the document is too large"))),
                Ok(Some(body)) => Attempt::Done(discovery::token_endpoint_from(issuer, &body)),
            }
        })
        .await
    }

    /// One `client_credentials` token request (retried as configured).
    pub(crate) async fn mint(&self, req: &TokenRequest<'_>) -> Result<Minted, TokenError> {
        self.with_retries("token", || async {
            // A fresh assertion per attempt: its jti is single-use at the issuer.
            let (auth, form) = match req.build() {
                Ok(parts) => parts,
                Err(e) => return Attempt::Done(Err(e)),
            };
            let mut request = self
                .http
                .post(req.endpoint.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(ACCEPT, "application/json")
                .body(form);
            if let Some(auth) = auth {
                request = request.header(AUTHORIZATION, auth);
            }
            let res = match request.send().await {
                Ok(res) => res,
                Err(e) => return Attempt::Retry(Transient::Transport(e), None),
            };
            let status = res.status();
            if is_transient(status) {
                return Attempt::Retry(
                    Transient::Status(status.as_u16()),
                    retry_after(res.headers()),
                );
            }
            let body = match read_limited(res, MAX_BODY).await {
                Err(e) => return Attempt::Retry(Transient::Transport(e), None),
                Ok(None) => return Attempt::Done(Err(invalid(status, "response too large"))),
                Ok(Some(body)) => body,
            };
            Attempt::Done(if status.is_success() {
                parse_token(status, &body)
            } else {
                Err(parse_refusal(status, &body))
            })
        })
        .await
    }
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

fn invalid(status: StatusCode, detail: &'static str) -> TokenError {
    TokenError::InvalidResponse {
        status: status.as_u16(),
        detail,
    }
}

fn parse_token(status: StatusCode, body: &[u8]) -> Result<Minted, TokenError> {
    #[derive(serde::Deserialize)]
    struct Body {
        access_token: String,
        token_type: String,
        expires_in: Option<u64>,
        scope: Option<String>,
    }
    let body: Body =
        serde_json::from_slice(body).map_err(|_| invalid(status, "not a token response"))?;
    if !body.token_type.eq_ignore_ascii_case("bearer") {
        return Err(invalid(status, "token_type is not Bearer"));
    }
    if body.access_token.is_empty() || HeaderValue::from_str(&body.access_token).is_err() {
        return Err(invalid(status, "access_token is not usable in a header"));
    }
    Ok(Minted {
        access_token: body.access_token,
        expires_in: Duration::from_secs(
            body.expires_in
                .unwrap_or(DEFAULT_EXPIRES_IN)
                .min(MAX_EXPIRES_IN),
        ),
        scope: body.scope,
    })
}

fn parse_refusal(status: StatusCode, body: &[u8]) -> TokenError {
    match serde_json::from_slice::<OAuthErrorBody>(body) {
        Ok(e) if e.error == "invalid_client" => TokenError::InvalidClient {
            description: e.error_description.unwrap_or_default(),
        },
        Ok(e) => TokenError::Refused {
            code: e.error,
            description: e.error_description.unwrap_or_default(),
        },
        Err(_) => invalid(status, "error without the RFC 6749 shape"),
    }
}

/// The parts of a token request.
#[derive(Debug)]
pub(crate) struct TokenRequest<'a> {
    pub(crate) endpoint: &'a Url,
    pub(crate) client_id: &'a str,
    pub(crate) credential: &'a ClientCredential,
    pub(crate) scopes: &'a [String],
    pub(crate) resource: Option<&'a str>,
    pub(crate) now: SystemTime,
    pub(crate) assertion_lifetime: Duration,
}

impl TokenRequest<'_> {
    /// The `Authorization` header (when the credential goes there) and the form body.
    fn build(&self) -> Result<(Option<HeaderValue>, String), TokenError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !self.scopes.is_empty() {
            form.append_pair("scope", &self.scopes.join(" "));
        }
        if let Some(resource) = self.resource {
            form.append_pair("resource", resource);
        }
        let auth = match self.credential {
            ClientCredential::Secret(secret) => {
                let mut value = HeaderValue::from_str(&basic_authorization(self.client_id, secret))
                    .map_err(|_| invalid(StatusCode::OK, "credentials not usable in a header"))?;
                value.set_sensitive(true);
                Some(value)
            }
            ClientCredential::PrivateKeyJwt(jwk) => {
                let now = self
                    .now
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let assertion = jwk.assertion(
                    self.client_id,
                    self.endpoint.as_str(),
                    now,
                    self.assertion_lifetime.as_secs(),
                )?;
                form.append_pair("client_id", self.client_id)
                    .append_pair(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .append_pair("client_assertion", &assertion);
                None
            }
        };
        Ok((auth, form.finish()))
    }
}
