//! The `agent-auth` CLI, run as a built binary against the real `agent-auth-issuer` binary:
//! stdout, stderr and exit status of every command, refusals, an unreachable issuer and
//! usage errors.

mod binary_support;
mod cli_support;

use binary_support::*;
use cli_support::*;

#[tokio::test]
async fn agents_create_list_show_suspend_reactivate_delete() {
    let issuer = RunningIssuer::in_memory().await;
    let created = admin(
        &issuer,
        &[
            "agents",
            "create",
            "--name",
            "triage bot",
            "--scope",
            "tickets:read",
            "--scope",
            "tickets:triage",
        ],
    )
    .await
    .ok();
    let id = created.field("id");
    assert!(id.starts_with("agt_"), "{created:?}");
    assert_eq!(created.field("name"), "triage bot");
    assert_eq!(created.field("scopes"), "tickets:read tickets:triage");
    assert_eq!(created.field("already_existed"), "false");

    let listed = admin(&issuer, &["agents", "list"]).await.ok();
    assert_eq!(listed.stdout.lines().count(), 1);
    assert!(
        listed
            .stdout
            .starts_with(&format!("{id}\tactive\ttriage bot")),
        "{listed:?}"
    );
    let listed = admin(&issuer, &["agents", "list", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    let shown = admin(&issuer, &["--json", "agents", "show", &id])
        .await
        .ok()
        .json();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["status"], "active");

    let suspended = admin(
        &issuer,
        &["agents", "suspend", &id, "--reason", "incident 7"],
    )
    .await
    .ok();
    assert_eq!(suspended.field("status"), "suspended");
    assert_eq!(suspended.field("status_reason"), "incident 7");
    let reactivated = admin(&issuer, &["agents", "reactivate", &id, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(reactivated["status"], "active");

    let deleted = admin(&issuer, &["agents", "delete", &id]).await.ok();
    assert_eq!(deleted.stdout, format!("deleted {id}\n"));
    let gone = admin(&issuer, &["agents", "show", &id]).await.refused();
    assert_eq!(gone, "error: not_found: agent not found");
    let gone = admin(&issuer, &["agents", "delete", &id, "--json"])
        .await
        .refused();
    assert!(gone.starts_with("error: not_found: "), "{gone}");
    issuer.stop().await;
}

#[tokio::test]
async fn agents_create_with_an_external_id_is_idempotent_and_json_says_so() {
    let issuer = RunningIssuer::in_memory().await;
    let args = [
        "--json",
        "agents",
        "create",
        "--name",
        "wf",
        "--external-id",
        "wf-1",
        "--expires-in",
        "3600",
    ];
    let first = admin(&issuer, &args).await.ok().json();
    assert_eq!(first["already_existed"], false);
    assert_eq!(first["external_id"], "wf-1");
    assert!(first["expires_at"].as_i64().is_some());
    let again = admin(&issuer, &args).await.ok().json();
    assert_eq!(again["already_existed"], true);
    assert_eq!(again["id"], first["id"]);
    issuer.stop().await;
}

#[tokio::test]
async fn secrets_add_prints_the_secret_once_and_token_uses_it() {
    let issuer = RunningIssuer::in_memory().await;
    let id = admin(
        &issuer,
        &["agents", "create", "--name", "a", "--scope", "tickets:read"],
    )
    .await
    .ok()
    .field("id");

    let added = admin(&issuer, &["secrets", "add", &id, "--name", "primary"]).await;
    assert_eq!(added.code, 0, "{added:?}");
    assert_eq!(
        added.stderr,
        "note: the secret is shown this once; only its hash is kept\n"
    );
    let secret = added.field("secret");
    let vid = added.field("id");
    assert_eq!(secret.len(), 42);
    assert!(vid.starts_with("v_"));
    let second = admin(&issuer, &["--json", "secrets", "add", &id])
        .await
        .ok()
        .json();
    assert_eq!(second["secret"].as_str().unwrap().len(), 42);

    // No other command prints a secret.
    let listed = admin(&issuer, &["secrets", "list", &id]).await.ok();
    assert_eq!(listed.stdout.lines().count(), 2);
    assert!(
        listed
            .stdout
            .contains(&format!("{vid}\tsecret\tactive\tprimary\t0\t-")),
        "{listed:?}"
    );
    for args in [
        vec!["--json", "secrets", "list", &id],
        vec!["--json", "agents", "show", &id],
        vec!["--json", "agents", "list"],
        vec!["--json", "events"],
    ] {
        let out = admin(&issuer, &args).await.ok();
        assert!(!out.stdout.contains(&secret), "{args:?} printed the secret");
    }

    let token = run(cli(&[
        "token",
        "--issuer",
        &issuer.url,
        "--client-id",
        &id,
        "--client-secret",
        &secret,
    ]))
    .await
    .ok();
    let jwt = token.stdout.trim_end();
    assert_eq!(jwt.split('.').count(), 3, "{token:?}");
    assert_eq!(token.stdout.lines().count(), 1);

    let mut with_env = cli(&[
        "token",
        "--client-id",
        &id,
        "--scope",
        "tickets:read",
        "--resource",
        "https://api.example.com",
        "--json",
        "--issuer",
        &issuer.url,
    ]);
    with_env.env("AGENT_AUTH_CLIENT_SECRET", &secret);
    let json = run(with_env).await.ok().json();
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["scope"], "tickets:read");
    let expires_in = json["expires_in"].as_u64().unwrap();
    assert!((290..=300).contains(&expires_in), "{json}");

    let removed = admin(&issuer, &["secrets", "remove", &id, &vid]).await.ok();
    assert_eq!(removed.stdout, format!("deleted {vid}\n"));
    let refused = run(cli(&[
        "token",
        "--issuer",
        &issuer.url,
        "--client-id",
        &id,
        "--client-secret",
        &secret,
    ]))
    .await
    .refused();
    assert!(refused.starts_with("error: invalid_client"), "{refused}");
    issuer.stop().await;
}

#[tokio::test]
async fn a_suspended_agent_gets_invalid_client_and_a_bad_scope_invalid_scope() {
    let issuer = RunningIssuer::in_memory().await;
    let id = admin(
        &issuer,
        &["agents", "create", "--name", "a", "--scope", "tickets:read"],
    )
    .await
    .ok()
    .field("id");
    let secret = admin(&issuer, &["secrets", "add", &id])
        .await
        .field("secret");
    let token = |extra: &'static [&'static str]| {
        let mut args = vec![
            "token",
            "--issuer",
            issuer.url.as_str(),
            "--client-id",
            &id,
            "--client-secret",
            &secret,
        ];
        args.extend_from_slice(extra);
        run(cli(&args))
    };
    let scope = token(&["--scope", "admin:all"]).await.refused();
    assert!(scope.starts_with("error: invalid_scope: "), "{scope}");
    admin(&issuer, &["agents", "suspend", &id, "--reason", "r"])
        .await
        .ok();
    let refused = token(&[]).await.refused();
    assert!(refused.starts_with("error: invalid_client: "), "{refused}");
    issuer.stop().await;
}

#[tokio::test]
async fn events_keys_and_orgs() {
    let issuer = RunningIssuer::in_memory().await;
    let id = admin(
        &issuer,
        &["agents", "create", "--name", "a", "--scope", "tickets:read"],
    )
    .await
    .ok()
    .field("id");
    let other = admin(&issuer, &["agents", "create", "--name", "b"])
        .await
        .ok()
        .field("id");

    let events = admin(&issuer, &["events"]).await.ok();
    assert_eq!(events.stdout.lines().count(), 2);
    assert!(
        events
            .stdout
            .lines()
            .next()
            .unwrap()
            .contains(&format!("\tagent.created\t{other}\tevt_"))
    );
    let filtered = admin(
        &issuer,
        &[
            "events",
            "--json",
            "--agent",
            &id,
            "--type",
            "agent.created",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["agent_id"], id.as_str());
    let bad = admin(&issuer, &["events", "--type", "no.such"])
        .await
        .refused();
    assert!(bad.starts_with("error: "), "{bad}");

    let rotated = admin(&issuer, &["keys", "rotate"]).await.ok();
    assert!(!rotated.field("kid").is_empty());
    assert_eq!(
        rotated.field("published").split(' ').count(),
        2,
        "{rotated:?}"
    );
    let rotated = admin(&issuer, &["--json", "keys", "rotate"])
        .await
        .ok()
        .json();
    assert_eq!(rotated["published"].as_array().unwrap().len(), 3);

    let org = admin(&issuer, &["orgs", "create", "--name", "Acme"])
        .await
        .ok();
    let org_id = org.field("id");
    assert!(org_id.starts_with("org_"));
    assert_eq!(org.field("name"), "Acme");
    let member = admin(
        &issuer,
        &[
            "orgs",
            "add-member",
            &org_id,
            &id,
            "--scope",
            "tickets:read",
        ],
    )
    .await
    .ok();
    assert_eq!(member.field("member_id"), id);
    assert_eq!(member.field("member_type"), "agent");
    assert_eq!(member.field("scopes"), "tickets:read");
    let twice = admin(&issuer, &["orgs", "add-member", &org_id, &id])
        .await
        .refused();
    assert!(twice.starts_with("error: "), "{twice}");
    let json = admin(&issuer, &["orgs", "add-member", &org_id, &other, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(json["organization_id"], org_id.as_str());
    issuer.stop().await;
}

#[tokio::test]
async fn global_flags_come_from_the_environment_and_go_anywhere() {
    let issuer = RunningIssuer::in_memory().await;
    let mut cmd = cli(&["agents", "create", "--name", "env"]);
    cmd.env("AGENT_AUTH_ISSUER", &issuer.url)
        .env("AGENT_AUTH_ADMIN_KEY_ID", KEY_ID)
        .env("AGENT_AUTH_ADMIN_KEY_SECRET", KEY_SECRET);
    run(cmd).await.ok();
    let after = run(cli(&[
        "agents",
        "list",
        "--json",
        "--admin-key-secret",
        KEY_SECRET,
        "--issuer",
        &issuer.url,
        "--admin-key-id",
        KEY_ID,
    ]))
    .await
    .ok()
    .json();
    assert_eq!(after[0]["name"], "env");
    issuer.stop().await;
}

#[tokio::test]
async fn a_wrong_admin_key_is_refused_with_exit_1_and_one_line() {
    let issuer = RunningIssuer::in_memory().await;
    let line = run(cli(&[
        "--issuer",
        &issuer.url,
        "--admin-key-id",
        KEY_ID,
        "--admin-key-secret",
        "not-the-secret",
        "agents",
        "list",
    ]))
    .await
    .refused();
    assert_eq!(
        line,
        "error: unauthorized: a valid admin key is required (HTTP Basic)"
    );
    issuer.stop().await;
}

#[tokio::test]
async fn an_unreachable_issuer_is_one_line_and_exit_1() {
    // A port that was just free: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let line = run(cli(&[
        "--issuer",
        &url,
        "--admin-key-id",
        KEY_ID,
        "--admin-key-secret",
        KEY_SECRET,
        "agents",
        "list",
    ]))
    .await
    .refused();
    assert!(
        line.starts_with(&format!("error: cannot reach the issuer at {url}: ")),
        "{line}"
    );
    assert!(!line.contains(KEY_SECRET));
    let line = run(cli(&[
        "token",
        "--issuer",
        &url,
        "--client-id",
        "agt_x",
        "--client-secret",
        "s3cr3t",
    ]))
    .await
    .refused();
    assert!(
        line.starts_with(&format!("error: cannot reach the issuer at {url}: ")),
        "{line}"
    );
    assert!(!line.contains("s3cr3t"));
}

#[tokio::test]
async fn usage_errors_exit_2_without_output_on_stdout() {
    let key = [
        "--issuer",
        "http://127.0.0.1:9",
        "--admin-key-id",
        "k",
        "--admin-key-secret",
        "s",
    ];
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["no-such-command"],
        vec!["agents", "create"],           // --name missing
        vec!["agents", "suspend", "agt_1"], // --reason missing
        vec!["agents", "list"],             // no issuer, no key
        vec!["agents", "list", "--issuer", "http://127.0.0.1:9"], // no key
        vec!["token", "--client-id", "a", "--client-secret", "b"], // no issuer
        vec!["events", "--limit", "0"],
        vec!["completions", "no-such-shell"],
    ];
    for args in cases {
        let out = run(cli(&args)).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        if args.is_empty() {
            // No command at all: clap shows the help (on stderr, exit 2).
            assert!(out.stderr.contains("Usage: agent-auth"), "{out:?}");
        } else {
            assert!(out.stderr.starts_with("error: "), "{args:?}: {out:?}");
        }
    }
    let mut bad_url = key.to_vec();
    bad_url[1] = "not a url";
    bad_url.extend(["agents", "list"]);
    let out = run(cli(&bad_url)).await;
    assert_eq!(out.code, 2, "{out:?}");
    let mut bad_scope = vec![
        "token",
        "--issuer",
        "http://127.0.0.1:9",
        "--client-id",
        "a",
    ];
    bad_scope.extend(["--client-secret", "b", "--scope", "a\"b"]);
    assert_eq!(run(cli(&bad_scope)).await.code, 2);
}

#[tokio::test]
async fn every_command_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["agents"],
        &["agents", "create"],
        &["agents", "list"],
        &["agents", "show"],
        &["agents", "suspend"],
        &["agents", "reactivate"],
        &["agents", "delete"],
        &["secrets", "add"],
        &["secrets", "list"],
        &["secrets", "remove"],
        &["token"],
        &["events"],
        &["keys", "rotate"],
        &["orgs", "create"],
        &["orgs", "add-member"],
        &["completions"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(cli(&args)).await.ok();
        let usage = format!("Usage: agent-auth {}", command.join(" "));
        assert!(out.stdout.contains(usage.trim_end()), "{args:?}: {out:?}");
    }
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(cli(&["completions", shell])).await.ok();
        assert!(out.stdout.contains("agent-auth"), "{shell}");
        assert!(
            out.stdout.contains("add-member"),
            "{shell}: subcommands completed"
        );
    }
}
