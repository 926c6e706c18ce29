//! Agent self-service (`/v1/agents/me…`) of the bundled issuer, over real HTTP on 127.0.0.1.
#![cfg(feature = "issuer")]

mod issuer_support;

use agent_auth::issuer::{
    AgentClient, AgentStatus, EventQuery, EventType, TestAgent, TestIssuer, TokenSpec,
};
use issuer_support::*;
use reqwest::Method;

async fn me_client(issuer: &TestIssuer, agent: &TestAgent) -> AgentClient {
    let token = issuer.token(agent, None, Some(issuer.url())).await.unwrap();
    issuer.admin().as_agent(token.access_token)
}

async fn bearer(issuer: &TestIssuer, method: Method, path: &str, token: &str) -> Reply {
    with_auth(issuer, method, path, Some(&format!("Bearer {token}"))).await
}

#[tokio::test]
async fn me_and_usage() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &["tickets:read"]).await.unwrap();
    let client = me_client(&issuer, &agent).await;
    let me = client.me().await.unwrap();
    assert_eq!(me.id, agent.id);
    assert_eq!(me.status, AgentStatus::Active);
    issuer.token(&agent, None, None).await.unwrap();
    let usage = client.usage().await.unwrap();
    assert_eq!(usage.agent_id, agent.id);
    assert_eq!(usage.token_count, 2);
    assert!(usage.last_activity_at.is_some());
    assert_eq!(usage.verifiers.len(), 1);
    assert_eq!(usage.verifiers[0].usage_count, 2);
    let raw = bearer(&issuer, Method::GET, "/v1/agents/me/usage", "x").await;
    assert_eq!(raw.status, 401);
    assert!(!raw.text.contains("secret"));
}

#[tokio::test]
async fn authentication_is_the_agents_own_bearer_token_for_the_issuer() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &["tickets:read"]).await.unwrap();
    // A real token for another audience: 401 invalid_token.
    let other = issuer
        .token(&agent, None, Some("https://api.example.com"))
        .await
        .unwrap();
    let r = bearer(
        &issuer,
        Method::GET,
        "/v1/agents/me",
        other.access_token.expose(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token"),
        "{r:?}"
    );
    // The default audience (the agent id) is not the issuer either.
    let own = issuer.token(&agent, None, None).await.unwrap();
    let r = bearer(
        &issuer,
        Method::GET,
        "/v1/agents/me",
        own.access_token.expose(),
    )
    .await;
    assert_eq!(r.status, 401);
    // Expired and non-agent tokens signed by the real key: 401.
    for spec in [
        TokenSpec::for_agent(&agent.id)
            .audience(issuer.url())
            .expired(),
        TokenSpec::for_agent(&agent.id)
            .audience(issuer.url())
            .non_agent(),
    ] {
        let r = bearer(&issuer, Method::GET, "/v1/agents/me", &issuer.mint(spec)).await;
        assert_eq!(r.status, 401);
    }
    // No token, or the admin key: 401 with a Bearer challenge.
    let key = issuer.admin_key();
    for auth in [None, Some(basic(key.id(), key.secret().expose()))] {
        for (m, p) in [
            (Method::GET, "/v1/agents/me"),
            (Method::GET, "/v1/agents/me/usage"),
            (Method::POST, "/v1/agents/me/rotate"),
            (Method::POST, "/v1/agents/me/deactivate"),
            (Method::POST, "/v1/agents/me/reactivate"),
            (Method::DELETE, "/v1/agents/me"),
        ] {
            let r = with_auth(&issuer, m, p, auth.as_deref()).await;
            assert_eq!(r.status, 401, "{p}");
            assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        }
    }
    // The admin routes still work next to `me`, and refuse the agent's token.
    assert_eq!(
        issuer.admin().get_agent(&agent.id).await.unwrap().id,
        agent.id
    );
    let good = issuer
        .token(&agent, None, Some(issuer.url()))
        .await
        .unwrap();
    let r = bearer(
        &issuer,
        Method::GET,
        &format!("/v1/agents/{}", agent.id),
        good.access_token.expose(),
    )
    .await;
    assert_eq!(r.api_error(401), "unauthorized");
}

#[tokio::test]
async fn rotation_stops_every_old_secret_at_once_and_old_tokens_live_on() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &["tickets:read"]).await.unwrap();
    let second = issuer
        .admin()
        .add_secret(&agent.id, Some("second"))
        .await
        .unwrap();
    let token = issuer
        .token(&agent, None, Some(issuer.url()))
        .await
        .unwrap();
    let client = issuer.admin().as_agent(token.access_token.clone());
    let rotated = client.rotate().await.unwrap();
    assert_eq!(rotated.secret.expose().len(), 42);
    assert_eq!(rotated.verifier.agent_id, agent.id);

    for old in [agent.secret.expose(), second.secret.expose()] {
        let r = token_post(&issuer, &agent.id, old, &[]).await;
        assert_eq!(r.oauth_error(401), "invalid_client");
    }
    let r = token_post(&issuer, &agent.id, rotated.secret.expose(), &[]).await;
    assert_eq!(r.status, 200);
    // The token issued before the rotation still works until its exp.
    assert_eq!(client.me().await.unwrap().id, agent.id);
    let verifiers = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    assert_eq!(verifiers.len(), 1);
    assert_eq!(verifiers[0].id, rotated.verifier.id);

    let ev = issuer
        .admin()
        .events(&EventQuery {
            agent_id: Some(agent.id.clone()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let removed: Vec<_> = ev
        .data
        .iter()
        .filter(|e| e.kind == EventType::VerifierRemoved)
        .collect();
    assert_eq!(removed.len(), 2);
    assert!(
        removed
            .iter()
            .all(|e| e.actor.kind == agent_auth::issuer::ActorKind::Agent && e.actor.id == agent.id)
    );
    assert_eq!(ev.data[0].kind, EventType::VerifierAdded);
    assert_eq!(ev.data[0].actor.kind, agent_auth::issuer::ActorKind::Agent);
    assert!(
        !ev.data[0]
            .data
            .to_string()
            .contains(rotated.secret.expose())
    );
}

#[tokio::test]
async fn deactivate_and_reactivate_self() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &[]).await.unwrap();
    let client = me_client(&issuer, &agent).await;
    let me = client.deactivate().await.unwrap();
    assert_eq!(me.status, AgentStatus::Deactivated);
    assert_eq!(
        issuer.admin().get_agent(&agent.id).await.unwrap().status,
        AgentStatus::Deactivated
    );
    // While deactivated, no token for any API: only for the issuer itself (see
    // `issuer_hardening` for the way back after the last token expired).
    let r = token_post(
        &issuer,
        &agent.id,
        agent.secret.expose(),
        &[("resource", "https://api.example.com")],
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_target");
    // Twice → 409.
    assert_eq!(client.deactivate().await.unwrap_err().status(), Some(409));
    let me = client.reactivate().await.unwrap();
    assert_eq!(me.status, AgentStatus::Active);
    assert_eq!(
        token_post(&issuer, &agent.id, agent.secret.expose(), &[])
            .await
            .status,
        200
    );
    // Reactivating an active agent → 409.
    assert_eq!(
        client.reactivate().await.unwrap_err().code(),
        Some("conflict")
    );
    let ev = issuer
        .admin()
        .events(&EventQuery {
            kind: Some(EventType::AgentUpdated),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ev.data.len(), 2);
    assert!(
        ev.data
            .iter()
            .all(|e| e.actor.kind == agent_auth::issuer::ActorKind::Agent)
    );
    // The admin cannot set "deactivated" (only the agent deactivates itself).
    let r = admin(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{}", agent.id),
        Some(serde_json::json!({"status": "deactivated"})),
    )
    .await;
    assert_eq!(r.api_error(422), "validation_error");
}

#[tokio::test]
async fn self_reactivation_after_an_admin_suspension_is_refused() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &[]).await.unwrap();
    let client = me_client(&issuer, &agent).await;
    issuer
        .admin()
        .suspend(&agent.id, "investigating")
        .await
        .unwrap();
    let e = client.reactivate().await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(403), Some("agent_suspended")));
    // A suspended agent cannot rotate, deactivate or delete itself either, but can read.
    assert_eq!(client.rotate().await.unwrap_err().status(), Some(403));
    assert_eq!(client.deactivate().await.unwrap_err().status(), Some(403));
    assert_eq!(client.delete().await.unwrap_err().status(), Some(403));
    assert_eq!(client.me().await.unwrap().status, AgentStatus::Suspended);
    assert_eq!(
        issuer.admin().get_agent(&agent.id).await.unwrap().status,
        AgentStatus::Suspended
    );

    // Deactivated by itself, then suspended by the admin: still refused.
    let other = issuer.provision("other", &[]).await.unwrap();
    let client = me_client(&issuer, &other).await;
    client.deactivate().await.unwrap();
    issuer.admin().suspend(&other.id, "no").await.unwrap();
    assert_eq!(client.reactivate().await.unwrap_err().status(), Some(403));
    // The admin reactivates.
    issuer.admin().reactivate(&other.id).await.unwrap();
    assert_eq!(client.me().await.unwrap().status, AgentStatus::Active);
}

#[tokio::test]
async fn delete_self() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &[]).await.unwrap();
    let org = issuer.admin().create_organization("Acme").await.unwrap();
    issuer
        .admin()
        .add_member(
            &org.id,
            &agent_auth::issuer::CreateMembership {
                member_id: agent.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let client = me_client(&issuer, &agent).await;
    client.delete().await.unwrap();
    assert_eq!(
        issuer
            .admin()
            .get_agent(&agent.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert!(
        issuer
            .admin()
            .list_members(&org.id, None, None)
            .await
            .unwrap()
            .data
            .is_empty()
    );
    // Its token lives on but names nobody: 404.
    assert_eq!(client.me().await.unwrap_err().status(), Some(404));
    let r = token_post(&issuer, &agent.id, agent.secret.expose(), &[]).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    let ev = issuer
        .admin()
        .events(&EventQuery {
            kind: Some(EventType::AgentDeleted),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ev.data[0].actor.kind, agent_auth::issuer::ActorKind::Agent);
    assert_eq!(ev.data[0].actor.id, agent.id);
}
