//! One client connection: read requests, hand each to the gateway's handler, write replies.
//!
//! Pipelined requests are answered in order and their replies leave in one write. The
//! buffers a request needs (reply, write, decoded body) come from a per-core pool and go
//! back as soon as the connection has nothing pending, so steady-state traffic allocates
//! nothing here and an idle connection holds only a small read buffer (thousands of idle
//! clients cost little memory).

use std::cell::RefCell;
use std::rc::Rc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::hang_up::HangUpWatch;
use super::limits::HttpLimits;
use super::request::{parse_head, BodyFraming, HeadParse, Method, RequestHead};
use super::response::{write_chunk, write_response, write_sse_head, Response, Status, LAST_CHUNK};
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
}

/// Growth step of a read buffer that ran out of room.
const READ_CHUNK: usize = 8 * 1024;
/// Below this much free room a read buffer grows before reading.
const MIN_SPARE: usize = 512;
/// The read buffer an idle connection keeps: room for a typical MCP request in one read.
const IDLE_READ: usize = 2 * 1024;
/// Capacity of pooled buffers.
const POOL_BUF: usize = 16 * 1024;
/// Buffers larger than this are not kept in the pool.
const POOLED_MAX: usize = 64 * 1024;
/// Buffers kept per core.
const POOL_DEPTH: usize = 1024;
/// Flush pipelined replies once this much is waiting, even if more requests are buffered.
const FLUSH_AT: usize = 64 * 1024;
/// A request still unanswered after this long starts watching for its client hanging up.
/// Quick requests (nearly all) never arm the watch; they pay one timer.
const HANG_UP_WATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

thread_local! {
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buffer() -> Vec<u8> {
    BUFFERS
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(POOL_BUF))
}

fn give_buffer(mut buf: Vec<u8>) {
    if buf.capacity() <= POOLED_MAX {
        buf.clear();
        BUFFERS.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_DEPTH {
                p.push(buf);
            }
        });
    }
}

/// A connection's buffers. Only `read` lives as long as the connection; the others are
/// taken from the pool for a request and handed back once the connection is idle.
struct ConnBuffers {
    read: Vec<u8>,
    write: Vec<u8>,
    /// Decoded chunked request bodies.
    body: Vec<u8>,
}

/// Makes sure `buf` has pooled capacity before use.
fn ensure_pooled(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        *buf = take_buffer();
    }
}

/// Hands a buffer back to the pool, leaving an unallocated one.
fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > 0 {
        give_buffer(std::mem::take(buf));
    }
}

impl ConnBuffers {
    fn new() -> Self {
        ConnBuffers {
            read: Vec::with_capacity(IDLE_READ),
            write: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Nothing is pending: keep only a small read buffer while the peer is quiet.
    fn idle(&mut self, resp: &mut Response) {
        release(&mut self.write);
        release(&mut self.body);
        release(&mut resp.body);
        if self.read.is_empty() && self.read.capacity() > POOL_BUF {
            give_buffer(std::mem::replace(
                &mut self.read,
                Vec::with_capacity(IDLE_READ),
            ));
        }
    }
}

impl Drop for ConnBuffers {
    fn drop(&mut self) {
        release(&mut self.write);
        release(&mut self.body);
    }
}

/// Progress through a chunked body that has not fully arrived.
struct ChunkedProgress {
    decoder: ChunkedDecoder,
    /// Input bytes of the body already decoded, counted from the end of the head.
    consumed: usize,
}

/// What scanning the read buffer decided.
enum Scan {
    /// Need more bytes.
    Read,
    /// Write what is queued and close.
    Close,
}

/// Serves one connection until the peer closes it, asks to close, or sends something that
/// forces a close (a malformed or oversized request).
pub async fn serve_connection<S, H>(mut stream: S, handler: &H, limits: HttpLimits)
where
    S: AsyncReadRent + AsyncWriteRent + HangUpWatch,
    H: Handler,
{
    let mut bufs = ConnBuffers::new();
    let mut resp = Response::new();
    let mut chunked: Option<ChunkedProgress> = None;
    let mut continue_sent = false;
    loop {
        let mut consumed = 0;
        let scan = loop {
            let input = &bufs.read[consumed..];
            if input.is_empty() {
                break Scan::Read;
            }
            let head = match parse_head(input, &limits) {
                HeadParse::Partial => break Scan::Read,
                HeadParse::Reject(status, why) => {
                    resp.reset();
                    resp.text(status, why);
                    write_response(&mut bufs.write, &resp, false, false);
                    break Scan::Close;
                }
                HeadParse::Complete(head) => head,
            };
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
                    break Scan::Read;
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
                        break Scan::Read;
                    }
                    (&bufs.body[..], head.head_len + progress.consumed)
                }
            };
            resp.reset();
            ensure_pooled(&mut resp.body);
            ensure_pooled(&mut bufs.write);
            crate::runtime::busy_poll::note_activity();
            // Boxed: the handler's state machine (upstream calls and all) is several KiB and
            // would otherwise sit inline in every connection's task, idle ones included.
            let handled = Box::pin(handler.handle(&head, body, &mut resp));
            let hung_up = async {
                monoio::time::sleep(HANG_UP_WATCH_AFTER).await;
                stream.hung_up().await
            };
            let outcome = monoio::select! {
                outcome = handled => outcome,
                // The client is gone: dropping the handler stops its work (an upstream call is
                // cancelled upstream); there is nobody to answer.
                () = hung_up => return,
            };
            let keep_alive = head.keep_alive;
            consumed += used;
            chunked = None;
            continue_sent = false;
            match outcome {
                Outcome::Done => write_response(
                    &mut bufs.write,
                    &resp,
                    keep_alive,
                    head.method == Method::Head,
                ),
                Outcome::Stream(mut events) => {
                    write_sse_head(&mut bufs.write, &resp);
                    let streamed =
                        Box::pin(stream_events(&mut stream, &mut bufs.write, &mut events));
                    if !streamed.await {
                        return;
                    }
                    bufs.write.extend_from_slice(LAST_CHUNK);
                }
            }
            if !keep_alive {
                break Scan::Close;
            }
            if bufs.write.len() >= FLUSH_AT && !flush(&mut stream, &mut bufs.write).await {
                return;
            }
        };
        if consumed > 0 {
            bufs.read.drain(..consumed);
        }
        if !flush(&mut stream, &mut bufs.write).await {
            return;
        }
        if let Scan::Close = scan {
            let _ = stream.shutdown().await;
            release(&mut resp.body);
            return;
        }
        if bufs.read.is_empty() && chunked.is_none() {
            bufs.idle(&mut resp);
        }
        if bufs.read.len() >= read_cap(&limits) {
            // Only chunk framing can get here (head and decoded body are bounded on their own).
            resp.reset();
            resp.text(Status::PayloadTooLarge, "request is larger than the limit");
            write_response(&mut bufs.write, &resp, false, false);
            let _ = flush(&mut stream, &mut bufs.write).await;
            return;
        }
        if !read_more(&mut stream, &mut bufs.read).await {
            return;
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
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                match &tls {
                    None => {
                        monoio::spawn(async move {
                            serve_connection(stream, &*handler, limits).await;
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        monoio::spawn(async move {
                            match acceptor.accept(stream).await {
                                Ok(conn) => serve_connection(conn, &*handler, limits).await,
                                Err(why) => {
                                    tracing::debug!(%peer, "TLS handshake failed: {why}")
                                }
                            }
                        });
                    }
                }
            }
            Err(e) => {
                // Out of descriptors or similar: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Writes an SSE stream's events as they come; false when the peer went away.
async fn stream_events<S: AsyncWriteRent + HangUpWatch, E: SseStream>(
    stream: &mut S,
    write: &mut Vec<u8>,
    events: &mut E,
) -> bool {
    let mut event = take_buffer();
    loop {
        if !flush(stream, write).await {
            give_buffer(event);
            return false;
        }
        event.clear();
        let next = monoio::select! {
            more = events.next_event(&mut event) => Some(more),
            () = stream.hung_up() => None,
        };
        match next {
            Some(true) => {}
            Some(false) => {
                give_buffer(event);
                return true;
            }
            None => {
                give_buffer(event);
                return false;
            }
        }
        write_chunk(write, &event);
    }
}

/// Writes and clears `buf`; false when the peer is gone.
async fn flush<S: AsyncWriteRent>(stream: &mut S, buf: &mut Vec<u8>) -> bool {
    if buf.is_empty() {
        return true;
    }
    let (res, returned) = stream.write_all(std::mem::take(buf)).await;
    *buf = returned;
    buf.clear();
    res.is_ok()
}

/// Reads at least one more byte into `buf`; false on EOF or error.
async fn read_more<S: AsyncReadRent>(stream: &mut S, buf: &mut Vec<u8>) -> bool {
    if buf.capacity() - buf.len() < MIN_SPARE {
        buf.reserve(READ_CHUNK);
    }
    let len = buf.len();
    let cap = buf.capacity();
    let (res, slice) = stream.read(std::mem::take(buf).slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    matches!(res, Ok(n) if n > 0)
}
