//! Stateless clients (MCP 2026-07-28): no `initialize`, no session. Every POST names its
//! revision in the `MCP-Protocol-Version` header and in `params._meta`, declares the client's
//! capabilities there too, and mirrors its method (and tool, prompt or resource) in the
//! `Mcp-Method` / `Mcp-Name` headers.
//!
//! Owns: choosing this path for a POST, the revision's checks (headers against body, required
//! `_meta`), `server/discover`, and which methods the revision has. Must never: issue or
//! demand a session, or change what a handshake-era client gets (a POST that names neither
//! this revision nor an unknown one without a session stays on the session path).

use std::rc::Rc;
use std::time::Instant;

use base64::Engine;

use super::call_stream::CallStream;
use super::client_info::ClientInfo;
use super::forward::{Arrival, Forwarding, Routed};
use super::methods;
use super::service::route;
use super::session::SessionKeys;
use super::stateless_reply::{level_rank, StatelessTerms};
use super::version::ProtocolVersion;
use crate::audit::{Recorder, RoutedMethod};
use crate::http::{RequestHead, Response, Status};
use crate::jsonrpc::{
    parse_message, write_error, write_error_with_data, write_result, Envelope, ErrorCode,
    MessageKind, ParseError, RawObject,
};
use crate::registry::{Access, CatalogKind};

/// The `_meta` keys a stateless request carries.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// What the gateway offers a stateless client. No `resources.subscribe` (the revision replaced
/// it with `subscriptions/listen`, not built here) and no list-change notifications.
const CAPABILITIES: &str = concat!(
    r#"{"tools":{"listChanged":false},"prompts":{"listChanged":false},"#,
    r#""resources":{"listChanged":false},"completions":{},"logging":{}}"#
);

/// What the handler needs of its core.
pub struct Core<'a> {
    /// The caller's reach in the snapshot the request arrived under.
    pub access: Access<'a>,
    /// What a session opened here would record of the caller's key.
    pub key: [u8; 8],
    pub recorder: &'a Rc<Recorder>,
    pub keys: &'a SessionKeys,
}

/// Whether a POST takes this path: its `MCP-Protocol-Version` is 2026-07-28; or, without a
/// session, it names a revision the gateway does not know (it is then told which it serves);
/// or, without a session or version header, its body names a revision in `_meta` (it is then
/// told the header is missing). Everything else is a handshake-era POST.
pub fn selects(head: &RequestHead<'_>, body: &[u8]) -> bool {
    match head.protocol_version.map(<[u8]>::trim_ascii) {
        Some(v) => match ProtocolVersion::parse(v) {
            Some(v) => !v.has_handshake(),
            None => head.session_id.is_none(),
        },
        None => {
            head.session_id.is_none()
                && memchr::memmem::find(body, META_VERSION.as_bytes()).is_some()
        }
    }
}

/// A refusal with a JSON-RPC error body.
fn refuse(resp: &mut Response, status: Status, id: &str, code: ErrorCode, message: &str) {
    write_error(resp.json(status), id, code, message);
}

/// Serves one stateless POST (its `Content-Type` and `Accept` already checked).
pub async fn post(
    core: Core<'_>,
    head: &RequestHead<'_>,
    body: &[u8],
    resp: &mut Response,
    stream: &mut Option<Box<CallStream>>,
) {
    let arrival = Arrival {
        at: Instant::now(),
        bytes: body.len(),
    };
    if body.trim_ascii_start().first() == Some(&b'[') {
        return refuse(
            resp,
            Status::BadRequest,
            "null",
            ErrorCode::InvalidRequest,
            "JSON-RPC batches are not part of MCP 2026-07-28 (only 2025-03-26 had them): send one message per POST",
        );
    }
    let env = match parse_message(body) {
        Ok(env) => env,
        Err(ParseError::NotJson(e)) => {
            let message = format!("Parse error: {e}");
            return refuse(
                resp,
                Status::BadRequest,
                "null",
                ErrorCode::ParseError,
                &message,
            );
        }
        Err(ParseError::Invalid(why)) => {
            let message = format!("Invalid Request: {why}");
            let code = ErrorCode::InvalidRequest;
            return refuse(resp, Status::BadRequest, "null", code, &message);
        }
    };
    match env.kind() {
        // The revision defines no client notifications over HTTP; one is accepted and ignored.
        MessageKind::Notification => return resp.empty(Status::Accepted),
        MessageKind::Response => {
            return refuse(
                resp,
                Status::BadRequest,
                env.id_or_null(),
                ErrorCode::InvalidRequest,
                "MCP 2026-07-28 clients send no JSON-RPC responses (servers send them no requests)",
            )
        }
        MessageKind::Request => {}
    }
    // `initialize` is the handshake-era opening whatever header came with it; it never
    // negotiates 2026-07-28 (see `ProtocolVersion::negotiate`).
    if env.method.as_deref() == Some("initialize") {
        return methods::initialize(&env, core.keys, core.key, resp);
    }
    let Some(terms) = checked(head, &env, resp) else {
        return;
    };
    dispatch(core, &env, terms, resp, stream, arrival).await
}

/// The revision's checks of a request; on failure the refusal is written.
fn checked(head: &RequestHead<'_>, env: &Envelope<'_>, resp: &mut Response) -> Option<Request> {
    let id = env.id_or_null();
    let mismatch = |resp: &mut Response, message: &str| {
        let message = format!("Header mismatch: {message}");
        refuse(
            resp,
            Status::BadRequest,
            id,
            ErrorCode::HeaderMismatch,
            &message,
        );
    };
    let Some(header) = head.protocol_version.map(<[u8]>::trim_ascii) else {
        mismatch(resp, "the MCP-Protocol-Version header is required");
        return None;
    };
    if ProtocolVersion::parse(header) != Some(ProtocolVersion::STATELESS) {
        unsupported_version(resp, id, &String::from_utf8_lossy(header));
        return None;
    }
    let params = env.params.and_then(|p| RawObject::parse(p.get()).ok());
    let meta = params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| RawObject::parse(m.get()).ok());
    let version = meta.as_ref().and_then(|m| m.get_str(META_VERSION));
    let capabilities = meta
        .as_ref()
        .and_then(|m| m.get(META_CAPABILITIES))
        .filter(|c| c.get().starts_with('{'))
        .and_then(methods::capability_bits);
    let (version, capabilities) = match (version, capabilities) {
        (Some(version), Some(capabilities)) => (version, capabilities),
        (version, capabilities) => {
            let missing: Vec<&str> = [
                (version.is_none(), META_VERSION),
                (capabilities.is_none(), META_CAPABILITIES),
            ]
            .into_iter()
            .filter_map(|(missing, key)| missing.then_some(key))
            .collect();
            let message = format!(
                "Invalid params: params._meta is missing or has malformed required fields: {}",
                missing.join(", ")
            );
            refuse(
                resp,
                Status::BadRequest,
                id,
                ErrorCode::InvalidParams,
                &message,
            );
            return None;
        }
    };
    if version.as_bytes() != header {
        mismatch(
            resp,
            &format!(
                "MCP-Protocol-Version {:?} does not match _meta {META_VERSION} {version:?}",
                String::from_utf8_lossy(header)
            ),
        );
        return None;
    }
    let method = env.method.as_deref().unwrap_or_default();
    if head.mcp_method != Some(method.as_bytes()) {
        let shown = head.mcp_method.map(String::from_utf8_lossy);
        mismatch(
            resp,
            &format!("Mcp-Method {shown:?} does not match the body's method {method:?}"),
        );
        return None;
    }
    let named = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(member) = named {
        let in_body = params.as_ref().and_then(|p| p.get_str(member));
        let in_header = head.mcp_name.and_then(decode_header_value);
        if in_header.is_none() || in_header.as_deref() != in_body.as_deref() {
            mismatch(
                resp,
                &format!("Mcp-Name {in_header:?} does not match params.{member} {in_body:?}"),
            );
            return None;
        }
    }
    let log_level = meta
        .as_ref()
        .and_then(|m| m.get_str(META_LOG_LEVEL))
        .and_then(|l| level_rank(&l));
    let client = meta
        .as_ref()
        .and_then(|m| m.get(META_CLIENT_INFO))
        .map_or_else(ClientInfo::default, |c| ClientInfo::from_json(c.get()));
    Some(Request {
        capabilities,
        client,
        terms: StatelessTerms {
            log_level,
            cache_hints: false,
        },
    })
}

/// What the checks established about a request.
struct Request {
    /// [`super::server_requests::ClientCapability`] bits from `_meta`.
    capabilities: u8,
    /// What `_meta` says the client is.
    client: ClientInfo,
    terms: StatelessTerms,
}

/// A mirrored header value: plain ASCII as is, or the revision's `=?base64?…?=` form decoded.
fn decode_header_value(value: &[u8]) -> Option<String> {
    let value = value.trim_ascii();
    match value
        .strip_prefix(b"=?base64?")
        .and_then(|v| v.strip_suffix(b"?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => std::str::from_utf8(value).ok().map(str::to_owned),
    }
}

/// `UnsupportedProtocolVersionError`: 400, listing what the gateway serves.
fn unsupported_version(resp: &mut Response, id: &str, requested: &str) {
    let supported: Vec<&str> = ProtocolVersion::supported().map(|v| v.as_str()).collect();
    let data = serde_json::json!({ "supported": supported, "requested": requested }).to_string();
    write_error_with_data(
        resp.json(Status::BadRequest),
        id,
        ErrorCode::UnsupportedProtocolVersion,
        "Unsupported protocol version",
        Some(&data),
    );
}

async fn dispatch(
    core: Core<'_>,
    env: &Envelope<'_>,
    request: Request,
    resp: &mut Response,
    stream: &mut Option<Box<CallStream>>,
    arrival: Arrival,
) {
    let access = core.access;
    let id = env.id_or_null();
    let params = env.params;
    let method = env.method.as_deref().unwrap_or_default();
    let cached = StatelessTerms {
        cache_hints: true,
        ..request.terms
    };
    let out = resp.json(Status::Ok);
    let kind = match method {
        "server/discover" => return discover(out, id),
        "tools/list" => Some(CatalogKind::Tools),
        "prompts/list" => Some(CatalogKind::Prompts),
        "resources/list" => Some(CatalogKind::Resources),
        "resources/templates/list" => Some(CatalogKind::ResourceTemplates),
        _ => None,
    };
    if let Some(kind) = kind {
        methods::list_page(access, kind, params, id, out);
        return cached.complete_reply(out, 0, id);
    }
    let routed = RoutedMethod::parse(method).filter(|m| {
        !matches!(
            m,
            RoutedMethod::ResourcesSubscribe | RoutedMethod::ResourcesUnsubscribe
        )
    });
    match routed {
        Some(routed) => {
            let terms = if routed == RoutedMethod::ResourcesRead {
                cached
            } else {
                request.terms
            };
            let mut fwd = Forwarding::new(
                Routed {
                    method: routed,
                    id,
                    arrival,
                    // No session: nothing relayed to this client could be answered on a later
                    // POST.
                    session: None,
                    client: request.client,
                },
                out,
                core.recorder,
                request.capabilities,
                stream,
                Some(terms),
                access,
            );
            route(routed, access, params, &mut fwd).await
        }
        None => {
            let why = match method {
                "ping" | "logging/setLevel" | "resources/subscribe" | "resources/unsubscribe" => {
                    " (removed in MCP 2026-07-28)"
                }
                _ => "",
            };
            refuse(
                resp,
                Status::NotFound,
                id,
                ErrorCode::MethodNotFound,
                &format!("Method not found: {method}{why}"),
            );
        }
    }
}

/// `server/discover`: the revisions served, what the gateway offers, and who it is.
fn discover(out: &mut Vec<u8>, id: &str) {
    let versions: Vec<&str> = ProtocolVersion::supported().map(|v| v.as_str()).collect();
    let info = format!(
        r#"{{"name":"mcpgate","version":"{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    // `serverInfo` is a member of the result in the revision's text and in `_meta` in its
    // SDKs' schema: both are written so either kind of client finds it.
    let result = format!(
        concat!(
            r#"{{"resultType":"complete","supportedVersions":{},"capabilities":{},"#,
            r#""serverInfo":{},"ttlMs":0,"cacheScope":"private","#,
            r#""_meta":{{"io.modelcontextprotocol/serverInfo":{}}}}}"#
        ),
        serde_json::Value::from(versions),
        CAPABILITIES,
        info,
        info
    );
    write_result(out, id, &result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_decode() {
        assert_eq!(decode_header_value(b"echo").as_deref(), Some("echo"));
        assert_eq!(
            decode_header_value(b"=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode_header_value(b"=?base64?!!!?="), None);
    }

    #[test]
    fn discover_is_json_with_the_revision() {
        let mut out = Vec::new();
        discover(&mut out, "1");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["supportedVersions"][0], "2026-07-28");
        assert_eq!(v["result"]["serverInfo"]["name"], "mcpgate");
        assert_eq!(v["result"]["resultType"], "complete");
    }
}
