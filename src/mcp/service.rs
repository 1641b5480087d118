//! The per-core MCP handler: transport rules first, then the JSON-RPC method. `/mcp` is served
//! here; `/sse` and `/messages` (the legacy transport) pass the same origin checks, then go to
//! `legacy_sse`, which answers through the same `dispatch`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::{admit, group_in_path, Admission};
use super::batch;
use super::call_stream::CallStream;
use super::checks::{accepts, is_json, origin_allowed};
use super::completion::complete;
use super::cors;
use super::forward::{forward_named, Arrival, Forwarding, Routed, PROMPTS_GET, TOOLS_CALL};
use super::in_flight;
use super::log_level;
use super::methods;
use super::resources::forward_by_uri;
use super::server_requests::server_requests;
use super::session::{SessionClaims, SessionVerifier};
use super::stateless;
use super::stream::{HeartbeatStream, McpStream};
use super::version::ProtocolVersion;
use crate::admin::metrics::CoreMetrics;
use crate::audit::{AccessPath, AccessRecord, Recorder, RoutedMethod};
use crate::auth::streams::StreamSlot;
use crate::http::{Handler, Method, Outcome, RequestHead, RequestLog, Response, Status};
use crate::jsonrpc::{
    parse_message, write_error, Envelope, ErrorCode, MessageKind, ParseError, RawObject,
};
use crate::registry::{Access, CatalogKind, RegistryReader, RegistrySnapshot};
use crate::runtime::CoreHandle;

/// Settings every core shares.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub allowed_origins: Vec<String>,
    /// The client listener is on a loopback address.
    pub loopback_listener: bool,
    /// Interval of SSE comments on idle `GET /mcp` streams.
    pub heartbeat: Duration,
    /// Every worker core, for the rare messages that concern a call on another core
    /// (a client's cancellation arrives on whatever connection it likes).
    pub cores: Vec<CoreHandle>,
}

/// One core's MCP endpoint.
pub struct McpService {
    pub(super) registry: RegistryReader,
    pub(super) sessions: SessionVerifier,
    pub(super) settings: Arc<ServiceSettings>,
    /// This core's metrics and audit queue; shared with tasks that answer legacy-transport
    /// requests after their POST returned.
    pub(super) recorder: Rc<Recorder>,
    /// The access log's name for callers when no keys are configured.
    anonymous: Arc<str>,
}

/// Answers an HTTP-level failure with a JSON-RPC error body (id null), which MCP clients
/// surface better than bare text.
pub(super) fn refuse(resp: &mut Response, status: Status, code: ErrorCode, message: &str) {
    write_error(resp.json(status), "null", code, message);
}

/// Checks a POST's `Content-Type` and `Accept`; on failure the response is already written.
pub(super) fn media_types_ok(head: &RequestHead<'_>, resp: &mut Response) -> bool {
    if !content_type_ok(head, resp) {
        return false;
    }
    if !accepts(head.accept, "application/json") {
        refuse(
            resp,
            Status::NotAcceptable,
            ErrorCode::InvalidRequest,
            "Not Acceptable: the Accept header must allow application/json and text/event-stream",
        );
        return false;
    }
    true
}

impl McpService {
    /// A core's endpoint that records metrics only (no audit or access log).
    pub fn new(
        registry: RegistryReader,
        sessions: SessionVerifier,
        settings: Arc<ServiceSettings>,
        metrics: CoreMetrics,
    ) -> Self {
        let recorder = Rc::new(Recorder::new(metrics, None));
        McpService::with_recorder(registry, sessions, settings, recorder)
    }

    /// A core's endpoint whose observations go to `recorder` (metrics, and the audit and access
    /// logs when they run).
    pub fn with_recorder(
        registry: RegistryReader,
        sessions: SessionVerifier,
        settings: Arc<ServiceSettings>,
        recorder: Rc<Recorder>,
    ) -> Self {
        McpService {
            registry,
            sessions,
            settings,
            recorder,
            anonymous: Arc::from(crate::audit::entry::ANONYMOUS),
        }
    }

    /// Checks `Mcp-Session-Id` and that `admission`'s key opened it; on failure the response is
    /// already written.
    pub(super) fn session(
        &self,
        head: &RequestHead<'_>,
        admission: Admission,
        resp: &mut Response,
    ) -> Option<SessionClaims> {
        let Some(id) = head.session_id else {
            refuse(
                resp,
                Status::BadRequest,
                ErrorCode::InvalidRequest,
                "Bad Request: Mcp-Session-Id header is required",
            );
            return None;
        };
        match self.sessions.verify(id) {
            Ok(claims) => admission.owns(&claims, resp).then_some(claims),
            Err(_) => {
                refuse(
                    resp,
                    Status::NotFound,
                    ErrorCode::InvalidRequest,
                    "Session not found: the Mcp-Session-Id is unknown, expired or ended; initialize again",
                );
                None
            }
        }
    }

    /// Checks `MCP-Protocol-Version` when present; absent means the oldest streamable revision.
    pub(super) fn version_header_ok(&self, head: &RequestHead<'_>, resp: &mut Response) -> bool {
        match head.protocol_version {
            Some(v) if ProtocolVersion::parse(v.trim_ascii()).is_none() => {
                let shown = String::from_utf8_lossy(&v[..v.len().min(40)]).into_owned();
                refuse(
                    resp,
                    Status::BadRequest,
                    ErrorCode::InvalidRequest,
                    &format!("Bad Request: unsupported MCP-Protocol-Version {shown:?}"),
                );
                false
            }
            _ => true,
        }
    }

    async fn post(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        access: Access<'_>,
        admission: Admission,
        resp: &mut Response,
    ) -> Outcome<McpStream> {
        if batch::is_batch(body) && !stateless::selects(head, body) {
            return batch::post(self, head, body, access, admission, resp).await;
        }
        let mut stream = None;
        self.post_message(head, body, access, admission, resp, &mut stream)
            .await;
        match stream {
            Some(call) => {
                resp.status = Status::Ok;
                Outcome::Stream(McpStream::Call(call))
            }
            None => Outcome::Done,
        }
    }

    /// Serves one JSON-RPC message (a POST's body, or one message of a batch).
    pub(super) async fn post_message(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        access: Access<'_>,
        admission: Admission,
        resp: &mut Response,
        stream: &mut Option<Box<CallStream>>,
    ) {
        let arrival = Arrival {
            at: Instant::now(),
            bytes: body.len(),
        };
        if !media_types_ok(head, resp) {
            return;
        }
        if stateless::selects(head, body) {
            let core = stateless::Core {
                access,
                key: admission.key,
                recorder: &self.recorder,
                keys: self.sessions.keys(),
            };
            return stateless::post(core, head, body, resp, stream).await;
        }
        let Some(env) = parse_body(body, resp) else {
            return;
        };
        if env.kind() == MessageKind::Request && env.method.as_deref() == Some("initialize") {
            return methods::initialize(&env, self.sessions.keys(), admission.key, resp);
        }
        let Some(claims) = self.session(head, admission, resp) else {
            return;
        };
        if !self.version_header_ok(head, resp) {
            return;
        }
        dispatch(
            access,
            &self.recorder,
            &self.settings.cores,
            &env,
            &claims,
            arrival,
            resp,
            stream,
        )
        .await
    }

    fn get(
        &self,
        head: &RequestHead<'_>,
        snapshot: &RegistrySnapshot,
        admission: Admission,
        resp: &mut Response,
    ) -> Outcome<McpStream> {
        if !accepts(head.accept, "text/event-stream") {
            refuse(
                resp,
                Status::NotAcceptable,
                ErrorCode::InvalidRequest,
                "Not Acceptable: GET /mcp opens an SSE stream; Accept must allow text/event-stream",
            );
            return Outcome::Done;
        }
        let Some(claims) = self.session(head, admission, resp) else {
            return Outcome::Done;
        };
        if !self.version_header_ok(head, resp) {
            return Outcome::Done;
        }
        let Some(slot) = open_stream(snapshot, admission, resp) else {
            return Outcome::Done;
        };
        let token = head.session_id.unwrap_or_default();
        resp.status = Status::Ok;
        Outcome::Stream(McpStream::Heartbeat(HeartbeatStream::new(
            self.sessions.keys_arc(),
            token,
            claims.nonce,
            self.settings.heartbeat,
            slot,
        )))
    }

    fn delete(&self, head: &RequestHead<'_>, admission: Admission, resp: &mut Response) {
        if let Some(claims) = self.session(head, admission, resp) {
            self.sessions.keys().end(&claims);
            resp.empty(Status::Ok);
        }
    }
}

/// A slot for one more long-lived stream of the caller; on refusal the 429 is already written.
pub(super) fn open_stream(
    snapshot: &RegistrySnapshot,
    admission: Admission,
    resp: &mut Response,
) -> Option<StreamSlot> {
    match snapshot.access.governance().open_stream(admission.caller) {
        Ok(slot) => Some(slot),
        Err(why) => {
            refuse(
                resp,
                Status::TooManyRequests,
                ErrorCode::LimitExceeded,
                &why,
            );
            None
        }
    }
}

/// Checks that a POST carries JSON; on failure the refusal (415) is already written.
pub(super) fn content_type_ok(head: &RequestHead<'_>, resp: &mut Response) -> bool {
    let ok = is_json(head.content_type);
    if !ok {
        refuse(
            resp,
            Status::UnsupportedMediaType,
            ErrorCode::InvalidRequest,
            "Unsupported Media Type: Content-Type must be application/json",
        );
    }
    ok
}

/// Reads a POSTed body as one JSON-RPC message; on failure the refusal is already written.
pub(super) fn parse_body<'b>(body: &'b [u8], resp: &mut Response) -> Option<Envelope<'b>> {
    if body.trim_ascii_start().first() == Some(&b'[') {
        refuse(
            resp,
            Status::BadRequest,
            ErrorCode::InvalidRequest,
            "JSON-RPC batches are not supported",
        );
        return None;
    }
    match parse_message(body) {
        Ok(env) => Some(env),
        Err(ParseError::NotJson(e)) => {
            refuse(
                resp,
                Status::BadRequest,
                ErrorCode::ParseError,
                &format!("Parse error: {e}"),
            );
            None
        }
        Err(ParseError::Invalid(why)) => {
            refuse(
                resp,
                Status::BadRequest,
                ErrorCode::InvalidRequest,
                &format!("Invalid Request: {why}"),
            );
            None
        }
    }
}

/// Answers one parsed message of an established session: a notification or a client's answer
/// gets 202, a request its reply in `resp` (or a [`CallStream`] in `stream` when its call
/// streams). Takes owned-or-borrowed parts rather than `&McpService` so a legacy-transport task
/// can call it after the POST that brought the message has been answered.
#[allow(clippy::too_many_arguments)]
pub(super) async fn dispatch(
    access: Access<'_>,
    recorder: &Rc<Recorder>,
    cores: &[CoreHandle],
    env: &Envelope<'_>,
    claims: &SessionClaims,
    arrival: Arrival,
    resp: &mut Response,
    stream: &mut Option<Box<CallStream>>,
) {
    match env.kind() {
        MessageKind::Notification => {
            if env.method.as_deref() == Some("notifications/cancelled") {
                cancel_call(cores, env, claims);
            }
            resp.empty(Status::Accepted)
        }
        MessageKind::Response => {
            answer_server_request(env, claims).await;
            resp.empty(Status::Accepted)
        }
        MessageKind::Request => {
            let id = env.id_or_null();
            let out = resp.json(Status::Ok);
            let method = env.method.as_deref().unwrap_or_default();
            if let Some(routed) = RoutedMethod::parse(method) {
                let request = Routed {
                    method: routed,
                    id,
                    arrival,
                    session: Some(claims.nonce),
                    client: claims.client,
                };
                let capabilities = claims.client_capabilities;
                let mut fwd =
                    Forwarding::new(request, out, recorder, capabilities, stream, None, access);
                return route(routed, access, env.params, &mut fwd).await;
            }
            let list =
                |kind, out: &mut Vec<u8>| methods::list_page(access, kind, env.params, id, out);
            match method {
                "ping" => methods::ping(out, id),
                "tools/list" => list(CatalogKind::Tools, out),
                "prompts/list" => list(CatalogKind::Prompts, out),
                "resources/list" => list(CatalogKind::Resources, out),
                "resources/templates/list" => list(CatalogKind::ResourceTemplates, out),
                "logging/setLevel" => log_level::set_level(access, env.params, id, out).await,
                other => write_error(
                    out,
                    id,
                    ErrorCode::MethodNotFound,
                    &format!("Method not found: {other}"),
                ),
            }
        }
    }
}

/// Routes a request to the one upstream it names (the request's observation ends on every
/// way out of here). `fwd` is borrowed all the way down, not moved: it is several hundred
/// bytes, and each async layer holding its own copy made every call's future larger.
pub(super) async fn route(
    method: RoutedMethod,
    access: Access<'_>,
    params: Option<crate::jsonrpc::RawJson<'_>>,
    fwd: &mut Forwarding<'_>,
) {
    match method {
        RoutedMethod::ToolsCall => forward_named(access, TOOLS_CALL, params, fwd).await,
        RoutedMethod::PromptsGet => forward_named(access, PROMPTS_GET, params, fwd).await,
        RoutedMethod::CompletionComplete => complete(access, params, fwd).await,
        RoutedMethod::ResourcesRead => forward_by_uri(access, "resources/read", params, fwd).await,
        RoutedMethod::ResourcesSubscribe => {
            forward_by_uri(access, "resources/subscribe", params, fwd).await
        }
        RoutedMethod::ResourcesUnsubscribe => {
            forward_by_uri(access, "resources/unsubscribe", params, fwd).await
        }
    }
}

/// A client's `notifications/cancelled`: stops the named call of this session on this core, or
/// asks the other cores to.
fn cancel_call(cores: &[CoreHandle], env: &Envelope<'_>, claims: &SessionClaims) {
    let Some(id) = env
        .params
        .and_then(|p| RawObject::parse(p.get()).ok())
        .and_then(|p| p.get("requestId"))
        .map(|id| id.get().to_owned())
    else {
        return;
    };
    let session = claims.nonce;
    if in_flight::cancel_here(session, &id) {
        return;
    }
    for core in cores {
        let id = id.clone();
        let _ = core.spawn(move || async move {
            in_flight::cancel_here(session, &id);
        });
    }
}

/// A client's answer to a request a server sent it during a call: back to that server under
/// the server's own id. Answers to anything else (or from another session) are dropped.
async fn answer_server_request(env: &Envelope<'_>, claims: &SessionClaims) {
    let Some(id) = env.id.and_then(|id| id.get().parse::<u64>().ok()) else {
        return;
    };
    let Some(responder) = server_requests().take(id, claims.nonce) else {
        tracing::debug!(
            id,
            "an answer to no request this session was asked; dropped"
        );
        return;
    };
    let mut member = Vec::with_capacity(64);
    match (env.result, env.error) {
        (Some(result), _) => {
            member.extend_from_slice(br#""result":"#);
            member.extend_from_slice(result.get().as_bytes());
        }
        (None, Some(error)) => {
            member.extend_from_slice(br#""error":"#);
            member.extend_from_slice(error.get().as_bytes());
        }
        (None, None) => return,
    }
    if let Err(e) = responder.respond(&member).await {
        tracing::warn!(error = %e, "could not pass a client's answer back to the server");
    }
}

impl Handler for McpService {
    type Stream = McpStream;

    /// A request still running when a drain's deadline passed (its upstream call has been
    /// cancelled): a JSON-RPC error answering its id, so the client sees its call fail rather
    /// than its connection break.
    fn abandoned(&self, _head: &RequestHead<'_>, body: &[u8], resp: &mut Response) {
        let message = "mcpgate is shutting down and the request did not finish within its \
                       shutdown grace period";
        match parse_message(body) {
            Ok(env) if env.kind() == MessageKind::Request => write_error(
                resp.json(Status::Ok),
                env.id_or_null(),
                ErrorCode::InternalError,
                message,
            ),
            // A batch, or no request at all: nothing to answer by id.
            _ => refuse(
                resp,
                Status::ServiceUnavailable,
                ErrorCode::InternalError,
                message,
            ),
        }
    }

    fn logs_requests(&self) -> bool {
        self.recorder.logs_access()
    }

    fn log_request(&self, request: &RequestLog<'_>) {
        let duration_us = u64::try_from(request.duration.as_micros()).unwrap_or(u64::MAX);
        self.recorder.access(AccessRecord {
            at_micros: crate::audit::clock::now_micros().saturating_sub(duration_us),
            remote: request.peer,
            method: request.method,
            path: AccessPath::new(request.path),
            status: request.status,
            bytes_in: request.bytes_in as u64,
            bytes_out: request.bytes_out as u64,
            duration_us,
            key: request.who.cloned(),
        });
    }

    async fn handle(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        resp: &mut Response,
    ) -> Outcome<McpStream> {
        if head.path == "/healthz" {
            resp.text(Status::Ok, "ok\n");
            return Outcome::Done;
        }
        let Ok(group) = group_in_path(head.path) else {
            resp.text(Status::NotFound, "Not Found: mcpgate serves MCP at /mcp\n");
            return Outcome::Done;
        };
        if let Some(origin) = head.origin {
            if !origin_allowed(
                origin,
                &self.settings.allowed_origins,
                self.settings.loopback_listener,
            ) {
                refuse(
                    resp,
                    Status::Forbidden,
                    ErrorCode::InvalidRequest,
                    "Forbidden: Origin not allowed",
                );
                return Outcome::Done;
            }
        }
        if head.method == Method::Options {
            cors::preflight(resp, head.origin);
            return Outcome::Done;
        }
        if let Some(origin) = head.origin {
            cors::allow(resp, origin);
        }
        let snapshot = self.registry.current();
        let Some(admission) = admit(&snapshot, head, group, resp) else {
            return Outcome::Done;
        };
        if self.recorder.logs_access() {
            let key = snapshot.access.governance().key(admission.caller);
            resp.who = Some(key.map_or_else(|| self.anonymous.clone(), |k| k.shared_name.clone()));
        }
        if matches!(head.path, "/sse" | "/messages") {
            return self.legacy(head, body, &snapshot, admission, resp).await;
        }
        match head.method {
            Method::Post => {
                let access = admission.access(&snapshot);
                self.post(head, body, access, admission, resp).await
            }
            Method::Get => self.get(head, &snapshot, admission, resp),
            Method::Delete => {
                self.delete(head, admission, resp);
                Outcome::Done
            }
            _ => {
                resp.header("Allow", "GET, POST, DELETE, OPTIONS");
                refuse(
                    resp,
                    Status::MethodNotAllowed,
                    ErrorCode::InvalidRequest,
                    "Method Not Allowed on /mcp",
                );
                Outcome::Done
            }
        }
    }
}
