//! MCP request bodies: `McpToolScopes::required_scopes`, the classifier behind the per-tool
//! scope layer.
//!
//! Oracle: nothing panics; the verdict is one the server cannot get around. Whatever the
//! classifier requires must cover every tool a lenient reader (plain `serde_json`, last
//! duplicate wins) finds called in the body: a body read as "only `list_tickets`" here must not
//! be read as `triage_ticket` by the server. A body the lenient reader cannot make sense of as
//! JSON-RPC needs every configured scope. And wherever the byte scanner for plain bodies
//! answers, the serde reader answers the same.
#![no_main]

use std::collections::BTreeSet;

use agent_auth::mcp::McpToolScopes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const TOOLS: [(&str, &[&str]); 3] = [
    ("list_tickets", &["tickets:read"]),
    ("triage_ticket", &["tickets:triage"]),
    ("ping", &[]),
];

fn every_scope() -> BTreeSet<&'static str> {
    TOOLS.iter().flat_map(|(_, scopes)| scopes.iter().copied()).collect()
}

/// The scopes of the tools a lenient reader sees called, or `None` if it sees a call it cannot
/// map (then every scope is needed).
fn lenient_needs(message: &Value) -> Option<BTreeSet<&'static str>> {
    let messages: Vec<&Value> = match message {
        Value::Array(batch) => batch.iter().collect(),
        other => vec![other],
    };
    let mut needed = BTreeSet::new();
    for message in messages {
        if message.get("method").and_then(Value::as_str) == Some("tools/call") {
            let name = message.get("params")?.get("name")?.as_str()?;
            let (_, scopes) = TOOLS.iter().find(|(tool, _)| *tool == name)?;
            needed.extend(scopes.iter().copied());
        }
    }
    Some(needed)
}

fuzz_target!(|data: &[u8]| {
    // The fast reading of a plain body answers only as the serde reader would.
    assert_ne!(
        agent_auth::internals::mcp_readings_agree(data),
        Some(false),
        "the scanner and serde read the body differently"
    );
    let rules = TOOLS
        .iter()
        .fold(McpToolScopes::new(), |rules, (tool, scopes)| rules.tool(*tool, scopes.iter().copied()));
    let required = rules.required_scopes(data);
    assert!(required.is_subset(&every_scope()), "only configured scopes are ever required");
    match serde_json::from_slice::<Value>(data) {
        // A number out of f64's range in a skipped member: a `Value` reader refuses the body
        // (no tool runs), a typed one skips it as the classifier does.
        Err(error) if error.to_string().starts_with("number out of range") => {}
        Err(_) => assert_eq!(required, every_scope(), "unparseable bodies need every scope"),
        Ok(message) => match lenient_needs(&message) {
            None => assert_eq!(required, every_scope(), "an unmappable call needs every scope"),
            Some(needed) => assert!(
                needed.is_subset(&required),
                "a tool the server may run is not covered: {needed:?} vs {required:?}"
            ),
        },
    }
});
