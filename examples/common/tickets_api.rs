//! The seed's tickets API, shared by the `tickets` and `lifecycle` examples.

use agent_auth::{Agent, AgentAuthLayer, RequireScopes};
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// `GET /tickets` (needs `tickets:read`), `POST /tickets/{id}/triage` (needs `tickets:triage`),
/// both behind `auth`; `GET /health` open.
pub fn router(auth: AgentAuthLayer) -> Router {
    let protected = Router::new()
        .route(
            "/tickets",
            get(list_tickets).layer(RequireScopes::all(["tickets:read"])),
        )
        .route(
            "/tickets/{id}/triage",
            post(triage_ticket).layer(RequireScopes::all(["tickets:triage"])),
        )
        .layer(auth);
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .merge(protected)
}

async fn list_tickets(agent: Agent) -> Json<Value> {
    Json(json!({
        "agent_id": agent.id(),
        "scopes": agent.scopes().collect::<Vec<_>>(),
        "tickets": [
            { "id": "T-1001", "status": "open", "subject": "Cannot log in" },
            { "id": "T-1002", "status": "open", "subject": "Refund request" },
        ],
    }))
}

async fn triage_ticket(agent: Agent, Path(id): Path<String>) -> Json<Value> {
    Json(json!({
        "agent_id": agent.id(),
        "ticket_id": id,
        "status": "triaged",
    }))
}
