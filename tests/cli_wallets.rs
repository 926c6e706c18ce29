//! The `agent-auth` CLI's wallet commands against the real `agent-auth-issuer` binary:
//! `wallets add` (canonical form, refusals with exit 1) and `wallets show` (any letter case).

mod binary_support;
mod cli_support;

use binary_support::*;
use cli_support::*;

const LOWER: &str = "eip155:1:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
const CHECKSUMMED: &str = "eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

#[tokio::test]
async fn wallets_add_and_show() {
    let issuer = RunningIssuer::in_memory().await;
    let id = admin(&issuer, &["agents", "create", "--name", "payer"])
        .await
        .ok()
        .field("id");
    let added = admin(
        &issuer,
        &["wallets", "add", &id, LOWER, "--name", "treasury"],
    )
    .await
    .ok();
    assert_eq!(added.field("account"), CHECKSUMMED);
    assert_eq!(added.field("agent_id"), id);
    assert_eq!(added.field("type"), "wallet");
    let vid = added.field("id");

    for account in [
        LOWER,
        CHECKSUMMED,
        &LOWER
            .to_uppercase()
            .replace("EIP155", "eip155")
            .replace("0X", "0x"),
    ] {
        let shown = admin(&issuer, &["wallets", "show", account]).await.ok();
        assert_eq!(shown.field("agent_id"), id, "{account}");
        assert_eq!(shown.field("verifier_id"), vid);
        assert_eq!(shown.field("account"), CHECKSUMMED);
    }
    let json = admin(&issuer, &["--json", "wallets", "show", LOWER])
        .await
        .ok()
        .json();
    assert_eq!(json["agent"]["id"], id.as_str());

    // Refusals: exit 1, the issuer's code on one line.
    let other = admin(&issuer, &["agents", "create", "--name", "other"])
        .await
        .ok()
        .field("id");
    let line = admin(&issuer, &["wallets", "add", &other, CHECKSUMMED])
        .await
        .refused();
    assert!(line.contains("conflict"), "{line}");
    let line = admin(&issuer, &["wallets", "add", &other, "eip155:1:0x12"])
        .await
        .refused();
    assert!(line.contains("invalid_account"), "{line}");
    let line = admin(
        &issuer,
        &[
            "wallets",
            "show",
            "eip155:5:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        ],
    )
    .await
    .refused();
    assert!(line.contains("not_found"), "{line}");

    // Help exists for both.
    for command in [["wallets", "add"], ["wallets", "show"]] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(cli(&args)).await.ok();
        assert!(
            out.stdout
                .contains(&format!("Usage: agent-auth {}", command.join(" ")))
        );
    }
}
