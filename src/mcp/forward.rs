//! Sending a client's request to the one upstream it was routed to and splicing the reply
//! back: the path `tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe` and
//! `completion/complete` share once their target is known.
//!
//! Owns: reading the params object, the upstream call, the reply splice (only the JSON-RPC `id`
//! changes), upstream failures as JSON-RPC errors naming the server, and the gateway's
//! internal-time figure for the call. Must never: re-serialize an upstream's `result` or
//! `error`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::jsonrpc::RawJson;

use super::call_stream::{
    await_call, CallClient, CallFuture, CallOutcome, CallStream, Cancellation,
};
use super::in_flight;
use super::stateless_reply::StatelessTerms;

use crate::admin::metrics::CoreMetrics;
use crate::auth::limits::Refusal;
use crate::jsonrpc::{
    write_error, write_error_with_data, write_result, Envelope, ErrorCode, RawObject,
};
use crate::registry::{Access, CatalogKind, RegistrySnapshot, ServerEntry};
use crate::upstream::{CallTiming, EventSink, UpstreamError, UpstreamReply};

/// Progress tokens the gateway gives calls upstream, unique in the process, so calls from
/// different clients that chose the same token never meet at a server.
static NEXT_PROGRESS_TOKEN: AtomicU64 = AtomicU64::new(1);

/// One client request on its way upstream: its id, where its reply goes, and what the
/// internal-time figure needs.
pub struct Forwarding<'a> {
    /// The client's JSON-RPC id, raw.
    pub id: &'a str,
    pub out: &'a mut Vec<u8>,
    pub metrics: &'a CoreMetrics,
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
}

impl Forwarding<'_> {
    /// Answers JSON-RPC -32602 with `message`.
    pub fn invalid_params(&mut self, message: &str) {
        write_error(self.out, self.id, ErrorCode::InvalidParams, message);
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

    /// Sends `method` with `params` to `server` and splices its reply into `out`, recording the
    /// gateway's internal time; or, when the server sends messages about the call first,
    /// leaves an SSE [`CallStream`] in `stream` that relays them and then the reply.
    pub async fn send(&mut self, server: &Arc<ServerEntry>, method: &'static str, params: Vec<u8>) {
        if server.health.failing() {
            // Its last check failed: answer now, naming it, rather than wait for its timeout.
            let reason = server.health.report().last_error.unwrap_or_default();
            let e = UpstreamError::Unavailable {
                server: server.name.clone(),
                reason: format!("its last health check failed: {reason}"),
            };
            return write_upstream_error(self.out, self.id, &e);
        }
        let permit = match self.access.admit_call(self.cost_milli) {
            Ok(permit) => permit,
            Err(refusal) => return self.limited(&refusal),
        };
        let (params, progress_token, client_token) = with_gateway_progress_token(params);
        let (sink, events) = EventSink::new(progress_token);
        let entry = server.clone();
        let call: CallFuture = Box::pin(async move {
            let mut timing = CallTiming::default();
            let reply = entry
                .call(method, Some(&params), Some(sink), &mut timing)
                .await;
            (reply, timing)
        });
        let client = CallClient {
            id: self.id.into(),
            progress_token: client_token,
            session: self.session,
            capabilities: self.client_capabilities,
            stateless: self.stateless,
        };
        let (registered, signal) = in_flight::register(self.session, self.id);
        let cancellation = Cancellation {
            _registered: registered,
            signal,
        };
        match await_call(call, events, client, server.clone(), cancellation).await {
            CallOutcome::Answered(reply, timing) => {
                let start = self.out.len();
                write_reply(self.out, self.id, &server.name, &reply);
                if let Some(terms) = self.stateless {
                    terms.complete_reply(self.out, start, self.id);
                }
                if let (Some(sent), Some(received)) = (timing.sent, timing.received) {
                    let now = Instant::now();
                    let inside = sent.saturating_duration_since(self.started)
                        + now.saturating_duration_since(received);
                    let nanos = u64::try_from(inside.as_nanos()).unwrap_or(u64::MAX);
                    self.metrics.record_internal(nanos, now);
                }
            }
            CallOutcome::Streaming(mut stream) => {
                stream.hold(permit);
                *self.stream = Some(stream)
            }
            CallOutcome::Cancelled => write_error(
                self.out,
                self.id,
                ErrorCode::RequestCancelled,
                "Request cancelled by the client",
            ),
        }
    }

    /// Answers a request for something the caller may not reach (JSON-RPC -32003); the
    /// upstream never sees it.
    pub fn denied(&mut self, access: Access<'_>, noun: &str, name: &str) {
        write_error(
            self.out,
            self.id,
            ErrorCode::Denied,
            &access.denial(noun, name),
        );
    }

    /// Answers a call a limit refuses (JSON-RPC -32029, the seconds to wait in `data`); the
    /// upstream never sees it.
    fn limited(&mut self, refusal: &Refusal) {
        let data = format!(r#"{{"retryAfterSecs":{}}}"#, refusal.retry_after_secs());
        write_error_with_data(
            self.out,
            self.id,
            ErrorCode::LimitExceeded,
            &refusal.to_string(),
            Some(&data),
        );
    }

    /// Answers a name no catalog holds: a prefixed name of a server that is down gets that
    /// server's error (it is not "unknown", it is unavailable); anything else -32602.
    pub fn unknown_name(&mut self, snapshot: &RegistrySnapshot, noun: &str, name: &str) {
        match snapshot.failed_server_for(name) {
            Some(down) => {
                let e = UpstreamError::Unavailable {
                    server: down.name.clone(),
                    reason: down.why_not_serving(),
                };
                write_upstream_error(self.out, self.id, &e);
            }
            None => self.invalid_params(&format!("Unknown {noun}: {name}")),
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
    mut fwd: Forwarding<'_>,
) {
    let Some(obj) = fwd.params_object(request.method, params) else {
        return;
    };
    let Some(name) = obj.get_str("name") else {
        return fwd.invalid_params("Invalid params: params.name must be a string");
    };
    let snapshot = access.snapshot();
    let Some((index, item)) = snapshot.catalog(request.kind).find(&name) else {
        return fwd.unknown_name(snapshot, request.noun, &name);
    };
    if !access.allows_item(request.kind, index) {
        return fwd.denied(access, request.noun, &name);
    }
    if request.kind == CatalogKind::Tools {
        fwd.cost_milli = access.tool_cost_milli(index);
    }
    let mut upstream_params = Vec::with_capacity(params.map_or(0, |p| p.get().len()) + 8);
    obj.write_replacing(&mut upstream_params, "name", &item.original);
    let server = &snapshot.servers[item.server];
    fwd.send(server, request.method, upstream_params).await
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
/// or the failure as a JSON-RPC error naming the server.
pub fn write_reply(
    out: &mut Vec<u8>,
    id: &str,
    server: &str,
    reply: &Result<UpstreamReply, UpstreamError>,
) {
    match reply {
        Ok(reply) => splice_reply(out, id, server, reply),
        Err(e) => write_upstream_error(out, id, e),
    }
}

/// A client's `params._meta.progressToken` replaced by one the gateway chose: the params to
/// send, the gateway's token, and the client's (raw) to put back on the way out. Params
/// without a token pass through untouched.
fn with_gateway_progress_token(params: Vec<u8>) -> (Vec<u8>, Option<u64>, Option<Box<str>>) {
    if memchr::memmem::find(&params, b"progressToken").is_none() {
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
fn splice_reply(out: &mut Vec<u8>, id: &str, server: &str, reply: &UpstreamReply) {
    match reply_payload(reply) {
        Some((false, result)) => write_result(out, id, result),
        Some((true, error)) => {
            out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(br#","error":"#);
            out.extend_from_slice(error.as_bytes());
            out.push(b'}');
        }
        None => write_upstream_error(
            out,
            id,
            &UpstreamError::Protocol {
                server: server.to_owned(),
                reason: unusable_reply(&reply.message),
            },
        ),
    }
}

/// Why a reply with no `result` or `error` to pass on is unusable: what a client (or operator)
/// needs to tell a server that answered HTML or text from one that sent odd JSON-RPC.
fn unusable_reply(message: &[u8]) -> String {
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
