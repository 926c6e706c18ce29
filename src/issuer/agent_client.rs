//! [`AgentClient`]: the agent's side of self-service (`/v1/agents/me…`), with its own token.

use reqwest::Method;

use super::api::{AgentUsage, CreatedSecret, Data};
use super::client::{AdminClient, ClientError};
use super::model::AgentRecord;
use super::secrets::Secret;

/// Calls the self-service endpoints with an agent's access token (get one with
/// `resource` = the issuer URL). Build it with [`AdminClient::as_agent`]. `Debug` redacts the
/// token.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: AdminClient,
    token: Secret,
}

impl AgentClient {
    pub(crate) fn new(http: AdminClient, token: Secret) -> Self {
        Self { http, token }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        tail: &[&str],
    ) -> Result<T, ClientError> {
        let mut segments = vec!["v1", "agents", "me"];
        segments.extend_from_slice(tail);
        let (s, b) = self
            .http
            .call(
                method,
                &segments,
                &[],
                AdminClient::NO_BODY,
                Some(&self.token),
            )
            .await?;
        AdminClient::decode(s, &b)
    }

    /// `GET /v1/agents/me`.
    pub async fn me(&self) -> Result<AgentRecord, ClientError> {
        Ok(self.call::<Data<AgentRecord>>(Method::GET, &[]).await?.data)
    }

    /// `GET /v1/agents/me/usage`.
    pub async fn usage(&self) -> Result<AgentUsage, ClientError> {
        Ok(self
            .call::<Data<AgentUsage>>(Method::GET, &["usage"])
            .await?
            .data)
    }

    /// `POST /v1/agents/me/rotate`: the new secret (shown once); every old one stops working.
    pub async fn rotate(&self) -> Result<CreatedSecret, ClientError> {
        Ok(self
            .call::<Data<CreatedSecret>>(Method::POST, &["rotate"])
            .await?
            .data)
    }

    /// `POST /v1/agents/me/deactivate`.
    pub async fn deactivate(&self) -> Result<AgentRecord, ClientError> {
        Ok(self
            .call::<Data<AgentRecord>>(Method::POST, &["deactivate"])
            .await?
            .data)
    }

    /// `POST /v1/agents/me/reactivate` (only after a self-deactivation).
    pub async fn reactivate(&self) -> Result<AgentRecord, ClientError> {
        Ok(self
            .call::<Data<AgentRecord>>(Method::POST, &["reactivate"])
            .await?
            .data)
    }

    /// `DELETE /v1/agents/me`.
    pub async fn delete(&self) -> Result<(), ClientError> {
        let segments = ["v1", "agents", "me"];
        self.http
            .call(
                Method::DELETE,
                &segments,
                &[],
                AdminClient::NO_BODY,
                Some(&self.token),
            )
            .await?;
        Ok(())
    }
}
