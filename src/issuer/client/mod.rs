//! [`AdminClient`]: a typed HTTP client for the management API and the token endpoint, over
//! `reqwest`. Used by [`TestIssuer`](super::TestIssuer), and usable against any running issuer.

mod wallets;

use std::time::Duration;

use axum::body::Bytes;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api::{
    CreateAgent, CreateMembership, CreateOrganization, CreateVerifier, CreateWebhook, CreatedAgent,
    CreatedSecret, CreatedWebhook, Data, ListPage, RotateKey, RotatedKey, TokenResponse,
    UpdateAgent,
};
use super::model::{AgentRecord, EventRecord, EventType, VerifierKind, VerifierRecord};
use super::model::{MembershipRecord, OrganizationRecord, WebhookRecord};
use super::secrets::{AdminKey, Secret};

/// Errors of [`AdminClient`] calls. None of them contains a secret or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request could not be sent or the response not read.
    #[error("request to the issuer failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The management API answered with an error.
    #[error("issuer refused the request ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// The token endpoint answered with an RFC 6749 §5.2 error.
    #[error("token endpoint refused ({status} {error}): {description}")]
    OAuth {
        /// HTTP status.
        status: u16,
        /// `error`, e.g. `invalid_client`.
        error: String,
        /// `error_description`.
        description: String,
    },
    /// The response was not what the API promises.
    #[error("unexpected response from the issuer ({status}): {detail}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        detail: String,
    },
    /// The issuer URL cannot be used as a base URL.
    #[error("invalid issuer URL")]
    InvalidUrl,
}

impl ClientError {
    /// The HTTP status of an error response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. }
            | Self::OAuth { status, .. }
            | Self::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code: `error.code` of the management API, or `error` of the token endpoint.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            Self::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Filter and page of [`AdminClient::events`].
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this event type.
    pub kind: Option<EventType>,
    /// Only events about this agent.
    pub agent_id: Option<String>,
    /// Page size (1..=100; default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `limit` and `cursor` query parameters.
fn page_query(limit: Option<usize>, cursor: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(limit) = limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = cursor {
        query.push(("cursor", cursor.to_owned()));
    }
    query
}

/// Typed client for an issuer's management API (admin key over HTTP Basic) and token endpoint.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: url::Url,
    key: AdminKey,
}

/// Most bytes read from one response.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

impl AdminClient {
    /// A client for the issuer at `issuer_url`, authenticating with `key`. It ignores proxy
    /// environment variables and does not follow redirects.
    pub fn new(issuer_url: &str, key: AdminKey) -> Result<Self, ClientError> {
        let base = url::Url::parse(issuer_url).map_err(|_| ClientError::InvalidUrl)?;
        if base.cannot_be_a_base() {
            return Err(ClientError::InvalidUrl);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { http, base, key })
    }

    /// The issuer URL this client talks to.
    pub fn issuer_url(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, segments: &[&str]) -> Result<url::Url, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::InvalidUrl)?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn read(res: reqwest::Response) -> Result<(StatusCode, Bytes), ClientError> {
        let status = res.status();
        if res
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(ClientError::Unexpected {
                status: status.as_u16(),
                detail: "response too large".into(),
            });
        }
        Ok((status, res.bytes().await?))
    }

    async fn admin_call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&impl Serialize>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.call(method, segments, query, body, None).await
    }

    /// A management-API-shaped call: with the admin key, or with `bearer` (self-service).
    pub(crate) async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&impl Serialize>,
        bearer: Option<&Secret>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut url = self.url(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self.http.request(method, url);
        req = match bearer {
            Some(token) => req.bearer_auth(token.expose()),
            None => req.basic_auth(self.key.id(), Some(self.key.secret().expose())),
        };
        if let Some(body) = body {
            let json = serde_json::to_vec(body).map_err(|e| ClientError::Unexpected {
                status: 0,
                detail: format!("request not serializable: {e}"),
            })?;
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json);
        }
        let (status, bytes) = Self::read(req.send().await?).await?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        #[derive(serde::Deserialize)]
        struct ErrBody {
            error: ErrInner,
        }
        #[derive(serde::Deserialize)]
        struct ErrInner {
            code: String,
            message: String,
        }
        match serde_json::from_slice::<ErrBody>(&bytes) {
            Ok(e) => Err(ClientError::Api {
                status: status.as_u16(),
                code: e.error.code,
                message: e.error.message,
            }),
            Err(_) => Err(ClientError::Unexpected {
                status: status.as_u16(),
                detail: "error response without the JSON error shape".into(),
            }),
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        status: StatusCode,
        bytes: &[u8],
    ) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Unexpected {
            status: status.as_u16(),
            detail: format!("undecodable body: {e}"),
        })
    }

    pub(crate) const NO_BODY: Option<&'static ()> = None;

    /// A self-service client for the agent holding `access_token` (whose `aud` must be the
    /// issuer URL), sharing this client's connection pool.
    pub fn as_agent(&self, access_token: Secret) -> super::AgentClient {
        super::AgentClient::new(self.clone(), access_token)
    }

    /// `POST /v1/agents`. `already_existed` tells an idempotent replay (same `external_id`).
    pub async fn create_agent(&self, req: &CreateAgent) -> Result<CreatedAgent, ClientError> {
        let (s, b) = self
            .admin_call(Method::POST, &["v1", "agents"], &[], Some(req))
            .await?;
        Self::decode(s, &b)
    }

    /// `GET /v1/agents/{id}`.
    pub async fn get_agent(&self, id: &str) -> Result<AgentRecord, ClientError> {
        let (s, b) = self
            .admin_call(Method::GET, &["v1", "agents", id], &[], Self::NO_BODY)
            .await?;
        Ok(Self::decode::<Data<AgentRecord>>(s, &b)?.data)
    }

    /// `GET /v1/agents?limit=&cursor=` (newest first).
    pub async fn list_agents(
        &self,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<ListPage<AgentRecord>, ClientError> {
        let query = page_query(limit, cursor);
        let (s, b) = self
            .admin_call(Method::GET, &["v1", "agents"], &query, Self::NO_BODY)
            .await?;
        Self::decode(s, &b)
    }

    /// `PATCH /v1/agents/{id}`.
    pub async fn update_agent(
        &self,
        id: &str,
        patch: &UpdateAgent,
    ) -> Result<AgentRecord, ClientError> {
        let (s, b) = self
            .admin_call(Method::PATCH, &["v1", "agents", id], &[], Some(patch))
            .await?;
        Ok(Self::decode::<Data<AgentRecord>>(s, &b)?.data)
    }

    /// Suspends an agent (new tokens are refused at once).
    pub async fn suspend(&self, id: &str, reason: &str) -> Result<AgentRecord, ClientError> {
        self.update_agent(id, &UpdateAgent::suspend(reason)).await
    }

    /// Reactivates a suspended agent.
    pub async fn reactivate(&self, id: &str) -> Result<AgentRecord, ClientError> {
        self.update_agent(id, &UpdateAgent::reactivate()).await
    }

    /// `DELETE /v1/agents/{id}` (with its verifiers).
    pub async fn delete_agent(&self, id: &str) -> Result<(), ClientError> {
        self.admin_call(Method::DELETE, &["v1", "agents", id], &[], Self::NO_BODY)
            .await?;
        Ok(())
    }

    /// `POST /v1/agents/{id}/verifiers`: a new secret, shown this once.
    pub async fn add_secret(
        &self,
        agent_id: &str,
        name: Option<&str>,
    ) -> Result<CreatedSecret, ClientError> {
        let body = CreateVerifier {
            kind: VerifierKind::Secret,
            name: name.map(str::to_owned),
            jwk: None,
            account: None,
        };
        let (s, b) = self
            .admin_call(
                Method::POST,
                &["v1", "agents", agent_id, "verifiers"],
                &[],
                Some(&body),
            )
            .await?;
        Ok(Self::decode::<Data<CreatedSecret>>(s, &b)?.data)
    }

    /// `POST /v1/agents/{id}/verifiers` with `{"type": "jwk"}`: registers the agent's public
    /// key (a JWK without private members) for `private_key_jwt`.
    pub async fn add_jwk(
        &self,
        agent_id: &str,
        name: Option<&str>,
        jwk: serde_json::Value,
    ) -> Result<VerifierRecord, ClientError> {
        let body = CreateVerifier {
            kind: VerifierKind::Jwk,
            name: name.map(str::to_owned),
            jwk: Some(jwk),
            account: None,
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

    /// `GET /v1/agents/{id}/verifiers`.
    pub async fn list_verifiers(&self, agent_id: &str) -> Result<Vec<VerifierRecord>, ClientError> {
        let (s, b) = self
            .admin_call(
                Method::GET,
                &["v1", "agents", agent_id, "verifiers"],
                &[],
                Self::NO_BODY,
            )
            .await?;
        Ok(Self::decode::<ListPage<VerifierRecord>>(s, &b)?.data)
    }

    /// `DELETE /v1/agents/{id}/verifiers/{vid}`.
    pub async fn delete_verifier(
        &self,
        agent_id: &str,
        verifier_id: &str,
    ) -> Result<(), ClientError> {
        self.admin_call(
            Method::DELETE,
            &["v1", "agents", agent_id, "verifiers", verifier_id],
            &[],
            Self::NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// `GET /v1/events` (newest first).
    pub async fn events(&self, q: &EventQuery) -> Result<ListPage<EventRecord>, ClientError> {
        let mut query = Vec::new();
        if let Some(kind) = q.kind {
            query.push(("type", kind.as_str().to_owned()));
        }
        if let Some(agent_id) = &q.agent_id {
            query.push(("agent_id", agent_id.clone()));
        }
        query.extend(page_query(q.limit, q.cursor.as_deref()));
        let (s, b) = self
            .admin_call(Method::GET, &["v1", "events"], &query, Self::NO_BODY)
            .await?;
        Self::decode(s, &b)
    }

    /// `POST /v1/organizations`.
    pub async fn create_organization(&self, name: &str) -> Result<OrganizationRecord, ClientError> {
        let body = CreateOrganization {
            name: name.to_owned(),
        };
        let (s, b) = self
            .admin_call(Method::POST, &["v1", "organizations"], &[], Some(&body))
            .await?;
        Ok(Self::decode::<Data<OrganizationRecord>>(s, &b)?.data)
    }

    /// `POST /v1/organizations/{org}/members`.
    pub async fn add_member(
        &self,
        org_id: &str,
        member: &CreateMembership,
    ) -> Result<MembershipRecord, ClientError> {
        let (s, b) = self
            .admin_call(
                Method::POST,
                &["v1", "organizations", org_id, "members"],
                &[],
                Some(member),
            )
            .await?;
        Ok(Self::decode::<Data<MembershipRecord>>(s, &b)?.data)
    }

    /// `GET /v1/organizations/{org}/members?limit=&cursor=` (newest first).
    pub async fn list_members(
        &self,
        org_id: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<ListPage<MembershipRecord>, ClientError> {
        let query = page_query(limit, cursor);
        let (s, b) = self
            .admin_call(
                Method::GET,
                &["v1", "organizations", org_id, "members"],
                &query,
                Self::NO_BODY,
            )
            .await?;
        Self::decode(s, &b)
    }

    /// `DELETE /v1/organizations/{org}/members/{member_id}`.
    pub async fn remove_member(&self, org_id: &str, member_id: &str) -> Result<(), ClientError> {
        self.admin_call(
            Method::DELETE,
            &["v1", "organizations", org_id, "members", member_id],
            &[],
            Self::NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// `POST /v1/webhooks`: the endpoint and its `whsec_` secret, shown this once.
    pub async fn create_webhook(
        &self,
        url: &str,
        events: &[EventType],
    ) -> Result<CreatedWebhook, ClientError> {
        let body = CreateWebhook {
            url: url.to_owned(),
            events: events.iter().map(|e| e.as_str().to_owned()).collect(),
        };
        let (s, b) = self
            .admin_call(Method::POST, &["v1", "webhooks"], &[], Some(&body))
            .await?;
        Ok(Self::decode::<Data<CreatedWebhook>>(s, &b)?.data)
    }

    /// `GET /v1/webhooks`.
    pub async fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, ClientError> {
        let (s, b) = self
            .admin_call(Method::GET, &["v1", "webhooks"], &[], Self::NO_BODY)
            .await?;
        Ok(Self::decode::<ListPage<WebhookRecord>>(s, &b)?.data)
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        self.admin_call(Method::DELETE, &["v1", "webhooks", id], &[], Self::NO_BODY)
            .await?;
        Ok(())
    }

    /// `POST /v1/keys/rotate`: a new signing key, published now, signing from
    /// [`RotatedKey::signs_from`] (after the issuer's publish delay).
    pub async fn rotate_signing_key(&self) -> Result<RotatedKey, ClientError> {
        let (s, b) = self
            .admin_call(Method::POST, &["v1", "keys", "rotate"], &[], Self::NO_BODY)
            .await?;
        Ok(Self::decode::<Data<RotatedKey>>(s, &b)?.data)
    }

    /// `POST /v1/keys/rotate {"immediate": true}`, after a compromise: the new key signs at
    /// once and every older key leaves the JWKS (their tokens stop verifying once resource
    /// servers refetch).
    pub async fn rotate_signing_key_immediately(&self) -> Result<RotatedKey, ClientError> {
        let body = RotateKey { immediate: true };
        let (s, b) = self
            .admin_call(Method::POST, &["v1", "keys", "rotate"], &[], Some(&body))
            .await?;
        Ok(Self::decode::<Data<RotatedKey>>(s, &b)?.data)
    }

    /// `POST /token` with `grant_type=client_credentials`, authenticating with
    /// `client_secret_post`. `scopes: None` asks for all of the agent's scopes; `resource`
    /// becomes the token's `aud`.
    pub async fn token(
        &self,
        client_id: &str,
        secret: &str,
        scopes: Option<&[&str]>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, ClientError> {
        // The serializer is not `Send`: built and dropped before any `.await`, so that the
        // returned future can be spawned.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", client_id)
                .append_pair("client_secret", secret);
            if let Some(scopes) = scopes {
                form.append_pair("scope", &scopes.join(" "));
            }
            if let Some(resource) = resource {
                form.append_pair("resource", resource);
            }
            Secret::new(form.finish())
        };
        self.post_token_form(body).await
    }

    /// `POST /token` with a form body (kept redacted: it may hold a secret); RFC 6749 errors
    /// become [`ClientError::OAuth`].
    async fn post_token_form(&self, body: Secret) -> Result<TokenResponse, ClientError> {
        let res = self
            .http
            .post(self.url(&["token"])?)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.expose().to_owned())
            .send()
            .await?;
        let (status, bytes) = Self::read(res).await?;
        if status.is_success() {
            return Self::decode(status, &bytes);
        }
        #[derive(serde::Deserialize)]
        struct OAuthErr {
            error: String,
            #[serde(default)]
            error_description: String,
        }
        match serde_json::from_slice::<OAuthErr>(&bytes) {
            Ok(e) => Err(ClientError::OAuth {
                status: status.as_u16(),
                error: e.error,
                description: e.error_description,
            }),
            Err(_) => Err(ClientError::Unexpected {
                status: status.as_u16(),
                detail: "error response without the RFC 6749 error shape".into(),
            }),
        }
    }
}
