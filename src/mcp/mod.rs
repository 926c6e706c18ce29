//! Per-tool scopes for an MCP server (DESIGN §6): [`McpToolScopes`] reads the JSON-RPC body the
//! server is about to execute and requires, for every `tools/call` in it, the scopes mapped to
//! that tool's name.
//!
//! The decision is taken from the body and only from the body: the server executes what the
//! body says, so a header that names a tool (`Mcp-Name`) is never consulted here: it could
//! disagree, and older protocol sessions do not send it at all. The body is read up to a bound
//! ([`McpToolScopes::max_body_bytes`]); a body that cannot be classified (too large, not JSON,
//! a deciding member — `method`, `params`, `result`, `error`, `params.name` — named twice, not
//! JSON-RPC, a `tools/call` without a string `name`, a tool that is
//! not configured) needs **every** configured scope. A batch needs the union of its calls'
//! scopes. Every other method (`initialize`, `tools/list`, notifications, responses) and every
//! request without a body to classify (`GET` for the event stream, `DELETE` of a session) needs
//! only the verified agent that [`AgentAuth`](crate::AgentAuth) put there.
//!
//! Written here rather than taken from `rmcp`: the guard has to sit in front of the server,
//! before its own parsing, and decide from the same bytes. The usual, plain body is read by a
//! byte scanner (`plain.rs`) that answers only where the serde reader (`jsonrpc.rs`) would
//! answer the same; every other body is the serde reader's.

mod jsonrpc;
mod plain;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::{Body, HttpBody as _};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::agent::Agent;
use crate::challenge::{bare_status, close_connection, closing_if_body_unread};
use jsonrpc::Member;

/// Bodies up to this size are classified unless configured otherwise: MCP requests are small
/// JSON-RPC messages, and this keeps the buffered copy bounded.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Maps MCP tool names to the scopes a `tools/call` of that tool needs. Layer it on the MCP
/// endpoint, inside [`AgentAuth`](crate::AgentAuth).
///
/// ```
/// use agent_auth::mcp::McpToolScopes;
/// let scopes = McpToolScopes::new()
///     .tool("list_tickets", ["tickets:read"])
///     .tool("triage_ticket", ["tickets:triage"])
///     .tool("ping", [] as [&str; 0]);                        // open to every agent
/// assert_eq!(
///     scopes.required_scopes(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"triage_ticket"}}"#),
///     ["tickets:triage"].into_iter().collect(),
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct McpToolScopes {
    rules: Arc<Rules>,
}

#[derive(Debug, Clone, Default)]
struct Rules {
    /// ahash: one lookup per `tools/call`; the map is built from configuration, a client's
    /// name is only looked up (seeded per process all the same).
    tools: HashMap<Box<str>, Box<[Box<str>]>, ahash::RandomState>,
    /// The union of every tool's scopes: what an unclassifiable body needs.
    every_scope: BTreeSet<Box<str>>,
    /// `None`: [`DEFAULT_MAX_BODY_BYTES`].
    max_body_bytes: Option<usize>,
}

impl McpToolScopes {
    /// No tool configured yet (then every `tools/call` is unclassifiable and needs every
    /// configured scope, which is none: add tools before use).
    pub fn new() -> Self {
        Self::default()
    }

    /// A `tools/call` of `name` needs every one of `scopes` (an empty list: only a valid agent).
    pub fn tool<I>(mut self, name: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let rules = Arc::make_mut(&mut self.rules);
        let scopes: Box<[Box<str>]> = scopes.into_iter().map(|s| s.into().into()).collect();
        rules.every_scope.extend(scopes.iter().cloned());
        rules.tools.insert(name.into().into(), scopes);
        self
    }

    /// Reads at most `bytes` of a body to classify it; larger bodies are unclassifiable.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.rules).max_body_bytes = Some(bytes);
        self
    }

    /// The scopes a request with this body needs (empty: only a valid agent).
    pub fn required_scopes(&self, body: &[u8]) -> BTreeSet<&str> {
        match self.rules.classify(body) {
            Some(needs) => needs.union(),
            None => self.rules.every_scope(),
        }
    }
}

impl Rules {
    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }

    fn every_scope(&self) -> BTreeSet<&str> {
        self.every_scope.iter().map(|s| &**s).collect()
    }

    /// The scope lists `body`'s tool calls need; `None` when it cannot be classified.
    fn classify(&self, body: &[u8]) -> Option<Needs<'_>> {
        match read_body(body)? {
            jsonrpc::Body::One(message) => self.needs(&message).map(Needs::One),
            jsonrpc::Body::Batch(batch) => {
                let lists = batch.iter().map(|message| self.needs(message));
                lists.collect::<Option<_>>().map(Needs::Batch)
            }
        }
    }

    /// The scopes one message needs (none for anything but a known tool's call); `None` when
    /// it cannot be classified.
    fn needs(&self, message: &jsonrpc::Message<'_>) -> Option<&[Box<str>]> {
        match &message.method {
            Member::Str(method) if method == "tools/call" => {
                let Member::Str(name) = &message.tool_name else {
                    return None;
                };
                self.tools.get(&**name).map(|scopes| &**scopes)
            }
            Member::Str(_) => Some(&[]),
            Member::Other => None,
            Member::Absent if message.is_response => Some(&[]),
            Member::Absent => None,
        }
    }
}

/// The body's messages: a plain body read by the scanner ([`plain`]), any other by serde
/// ([`jsonrpc`]); `None` when it cannot be classified.
fn read_body(body: &[u8]) -> Option<jsonrpc::Body<'_>> {
    // serde_json skips ignored strings without checking their UTF-8: check the whole body, as
    // the server's parse will (JSON outside strings is ASCII, so this refuses nothing more).
    let text = std::str::from_utf8(body).ok()?;
    plain::read(text).or_else(|| jsonrpc::read(text))
}

/// For [`crate::internals`]: whether [`plain`] and the serde reader read `body` alike (`None`
/// when the scanner is unsure of it).
#[cfg(feature = "internals")]
pub(crate) fn readings_agree(body: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(body).ok()?;
    let plain = plain::read(text)?;
    Some(jsonrpc::read(text).as_ref() == Some(&plain))
}

/// The scope lists a classified body needs, one per message, borrowed from the rules: the
/// agent's scopes are checked against them without building a set; the union is built only
/// for a refusal, which names it.
enum Needs<'a> {
    One(&'a [Box<str>]),
    Batch(Vec<&'a [Box<str>]>),
}

impl<'a> Needs<'a> {
    fn scopes(&self) -> impl Iterator<Item = &'a str> + '_ {
        let lists: &[&'a [Box<str>]] = match self {
            Needs::One(list) => std::slice::from_ref(list),
            Needs::Batch(lists) => lists,
        };
        lists
            .iter()
            .flat_map(|list| list.iter().map(|scope| &**scope))
    }

    fn union(&self) -> BTreeSet<&'a str> {
        self.scopes().collect()
    }
}

impl<S> Layer<S> for McpToolScopes {
    type Service = McpToolScopesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpToolScopesService {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The service [`McpToolScopes`] wraps around an MCP endpoint.
#[derive(Debug, Clone)]
pub struct McpToolScopesService<S> {
    inner: S,
    rules: Arc<Rules>,
}

/// Wraps any MCP service taking axum's [`Body`] (an `rmcp` `StreamableHttpService`, an axum
/// router); its response body only needs a `Default` for the refusals.
impl<S, B> Service<Request<Body>> for McpToolScopesService<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone,
    B: Default,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = McpResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.extensions().get::<Agent>().is_none() {
            tracing::error!(
                "McpToolScopes reached without a verified agent: is AgentAuth layered outside it?"
            );
            let refusal = bare_status(StatusCode::INTERNAL_SERVER_ERROR);
            return McpResponseFuture::answered(closing_if_body_unread(&request, refusal));
        }
        if request.method() != Method::POST {
            return McpResponseFuture::calling(self.inner.call(request));
        }
        // The body is read before the server is called: take the service that was made ready
        // and leave a fresh clone behind (the tower idiom for calling later).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        McpResponseFuture {
            state: State::Reading {
                reading: Some(Reading {
                    parts,
                    body,
                    buffered: Buffered::Empty,
                    inner,
                    rules: self.rules.clone(),
                }),
            },
        }
    }
}

pin_project! {
    /// The response future of [`McpToolScopesService`]: reads the body (with its bound), then
    /// either answers the refusal or calls the server with the body it read.
    pub struct McpResponseFuture<S, B>
    where
        S: Service<Request<Body>>,
    {
        #[pin]
        state: State<S, S::Future, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, B> {
        Reading { reading: Option<Reading<S>> },
        Calling { #[pin] future: F },
        Answered { response: Option<Response<B>> },
    }
}

/// A `POST` whose body is being read: everything needed to decide, then to call the server.
struct Reading<S> {
    parts: Parts,
    body: Body,
    buffered: Buffered,
    inner: S,
    rules: Arc<Rules>,
}

impl<S, B> McpResponseFuture<S, B>
where
    S: Service<Request<Body>>,
{
    fn calling(future: S::Future) -> Self {
        McpResponseFuture {
            state: State::Calling { future },
        }
    }

    fn answered(response: Response<B>) -> Self {
        McpResponseFuture {
            state: State::Answered {
                response: Some(response),
            },
        }
    }
}

impl<S, B> Future for McpResponseFuture<S, B>
where
    S: Service<Request<Body>, Response = Response<B>>,
    B: Default,
{
    type Output = Result<Response<B>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let call = match state.as_mut().project() {
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Answered { response } => {
                    // Polled again after completion only by a broken executor: never a `200`.
                    let response = response.take();
                    let response =
                        response.unwrap_or_else(|| bare_status(StatusCode::INTERNAL_SERVER_ERROR));
                    return Poll::Ready(Ok(response));
                }
                StateProj::Reading { reading } => {
                    let Some(current) = reading.as_mut() else {
                        return Poll::Ready(Ok(bare_status(StatusCode::INTERNAL_SERVER_ERROR)));
                    };
                    let (read, body) = ready!(current.poll_read(cx));
                    let Some(Reading {
                        parts,
                        mut inner,
                        rules,
                        ..
                    }) = reading.take()
                    else {
                        return Poll::Ready(Ok(bare_status(StatusCode::INTERNAL_SERVER_ERROR)));
                    };
                    if let Some(refusal) = refusal(&rules, &parts, &read) {
                        state.set(State::Answered { response: None });
                        return Poll::Ready(Ok(refusal));
                    }
                    inner.call(Request::from_parts(parts, body))
                }
            };
            state.set(State::Calling { future: call });
        }
    }
}

/// The answer to a request whose body was read as `read`, if it must not reach the server:
/// `403` when the agent lacks a scope the body needs, `400` when the body failed mid-read.
fn refusal<B: Default>(rules: &Rules, parts: &Parts, read: &Read) -> Option<Response<B>> {
    let Some(agent) = parts.extensions.get::<Agent>() else {
        // The caller refused a request without one already; fail closed all the same.
        return Some(bare_status(StatusCode::INTERNAL_SERVER_ERROR));
    };
    let needs = match read {
        Read::Whole(bytes) => rules.classify(bytes),
        Read::Oversize | Read::Failed => None,
    };
    let satisfied = match &needs {
        Some(needs) => needs.scopes().all(|scope| agent.has_scope(scope)),
        None => rules.every_scope.iter().all(|scope| agent.has_scope(scope)),
    };
    if !satisfied {
        let needed = needs.map_or_else(|| rules.every_scope(), |needs| needs.union());
        let joined = needed.into_iter().collect::<Vec<_>>().join(" ");
        tracing::debug!(agent_id = agent.id(), required = %joined, outcome = "insufficient_scope", "MCP tool scope check failed");
        let mut refusal = agent.challenge().insufficient_scope(&joined);
        if !matches!(read, Read::Whole(_)) {
            // The rest of an oversize body is still on the connection.
            close_connection(&mut refusal);
        }
        return Some(refusal);
    }
    if let Read::Failed = read {
        let mut refusal = bare_status(StatusCode::BAD_REQUEST);
        close_connection(&mut refusal);
        return Some(refusal);
    }
    None
}

enum Read {
    Whole(Bytes),
    Oversize,
    Failed,
}

impl<S> Reading<S> {
    /// Reads the body up to the rules' bound. Ready with what was learnt and a body that
    /// replays every byte read, followed by the rest when the bound stopped the reading.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<(Read, Body)> {
        loop {
            // A body that knows it is done (its `Content-Length` all read) is not polled for an
            // end that would only come with the connection's next turn.
            let frame = if self.body.is_end_stream() {
                None
            } else {
                ready!(Pin::new(&mut self.body).poll_frame(cx))
            };
            match frame {
                None => {
                    let bytes = std::mem::replace(&mut self.buffered, Buffered::Empty).into_bytes();
                    return Poll::Ready((Read::Whole(bytes.clone()), Body::from(bytes)));
                }
                Some(Err(_)) => return Poll::Ready((Read::Failed, Body::empty())),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers: nothing to classify
                    };
                    self.buffered.push(data);
                    if self.buffered.len() > self.rules.max_body_bytes() {
                        let head = std::mem::replace(&mut self.buffered, Buffered::Empty);
                        let head =
                            futures_util::stream::once(std::future::ready(Ok::<_, axum::Error>(
                                head.into_bytes(),
                            )));
                        let rest = std::mem::take(&mut self.body).into_data_stream();
                        return Poll::Ready((Read::Oversize, Body::from_stream(head.chain(rest))));
                    }
                }
            }
        }
    }
}

/// The frames read so far: a body of one frame (the usual small JSON-RPC request) is kept as
/// it came, without a copy.
enum Buffered {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Buffered {
    fn push(&mut self, data: Bytes) {
        *self = match std::mem::replace(self, Buffered::Empty) {
            Buffered::Empty => Buffered::One(data),
            Buffered::One(first) => {
                let mut many = BytesMut::with_capacity(first.len() + data.len());
                many.extend_from_slice(&first);
                many.extend_from_slice(&data);
                Buffered::Many(many)
            }
            Buffered::Many(mut many) => {
                many.extend_from_slice(&data);
                Buffered::Many(many)
            }
        };
    }

    fn len(&self) -> usize {
        match self {
            Buffered::Empty => 0,
            Buffered::One(bytes) => bytes.len(),
            Buffered::Many(many) => many.len(),
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Buffered::Empty => Bytes::new(),
            Buffered::One(bytes) => bytes,
            Buffered::Many(many) => many.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> McpToolScopes {
        McpToolScopes::new()
            .tool("list_tickets", ["tickets:read"])
            .tool("triage_ticket", ["tickets:triage"])
            .tool("ping", [] as [&str; 0])
    }

    fn needs(body: &str) -> Vec<String> {
        let scopes = scopes();
        let needed = scopes.required_scopes(body.as_bytes());
        needed.into_iter().map(str::to_owned).collect()
    }

    const EVERYTHING: [&str; 2] = ["tickets:read", "tickets:triage"];

    #[test]
    fn a_finished_future_polled_again_answers_500_never_200() {
        use futures_util::FutureExt as _;
        let inner = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let mut service = scopes().layer(inner);
        // No agent: answered at once (500), as after a refusal.
        let request = Request::post("/mcp").body(Body::from("{}")).unwrap();
        let mut future = std::pin::pin!(service.call(request));
        for _ in 0..2 {
            let response = future.as_mut().now_or_never().unwrap().unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
    }

    #[test]
    fn a_tool_call_needs_that_tools_scopes() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tickets","arguments":{}}}"#;
        assert_eq!(needs(call), ["tickets:read"]);
        let open = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping"}}"#;
        assert!(needs(open).is_empty());
    }

    #[test]
    fn other_methods_notifications_and_responses_need_nothing() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}"#,
        ] {
            assert!(needs(body).is_empty(), "{body}");
        }
    }

    #[test]
    fn a_batch_needs_the_union() {
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tickets"}},
                        {"jsonrpc":"2.0","id":2,"method":"tools/list"},
                        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"triage_ticket","arguments":{"id":"1"}}}]"#;
        assert_eq!(needs(batch), EVERYTHING);
    }

    #[test]
    fn what_cannot_be_classified_needs_every_scope() {
        for body in [
            "",
            "not json",
            "[]",
            "42",
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"unknown_tool"}}"#,
            // A duplicate could be read as `tools/list` here and as `tools/call` by the server.
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"triage_ticket"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping","name":"triage_ticket"}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}, 3]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"} trailing"#,
        ] {
            assert_eq!(needs(body), EVERYTHING, "{body}");
        }
    }

    #[test]
    fn duplicates_count_only_among_the_deciding_members() {
        let in_arguments = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tickets","arguments":{"a":1,"a":2}}}"#;
        assert_eq!(needs(in_arguments), ["tickets:read"]);
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping"},"params":{"name":"triage_ticket"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","m\u0065thod":"tools/call","params":{"name":"triage_ticket"}}"#,
        ] {
            assert_eq!(needs(body), EVERYTHING, "{body}");
        }
    }

    /// The reading this module replaced: a strict `serde_json::Value`, then its members.
    fn classify_by_value<'a>(rules: &'a Rules, body: &[u8]) -> Option<BTreeSet<&'a str>> {
        classify_value(rules, &crate::strict_json::parse_object(body).ok()?)
    }

    fn classify_value<'a>(
        rules: &'a Rules,
        message: &serde_json::Value,
    ) -> Option<BTreeSet<&'a str>> {
        use serde_json::Value;
        fn add<'a>(
            rules: &'a Rules,
            message: &Value,
            needed: &mut BTreeSet<&'a str>,
        ) -> Option<()> {
            let message = message.as_object()?;
            match message.get("method") {
                Some(Value::String(method)) if method == "tools/call" => {
                    let name = message.get("params")?.get("name")?.as_str()?;
                    needed.extend(rules.tools.get(name)?.iter().map(|s| &**s));
                    Some(())
                }
                Some(Value::String(_)) => Some(()),
                Some(_) => None,
                None if message.contains_key("result") || message.contains_key("error") => Some(()),
                None => None,
            }
        }
        let mut needed = BTreeSet::new();
        match message {
            Value::Array(batch) if !batch.is_empty() => {
                for message in batch {
                    add(rules, message, &mut needed)?;
                }
            }
            Value::Object(_) => add(rules, message, &mut needed)?,
            _ => return None,
        }
        Some(needed)
    }

    fn out_of_range(error: &serde_json::Error) -> bool {
        error.to_string().starts_with("number out of range")
    }

    #[test]
    fn the_typed_reading_decides_as_the_value_reading_did() {
        let scopes = scopes();
        let rules = &scopes.rules;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/mcp_classify");
        let mut bodies: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .collect();
        bodies.extend(
            [
                r#"{"method":"tools/call","params":["triage_ticket"]}"#,
                r#"{"method":"tools/list","params":[1,2]}"#,
                r#"{"method":"tools/call","params":{"name":"list_tickets","name2":{"name":"triage_ticket"}}}"#,
                r#"{"method":"tools\/call","params":{"n\u0061me":"triage_ticket"}}"#,
                r#"{"method":null,"result":1}"#,
                r#"{"result":null}"#,
                r#"{"error":[]}"#,
                r#"{"method":"tools/call","params":null}"#,
                r#"{"method":"tools/call","params":{"name":null}}"#,
                r#"{"method":"tools/call","params":{"arguments":{"a":1,"a":2},"name":"ping"}}"#,
                r#"[[{"method":"tools/list"}]]"#,
                r#"[{"method":"tools/list"},{"method":"tools/call","params":{"name":"list_tickets"}}]"#,
            ]
            .map(|b| b.as_bytes().to_vec()),
        );
        bodies.push(b"{\"method\":\"tools/list\",\"x\":\"\xff\"}".to_vec());
        assert!(bodies.len() > 15, "the seeds were read");
        let mut compared = 0;
        for body in &bodies {
            // The body, each of its prefixes, and each one-byte deletion.
            let mut variants = vec![body.clone()];
            variants.extend((0..body.len()).map(|n| body[..n].to_vec()));
            variants.extend((0..body.len()).map(|n| {
                let mut v = body.clone();
                v.remove(n);
                v
            }));
            for variant in &variants {
                let typed = rules.classify(variant).map(|needs| needs.union());
                if crate::strict_json::parse_object(variant).is_ok() {
                    assert_eq!(
                        typed,
                        classify_by_value(rules, variant),
                        "{}",
                        String::from_utf8_lossy(variant)
                    );
                } else if let Err(error) = serde_json::from_slice::<serde_json::Value>(variant) {
                    // A number out of f64's range in a member the classifier skips: serde's own
                    // typed reading skips it too, and a server reading a `Value` refuses the
                    // body (no tool runs). Any other error leaves the body unclassifiable.
                    if !out_of_range(&error) {
                        assert_eq!(typed, None, "{}", String::from_utf8_lossy(variant));
                    }
                } else if let Some(needed) = &typed {
                    // Duplicates outside the deciding members: whatever tool the server picks
                    // (last duplicate wins in serde_json) is covered.
                    let last_wins = serde_json::from_slice::<serde_json::Value>(variant).unwrap();
                    let lenient = classify_value(rules, &last_wins).unwrap_or_default();
                    assert!(
                        lenient.is_subset(needed),
                        "{}",
                        String::from_utf8_lossy(variant)
                    );
                }
                compared += 1;
            }
        }
        assert!(compared > 1000);
    }
}
