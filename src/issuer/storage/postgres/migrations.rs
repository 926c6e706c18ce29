//! The PostgreSQL schema, one migration per SQLite migration (`../sqlite/mod.rs`), in the same
//! order: migration `n` here brings the same tables and columns as migration `n` there. A new
//! migration is appended to both lists.

/// Schema migrations, applied in order; `agent_auth_schema.version` is the number applied.
pub(in crate::issuer::storage) const MIGRATIONS: &[&str] = &[
    // 1: the schema.
    r#"
CREATE TABLE agents (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    external_id TEXT UNIQUE,
    record TEXT NOT NULL,
    token_count BIGINT NOT NULL DEFAULT 0,
    last_activity_at BIGINT
);
CREATE TABLE verifiers (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    hash BYTEA NOT NULL,
    record TEXT NOT NULL,
    usage_count BIGINT NOT NULL DEFAULT 0,
    last_used_at BIGINT
);
CREATE INDEX verifiers_agent ON verifiers(agent_id);
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE memberships (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    member_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    record TEXT NOT NULL,
    UNIQUE (organization_id, member_id)
);
CREATE INDEX memberships_member ON memberships(member_id);
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    agent_id TEXT,
    record TEXT NOT NULL
);
CREATE INDEX events_kind ON events(kind, seq);
CREATE INDEX events_agent ON events(agent_id, seq);
CREATE TABLE webhooks (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    key BYTEA NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_at);
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    pkcs8 BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
"#,
    // 2: when a key signs, who caused an event, dead letters.
    r#"
ALTER TABLE signing_keys ADD COLUMN signs_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN by_agent BOOLEAN NOT NULL DEFAULT false;
UPDATE events SET by_agent = true WHERE record::jsonb #>> '{actor,type}' = 'agent';
CREATE INDEX events_by_agent ON events(by_agent, seq);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, id);
ALTER TABLE webhooks ADD COLUMN dropped BIGINT NOT NULL DEFAULT 0;
CREATE TABLE dead_letters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    dropped_at BIGINT NOT NULL
);
CREATE INDEX dead_letters_webhook ON dead_letters(webhook_id, id);
"#,
    // 3: the admin key generated at a first start; one row at most.
    r#"
CREATE TABLE admin_key (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
"#,
    // 4: keyed agents (`jwk` verifiers) and the client assertions' used `jti`s.
    r#"
ALTER TABLE verifiers ADD COLUMN jwk TEXT;
CREATE UNIQUE INDEX verifiers_jwk_thumbprint ON verifiers(hash) WHERE jwk IS NOT NULL;
CREATE TABLE assertion_jtis (
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, jti)
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis(expires_at);
"#,
    // 5: wallets (`wallet` verifiers): the reverse lookup account → verifier, one agent per
    // account, gone with its verifier (and so with its agent) in the same transaction; and the
    // sign-in nonces, kept until used or expired.
    r#"
CREATE TABLE wallet_accounts (
    account TEXT PRIMARY KEY,
    verifier_id TEXT NOT NULL UNIQUE REFERENCES verifiers(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE
);
CREATE INDEX wallet_accounts_agent ON wallet_accounts(agent_id);
CREATE TABLE wallet_nonces (
    nonce TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX wallet_nonces_expiry ON wallet_nonces(expires_at);
"#,
];
