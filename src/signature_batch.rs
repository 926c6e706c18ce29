//! Ed25519 batch verification of concurrent fresh tokens.
//!
//! The signature is most of a fresh token's cost. When several requests bring fresh EdDSA
//! tokens at the same time, their signatures are checked together: ed25519-zebra's
//! batch verifier checks 16 or more under one key in about a third of the time per signature
//! of checking each alone (BENCHMARKS.md).
//!
//! A batch forms without a timer or a task of its own. A request queues its job and yields to
//! the scheduler; the first queued request to run again takes up to [`MAX_BATCH`] jobs from
//! its queue, oldest first, and verifies them together, answering each through its own
//! channel. Requests that arrived meanwhile (other connections the scheduler polled) are in the
//! batch; a lone request finds only its own job and is verified alone, as without batching. A
//! request whose job is still queued yields again and takes the next batch, so one poll never
//! does more than one batch of work. Queues are per thread, so the workers of a multi-thread
//! runtime each batch their own requests; a job's owner always drains the queue it used, so no
//! job waits for a thread that has moved on.
//!
//! Verdicts. A batch that passes accepts all its members. A batch that fails is checked again
//! one signature at a time by the same code as unbatched verification, so a bad signature only
//! ever rejects its own request; batching then pauses for [`PAUSE_AFTER_FAILURE`], so a stream
//! of bad signatures costs what verifying them singly costs. Signatures that fail cheap checks
//! (`S` ≥ L, a non-canonical `R` encoding) never join a batch.
//!
//! The batch equation is RFC 8032 §5.1.7's cofactored group equation, summed over the batch
//! with random 128-bit coefficients from the OS (ed25519-zebra, which also merges the terms of
//! signatures under one key). A batch holding a signature made without the private key passes
//! with probability about 2⁻¹²⁸. A signature checked alone meets the same rule
//! ([`crate::ed25519`]): a token's verdict never depends on what arrived with it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::InvalidToken;
use crate::jwks::VerifyingKey;

/// Jobs in one batch, and so the work of one poll: the gain levels off by 16 (BENCHMARKS.md),
/// and a batch holds up its worker for its whole length.
const MAX_BATCH: usize = 32;

/// How long batching stays off after a batch failed.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Queues; a thread always uses the same one.
const QUEUES: usize = 16;

/// One signature waiting for its batch.
struct Job {
    /// `signing input "." signature`, owned: the submitter may be gone by the time it runs
    /// (then the job stays queued until the next request on its thread takes it).
    token: Box<str>,
    /// Where the signature starts in `token`.
    signature_at: usize,
    signature: ed25519_zebra::Signature,
    key: Arc<VerifyingKey>,
    answer: oneshot::Sender<bool>,
}

impl Job {
    fn signing_input(&self) -> &[u8] {
        self.token[..self.signature_at - 1].as_bytes()
    }

    /// The unbatched check, byte for byte the path without batching.
    fn verify_alone(&self) -> bool {
        self.key
            .verify(self.signing_input(), &self.token[self.signature_at..])
            .is_ok()
    }
}

/// Batches Ed25519 signature checks of requests that run concurrently.
pub(crate) struct SignatureBatcher {
    queues: [Mutex<Vec<Job>>; QUEUES],
    started: Instant,
    /// Milliseconds after `started` before which batching is off.
    paused_until_ms: AtomicU64,
    /// Batches verified (of two or more signatures), for tests and tracing.
    batches: AtomicU64,
    largest_batch: AtomicUsize,
}

impl std::fmt::Debug for SignatureBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureBatcher")
            .field("batches", &self.batches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for SignatureBatcher {
    fn default() -> Self {
        SignatureBatcher {
            queues: std::array::from_fn(|_| Mutex::new(Vec::new())),
            started: Instant::now(),
            paused_until_ms: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            largest_batch: AtomicUsize::new(0),
        }
    }
}

impl SignatureBatcher {
    /// Checks `signature` (base64url, as in the token) over `signing_input` with `key`,
    /// together with whatever other requests are checking signatures at the same time.
    pub(crate) async fn verify(
        &self,
        key: &Arc<VerifyingKey>,
        signing_input: &str,
        signature: &str,
    ) -> Result<(), InvalidToken> {
        let holds = self.verdict(key, signing_input, signature).await;
        if holds {
            Ok(())
        } else {
            Err(InvalidToken::BadSignature)
        }
    }

    async fn verdict(&self, key: &Arc<VerifyingKey>, signing_input: &str, signature: &str) -> bool {
        let Some(decoded) = self.batchable(key, signature) else {
            return key.verify(signing_input.as_bytes(), signature).is_ok();
        };
        let mut token = String::with_capacity(signing_input.len() + 1 + signature.len());
        token.push_str(signing_input);
        token.push('.');
        token.push_str(signature);
        let (answer, mut verdict) = oneshot::channel();
        let queue = queue_of_this_thread();
        lock(&self.queues[queue]).push(Job {
            token: token.into_boxed_str(),
            signature_at: signing_input.len() + 1,
            signature: decoded,
            key: key.clone(),
            answer,
        });
        loop {
            // Let the other requests that are ready run up to this point, then check a batch.
            tokio::task::yield_now().await;
            let took_jobs = self.run_one_batch(queue);
            match verdict.try_recv() {
                Ok(verdict) => return verdict,
                // Our job is still queued behind a full batch: take the next one.
                Err(oneshot::error::TryRecvError::Empty) if took_jobs => {}
                // Another thread took our job and answers when its batch is done. A dropped
                // answer is a refusal.
                Err(oneshot::error::TryRecvError::Empty) => return verdict.await.unwrap_or(false),
                Err(oneshot::error::TryRecvError::Closed) => return false,
            }
        }
    }

    /// The decoded signature, when this check can join a batch: an EdDSA key, a signature of
    /// the right form with a canonical `S` and `R`, batching not paused, and a tokio runtime
    /// to yield to. Anything else is checked alone, at once.
    fn batchable(&self, key: &VerifyingKey, signature: &str) -> Option<ed25519_zebra::Signature> {
        key.ed25519()?;
        if self.paused() {
            return None;
        }
        tokio::runtime::Handle::try_current().ok()?;
        crate::ed25519::decode_signature(signature)
    }

    fn paused(&self) -> bool {
        self.elapsed_ms() < self.paused_until_ms.load(Ordering::Relaxed)
    }

    /// Takes up to [`MAX_BATCH`] jobs from `queue`, oldest first, and answers them; `false`
    /// when the queue was empty.
    fn run_one_batch(&self, queue: usize) -> bool {
        let jobs: Vec<Job> = {
            let mut queued = lock(&self.queues[queue]);
            let take = queued.len().min(MAX_BATCH);
            queued.drain(..take).collect()
        };
        if jobs.is_empty() {
            return false;
        }
        self.answer(jobs);
        true
    }

    fn answer(&self, jobs: Vec<Job>) {
        let verdicts: Vec<bool> = match jobs.as_slice() {
            [job] => vec![job.verify_alone()],
            // Batching paused while these waited: check them one by one.
            _ if self.paused() => jobs.iter().map(Job::verify_alone).collect(),
            _ if self.batch_holds(&jobs) => vec![true; jobs.len()],
            _ => {
                let until = self.elapsed_ms() + PAUSE_AFTER_FAILURE.as_millis() as u64;
                self.paused_until_ms.fetch_max(until, Ordering::Relaxed);
                tracing::debug!(
                    batch = jobs.len(),
                    "signature batch failed; checking one by one"
                );
                jobs.iter().map(Job::verify_alone).collect()
            }
        };
        for (job, verdict) in jobs.into_iter().zip(verdicts) {
            // The submitter may have gone (request cancelled): nobody to tell.
            let _ = job.answer.send(verdict);
        }
    }

    fn batch_holds(&self, jobs: &[Job]) -> bool {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.largest_batch.fetch_max(jobs.len(), Ordering::Relaxed);
        let mut batch = ed25519_zebra::batch::Verifier::new();
        for job in jobs {
            let Some(key) = job.key.ed25519() else {
                return false;
            };
            batch.queue((key, job.signature, job.signing_input()));
        }
        batch.verify(rand_core::OsRng).is_ok()
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// (batches of two or more verified, largest batch).
    #[cfg(test)]
    pub(crate) fn stats(&self) -> (u64, usize) {
        (
            self.batches.load(Ordering::Relaxed),
            self.largest_batch.load(Ordering::Relaxed),
        )
    }
}

fn lock(queue: &Mutex<Vec<Job>>) -> std::sync::MutexGuard<'_, Vec<Job>> {
    // Nothing panics while the lock is held (push and take), so poisoning cannot happen; if it
    // did, the queue itself is still consistent.
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

fn queue_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static QUEUE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % QUEUES;
    }
    QUEUE.with(|queue| *queue)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use crate::ed25519::is_canonical_point_encoding;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use futures_util::future::join_all;

    use super::*;

    struct Signer {
        pair: Ed25519KeyPair,
        key: Arc<VerifyingKey>,
    }

    fn signer() -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x }).to_string();
        let raw = serde_json::value::RawValue::from_string(jwk).unwrap();
        let key = Arc::new(VerifyingKey::from_jwk(&raw).unwrap());
        Signer { pair, key }
    }

    impl Signer {
        /// A signing input and its base64url signature.
        fn sign(&self, n: usize) -> (String, String) {
            let input = format!(
                "eyJhbGciOiJFZERTQSJ9.{}",
                URL_SAFE_NO_PAD.encode(format!("{{\"n\":{n}}}"))
            );
            let signature = URL_SAFE_NO_PAD.encode(self.pair.sign(input.as_bytes()));
            (input, signature)
        }
    }

    /// A signature with one bit flipped: well-formed, wrong.
    fn corrupt(signature: &str) -> String {
        edit(signature, |bytes| bytes[5] ^= 1)
    }

    /// `signature` (base64url) with its bytes changed by `change`.
    fn edit(signature: &str, change: impl FnOnce(&mut [u8])) -> String {
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        change(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    async fn verify_all(
        batcher: &SignatureBatcher,
        key: &Arc<VerifyingKey>,
        cases: &[(String, String)],
    ) -> Vec<bool> {
        join_all(
            cases
                .iter()
                .map(|(input, signature)| batcher.verdict(key, input, signature)),
        )
        .await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_valid_signatures_are_verified_as_one_batch() {
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let cases: Vec<_> = (0..16).map(|n| signer.sign(n)).collect();
        let verdicts = verify_all(&batcher, &signer.key, &cases).await;
        assert_eq!(verdicts, vec![true; 16]);
        assert_eq!(batcher.stats(), (1, 16));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_bad_signature_in_a_batch_rejects_only_its_own_request() {
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let mut cases: Vec<_> = (0..16).map(|n| signer.sign(n)).collect();
        cases[7].1 = corrupt(&cases[7].1);
        let verdicts = verify_all(&batcher, &signer.key, &cases).await;
        let expected: Vec<bool> = (0..16).map(|n| n != 7).collect();
        assert_eq!(verdicts, expected);
        assert_eq!(batcher.stats(), (1, 16));

        // Batching pauses after a failed batch: the next concurrent checks go one by one.
        let cases: Vec<_> = (16..24).map(|n| signer.sign(n)).collect();
        assert_eq!(
            verify_all(&batcher, &signer.key, &cases).await,
            vec![true; 8]
        );
        assert_eq!(batcher.stats(), (1, 16), "no batch while paused");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_signature_over_another_input_is_refused_in_a_batch() {
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let mut cases: Vec<_> = (0..8).map(|n| signer.sign(n)).collect();
        // Swap two signatures: each is genuine, but over the other input.
        let first = cases[0].1.clone();
        cases[0].1 = cases[1].1.clone();
        cases[1].1 = first;
        let verdicts = verify_all(&batcher, &signer.key, &cases).await;
        assert_eq!(
            verdicts,
            vec![false, false, true, true, true, true, true, true]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_non_canonical_s_is_refused_in_a_batch() {
        // S + L verifies under the group equation but is malleated (RFC 8032 §5.1.7: S < L).
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let mut cases: Vec<_> = (0..8).map(|n| signer.sign(n)).collect();
        cases[3].1 = edit(&cases[3].1, |bytes| {
            let mut carry = 0u16;
            for (byte, l) in bytes[32..].iter_mut().zip(L) {
                let sum = u16::from(*byte) + u16::from(l) + carry;
                *byte = sum as u8;
                carry = sum >> 8;
            }
            assert_eq!(carry, 0, "S + L fits in 256 bits");
        });
        let verdicts = verify_all(&batcher, &signer.key, &cases).await;
        let expected: Vec<bool> = (0..8).map(|n| n != 3).collect();
        assert_eq!(verdicts, expected);
    }

    /// A key pair by hand (scalar `a`, `A = [a]B`) and a signature of `input` whose `R` has a
    /// small-order component: `R = [r]B + T`, `S = r + k·a`. It satisfies the cofactored
    /// equation and not the cofactorless one; only the private key's holder can make it.
    fn small_order_r_signature(input: &str) -> (Arc<VerifyingKey>, String, Vec<u8>) {
        use curve25519_dalek::Scalar;
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        let wide = |bytes: &[u8]| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, bytes);
            Scalar::from_bytes_mod_order_wide(digest.as_ref().try_into().unwrap())
        };
        let a = wide(b"the private scalar of this test");
        let public = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        let r = wide(b"the nonce of this test");
        let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1])
            .compress()
            .to_bytes();
        let k = wide(&[&big_r[..], &public[..], input.as_bytes()].concat());
        let s = r + k * a;
        let signature = [&big_r[..], s.as_bytes()].concat();
        let jwk = serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(public)
        });
        let raw = serde_json::value::RawValue::from_string(jwk.to_string()).unwrap();
        let key = Arc::new(VerifyingKey::from_jwk(&raw).unwrap());
        (key, URL_SAFE_NO_PAD.encode(&signature), public.to_vec())
    }

    /// Finding 10 of the hardening review: such a signature was refused alone and accepted in
    /// a batch of 32, and the verified-token cache then kept the acceptance.
    #[tokio::test(flavor = "current_thread")]
    async fn a_signature_with_a_small_order_r_gets_the_same_verdict_alone_and_in_a_batch() {
        let input = "eyJhbGciOiJFZERTQSJ9.eyJuIjowfQ";
        let (key, signature, public) = small_order_r_signature(input);
        // It is the kind of signature the two equations disagree on: aws-lc-rs (cofactorless)
        // refuses it.
        let raw = URL_SAFE_NO_PAD.decode(&signature).unwrap();
        assert!(
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &public)
                .verify(input.as_bytes(), &raw)
                .is_err()
        );
        let batcher = SignatureBatcher::default();
        let alone = batcher.verdict(&key, input, &signature).await;
        assert_eq!(batcher.stats(), (0, 0), "checked alone");
        // The same signature among 31 others under the same key, as one batch.
        let mut cases: Vec<(String, String)> = (1..32)
            .map(|n| {
                let input = format!(
                    "eyJhbGciOiJFZERTQSJ9.{}",
                    URL_SAFE_NO_PAD.encode(format!("{{\"n\":{n}}}"))
                );
                let (_, signature, _) = small_order_r_signature(&input);
                (input, signature)
            })
            .collect();
        cases.push((input.to_owned(), signature.clone()));
        let batched = verify_all(&batcher, &key, &cases).await;
        assert_eq!(batcher.stats(), (1, 32), "checked as one batch");
        assert_eq!(batched[31], alone);
        assert_eq!(batched, vec![alone; 32]);
        // The rule chosen (SECURITY.md): the cofactored equation accepts it, alone or not.
        assert!(alone);
        // Batching off checks with the same rule.
        assert_eq!(key.verify(input.as_bytes(), &signature).is_ok(), alone);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lone_request_is_verified_alone() {
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let (input, signature) = signer.sign(0);
        assert!(batcher.verdict(&signer.key, &input, &signature).await);
        assert!(
            !batcher
                .verdict(&signer.key, &input, &corrupt(&signature))
                .await
        );
        assert_eq!(batcher.stats(), (0, 0), "no batch of one");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_request_does_not_strand_the_others() {
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let cases: Vec<_> = (0..3).map(|n| signer.sign(n)).collect();
        let mut context = Context::from_waker(Waker::noop());
        // The first request queues its job, then its caller goes away.
        {
            let mut first = pin!(batcher.verdict(&signer.key, &cases[0].0, &cases[0].1));
            assert!(first.as_mut().poll(&mut context).is_pending());
        }
        let rest = verify_all(&batcher, &signer.key, &cases[1..]).await;
        assert_eq!(rest, vec![true, true]);
        assert_eq!(
            batcher.stats(),
            (1, 3),
            "the orphaned job was checked with the rest"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_threads_get_every_verdict_right() {
        let signer = Arc::new(signer());
        let batcher = Arc::new(SignatureBatcher::default());
        let tasks: Vec<_> = (0..256)
            .map(|n| {
                let (signer, batcher) = (signer.clone(), batcher.clone());
                tokio::spawn(async move {
                    let (input, signature) = signer.sign(n);
                    // Every 64th is bad, so a few batches fail and pause batching.
                    let signature = if n % 64 == 63 {
                        corrupt(&signature)
                    } else {
                        signature
                    };
                    (n, batcher.verdict(&signer.key, &input, &signature).await)
                })
            })
            .collect();
        for task in tasks {
            let (n, verdict) = task.await.unwrap();
            assert_eq!(verdict, n % 64 != 63, "request {n}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn more_concurrent_checks_than_a_batch_are_split_into_batches() {
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let cases: Vec<_> = (0..80).map(|n| signer.sign(n)).collect();
        let verdicts = verify_all(&batcher, &signer.key, &cases).await;
        assert_eq!(verdicts, vec![true; 80]);
        assert_eq!(batcher.stats(), (3, MAX_BATCH), "32 + 32 + 16");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_non_canonical_r_never_joins_a_batch() {
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let mut cases: Vec<_> = (0..8).map(|n| signer.sign(n)).collect();
        // y = p: the non-canonical encoding of y = 0.
        cases[2].1 = edit(&cases[2].1, |bytes| {
            bytes[..32].copy_from_slice(&[0xff; 32]);
            bytes[0] = 0xed;
            bytes[31] = 0x7f;
        });
        let verdicts = verify_all(&batcher, &signer.key, &cases).await;
        let expected: Vec<bool> = (0..8).map(|n| n != 2).collect();
        assert_eq!(verdicts, expected);
        assert_eq!(batcher.stats(), (1, 7), "checked alone, the others batched");
    }

    #[test]
    fn canonical_point_encodings_are_told_apart() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let with = |first: u8, last: u8| {
            let mut bytes = p;
            bytes[0] = first;
            bytes[31] = last;
            bytes
        };
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut negative_one = one;
        negative_one[31] = 0x80;
        assert!(is_canonical_point_encoding(&with(0xec, 0x7f)), "y = p - 1");
        assert!(
            !is_canonical_point_encoding(&with(0xec, 0xff)),
            "x = 0 with a sign"
        );
        assert!(!is_canonical_point_encoding(&p), "y = p");
        assert!(
            !is_canonical_point_encoding(&with(0xff, 0xff)),
            "y = 2^255 - 1"
        );
        assert!(is_canonical_point_encoding(&one), "y = 1");
        assert!(
            !is_canonical_point_encoding(&negative_one),
            "y = 1 with a sign"
        );
        let point = curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED;
        assert!(is_canonical_point_encoding(point.as_bytes()));
        assert!(!is_canonical_point_encoding(&[0u8; 31]), "short");
    }

    #[test]
    fn without_a_runtime_the_check_completes_at_once() {
        let (signer, batcher) = (signer(), SignatureBatcher::default());
        let (input, signature) = signer.sign(0);
        let mut context = Context::from_waker(Waker::noop());
        let mut check = pin!(batcher.verdict(&signer.key, &input, &signature));
        assert_eq!(check.as_mut().poll(&mut context), Poll::Ready(true));
    }
}
