//! RFC 9728 OAuth 2.0 Protected Resource Metadata, the document a client finds through the
//! `resource_metadata` parameter of our challenges.

use serde::Serialize;

/// The metadata document of a protected resource (RFC 9728 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: the audience tokens must carry.
    pub resource: String,
    /// Authorization servers whose tokens are accepted.
    pub authorization_servers: Vec<String>,
    /// How the token is sent: only the `Authorization` header is read.
    pub bearer_methods_supported: Vec<String>,
    /// Signature algorithms accepted for access tokens, when advertised.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_signing_alg_values_supported: Vec<String>,
    /// Scopes the resource uses, when advertised.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// A human-readable name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    /// Metadata for `resource`, protected by tokens from `issuer`.
    pub fn new(resource: impl Into<String>, issuer: impl Into<String>) -> Self {
        ProtectedResourceMetadata {
            resource: resource.into(),
            authorization_servers: vec![issuer.into()],
            bearer_methods_supported: vec!["header".to_owned()],
            resource_signing_alg_values_supported: Vec::new(),
            scopes_supported: Vec::new(),
            resource_name: None,
        }
    }

    /// Advertises the scopes the resource understands.
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        scopes: I,
    ) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets a human-readable name.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The JSON document.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The path it is served at for `metadata_url` (RFC 9728 §3.1), e.g.
    /// `/.well-known/oauth-protected-resource/tickets`; the bare well-known path when the URL
    /// does not parse.
    pub fn well_known_path(metadata_url: Option<&str>) -> String {
        metadata_url
            .and_then(|url| url::Url::parse(url).ok())
            .map(|url| url.path().to_owned())
            .filter(|path| path.starts_with("/.well-known/oauth-protected-resource"))
            .unwrap_or_else(|| "/.well-known/oauth-protected-resource".to_owned())
    }
}
