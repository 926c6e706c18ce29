//! Token endpoint throughput over HTTP on 127.0.0.1: SQLite (a file), PostgreSQL with one
//! replica and with two (the load alternating between them), each with batched and with durable
//! (written with each token) usage counters. One run, one process: the ratios are what it shows.
//!
//! `cargo bench --features postgres --bench replicas`; `-- --test` is a smoke run (CI). Needs
//! PostgreSQL installed (a throwaway server is started as in the tests, but with PostgreSQL's
//! default durability: `fsync` and synchronous commits on, as SQLite's `synchronous=FULL`);
//! without it only the SQLite rows run, unless `AGENT_AUTH_REQUIRE_POSTGRES=1`.

use std::sync::Arc;
use std::time::Instant;

use agent_auth::issuer::{
    AdminClient, AdminKey, CreateAgent, Database, Issuer, KeyEncryptionKey, POSTGRES_SKIPPED,
    TestPostgres,
};

struct Setup {
    name: &'static str,
    bases: Vec<String>,
    agent: String,
    secret: String,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

async fn replica(
    db: &Database,
    admin: &AdminKey,
    kek: &[u8; 32],
    durable: bool,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    let issuer = Issuer::builder()
        .issuer_url("https://issuer.bench.test")
        .admin_key(admin.clone())
        .database(db.clone())
        .key_encryption_key(KeyEncryptionKey::from_bytes(kek).expect("32 bytes"))
        .durable_counters(durable)
        .build()
        .await
        .expect("the issuer builds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(issuer.serve(listener, async move {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop)
}

async fn setup(name: &'static str, db: Database, replicas: usize, durable: bool) -> Setup {
    let admin = AdminKey::generate().expect("randomness");
    let kek = [9u8; 32];
    let mut bases = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..replicas {
        let (base, stop) = replica(&db, &admin, &kek, durable).await;
        bases.push(base);
        stops.push(stop);
    }
    let client = AdminClient::new(&bases[0], admin).expect("an admin client");
    let agent = client
        .create_agent(&CreateAgent::new("bench"))
        .await
        .expect("an agent")
        .data;
    let secret = client
        .add_secret(&agent.id, None)
        .await
        .expect("a secret")
        .secret;
    Setup {
        name,
        bases,
        agent: agent.id,
        secret: secret.expose().to_owned(),
        _stops: stops,
    }
}

/// Tokens per second with `clients` concurrent keep-alive clients, `total` requests in all.
async fn throughput(s: &Setup, clients: usize, total: usize) -> f64 {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let body = Arc::new(format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        s.agent, s.secret
    ));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, body) = (http.clone(), Arc::clone(&body));
        let base = s.bases[c % s.bases.len()].clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / clients {
                let res = http
                    .post(format!("{base}/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.as_str().to_owned())
                    .send()
                    .await
                    .expect("the token endpoint answers");
                assert!(res.status().is_success(), "{}", res.status());
                res.bytes().await.expect("a body");
            }
        }));
    }
    for t in tasks {
        t.await.expect("a client task");
    }
    (total / clients * clients) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let (clients, total) = if smoke { (2, 20) } else { (16, 8_000) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pg = TestPostgres::start_durable()
            .await
            .expect("PostgreSQL starts");
        let mut setups = vec![
            (
                "sqlite",
                Database::Sqlite(dir.path().join("b.db")),
                1,
                false,
            ),
            (
                "sqlite, durable counters",
                Database::Sqlite(dir.path().join("d.db")),
                1,
                true,
            ),
        ];
        match &pg {
            Some(pg) => {
                for (name, replicas, durable) in [
                    ("postgres, 1 replica", 1, false),
                    ("postgres, 2 replicas", 2, false),
                    ("postgres, 1 replica, durable counters", 1, true),
                    ("postgres, 2 replicas, durable counters", 2, true),
                ] {
                    let url = pg.create_database().await.expect("a database");
                    setups.push((name, Database::Postgres(url), replicas, durable));
                }
            }
            None => println!("{POSTGRES_SKIPPED}"),
        }
        println!("| setup | tokens/s | vs sqlite |");
        println!("|---|---:|---:|");
        let mut base = None;
        for (name, db, replicas, durable) in setups {
            let s = setup(name, db, replicas, durable).await;
            // Warm-up: connections, prepared statements.
            throughput(&s, clients, clients * 4).await;
            let rate = throughput(&s, clients, total).await;
            let first = *base.get_or_insert(rate);
            println!("| {} | {rate:.0} | {:.2} |", s.name, rate / first);
            drop(s);
        }
    });
}
