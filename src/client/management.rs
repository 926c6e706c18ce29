//! [`ManagementClient`]: the issuer's management API (admin key over HTTP Basic) as plain
//! JSON calls, and [`provision`](ManagementClient::provision), the idempotent way to make sure
//! an agent exists. The `agent-auth` CLI is built on it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use url::Url;

use super::credential::ClientSecret;
use super::http::read_limited;

/// Most bytes read of one management response.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;
/// The timeout of one management call.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of [`ManagementClient`] calls. None of them carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagementError {
    /// The issuer URL is not an absolute `http`/`https` URL.
    #[error("invalid issuer URL")]
    InvalidUrl,
    /// The admin key id or secret cannot be sent in a header.
    #[error("invalid admin key")]
    InvalidKey,
    /// The issuer could not be reached, or the response not read.
    #[error("cannot reach the issuer")]
    Transport(#[source] reqwest::Error),
    /// The issuer did not answer within the timeout.
    #[error("the issuer did not answer in time")]
    Timeout,
    /// The management API refused: `{"error": {"code", "message"}}`.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.code`, e.g. `not_found`, `unauthorized`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// The answer is not what the management API promises.
    #[error("unexpected response from the issuer ({status}): {detail}")]
    InvalidResponse {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        detail: &'static str,
    },
}

/// What an agent should look like, for [`ManagementClient::provision`]: the `POST /v1/agents`
/// fields besides `external_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct AgentSpec {
    /// Human-readable name (required).
    pub name: String,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The model the agent runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The model provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The agent's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its scope ceiling.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The audiences its tokens may carry (empty: any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Lifetime in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Wallet accounts (CAIP-10) the agent should hold as `wallet` verifiers; registered by
    /// [`ManagementClient::provision`] when missing (not a field of the agent itself).
    #[serde(skip)]
    pub wallets: Vec<String>,
}

impl AgentSpec {
    /// An agent with this name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Sets its scope ceiling.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Limits its tokens' audiences.
    pub fn resources<I, S>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// Sets its description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets its lifetime in seconds.
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = Some(seconds);
        self
    }

    /// Wallet accounts (CAIP-10: `eip155:<chain>:0x…`, `solana:<genesis hash prefix>:<key>`)
    /// it should hold.
    pub fn wallets<I, S>(mut self, accounts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.wallets = accounts.into_iter().map(Into::into).collect();
        self
    }
}

/// The outcome of [`ManagementClient::provision`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Provisioned {
    /// The agent id (`agt_…`): the client id.
    pub agent_id: String,
    /// The agent object as the issuer returned it.
    pub agent: Value,
    /// `true` when an agent with this `external_id` existed already.
    pub already_existed: bool,
    /// The first secret, when this call created it (`None` for an agent that had secrets:
    /// they are stored hashed and cannot be shown again; rotate to get a new one).
    pub secret: Option<ClientSecret>,
    /// The id of that secret's verifier.
    pub verifier_id: Option<String>,
}

/// The management API of one issuer, with an admin key.
#[derive(Debug, Clone)]
pub struct ManagementClient {
    http: reqwest::Client,
    base: Url,
    authorization: HeaderValue,
}

impl ManagementClient {
    /// A client for the issuer at `issuer_url`. It follows no redirects and ignores proxy
    /// environment variables.
    pub fn new(
        issuer_url: &str,
        key_id: &str,
        key_secret: &ClientSecret,
    ) -> Result<Self, ManagementError> {
        let base = Url::parse(issuer_url).map_err(|_| ManagementError::InvalidUrl)?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ManagementError::InvalidUrl);
        }
        let pair = format!("{key_id}:{}", key_secret.expose());
        let mut authorization = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(pair)))
            .map_err(|_| ManagementError::InvalidKey)?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(ManagementError::Transport)?;
        Ok(Self {
            http,
            base,
            authorization,
        })
    }

    /// The issuer URL.
    pub fn issuer_url(&self) -> &str {
        self.base.as_str()
    }

    /// One management call: `method` on the path `segments` (each percent-encoded), with
    /// `query` and an optional JSON `body`. Returns the response body (`None` for `204`); an
    /// error response becomes [`ManagementError::Api`].
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ManagementError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ManagementError::InvalidUrl)?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let send = async {
            let res = req.send().await.map_err(ManagementError::Transport)?;
            let status = res.status();
            let bytes = read_limited(res, MAX_RESPONSE)
                .await
                .map_err(ManagementError::Transport)?
                .ok_or(ManagementError::InvalidResponse {
                    status: status.as_u16(),
                    detail: "response too large",
                })?;
            Ok::<_, ManagementError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(TIMEOUT, send)
            .await
            .map_err(|_| ManagementError::Timeout)??;
        let invalid = |detail| ManagementError::InvalidResponse {
            status: status.as_u16(),
            detail,
        };
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(None);
            }
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| invalid("not JSON"));
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
            Ok(e) => Err(ManagementError::Api {
                status: status.as_u16(),
                code: e.error.code,
                message: e.error.message,
            }),
            Err(_) => Err(invalid("an error without the management API's error shape")),
        }
    }

    /// `POST /v1/agents/{id}/verifiers` with `{"type": "wallet"}`: registers a CAIP-10 account
    /// and returns the verifier (`data`). An account another agent holds is a `409`
    /// [`ManagementError::Api`].
    pub async fn add_wallet(
        &self,
        agent_id: &str,
        account: &str,
        name: Option<&str>,
    ) -> Result<Value, ManagementError> {
        let mut body = json!({"type": "wallet", "account": account});
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        let res = self
            .call(
                Method::POST,
                &["v1", "agents", agent_id, "verifiers"],
                &[],
                Some(&body),
            )
            .await?;
        Ok(res.map_or(Value::Null, |mut r| r["data"].take()))
    }

    /// `GET /v1/wallets/{account}`: `{account, agent_id, verifier_id, agent}` of the agent
    /// holding `account` (EVM addresses in any letter case); unknown is a `404`
    /// [`ManagementError::Api`].
    pub async fn wallet(&self, account: &str) -> Result<Value, ManagementError> {
        let res = self
            .call(Method::GET, &["v1", "wallets", account], &[], None)
            .await?;
        Ok(res.map_or(Value::Null, |mut r| r["data"].take()))
    }

    /// Registers each of `accounts` for `agent_id` unless it holds it already (idempotent).
    async fn ensure_wallets(
        &self,
        agent_id: &str,
        accounts: &[String],
    ) -> Result<(), ManagementError> {
        for account in accounts {
            match self
                .add_wallet(agent_id, account, Some("provisioned"))
                .await
            {
                Ok(_) => {}
                Err(ManagementError::Api { status: 409, .. })
                    if self.wallet(account).await?["agent_id"].as_str() == Some(agent_id) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes sure the agent with `external_id` exists: creates it from `spec` with its first
    /// secret, or, when it exists, reports `already_existed` without a secret. The wallets of
    /// `spec` it does not hold yet are registered either way. Running it
    /// again after any failure is safe: an existing agent left without any verifier (the
    /// secret step of an earlier run failed) gets its first secret now.
    pub async fn provision(
        &self,
        external_id: &str,
        spec: &AgentSpec,
    ) -> Result<Provisioned, ManagementError> {
        let mut body =
            serde_json::to_value(spec).map_err(|_| ManagementError::InvalidResponse {
                status: 0,
                detail: "spec not serializable",
            })?;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("external_id".into(), json!(external_id));
        }
        let created = self
            .call(Method::POST, &["v1", "agents"], &[], Some(&body))
            .await?
            .ok_or(ManagementError::InvalidResponse {
                status: 200,
                detail: "no body",
            })?;
        let agent = created["data"].clone();
        let agent_id = agent["id"]
            .as_str()
            .ok_or(ManagementError::InvalidResponse {
                status: 200,
                detail: "no agent id",
            })?
            .to_owned();
        let already_existed = created["already_existed"].as_bool().unwrap_or(false);
        if already_existed {
            let verifiers = self
                .call(
                    Method::GET,
                    &["v1", "agents", &agent_id, "verifiers"],
                    &[],
                    None,
                )
                .await?;
            let none = verifiers
                .as_ref()
                .and_then(|v| v["data"].as_array())
                .is_some_and(Vec::is_empty);
            if !none {
                self.ensure_wallets(&agent_id, &spec.wallets).await?;
                tracing::info!(agent_id = %agent_id, "agent already provisioned");
                return Ok(Provisioned {
                    agent_id,
                    agent,
                    already_existed,
                    secret: None,
                    verifier_id: None,
                });
            }
        }
        let secret = self
            .call(
                Method::POST,
                &["v1", "agents", &agent_id, "verifiers"],
                &[],
                Some(&json!({"type": "secret", "name": "provisioned"})),
            )
            .await?
            .unwrap_or(Value::Null);
        let data = &secret["data"];
        let (Some(value), Some(verifier_id)) = (data["secret"].as_str(), data["id"].as_str())
        else {
            return Err(ManagementError::InvalidResponse {
                status: 201,
                detail: "no secret in the verifier response",
            });
        };
        self.ensure_wallets(&agent_id, &spec.wallets).await?;
        tracing::info!(agent_id = %agent_id, already_existed, "agent provisioned with its first secret");
        Ok(Provisioned {
            agent_id,
            agent,
            already_existed,
            secret: Some(ClientSecret::new(value)),
            verifier_id: Some(verifier_id.to_owned()),
        })
    }
}
