//! One MCP session over one keep-alive HTTP/1.1 connection: the handshake (`initialize`,
//! `notifications/initialized`), then `tools/call` requests whose replies come either as one
//! `application/json` body or as a `text/event-stream` read until the response with our id.
//!
//! Built on the gateway's own outbound HTTP codec and SSE parser. A call is timed from just
//! before its request is written to the moment the response message is complete; the rest of
//! an SSE stream is drained afterwards, outside the measurement. Nothing the server sends can
//! panic this code: every failure becomes an [`ErrorKind`].

use std::time::{Duration, Instant};

use mcpgate::http::client::{
    write_post, BodyReader, ClientConn, ClientError, ReplyHead, ReplyKind,
};
use mcpgate::http::sse::SseParser;
use mcpgate::upstream::handshake::{
    initialize_request_as, parse_initialize_reply, UPSTREAM_PROTOCOL_VERSION,
};
use monoio::time::timeout_at;

use crate::mix::Mix;
use crate::plan::Target;
use crate::reply::{response_to, Verdict};
use crate::stats::ErrorKind;

/// Largest reply (JSON body or SSE event) accepted.
const MAX_REPLY: usize = 64 << 20;
/// How much of an error reply's body is read (and discarded) to keep the connection usable.
const MAX_ERROR_BODY: usize = 64 << 10;

/// How long the rest of an SSE stream may take after its response (servers close it right
/// away); one that stays open longer costs its TCP connection, not the session.
const MAX_DRAIN: Duration = Duration::from_secs(1);

/// The handshake's JSON-RPC id (calls count up from 2), as a number and as it appears in JSON.
const INITIALIZE_ID: u64 = 1;
const INITIALIZE_ID_JSON: &str = "1";

const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// A live session: the connection (absent between a server-side close and the next call),
/// the session id and the negotiated protocol revision.
pub struct McpConn {
    http: Option<ClientConn>,
    session_id: Option<String>,
    version: String,
    next_id: u64,
    /// The request body being sent.
    body: Vec<u8>,
    /// Reply bytes (a JSON body or SSE chunks).
    reply: Vec<u8>,
    /// TCP connections opened again for this session (the server closed an idle one).
    pub reopened: u64,
}

/// What one call came to.
pub struct CallOutcome {
    pub result: Result<(), ErrorKind>,
    /// When the response was complete (or the failure was seen).
    pub replied_at: Instant,
    /// The session cannot go on (broken transport, or the server forgot it): open a new one.
    pub session_lost: bool,
}

/// A failed exchange: what went wrong and whether the session is still usable.
type Failure = (ErrorKind, bool);

fn transport_kind(e: &ClientError) -> ErrorKind {
    match e {
        ClientError::Io(_) | ClientError::Closed => ErrorKind::Transport,
        ClientError::Malformed(_) | ClientError::TooLarge(_) => ErrorKind::Protocol,
    }
}

fn mono(t: Instant) -> monoio::time::Instant {
    monoio::time::Instant::from_std(t)
}

impl McpConn {
    /// Connects and performs the MCP handshake, all before `deadline`.
    pub async fn open(target: &Target, deadline: Instant) -> Result<McpConn, ErrorKind> {
        let http = match timeout_at(
            mono(deadline),
            ClientConn::connect(target.url.addr, target.url.tls.as_ref()),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(_)) | Err(_) => return Err(ErrorKind::Connect),
        };
        let mut conn = McpConn {
            http: Some(http),
            session_id: None,
            version: UPSTREAM_PROTOCOL_VERSION.to_owned(),
            next_id: 2,
            body: Vec::with_capacity(1024),
            reply: Vec::with_capacity(16 * 1024),
            reopened: 0,
        };
        match timeout_at(mono(deadline), conn.handshake(target, deadline)).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(_)) | Err(_) => Err(ErrorKind::Handshake),
        }
    }

    async fn handshake(&mut self, target: &Target, deadline: Instant) -> Result<(), Failure> {
        self.body.clear();
        self.body
            .extend_from_slice(&initialize_request_as(INITIALIZE_ID, "mcpgate-load"));
        let head = self.send(target, false).await?;
        let (info, _, rest) = self
            .until_response(&head, |m| {
                response_to(m, INITIALIZE_ID_JSON).map(|_| parse_initialize_reply(m))
            })
            .await?;
        self.finish(&head, rest, deadline).await;
        let info = info.map_err(|_| (ErrorKind::Handshake, true))?;
        self.version = info.protocol_version;
        self.session_id = head.session_id;

        self.body.clear();
        self.body.extend_from_slice(INITIALIZED);
        let head = self.send(target, true).await?;
        self.discard_body(&head).await;
        if !(200..300).contains(&head.status) {
            return Err((ErrorKind::Http(head.status), true));
        }
        Ok(())
    }

    /// Sends the `tools/call` at wheel position `pos` and waits for its response until
    /// `deadline`.
    pub async fn call(
        &mut self,
        target: &Target,
        mix: &Mix,
        pos: usize,
        deadline: Instant,
    ) -> CallOutcome {
        let id = self.next_id;
        self.next_id += 1;
        mix.write_request(pos, id, &mut self.body);
        let mut id_buf = itoa::Buffer::new();
        let want = id_buf.format(id);
        let outcome = timeout_at(mono(deadline), self.request(target, want)).await;
        let (result, replied_at, session_lost) = match outcome {
            Err(_) => {
                self.http = None;
                (Err(ErrorKind::Timeout), Instant::now(), true)
            }
            Ok(Err((kind, lost))) => {
                if lost {
                    self.http = None;
                }
                (Err(kind), Instant::now(), lost)
            }
            Ok(Ok((verdict, at, head, rest))) => {
                self.finish(&head, rest, deadline).await;
                let result = match verdict {
                    Verdict::Ok => Ok(()),
                    Verdict::JsonRpcError(code) => Err(ErrorKind::JsonRpc(code)),
                    Verdict::ToolError => Err(ErrorKind::Tool),
                    Verdict::Malformed => Err(ErrorKind::Protocol),
                };
                (result, at, false)
            }
        };
        CallOutcome {
            result,
            replied_at,
            session_lost,
        }
    }

    async fn request(
        &mut self,
        target: &Target,
        want: &str,
    ) -> Result<(Verdict, Instant, ReplyHead, Option<BodyReader>), Failure> {
        let head = self.send(target, true).await?;
        if !(200..300).contains(&head.status) {
            let lost = head.status == 404 && self.session_id.is_some();
            self.discard_body(&head).await;
            return Err((ErrorKind::Http(head.status), lost));
        }
        let (verdict, at, rest) = self.until_response(&head, |m| response_to(m, want)).await?;
        Ok((verdict, at, head, rest))
    }

    /// Writes `self.body` as a POST (with the session's headers unless this is `initialize`)
    /// and reads the reply head. Reopens the TCP connection if the server closed it.
    async fn send(&mut self, target: &Target, with_session: bool) -> Result<ReplyHead, Failure> {
        if self.http.is_none() {
            let c = ClientConn::connect(target.url.addr, target.url.tls.as_ref())
                .await
                .map_err(|_| (ErrorKind::Connect, true))?;
            self.http = Some(c);
            self.reopened += 1;
        }
        let McpConn {
            http,
            session_id,
            version,
            body,
            ..
        } = self;
        let Some(http) = http.as_mut() else {
            return Err((ErrorKind::Transport, true));
        };
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2 + target.headers.len());
        if with_session {
            if let Some(id) = session_id {
                headers.push(("Mcp-Session-Id", id));
            }
            headers.push(("MCP-Protocol-Version", version));
        }
        headers.extend(target.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        write_post(
            http.request_buf(),
            &target.url.path,
            &target.url.host,
            &headers,
            body,
        );
        let sent = http.send().await;
        let head = match sent {
            Ok(()) => http.read_head().await,
            Err(e) => Err(ClientError::Io(e)),
        };
        head.map_err(|e| (transport_kind(&e), true))
    }

    /// Reads the reply until the message `accept` takes: the whole body when it is JSON, SSE
    /// events until the one it takes. Returns what `accept` made of it, when it arrived, and
    /// the reader of a stream that is not over yet.
    async fn until_response<T>(
        &mut self,
        head: &ReplyHead,
        mut accept: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<(T, Instant, Option<BodyReader>), Failure> {
        let Some(http) = self.http.as_mut() else {
            return Err((ErrorKind::Transport, true));
        };
        match head.kind {
            ReplyKind::Json => {
                self.reply.clear();
                http.read_body(head, MAX_REPLY, &mut self.reply)
                    .await
                    .map_err(|e| (transport_kind(&e), true))?;
                let at = Instant::now();
                match accept(&self.reply) {
                    Some(t) => Ok((t, at, None)),
                    None => Err((ErrorKind::Protocol, true)),
                }
            }
            ReplyKind::EventStream => {
                let mut reader = BodyReader::new(head.framing, usize::MAX);
                let mut parser = SseParser::new(MAX_REPLY);
                loop {
                    self.reply.clear();
                    let more = reader
                        .read(http, &mut self.reply, usize::MAX)
                        .await
                        .map_err(|e| (transport_kind(&e), true))?;
                    parser.push(&self.reply);
                    while let Some(event) = parser
                        .next_event()
                        .map_err(|_| (ErrorKind::Protocol, true))?
                    {
                        if event.data.is_empty() {
                            continue;
                        }
                        if let Some(t) = accept(&event.data) {
                            let at = Instant::now();
                            let rest = (!reader.is_done()).then_some(reader);
                            return Ok((t, at, rest));
                        }
                    }
                    if !more {
                        return Err((ErrorKind::Protocol, true));
                    }
                }
            }
            ReplyKind::Other => Err((ErrorKind::Protocol, true)),
        }
    }

    /// After a response: reads what is left of an SSE stream (within `MAX_DRAIN`), then keeps
    /// the connection if the server keeps it alive, or drops it to reopen on the next call.
    async fn finish(&mut self, head: &ReplyHead, rest: Option<BodyReader>, deadline: Instant) {
        let mut complete = true;
        if let (Some(mut reader), Some(http)) = (rest, self.http.as_mut()) {
            let reply = &mut self.reply;
            let until = deadline.min(Instant::now() + MAX_DRAIN);
            let drained = timeout_at(mono(until), async {
                loop {
                    reply.clear();
                    match reader.read(http, reply, usize::MAX).await {
                        Ok(true) => {}
                        Ok(false) => return true,
                        Err(_) => return false,
                    }
                }
            })
            .await;
            complete = matches!(drained, Ok(true));
        }
        if !complete || !head.keep_alive {
            self.http = None;
        }
    }

    /// Ends the session politely (`DELETE` with its id, before `deadline`) so a server that
    /// keeps per-session state does not accumulate the sessions of every run. Best effort:
    /// the answer (200, 405 from servers without sessions) is not checked.
    pub async fn end_session(mut self, target: &Target, deadline: Instant) {
        let (Some(id), Some(http)) = (self.session_id.take(), self.http.as_mut()) else {
            return;
        };
        let out = http.request_buf();
        out.extend_from_slice(b"DELETE ");
        out.extend_from_slice(target.url.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(target.url.host.as_bytes());
        for (name, value) in [
            ("Mcp-Session-Id", id.as_str()),
            ("MCP-Protocol-Version", &self.version),
        ]
        .into_iter()
        .chain(target.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let _ = timeout_at(mono(deadline), async {
            if http.send().await.is_ok() {
                if let Ok(head) = http.read_head().await {
                    let mut sink = Vec::new();
                    let _ = http.read_body(&head, MAX_ERROR_BODY, &mut sink).await;
                }
            }
        })
        .await;
    }

    /// Reads and drops a reply body that is not a response message (202, error statuses);
    /// a body that cannot be read (or is too long) costs the connection.
    async fn discard_body(&mut self, head: &ReplyHead) {
        let Some(http) = self.http.as_mut() else {
            return;
        };
        self.reply.clear();
        let read = http.read_body(head, MAX_ERROR_BODY, &mut self.reply).await;
        if read.is_err() || !head.keep_alive {
            self.http = None;
        }
    }
}
