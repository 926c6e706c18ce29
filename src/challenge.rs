//! Every rejection → its HTTP response (RFC 6750 §3, RFC 9728 §5.1), in one place.
//!
//! The `WWW-Authenticate` values for every fixed outcome are built once, when the layer is
//! built; a rejection then costs a header clone (a reference-count increment).

use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, Version, header};

use crate::error::{AuthError, InvalidRequest, InvalidToken};

/// Pre-built challenges for one configured realm / resource-metadata URL.
#[derive(Debug)]
pub(crate) struct Challenge {
    /// `realm="…"` plus `, resource_metadata="…"` when configured.
    params: String,
    missing_token: HeaderValue,
    invalid_request: [HeaderValue; 3],
    invalid_token: Box<[HeaderValue]>,
}

impl Challenge {
    /// `basic_scopes`: a space-separated list named by the `401` without a token (none if empty).
    pub(crate) fn new(realm: &str, resource_metadata: Option<&str>, basic_scopes: &str) -> Self {
        let mut params = format!("realm={}", quoted(realm));
        if let Some(url) = resource_metadata {
            params.push_str(", resource_metadata=");
            params.push_str(&quoted(url));
        }
        let with_error = |code: &str, description: &str| {
            header_value(format!(
                "Bearer {params}, error=\"{code}\", error_description={}",
                quoted(description)
            ))
        };
        let invalid_request = [
            InvalidRequest::MultipleAuthorizationHeaders,
            InvalidRequest::MissingBearerToken,
            InvalidRequest::BadSyntax,
        ]
        .map(|reason| with_error("invalid_request", reason.description()));
        let invalid_token = InvalidToken::ALL
            .iter()
            .map(|reason| with_error("invalid_token", reason.description()))
            .collect();
        let missing_token = match basic_scopes.is_empty() {
            true => format!("Bearer {params}"),
            false => format!("Bearer {params}, scope={}", quoted(basic_scopes)),
        };
        Challenge {
            missing_token: header_value(missing_token),
            params,
            invalid_request,
            invalid_token,
        }
    }

    /// The response for a failed authentication.
    pub(crate) fn reject<B: Default>(&self, error: &AuthError) -> Response<B> {
        match error {
            AuthError::MissingToken => {
                respond(StatusCode::UNAUTHORIZED, self.missing_token.clone())
            }
            AuthError::InvalidRequest(reason) => respond(
                StatusCode::BAD_REQUEST,
                self.invalid_request[*reason as usize].clone(),
            ),
            AuthError::InvalidToken(reason) => respond(
                StatusCode::UNAUTHORIZED,
                self.invalid_token[*reason as usize].clone(),
            ),
            AuthError::KeysUnavailable { retry_after } => keys_unavailable(*retry_after),
        }
    }

    /// `403 insufficient_scope`, naming the scopes the route needs (`required` is already a
    /// space-separated list of RFC 6749 scope tokens).
    pub(crate) fn insufficient_scope<B: Default>(&self, required: &str) -> Response<B> {
        let value = header_value(format!(
            "Bearer {}, error=\"insufficient_scope\", error_description=\"missing required scope\", scope={}",
            self.params,
            quoted(required)
        ));
        respond(StatusCode::FORBIDDEN, value)
    }
}

fn respond<B: Default>(status: StatusCode, challenge: HeaderValue) -> Response<B> {
    let mut response = bare_status(status);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

/// `503` with `Retry-After` in whole seconds (at least 1): the keys are missing, not the token.
fn keys_unavailable<B: Default>(retry_after: Duration) -> Response<B> {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut response = bare_status(StatusCode::SERVICE_UNAVAILABLE);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// A response with `code` and an empty body: the refusals that carry no challenge (a layer
/// misplaced, a body that failed mid-read).
pub(crate) fn bare_status<B: Default>(code: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = code;
    response
}

/// Whether a refusal of `request` sent now leaves a body unread on an HTTP/1 connection: the
/// request announces one (`Transfer-Encoding`, or a `Content-Length` other than 0) and nobody
/// has read it. The next bytes on that connection are the body, not a request, so the server
/// closes it after the response, and the response must say so ([`close_connection`]).
pub(crate) fn leaves_body_unread<B>(request: &Request<B>) -> bool {
    if !matches!(request.version(), Version::HTTP_10 | Version::HTTP_11) {
        return false; // HTTP/2 and later reset a stream, never the connection.
    }
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            // An unparsable length is not a promise of no body.
            .any(|length| length.as_bytes() != b"0")
}

/// Adds `Connection: close` to a refusal that leaves a body unread on an HTTP/1 connection
/// (RFC 9112 §9.6): a client pipelining that body, or reusing the connection for its next
/// request, learns the connection ends here instead of finding it broken.
pub(crate) fn close_connection<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// [`close_connection`] when [`leaves_body_unread`] says so.
pub(crate) fn closing_if_body_unread<A, B>(
    request: &Request<A>,
    mut response: Response<B>,
) -> Response<B> {
    if leaves_body_unread(request) {
        close_connection(&mut response);
    }
    response
}

/// An RFC 9110 quoted-string. Characters a header cannot carry are dropped, since configured
/// values (realm, URLs) are the only inputs here and must never produce an invalid header.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '\t' | '!'..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
    out
}

fn header_value(value: String) -> HeaderValue {
    // `quoted` keeps only visible ASCII, space and tab, which are always valid header bytes.
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn www_authenticate(response: &Response<()>) -> &str {
        response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
    }

    #[test]
    fn every_fixed_outcome_has_its_status_and_code() {
        let challenge = Challenge::new(
            "tickets",
            Some("https://api.example.com/.well-known/oauth-protected-resource"),
            "",
        );
        let missing: Response<()> = challenge.reject(&AuthError::MissingToken);
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            www_authenticate(&missing),
            r#"Bearer realm="tickets", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource""#
        );
        for reason in InvalidToken::ALL {
            let response: Response<()> = challenge.reject(&AuthError::InvalidToken(*reason));
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            let value = www_authenticate(&response);
            assert!(value.contains(r#"error="invalid_token""#), "{value}");
            assert!(value.contains(reason.description()), "{value}");
            assert!(value.contains("resource_metadata="), "{value}");
        }
        let bad: Response<()> =
            challenge.reject(&AuthError::InvalidRequest(InvalidRequest::BadSyntax));
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(www_authenticate(&bad).contains(r#"error="invalid_request""#));
    }

    #[test]
    fn unavailable_keys_give_503_with_whole_seconds() {
        let challenge = Challenge::new("r", None, "");
        let response: Response<()> = challenge.reject(&AuthError::KeysUnavailable {
            retry_after: Duration::from_millis(2500),
        });
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn insufficient_scope_names_the_scopes() {
        let challenge = Challenge::new("r", None, "");
        let response: Response<()> = challenge.insufficient_scope("tickets:read tickets:triage");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            www_authenticate(&response),
            r#"Bearer realm="r", error="insufficient_scope", error_description="missing required scope", scope="tickets:read tickets:triage""#
        );
    }

    #[test]
    fn the_basic_scopes_are_named_by_the_401_without_a_token_only() {
        let challenge = Challenge::new("r", Some("https://a.example/m"), "tickets:read");
        let missing: Response<()> = challenge.reject(&AuthError::MissingToken);
        assert_eq!(
            www_authenticate(&missing),
            r#"Bearer realm="r", resource_metadata="https://a.example/m", scope="tickets:read""#
        );
        let invalid: Response<()> =
            challenge.reject(&AuthError::InvalidToken(InvalidToken::ALL[0]));
        assert!(!www_authenticate(&invalid).contains("scope="));
        let forbidden: Response<()> = challenge.insufficient_scope("tickets:triage");
        assert!(www_authenticate(&forbidden).ends_with(r#"scope="tickets:triage""#));
        assert!(www_authenticate(&forbidden).contains("resource_metadata="));
    }

    #[test]
    fn only_an_announced_http1_body_counts_as_unread() {
        let request = |version: Version, headers: &[(&str, &str)]| {
            let mut builder = Request::builder().method("POST").version(version);
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(()).unwrap()
        };
        let unread =
            |version, headers: &[(&str, &str)]| leaves_body_unread(&request(version, headers));
        assert!(unread(Version::HTTP_11, &[("content-length", "5")]));
        assert!(unread(Version::HTTP_10, &[("content-length", "5")]));
        assert!(unread(
            Version::HTTP_11,
            &[("transfer-encoding", "chunked")]
        ));
        assert!(unread(Version::HTTP_11, &[("content-length", "x")]));
        assert!(!unread(Version::HTTP_11, &[("content-length", "0")]));
        assert!(!unread(Version::HTTP_11, &[]));
        assert!(!unread(Version::HTTP_2, &[("content-length", "5")]));
        let closed: Response<()> = closing_if_body_unread(
            &request(Version::HTTP_11, &[("content-length", "5")]),
            Response::new(()),
        );
        assert_eq!(closed.headers()[header::CONNECTION], "close");
        let kept: Response<()> =
            closing_if_body_unread(&request(Version::HTTP_11, &[]), Response::new(()));
        assert!(!kept.headers().contains_key(header::CONNECTION));
    }

    #[test]
    fn quoting_escapes_and_drops_what_headers_cannot_carry() {
        assert_eq!(quoted("a\"b\\c\r\nd\u{e9}"), r#""a\"b\\cd""#);
    }
}
