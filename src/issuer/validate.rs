//! Input bounds and syntax checks shared by the management API and the token endpoint.

use super::errors::ApiError;

/// Largest JSON (management) or form (token endpoint) request body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest agent or verifier name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Longest `model`, `provider` or `version`, in characters.
pub const MAX_LABEL_CHARS: usize = 200;
/// Longest `external_id`, in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 256;
/// Longest `status_reason`, in characters.
pub const MAX_REASON_CHARS: usize = 1000;
/// Most scopes an agent can hold.
pub const MAX_SCOPES: usize = 256;
/// Longest scope token, in bytes.
pub const MAX_SCOPE_LEN: usize = 256;
/// Longest `expires_in`: ten years, in seconds.
pub const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 60 * 60;
/// Longest `resource` (token endpoint), in bytes.
pub const MAX_RESOURCE_LEN: usize = 2048;
/// Most `resources` an agent can be limited to.
pub const MAX_RESOURCES: usize = 20;
/// Default page size of list endpoints.
pub const DEFAULT_PAGE_LIMIT: usize = 50;
/// Largest page size of list endpoints.
pub const MAX_PAGE_LIMIT: usize = 100;

/// A bounded, non-blank text field without control characters.
pub(crate) fn text(field: &'static str, value: String, max: usize) -> Result<String, ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::validation(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ApiError::validation(format!(
            "{field} must be at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value)
}

/// [`text`] on an optional field.
pub(crate) fn opt_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    value.map(|v| text(field, v, max)).transpose()
}

/// [`text`] on a nullable patch field (`Some(None)` clears).
pub(crate) fn patch_text(
    field: &'static str,
    value: Option<Option<String>>,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    value.map(|v| opt_text(field, v, max)).transpose()
}

/// RFC 6749 §3.3 `scope-token = 1*NQCHAR`, NQCHAR = %x21 / %x23-5B / %x5D-7E.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// An agent's scope list: at most [`MAX_SCOPES`] valid scope tokens; duplicates are dropped
/// (first occurrence kept).
pub(crate) fn scopes(list: Vec<String>) -> Result<Vec<String>, ApiError> {
    if list.len() > MAX_SCOPES {
        return Err(ApiError::validation(format!(
            "an agent can hold at most {MAX_SCOPES} scopes"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for scope in list {
        if scope.len() > MAX_SCOPE_LEN {
            return Err(ApiError::validation(format!(
                "a scope must be at most {MAX_SCOPE_LEN} bytes"
            )));
        }
        if !is_scope_token(&scope) {
            return Err(ApiError::validation(
                "each scope must be an RFC 6749 scope-token (printable ASCII, no space, '\"' or '\\')",
            ));
        }
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    Ok(out)
}

/// RFC 8707 `resource` syntax: an absolute URI of at most [`MAX_RESOURCE_LEN`] bytes, without a
/// fragment or whitespace. `Err` says what is wrong (a fixed text).
pub(crate) fn resource_syntax(resource: &str) -> Result<(), &'static str> {
    if resource.len() > MAX_RESOURCE_LEN {
        return Err("resource is too long");
    }
    if resource
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("resource must not contain whitespace");
    }
    if resource.contains('#') {
        return Err("resource must not contain a fragment");
    }
    url::Url::parse(resource)
        .map(drop)
        .map_err(|_| "resource must be an absolute URI")
}

/// An agent's audience list: at most [`MAX_RESOURCES`] absolute URIs (RFC 8707 syntax);
/// duplicates dropped, order kept (the first is the default audience).
pub(crate) fn resources(list: Vec<String>) -> Result<Vec<String>, ApiError> {
    if list.len() > MAX_RESOURCES {
        return Err(ApiError::validation(format!(
            "an agent can be limited to at most {MAX_RESOURCES} resources"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for resource in list {
        resource_syntax(&resource)
            .map_err(|why| ApiError::validation(format!("resources: {why}")))?;
        if !out.contains(&resource) {
            out.push(resource);
        }
    }
    Ok(out)
}

/// `expires_in` seconds from `now_ms` → `expires_at` ms.
pub(crate) fn expires_at(now_ms: i64, expires_in: u64) -> Result<i64, ApiError> {
    if expires_in == 0 || expires_in > MAX_EXPIRES_IN_SECS {
        return Err(ApiError::validation(format!(
            "expires_in must be between 1 and {MAX_EXPIRES_IN_SECS} seconds"
        )));
    }
    // Bounded above, so the product fits in i64.
    Ok(now_ms.saturating_add(
        i64::try_from(expires_in)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000),
    ))
}

/// A page size from the query (`None` → default).
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE_LIMIT}"
        ))),
    }
}

/// A bounded opaque cursor from the query.
pub(crate) fn cursor(cursor: Option<String>) -> Result<Option<String>, ApiError> {
    match cursor {
        Some(c) if c.is_empty() || c.len() > 256 => Err(ApiError::bad_request("invalid cursor")),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_token_grammar() {
        assert!(is_scope_token("tickets:read"));
        assert!(is_scope_token("!#[]~"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token("é"));
    }

    #[test]
    fn scopes_dedupe_and_bound() {
        assert_eq!(
            scopes(vec!["a".into(), "b".into(), "a".into()]).unwrap(),
            vec!["a", "b"]
        );
        assert!(scopes((0..257).map(|i| format!("s{i}")).collect()).is_err());
        assert!(scopes(vec!["x".repeat(257)]).is_err());
    }

    #[test]
    fn text_bounds() {
        assert!(text("name", " ".into(), 10).is_err());
        assert!(text("name", "a\nb".into(), 10).is_err());
        assert!(text("name", "é".repeat(10), 10).is_ok());
        assert!(text("name", "é".repeat(11), 10).is_err());
    }
}
