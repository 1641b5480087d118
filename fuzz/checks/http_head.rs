//! Request heads, chunked bodies and upstream reply heads: whatever bytes a peer sends.
//!
//! Besides "never panics", the request side is checked the way the server drives it: a
//! connection's bytes are scanned as the server's loop does (re-parsing a head until it is
//! complete, decoding a chunked body as it arrives, pipelined requests one after another), and
//! the requests seen must not depend on how the bytes were split into reads.

use mcpgate::http::chunked::{ChunkedDecoder, ChunkedError};
use mcpgate::http::client::{parse_reply_head, ReplyFraming};
use mcpgate::http::limits::{DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_WRITE_TIMEOUT};
use mcpgate::http::request::{parse_head, BodyFraming, HeadParse};
use mcpgate::http::{HttpLimits, Method, Status};

/// Limits small enough for short inputs to reach them.
const SMALL: HttpLimits = HttpLimits {
    max_header_bytes: 64,
    max_body_bytes: 16,
    header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
    write_timeout: DEFAULT_WRITE_TIMEOUT,
};

pub fn check(data: &[u8]) {
    for limits in [HttpLimits::default(), SMALL] {
        let whole = serve(data, &limits, data.len().max(1));
        let split = serve(data, &limits, 7);
        assert_eq!(whole, split, "reads of 7 bytes changed what was served");
        if data.len() <= 512 {
            assert_eq!(
                whole,
                serve(data, &limits, 1),
                "one byte per read changed it"
            );
        }
    }
    chunked(data, 1 << 20);
    chunked(data, 16);
    reply_head(data);
}

/// What the server loop made of a connection's bytes.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Request {
        method: Method,
        path: String,
        query: Option<String>,
        keep_alive: bool,
        body: Vec<u8>,
    },
    Refused(Status),
}

/// A chunked body that has not fully arrived: the decoder, input bytes it used, output so far.
struct Progress {
    decoder: ChunkedDecoder,
    used: usize,
    body: Vec<u8>,
}

/// Feeds `data` in reads of `step` bytes through the steps `http::server` takes per read.
fn serve(data: &[u8], limits: &HttpLimits, step: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut read = Vec::new();
    let mut chunked: Option<Progress> = None;
    for piece in data.chunks(step) {
        read.extend_from_slice(piece);
        let mut consumed = 0;
        loop {
            let input = &read[consumed..];
            if input.is_empty() {
                break;
            }
            let head = match parse_head(input, limits) {
                HeadParse::Partial => {
                    assert!(input.len() <= limits.max_header_bytes);
                    break;
                }
                HeadParse::Reject(status, _) => {
                    seen.push(Seen::Refused(status));
                    return seen;
                }
                HeadParse::Complete(head) => head,
            };
            assert!(head.head_len <= input.len());
            assert!(head.head_len <= limits.max_header_bytes);
            let after = &input[head.head_len..];
            let (body, used) = match head.framing {
                BodyFraming::Empty => (Vec::new(), head.head_len),
                BodyFraming::Length(n) => {
                    assert!(n > 0 && n <= limits.max_body_bytes);
                    if after.len() < n {
                        break;
                    }
                    (after[..n].to_vec(), head.head_len + n)
                }
                BodyFraming::Chunked => {
                    let p = chunked.get_or_insert_with(|| Progress {
                        decoder: ChunkedDecoder::new(limits.max_body_bytes),
                        used: 0,
                        body: Vec::new(),
                    });
                    let rest = &after[p.used..];
                    match p.decoder.decode(rest, &mut p.body) {
                        Ok(n) => {
                            assert!(n <= rest.len(), "decoder claims unread bytes");
                            p.used += n;
                        }
                        Err(e) => {
                            seen.push(Seen::Refused(refusal(e)));
                            return seen;
                        }
                    }
                    assert!(p.body.len() <= limits.max_body_bytes);
                    if !p.decoder.is_done() {
                        break;
                    }
                    let used = head.head_len + p.used;
                    (std::mem::take(&mut p.body), used)
                }
            };
            chunked = None;
            seen.push(Seen::Request {
                method: head.method,
                path: head.path.to_owned(),
                query: head.query.map(str::to_owned),
                keep_alive: head.keep_alive,
                body,
            });
            consumed += used;
            if !head.keep_alive {
                return seen;
            }
        }
        read.drain(..consumed);
    }
    seen
}

fn refusal(e: ChunkedError) -> Status {
    match e {
        ChunkedError::TooLarge => Status::PayloadTooLarge,
        ChunkedError::Malformed => Status::BadRequest,
    }
}

/// The decoder on its own (as for upstream replies): the output is the same whether the
/// input comes at once or in pieces, and never exceeds the limit.
fn chunked(data: &[u8], limit: usize) {
    let mut whole = ChunkedDecoder::new(limit);
    let mut whole_out = Vec::new();
    let whole_res = whole.decode(data, &mut whole_out);
    if let Ok(n) = whole_res {
        assert!(n <= data.len());
    }
    assert!(whole_out.len() <= limit);

    // Pieces: what is not consumed stays buffered and is offered again with the next piece.
    let mut dec = ChunkedDecoder::new(limit);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut used_total = 0;
    let mut res = Ok(0);
    for piece in data.chunks(5) {
        buf.extend_from_slice(piece);
        res = dec.decode(&buf, &mut out);
        let Ok(n) = res else { break };
        assert!(n <= buf.len(), "decoder claims unread bytes");
        buf.drain(..n);
        used_total += n;
        if dec.is_done() {
            break;
        }
    }
    assert!(out.len() <= limit);
    match (&whole_res, &res) {
        (Ok(n), Ok(_)) if whole.is_done() || dec.is_done() => {
            assert_eq!(whole.is_done(), dec.is_done(), "done depends on the split");
            assert_eq!(*n, used_total, "consumed depends on the split");
            assert_eq!(whole_out, out, "decoded body depends on the split");
        }
        (Ok(_), Ok(_)) => assert_eq!(whole_out, out, "decoded bytes depend on the split"),
        (Err(a), Err(b)) => assert_eq!(a, b, "error depends on the split"),
        (a, b) => panic!("split changed the outcome: whole {a:?}, pieces {b:?}"),
    }
}

/// An upstream's reply head: the length is within the input, the framing is consistent.
fn reply_head(data: &[u8]) {
    if let Ok(Some((n, head))) = parse_reply_head(data) {
        assert!(n <= data.len());
        if matches!(head.status, 100..=199 | 204 | 304) {
            assert_eq!(head.framing, ReplyFraming::Empty);
        }
        if head.framing == ReplyFraming::UntilClose {
            assert!(!head.keep_alive);
        }
        if head.framing == ReplyFraming::Chunked {
            chunked(&data[n..], 1 << 16);
        }
    }
}
