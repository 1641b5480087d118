//! Sending a client's request to the one upstream it was routed to and splicing the reply
//! back: the path `tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe` and
//! `completion/complete` share once their target is known.
//!
//! Owns: reading the params object, the upstream call, the reply splice (only the JSON-RPC `id`
//! changes), upstream failures as JSON-RPC errors naming the server, and the gateway's
//! internal-time figure for the call. Must never: re-serialize an upstream's `result` or
//! `error`.

use std::time::Instant;

use serde_json::value::RawValue;

use crate::admin::metrics::CoreMetrics;
use crate::jsonrpc::{
    write_error, write_error_with_data, write_result, Envelope, ErrorCode, RawObject,
};
use crate::registry::{CatalogKind, RegistrySnapshot, ServerEntry};
use crate::upstream::{CallTiming, UpstreamError, UpstreamReply};

/// One client request on its way upstream: its id, where its reply goes, and what the
/// internal-time figure needs.
pub struct Forwarding<'a> {
    /// The client's JSON-RPC id, raw.
    pub id: &'a str,
    pub out: &'a mut Vec<u8>,
    pub metrics: &'a CoreMetrics,
    /// When the request arrived; the internal time runs from here to the upstream write.
    pub started: Instant,
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
        params: Option<&'p RawValue>,
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

    /// Sends `method` with `params` to `server`, splices its reply, and records the gateway's
    /// internal time for the call.
    pub async fn send(&mut self, server: &ServerEntry, method: &str, params: &[u8]) {
        let mut timing = CallTiming::default();
        let reply = server
            .upstream
            .request(
                &server.name,
                method,
                Some(params),
                server.timeout,
                &mut timing,
            )
            .await;
        match reply {
            Ok(reply) => splice_reply(self.out, self.id, &server.name, &reply),
            Err(e) => write_upstream_error(self.out, self.id, &e),
        }
        if let (Some(sent), Some(received)) = (timing.sent, timing.received) {
            let now = Instant::now();
            let inside = sent.saturating_duration_since(self.started)
                + now.saturating_duration_since(received);
            let nanos = u64::try_from(inside.as_nanos()).unwrap_or(u64::MAX);
            self.metrics.record_internal(nanos, now);
        }
    }

    /// Answers a name no catalog holds: a prefixed name of a server that is down gets that
    /// server's error (it is not "unknown", it is unavailable); anything else -32602.
    pub fn unknown_name(&mut self, snapshot: &RegistrySnapshot, noun: &str, name: &str) {
        match snapshot.failed_server_for(name) {
            Some(down) => {
                let e = UpstreamError::Unavailable {
                    server: down.name.clone(),
                    reason: down.error.clone().unwrap_or_default(),
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
    snapshot: &RegistrySnapshot,
    request: NamedRequest,
    params: Option<&RawValue>,
    mut fwd: Forwarding<'_>,
) {
    let Some(obj) = fwd.params_object(request.method, params) else {
        return;
    };
    let Some(name) = obj.get_str("name") else {
        return fwd.invalid_params("Invalid params: params.name must be a string");
    };
    let Some(item) = snapshot.catalog(request.kind).get(&name) else {
        return fwd.unknown_name(snapshot, request.noun, &name);
    };
    let mut upstream_params = Vec::with_capacity(params.map_or(0, |p| p.get().len()) + 8);
    obj.write_replacing(&mut upstream_params, "name", &item.original);
    let server = &snapshot.servers[item.server];
    fwd.send(server, request.method, &upstream_params).await
}

/// The reply's `result` (`false`) or `error` (`true`) as raw JSON text. Uses the span the
/// reader already located when there is one, so a large reply is scanned once.
pub fn reply_payload(reply: &UpstreamReply) -> Option<(bool, &str)> {
    if let Some(located) = reply.payload_text() {
        return Some(located);
    }
    match serde_json::from_slice::<Envelope<'_>>(&reply.message) {
        Ok(Envelope {
            result: Some(r), ..
        }) => Some((false, r.get())),
        Ok(Envelope { error: Some(e), .. }) => Some((true, e.get())),
        _ => None,
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
                reason: "reply has neither result nor error".into(),
            },
        ),
    }
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
