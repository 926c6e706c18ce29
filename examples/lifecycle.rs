//! The whole agent lifecycle against the bundled issuer (on its default SQLite storage, in a
//! temporary directory) and the tickets API, both in-process on 127.0.0.1 (ephemeral ports):
//!
//! ```text
//! cargo run --example lifecycle --features issuer
//! ```
//!
//! create → secret → token → call → scope refusal → rotation → suspension → reactivation →
//! membership → self-service (me, usage, self-rotation, self-deactivation) → deletion → audit
//! trail → webhooks, printing what came back at each step. Exits with status 1 as soon as any step
//! does not behave as the contract says. Secrets and tokens are never printed (a token is shown
//! by its `jti`).

#[path = "common/tickets_api.rs"]
mod tickets_api;

use std::fmt::Display;
use std::process::exit;

use agent_auth::AgentAuth;
use agent_auth::client::{ClientCredential, TokenSource};
use std::sync::Arc;
use std::time::Duration;

use agent_auth::issuer::{
    ActorKind, AdminClient, AdminKey, AgentStatus, CreateAgent, CreateMembership, Database,
    EventQuery, EventType, Issuer, MemberType, Secret, WebhookPolicy,
};
use reqwest::StatusCode;

const API: &str = "https://api.example.com/tickets";

fn fail(msg: impl Display) -> ! {
    eprintln!("\nFAILED: {msg}");
    exit(1);
}

/// Unwraps or fails the walk-through.
trait OrFail<T> {
    fn or_fail(self, what: &str) -> T;
}

impl<T, E: Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> T {
        self.unwrap_or_else(|e| fail(format!("{what}: {e}")))
    }
}

fn check(ok: bool, what: impl Display) {
    if !ok {
        fail(what);
    }
    println!("   ok: {what}");
}

fn step(n: u32, title: &str) {
    println!("\n{n:>2}. {title}");
}

/// Identifies a token without printing it: its `jti` and size.
fn describe(token: &str) -> String {
    use base64::Engine as _;
    let jti = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
        .and_then(|c| c["jti"].as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("jti={jti} ({} bytes)", token.len())
}

/// The claims of a JWT (not verified: for display and checks only).
fn claims_of(token: &str) -> serde_json::Map<String, serde_json::Value> {
    use base64::Engine as _;
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|p| serde_json::from_slice(&p).ok())
        .unwrap_or_default()
}

type SecretSlot = Arc<std::sync::Mutex<Option<Secret>>>;

/// An axum receiver on 127.0.0.1:0: verifies each delivery with `agent_auth::webhooks::verify`
/// (failing the walk-through on a bad signature) and passes on its event type.
async fn webhook_receiver() -> (
    String,
    SecretSlot,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let slot: SecretSlot = Arc::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let secret = Arc::clone(&slot);
    let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let (secret, tx) = (Arc::clone(&secret), tx.clone());
        async move {
            let secret = secret.lock().ok().and_then(|s| s.clone());
            let Some(secret) = secret else {
                return axum::http::StatusCode::SERVICE_UNAVAILABLE;
            };
            if let Err(e) = agent_auth::webhooks::verify(
                secret.expose(),
                &headers,
                &body,
                Duration::from_secs(300),
            ) {
                fail(format!("webhook signature: {e}"));
            }
            let kind = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = tx.send(kind);
            axum::http::StatusCode::NO_CONTENT
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .or_fail("binding the webhook receiver");
    let url = format!(
        "http://{}/hook",
        listener.local_addr().or_fail("receiver address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, slot, rx)
}

struct Tickets {
    base: String,
    http: reqwest::Client,
}

impl Tickets {
    async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> (StatusCode, String) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .or_fail("calling the tickets API");
        let status = res.status();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.text().await.or_fail("reading the tickets API");
        let shown = challenge.map_or(body, |c| format!("WWW-Authenticate: {c}"));
        println!("   {path} → {status} {shown}");
        (status, shown)
    }

    async fn list(&self, token: &str) -> (StatusCode, String) {
        self.call(reqwest::Method::GET, "/tickets", token).await
    }

    async fn triage(&self, token: &str) -> (StatusCode, String) {
        self.call(reqwest::Method::POST, "/tickets/T-1001/triage", token)
            .await
    }
}

/// A token source for the agent, as its runtime would hold one: endpoints from the issuer's
/// metadata, the secret as HTTP Basic, `scopes` (none: all of the agent's), `resource` as `aud`.
fn token_source(
    issuer: &str,
    id: &str,
    secret: &Secret,
    scopes: Option<&[&str]>,
    resource: &str,
) -> TokenSource {
    TokenSource::builder(issuer, id, ClientCredential::secret(secret.expose()))
        .scopes(scopes.unwrap_or_default().iter().copied())
        .resource(resource)
        .build()
        .or_fail("token source")
}

/// A fresh token for the tickets API from a new token source; prints the outcome.
async fn get_token(
    issuer: &str,
    id: &str,
    secret: &Secret,
    scopes: Option<&[&str]>,
) -> Result<String, String> {
    match token_source(issuer, id, secret, scopes, API).token().await {
        Ok(t) => {
            let token = t.expose().to_owned();
            println!(
                "   token {} scope=\"{}\"",
                describe(&token),
                t.scope().unwrap_or_default()
            );
            Ok(token)
        }
        Err(e) => {
            println!("   token endpoint → {e}");
            Err(e.code().unwrap_or("error").to_owned())
        }
    }
}

#[tokio::main]
async fn main() {
    // The issuer, in-process on an ephemeral port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .or_fail("binding the issuer");
    let issuer_url = format!("http://{}", listener.local_addr().or_fail("issuer address"));
    let key = AdminKey::generate().or_fail("generating an admin key");
    let dir = tempfile::tempdir().or_fail("temporary directory");
    let db = dir.path().join("issuer.db");
    let issuer = Issuer::builder()
        .issuer_url(&issuer_url)
        .admin_key(key.clone())
        .database(Database::Sqlite(db.clone()))
        // The example's webhook receiver listens on loopback over plain http; a deployed
        // issuer accepts public https targets only.
        .webhook_policy(WebhookPolicy {
            allow_insecure: true,
            allow_private: true,
        })
        .build()
        .await
        .or_fail("building the issuer");
    tokio::spawn(issuer.serve(listener, std::future::pending()));
    let admin = AdminClient::new(&issuer_url, key).or_fail("admin client");

    // The tickets API, trusting that issuer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .or_fail("binding the tickets API");
    let tickets_url = format!("http://{}", listener.local_addr().or_fail("API address"));
    let auth = AgentAuth::new(&issuer_url)
        .audience(API)
        .build()
        .or_fail("the tickets API's AgentAuth");
    tokio::spawn(async move { axum::serve(listener, tickets_api::router(auth)).await });
    let tickets = Tickets {
        base: tickets_url.clone(),
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .or_fail("HTTP client"),
    };
    println!("issuer      {issuer_url} (SQLite {})", db.display());
    println!("tickets API {tickets_url} (audience {API})");

    // A webhook receiver that checks every delivery's Standard Webhooks signature.
    let (hook_url, secret_slot, mut deliveries) = webhook_receiver().await;
    let hook = admin
        .create_webhook(&hook_url, &EventType::ALL)
        .await
        .or_fail("create webhook");
    println!(
        "webhook     {} → {hook_url} (every event type)",
        hook.webhook.id
    );
    *secret_slot.lock().or_fail("secret slot") = Some(hook.secret);

    step(1, "Create the agent (idempotently, by external_id)");
    let request = CreateAgent::new("Support Triage Agent")
        .description("Triages inbound support tickets")
        .model("claude-sonnet-4-5", "anthropic", "1.0.0")
        .scopes(["tickets:read", "tickets:triage"])
        .external_id("support-workflow:triage");
    let created = admin.create_agent(&request).await.or_fail("create agent");
    let agent = created.data;
    println!(
        "   {} \"{}\" status={:?} scopes={:?}",
        agent.id, agent.name, agent.status, agent.scopes
    );
    check(
        !created.already_existed,
        "first create: already_existed = false",
    );
    let again = admin.create_agent(&request).await.or_fail("create again");
    check(
        again.already_existed && again.data.id == agent.id,
        "same external_id again: the same agent, already_existed = true",
    );

    step(2, "Add a secret verifier");
    let first = admin
        .add_secret(&agent.id, Some("primary"))
        .await
        .or_fail("add secret");
    println!(
        "   verifier {} (credential {}; the {}-character secret is shown once and not printed here)",
        first.verifier.id,
        first
            .verifier
            .credential
            .algorithm
            .as_deref()
            .unwrap_or("?"),
        first.secret.expose().len()
    );
    check(first.secret.expose().len() == 42, "42-character secret");

    step(3, "Get a token (client_credentials, scope tickets:read)");
    let read_token = get_token(
        &issuer_url,
        &agent.id,
        &first.secret,
        Some(&["tickets:read"]),
    )
    .await
    .unwrap_or_else(|e| fail(format!("token: {e}")));
    // An agent runtime keeps one source: it mints once and reuses the token until shortly
    // before its exp.
    let source = token_source(
        &issuer_url,
        &agent.id,
        &first.secret,
        Some(&["tickets:read"]),
        API,
    );
    let held = source.token().await.or_fail("token source");
    let again = source.token().await.or_fail("token source");
    check(
        held.same_as(&again),
        "a token source reuses its cached token",
    );

    step(4, "Call GET /tickets");
    let (status, body) = tickets.list(&read_token).await;
    check(
        status == StatusCode::OK && body.contains(&agent.id),
        "200, and the API sees the agent id",
    );

    step(5, "Triage without the tickets:triage scope");
    let (status, shown) = tickets.triage(&read_token).await;
    check(
        status == StatusCode::FORBIDDEN && shown.contains("insufficient_scope"),
        "403 insufficient_scope",
    );
    let triage_token = get_token(
        &issuer_url,
        &agent.id,
        &first.secret,
        Some(&["tickets:triage"]),
    )
    .await
    .unwrap_or_else(|e| fail(format!("token: {e}")));
    let (status, _) = tickets.triage(&triage_token).await;
    check(status == StatusCode::OK, "with the scope: 200");

    step(6, "Rotate the secret (add, overlap, remove the old one)");
    let second = admin
        .add_secret(&agent.id, Some("rotation-2026-06"))
        .await
        .or_fail("add second secret");
    println!("   new verifier {}", second.verifier.id);
    check(
        get_token(&issuer_url, &agent.id, &first.secret, None)
            .await
            .is_ok(),
        "old secret still works during the overlap",
    );
    check(
        get_token(&issuer_url, &agent.id, &second.secret, None)
            .await
            .is_ok(),
        "new secret works",
    );
    for v in admin
        .list_verifiers(&agent.id)
        .await
        .or_fail("list verifiers")
    {
        println!(
            "   {} {:?}: usage_count={} last_used_at={:?}",
            v.id,
            v.name.unwrap_or_default(),
            v.usage_count,
            v.last_used_at
        );
    }
    admin
        .delete_verifier(&agent.id, &first.verifier.id)
        .await
        .or_fail("remove old verifier");
    println!("   removed {}", first.verifier.id);
    check(
        get_token(&issuer_url, &agent.id, &first.secret, None).await
            == Err("invalid_client".into()),
        "old secret: invalid_client",
    );
    let outstanding = get_token(
        &issuer_url,
        &agent.id,
        &second.secret,
        Some(&["tickets:read"]),
    )
    .await
    .unwrap_or_else(|e| fail(format!("new secret after rotation: {e}")));
    println!("   ok: new secret still works");

    step(7, "Suspend the agent");
    let suspended = admin
        .suspend(&agent.id, "Anomalous ticket volume; investigating")
        .await
        .or_fail("suspend");
    println!(
        "   status={:?} reason={:?}",
        suspended.status, suspended.status_reason
    );
    check(
        get_token(&issuer_url, &agent.id, &second.secret, None).await
            == Err("invalid_client".into()),
        "new tokens refused at once (invalid_client)",
    );
    let (status, _) = tickets.list(&outstanding).await;
    check(
        status == StatusCode::OK,
        "the outstanding token works until its exp (at most 5 minutes)",
    );

    step(8, "Reactivate the agent");
    let active = admin.reactivate(&agent.id).await.or_fail("reactivate");
    println!("   status={:?}", active.status);
    let token = get_token(
        &issuer_url,
        &agent.id,
        &second.secret,
        Some(&["tickets:read"]),
    )
    .await
    .unwrap_or_else(|e| fail(format!("token after reactivation: {e}")));
    let (status, _) = tickets.list(&token).await;
    check(status == StatusCode::OK, "tokens again, and they work");
    let agent_now = admin.get_agent(&agent.id).await.or_fail("get agent");
    println!(
        "   token_count={} last_activity_at={:?}",
        agent_now.token_count, agent_now.last_activity_at
    );

    step(9, "Organization membership");
    let org = admin
        .create_organization("Acme Support")
        .await
        .or_fail("create org");
    println!("   organization {} \"{}\"", org.id, org.name);
    let member = admin
        .add_member(
            &org.id,
            &CreateMembership {
                member_id: agent.id.clone(),
                scopes: vec!["tickets:triage".into()],
                user_title: Some("Triage bot".into()),
            },
        )
        .await
        .or_fail("add member");
    check(
        member.member_type == MemberType::Agent,
        "the membership comes back with member_type \"agent\"",
    );
    let members = admin
        .list_members(&org.id, None, None)
        .await
        .or_fail("list members");
    check(
        members.data.iter().any(|m| m.member_id == agent.id),
        "the agent is in the org's member list",
    );
    check(
        !claims_of(&token).keys().any(|k| k.contains("org")),
        "tokens carry no organization claims",
    );

    step(
        10,
        "Self-service with the agent's own token (aud = the issuer)",
    );
    let own = token_source(&issuer_url, &agent.id, &second.secret, None, &issuer_url)
        .token()
        .await
        .or_fail("token for the issuer");
    let me = admin.as_agent(Secret::new(own.expose()));
    let profile = me.me().await.or_fail("GET /v1/agents/me");
    check(profile.id == agent.id, "GET /v1/agents/me: itself");
    let usage = me.usage().await.or_fail("usage");
    println!(
        "   usage: token_count={} verifiers={}",
        usage.token_count,
        usage.verifiers.len()
    );
    let wrong_aud = admin.as_agent(Secret::new(token.clone()));
    check(
        wrong_aud.me().await.err().and_then(|e| e.status()) == Some(401),
        "a token for another audience: 401",
    );
    let rotated = me.rotate().await.or_fail("self-rotation");
    println!("   rotated: new verifier {}", rotated.verifier.id);
    check(
        get_token(&issuer_url, &agent.id, &second.secret, None).await
            == Err("invalid_client".into()),
        "the old secret stopped working at once",
    );
    let secret = rotated.secret;
    check(
        get_token(&issuer_url, &agent.id, &secret, None)
            .await
            .is_ok(),
        "the new secret works",
    );
    let off = me.deactivate().await.or_fail("self-deactivation");
    check(off.status == AgentStatus::Deactivated, "deactivated itself");
    check(
        get_token(&issuer_url, &agent.id, &secret, None).await == Err("invalid_target".into()),
        "no token for the API while deactivated",
    );
    // Only tokens for the issuer itself: enough to undo its own deactivation, even after its
    // earlier tokens expired.
    let for_issuer = token_source(&issuer_url, &agent.id, &secret, None, &issuer_url)
        .token()
        .await
        .or_fail("a token for the issuer while deactivated");
    let on = admin
        .as_agent(Secret::new(for_issuer.expose()))
        .reactivate()
        .await
        .or_fail("self-reactivation");
    check(
        on.status == AgentStatus::Active,
        "reactivated itself with a fresh token",
    );
    admin
        .suspend(&agent.id, "Admin review")
        .await
        .or_fail("suspend");
    let refused = me.reactivate().await;
    check(
        refused.err().and_then(|e| e.status()) == Some(403),
        "after an admin suspension, self-reactivation is refused (403)",
    );
    admin.reactivate(&agent.id).await.or_fail("reactivate");
    println!("   the admin reactivated it");

    step(11, "Delete the agent");
    admin.delete_agent(&agent.id).await.or_fail("delete");
    check(
        get_token(&issuer_url, &agent.id, &secret, None).await == Err("invalid_client".into()),
        "deleted: invalid_client",
    );
    let gone = admin.get_agent(&agent.id).await;
    check(
        gone.as_ref().err().and_then(|e| e.status()) == Some(404),
        "GET /v1/agents/{id}: 404",
    );
    let members = admin
        .list_members(&org.id, None, None)
        .await
        .or_fail("list members");
    check(members.data.is_empty(), "its membership went with it");

    step(12, "Audit trail (newest first)");
    let events = admin
        .events(&EventQuery {
            agent_id: Some(agent.id.clone()),
            ..EventQuery::default()
        })
        .await
        .or_fail("events");
    for e in &events.data {
        let extra = if e.changed.is_empty() {
            String::new()
        } else {
            format!(" changed={:?}", e.changed)
        };
        println!("   {} {} by {}{extra}", e.id, e.kind, e.actor.kind);
    }
    let kinds: Vec<&str> = events.data.iter().map(|e| e.kind.as_str()).collect();
    check(
        kinds
            == [
                "agent.deleted",
                "organization.membership.deleted",
                "agent.updated",
                "agent.updated",
                "agent.updated",
                "agent.updated",
                "agent.verifier.added",
                "agent.verifier.removed",
                "organization.membership.created",
                "agent.updated",
                "agent.updated",
                "agent.verifier.removed",
                "agent.verifier.added",
                "agent.verifier.added",
                "agent.created",
            ],
        "every mutation left its event",
    );
    check(
        events.data[2..6]
            .iter()
            .filter(|e| e.actor.kind == ActorKind::Agent)
            .count()
            == 2,
        "self-service changes name the agent as actor",
    );

    step(
        13,
        "Webhooks (Standard Webhooks signatures checked by the receiver)",
    );
    let mut seen = std::collections::HashSet::new();
    while !seen.contains("agent.deleted") {
        let kind = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
            .await
            .or_fail("waiting for deliveries")
            .unwrap_or_else(|| fail("receiver stopped"));
        seen.insert(kind);
    }
    let mut kinds: Vec<_> = seen.into_iter().collect();
    kinds.sort();
    println!("   received (signatures valid): {}", kinds.join(", "));
    check(kinds.len() >= 7, "every kind of change was delivered");
    println!("\nlifecycle complete");
}
