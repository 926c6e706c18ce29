//! The issuer's start-up: `TestIssuer::start` (SQLite in memory, migrations, a fresh signing key,
//! a listener on 127.0.0.1:0) to a served JWKS, and a shutdown — what each issuer test pays
//! before its first request. The budget is 50 ms.
//!
//! Also the token endpoint in process (`Router::oneshot`, no sockets): a `client_credentials`
//! request against a route of the same router that only signs a fixed claims set, to see
//! where the endpoint's time goes without the HTTP stack's noise.
//!
//! `cargo bench --all-features --bench issuer`; `-- --test` runs it once (CI smoke).

use agent_auth::issuer::{CreateAgent, TestIssuer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

fn cold_start(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    c.bench_function("issuer/test_issuer_start_to_first_jwks", |b| {
        b.to_async(&rt).iter(|| async {
            let issuer = TestIssuer::start().await;
            let res = http
                .get(issuer.jwks_uri())
                .send()
                .await
                .expect("the JWKS answers");
            assert!(res.status().is_success());
            issuer.shutdown().await;
        });
    });
}

fn token_endpoint(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let (router, form) = rt.block_on(async {
        let issuer = TestIssuer::start().await;
        let agent = issuer
            .admin()
            .create_agent(&CreateAgent::new("bench").scopes(["tickets:read"]))
            .await
            .expect("an agent")
            .data;
        let secret = issuer
            .admin()
            .add_secret(&agent.id, None)
            .await
            .expect("a secret")
            .secret;
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            agent.id,
            secret.expose()
        );
        let pkcs8 = lc::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("a key");
        let signer = lc::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key");
        let _ = signer.public_key();
        let fixed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"fixed","typ":"at+jwt"}"#),
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"iss":"{}","sub":"{}","aud":"{}","exp":0,"iat":0,"jti":"0","client_id":"{}","scope":"tickets:read","dat":{{"type":"agent"}}}}"#,
                issuer.url(),
                agent.id,
                agent.id,
                agent.id
            ))
        );
        let signer = std::sync::Arc::new(signer);
        let router = issuer.issuer().router().route(
            "/sign",
            axum::routing::post(move || {
                let token = format!("{fixed}.{}", URL_SAFE_NO_PAD.encode(signer.sign(fixed.as_bytes())));
                async move {
                    axum::Json(serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": 300 }))
                }
            }),
        );
        std::mem::forget(issuer);
        (router, form)
    });
    let call = |path: &'static str, form: String| {
        let router = router.clone();
        async move {
            let request = http::Request::post(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .expect("a request");
            let response = router.oneshot(request).await.expect("infallible");
            assert!(response.status().is_success());
            response.into_body().collect().await.expect("a body")
        }
    };
    c.bench_function("issuer/token_endpoint_in_process", |b| {
        b.to_async(&rt).iter(|| call("/token", form.clone()));
    });
    c.bench_function("issuer/sign_only_in_process", |b| {
        b.to_async(&rt).iter(|| call("/sign", String::new()));
    });
}

criterion_group!(benches, cold_start, token_endpoint);
criterion_main!(benches);
