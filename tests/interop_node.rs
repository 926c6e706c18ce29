//! panva/jose (Node), a verifier and signer nobody here wrote, on 127.0.0.1: the seed's
//! `verifyAgentToken` verifies tokens of the real `agent-auth-issuer` binary through its JWKS
//! (and refuses a tampered one), and our layer verifies agent tokens that jose signed (EdDSA
//! and ES256) over real HTTP. Needs `node` and `interop/node/node_modules` (`npm ci`, run by
//! `.ci/run`).

mod interop_support;
mod support;

use agent_auth::issuer::CreateAgent;
use interop_support::{issuer, root, run_json, skipped};
use serde_json::{Value, json};
use support::{AGENT_ID, AUDIENCE, JwksServer, get_with_token, serve_api};
use tokio::process::Command;

const SCRIPT: &str = "interop/node/jose_interop.mjs";

/// `node` with jose installed, or why not.
async fn node() -> Option<()> {
    let modules = root().join("interop/node/node_modules/jose/package.json");
    let reason = match Command::new("node").arg("--version").output().await {
        Err(e) => Some(format!("no node on PATH ({e})")),
        Ok(_) if !modules.is_file() => Some(format!(
            "jose is not installed ({} missing: npm ci in interop/node)",
            modules.display()
        )),
        Ok(_) => None,
    };
    match skipped(reason) {
        true => None,
        false => Some(()),
    }
}

fn script(args: &[&str]) -> Command {
    let mut command = Command::new("node");
    command.arg(root().join(SCRIPT)).args(args);
    command
}

#[tokio::test]
async fn jose_verifies_the_issuers_tokens_like_the_seeds_verify_agent_token() {
    let Some(()) = node().await else { return };
    let (issuer, admin) = issuer().await;
    let agent = admin
        .create_agent(&CreateAgent::new("jose-verified").scopes(["tickets:read"]))
        .await
        .unwrap()
        .data;
    let secret = admin.add_secret(&agent.id, None).await.unwrap().secret;
    let token = admin
        .token(&agent.id, secret.expose(), None, Some(AUDIENCE))
        .await
        .unwrap()
        .access_token
        .expose()
        .to_owned();
    let verified = run_json(script(&["verify", &issuer.url, AUDIENCE, &token])).await;
    let ok = &verified["ok"];
    assert_eq!(ok["header"]["alg"], "EdDSA", "{verified}");
    assert_eq!(ok["header"]["typ"], "at+jwt", "{verified}");
    assert_eq!(
        (
            &ok["payload"]["iss"],
            &ok["payload"]["sub"],
            &ok["payload"]["aud"],
            &ok["payload"]["scope"]
        ),
        (
            &json!(issuer.url),
            &json!(agent.id),
            &json!(AUDIENCE),
            &json!("tickets:read")
        ),
        "{verified}"
    );
    // The same verifier refuses a token whose claims were changed after signing, and one for
    // another audience.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_claims = support::b64(
        json!({"iss": issuer.url, "sub": agent.id, "aud": AUDIENCE, "exp": support::now() + 300,
               "iat": support::now(), "jti": "forged", "scope": "tickets:triage", "dat": {"type": "agent"}})
        .to_string(),
    );
    parts[1] = &forged_claims;
    let forged = parts.join(".");
    let refused = run_json(script(&["verify", &issuer.url, AUDIENCE, &forged])).await;
    assert_eq!(
        refused["error"], "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
        "{refused}"
    );
    let elsewhere = run_json(script(&[
        "verify",
        &issuer.url,
        "https://elsewhere.example",
        &token,
    ]))
    .await;
    assert_eq!(
        elsewhere["error"], "ERR_JWT_CLAIM_VALIDATION_FAILED",
        "{elsewhere}"
    );
    issuer.stop().await;
}

#[tokio::test]
async fn our_layer_verifies_agent_tokens_jose_signed() {
    let Some(()) = node().await else { return };
    let jwks = JwksServer::start(&[]).await;
    let issuer = jwks.issuer();
    let api = serve_api(jwks.auth().build().unwrap()).await;
    // Both keys published before the first request: one JWKS fetch serves them.
    let mut signed = Vec::new();
    for alg in ["EdDSA", "ES256"] {
        let args = ["sign", alg, &issuer, AUDIENCE, AGENT_ID, "tickets:read"];
        signed.push((alg, run_json(script(&args)).await));
    }
    let keys: Vec<Value> = signed.iter().map(|(_, s)| s["jwk"].clone()).collect();
    jwks.set_document(json!({ "keys": keys }));
    for (alg, signed) in &signed {
        let token = signed["token"].as_str().unwrap();
        let listed = get_with_token(&format!("{api}/tickets"), token).await;
        assert_eq!(listed.status, 200, "{alg}: {listed:?}");
        assert_eq!(listed.json()["agent_id"], AGENT_ID, "{alg}");
        assert_eq!(listed.json()["scopes"], json!(["tickets:read"]), "{alg}");
        // A jose-signed token for a scope it does not carry is refused by the scope guard.
        let triage = support::send(
            support::client()
                .post(format!("{api}/tickets/7/triage"))
                .bearer_auth(token),
        )
        .await;
        assert_eq!(
            (triage.status, triage.error().as_deref()),
            (403, Some("insufficient_scope"))
        );
    }
}
