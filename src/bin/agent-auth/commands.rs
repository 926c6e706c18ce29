//! Running each command: one or a few management calls, then the output.

use agent_auth::client::{
    ClientCredential, ClientSecret, ManagementClient, RetryPolicy, TokenSource,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{
    AgentsCommand, Cli, Command, Global, KeysCommand, OrgsCommand, SecretsCommand, WalletsCommand,
};
use crate::output::{self, AGENT_FIELDS, AGENT_ROW, EVENT_ROW, MEMBER_FIELDS, VERIFIER_ROW};

/// Most pages `agents list` follows (of 100 agents each).
const MAX_PAGES: usize = 100;

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let g = &cli.global;
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "agent-auth", &mut std::io::stdout());
            Ok(())
        }
        Command::Token {
            client_id,
            client_secret,
            scopes,
            resource,
        } => token(g, client_id, client_secret, scopes, resource).await,
        Command::Agents(c) => agents(g, &admin(g)?, c).await,
        Command::Secrets(c) => secrets(g, &admin(g)?, c).await,
        Command::Events { kind, agent, limit } => {
            let limit = limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            if let Some(kind) = &kind {
                query.push(("type", kind));
            }
            if let Some(agent) = &agent {
                query.push(("agent_id", agent));
            }
            let page = admin(g)?
                .call(Method::GET, &["v1", "events"], &query, None)
                .await?;
            list(g, &data(&page), EVENT_ROW);
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let body = admin(g)?
                .call(Method::POST, &["v1", "keys", "rotate"], &[], None)
                .await?;
            show(g, &data(&body), &["kid", "signs_from", "published"]);
            Ok(())
        }
        Command::Orgs(c) => orgs(g, &admin(g)?, c).await,
        Command::Wallets(c) => wallets(g, &admin(g)?, c).await,
    }
}

async fn wallets(g: &Global, api: &ManagementClient, c: WalletsCommand) -> Result<(), Failure> {
    match c {
        WalletsCommand::Add {
            agent,
            account,
            name,
        } => {
            let mut v = api.add_wallet(&agent, &account, name.as_deref()).await?;
            if !g.json {
                // Flat for people: the canonical account beside the verifier's fields.
                v["account"] = v["credential"]["account"].clone();
            }
            show(g, &v, &["id", "agent_id", "type", "name", "account"]);
        }
        WalletsCommand::Show { account } => {
            let v = api.wallet(&account).await?;
            show(g, &v, &["account", "agent_id", "verifier_id"]);
        }
    }
    Ok(())
}

fn issuer(g: &Global) -> Result<&str, Failure> {
    g.issuer.as_deref().ok_or_else(|| {
        Failure::Usage("the issuer URL is required: --issuer URL or AGENT_AUTH_ISSUER".into())
    })
}

fn admin(g: &Global) -> Result<ManagementClient, Failure> {
    let url = issuer(g)?;
    let (Some(id), Some(secret)) = (&g.admin_key_id, &g.admin_key_secret) else {
        return Err(Failure::Usage(
            "the admin key is required: --admin-key-id/--admin-key-secret or \
             AGENT_AUTH_ADMIN_KEY_ID/AGENT_AUTH_ADMIN_KEY_SECRET"
                .into(),
        ));
    };
    Ok(ManagementClient::new(
        url,
        id,
        &ClientSecret::new(secret.clone()),
    )?)
}

fn data(body: &Option<Value>) -> Value {
    body.as_ref()
        .and_then(|b| b.get("data"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn show(g: &Global, obj: &Value, fields: &[&str]) {
    if g.json {
        output::json(obj);
    } else {
        output::object(obj, fields);
    }
}

fn list(g: &Global, items: &Value, fields: &[&str]) {
    if g.json {
        output::json(items);
    } else {
        output::rows(items.as_array().map(Vec::as_slice).unwrap_or(&[]), fields);
    }
}

fn deleted(g: &Global, id: &str) {
    if g.json {
        output::json(&json!({"id": id, "deleted": true}));
    } else {
        println!("deleted {id}");
    }
}

async fn agents(g: &Global, api: &ManagementClient, c: AgentsCommand) -> Result<(), Failure> {
    match c {
        AgentsCommand::Create {
            name,
            scopes,
            external_id,
            expires_in,
        } => {
            let mut body = json!({"name": name});
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(x) = external_id {
                body["external_id"] = json!(x);
            }
            if let Some(s) = expires_in {
                body["expires_in"] = json!(s);
            }
            let res = api
                .call(Method::POST, &["v1", "agents"], &[], Some(&body))
                .await?;
            let mut agent = data(&res);
            let existed = res
                .as_ref()
                .and_then(|r| r["already_existed"].as_bool())
                .unwrap_or(false);
            if let Some(obj) = agent.as_object_mut() {
                obj.insert("already_existed".into(), json!(existed));
            }
            let mut fields = AGENT_FIELDS.to_vec();
            fields.push("already_existed");
            show(g, &agent, &fields);
        }
        AgentsCommand::List => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let mut query = vec![("limit", "100")];
                if let Some(c) = &cursor {
                    query.push(("cursor", c));
                }
                let page = api
                    .call(Method::GET, &["v1", "agents"], &query, None)
                    .await?;
                if let Some(items) = data(&page).as_array() {
                    all.extend(items.iter().cloned());
                }
                cursor = page
                    .as_ref()
                    .and_then(|p| p["next_cursor"].as_str())
                    .map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            if cursor.is_some() {
                eprintln!("note: only the newest {} agents are shown", all.len());
            }
            list(g, &Value::Array(all), AGENT_ROW);
        }
        AgentsCommand::Show { id } => {
            let res = api
                .call(Method::GET, &["v1", "agents", &id], &[], None)
                .await?;
            show(g, &data(&res), AGENT_FIELDS);
        }
        AgentsCommand::Suspend { id, reason } => {
            let body = json!({"status": "suspended", "status_reason": reason});
            let res = api
                .call(Method::PATCH, &["v1", "agents", &id], &[], Some(&body))
                .await?;
            show(g, &data(&res), AGENT_FIELDS);
        }
        AgentsCommand::Reactivate { id } => {
            let body = json!({"status": "active"});
            let res = api
                .call(Method::PATCH, &["v1", "agents", &id], &[], Some(&body))
                .await?;
            show(g, &data(&res), AGENT_FIELDS);
        }
        AgentsCommand::Delete { id } => {
            api.call(Method::DELETE, &["v1", "agents", &id], &[], None)
                .await?;
            deleted(g, &id);
        }
    }
    Ok(())
}

async fn secrets(g: &Global, api: &ManagementClient, c: SecretsCommand) -> Result<(), Failure> {
    match c {
        SecretsCommand::Add { agent, name } => {
            let mut body = json!({"type": "secret"});
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            let res = api
                .call(
                    Method::POST,
                    &["v1", "agents", &agent, "verifiers"],
                    &[],
                    Some(&body),
                )
                .await?;
            let created = data(&res);
            show(g, &created, &["id", "agent_id", "name", "secret"]);
            if !g.json {
                eprintln!("note: the secret is shown this once; only its hash is kept");
            }
        }
        SecretsCommand::List { agent } => {
            let res = api
                .call(
                    Method::GET,
                    &["v1", "agents", &agent, "verifiers"],
                    &[],
                    None,
                )
                .await?;
            list(g, &data(&res), VERIFIER_ROW);
        }
        SecretsCommand::Remove { agent, vid } => {
            api.call(
                Method::DELETE,
                &["v1", "agents", &agent, "verifiers", &vid],
                &[],
                None,
            )
            .await?;
            deleted(g, &vid);
        }
    }
    Ok(())
}

async fn orgs(g: &Global, api: &ManagementClient, c: OrgsCommand) -> Result<(), Failure> {
    match c {
        OrgsCommand::Create { name } => {
            let res = api
                .call(
                    Method::POST,
                    &["v1", "organizations"],
                    &[],
                    Some(&json!({"name": name})),
                )
                .await?;
            show(g, &data(&res), &["id", "name", "created_at"]);
        }
        OrgsCommand::AddMember { org, agent, scopes } => {
            let body = json!({"member_id": agent, "scopes": scopes});
            let res = api
                .call(
                    Method::POST,
                    &["v1", "organizations", &org, "members"],
                    &[],
                    Some(&body),
                )
                .await?;
            show(g, &data(&res), MEMBER_FIELDS);
        }
    }
    Ok(())
}

async fn token(
    g: &Global,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    resource: Option<String>,
) -> Result<(), Failure> {
    let mut builder = TokenSource::builder(
        issuer(g)?,
        client_id,
        ClientCredential::secret(client_secret),
    )
    .scopes(scopes)
    // An operator's command fails fast; agents' runtimes retry.
    .retry(RetryPolicy::none());
    if let Some(resource) = resource {
        builder = builder.resource(resource);
    }
    let token = builder.build()?.token().await?;
    if g.json {
        let expires_in = token
            .expires_at()
            .duration_since(std::time::SystemTime::now())
            .map(|d| d.as_secs_f64().round() as u64)
            .unwrap_or(0);
        output::json(&json!({
            "access_token": token.expose(),
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": token.scope(),
        }));
    } else {
        println!("{}", token.expose());
    }
    Ok(())
}
