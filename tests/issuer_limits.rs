//! Input limits of the bundled issuer over real HTTP (127.0.0.1, port 0): oversized bodies,
//! malformed JSON and forms, wrong content types, Unicode and control characters in names,
//! scope tokens outside RFC 6749's NQCHAR. Each gets a clear 4xx with a JSON error body, and
//! nothing is stored: agents, verifiers, events and token counters are compared before and after.
//!
//! Not repeated from tests/issuer_admin.rs and tests/issuer_token.rs: create-agent field bounds,
//! a few malformed JSON bodies and the 413 on `POST /v1/agents`, the token endpoint's repeated
//! parameters, both-auth-methods and 413 with a Content-Length, query-string limits.
#![cfg(feature = "issuer")]

mod issuer_support;

use agent_auth::issuer::{AgentRecord, EventQuery, MAX_BODY_BYTES, TestAgent, TestIssuer};
use issuer_support::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Everything the issuer stores that a refused request could have changed.
#[derive(Debug, PartialEq)]
struct Snapshot {
    agents: Vec<AgentRecord>,
    verifiers: Vec<Value>,
    events: Vec<String>,
}

async fn snapshot(issuer: &TestIssuer) -> Snapshot {
    let admin = issuer.admin();
    let mut agents = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = admin
            .list_agents(Some(100), cursor.as_deref())
            .await
            .unwrap();
        agents.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut verifiers = Vec::new();
    for agent in &agents {
        for v in admin.list_verifiers(&agent.id).await.unwrap() {
            verifiers.push(serde_json::to_value(v).unwrap());
        }
    }
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = admin
            .events(&EventQuery {
                limit: Some(100),
                cursor: cursor.clone(),
                ..EventQuery::default()
            })
            .await
            .unwrap();
        events.extend(page.data.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Snapshot {
        agents,
        verifiers,
        events,
    }
}

/// An issuer with one agent (scopes `tickets:read tickets:triage`) holding one secret.
async fn issuer_with_agent() -> (TestIssuer, TestAgent) {
    let issuer = TestIssuer::start().await;
    let agent = issuer
        .provision("limits", &["tickets:read", "tickets:triage"])
        .await
        .unwrap();
    (issuer, agent)
}

/// A management call with the admin key, a raw body and an optional content type.
async fn admin_raw(
    issuer: &TestIssuer,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let key = issuer.admin_key();
    let mut request = http()
        .request(method, format!("{}{path}", issuer.url()))
        .header("authorization", basic(key.id(), key.secret().expose()))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    read(request.send().await.unwrap()).await
}

/// The three management endpoints that take a JSON body, for `agent`.
fn json_endpoints(agent: &TestAgent) -> [(Method, String); 3] {
    [
        (Method::POST, "/v1/agents".to_owned()),
        (Method::PATCH, format!("/v1/agents/{}", agent.id)),
        (Method::POST, format!("/v1/agents/{}/verifiers", agent.id)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Oversized bodies.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_bodies_are_413_on_every_endpoint_and_store_nothing() {
    let (issuer, agent) = issuer_with_agent().await;
    let before = snapshot(&issuer).await;
    let key = issuer.admin_key();
    let auth = basic(key.id(), key.secret().expose());

    // One byte over the limit, as a JSON object whose only fault is its size.
    let over = format!(
        "{{\"name\":\"a\",\"description\":\"{}\"}}",
        "d".repeat(MAX_BODY_BYTES + 1 - 29)
    );
    assert_eq!(over.len(), MAX_BODY_BYTES + 1);
    for (method, path) in json_endpoints(&agent) {
        let r = admin_raw(
            &issuer,
            method.clone(),
            &path,
            Some("application/json"),
            over.clone(),
        )
        .await;
        assert_eq!(r.api_error(413), "payload_too_large", "{method} {path}");
        // The same streamed without a length: counted while reading.
        let (status, body) = chunked_request(
            &issuer,
            &format!("{method} {path} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: application/json"),
            over.as_bytes(),
        )
        .await;
        assert_eq!(status, 413, "{method} {path} chunked: {body}");
        assert!(body.contains("payload_too_large"), "{body}");
        // 10 MB: refused, not buffered (the server answers before reading it all).
        let ten_mb = vec![b' '; 10 << 20];
        let r = admin_raw(
            &issuer,
            method.clone(),
            &path,
            Some("application/json"),
            ten_mb,
        )
        .await;
        assert_eq!(
            r.api_error(413),
            "payload_too_large",
            "{method} {path} 10 MB"
        );
    }
    // Exactly at the limit: read, then judged on its content (here: description too long).
    let at = format!(
        "{{\"name\":\"a\",\"description\":\"{}\"}}",
        "d".repeat(MAX_BODY_BYTES - 29)
    );
    assert_eq!(at.len(), MAX_BODY_BYTES);
    let r = admin_raw(
        &issuer,
        Method::POST,
        "/v1/agents",
        Some("application/json"),
        at,
    )
    .await;
    assert_eq!(r.api_error(422), "validation_error");

    // The token endpoint, streamed without a length (the Content-Length case is in
    // tests/issuer_token.rs).
    let form_over = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(MAX_BODY_BYTES)
    );
    let (status, body) = chunked_request(
        &issuer,
        "POST /token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        form_over.as_bytes(),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "invalid_request", "{body}");
    // A form exactly at the limit is read (and refused for what it says).
    let pad = MAX_BODY_BYTES - "grant_type=client_credentials&pad=".len();
    let at = format!("grant_type=client_credentials&pad={}", "a".repeat(pad));
    assert_eq!(
        token_raw(&issuer, &at, None).await.oauth_error(401),
        "invalid_client"
    );

    assert_eq!(snapshot(&issuer).await, before, "nothing stored");
}

// ---------------------------------------------------------------------------------------------
// Malformed JSON.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_is_400_invalid_json_and_stores_nothing() {
    let (issuer, agent) = issuer_with_agent().await;
    let before = snapshot(&issuer).await;
    let nested = format!(
        "{{\"name\":\"a\",\"description\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("10,000 nested arrays", nested.into_bytes()),
        ("lone surrogate escape", br#"{"name":"a\ud800"}"#.to_vec()),
        ("invalid UTF-8", b"{\"name\":\"a\xff\"}".to_vec()),
        ("overlong UTF-8", b"{\"name\":\"\xc0\xaf\"}".to_vec()),
        (
            "raw control character in a string",
            b"{\"name\":\"a\x01b\"}".to_vec(),
        ),
        ("raw newline in a string", b"{\"name\":\"a\nb\"}".to_vec()),
        ("trailing comma", br#"{"name":"a",}"#.to_vec()),
        ("single quotes", br#"{'name':'a'}"#.to_vec()),
        ("unquoted key", br#"{name:"a"}"#.to_vec()),
        ("NaN", br#"{"name":"a","expires_in":NaN}"#.to_vec()),
        ("comment", br#"{"name":"a" /* hi */}"#.to_vec()),
        ("byte order mark", b"\xef\xbb\xbf{\"name\":\"a\"}".to_vec()),
        ("trailing garbage", br#"{"name":"a"} x"#.to_vec()),
        ("two objects", br#"{"name":"a"}{"name":"b"}"#.to_vec()),
        ("unterminated string", br#"{"name":"a}"#.to_vec()),
        (
            "number out of range",
            br#"{"name":"a","expires_in":1e400}"#.to_vec(),
        ),
        ("NUL byte", b"{\"name\":\"a\"}\0".to_vec()),
    ];
    for (method, path) in json_endpoints(&agent) {
        for (what, body) in &cases {
            let r = admin_raw(
                &issuer,
                method.clone(),
                &path,
                Some("application/json"),
                body.clone(),
            )
            .await;
            assert_eq!(r.api_error(400), "invalid_json", "{what}: {method} {path}");
        }
        // Well-formed JSON of the wrong shape is 422, not 400.
        for (what, body) in [
            ("null", "null"),
            ("a list", "[{\"name\":\"a\"}]"),
            ("a string", "\"a\""),
            ("a number", "1"),
            ("expires_in a float", "{\"name\":\"a\",\"expires_in\":1.5}"),
            (
                "expires_in beyond u64",
                "{\"name\":\"a\",\"expires_in\":18446744073709551616}",
            ),
            ("scopes of numbers", "{\"name\":\"a\",\"scopes\":[1,2]}"),
        ] {
            let r = admin_raw(
                &issuer,
                method.clone(),
                &path,
                Some("application/json"),
                body,
            )
            .await;
            assert_eq!(
                r.api_error(422),
                "validation_error",
                "{what}: {method} {path}"
            );
        }
    }
    assert_eq!(snapshot(&issuer).await, before, "nothing stored");
}

#[tokio::test]
async fn duplicate_json_members_are_refused_not_resolved_by_position() {
    // A body that says two things must not be read as either: one parser's last is another's
    // first (the same rule the verifier applies to token claims).
    let (issuer, agent) = issuer_with_agent().await;
    let before = snapshot(&issuer).await;
    let r = admin_raw(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{}", agent.id),
        Some("application/json"),
        r#"{"scopes":["tickets:read","admin:all"],"scopes":["tickets:read"]}"#,
    )
    .await;
    assert!(
        r.status.is_client_error(),
        "duplicate members accepted: {} {}",
        r.status,
        r.text
    );
    assert_eq!(snapshot(&issuer).await, before, "nothing stored");
}

// ---------------------------------------------------------------------------------------------
// Content types.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_content_types_are_415_on_the_management_api() {
    let (issuer, agent) = issuer_with_agent().await;
    let before = snapshot(&issuer).await;
    let body = r#"{"name":"a","type":"secret"}"#;
    for (method, path) in json_endpoints(&agent) {
        for content_type in [
            "text/plain",
            "text/json",
            "text/html",
            "application/xml",
            "application/jsonp",
            "application/json-seq",
            "application/javascript",
            "multipart/form-data; boundary=x",
            "json",
            "application",
            "*/*",
            "",
            ";application/json",
        ] {
            let r = admin_raw(&issuer, method.clone(), &path, Some(content_type), body).await;
            assert_eq!(
                r.api_error(415),
                "unsupported_media_type",
                "{content_type:?}: {method} {path}"
            );
        }
    }
    assert_eq!(snapshot(&issuer).await, before, "nothing stored");
    // JSON media types in any case and with parameters are JSON.
    for content_type in [
        "APPLICATION/JSON",
        "Application/Json; charset=UTF-8",
        "application/json;charset=utf-8",
        "application/merge-patch+json",
    ] {
        let r = admin_raw(
            &issuer,
            Method::POST,
            "/v1/agents",
            Some(content_type),
            r#"{"name":"typed"}"#,
        )
        .await;
        assert_eq!(r.status, 201, "{content_type}: {}", r.text);
    }
}

#[tokio::test]
async fn wrong_content_types_and_malformed_forms_at_the_token_endpoint_are_oauth_errors() {
    let (issuer, agent) = issuer_with_agent().await;
    let before = snapshot(&issuer).await;
    let good = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &agent.id),
        ("client_secret", agent.secret.expose()),
    ]);
    // RFC 6749 §4.4.2 / §5.2: a request that is not form-encoded is an invalid_request (400).
    for content_type in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencodedx",
        "application/x-www-form",
        "application/octet-stream",
        "",
    ] {
        let r = read(
            http()
                .post(issuer.token_endpoint())
                .header("content-type", content_type)
                .body(good.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.oauth_error(400), "invalid_request", "{content_type:?}");
    }
    // Malformed forms: each a JSON OAuth error, never a 5xx, never a token.
    let id = agent.id.as_str();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("empty body", String::new(), 401, "invalid_client"),
        ("only separators", "&&&&".into(), 401, "invalid_client"),
        ("only equals signs", "===".into(), 401, "invalid_client"),
        (
            "key without value",
            format!("grant_type&client_id={id}&client_secret=x"),
            400,
            "invalid_request",
        ),
        (
            "bad percent escape",
            format!("grant_type=client%zzcredentials&client_id={id}&client_secret=x"),
            400,
            "unsupported_grant_type",
        ),
        (
            "truncated percent escape",
            format!("client_id={id}&client_secret=x&grant_type=client_credentials%"),
            400,
            "unsupported_grant_type",
        ),
        (
            "invalid UTF-8 client_id",
            "grant_type=client_credentials&client_id=%ff%fe&client_secret=x".into(),
            401,
            "invalid_client",
        ),
        (
            "NUL in client_id",
            format!("grant_type=client_credentials&client_id={id}%00&client_secret=x"),
            401,
            "invalid_client",
        ),
        (
            "NUL bytes raw",
            format!("grant_type=client_credentials\0&client_id={id}&client_secret=\0"),
            400,
            "unsupported_grant_type",
        ),
        (
            "control characters in the secret",
            format!("grant_type=client_credentials&client_id={id}&client_secret=%1b%5b2J"),
            401,
            "invalid_client",
        ),
        (
            "newline in grant_type",
            format!("grant_type=client_credentials%0a&client_id={id}&client_secret=x"),
            400,
            "unsupported_grant_type",
        ),
        (
            "10,000 unknown parameters",
            format!(
                "grant_type=client_credentials&client_id={id}&client_secret=x{}",
                "&p=1".repeat(10_000)
            ),
            401,
            "invalid_client",
        ),
        (
            "JSON as the form",
            format!("{{\"grant_type\":\"client_credentials\",\"client_id\":\"{id}\"}}"),
            401,
            "invalid_client",
        ),
        (
            "resource with a fragment",
            format!("{good}&resource=https%3A%2F%2Fapi.example.com%2F%23f"),
            400,
            "invalid_target",
        ),
        (
            "resource relative",
            format!("{good}&resource=%2Ftickets"),
            400,
            "invalid_target",
        ),
        (
            "resource with a newline",
            format!("{good}&resource=https%3A%2F%2Fapi.example.com%2F%0a"),
            400,
            "invalid_target",
        ),
        (
            "resource 4 KB",
            format!(
                "{good}&resource=https%3A%2F%2Fa.example%2F{}",
                "a".repeat(4096)
            ),
            400,
            "invalid_target",
        ),
    ];
    for (what, body, status, code) in cases {
        let r = token_raw(&issuer, &body, None).await;
        assert_eq!(r.oauth_error(status), code, "{what}");
    }
    // Malformed HTTP Basic client authentication.
    for (what, authorization) in [
        ("not base64", "Basic !!!".to_owned()),
        ("no colon", format!("Basic {}", b64_standard(id))),
        (
            "invalid UTF-8 user",
            format!("Basic {}", b64_standard_bytes(b"\xff\xfe:x")),
        ),
        ("bad percent escape in the user", basic("agt_%zz", "x")),
        ("empty", "Basic".to_owned()),
    ] {
        let r = token_raw(
            &issuer,
            "grant_type=client_credentials",
            Some(&authorization),
        )
        .await;
        assert_eq!(r.oauth_error(401), "invalid_client", "{what}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"agent-auth\""),
            "{what}"
        );
    }
    assert_eq!(
        snapshot(&issuer).await,
        before,
        "nothing stored, no token counted"
    );
    // Form media types in any case and with a charset are forms.
    for content_type in [
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "application/x-www-form-urlencoded; charset=UTF-8",
    ] {
        let r = read(
            http()
                .post(issuer.token_endpoint())
                .header("content-type", content_type)
                .body(good.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{content_type}: {}", r.text);
    }
    assert_eq!(issuer.admin().get_agent(id).await.unwrap().token_count, 2);
}

fn b64_standard(text: &str) -> String {
    b64_standard_bytes(text.as_bytes())
}

fn b64_standard_bytes(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Unicode and control characters in names and other text fields.
// ---------------------------------------------------------------------------------------------

/// Control characters (Unicode category Cc): C0, DEL and C1, including terminal escapes.
const CONTROLS: &[char] = &[
    '\u{0}', '\u{7}', '\u{8}', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1b}', '\u{1f}', '\u{7f}',
    '\u{80}', '\u{85}', '\u{9b}', '\u{9f}',
];

#[tokio::test]
async fn control_characters_are_refused_in_every_text_field() {
    let (issuer, agent) = issuer_with_agent().await;
    let before = snapshot(&issuer).await;
    let fields = [
        "name",
        "description",
        "model",
        "provider",
        "version",
        "external_id",
    ];
    for c in CONTROLS {
        let value = format!("ok{c}ok");
        // Every control character in the name; three representatives in every other field.
        let fields: &[&str] = if ['\u{0}', '\u{1b}', '\u{85}'].contains(c) {
            &fields
        } else {
            &fields[..1]
        };
        for &field in fields {
            let mut body = json!({ "name": "a" });
            body[field] = json!(value);
            let r = admin(&issuer, Method::POST, "/v1/agents", Some(body.clone())).await;
            assert_eq!(
                r.api_error(422),
                "validation_error",
                "create {field} with {c:?}"
            );
            let r = admin(
                &issuer,
                Method::PATCH,
                &format!("/v1/agents/{}", agent.id),
                Some(json!({ field: value })),
            )
            .await;
            assert_eq!(
                r.api_error(422),
                "validation_error",
                "patch {field} with {c:?}"
            );
        }
        let r = admin(
            &issuer,
            Method::POST,
            &format!("/v1/agents/{}/verifiers", agent.id),
            Some(json!({ "type": "secret", "name": value })),
        )
        .await;
        assert_eq!(
            r.api_error(422),
            "validation_error",
            "verifier name with {c:?}"
        );
        let r = admin(
            &issuer,
            Method::PATCH,
            &format!("/v1/agents/{}", agent.id),
            Some(json!({ "status": "suspended", "status_reason": value })),
        )
        .await;
        assert_eq!(
            r.api_error(422),
            "validation_error",
            "status_reason with {c:?}"
        );
        // Error messages name the field, never echo the value.
        assert!(!r.text.contains(&value), "{}", r.text);
    }
    assert_eq!(snapshot(&issuer).await, before, "nothing stored");
}

#[tokio::test]
async fn unicode_text_is_stored_exactly_and_bounded_in_characters() {
    let issuer = TestIssuer::start().await;
    for name in [
        "Agent 🤖",
        "票务代理",
        "e\u{301}\u{301}\u{301}", // combining marks
        "\u{202e}txt.exe",        // bidi override: a format character (Cf), not a control
        "\u{feff}zero-width no-break",
        "\u{10ffff}",
        "a\u{2028}b", // line separator (Zl)
    ] {
        let r = admin(
            &issuer,
            Method::POST,
            "/v1/agents",
            Some(json!({ "name": name })),
        )
        .await;
        assert_eq!(r.status, 201, "{name:?}: {}", r.text);
        let id = r.json()["data"]["id"].as_str().unwrap().to_owned();
        assert_eq!(issuer.admin().get_agent(&id).await.unwrap().name, name);
    }
    // The bound counts characters, not bytes: 200 four-byte characters fit, 201 do not.
    let r = admin(
        &issuer,
        Method::POST,
        "/v1/agents",
        Some(json!({ "name": "🤖".repeat(200) })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let before = snapshot(&issuer).await;
    let r = admin(
        &issuer,
        Method::POST,
        "/v1/agents",
        Some(json!({ "name": "🤖".repeat(201) })),
    )
    .await;
    assert_eq!(r.api_error(422), "validation_error");
    // Whitespace-only names in any script are blank.
    for blank in ["\u{3000}", "\u{a0}\u{2003}", " \u{2029} "] {
        let r = admin(
            &issuer,
            Method::POST,
            "/v1/agents",
            Some(json!({ "name": blank })),
        )
        .await;
        assert_eq!(r.api_error(422), "validation_error", "{blank:?}");
    }
    assert_eq!(snapshot(&issuer).await, before, "nothing stored");
}

// ---------------------------------------------------------------------------------------------
// Scope tokens: RFC 6749 §3.3, scope-token = 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E.
// ---------------------------------------------------------------------------------------------

fn is_nqchar(c: char) -> bool {
    matches!(c, '\u{21}' | '\u{23}'..='\u{5b}' | '\u{5d}'..='\u{7e}')
}

/// Every ASCII character, and some that are not.
fn scope_characters() -> Vec<char> {
    let mut chars: Vec<char> = (0u8..=0x7f).map(char::from).collect();
    chars.extend(['\u{80}', '\u{a0}', 'é', 'ı', '\u{2028}', '\u{ff1a}', '🤖']);
    chars
}

#[tokio::test]
async fn every_character_of_a_stored_scope_is_checked_against_nqchar() {
    let (issuer, agent) = issuer_with_agent().await;
    let path = format!("/v1/agents/{}", agent.id);
    let events_before = snapshot(&issuer).await.events.len();
    let (mut accepted, mut created) = (0, 0);
    for c in scope_characters() {
        let scope = format!("a{c}b");
        let r = admin(
            &issuer,
            Method::PATCH,
            &path,
            Some(json!({ "scopes": [scope] })),
        )
        .await;
        if is_nqchar(c) {
            assert_eq!(r.status, 200, "{c:?}: {}", r.text);
            assert_eq!(r.json()["data"]["scopes"], json!([scope]), "{c:?}");
            accepted += 1;
        } else {
            assert_eq!(r.api_error(422), "validation_error", "{c:?}");
        }
        // On create too (every refused character, and the NQCHAR bounds), nothing stored
        // when refused.
        if !is_nqchar(c) || ['!', '#', '[', ']', '~'].contains(&c) {
            let r = admin(
                &issuer,
                Method::POST,
                "/v1/agents",
                Some(json!({ "name": "s", "scopes": [scope] })),
            )
            .await;
            if is_nqchar(c) {
                assert_eq!(r.status, 201, "{c:?}: {}", r.text);
                created += 1;
            } else {
                assert_eq!(r.api_error(422), "validation_error", "create {c:?}");
            }
        }
    }
    // 0x21..=0x7e less '"' and '\\'.
    assert_eq!(
        accepted,
        0x7e - 0x21 + 1 - 2,
        "every NQCHAR and nothing else"
    );
    assert_eq!(created, 5);
    let after = snapshot(&issuer).await;
    assert_eq!(
        after.events.len(),
        events_before + accepted + created,
        "one event per accepted change only"
    );
    // The refused ones left the last accepted scope in place.
    assert_eq!(
        issuer.admin().get_agent(&agent.id).await.unwrap().scopes,
        vec!["a~b"]
    );
}

#[tokio::test]
async fn requested_scopes_outside_nqchar_are_invalid_scope_and_issue_nothing() {
    let (issuer, agent) = issuer_with_agent().await;
    let before = snapshot(&issuer).await;
    let (id, secret) = (agent.id.as_str(), agent.secret.expose());
    for c in scope_characters() {
        if is_nqchar(c) || c == ' ' {
            continue;
        }
        let scope = format!("tickets:read{c}tickets:triage");
        let r = token_post(&issuer, id, secret, &[("scope", &scope)]).await;
        assert_eq!(r.oauth_error(400), "invalid_scope", "{c:?}");
        assert!(!r.text.contains(secret));
    }
    for (what, scope) in [
        (
            "257 scope tokens",
            (0..257)
                .map(|i| format!("s{i}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("a 10 KB scope token", "s".repeat(10 * 1024)),
        ("a scope not granted", "tickets:admin".to_owned()),
        ("a prefix of a granted scope", "tickets:rea".to_owned()),
        ("a granted scope in upper case", "TICKETS:READ".to_owned()),
        ("only spaces", "   ".to_owned()),
    ] {
        let r = token_post(&issuer, id, secret, &[("scope", &scope)]).await;
        assert_eq!(r.oauth_error(400), "invalid_scope", "{what}");
    }
    assert_eq!(
        snapshot(&issuer).await,
        before,
        "no token issued, nothing stored"
    );
    assert_eq!(issuer.admin().get_agent(id).await.unwrap().token_count, 0);
    // The space-separated list of granted scopes, in any order and repeated, is fine.
    let r = token_post(
        &issuer,
        id,
        secret,
        &[("scope", "tickets:triage  tickets:read tickets:triage")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["scope"], "tickets:triage tickets:read");
}
