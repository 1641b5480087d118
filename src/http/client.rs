//! The outbound side: one keep-alive HTTP/1.1 connection to an upstream server.
//!
//! Owns request writing, response head parsing and body reading (Content-Length, chunked or
//! until close), whole or incrementally for SSE, over plain TCP or TLS. Never resolves names
//! (that happens off the worker cores) and never reads more than the limits it is given.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::BufResult;

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::request::parse_decimal;
use super::response::write_header;
use crate::tls::TlsTarget;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFraming {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// The media type of a reply, as far as MCP cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Json,
    EventStream,
    Other,
}

/// The head of an upstream's response.
#[derive(Debug, Clone)]
pub struct ReplyHead {
    pub status: u16,
    pub kind: ReplyKind,
    pub framing: ReplyFraming,
    pub keep_alive: bool,
    pub session_id: Option<String>,
}

/// Why talking to an upstream over HTTP failed.
#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// The peer closed the connection before a whole reply arrived.
    Closed,
    Malformed(&'static str),
    TooLarge(&'static str),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Closed => write!(f, "connection closed before the reply was complete"),
            ClientError::Malformed(why) => write!(f, "malformed HTTP reply: {why}"),
            ClientError::TooLarge(what) => write!(f, "{what} is larger than the limit"),
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// Why a connection could not be set up.
#[derive(Debug)]
pub enum ConnectError {
    Tcp(io::Error),
    /// The TLS handshake failed; says why (a certificate problem, a server that is not TLS…).
    Tls(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tcp(e) => write!(f, "{e}"),
            ConnectError::Tls(why) => write!(f, "TLS handshake failed: {why}"),
        }
    }
}

const MAX_REPLY_HEAD: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// The byte stream under a connection. An enum, not a trait object: the plain path stays a
/// direct call into the TCP stream. The TLS stream is boxed so idle pooled plain connections
/// do not carry its size.
enum Wire {
    Plain(TcpStream),
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
}

impl Wire {
    // The TLS futures are boxed: inline, their 600–700 bytes would sit in every plain call's
    // future too (each layer above a read or write holds it), and be copied wherever that
    // future is moved or boxed.
    async fn read<T: IoBufMut + 'static>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Wire::Plain(s) => s.read(buf).await,
            Wire::Tls(s) => Box::pin(s.read(buf)).await,
        }
    }

    async fn write_all<T: IoBuf + 'static>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Wire::Plain(s) => s.write_all(buf).await,
            Wire::Tls(s) => Box::pin(s.write_all(buf)).await,
        }
    }
}

/// One connection to an upstream.
pub struct ClientConn {
    stream: Wire,
    /// The socket under `stream` (which owns it), for looking at it without reading.
    fd: RawFd,
    /// Bytes read but not yet consumed.
    rbuf: Vec<u8>,
    /// The request being written; kept for reuse.
    wbuf: Vec<u8>,
}

/// Incremental reader for one reply body.
pub struct BodyReader {
    framing: ReplyFraming,
    remaining: usize,
    chunked: Option<ChunkedDecoder>,
    done: bool,
}

impl ClientConn {
    /// Connects to `addr`, with a TLS handshake when `tls` is given.
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<&TlsTarget>,
    ) -> Result<ClientConn, ConnectError> {
        let tcp = TcpStream::connect_addr(addr)
            .await
            .map_err(ConnectError::Tcp)?;
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        let fd = tcp.as_raw_fd();
        let stream = match tls {
            None => Wire::Plain(tcp),
            Some(target) => Wire::Tls(Box::new(
                crate::tls::client::handshake(tcp, target)
                    .await
                    .map_err(ConnectError::Tls)?,
            )),
        };
        Ok(ClientConn {
            stream,
            fd,
            rbuf: Vec::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(4096),
        })
    }

    /// Whether this idle connection can carry another request: nothing is left unread and
    /// the server has sent nothing since its last reply. Looks without reading or waiting, and
    /// without the runtime's driver (io_uring or epoll alike). Bytes or an end of stream on an
    /// idle connection both mean it cannot be reused: the server is closing it (a TLS server's
    /// close_notify travels with its FIN) or broke the protocol.
    pub fn reusable(&self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd this frame owns, naming a socket `self.stream`
        // keeps open; a zero timeout never blocks.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        // Anything to report (bytes, FIN, hang-up, error), or a failed look: not reusable.
        ready == 0
    }

    /// Whether no byte has been read since the connection was last checked reusable (a reply
    /// that failed this way never began).
    pub fn nothing_read(&self) -> bool {
        self.rbuf.is_empty()
    }

    /// The buffer the next request is written into (cleared).
    pub fn request_buf(&mut self) -> &mut Vec<u8> {
        self.wbuf.clear();
        &mut self.wbuf
    }

    /// Sends what `request_buf` holds.
    pub async fn send(&mut self) -> io::Result<()> {
        let (res, buf) = self.stream.write_all(std::mem::take(&mut self.wbuf)).await;
        self.wbuf = buf;
        res.map(|_| ())
    }

    async fn fill(&mut self) -> Result<(), ClientError> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK {
            self.rbuf.reserve(READ_CHUNK);
        }
        let len = self.rbuf.len();
        let cap = self.rbuf.capacity();
        let (res, slice) = self
            .stream
            .read(std::mem::take(&mut self.rbuf).slice_mut(len..cap))
            .await;
        self.rbuf = slice.into_inner();
        match res {
            Ok(0) => Err(ClientError::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(ClientError::Io(e)),
        }
    }

    /// Reads the response head (skipping any 1xx interim responses).
    pub async fn read_head(&mut self) -> Result<ReplyHead, ClientError> {
        loop {
            match parse_reply_head(&self.rbuf)? {
                Some((n, head)) => {
                    self.rbuf.drain(..n);
                    if (100..200).contains(&head.status) {
                        continue;
                    }
                    return Ok(head);
                }
                None => {
                    if self.rbuf.len() > MAX_REPLY_HEAD {
                        return Err(ClientError::TooLarge("reply head"));
                    }
                    self.fill().await?;
                }
            }
        }
    }

    /// Reads a whole body into `out` (at most `limit` bytes).
    pub async fn read_body(
        &mut self,
        head: &ReplyHead,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        let mut reader = BodyReader::new(head.framing, limit);
        while reader.read(self, out, limit).await? {}
        Ok(())
    }
}

/// Parses the reply head at the start of `buf` (sans I/O): `None` until it is complete, then
/// the head and its length. Interim 1xx heads come back like any other.
pub fn parse_reply_head(buf: &[u8]) -> Result<Option<(usize, ReplyHead)>, ClientError> {
    // Uninitialised: 64 empty headers would be 2 KiB written on every reply.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 64];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((n, head_from(&resp)?))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(ClientError::Malformed("invalid response head")),
    }
}

fn head_from(resp: &httparse::Response<'_, '_>) -> Result<ReplyHead, ClientError> {
    let status = resp.code.ok_or(ClientError::Malformed("no status"))?;
    let mut kind = ReplyKind::Other;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = resp.version == Some(1);
    let mut session_id = None;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-type") {
            let v = h.value.trim_ascii();
            let essence = v.split(|&b| b == b';').next().unwrap_or(v).trim_ascii();
            kind = if essence.eq_ignore_ascii_case(b"application/json") {
                ReplyKind::Json
            } else if essence.eq_ignore_ascii_case(b"text/event-stream") {
                ReplyKind::EventStream
            } else {
                ReplyKind::Other
            };
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                parse_decimal(h.value).ok_or(ClientError::Malformed("invalid Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if !chunked {
                return Err(ClientError::Malformed("unsupported Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                keep_alive = false;
            }
        } else if name.eq_ignore_ascii_case("mcp-session-id") {
            let v = std::str::from_utf8(h.value)
                .map_err(|_| ClientError::Malformed("session id is not text"))?;
            session_id = Some(v.trim().to_owned());
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        ReplyFraming::Empty
    } else if chunked {
        ReplyFraming::Chunked
    } else {
        match length {
            Some(0) => ReplyFraming::Empty,
            Some(n) => ReplyFraming::Length(n),
            None => {
                keep_alive = false;
                ReplyFraming::UntilClose
            }
        }
    };
    Ok(ReplyHead {
        status,
        kind,
        framing,
        keep_alive,
        session_id,
    })
}

impl BodyReader {
    pub fn new(framing: ReplyFraming, limit: usize) -> Self {
        let (remaining, chunked, done) = match framing {
            ReplyFraming::Empty => (0, None, true),
            ReplyFraming::Length(n) => (n, None, false),
            ReplyFraming::Chunked => (0, Some(ChunkedDecoder::new(limit)), false),
            ReplyFraming::UntilClose => (0, None, false),
        };
        BodyReader {
            framing,
            remaining,
            chunked,
            done,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Appends the next body bytes to `out`; returns whether more may follow. Fails when
    /// `out` would grow past `limit`.
    pub async fn read(
        &mut self,
        conn: &mut ClientConn,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<bool, ClientError> {
        if self.done {
            return Ok(false);
        }
        match self.framing {
            ReplyFraming::Empty => {
                self.done = true;
            }
            ReplyFraming::Length(_) => {
                if conn.rbuf.is_empty() {
                    conn.fill().await?;
                }
                let take = self.remaining.min(conn.rbuf.len());
                if out.len() + take > limit {
                    return Err(ClientError::TooLarge("reply body"));
                }
                out.extend_from_slice(&conn.rbuf[..take]);
                conn.rbuf.drain(..take);
                self.remaining -= take;
                self.done = self.remaining == 0;
            }
            ReplyFraming::Chunked => {
                let Some(dec) = self.chunked.as_mut() else {
                    return Err(ClientError::Malformed("chunked state lost"));
                };
                let before = out.len();
                loop {
                    let used = dec.decode(&conn.rbuf, out).map_err(|e| match e {
                        ChunkedError::TooLarge => ClientError::TooLarge("reply body"),
                        ChunkedError::Malformed => ClientError::Malformed("invalid chunked body"),
                    })?;
                    conn.rbuf.drain(..used);
                    if dec.is_done() {
                        self.done = true;
                        break;
                    }
                    if out.len() > before {
                        break;
                    }
                    conn.fill().await?;
                }
            }
            ReplyFraming::UntilClose => {
                if conn.rbuf.is_empty() {
                    match conn.fill().await {
                        Ok(()) => {}
                        Err(ClientError::Closed) => {
                            self.done = true;
                            return Ok(false);
                        }
                        Err(e) => return Err(e),
                    }
                }
                if out.len() + conn.rbuf.len() > limit {
                    return Err(ClientError::TooLarge("reply body"));
                }
                out.extend_from_slice(&conn.rbuf);
                conn.rbuf.clear();
            }
        }
        Ok(!self.done)
    }
}

/// Writes a POST of a JSON-RPC message. `headers` are extra `(name, value)` pairs.
pub fn write_post(
    out: &mut Vec<u8>,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    out.reserve(body.len() + 256);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(
        b"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ",
    );
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        write_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Writes a GET that opens an SSE stream (`Accept: text/event-stream`). `headers` are extra
/// `(name, value)` pairs.
pub fn write_sse_get(out: &mut Vec<u8>, path: &str, host: &str, headers: &[(&str, &str)]) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n");
    for (name, value) in headers {
        write_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}
