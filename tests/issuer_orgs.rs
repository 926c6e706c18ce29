//! Organizations, memberships and the audit log of the bundled issuer, over real HTTP on
//! 127.0.0.1 (port 0).
#![cfg(feature = "issuer")]

mod issuer_support;

use agent_auth::issuer::{CreateMembership, EventQuery, EventType, TestIssuer};
use issuer_support::*;
use reqwest::Method;
use serde_json::json;

fn member(id: &str) -> CreateMembership {
    CreateMembership {
        member_id: id.to_owned(),
        scopes: vec!["tickets:triage".into()],
        user_title: Some("Triage bot".into()),
    }
}

#[tokio::test]
async fn organization_and_membership_lifecycle() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &["tickets:read"]).await.unwrap();

    let r = admin(
        &issuer,
        Method::POST,
        "/v1/organizations",
        Some(json!({"name": "Acme"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let org = r.json()["data"].clone();
    let org_id = org["id"].as_str().unwrap().to_owned();
    let rest = org_id.strip_prefix("org_").unwrap();
    assert_eq!(rest.len(), 25);
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    );
    assert_eq!(org["name"], "Acme");

    let r = admin(
        &issuer,
        Method::POST,
        &format!("/v1/organizations/{org_id}/members"),
        Some(json!({"member_id": agent.id, "scopes": ["tickets:triage"], "user_title": "Triage bot"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let m = r.json()["data"].clone();
    assert_eq!(m["member_type"], "agent");
    assert_eq!(m["member_id"], agent.id.as_str());
    assert_eq!(m["organization_id"], org_id.as_str());
    assert_eq!(m["scopes"], json!(["tickets:triage"]));
    assert_eq!(m["user_title"], "Triage bot");

    // Duplicate → 409.
    let err = issuer
        .admin()
        .add_member(&org_id, &member(&agent.id))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));

    // Listed.
    let page = issuer
        .admin()
        .list_members(&org_id, None, None)
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.data[0].member_id, agent.id);

    // Tokens carry no org claims.
    let token = issuer.token(&agent, None, None).await.unwrap();
    let (_, claims) = decode_jwt(token.access_token.expose());
    let keys: Vec<&String> = claims.as_object().unwrap().keys().collect();
    assert!(keys.iter().all(|k| !k.contains("org")), "{claims}");

    // Removed → 204, then 404.
    let path = format!("/v1/organizations/{org_id}/members/{}", agent.id);
    assert_eq!(
        admin(&issuer, Method::DELETE, &path, None).await.status,
        204
    );
    assert_eq!(
        admin(&issuer, Method::DELETE, &path, None)
            .await
            .api_error(404),
        "not_found"
    );
    assert!(
        issuer
            .admin()
            .list_members(&org_id, None, None)
            .await
            .unwrap()
            .data
            .is_empty()
    );

    let created = issuer
        .admin()
        .events(&EventQuery {
            kind: Some(EventType::MembershipCreated),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(created.data.len(), 1);
    assert_eq!(created.data[0].agent_id.as_deref(), Some(agent.id.as_str()));
    assert_eq!(created.data[0].data["organization_id"], org_id.as_str());
    let deleted = issuer
        .admin()
        .events(&EventQuery {
            kind: Some(EventType::MembershipDeleted),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(deleted.data.len(), 1);
    assert_eq!(
        deleted.data[0].actor.kind,
        agent_auth::issuer::ActorKind::Admin
    );
}

#[tokio::test]
async fn membership_failures() {
    let issuer = TestIssuer::start().await;
    let org = issuer.admin().create_organization("Acme").await.unwrap();
    let agent = issuer.provision("bot", &[]).await.unwrap();

    // Unknown agent → 404; non-agent ids → 404.
    let unknown = format!("agt_{}", "0".repeat(32));
    for id in [unknown.as_str(), "usr_42", ""] {
        let err = issuer
            .admin()
            .add_member(&org.id, &member(id))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(404), "{id}");
    }
    // Unknown organization → 404 (well-formed and malformed ids).
    let ghost = format!("org_{}", "a".repeat(25));
    for org_id in [ghost.as_str(), "org_nope"] {
        let err = issuer
            .admin()
            .add_member(org_id, &member(&agent.id))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(404));
        let err = issuer
            .admin()
            .list_members(org_id, None, None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(404));
    }
    // Bad bodies → 422.
    let path = format!("/v1/organizations/{}/members", org.id);
    for body in [
        json!({"member_id": agent.id, "scopes": ["has space"]}),
        json!({"member_id": agent.id, "user_title": "x".repeat(201)}),
        json!({"member_id": agent.id, "extra": 1}),
        json!({"scopes": []}),
    ] {
        let r = admin(&issuer, Method::POST, &path, Some(body.clone())).await;
        assert_eq!(r.api_error(422), "validation_error", "{body}");
    }
    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(201)}),
        json!({}),
    ] {
        let r = admin(
            &issuer,
            Method::POST,
            "/v1/organizations",
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.api_error(422), "validation_error", "{body}");
    }
    // Admin key required.
    for (m, p) in [
        (Method::POST, "/v1/organizations".to_owned()),
        (Method::GET, path.clone()),
        (Method::POST, path.clone()),
        (Method::DELETE, format!("{path}/{}", agent.id)),
    ] {
        assert_eq!(
            with_auth(&issuer, m, &p, None).await.api_error(401),
            "unauthorized"
        );
    }
}

#[tokio::test]
async fn deleting_an_agent_ends_its_memberships() {
    let issuer = TestIssuer::start().await;
    let a = issuer.admin().create_organization("A").await.unwrap();
    let b = issuer.admin().create_organization("B").await.unwrap();
    let agent = issuer.provision("bot", &[]).await.unwrap();
    let other = issuer.provision("other", &[]).await.unwrap();
    for org in [&a.id, &b.id] {
        issuer
            .admin()
            .add_member(org, &member(&agent.id))
            .await
            .unwrap();
    }
    issuer
        .admin()
        .add_member(&a.id, &member(&other.id))
        .await
        .unwrap();
    issuer.admin().delete_agent(&agent.id).await.unwrap();
    let left = issuer
        .admin()
        .list_members(&a.id, None, None)
        .await
        .unwrap();
    assert_eq!(left.data.len(), 1);
    assert_eq!(left.data[0].member_id, other.id);
    assert!(
        issuer
            .admin()
            .list_members(&b.id, None, None)
            .await
            .unwrap()
            .data
            .is_empty()
    );
    let ev = issuer
        .admin()
        .events(&EventQuery {
            agent_id: Some(agent.id.clone()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let kinds: Vec<EventType> = ev.data.iter().map(|e| e.kind).collect();
    assert_eq!(kinds[0], EventType::AgentDeleted, "{kinds:?}");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == EventType::MembershipDeleted)
            .count(),
        2
    );
}

#[tokio::test]
async fn members_paginate_newest_first() {
    let issuer = TestIssuer::start().await;
    let org = issuer.admin().create_organization("Acme").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let agent = issuer.provision(&format!("bot{i}"), &[]).await.unwrap();
        issuer
            .admin()
            .add_member(&org.id, &member(&agent.id))
            .await
            .unwrap();
        ids.push(agent.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = issuer
            .admin()
            .list_members(&org.id, Some(2), cursor.as_deref())
            .await
            .unwrap();
        assert!(page.data.len() <= 2);
        seen.extend(page.data.into_iter().map(|m| m.member_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let r = admin(
        &issuer,
        Method::GET,
        &format!("/v1/organizations/{}/members?cursor=bogus", org.id),
        None,
    )
    .await;
    assert_eq!(r.api_error(400), "invalid_request");
}

#[tokio::test]
async fn events_filter_by_type_and_agent_newest_first_and_paginate() {
    let issuer = TestIssuer::start().await;
    let a = issuer.provision("a", &[]).await.unwrap();
    let b = issuer.provision("b", &[]).await.unwrap();
    let org = issuer.admin().create_organization("Acme").await.unwrap();
    issuer
        .admin()
        .add_member(&org.id, &member(&a.id))
        .await
        .unwrap();
    issuer.admin().suspend(&b.id, "why").await.unwrap();

    let all = issuer.admin().events(&EventQuery::default()).await.unwrap();
    let kinds: Vec<&str> = all.data.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "agent.updated",
            "organization.membership.created",
            "organization.created",
            "agent.verifier.added",
            "agent.created",
            "agent.verifier.added",
            "agent.created",
        ]
    );
    assert!(
        all.data
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at)
    );
    let for_a = issuer
        .admin()
        .events(&EventQuery {
            agent_id: Some(a.id.clone()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert!(
        for_a
            .data
            .iter()
            .all(|e| e.agent_id.as_deref() == Some(a.id.as_str()))
    );
    assert_eq!(for_a.data.len(), 3);
    let both = issuer
        .admin()
        .events(&EventQuery {
            agent_id: Some(a.id.clone()),
            kind: Some(EventType::AgentCreated),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(both.data.len(), 1);

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = issuer
            .admin()
            .events(&EventQuery {
                limit: Some(3),
                cursor: cursor.clone(),
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
    let ids: Vec<String> = all.data.iter().map(|e| e.id.clone()).collect();
    assert_eq!(seen, ids);

    for q in ["type=agent.exploded", "limit=0", "limit=101", "cursor=%%%"] {
        let r = admin(&issuer, Method::GET, &format!("/v1/events?{q}"), None).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
    }
}
