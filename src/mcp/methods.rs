//! The JSON-RPC methods the gateway answers itself or routes upstream.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::session::SessionKeys;
use super::version::ProtocolVersion;
use crate::admin::metrics::CoreMetrics;
use crate::http::{Response, Status};
use crate::jsonrpc::{
    write_error, write_error_with_data, write_result, Envelope, ErrorCode, RawObject,
};
use crate::registry::{Catalog, CatalogKind, RegistrySnapshot};
use crate::upstream::{CallTiming, UpstreamError, UpstreamReply};

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow)]
    protocol_version: Option<Cow<'a, str>>,
}

/// `initialize`: negotiates the revision and issues the session id.
pub fn initialize(env: &Envelope<'_>, keys: &SessionKeys, resp: &mut Response) {
    let id = env.id_or_null();
    let requested = env
        .params
        .and_then(|p| serde_json::from_str::<InitializeParams<'_>>(p.get()).ok());
    let Some(requested) = requested.and_then(|p| p.protocol_version) else {
        write_error(
            resp.json(Status::Ok),
            id,
            ErrorCode::InvalidParams,
            "initialize needs params.protocolVersion",
        );
        return;
    };
    let version = ProtocolVersion::negotiate(Some(&requested));
    let session = match keys.issue(version) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot issue a session id");
            write_error(
                resp.json(Status::InternalServerError),
                id,
                ErrorCode::InternalError,
                "cannot issue a session id",
            );
            return;
        }
    };
    resp.header("Mcp-Session-Id", session);
    let result = format!(
        concat!(
            r#"{{"protocolVersion":"{}","capabilities":{{"tools":{{"listChanged":false}},"prompts":{{"listChanged":false}}}},"#,
            r#""serverInfo":{{"name":"mcpgate","version":"{}"}}}}"#
        ),
        version.as_str(),
        env!("CARGO_PKG_VERSION")
    );
    write_result(resp.json(Status::Ok), id, &result);
}

pub fn ping(out: &mut Vec<u8>, id: &str) {
    write_result(out, id, "{}");
}

/// `tools/list`, `prompts/list`: a precomputed page of the catalog.
pub fn list_page(catalog: &Catalog, params: Option<&RawValue>, id: &str, out: &mut Vec<u8>) {
    let cursor = match params.map(|p| RawObject::parse(p.get())) {
        None => None,
        Some(Ok(obj)) => match obj.get("cursor") {
            None => None,
            Some(raw) if raw.get() == "null" => None,
            Some(_) => match obj.get_str("cursor") {
                Some(c) => Some(c),
                None => {
                    return write_error(
                        out,
                        id,
                        ErrorCode::InvalidParams,
                        "Invalid params: cursor must be a string",
                    )
                }
            },
        },
        Some(Err(_)) => {
            return write_error(
                out,
                id,
                ErrorCode::InvalidParams,
                "Invalid params: expected an object",
            )
        }
    };
    match catalog.page(cursor.as_deref()) {
        Some(page) => write_result(out, id, page),
        None => write_error(
            out,
            id,
            ErrorCode::InvalidParams,
            "Invalid params: unknown cursor",
        ),
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

/// Finds the named item, forwards the request with its original name to its server, and
/// splices the reply. Records the gateway's internal time for the call.
pub async fn forward_named(
    snapshot: &RegistrySnapshot,
    request: NamedRequest,
    params: Option<&RawValue>,
    id: &str,
    out: &mut Vec<u8>,
    metrics: &CoreMetrics,
    started: Instant,
) {
    let method = request.method;
    let Some(params) = params else {
        return write_error(
            out,
            id,
            ErrorCode::InvalidParams,
            &format!("Invalid params: {method} needs params"),
        );
    };
    let Ok(obj) = RawObject::parse(params.get()) else {
        return write_error(
            out,
            id,
            ErrorCode::InvalidParams,
            "Invalid params: expected an object",
        );
    };
    let Some(name) = obj.get_str("name") else {
        return write_error(
            out,
            id,
            ErrorCode::InvalidParams,
            "Invalid params: params.name must be a string",
        );
    };
    let catalog = snapshot.catalog(request.kind);
    let Some(item) = catalog.get(&name) else {
        // A prefixed name of a server that is down is not "unknown": say which server failed.
        if let Some(down) = snapshot.failed_server_for(&name) {
            let reason = down.error.clone().unwrap_or_default();
            let e = UpstreamError::Unavailable {
                server: down.name.clone(),
                reason,
            };
            return write_upstream_error(out, id, &e);
        }
        let noun = request.noun;
        return write_error(
            out,
            id,
            ErrorCode::InvalidParams,
            &format!("Unknown {noun}: {name}"),
        );
    };
    let server = &snapshot.servers[item.server];
    let mut upstream_params = Vec::with_capacity(params.get().len() + 8);
    obj.write_replacing(&mut upstream_params, "name", &item.original);
    let mut timing = CallTiming::default();
    let reply = server
        .upstream
        .request(
            &server.name,
            method,
            Some(&upstream_params),
            server.timeout,
            &mut timing,
        )
        .await;
    match reply {
        Ok(reply) => splice_reply(out, id, &server.name, &reply),
        Err(e) => write_upstream_error(out, id, &e),
    }
    if let (Some(sent), Some(received)) = (timing.sent, timing.received) {
        let now = Instant::now();
        let inside =
            sent.saturating_duration_since(started) + now.saturating_duration_since(received);
        metrics.record_internal(u64::try_from(inside.as_nanos()).unwrap_or(u64::MAX), now);
    }
}

/// Writes the upstream's `result` or `error` under the client's id, bytes unchanged. Uses
/// the span the reader already located when there is one, so a large reply is scanned once.
fn splice_reply(out: &mut Vec<u8>, id: &str, server: &str, reply: &UpstreamReply) {
    let parsed;
    let payload = match reply.payload_text() {
        Some(located) => Some(located),
        None => {
            parsed = serde_json::from_slice::<Envelope<'_>>(&reply.message);
            match &parsed {
                Ok(Envelope {
                    result: Some(r), ..
                }) => Some((false, r.get())),
                Ok(Envelope { error: Some(e), .. }) => Some((true, e.get())),
                _ => None,
            }
        }
    };
    match payload {
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
