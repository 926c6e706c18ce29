//! Which crypto backend, and what our verification path costs on top of the signature.
//!
//! * `ed25519`, `es256`, `rs256`: raw signature verification of the same agent-token signing
//!   input with aws-lc-rs (the backend jsonwebtoken uses here) and with RustCrypto
//!   (ed25519-dalek, p256, rsa: what jsonwebtoken's `rust_crypto` feature uses).
//!
//! * `ed25519_batch_of_32`: 32 signatures under one key, as the signature batch of concurrent
//!   fresh tokens checks them: aws-lc-rs one by one, ed25519-dalek's `verify_batch`, and
//!   ed25519-zebra's batch (which merges the terms of one key). Divide by 32 for a signature.
//!
//! Our own verification path against the bare signature is `benches/verify.rs`.
//!
//! `cargo bench --bench backends`; compare lines within one group (same run, same machine).

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(alg: &str, issuer: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({ "alg": alg, "kid": "bench", "typ": "at+jwt" });
    let claims = json!({
        "iss": issuer, "sub": "agt_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5",
        "aud": "https://api.example.com/tickets", "exp": now + 3600, "iat": now,
        "jti": "3f1c8a0e-bench", "client_id": "agt_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5",
        "scope": "tickets:read tickets:triage", "dat": { "type": "agent" },
    });
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

fn ed25519(c: &mut Criterion) {
    let pkcs8 = lc::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = lc::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
    let message = signing_input("EdDSA", "http://127.0.0.1:8080");
    let signature = pair.sign(message.as_bytes()).as_ref().to_vec();
    let dalek_signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();

    let mut group = c.benchmark_group("ed25519");
    group.bench_function("aws_lc_rs", |b| {
        b.iter(|| {
            lc::UnparsedPublicKey::new(&lc::ED25519, black_box(&public))
                .verify(black_box(message.as_bytes()), black_box(&signature))
                .unwrap()
        })
    });
    group.bench_function("dalek_strict_prebuilt_key", |b| {
        b.iter(|| {
            dalek_key
                .verify_strict(black_box(message.as_bytes()), black_box(&dalek_signature))
                .unwrap()
        })
    });
    group.bench_function("dalek_key_rebuilt_per_call", |b| {
        b.iter(|| {
            ed25519_dalek::VerifyingKey::from_bytes(black_box(&public))
                .unwrap()
                .verify_strict(black_box(message.as_bytes()), black_box(&dalek_signature))
                .unwrap()
        })
    });
    group.finish();
}

fn ed25519_batch(c: &mut Criterion) {
    const N: usize = 32;
    let pkcs8 = lc::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = lc::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
    let messages: Vec<String> = (0..N)
        .map(|i| signing_input("EdDSA", &format!("http://127.0.0.1:{}", 8000 + i)))
        .collect();
    let signatures: Vec<[u8; 64]> = messages
        .iter()
        .map(|m| pair.sign(m.as_bytes()).as_ref().try_into().unwrap())
        .collect();
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    let dalek_keys = vec![dalek_key; N];
    let dalek_signatures: Vec<_> = signatures
        .iter()
        .map(ed25519_dalek::Signature::from_bytes)
        .collect();
    let message_bytes: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
    let zebra_key = ed25519_zebra::VerificationKeyBytes::from(public);

    let mut group = c.benchmark_group("ed25519_batch_of_32");
    group.bench_function("aws_lc_rs_one_by_one", |b| {
        b.iter(|| {
            for (message, signature) in message_bytes.iter().zip(&signatures) {
                lc::UnparsedPublicKey::new(&lc::ED25519, black_box(&public))
                    .verify(message, signature)
                    .unwrap();
            }
        })
    });
    group.bench_function("dalek_verify_batch", |b| {
        b.iter(|| {
            ed25519_dalek::verify_batch(
                black_box(&message_bytes),
                black_box(&dalek_signatures),
                &dalek_keys,
            )
            .unwrap()
        })
    });
    group.bench_function("zebra_batch", |b| {
        b.iter(|| {
            let mut batch = ed25519_zebra::batch::Verifier::new();
            for (message, signature) in message_bytes.iter().zip(&signatures) {
                batch.queue((
                    zebra_key,
                    ed25519_zebra::Signature::from_bytes(signature),
                    black_box(*message),
                ));
            }
            batch.verify(rand_core::OsRng).unwrap()
        })
    });
    group.finish();
}

fn es256(c: &mut Criterion) {
    use p256::ecdsa::signature::Verifier as _;
    let pair = lc::EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let public = pair.public_key().as_ref().to_vec();
    let message = signing_input("ES256", "http://127.0.0.1:8080");
    let signature = pair
        .sign(&SystemRandom::new(), message.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    let rc_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).unwrap();
    let rc_signature = p256::ecdsa::Signature::from_slice(&signature).unwrap();

    let mut group = c.benchmark_group("es256");
    group.bench_function("aws_lc_rs", |b| {
        b.iter(|| {
            lc::UnparsedPublicKey::new(&lc::ECDSA_P256_SHA256_FIXED, black_box(&public))
                .verify(black_box(message.as_bytes()), black_box(&signature))
                .unwrap()
        })
    });
    group.bench_function("rust_crypto", |b| {
        b.iter(|| {
            rc_key
                .verify(black_box(message.as_bytes()), black_box(&rc_signature))
                .unwrap()
        })
    });
    group.finish();
}

fn rs256(c: &mut Criterion) {
    use rsa::signature::Verifier as _;
    let pair = lc::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let n = pair
        .public_key()
        .modulus()
        .big_endian_without_leading_zero()
        .to_vec();
    let e = pair
        .public_key()
        .exponent()
        .big_endian_without_leading_zero()
        .to_vec();
    let message = signing_input("RS256", "http://127.0.0.1:8080");
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &lc::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .unwrap();
    let components = lc::RsaPublicKeyComponents { n: &n, e: &e };
    let rc_key = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(
        rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from_bytes_be(&e),
        )
        .unwrap(),
    );
    let rc_signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).unwrap();

    let mut group = c.benchmark_group("rs256");
    group.bench_function("aws_lc_rs", |b| {
        b.iter(|| {
            components
                .verify(
                    &lc::RSA_PKCS1_2048_8192_SHA256,
                    black_box(message.as_bytes()),
                    black_box(&signature),
                )
                .unwrap()
        })
    });
    group.bench_function("rust_crypto", |b| {
        b.iter(|| {
            rc_key
                .verify(black_box(message.as_bytes()), black_box(&rc_signature))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, ed25519, ed25519_batch, es256, rs256);
criterion_main!(benches);
