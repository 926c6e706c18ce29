//! The admin key kept in the database: generated and printed at a first start only, kept
//! across restarts, replaced by `rotate-admin-key` (also on a running issuer), and overridden
//! by a key from the environment.
#![cfg(feature = "issuer")]

mod binary_support;

use binary_support::*;
use tokio::time::timeout;

#[tokio::test]
async fn a_generated_key_is_kept_across_restarts_and_printed_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");

    let first = RunningIssuer::on_file(&db).await;
    let id = first
        .printed("AGENT_AUTH_ADMIN_KEY_ID")
        .expect("printed at first start");
    let secret = first.printed("AGENT_AUTH_ADMIN_KEY_SECRET").unwrap();
    assert!(id.starts_with("key_"));
    assert_eq!(secret.len(), 42);
    assert_eq!(admin_status(&first.url, &id, &secret).await, 200);
    first.stop().await;

    let raw = std::fs::read(&db).unwrap();
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "only the hash is kept"
    );

    let second = RunningIssuer::on_file(&db).await;
    assert_eq!(
        second.printed("AGENT_AUTH_ADMIN_KEY_ID"),
        None,
        "no new key"
    );
    assert_eq!(second.printed("AGENT_AUTH_ADMIN_KEY_SECRET"), None);
    assert_eq!(
        admin_status(&second.url, &id, &secret).await,
        200,
        "the kept key works"
    );
    assert_eq!(admin_status(&second.url, &id, "wrong-secret").await, 401);
    second.stop().await;
}

#[tokio::test]
async fn rotate_admin_key_replaces_the_kept_key_on_a_running_issuer_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    let running = RunningIssuer::on_file(&db).await;
    let old_id = running.printed("AGENT_AUTH_ADMIN_KEY_ID").unwrap();
    let old_secret = running.printed("AGENT_AUTH_ADMIN_KEY_SECRET").unwrap();

    let out = timeout(
        WAIT,
        issuer_cmd(&["rotate-admin-key", "--db", db.to_str().unwrap()]).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(stdout.len(), 2, "two lines: {stdout:?}");
    let new_id = printed(&stdout, "AGENT_AUTH_ADMIN_KEY_ID").unwrap();
    let new_secret = printed(&stdout, "AGENT_AUTH_ADMIN_KEY_SECRET").unwrap();
    assert_ne!(new_secret, old_secret);

    // The running issuer rereads the kept key at each flush (every second): wait for the
    // switch, bounded.
    let switched = async {
        while admin_status(&running.url, &new_id, &new_secret).await != 200 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    timeout(WAIT, switched)
        .await
        .expect("the new key is taken up");
    assert_eq!(admin_status(&running.url, &old_id, &old_secret).await, 401);
    running.stop().await;

    let restarted = RunningIssuer::on_file(&db).await;
    assert_eq!(restarted.printed("AGENT_AUTH_ADMIN_KEY_ID"), None);
    assert_eq!(
        admin_status(&restarted.url, &new_id, &new_secret).await,
        200
    );
    assert_eq!(
        admin_status(&restarted.url, &old_id, &old_secret).await,
        401
    );
    restarted.stop().await;
}

#[tokio::test]
async fn a_key_from_the_environment_takes_precedence_over_the_kept_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    let first = RunningIssuer::on_file(&db).await;
    let kept_id = first.printed("AGENT_AUTH_ADMIN_KEY_ID").unwrap();
    let kept_secret = first.printed("AGENT_AUTH_ADMIN_KEY_SECRET").unwrap();
    first.stop().await;

    let mut cmd = issuer_cmd(&["--db", db.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    cmd.env("AGENT_AUTH_ADMIN_KEY_ID", KEY_ID)
        .env("AGENT_AUTH_ADMIN_KEY_SECRET", KEY_SECRET);
    let env = RunningIssuer::spawn(cmd).await;
    assert_eq!(env.printed("AGENT_AUTH_ADMIN_KEY_ID"), None);
    assert_eq!(admin_status(&env.url, KEY_ID, KEY_SECRET).await, 200);
    assert_eq!(admin_status(&env.url, &kept_id, &kept_secret).await, 401);
    env.stop().await;

    // The environment's key was not stored: without it, the kept key is back.
    let again = RunningIssuer::on_file(&db).await;
    assert_eq!(admin_status(&again.url, &kept_id, &kept_secret).await, 200);
    assert_eq!(admin_status(&again.url, KEY_ID, KEY_SECRET).await, 401);
    again.stop().await;
}

#[tokio::test]
async fn rotate_admin_key_without_db_is_a_usage_error() {
    let out = timeout(WAIT, issuer_cmd(&["rotate-admin-key"]).output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
