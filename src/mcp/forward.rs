//! Sending a client's request to the one upstream it was routed to and splicing the reply
//! back: the path `tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe` and
//! `completion/complete` share once their target is known.
//!
//! Owns: reading the params object, the upstream call, the reply splice (only the JSON-RPC `id`
//! changes), upstream failures as JSON-RPC errors naming the server, the gateway's
//! internal-time figure for the call, and ending the request's [`Observation`] (metrics and
//! its audit record) on every way out: each routed request is observed exactly once. Must
//! never: re-serialize an upstream's `result` or `error`.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use memchr::memmem::Finder;

use crate::jsonrpc::RawJson;

use super::call_stream::{
    await_call, CallClient, CallFuture, CallOutcome, CallStream, Cancellation,
};
use super::client_info::ClientInfo;
use super::in_flight;
use super::outcome::{detail_of, is_tool_error};
use super::stateless_reply::StatelessTerms;

use crate::audit::{Caller, Detail, Observation, Outcome, Recorder, RoutedMethod};
use crate::auth::limits::Refusal;
use crate::jsonrpc::{
    write_error, write_error_with_data, write_result, Envelope, ErrorCode, RawObject,
};
use crate::registry::{Access, CatalogKind, RegistrySnapshot};
use crate::upstream::{CallTiming, EventSink, UpstreamError, UpstreamReply};

/// Why a call the client cancelled with `notifications/cancelled` is `cancelled`.
pub const CANCELLED: &str = "cancelled by the client (notifications/cancelled)";

/// Progress tokens the gateway gives calls upstream, unique in the process, so calls from
/// different clients that chose the same token never meet at a server.
static NEXT_PROGRESS_TOKEN: AtomicU64 = AtomicU64::new(1);

/// The key that marks params which may carry a progress token; the searcher is built once.
static PROGRESS_TOKEN_KEY: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"progressToken"));

/// When a request arrived and how large it was.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When its handling began; latency and internal time run from here.
    pub at: Instant,
    /// Bytes of the JSON-RPC message.
    pub bytes: usize,
}

/// What a routed request is: its method, id and caller, as its observation needs them.
pub struct Routed<'a> {
    pub method: RoutedMethod,
    /// The client's JSON-RPC id, raw.
    pub id: &'a str,
    pub arrival: Arrival,
    /// The session's nonce, when there is a session.
    pub session: Option<[u8; 8]>,
    pub client: ClientInfo,
}

/// One client request on its way upstream: its id, where its reply goes, and what the
/// internal-time figure and the request's observation need.
pub struct Forwarding<'a> {
    /// The client's JSON-RPC id, raw.
    pub id: &'a str,
    pub out: &'a mut Vec<u8>,
    /// Where this request's reply starts in `out`.
    reply_at: usize,
    pub recorder: &'a Rc<Recorder>,
    /// When the request arrived; the internal time runs from here to the upstream write.
    pub started: Instant,
    /// The session's nonce and declared client capabilities (bits).
    pub session: [u8; 8],
    pub client_capabilities: u8,
    /// Set when the call streams: the reply is then this SSE stream, not `out`.
    pub stream: &'a mut Option<Box<CallStream>>,
    /// Set for a stateless (2026-07-28) request, whose replies follow that revision's rules.
    pub stateless: Option<StatelessTerms>,
    /// Who is calling: their limits are charged before the call goes upstream.
    pub access: Access<'a>,
    /// What the call costs against budgets, in milli-units (tool calls; 0 for the rest).
    pub cost_milli: u64,
    /// Metrics and the audit record of this request, ended once whatever happens.
    pub observed: Observation,
}

impl<'a> Forwarding<'a> {
    /// Starts forwarding `request`, whose reply goes to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        request: Routed<'a>,
        out: &'a mut Vec<u8>,
        recorder: &'a Rc<Recorder>,
        client_capabilities: u8,
        stream: &'a mut Option<Box<CallStream>>,
        stateless: Option<StatelessTerms>,
        access: Access<'a>,
    ) -> Forwarding<'a> {
        let observed = Observation::begin(
            recorder,
            request.method,
            request.arrival.at,
            request.arrival.bytes,
            request.id,
            || Caller {
                key: access.key_name().cloned(),
                group: access.group_name().cloned(),
                session: request.session,
                client: request.client,
            },
        );
        Forwarding {
            id: request.id,
            reply_at: out.len(),
            out,
            recorder,
            started: request.arrival.at,
            session: request.session.unwrap_or_default(),
            client_capabilities,
            stream,
            stateless,
            access,
            cost_milli: 0,
            observed,
        }
    }
}

impl Forwarding<'_> {
    /// Ends the request's observation with its reply as written so far.
    fn finish(&mut self, outcome: Outcome, detail: impl FnOnce() -> Detail) {
        self.finish_at(Instant::now(), outcome, detail);
    }

    /// [`finish`](Self::finish) at `now`, a reading the caller took as the reply was written.
    fn finish_at(&mut self, now: Instant, outcome: Outcome, detail: impl FnOnce() -> Detail) {
        self.observed
            .replied(self.out.len().saturating_sub(self.reply_at));
        self.observed.finish_at(now, outcome, detail);
    }

    /// Answers JSON-RPC -32602 with `message`: the request's params are malformed.
    pub fn invalid_params(&mut self, message: &str) {
        write_error(self.out, self.id, ErrorCode::InvalidParams, message);
        self.finish(Outcome::Invalid, || Detail::Text(message.into()));
    }

    /// Answers JSON-RPC -32602 with `message`: what the request names does not exist (or is
    /// ambiguous).
    pub fn unknown(&mut self, message: &str) {
        write_error(self.out, self.id, ErrorCode::InvalidParams, message);
        self.finish(Outcome::Unknown, || Detail::Text(message.into()));
    }

    /// Reads `params` as an object; `None` (with the error reply written) when it is not one.
    pub fn params_object<'p>(
        &mut self,
        method: &str,
        params: Option<RawJson<'p>>,
    ) -> Option<RawObject<'p>> {
        let Some(params) = params else {
            self.invalid_params(&format!("Invalid params: {method} needs params"));
            return None;
        };
        let parsed = RawObject::parse(params.get());
        if parsed.is_err() {
            self.invalid_params("Invalid params: expected an object");
        }
        parsed.ok()
    }

    /// The request is for server `index` of the snapshot.
    pub fn for_server(&mut self, index: usize) {
        if let Some(name) = self.access.snapshot().server_names.get(index) {
            self.observed.server(name);
        }
    }

    /// Sends `method` with `params` to server `index` of the snapshot and splices its reply
    /// into `out`, recording the gateway's internal time; or, when the server sends messages
    /// about the call first, leaves an SSE [`CallStream`] in `stream` that relays them and
    /// then the reply.
    pub async fn send(&mut self, index: usize, method: &'static str, params: Vec<u8>) {
        let snapshot = self.access.snapshot();
        let (server, name) = (&snapshot.servers[index], &snapshot.server_names[index]);
        self.observed.server(name);
        if server.health.failing() {
            // Its last check failed: answer now, naming it, rather than wait for its timeout.
            let reason = server.health.report().last_error.unwrap_or_default();
            let e = UpstreamError::Unavailable {
                server: server.name.clone(),
                reason: format!("its last health check failed: {reason}"),
            };
            write_upstream_error(self.out, self.id, &e);
            return self.finish(Outcome::UpstreamError, || Detail::Upstream(e));
        }
        let permit = match self.access.admit_call(self.cost_milli) {
            Ok(permit) => permit,
            Err(refusal) => return self.limited(&refusal),
        };
        self.observed.sent(name);
        let (params, progress_token, client_token) = with_gateway_progress_token(params);
        let (sink, events) = EventSink::new(progress_token);
        let entry = server.clone();
        let call: CallFuture = crate::runtime::boxed(|| async move {
            let mut timing = CallTiming::default();
            let reply = entry
                .call(method, Some(&params), Some(sink), &mut timing)
                .await;
            (reply, timing)
        });
        let (id, session, capabilities, stateless) = (
            self.id,
            self.session,
            self.client_capabilities,
            self.stateless,
        );
        let client = move || CallClient {
            id: id.into(),
            progress_token: client_token,
            session,
            capabilities,
            stateless,
        };
        let (registered, signal) = in_flight::register(self.session, self.id);
        let cancellation = Cancellation {
            _registered: registered,
            signal,
        };
        match await_call(call, events, client, server.clone(), cancellation).await {
            CallOutcome::Answered(reply, timing) => {
                let start = self.out.len();
                let outcome = write_reply(self.out, self.id, &server.name, &reply);
                if let Some(terms) = self.stateless {
                    terms.complete_reply(self.out, start, self.id);
                }
                let now = Instant::now();
                if let (Some(sent), Some(received)) = (timing.sent, timing.received) {
                    let inside = sent.saturating_duration_since(self.started)
                        + now.saturating_duration_since(received);
                    let nanos = u64::try_from(inside.as_nanos()).unwrap_or(u64::MAX);
                    self.recorder.metrics.record_internal(nanos, now);
                }
                self.observed.timing(&timing);
                match outcome {
                    Outcome::Ok => self.finish_at(now, outcome, || Detail::None),
                    _ => self.finish_at(now, outcome, || detail_of(reply)),
                }
            }
            CallOutcome::Streaming(mut stream) => {
                stream.hold(permit);
                stream.observe(self.observed.hand_over());
                *self.stream = Some(stream)
            }
            CallOutcome::Cancelled => {
                write_error(
                    self.out,
                    self.id,
                    ErrorCode::RequestCancelled,
                    "Request cancelled by the client",
                );
                self.finish(Outcome::Cancelled, || Detail::Static(CANCELLED));
            }
        }
    }

    /// Answers a request for something the caller may not reach (JSON-RPC -32003); the
    /// upstream never sees it.
    pub fn denied(&mut self, access: Access<'_>, noun: &str, name: &str) {
        let message = access.denial(noun, name);
        write_error(self.out, self.id, ErrorCode::Denied, &message);
        self.finish(Outcome::Denied, || Detail::Text(message.into()));
    }

    /// Answers a call a limit refuses (JSON-RPC -32029, the seconds to wait in `data`); the
    /// upstream never sees it.
    fn limited(&mut self, refusal: &Refusal) {
        let data = format!(r#"{{"retryAfterSecs":{}}}"#, refusal.retry_after_secs());
        let message = refusal.to_string();
        write_error_with_data(
            self.out,
            self.id,
            ErrorCode::LimitExceeded,
            &message,
            Some(&data),
        );
        self.finish(Outcome::Limited, || Detail::Text(message.into()));
    }

    /// Answers a name no catalog holds: a prefixed name of a server that is down gets that
    /// server's error (it is not "unknown", it is unavailable); anything else -32602.
    pub fn unknown_name(&mut self, snapshot: &RegistrySnapshot, noun: &str, name: &str) {
        self.observed.named(name);
        match snapshot.failed_server_index(name) {
            Some(index) => {
                self.for_server(index);
                let down = &snapshot.servers[index];
                let e = UpstreamError::Unavailable {
                    server: down.name.clone(),
                    reason: down.why_not_serving(),
                };
                write_upstream_error(self.out, self.id, &e);
                self.finish(Outcome::UpstreamError, || Detail::Upstream(e));
            }
            None => self.unknown(&format!("Unknown {noun}: {name}")),
        }
    }
}

/// A request naming one item of a catalog: `tools/call` or `prompts/get`.
#[derive(Clone, Copy)]
pub struct NamedRequest {
    pub kind: CatalogKind,
    pub method: &'static str,
    /// "tool", "prompt": for error messages.
    pub noun: &'static str,
}

pub const TOOLS_CALL: NamedRequest = NamedRequest {
    kind: CatalogKind::Tools,
    method: "tools/call",
    noun: "tool",
};
pub const PROMPTS_GET: NamedRequest = NamedRequest {
    kind: CatalogKind::Prompts,
    method: "prompts/get",
    noun: "prompt",
};

/// Finds the named item and forwards the request to its server with the original name.
pub async fn forward_named(
    access: Access<'_>,
    request: NamedRequest,
    params: Option<RawJson<'_>>,
    fwd: &mut Forwarding<'_>,
) {
    let Some(obj) = fwd.params_object(request.method, params) else {
        return;
    };
    let Some(name) = obj.get_str("name") else {
        return fwd.invalid_params("Invalid params: params.name must be a string");
    };
    let snapshot = access.snapshot();
    let catalog = snapshot.catalog(request.kind);
    let Some((index, item)) = catalog.find(&name) else {
        // A tool switched off through the admin API is named as such to callers it is
        // granted to; to anyone else it does not exist.
        let off = catalog.switched_off_item(&name);
        if off.is_some_and(|item| access.grants_name(item.server, &item.original)) {
            return fwd.invalid_params(&format!(
                "Disabled {}: {name} is disabled by the gateway's administrator",
                request.noun
            ));
        }
        return fwd.unknown_name(snapshot, request.noun, &name);
    };
    fwd.for_server(item.server);
    fwd.observed.item(&item.shared_original);
    if let Some(arguments) = obj.get("arguments") {
        fwd.observed.arguments(arguments.get());
    }
    if !access.allows_item(request.kind, index) {
        return fwd.denied(access, request.noun, &name);
    }
    if request.kind == CatalogKind::Tools {
        fwd.cost_milli = access.tool_cost_milli(index);
    }
    let mut upstream_params = Vec::with_capacity(params.map_or(0, |p| p.get().len()) + 8);
    obj.write_replacing(&mut upstream_params, "name", &item.original);
    fwd.send(item.server, request.method, upstream_params).await
}

/// The reply's `result` (`false`) or `error` (`true`) as raw JSON text. Uses the span the
/// reader already located when there is one, so a large reply is scanned once.
pub fn reply_payload(reply: &UpstreamReply) -> Option<(bool, &str)> {
    if let Some(located) = reply.payload_text() {
        return Some(located);
    }
    match Envelope::decode(&reply.message) {
        Ok(Envelope {
            result: Some(r), ..
        }) => Some((false, r.get())),
        Ok(Envelope { error: Some(e), .. }) => Some((true, e.get())),
        _ => None,
    }
}

/// The client's answer to a forwarded call: the upstream's reply spliced under the client's id,
/// or the failure as a JSON-RPC error naming the server. How the call ended, as the client
/// sees it.
pub fn write_reply(
    out: &mut Vec<u8>,
    id: &str,
    server: &str,
    reply: &Result<UpstreamReply, UpstreamError>,
) -> Outcome {
    match reply {
        Ok(reply) => splice_reply(out, id, server, reply),
        Err(e) => {
            write_upstream_error(out, id, e);
            match e {
                UpstreamError::Timeout { .. } => Outcome::Timeout,
                _ => Outcome::UpstreamError,
            }
        }
    }
}

/// A client's `params._meta.progressToken` replaced by one the gateway chose: the params to
/// send, the gateway's token, and the client's (raw) to put back on the way out. Params
/// without a token pass through untouched.
fn with_gateway_progress_token(params: Vec<u8>) -> (Vec<u8>, Option<u64>, Option<Box<str>>) {
    if PROGRESS_TOKEN_KEY.find(&params).is_none() {
        return (params, None, None);
    }
    let rewritten = std::str::from_utf8(&params).ok().and_then(|text| {
        let obj = RawObject::parse(text).ok()?;
        let meta = RawObject::parse(obj.get("_meta")?.get()).ok()?;
        let client_token = meta.get("progressToken")?;
        let token = NEXT_PROGRESS_TOKEN.fetch_add(1, Ordering::Relaxed);
        let mut digits = itoa::Buffer::new();
        let mut new_meta = Vec::with_capacity(text.len());
        meta.write_replacing_raw(
            &mut new_meta,
            "progressToken",
            digits.format(token).as_bytes(),
        );
        let mut out = Vec::with_capacity(text.len() + 16);
        obj.write_replacing_raw(&mut out, "_meta", &new_meta);
        Some((out, token, Box::<str>::from(client_token.get())))
    });
    match rewritten {
        Some((out, token, client)) => (out, Some(token), Some(client)),
        None => (params, None, None),
    }
}

/// Writes the upstream's `result` or `error` under the client's id, bytes unchanged.
fn splice_reply(out: &mut Vec<u8>, id: &str, server: &str, reply: &UpstreamReply) -> Outcome {
    match reply_payload(reply) {
        Some((false, result)) => {
            write_result(out, id, result);
            if is_tool_error(result) {
                Outcome::ToolError
            } else {
                Outcome::Ok
            }
        }
        Some((true, error)) => {
            out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(br#","error":"#);
            out.extend_from_slice(error.as_bytes());
            out.push(b'}');
            Outcome::UpstreamError
        }
        None => {
            write_upstream_error(
                out,
                id,
                &UpstreamError::Protocol {
                    server: server.to_owned(),
                    reason: unusable_reply(&reply.message),
                },
            );
            Outcome::UpstreamError
        }
    }
}

/// Why a reply with no `result` or `error` to pass on is unusable: what a client (or operator)
/// needs to tell a server that answered HTML or text from one that sent odd JSON-RPC.
pub(super) fn unusable_reply(message: &[u8]) -> String {
    /// Bytes of a non-JSON reply quoted in the error.
    const QUOTED: usize = 80;
    if serde_json::from_slice::<serde::de::IgnoredAny>(message).is_ok() {
        return "reply has neither result nor error".to_owned();
    }
    let start = String::from_utf8_lossy(&message[..message.len().min(QUOTED)]);
    let more = if message.len() > QUOTED { "…" } else { "" };
    format!("the reply is not JSON: {:?}{more}", start.trim())
}

fn write_upstream_error(out: &mut Vec<u8>, id: &str, e: &UpstreamError) {
    let code = match e {
        UpstreamError::Timeout { .. } => ErrorCode::UpstreamTimeout,
        _ => ErrorCode::UpstreamFailed,
    };
    let mut data = Vec::with_capacity(32);
    data.extend_from_slice(br#"{"server":"#);
    let _ = serde_json::to_writer(&mut data, e.server());
    data.push(b'}');
    let data = String::from_utf8(data).unwrap_or_default();
    write_error_with_data(out, id, code, &e.to_string(), Some(&data));
}
