//! A stdio child's stdout, message by message: replies to their calls, notifications to the
//! call they concern (or to the registry keeper), requests to the client of the one call in
//! flight, and the way back to the child for that client's answer.
//!
//! Owns: what each line of the child means. Must never: tie a message that names no call to a
//! call unless exactly one is in flight, or block (it runs on the core that owns the pipes).

use std::sync::Arc;

use crate::jsonrpc::RawJson;

use super::super::call::{Responder, ResponderRoute, CLIENT_BEHIND};
use super::super::pending::{unrelayable, Relay};
use super::super::process::{
    encode_answer_to_server, encode_error_to_server, leading_id, preview, Line,
};
use super::super::server_notices;
use super::super::{Payload, UpstreamError};
use super::Conn;
use crate::jsonrpc::Envelope;

/// The way back to the child that sent a request, for the client's answer.
pub struct StdioAnswerPath {
    server: String,
    conn: Arc<Conn>,
}

impl StdioAnswerPath {
    /// Queues one message (without its newline) to the child's stdin.
    pub fn send(&self, mut frame: Vec<u8>) -> Result<(), UpstreamError> {
        // Raw line breaks can only be whitespace in valid JSON; they would break the framing.
        for b in &mut frame {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        frame.push(b'\n');
        self.conn.send(&self.server, frame)
    }
}

/// One line of the child's stdout: a message to dispatch, or an over-long one whose call (when
/// its id can be read from the start) fails at once instead of timing out.
pub(super) fn on_stdout_line(name: &str, conn: &Arc<Conn>, max: usize, line: Line<'_>) {
    match line {
        Line::Full(line) => dispatch(name, conn, line),
        Line::TooLong { head, len } => {
            tracing::error!(server = %name, "discarded a stdout line of {len} bytes (max_line_bytes {max}): {}", preview(head));
            if let Some(id) = leading_id(head) {
                let reason = format!("reply of {len} bytes exceeds max_line_bytes ({max})");
                conn.pending.fail(name, id, reason);
            }
        }
    }
}

fn dispatch(name: &str, conn: &Arc<Conn>, line: &[u8]) {
    if line.trim_ascii().is_empty() {
        return;
    }
    let env = match Envelope::decode(line) {
        Ok(env) => env,
        Err(e) => {
            tracing::warn!(server = %name, "skipping a stdout line that is not JSON-RPC ({e}): {}", preview(line));
            return;
        }
    };
    let payload = Payload::locate(line, &env);
    match (env.method.as_deref(), env.id) {
        (None, Some(id)) => conn.pending.deliver(name, id.get(), line, payload),
        (Some(method), Some(id)) => on_request(name, conn, method, id, line),
        (Some(method), None) => on_notification(name, conn, method, env.params, line),
        (None, None) => {
            tracing::warn!(server = %name, "skipping a message with neither id nor method: {}", preview(line))
        }
    }
}

/// Notifications from the child: notices to the registry keeper, the rest to the call they
/// concern (see [`super::super::pending::PendingCalls::pass_notification`]).
fn on_notification(
    name: &str,
    conn: &Conn,
    method: &str,
    params: Option<RawJson<'_>>,
    line: &[u8],
) {
    if !server_notices::report(name, method, params)
        && !conn.pending.pass_notification(name, method, params, line)
    {
        tracing::debug!(server = %name, method, "notification from the server not tied to a call: {}", preview(line));
    }
}

/// Requests from the child: `ping` is answered here; anything else goes to the client whose
/// call is the only one in flight, or is refused.
fn on_request(name: &str, conn: &Arc<Conn>, method: &str, id: RawJson<'_>, line: &[u8]) {
    let responder = || Responder {
        upstream_id: id.get().into(),
        route: ResponderRoute::Stdio(StdioAnswerPath {
            server: name.to_owned(),
            conn: conn.clone(),
        }),
    };
    let relayed = match method {
        "ping" => Relay::NoSingleCall,
        _ => conn.pending.pass_request(name, line, responder),
    };
    let answer = match relayed {
        Relay::Relayed => return,
        _ if method == "ping" => encode_answer_to_server(method, id),
        Relay::ClientBehind => encode_error_to_server(id, -32603, CLIENT_BEHIND),
        Relay::NoSingleCall => {
            tracing::debug!(server = %name, method, "a server request with no single call in flight to relay it to");
            encode_error_to_server(id, -32603, &unrelayable(method))
        }
    };
    if let Err(e) = conn.send(name, answer) {
        tracing::warn!(server = %name, method, "could not answer the server's request: {e}");
    }
}
