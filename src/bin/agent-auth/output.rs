//! What the commands print: `--json` prints the API's `data` as one JSON document; otherwise
//! `field: value` lines for one object and one tab-separated line per item for lists.

use serde_json::Value;

/// How a value is shown to a person: strings bare, arrays space-separated, null as `-`.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// Prints `fields` of `obj` as `field: value` lines (fields it lacks are skipped).
pub fn object(obj: &Value, fields: &[&str]) {
    for field in fields {
        if let Some(v) = obj.get(*field) {
            println!("{field}: {}", plain(v));
        }
    }
}

/// Prints one tab-separated line of `fields` per item.
pub fn rows(items: &[Value], fields: &[&str]) {
    for item in items {
        let cells: Vec<String> = fields
            .iter()
            .map(|f| plain(item.get(*f).unwrap_or(&Value::Null)))
            .collect();
        println!("{}", cells.join("\t"));
    }
}

/// Prints `value` as one JSON document.
pub fn json(value: &Value) {
    // Serializing a `Value` cannot fail; fall back to its Display (the same JSON).
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

pub const AGENT_FIELDS: &[&str] = &[
    "id",
    "name",
    "status",
    "status_reason",
    "scopes",
    "external_id",
    "description",
    "model",
    "provider",
    "version",
    "created_at",
    "updated_at",
    "expires_at",
    "token_count",
    "last_activity_at",
];
pub const AGENT_ROW: &[&str] = &["id", "status", "name", "scopes"];
pub const VERIFIER_ROW: &[&str] = &[
    "id",
    "type",
    "status",
    "name",
    "usage_count",
    "last_used_at",
];
pub const EVENT_ROW: &[&str] = &["created_at", "type", "agent_id", "id"];
pub const MEMBER_FIELDS: &[&str] = &[
    "organization_id",
    "member_id",
    "member_type",
    "scopes",
    "created_at",
];
