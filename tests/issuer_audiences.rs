//! Which audiences an agent's tokens may carry (findings 2 and 5 of the hardening review), over
//! real HTTP: per-agent `resources`, and the way back for an agent that deactivated itself.
#![cfg(feature = "issuer")]

mod issuer_support;

use agent_auth::AgentAuth;
use agent_auth::issuer::{
    AgentStatus, CreateAgent, MAX_RESOURCES, TestAgent, TestIssuer, UpdateAgent,
};
use issuer_support::*;
use reqwest::Method;
use serde_json::json;

const TICKETS: &str = "https://tickets.example.com";
const BILLING: &str = "https://billing.example.com/v1";
const ELSEWHERE: &str = "https://payroll.example.com";

/// An agent with a secret, limited to `resources`.
async fn agent_for(issuer: &TestIssuer, resources: &[&str]) -> TestAgent {
    let agent = issuer
        .admin()
        .create_agent(
            &CreateAgent::new("bot")
                .scopes(["tickets:read"])
                .resources(resources.iter().copied()),
        )
        .await
        .unwrap()
        .data;
    let created = issuer.admin().add_secret(&agent.id, None).await.unwrap();
    TestAgent {
        id: agent.id,
        verifier_id: created.verifier.id,
        secret: created.secret,
    }
}

async fn token_for(issuer: &TestIssuer, agent: &TestAgent, resource: Option<&str>) -> Reply {
    let extra: Vec<(&str, &str)> = resource.map(|r| ("resource", r)).into_iter().collect();
    token_post(issuer, &agent.id, agent.secret.expose(), &extra).await
}

fn aud(reply: &Reply) -> serde_json::Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    decode_jwt(reply.json()["access_token"].as_str().unwrap()).1["aud"].clone()
}

/// Finding 2: an agent with no scopes at all got a token for any `resource`, opening every
/// route that checks only authentication in every API that trusts the issuer.
#[tokio::test]
async fn an_agent_with_resources_gets_tokens_only_for_them_or_for_the_issuer() {
    let issuer = TestIssuer::start().await;
    let limited = agent_for(&issuer, &[TICKETS, BILLING]).await;
    let record = issuer.admin().get_agent(&limited.id).await.unwrap();
    assert_eq!(record.resources, [TICKETS, BILLING]);
    assert_eq!(
        aud(&token_for(&issuer, &limited, Some(TICKETS)).await),
        TICKETS
    );
    assert_eq!(
        aud(&token_for(&issuer, &limited, Some(BILLING)).await),
        BILLING
    );
    // Omitted: the first of its resources.
    assert_eq!(aud(&token_for(&issuer, &limited, None).await), TICKETS);
    // The issuer itself (self-service) is always allowed.
    assert_eq!(
        aud(&token_for(&issuer, &limited, Some(issuer.url())).await),
        issuer.url()
    );
    // Anything else, even a prefix or a longer path of a listed one: refused.
    for other in [
        ELSEWHERE,
        "https://tickets.example.com/admin",
        "https://billing.example.com",
    ] {
        let r = token_for(&issuer, &limited, Some(other)).await;
        assert_eq!(r.oauth_error(400), "invalid_target", "{other}");
    }
    // Refusals issue nothing: only the four tokens above were counted.
    issuer.issuer().flush().await.unwrap();
    assert_eq!(
        issuer
            .admin()
            .get_agent(&limited.id)
            .await
            .unwrap()
            .token_count,
        4
    );

    // An agent without resources behaves as before: any resource.
    let open = agent_for(&issuer, &[]).await;
    assert_eq!(
        aud(&token_for(&issuer, &open, Some(ELSEWHERE)).await),
        ELSEWHERE
    );

    // And a token for another API is refused there: the limit is the audience.
    let auth = AgentAuth::new(&issuer).audience(ELSEWHERE).build().unwrap();
    let tickets = token_for(&issuer, &limited, Some(TICKETS)).await.json();
    assert!(
        auth.verify(tickets["access_token"].as_str().unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn resources_are_exact_absolute_uris_at_most_twenty_and_can_be_changed() {
    let issuer = TestIssuer::start().await;
    let too_many: Vec<String> = (0..=MAX_RESOURCES)
        .map(|i| format!("https://api{i}.example.com"))
        .collect();
    for bad in [
        json!(["/relative"]),
        json!(["https://api.example.com/#fragment"]),
        json!(["https://api.example.com/a b"]),
        json!([format!("https://api.example.com/{}", "a".repeat(2048))]),
        json!(too_many),
        json!("https://api.example.com"),
    ] {
        let r = admin(
            &issuer,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "bot", "resources": bad})),
        )
        .await;
        assert_eq!(r.api_error(422), "validation_error", "{bad}");
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

    // Duplicates collapse, order is kept; PATCH replaces, `[]` lifts the limit.
    let agent = agent_for(&issuer, &[BILLING, TICKETS, BILLING]).await;
    let record = issuer.admin().get_agent(&agent.id).await.unwrap();
    assert_eq!(record.resources, [BILLING, TICKETS]);
    assert_eq!(aud(&token_for(&issuer, &agent, None).await), BILLING);
    let patch = |resources: Vec<&str>| UpdateAgent {
        resources: Some(resources.into_iter().map(Into::into).collect()),
        ..UpdateAgent::default()
    };
    issuer
        .admin()
        .update_agent(&agent.id, &patch(vec![TICKETS]))
        .await
        .unwrap();
    let r = token_for(&issuer, &agent, Some(BILLING)).await;
    assert_eq!(r.oauth_error(400), "invalid_target");
    issuer
        .admin()
        .update_agent(&agent.id, &patch(vec![]))
        .await
        .unwrap();
    assert_eq!(
        aud(&token_for(&issuer, &agent, Some(ELSEWHERE)).await),
        ELSEWHERE
    );
}

/// Finding 5: a self-deactivated agent could not obtain a token once its last one expired, so
/// it could never call `reactivate`.
#[tokio::test]
async fn a_self_deactivated_agent_gets_tokens_for_the_issuer_only_and_can_reactivate_itself() {
    let issuer = TestIssuer::start().await;
    let agent = agent_for(&issuer, &[TICKETS]).await;
    let first = issuer
        .token(&agent, None, Some(issuer.url()))
        .await
        .unwrap();
    let me = issuer
        .admin()
        .as_agent(first.access_token)
        .deactivate()
        .await
        .unwrap();
    assert_eq!(me.status, AgentStatus::Deactivated);
    // (Its first token is dropped here, as if it had expired.)

    // For any API: refused, and no token counted.
    for resource in [TICKETS, ELSEWHERE] {
        let r = token_for(&issuer, &agent, Some(resource)).await;
        assert_eq!(r.oauth_error(400), "invalid_target", "{resource}");
    }
    // For the issuer, asked or by default: granted.
    assert_eq!(aud(&token_for(&issuer, &agent, None).await), issuer.url());
    let fresh = issuer
        .token(&agent, None, Some(issuer.url()))
        .await
        .unwrap();
    let claims = decode_jwt(fresh.access_token.expose()).1;
    assert_eq!(claims["aud"], issuer.url());
    // That token opens no API (its audience is the issuer)…
    let api = AgentAuth::new(&issuer).audience(TICKETS).build().unwrap();
    assert!(api.verify(fresh.access_token.expose()).await.is_err());
    // … but lets the agent undo its own deactivation.
    let me = issuer
        .admin()
        .as_agent(fresh.access_token)
        .reactivate()
        .await
        .unwrap();
    assert_eq!(me.status, AgentStatus::Active);
    assert_eq!(aud(&token_for(&issuer, &agent, None).await), TICKETS);

    // A suspended agent gets nothing at all, the issuer's audience included.
    issuer
        .admin()
        .suspend(&agent.id, "investigating")
        .await
        .unwrap();
    let r = token_for(&issuer, &agent, Some(issuer.url())).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
}
