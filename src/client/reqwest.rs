//! [`AuthorizationMiddleware`] (feature `reqwest-middleware`): the [`TokenSource`]'s token on
//! every request of a `reqwest_middleware::ClientWithMiddleware`, with one renewal and one
//! retry on `401 invalid_token` (when the request body can be cloned; a streaming body is
//! sent once).

use http::Extensions;
use reqwest::header::AUTHORIZATION;
use reqwest_middleware::{Middleware, Next};

use super::token_source::TokenSource;
use super::tower::{bearer, says_invalid_token};

/// Adds `Authorization: Bearer …` from a [`TokenSource`].
///
/// ```no_run
/// # fn run(tokens: agent_auth::client::TokenSource) {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(agent_auth::client::AuthorizationMiddleware::new(tokens))
///     .build();
/// # let _ = client;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AuthorizationMiddleware {
    source: TokenSource,
}

impl AuthorizationMiddleware {
    /// A middleware over `source`.
    pub fn new(source: TokenSource) -> Self {
        Self { source }
    }
}

fn token_error(e: super::TokenError) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(e)
}

#[async_trait::async_trait]
impl Middleware for AuthorizationMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let token = self.source.token().await.map_err(token_error)?;
        let again = req.try_clone();
        req.headers_mut()
            .insert(AUTHORIZATION, bearer(&token).map_err(token_error)?);
        let res = next.clone().run(req, extensions).await?;
        let Some(mut again) = again else {
            return Ok(res);
        };
        if !says_invalid_token(res.status(), res.headers()) {
            return Ok(res);
        }
        tracing::debug!(client_id = %self.source.client_id(), "token refused by the resource server; renewing once");
        self.source.invalidate(&token);
        let renewed = self.source.token().await.map_err(token_error)?;
        again
            .headers_mut()
            .insert(AUTHORIZATION, bearer(&renewed).map_err(token_error)?);
        next.run(again, extensions).await
    }
}
