//! Signing keys encrypted at rest (DESIGN §7): AES-256-GCM under
//! `AGENT_AUTH_KEY_ENCRYPTION_KEY`, required for PostgreSQL, used for SQLite when set. The
//! stored bytes are read back with the databases' own clients.
//!
//! The PostgreSQL test prints `SKIPPED: PostgreSQL not installed` and returns without
//! PostgreSQL, unless `AGENT_AUTH_REQUIRE_POSTGRES=1` (CI).

mod binary_support;

use std::path::Path;

use agent_auth::issuer::{
    AdminKey, Database, Issuer, IssuerError, KeyEncryptionKey, POSTGRES_SKIPPED, StorageError,
    TestPostgres,
};
use binary_support::issuer_cmd;

const KEK: [u8; 32] = [7; 32];

async fn build(db: Database, kek: Option<[u8; 32]>) -> Result<Issuer, IssuerError> {
    let mut b = Issuer::builder()
        .issuer_url("http://127.0.0.1:1")
        .admin_key(AdminKey::generate().unwrap())
        .database(db);
    if let Some(k) = kek {
        b = b.key_encryption_key(KeyEncryptionKey::from_bytes(&k).unwrap());
    }
    b.build().await
}

/// The stored form of every signing key in a SQLite file.
fn sqlite_keys(path: &Path) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT pkcs8 FROM signing_keys").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn sealed(stored: &[u8]) -> bool {
    // Sealed: the marker, a nonce, the ciphertext; never a PKCS#8 DER SEQUENCE (0x30).
    stored.starts_with(b"aek1") && stored.len() > 4 + 12 + 16
}

#[tokio::test]
async fn sqlite_keys_are_sealed_with_a_key_and_open_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.db");
    let db = || Database::Sqlite(path.clone());
    let kid = build(db(), Some(KEK)).await.unwrap().signing_kid();
    let stored = sqlite_keys(&path);
    assert_eq!(stored.len(), 1);
    assert!(sealed(&stored[0]));
    // The same key opens it: the same signing key after a restart.
    assert_eq!(build(db(), Some(KEK)).await.unwrap().signing_kid(), kid);
    // Without it, or with another, the issuer refuses to start.
    assert!(matches!(
        build(db(), None).await,
        Err(IssuerError::Storage(StorageError::KeyEncryptionKeyMissing))
    ));
    assert!(matches!(
        build(db(), Some([8; 32])).await,
        Err(IssuerError::Storage(StorageError::KeyDecryption { kid: k })) if k == kid
    ));
}

#[tokio::test]
async fn plain_sqlite_keys_are_sealed_at_the_first_start_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuer.db");
    let kid = build(Database::Sqlite(path.clone()), None)
        .await
        .unwrap()
        .signing_kid();
    assert_eq!(sqlite_keys(&path)[0][0], 0x30, "plain PKCS#8 without a key");
    let again = build(Database::Sqlite(path.clone()), Some(KEK))
        .await
        .unwrap();
    assert_eq!(again.signing_kid(), kid);
    assert!(sealed(&sqlite_keys(&path)[0]));
}

#[tokio::test]
async fn postgres_requires_a_key_and_stores_signing_keys_sealed() {
    // Refused before any connection is made.
    assert!(matches!(
        build(
            Database::Postgres("postgres://127.0.0.1:1/none".into()),
            None
        )
        .await,
        Err(IssuerError::KeyEncryptionKeyRequired)
    ));
    let Some(pg) = TestPostgres::start().await.unwrap() else {
        println!("{POSTGRES_SKIPPED}");
        return;
    };
    let url = pg.create_database().await.unwrap();
    let issuer = build(Database::Postgres(url.clone()), Some(KEK))
        .await
        .unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query("SELECT kid, pkcs8 FROM signing_keys", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), issuer.signing_kid());
    assert!(sealed(&rows[0].get::<_, Vec<u8>>(1)));
}

#[tokio::test]
async fn the_binary_exits_2_without_a_key_for_postgres_or_with_a_malformed_one() {
    let out = issuer_cmd(&[
        "--listen",
        "127.0.0.1:0",
        "--db",
        "postgres://127.0.0.1:1/x",
    ])
    .env_remove("AGENT_AUTH_KEY_ENCRYPTION_KEY")
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AGENT_AUTH_KEY_ENCRYPTION_KEY"), "{err}");

    for bad in ["not base64!", "c2hvcnQ"] {
        let out = issuer_cmd(&["--listen", "127.0.0.1:0", "--in-memory"])
            .env("AGENT_AUTH_KEY_ENCRYPTION_KEY", bad)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("AGENT_AUTH_KEY_ENCRYPTION_KEY"), "{err}");
        assert!(!err.contains(bad), "the value is not echoed: {err}");
    }
}
