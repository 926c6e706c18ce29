//! Management API of the bundled issuer, over real HTTP on 127.0.0.1 (port 0).
#![cfg(feature = "issuer")]

mod issuer_support;

use std::collections::HashSet;
use std::time::Duration;

use agent_auth::issuer::{
    AgentStatus, CreateAgent, EventQuery, EventType, TestIssuer, UpdateAgent,
};
use issuer_support::*;
use reqwest::Method;
use serde_json::{Value, json};

fn is_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

async fn create(issuer: &TestIssuer, body: Value) -> Reply {
    admin(issuer, Method::POST, "/v1/agents", Some(body)).await
}

#[tokio::test]
async fn every_management_endpoint_requires_the_admin_key() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("a", &["x"]).await.unwrap();
    let key = issuer.admin_key();
    let paths = [
        (Method::GET, "/v1/agents".to_owned()),
        (Method::POST, "/v1/agents".to_owned()),
        (Method::GET, format!("/v1/agents/{}", agent.id)),
        (Method::PATCH, format!("/v1/agents/{}", agent.id)),
        (Method::DELETE, format!("/v1/agents/{}", agent.id)),
        (Method::GET, format!("/v1/agents/{}/verifiers", agent.id)),
        (Method::POST, format!("/v1/agents/{}/verifiers", agent.id)),
        (
            Method::DELETE,
            format!("/v1/agents/{}/verifiers/{}", agent.id, agent.verifier_id),
        ),
        (Method::GET, "/v1/events".to_owned()),
    ];
    let wrong_secret = basic(key.id(), "not-the-secret");
    let wrong_id = basic("key_someoneelse", key.secret().expose());
    let no_colon = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.id())
    );
    let bearer = format!("Bearer {}", key.secret().expose());
    let auths: [Option<&str>; 6] = [
        None,
        Some(&wrong_secret),
        Some(&wrong_id),
        Some(&no_colon),
        Some(&bearer),
        Some("Basic !!!notbase64"),
    ];
    for (method, path) in &paths {
        for auth in auths {
            // One failure per budget interval: this test checks each refusal, not the
            // throttle (`issuer_floods::failed_admin_logins_are_throttled_per_client_address`).
            issuer.advance_clock(std::time::Duration::from_secs(6));
            let r = with_auth(&issuer, method.clone(), path, auth).await;
            assert_eq!(r.api_error(401), "unauthorized", "{method} {path} {auth:?}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Basic realm=\"agent-auth admin\"")
            );
        }
    }
    // Nothing was changed by the refused calls.
    assert_eq!(
        issuer
            .admin()
            .list_verifiers(&agent.id)
            .await
            .unwrap()
            .len(),
        1
    );
    // The scheme name is case-insensitive; the right key works.
    let lower = basic(key.id(), key.secret().expose()).replacen("Basic", "basic", 1);
    let r = with_auth(&issuer, Method::GET, "/v1/agents", Some(&lower)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn create_agent_returns_201_with_every_field() {
    let issuer = TestIssuer::start().await;
    let before = issuer.now_ms();
    let r = create(
        &issuer,
        json!({
            "name": "Support Triage Agent",
            "description": "Triages inbound support tickets",
            "model": "claude-sonnet-4-5",
            "provider": "anthropic",
            "version": "1.2.0",
            "scopes": ["tickets:read", "tickets:triage"],
        }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    assert_eq!(v["already_existed"], false);
    let a = &v["data"];
    let fields: HashSet<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: HashSet<&str> = [
        "id",
        "name",
        "description",
        "model",
        "provider",
        "version",
        "status",
        "status_reason",
        "scopes",
        "resources",
        "external_id",
        "created_at",
        "updated_at",
        "expires_at",
        "token_count",
        "last_activity_at",
    ]
    .into();
    assert_eq!(fields, expected);
    assert!(is_id(a["id"].as_str().unwrap(), "agt_"), "{a}");
    assert_eq!(a["name"], "Support Triage Agent");
    assert_eq!(a["description"], "Triages inbound support tickets");
    assert_eq!(a["model"], "claude-sonnet-4-5");
    assert_eq!(a["provider"], "anthropic");
    assert_eq!(a["version"], "1.2.0");
    assert_eq!(a["status"], "active");
    assert_eq!(a["status_reason"], Value::Null);
    assert_eq!(a["scopes"], json!(["tickets:read", "tickets:triage"]));
    assert_eq!(a["external_id"], Value::Null);
    assert_eq!(a["expires_at"], Value::Null);
    assert_eq!(a["token_count"], 0);
    assert_eq!(a["last_activity_at"], Value::Null);
    let created = a["created_at"].as_i64().unwrap();
    assert!(
        created >= before && created <= issuer.now_ms(),
        "ms since epoch"
    );
    assert_eq!(a["updated_at"], a["created_at"]);

    // Only `name` is required; GET returns the same object.
    let minimal = create(&issuer, json!({"name": "m"})).await;
    assert_eq!(minimal.status, 201);
    assert_eq!(minimal.json()["data"]["scopes"], json!([]));
    let id = a["id"].as_str().unwrap();
    let got = admin(&issuer, Method::GET, &format!("/v1/agents/{id}"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), json!({"data": a}));
}

#[tokio::test]
async fn create_agent_validates_and_bounds_its_input() {
    let issuer = TestIssuer::start().await;
    let cases = [
        (json!({}), "missing name"),
        (json!({"name": ""}), "empty name"),
        (json!({"name": "   "}), "blank name"),
        (json!({"name": "x".repeat(201)}), "long name"),
        (json!({"name": "a\u{0}b"}), "control char"),
        (
            json!({"name": "a", "description": "d".repeat(2001)}),
            "long description",
        ),
        (json!({"name": "a", "model": "m".repeat(201)}), "long model"),
        (
            json!({"name": "a", "external_id": "e".repeat(257)}),
            "long external id",
        ),
        (
            json!({"name": "a", "scopes": ["has space"]}),
            "space in scope",
        ),
        (
            json!({"name": "a", "scopes": ["quo\"te"]}),
            "quote in scope",
        ),
        (
            json!({"name": "a", "scopes": ["back\\slash"]}),
            "backslash in scope",
        ),
        (json!({"name": "a", "scopes": ["é"]}), "non-ASCII scope"),
        (json!({"name": "a", "scopes": [""]}), "empty scope"),
        (
            json!({"name": "a", "scopes": ["s".repeat(257)]}),
            "long scope",
        ),
        (
            json!({"name": "a", "scopes": (0..257).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
            "257 scopes",
        ),
        (
            json!({"name": "a", "scopes": "tickets:read"}),
            "scopes not a list",
        ),
        (json!({"name": "a", "expires_in": 0}), "zero expiry"),
        (json!({"name": "a", "expires_in": -5}), "negative expiry"),
        (
            json!({"name": "a", "expires_in": 400_000_000u64}),
            "expiry > 10 years",
        ),
        (json!({"name": "a", "scope": ["x"]}), "unknown field"),
        (json!({"name": 5}), "wrong type"),
        (json!(["name"]), "not an object"),
    ];
    for (body, what) in cases {
        let r = create(&issuer, body).await;
        assert_eq!(r.api_error(422), "validation_error", "{what}");
    }
    // 256 scopes is the limit, inclusive.
    let ok = create(
        &issuer,
        json!({"name": "a", "scopes": (0..256).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.json()["data"]["scopes"].as_array().unwrap().len(), 256);
    // None of the refused bodies created anything.
    assert_eq!(
        issuer
            .admin()
            .list_agents(None, None)
            .await
            .unwrap()
            .data
            .len(),
        1
    );
}

#[tokio::test]
async fn malformed_oversized_and_non_json_bodies_get_json_errors() {
    let issuer = TestIssuer::start().await;
    let key = issuer.admin_key();
    let auth = basic(key.id(), key.secret().expose());
    let send = |body: String, ctype: Option<&'static str>| {
        let mut req = http()
            .post(format!("{}/v1/agents", issuer.url()))
            .header("authorization", auth.clone())
            .body(body);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        async move { read(req.send().await.unwrap()).await }
    };
    let r = send("{\"name\": ".into(), Some("application/json")).await;
    assert_eq!(r.api_error(400), "invalid_json");
    let r = send("not json at all".into(), Some("application/json")).await;
    assert_eq!(r.api_error(400), "invalid_json");
    let r = send(String::new(), Some("application/json")).await;
    assert_eq!(r.api_error(400), "invalid_json");
    let r = send("{\"name\":\"a\"}".into(), None).await;
    assert_eq!(r.api_error(415), "unsupported_media_type");
    let r = send("name=a".into(), Some("application/x-www-form-urlencoded")).await;
    assert_eq!(r.api_error(415), "unsupported_media_type");
    // Charset parameter is fine.
    let r = send(
        "{\"name\":\"a\"}".into(),
        Some("application/json; charset=utf-8"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // 64 KiB limit: just over is refused with a JSON 413, also when streamed without length.
    let big = format!(
        "{{\"name\":\"a\",\"description\":\"{}\"}}",
        "d".repeat(70 * 1024)
    );
    let r = send(big.clone(), Some("application/json")).await;
    assert_eq!(r.api_error(413), "payload_too_large");
    let (status, body) = chunked_request(
        &issuer,
        &format!(
            "POST /v1/agents HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: application/json"
        ),
        big.as_bytes(),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    // PATCH and verifier creation go through the same extractor.
    let agent = issuer.provision("p", &[]).await.unwrap();
    let r = admin(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{}", agent.id),
        None,
    )
    .await;
    assert_eq!(r.api_error(415), "unsupported_media_type");
    let r = read(
        http()
            .post(format!("{}/v1/agents/{}/verifiers", issuer.url(), agent.id))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.api_error(400), "invalid_json");
}

#[tokio::test]
async fn unknown_agents_routes_and_methods_get_json_errors() {
    let issuer = TestIssuer::start().await;
    let missing = "agt_00000000000000000000000000000000";
    for (method, path) in [
        (Method::GET, format!("/v1/agents/{missing}")),
        (Method::DELETE, format!("/v1/agents/{missing}")),
        (Method::GET, format!("/v1/agents/{missing}/verifiers")),
        (Method::GET, "/v1/agents/not-an-id".to_owned()),
        (Method::GET, "/v1/nothing-here".to_owned()),
        (Method::GET, "/nothing".to_owned()),
    ] {
        let r = admin(&issuer, method.clone(), &path, None).await;
        assert_eq!(r.api_error(404), "not_found", "{method} {path}");
    }
    let r = admin(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{missing}"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(r.api_error(404), "not_found");
    let r = admin(
        &issuer,
        Method::POST,
        &format!("/v1/agents/{missing}/verifiers"),
        Some(json!({"type": "secret"})),
    )
    .await;
    assert_eq!(r.api_error(404), "not_found");
    let r = admin(&issuer, Method::PUT, "/v1/agents", None).await;
    assert_eq!(r.api_error(405), "method_not_allowed");
    let r = with_auth(&issuer, Method::GET, "/token", None).await;
    assert_eq!(r.api_error(405), "method_not_allowed");
}

#[tokio::test]
async fn list_agents_paginates_newest_first_without_gaps_or_repeats() {
    let issuer = TestIssuer::start().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let a = issuer
            .admin()
            .create_agent(&CreateAgent::new(format!("agent {i}")))
            .await
            .unwrap();
        ids.push(a.data.id);
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = issuer
            .admin()
            .list_agents(Some(3), cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.data.len() <= 3);
        seen.extend(page.data.into_iter().map(|a| a.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    // Exactly a full last page: no dangling cursor.
    let page = issuer.admin().list_agents(Some(7), None).await.unwrap();
    assert_eq!(page.data.len(), 7);
    assert_eq!(page.next_cursor, None);
    // Raw shape.
    let raw = admin(&issuer, Method::GET, "/v1/agents?limit=2", None).await;
    let v = raw.json();
    assert_eq!(v.as_object().unwrap().len(), 2);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert!(v["next_cursor"].is_string());
    // A deleted agent does not break a cursor pointing past it.
    issuer.admin().delete_agent(&ids[2]).await.unwrap();
    let rest = issuer
        .admin()
        .list_agents(Some(10), v["next_cursor"].as_str())
        .await
        .unwrap();
    let rest: Vec<String> = rest.data.into_iter().map(|a| a.id).collect();
    assert_eq!(rest, ids[3..].to_vec());
    // Page size bounds and bad cursors.
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=%21%21",
        "cursor=",
    ] {
        let r = admin(&issuer, Method::GET, &format!("/v1/agents?{q}"), None).await;
        assert_eq!(r.api_error(400), "invalid_request", "{q}");
    }
    let r = admin(&issuer, Method::GET, "/v1/agents?limit=100", None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn patch_updates_fields_and_clears_nullable_ones() {
    let issuer = TestIssuer::start().await;
    let a = issuer
        .admin()
        .create_agent(
            &CreateAgent::new("old")
                .description("desc")
                .model("m", "p", "1")
                .scopes(["a"])
                .external_id("ext-1"),
        )
        .await
        .unwrap()
        .data;
    issuer.advance_clock(Duration::from_secs(2));
    let r = admin(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{}", a.id),
        Some(json!({
            "name": "new",
            "description": null,
            "model": "m2",
            "scopes": ["a", "b"],
            "external_id": "ext-2",
            "expires_in": 60,
        })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = &r.json()["data"];
    assert_eq!(u["name"], "new");
    assert_eq!(u["description"], Value::Null);
    assert_eq!(u["model"], "m2");
    assert_eq!(u["provider"], "p");
    assert_eq!(u["scopes"], json!(["a", "b"]));
    assert_eq!(u["external_id"], "ext-2");
    assert_eq!(u["created_at"], a.created_at);
    let updated = u["updated_at"].as_i64().unwrap();
    assert!(
        updated >= a.created_at + 2000,
        "updated_at moves with the clock"
    );
    assert_eq!(u["expires_at"].as_i64().unwrap(), updated + 60_000);
    // Clearing the expiry.
    let cleared = issuer
        .admin()
        .update_agent(
            &a.id,
            &UpdateAgent {
                expires_in: Some(None),
                ..UpdateAgent::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.expires_at, None);
    // The old external id is free again; the new one is taken.
    let again = issuer
        .admin()
        .create_agent(&CreateAgent::new("x").external_id("ext-1"))
        .await
        .unwrap();
    assert!(!again.already_existed);
    let r = admin(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{}", again.data.id),
        Some(json!({"external_id": "ext-2"})),
    )
    .await;
    assert_eq!(r.api_error(409), "conflict");
    // Field validation applies to PATCH too.
    for body in [
        json!({"name": ""}),
        json!({"scopes": ["bad scope"]}),
        json!({"status": "deleted"}),
        json!({"status": "suspended"}),
        json!({"status": "active", "status_reason": "why"}),
        json!({"status_reason": "not suspended"}),
        json!({"expires_in": 0}),
        json!({"unknown": 1}),
    ] {
        let r = admin(
            &issuer,
            Method::PATCH,
            &format!("/v1/agents/{}", a.id),
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.api_error(422), "validation_error", "{body}");
    }
}

#[tokio::test]
async fn suspend_requires_a_reason_and_reactivate_clears_it() {
    let issuer = TestIssuer::start().await;
    let a = issuer.provision("s", &["x"]).await.unwrap();
    let r = admin(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{}", a.id),
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(r.api_error(422), "validation_error");
    assert!(r.text.contains("status_reason"));
    let s = issuer
        .admin()
        .suspend(&a.id, "Anomalous ticket volume")
        .await
        .unwrap();
    assert_eq!(s.status, AgentStatus::Suspended);
    assert_eq!(s.status_reason.as_deref(), Some("Anomalous ticket volume"));
    // While suspended the reason alone can be updated.
    let r = admin(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{}", a.id),
        Some(json!({"status_reason": "still investigating"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"]["status_reason"], "still investigating");
    let back = issuer.admin().reactivate(&a.id).await.unwrap();
    assert_eq!(back.status, AgentStatus::Active);
    assert_eq!(back.status_reason, None);
}

#[tokio::test]
async fn delete_agent_removes_it_and_its_verifiers() {
    let issuer = TestIssuer::start().await;
    let a = issuer.provision("d", &[]).await.unwrap();
    let r = admin(
        &issuer,
        Method::DELETE,
        &format!("/v1/agents/{}", a.id),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
    for (m, p) in [
        (Method::GET, format!("/v1/agents/{}", a.id)),
        (Method::DELETE, format!("/v1/agents/{}", a.id)),
        (Method::GET, format!("/v1/agents/{}/verifiers", a.id)),
        (
            Method::DELETE,
            format!("/v1/agents/{}/verifiers/{}", a.id, a.verifier_id),
        ),
    ] {
        let r = admin(&issuer, m, &p, None).await;
        assert_eq!(r.api_error(404), "not_found", "{p}");
    }
    assert!(
        issuer
            .admin()
            .list_agents(None, None)
            .await
            .unwrap()
            .data
            .is_empty()
    );
}

#[tokio::test]
async fn secret_verifiers_are_shown_once_and_bounded_to_twenty() {
    let issuer = TestIssuer::start().await;
    let a = issuer
        .admin()
        .create_agent(&CreateAgent::new("v"))
        .await
        .unwrap()
        .data;
    let path = format!("/v1/agents/{}/verifiers", a.id);
    let r = admin(
        &issuer,
        Method::POST,
        &path,
        Some(json!({"type": "secret", "name": "primary"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json()["data"].clone();
    let fields: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: HashSet<&str> = [
        "id",
        "agent_id",
        "type",
        "status",
        "name",
        "credential",
        "usage_count",
        "last_used_at",
        "created_at",
        "secret",
    ]
    .into();
    assert_eq!(fields, expected);
    assert!(is_id(v["id"].as_str().unwrap(), "v_"));
    assert_eq!(v["agent_id"], a.id.as_str());
    assert_eq!(v["type"], "secret");
    assert_eq!(v["status"], "active");
    assert_eq!(v["name"], "primary");
    assert_eq!(v["credential"], json!({"algorithm": "sha256"}));
    assert_eq!(v["usage_count"], 0);
    assert_eq!(v["last_used_at"], Value::Null);
    let secret = v["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 42);
    assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));

    // Listing never shows the secret again.
    let list = admin(&issuer, Method::GET, &path, None).await;
    assert_eq!(list.status, 200);
    assert!(!list.text.contains(secret));
    let lv = list.json();
    assert_eq!(lv["next_cursor"], Value::Null);
    let items = lv["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0].get("secret").is_none());
    assert_eq!(items[0]["id"], v["id"]);

    // Secrets are random: 19 more, all distinct; the 21st is refused.
    let mut secrets = HashSet::from([secret.to_owned()]);
    for _ in 0..19 {
        let s = issuer.admin().add_secret(&a.id, None).await.unwrap();
        assert_eq!(s.verifier.name, None);
        secrets.insert(s.secret.expose().to_owned());
    }
    assert_eq!(secrets.len(), 20);
    let r = admin(
        &issuer,
        Method::POST,
        &path,
        Some(json!({"type": "secret"})),
    )
    .await;
    assert_eq!(r.api_error(409), "limit_exceeded");
    // Removing one makes room again.
    let vid = v["id"].as_str().unwrap();
    let r = admin(&issuer, Method::DELETE, &format!("{path}/{vid}"), None).await;
    assert_eq!(r.status, 204);
    let r = admin(&issuer, Method::DELETE, &format!("{path}/{vid}"), None).await;
    assert_eq!(r.api_error(404), "not_found");
    assert!(issuer.admin().add_secret(&a.id, None).await.is_ok());
    // Unsupported verifier types and bad bodies.
    for body in [
        json!({"type": "wallet", "address": "x"}),
        json!({"type": "wallet"}),
        json!({"name": "no type"}),
        json!({"type": "secret", "name": ""}),
        json!({"type": "secret", "name": "n".repeat(201)}),
    ] {
        let r = admin(&issuer, Method::DELETE, &format!("{path}/v_nope"), None).await;
        assert_eq!(r.api_error(404), "not_found");
        let r = admin(&issuer, Method::POST, &path, Some(body.clone())).await;
        assert_eq!(r.api_error(422), "validation_error", "{body}");
    }
}

#[tokio::test]
async fn create_with_existing_external_id_is_idempotent() {
    let issuer = TestIssuer::start().await;
    let body = json!({"name": "agent_my-workflow_agent_abc123", "external_id": "wf:abc123", "scopes": ["a"]});
    let first = create(&issuer, body.clone()).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.json()["already_existed"], false);
    let second = create(&issuer, body).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["already_existed"], true);
    assert_eq!(second.json()["data"], first.json()["data"]);
    // Different fields on the replay do not change the stored agent.
    let third = create(
        &issuer,
        json!({"name": "other", "external_id": "wf:abc123"}),
    )
    .await;
    assert_eq!(third.status, 200);
    assert_eq!(
        third.json()["data"]["name"],
        "agent_my-workflow_agent_abc123"
    );
    assert_eq!(
        issuer
            .admin()
            .list_agents(None, None)
            .await
            .unwrap()
            .data
            .len(),
        1
    );
    let created = issuer
        .admin()
        .events(&EventQuery {
            kind: Some(EventType::AgentCreated),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(created.data.len(), 1, "a replay writes no event");
    // Another external id is another agent.
    let other = create(&issuer, json!({"name": "b", "external_id": "wf:other"})).await;
    assert_eq!(other.status, 201);
    assert_ne!(other.json()["data"]["id"], first.json()["data"]["id"]);
}

#[tokio::test]
async fn every_mutation_writes_its_event_newest_first() {
    let issuer = TestIssuer::start().await;
    let api = issuer.admin();
    let a = api
        .create_agent(&CreateAgent::new("e").scopes(["x"]))
        .await
        .unwrap()
        .data;
    let s1 = api.add_secret(&a.id, Some("one")).await.unwrap();
    api.update_agent(
        &a.id,
        &UpdateAgent {
            name: Some("renamed".into()),
            ..UpdateAgent::default()
        },
    )
    .await
    .unwrap();
    // A no-op patch changes nothing and writes nothing.
    api.update_agent(
        &a.id,
        &UpdateAgent {
            name: Some("renamed".into()),
            ..UpdateAgent::default()
        },
    )
    .await
    .unwrap();
    api.suspend(&a.id, "why").await.unwrap();
    api.delete_verifier(&a.id, &s1.verifier.id).await.unwrap();
    let b = api
        .create_agent(&CreateAgent::new("other"))
        .await
        .unwrap()
        .data;
    api.delete_agent(&a.id).await.unwrap();

    let all = api.events(&EventQuery::default()).await.unwrap();
    let kinds: Vec<&str> = all.data.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "agent.deleted",
            "agent.created",
            "agent.verifier.removed",
            "agent.updated",
            "agent.updated",
            "agent.verifier.added",
            "agent.created",
        ]
    );
    assert_eq!(all.next_cursor, None);
    for e in &all.data {
        assert!(is_id(&e.id, "evt_"), "{}", e.id);
        assert_eq!(e.actor.kind, agent_auth::issuer::ActorKind::Admin);
        assert_eq!(e.actor.id, issuer.admin_key().id());
    }
    assert_eq!(all.data[1].agent_id.as_deref(), Some(b.id.as_str()));
    assert_eq!(all.data[0].data["id"], a.id.as_str());
    assert_eq!(all.data[2].data["id"], s1.verifier.id.as_str());
    assert_eq!(all.data[3].changed, ["status", "status_reason"]);
    assert_eq!(all.data[3].data["status"], "suspended");
    assert_eq!(all.data[4].changed, ["name"]);
    assert_eq!(all.data[4].data["name"], "renamed");
    let times: Vec<i64> = all.data.iter().map(|e| e.created_at).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Raw JSON never contains a secret.
    let raw = admin(&issuer, Method::GET, "/v1/events", None).await;
    assert!(!raw.text.contains(s1.secret.expose()));
    let raw = raw.json();
    assert_eq!(raw["data"][0]["type"], "agent.deleted");

    // Filters.
    let by_agent = api
        .events(&EventQuery {
            agent_id: Some(a.id.clone()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_agent.data.len(), 6);
    assert!(
        by_agent
            .data
            .iter()
            .all(|e| e.agent_id.as_deref() == Some(a.id.as_str()))
    );
    let r = admin(
        &issuer,
        Method::GET,
        "/v1/events?type=agent.verifier.added",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let added = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["data"]["id"], s1.verifier.id.as_str());
    let r = admin(&issuer, Method::GET, "/v1/events?type=agent.exploded", None).await;
    assert_eq!(r.api_error(400), "invalid_request");

    // Pagination: 7 events in pages of 2, same order as the single page.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = api
            .events(&EventQuery {
                limit: Some(2),
                cursor,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        seen.extend(page.data.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let all_ids: Vec<String> = all.data.into_iter().map(|e| e.id).collect();
    assert_eq!(seen, all_ids);
}
