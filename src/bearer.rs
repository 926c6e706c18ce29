//! The `Authorization: Bearer` header (RFC 6750 §2.1, RFC 7235 §2.1), read once per request.
//!
//! Reading is split in two so the usual request pays for the cheap half only: [`read`] finds
//! the one header and splits off the scheme; the token's `b64token` syntax is checked by
//! [`Bearer::checked`] only when the token was not found in the verified-token cache (whose
//! entries passed that check when they were first verified).

use http::{HeaderMap, header};

use crate::error::InvalidRequest;

/// The credentials of a lone `Authorization: Bearer <token>` header, syntax not yet checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bearer<'h> {
    token: &'h [u8],
}

/// What the request presents: a bearer token, or nothing the layer reads (no `Authorization`
/// header, or another scheme such as `Basic`; a token in the query string or body is never
/// looked at).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Credentials<'h> {
    Bearer(Bearer<'h>),
    None,
}

/// Finds the bearer credentials of `headers`.
pub(crate) fn read(headers: &HeaderMap) -> Result<Credentials<'_>, InvalidRequest> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(Credentials::None);
    };
    if values.next().is_some() {
        return Err(InvalidRequest::MultipleAuthorizationHeaders);
    }
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space..]),
        None => (value, &[][..]),
    };
    // The scheme name is case-insensitive (RFC 7235 §2.1).
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(Credentials::None);
    }
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        return Err(InvalidRequest::MissingBearerToken);
    }
    Ok(Credentials::Bearer(Bearer { token }))
}

impl<'h> Bearer<'h> {
    /// The token's bytes as sent: good for a cache lookup, whose hits were checked before.
    pub(crate) fn bytes(self) -> &'h [u8] {
        self.token
    }

    /// The token, once it follows `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+"
    /// / "/" ) *"="`.
    pub(crate) fn checked(self) -> Result<&'h str, InvalidRequest> {
        let is_b64token_char = |b: &u8| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        };
        let padding = self.token.iter().rev().take_while(|&&b| b == b'=').count();
        let body = &self.token[..self.token.len() - padding];
        if body.is_empty() || !body.iter().all(is_b64token_char) {
            return Err(InvalidRequest::BadSyntax);
        }
        // Every byte is ASCII, checked just above.
        std::str::from_utf8(self.token).map_err(|_| InvalidRequest::BadSyntax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthError;
    use http::HeaderValue;

    fn parse(values: &[&'static str]) -> Result<Option<String>, AuthError> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        match read(&headers)? {
            Credentials::None => Ok(None),
            Credentials::Bearer(bearer) => Ok(Some(bearer.checked()?.to_owned())),
        }
    }

    #[test]
    fn bearer_syntax() {
        let token = |t: &str| Ok(Some(t.to_owned()));
        assert_eq!(parse(&["Bearer abc.def.ghi"]), token("abc.def.ghi"));
        assert_eq!(parse(&["bEaReR abc"]), token("abc"));
        assert_eq!(parse(&["Bearer  abc"]), token("abc"));
        assert_eq!(parse(&["Bearer abc=="]), token("abc=="));
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&["Basic dXNlcjpwYXNz"]), Ok(None));
        assert_eq!(parse(&["Bearerabc"]), Ok(None));
        let invalid = |reason: InvalidRequest| Err(AuthError::InvalidRequest(reason));
        assert_eq!(
            parse(&["Bearer"]),
            invalid(InvalidRequest::MissingBearerToken)
        );
        assert_eq!(
            parse(&["Bearer "]),
            invalid(InvalidRequest::MissingBearerToken)
        );
        assert_eq!(parse(&["Bearer a b"]), invalid(InvalidRequest::BadSyntax));
        assert_eq!(parse(&["Bearer a,b"]), invalid(InvalidRequest::BadSyntax));
        assert_eq!(parse(&["Bearer ==="]), invalid(InvalidRequest::BadSyntax));
        assert_eq!(
            parse(&["Bearer a", "Bearer b"]),
            invalid(InvalidRequest::MultipleAuthorizationHeaders)
        );
    }
}
