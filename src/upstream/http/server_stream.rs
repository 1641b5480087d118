//! A streamable-HTTP server's own SSE stream (a `GET` with the session id): where it announces
//! what happens outside any call (list changes, resource updates) and may ask the gateway
//! something (`ping`).
//!
//! Owns: one listener per session, on the core the upstream was given, reconnecting with
//! backoff while its session is current. Must never: outlive its session (a new session gets
//! its own listener), or relay a server request to a client (no call ties it to one).

use std::sync::Arc;
use std::time::Instant;

use super::{Answer, HttpUpstream, Session};
use crate::http::client::{write_sse_get, ReplyKind};
use crate::http::sse::SseItem;
use crate::jsonrpc::Envelope;
use crate::upstream::backoff::Backoff;
use crate::upstream::call::{Responder, ResponderRoute};
use crate::upstream::pool;
use crate::upstream::server_notices;
use crate::upstream::sse_events::SseEvents;

/// Why a stream ended.
enum End {
    /// The server offers no such stream (405): nothing to follow.
    NotOffered,
    /// The session is no longer the upstream's current one (or the server forgot it).
    SessionGone,
    /// It broke or was refused: try again after a pause.
    Failed(String),
}

/// Follows `session`'s stream until the session is replaced or the server offers none.
pub(super) async fn follow(up: Arc<HttpUpstream>, session: Arc<Session>) {
    let mut backoff = Backoff::default();
    loop {
        let opened = Instant::now();
        match read_stream(&up, &session).await {
            End::NotOffered => {
                tracing::debug!(server = %up.name, "the server offers no GET stream; its notices outside calls are not followed");
                return;
            }
            End::SessionGone => return,
            End::Failed(reason) => {
                tracing::debug!(server = %up.name, "the server's GET stream ended: {reason}")
            }
        }
        if !is_current(&up, &session) {
            return;
        }
        monoio::time::sleep(backoff.pause_after(opened.elapsed())).await;
        if !is_current(&up, &session) {
            return;
        }
    }
}

fn is_current(up: &HttpUpstream, session: &Arc<Session>) -> bool {
    up.current_session()
        .is_some_and(|current| Arc::ptr_eq(&current, session))
}

async fn read_stream(up: &Arc<HttpUpstream>, session: &Arc<Session>) -> End {
    let mut conn = match pool::connect(&up.url).await {
        Ok(c) => c,
        Err(e) => return End::Failed(e.to_string()),
    };
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(up.headers.len() + 2);
    if let Some(id) = &session.id {
        headers.push(("Mcp-Session-Id", id));
    }
    headers.push(("MCP-Protocol-Version", &session.info.protocol_version));
    headers.extend(up.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    write_sse_get(conn.request_buf(), &up.url.path, &up.url.host, &headers);
    if let Err(e) = conn.send().await {
        return End::Failed(format!("sending the GET: {e}"));
    }
    let head = match conn.read_head().await {
        Ok(h) => h,
        Err(e) => return End::Failed(format!("reading the GET's reply: {e}")),
    };
    match head.status {
        200 if head.kind == ReplyKind::EventStream => {}
        405 => return End::NotOffered,
        404 => return End::SessionGone,
        status => {
            let refusal = pool::refusal(&mut conn, &head).await;
            if status == 400 && session.id.is_some() && super::refuses_session(&refusal) {
                return End::SessionGone;
            }
            return End::Failed(refusal);
        }
    }
    tracing::info!(server = %up.name, "following the server's GET stream");
    let mut events = SseEvents::new(conn, &head, up.max_reply);
    loop {
        match events.next().await {
            Ok(Some(SseItem::Event(event))) => {
                if !is_current(up, session) {
                    return End::SessionGone;
                }
                on_message(up, &event.data).await;
            }
            Ok(Some(SseItem::TooLarge(skipped))) => {
                tracing::warn!(server = %up.name, len = skipped.len, "skipped an oversized event on the server's GET stream");
            }
            Ok(None) => return End::Failed("the server closed it".into()),
            Err(e) => return End::Failed(e),
        }
    }
}

/// One message on the stream: notices go to the registry keeper; requests are answered here
/// (`ping`) or refused (nothing ties them to a client).
async fn on_message(up: &Arc<HttpUpstream>, data: &[u8]) {
    if data.trim_ascii().is_empty() {
        return;
    }
    let Ok(env) = Envelope::decode(data) else {
        tracing::debug!(server = %up.name, "a non-JSON event on the server's GET stream; skipped");
        return;
    };
    match (env.method.as_deref(), env.id) {
        (Some(method), None) => {
            if !server_notices::report(&up.name, method, env.params) {
                tracing::debug!(server = %up.name, method, "a notification outside calls; not relayed");
            }
        }
        (Some(method), Some(id)) => {
            let responder = Responder {
                upstream_id: id.get().into(),
                route: ResponderRoute::Http(up.clone()),
            };
            let answer = match method {
                "ping" => Answer::Pong,
                _ => Answer::Refusal(
                    -32601,
                    format!("mcpgate relays {method} only during a call of the client it is for"),
                ),
            };
            up.answer_request(responder, method, answer).await;
        }
        _ => tracing::debug!(server = %up.name, "a response on the server's GET stream; skipped"),
    }
}
