//! One client connection: read requests, hand each to the gateway's handler, write replies.
//!
//! Pipelined requests are answered in order and their replies leave in one write. The
//! buffers a request needs (reply, write, decoded body) come from a per-core pool
//! (`conn_buffers`) and go back as soon as the connection has nothing pending, so steady-state
//! traffic allocates nothing here and an idle connection holds only a small read buffer
//! (thousands of idle clients cost little memory).
//!
//! Bounds on slow peers (the waits are in `conn_io`): a request head must arrive within
//! `header_read_timeout` (from the connection's start, or from the first byte of a later
//! request), and every write to the client must make progress within `write_timeout`: a
//! client that stops reading a reply or an SSE stream has its connection closed, so it cannot
//! hold the reply, the stream's source or the upstream call behind it for longer (what a
//! stream's source holds meanwhile is bounded by the source: `upstream::call`,
//! `mcp::announcements`). Shutdown: on a drain (`runtime::drain`) the listener stops
//! accepting, a connection waiting for its next request closes, one serving a request answers
//! it with `Connection: close` and closes, and at the drain's deadline whatever is still
//! running is abandoned (see [`Handler::abandoned`]).
//!
//! Access log: a handler that keeps one ([`Handler::logs_requests`]) is told of every request
//! once its reply is written ([`Handler::log_request`]); only then is the clock read per
//! request.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::time::Instant;

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::conn_buffers::{
    ensure_pooled, give_buffer, release, take_buffer, ConnBuffers, READ_CHUNK,
};
use super::conn_io::{flush, read_bounded, ReadEnd, ReadWait};
use super::hang_up::HangUpWatch;
use super::limits::HttpLimits;
use super::request::{parse_head, BodyFraming, HeadParse, Method, RequestHead};
pub use super::request_log::RequestLog;
use super::request_log::{Logged, CLIENT_GONE};
use super::response::{write_chunk, write_response, write_sse_head, Response, Status, LAST_CHUNK};
use crate::runtime::drain::{self, Event, Phase};
use crate::tls::TlsAcceptor;

/// What the handler did with a request.
pub enum Outcome<S> {
    /// `resp` holds the whole reply.
    Done,
    /// Reply with a Server-Sent Events stream: `resp`'s status and headers, then the events.
    Stream(S),
}

/// A source of SSE events for a streamed reply.
// Thread-per-core: these futures never leave their core, so no `Send` bound is wanted.
#[allow(async_fn_in_trait)]
pub trait SseStream {
    /// Appends the next event(s), already framed (`data: …\n\n`), to `out`; false ends the stream.
    async fn next_event(&mut self, out: &mut Vec<u8>) -> bool;

    /// Whether the stream lasts as long as a session rather than one request's reply. A drain
    /// does not wait for such a stream: the stream ends itself when the drain begins (its
    /// `next_event` returns false), and it is counted apart from requests.
    fn long_lived(&self) -> bool {
        false
    }

    /// The drain's deadline passed with the stream still open: append a last event, if any,
    /// that tells the client its request was abandoned. The stream ends after it.
    fn abandon(&mut self, _out: &mut Vec<u8>) {}
}

/// The application behind the HTTP server.
#[allow(async_fn_in_trait)]
pub trait Handler {
    type Stream: SseStream;
    /// Answers one request; the body is complete and within the limits.
    async fn handle(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        resp: &mut Response,
    ) -> Outcome<Self::Stream>;

    /// Fills `resp` for a request whose handling was abandoned because the server is shutting
    /// down and the drain's deadline passed. The connection closes after it.
    fn abandoned(&self, _head: &RequestHead<'_>, _body: &[u8], resp: &mut Response) {
        resp.text(
            Status::ServiceUnavailable,
            "the server is shutting down and this request did not finish in time\n",
        );
    }

    /// Whether [`Handler::log_request`] wants to hear of every request.
    fn logs_requests(&self) -> bool {
        false
    }

    /// One request is done: its reply written, abandoned by a drain, or left by its client.
    fn log_request(&self, _request: &RequestLog<'_>) {}
}

/// Flush pipelined replies once this much is waiting, even if more requests are buffered.
const FLUSH_AT: usize = 64 * 1024;
/// A request still unanswered after this long starts watching for its client hanging up.
/// Quick requests (nearly all) never arm the watch; they pay one timer.
const HANG_UP_WATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// Progress through a chunked body that has not fully arrived.
struct ChunkedProgress {
    decoder: ChunkedDecoder,
    /// Input bytes of the body already decoded, counted from the end of the head.
    consumed: usize,
}

/// What scanning the read buffer decided.
enum Scan {
    /// Need more bytes: of a request head (or the start of one), or of a body.
    Read { in_head: bool },
    /// Write what is queued and close.
    Close,
}

/// How an SSE reply ended.
enum StreamEnd {
    /// The stream ended by itself (or, for a long-lived one, because a drain began).
    Finished,
    /// The drain's deadline cut it; the abandon event, if any, is queued.
    Abandoned,
    /// The peer went away.
    Gone,
}

/// Serves one connection until the peer closes it, asks to close, or sends something that
/// forces a close (a malformed or oversized request, a head that takes too long), or until a
/// drain closes it.
pub async fn serve_connection<S, H>(
    mut stream: S,
    handler: &H,
    limits: HttpLimits,
    peer: Option<SocketAddr>,
) where
    S: AsyncReadRent + AsyncWriteRent + HangUpWatch,
    H: Handler,
{
    let logging = handler.logs_requests();
    let mut bufs = ConnBuffers::new();
    let mut resp = Response::new();
    let mut chunked: Option<ChunkedProgress> = None;
    let mut continue_sent = false;
    // When the awaited request head began: the connection's start for the first request, the
    // first byte for later ones (`None` while a keep-alive connection is idle). The clock is
    // read only then, not per request.
    let mut head_since = Some(Instant::now());
    loop {
        let mut consumed = 0;
        let scan = loop {
            let input = &bufs.read[consumed..];
            if input.is_empty() {
                break Scan::Read { in_head: true };
            }
            let head = match parse_head(input, &limits) {
                HeadParse::Partial => break Scan::Read { in_head: true },
                HeadParse::Reject(status, why) => {
                    resp.reset();
                    resp.text(status, why);
                    write_response(&mut bufs.write, &resp, false, false);
                    break Scan::Close;
                }
                HeadParse::Complete(head) => head,
            };
            head_since = None;
            let after_head = &input[head.head_len..];
            let (body, used): (&[u8], usize) = match head.framing {
                BodyFraming::Empty => (&[], head.head_len),
                BodyFraming::Length(n) if after_head.len() >= n => {
                    (&after_head[..n], head.head_len + n)
                }
                BodyFraming::Length(_) => {
                    if head.expect_continue && !continue_sent {
                        bufs.write
                            .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        continue_sent = true;
                    }
                    break Scan::Read { in_head: false };
                }
                BodyFraming::Chunked => {
                    let progress = chunked.get_or_insert_with(|| {
                        ensure_pooled(&mut bufs.body);
                        bufs.body.clear();
                        ChunkedProgress {
                            decoder: ChunkedDecoder::new(limits.max_body_bytes),
                            consumed: 0,
                        }
                    });
                    match progress
                        .decoder
                        .decode(&after_head[progress.consumed..], &mut bufs.body)
                    {
                        Ok(n) => progress.consumed += n,
                        Err(e) => {
                            let (status, why) = match e {
                                ChunkedError::TooLarge => (
                                    Status::PayloadTooLarge,
                                    "request body is larger than the limit",
                                ),
                                ChunkedError::Malformed => {
                                    (Status::BadRequest, "malformed chunked body")
                                }
                            };
                            resp.reset();
                            resp.text(status, why);
                            write_response(&mut bufs.write, &resp, false, false);
                            break Scan::Close;
                        }
                    }
                    if !progress.decoder.is_done() {
                        if head.expect_continue && !continue_sent {
                            bufs.write
                                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                            continue_sent = true;
                        }
                        break Scan::Read { in_head: false };
                    }
                    (&bufs.body[..], head.head_len + progress.consumed)
                }
            };
            resp.reset();
            ensure_pooled(&mut resp.body);
            ensure_pooled(&mut bufs.write);
            crate::runtime::busy_poll::note_activity();
            let logged = logging.then(|| Logged {
                peer,
                started: std::time::Instant::now(),
                bytes_in: used,
            });
            let mut work = drain::request();
            // Boxed: the handler's state machine (upstream calls and all) is several KiB and
            // would otherwise sit inline in every connection's task, idle ones included.
            let handled = crate::runtime::boxed(|| handler.handle(&head, body, &mut resp));
            let hung_up = async {
                crate::runtime::deadline::after(HANG_UP_WATCH_AFTER).await;
                stream.hung_up().await
            };
            let outcome = monoio::select! {
                outcome = handled => Some(outcome),
                // The client is gone: dropping the handler stops its work (an upstream call is
                // cancelled upstream); there is nobody to answer.
                () = hung_up => {
                    if let Some(logged) = logged {
                        logged.report(handler, &head, CLIENT_GONE, resp.who.as_ref(), 0);
                    }
                    return;
                }
                // Shutting down and out of time: dropping the handler cancels its upstream
                // work the same way; the client gets an error instead of a reply.
                () = drain::reached(Phase::Deadline) => None,
            };
            consumed += used;
            chunked = None;
            continue_sent = false;
            let head_only = head.method == Method::Head;
            let written_before = bufs.write.len();
            let Some(outcome) = outcome else {
                let who = resp.who.take();
                resp.reset();
                handler.abandoned(&head, body, &mut resp);
                write_response(&mut bufs.write, &resp, false, head_only);
                drain::note(Event::Abandoned);
                if let Some(logged) = logged {
                    let out = bufs.write.len() - written_before;
                    logged.report(handler, &head, resp.status.code(), who.as_ref(), out);
                }
                break Scan::Close;
            };
            match outcome {
                Outcome::Done => {
                    // Once a drain has begun, each reply is the connection's last.
                    let keep_alive = head.keep_alive && drain::phase() == Phase::Serving;
                    write_response(&mut bufs.write, &resp, keep_alive, head_only);
                    drain::note(Event::Answered);
                    if let Some(logged) = logged {
                        let out = bufs.write.len() - written_before;
                        let status = resp.status.code();
                        logged.report(handler, &head, status, resp.who.as_ref(), out);
                    }
                    if !keep_alive {
                        break Scan::Close;
                    }
                }
                Outcome::Stream(mut events) => {
                    let long_lived = events.long_lived();
                    if long_lived {
                        work.long_lived();
                    }
                    let keep_alive = head.keep_alive && drain::phase() == Phase::Serving;
                    write_sse_head(&mut bufs.write, &resp, keep_alive);
                    let head_bytes = bufs.write.len() - written_before;
                    let mut sent = 0;
                    let streamed = Box::pin(stream_events(
                        &mut stream,
                        &mut bufs.write,
                        &mut events,
                        &mut sent,
                        limits.write_timeout,
                    ))
                    .await;
                    if let Some(logged) = logged {
                        let (status, who) = (resp.status.code(), resp.who.as_ref());
                        let last = if matches!(streamed, StreamEnd::Gone) {
                            0
                        } else {
                            LAST_CHUNK.len()
                        };
                        logged.report(handler, &head, status, who, head_bytes + sent + last);
                    }
                    match streamed {
                        StreamEnd::Gone => return,
                        StreamEnd::Abandoned => {
                            bufs.write.extend_from_slice(LAST_CHUNK);
                            drain::note(Event::Abandoned);
                            break Scan::Close;
                        }
                        StreamEnd::Finished => {
                            bufs.write.extend_from_slice(LAST_CHUNK);
                            drain::note(if long_lived {
                                Event::StreamEnded
                            } else {
                                Event::Answered
                            });
                        }
                    }
                    // A drain may have begun while the stream ran.
                    if !keep_alive || drain::phase() != Phase::Serving {
                        break Scan::Close;
                    }
                }
            }
            drop(work);
            if bufs.write.len() >= FLUSH_AT
                && !flush(&mut stream, &mut bufs.write, limits.write_timeout).await
            {
                return;
            }
        };
        if consumed > 0 {
            bufs.read.drain(..consumed);
        }
        if !flush(&mut stream, &mut bufs.write, limits.write_timeout).await {
            return;
        }
        let Scan::Read { in_head } = scan else {
            let _ = stream.shutdown().await;
            release(&mut resp.body);
            return;
        };
        if bufs.read.is_empty() && chunked.is_none() {
            bufs.idle(&mut resp);
        }
        if bufs.read.len() >= read_cap(&limits) {
            // Only chunk framing can get here (head and decoded body are bounded on their own).
            resp.reset();
            resp.text(Status::PayloadTooLarge, "request is larger than the limit");
            write_response(&mut bufs.write, &resp, false, false);
            let _ = flush(&mut stream, &mut bufs.write, limits.write_timeout).await;
            return;
        }
        let partial = !bufs.read.is_empty();
        let wait = if !in_head {
            // A body on its way: only the drain's deadline cuts it.
            ReadWait {
                until: None,
                end_at: Phase::Deadline,
            }
        } else if !partial && head_since.is_none() {
            // Idle between requests: unbounded, but a drain closes it at once.
            ReadWait {
                until: None,
                end_at: Phase::Draining,
            }
        } else {
            let since = *head_since.get_or_insert_with(Instant::now);
            ReadWait {
                until: Some(since + limits.header_read_timeout),
                // A request that has begun to arrive may still be served during a drain.
                end_at: if partial {
                    Phase::Deadline
                } else {
                    Phase::Draining
                },
            }
        };
        match read_bounded(&mut stream, &mut bufs.read, wait).await {
            ReadEnd::Data => {}
            ReadEnd::Closed => return,
            ReadEnd::TimedOut => {
                // The dropped read took the buffer with it; `partial` says whether a head
                // had begun, which is the only case with a request to answer.
                if partial {
                    resp.reset();
                    resp.text(
                        Status::RequestTimeout,
                        "the request head did not arrive in time",
                    );
                    write_response(&mut bufs.write, &resp, false, false);
                    let _ = flush(&mut stream, &mut bufs.write, limits.write_timeout).await;
                }
                let _ = stream.shutdown().await;
                return;
            }
            ReadEnd::Drained => {
                if partial {
                    drain::note(Event::Cut);
                }
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

/// Most undecoded bytes one request may occupy in the read buffer.
fn read_cap(limits: &HttpLimits) -> usize {
    limits.max_header_bytes + limits.max_body_bytes.saturating_mul(2) + READ_CHUNK
}

/// Accepts connections on `listener` (one core's SO_REUSEPORT socket) and serves each on a
/// task of its own, until the runtime ends. With `tls`, each connection's handshake runs first
/// on its task; one that fails or stalls costs only that connection.
pub async fn serve_listener<H: Handler + 'static>(
    listener: std::net::TcpListener,
    handler: Rc<H>,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listener with the runtime");
            return;
        }
    };
    // A drain shuts the socket through this registration (new connections are then refused
    // at once) and wakes the loop below, which stops.
    let registered = drain::listening(listener.as_raw_fd());
    loop {
        let accepted = monoio::select! {
            accepted = listener.accept() => Some(accepted),
            () = drain::reached(Phase::Draining) => None,
        };
        let Some(accepted) = accepted else {
            break;
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                // Counted from here, TLS handshake included: a drain waits for it.
                let counted = drain::connection();
                match &tls {
                    None => {
                        monoio::spawn(async move {
                            serve_connection(stream, &*handler, limits, Some(peer)).await;
                            drop(counted);
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        monoio::spawn(async move {
                            match acceptor.accept(stream).await {
                                Ok(conn) => {
                                    serve_connection(conn, &*handler, limits, Some(peer)).await
                                }
                                Err(why) => {
                                    tracing::debug!(%peer, "TLS handshake failed: {why}")
                                }
                            }
                            drop(counted);
                        });
                    }
                }
            }
            Err(e) => {
                if drain::phase() != Phase::Serving {
                    break;
                }
                // Out of descriptors or similar: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    // Out of the registry before the descriptor closes, so a drain never shuts a reused one.
    drop(registered);
    drop(listener);
}

/// Writes an SSE stream's events as they come, until it ends, the peer goes away, or a
/// drain's deadline cuts it. `sent` counts the bytes of the events' chunks.
async fn stream_events<S: AsyncWriteRent + HangUpWatch, E: SseStream>(
    stream: &mut S,
    write: &mut Vec<u8>,
    events: &mut E,
    sent: &mut usize,
    write_timeout: Duration,
) -> StreamEnd {
    enum Next {
        More(bool),
        Gone,
        Deadline,
    }
    let mut event = take_buffer();
    let end = loop {
        if !flush(stream, write, write_timeout).await {
            break StreamEnd::Gone;
        }
        event.clear();
        let next = monoio::select! {
            more = events.next_event(&mut event) => Next::More(more),
            () = stream.hung_up() => Next::Gone,
            () = drain::reached(Phase::Deadline) => Next::Deadline,
        };
        let before = write.len();
        match next {
            Next::More(true) => write_chunk(write, &event),
            Next::More(false) => break StreamEnd::Finished,
            Next::Gone => break StreamEnd::Gone,
            Next::Deadline => {
                event.clear();
                events.abandon(&mut event);
                write_chunk(write, &event);
                *sent += write.len() - before;
                break StreamEnd::Abandoned;
            }
        }
        *sent += write.len() - before;
    };
    give_buffer(event);
    end
}
