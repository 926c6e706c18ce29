//! The issuer's start-up: `TestIssuer::start` (SQLite in memory, migrations, a fresh signing key,
//! a listener on 127.0.0.1:0) to a served JWKS, and a shutdown — what each issuer test pays
//! before its first request. The budget is 50 ms.
//!
//! `cargo bench --all-features --bench issuer`; `-- --test` runs it once (CI smoke).

use agent_auth::issuer::TestIssuer;
use criterion::{Criterion, criterion_group, criterion_main};

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

criterion_group!(benches, cold_start);
criterion_main!(benches);
