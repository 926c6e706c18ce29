//! Python clients nobody here wrote, against the real binaries on 127.0.0.1: the `mcp` SDK's
//! client-credentials providers (client_secret_basic, client_secret_post, private_key_jwt)
//! connect to `examples/mcp_server` started against `agent-auth-issuer`, discover everything
//! from the first 401, list the tools and call both; a read-only agent is refused
//! `triage_ticket` and its step-up is refused by the issuer. authlib gets tokens with the same
//! three methods and PyJWT's `PyJWKClient` verifies them. The interpreter is
//! `interop/python/.venv/bin/python` (made by `.ci/run`) or `AGENT_AUTH_INTEROP_PYTHON`.

mod interop_support;

use std::path::PathBuf;

use agent_auth::issuer::{AdminClient, CreateAgent};
use interop_support::{EdKey, McpServer, issuer, mcp_server_binary, root, run_json, skipped};
use serde_json::{Value, json};
use tokio::process::Command;

const SCRIPT: &str = "interop/python/mcp_clients.py";

/// The interpreter with the pinned clients importable, or why not.
async fn python() -> Result<PathBuf, String> {
    let python = match std::env::var_os("AGENT_AUTH_INTEROP_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => root().join("interop/python/.venv/bin/python"),
    };
    if !python.is_file() {
        return Err(format!(
            "no Python environment at {} (see interop/README.md)",
            python.display()
        ));
    }
    let check = Command::new(&python)
        .args(["-c", "import mcp, authlib, jwt, requests"])
        .output()
        .await
        .map_err(|e| format!("{}: {e}", python.display()))?;
    match check.status.success() {
        true => Ok(python),
        false => Err(format!(
            "the pinned clients are not importable by {}: {}",
            python.display(),
            String::from_utf8_lossy(&check.stderr)
        )),
    }
}

/// The interpreter and the example binary, or `None` after a `SKIPPED:` line.
async fn tools() -> Option<(PathBuf, PathBuf)> {
    let found = async { Ok::<_, String>((python().await?, mcp_server_binary()?)) };
    match found.await {
        Ok(found) => Some(found),
        Err(reason) => {
            skipped(Some(reason));
            None
        }
    }
}

/// An agent with `scopes` and a secret: (id, secret).
async fn secret_agent(admin: &AdminClient, scopes: &[&str]) -> (String, String) {
    let agent = admin
        .create_agent(&CreateAgent::new("python-client").scopes(scopes.iter().copied()))
        .await
        .unwrap()
        .data;
    let created = admin.add_secret(&agent.id, Some("python")).await.unwrap();
    (agent.id, created.secret.expose().to_owned())
}

/// An agent with `scopes` and only a registered Ed25519 key: (id, path of its PEM).
async fn keyed_agent(
    admin: &AdminClient,
    scopes: &[&str],
    dir: &tempfile::TempDir,
) -> (String, String) {
    let agent = admin
        .create_agent(&CreateAgent::new("python-keyed").scopes(scopes.iter().copied()))
        .await
        .unwrap()
        .data;
    let key = EdKey::from_seed([0x42; 32]);
    admin
        .add_jwk(&agent.id, Some("python"), key.jwk.clone())
        .await
        .unwrap();
    let path = dir.path().join(format!("{}.pem", agent.id));
    std::fs::write(&path, &key.pem).unwrap();
    (agent.id, path.to_str().unwrap().to_owned())
}

fn script(python: &PathBuf, args: &[&str]) -> Command {
    let mut command = Command::new(python);
    command.arg(root().join(SCRIPT)).args(args);
    command
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// (method, URL, status) of every exchange the client made, in order.
fn exchanges(output: &Value) -> Vec<(String, String, u64)> {
    let list = output["exchanges"].as_array().unwrap();
    let exchange = |e: &Value| {
        let text = |k: &str| e[k].as_str().unwrap().to_owned();
        (text("method"), text("url"), e["status"].as_u64().unwrap())
    };
    list.iter().map(exchange).collect()
}

/// The discovery every client must have made from nothing but the MCP URL: the first request
/// refused with 401, then the RFC 9728 document it names, the issuer's RFC 8414 document, a
/// token; then the MCP request again.
fn assert_discovered_from_the_401(output: &Value, mcp: &str, issuer: &str) {
    let seen = exchanges(output);
    let origin = mcp.trim_end_matches("/mcp");
    let first = &seen[0];
    assert_eq!(
        (first.0.as_str(), first.1.as_str(), first.2),
        ("POST", mcp, 401),
        "{seen:?}"
    );
    let position = |method: &str, url: &str, status: u64| {
        let found = seen
            .iter()
            .position(|e| e.0 == method && e.1 == url && e.2 == status);
        found.unwrap_or_else(|| panic!("no {method} {url} {status} in {seen:?}"))
    };
    let metadata = position(
        "GET",
        &format!("{origin}/.well-known/oauth-protected-resource/mcp"),
        200,
    );
    let server = position(
        "GET",
        &format!("{issuer}/.well-known/oauth-authorization-server"),
        200,
    );
    let token = position("POST", &format!("{issuer}/token"), 200);
    assert!(
        0 < metadata && metadata < server && server < token,
        "{seen:?}"
    );
    assert!(
        seen[token + 1..]
            .iter()
            .any(|e| e.0 == "POST" && e.1 == mcp && e.2 == 200),
        "{seen:?}"
    );
}

#[tokio::test]
async fn the_mcp_sdk_providers_discover_from_the_401_and_call_both_tools() {
    let Some((python, server)) = tools().await else {
        return;
    };
    let (issuer, admin) = issuer().await;
    let mcp = McpServer::start(&server, &issuer.url).await;
    let dir = tempfile::tempdir().unwrap();
    let full = ["tickets:read", "tickets:triage"];
    let (secret_id, secret) = secret_agent(&admin, &full).await;
    let (keyed_id, pem) = keyed_agent(&admin, &full, &dir).await;
    for (agent, method, credential) in [
        (&secret_id, "client_secret_basic", &secret),
        (&secret_id, "client_secret_post", &secret),
        (&keyed_id, "private_key_jwt", &pem),
    ] {
        // The providers ask for the challenge's basic scope (tickets:read) first; the 403 of
        // triage_ticket names tickets:triage and they step up (a second token) on their own.
        let output = run_json(script(
            &python,
            &["mcp", &mcp.url, &issuer.url, agent, method, credential],
        ))
        .await;
        assert_eq!(
            output["tools"],
            json!(["list_tickets", "triage_ticket"]),
            "{method}: {output}"
        );
        let calls = &output["calls"];
        assert_eq!(
            calls["list_tickets"]["ok"]["agent_id"],
            json!(agent),
            "{method}: {output}"
        );
        assert_eq!(
            calls["triage_ticket"]["ok"]["agent_id"],
            json!(agent),
            "{method}: {output}"
        );
        assert_eq!(
            calls["triage_ticket"]["ok"]["triaged"],
            json!(true),
            "{method}: {output}"
        );
        assert_discovered_from_the_401(&output, &mcp.url, &issuer.url);
    }
    issuer.stop().await;
}

#[tokio::test]
async fn a_read_only_agent_is_refused_triage_and_its_step_up_by_the_issuer() {
    let Some((python, server)) = tools().await else {
        return;
    };
    let (issuer, admin) = issuer().await;
    let mcp = McpServer::start(&server, &issuer.url).await;
    let (agent, secret) = secret_agent(&admin, &["tickets:read"]).await;
    let output = run_json(script(
        &python,
        &[
            "mcp",
            &mcp.url,
            &issuer.url,
            &agent,
            "client_secret_basic",
            &secret,
        ],
    ))
    .await;
    let calls = &output["calls"];
    assert_eq!(
        calls["list_tickets"]["ok"]["agent_id"],
        json!(agent),
        "{output}"
    );
    assert!(
        calls["triage_ticket"].is_null(),
        "triage_ticket ran: {output}"
    );
    // The SDK answers the 403 with a step-up token request, which the issuer refuses; the
    // SDK then ends the session with that error.
    let error = output["error"].as_str().unwrap_or_default();
    assert!(error.contains("invalid_scope"), "{output}");
    let seen = exchanges(&output);
    let refused = seen
        .iter()
        .position(|e| e.0 == "POST" && e.1 == mcp.url && e.2 == 403)
        .unwrap_or_else(|| panic!("no 403 for triage_ticket: {seen:?}"));
    let token = format!("{}/token", issuer.url);
    assert!(
        seen[refused..]
            .iter()
            .any(|e| e.0 == "POST" && e.1 == token && e.2 == 400),
        "the step-up after the 403 is refused by the issuer: {seen:?}"
    );
    assert!(
        !seen[refused..].iter().any(|e| e.1 == token && e.2 == 200),
        "no token with tickets:triage was issued: {seen:?}"
    );
    issuer.stop().await;
}

#[tokio::test]
async fn authlib_gets_tokens_with_every_method_and_pyjwt_verifies_them() {
    let Some((python, _)) = tools().await else {
        return;
    };
    let (issuer, admin) = issuer().await;
    let dir = tempfile::tempdir().unwrap();
    let resource = "https://api.example.com/tickets";
    let (secret_id, secret) = secret_agent(&admin, &["tickets:read", "tickets:triage"]).await;
    let (keyed_id, pem) = keyed_agent(&admin, &["tickets:read"], &dir).await;
    for (agent, method, credential) in [
        (&secret_id, "client_secret_basic", &secret),
        (&secret_id, "client_secret_post", &secret),
        (&keyed_id, "private_key_jwt", &pem),
    ] {
        let output = run_json(script(
            &python,
            &["authlib", &issuer.url, agent, method, credential, resource],
        ))
        .await;
        assert_eq!(output["token_type"], "Bearer", "{method}: {output}");
        assert_eq!(output["expires_in"], 300, "{method}: {output}");
        let claims = &output["claims"];
        assert_eq!(
            (
                &claims["iss"],
                &claims["sub"],
                &claims["aud"],
                &claims["scope"],
                &claims["dat"]["type"]
            ),
            (
                &json!(issuer.url),
                &json!(agent),
                &json!(resource),
                &json!("tickets:read"),
                &json!("agent")
            ),
            "{method}: {output}"
        );
    }
    issuer.stop().await;
}
