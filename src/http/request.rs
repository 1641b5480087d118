//! Parsing a request head (sans I/O): the fields the gateway routes on, borrowed.

use super::limits::{HttpLimits, MAX_HEADERS};
use super::response::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
    Options,
    Head,
    Other,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    Empty,
    Length(usize),
    Chunked,
}

/// The head of one request; every slice borrows the connection's read buffer.
#[derive(Debug, Clone)]
pub struct RequestHead<'a> {
    pub method: Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// HTTP/1.0 defaults to close, 1.1 to keep-alive; `Connection` overrides.
    pub keep_alive: bool,
    pub framing: BodyFraming,
    pub expect_continue: bool,
    pub content_type: Option<&'a [u8]>,
    pub accept: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub session_id: Option<&'a [u8]>,
    pub protocol_version: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub api_key: Option<&'a [u8]>,
    pub last_event_id: Option<&'a [u8]>,
    /// `Mcp-Method` and `Mcp-Name`: the body's method and target mirrored for intermediaries
    /// (MCP 2026-07-28); checked against the body, never trusted instead of it.
    pub mcp_method: Option<&'a [u8]>,
    pub mcp_name: Option<&'a [u8]>,
    /// Length of the head in the buffer; the body starts here.
    pub head_len: usize,
}

/// The result of looking at the start of the read buffer.
// Returned once per request and matched at once: boxing the head would put an allocation on
// the hot path to save a few dozen bytes of stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum HeadParse<'a> {
    /// More bytes are needed (and the limit is not reached yet).
    Partial,
    Complete(RequestHead<'a>),
    /// The request is unacceptable; answer with this status and close.
    Reject(Status, &'static str),
}

fn eq_ignore_case(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// `Connection` and `Transfer-Encoding` are comma-separated token lists.
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| eq_ignore_case(t.trim_ascii(), token))
}

/// Parses the head at the start of `buf`.
pub fn parse_head<'a>(buf: &'a [u8], limits: &HttpLimits) -> HeadParse<'a> {
    // Uninitialized: filling 64 empty headers first would cost more than parsing a short head.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'a>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    // Only the first `max_header_bytes` can hold an acceptable head. Parsing no further makes
    // the verdict independent of how the bytes arrived: a malformed line past the limit is
    // "too large" (431) whether it came in the same read as the start or a later one.
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let head_len = match req.parse_with_uninit_headers(window, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_header_bytes {
                HeadParse::Reject(
                    Status::HeaderFieldsTooLarge,
                    "request head is larger than the limit",
                )
            } else {
                HeadParse::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return HeadParse::Reject(Status::HeaderFieldsTooLarge, "too many request headers")
        }
        Err(_) => return HeadParse::Reject(Status::BadRequest, "malformed HTTP request"),
    };
    if head_len > limits.max_header_bytes {
        return HeadParse::Reject(
            Status::HeaderFieldsTooLarge,
            "request head is larger than the limit",
        );
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return HeadParse::Reject(Status::BadRequest, "malformed HTTP request");
    };
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    // Absolute-form (`http://host/path`) must be accepted (RFC 9112 §3.2.2); route on its path.
    let target = absolute_form_path(target);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut head = RequestHead {
        method,
        path,
        query,
        keep_alive: version == 1,
        framing: BodyFraming::Empty,
        expect_continue: false,
        content_type: None,
        accept: None,
        host: None,
        origin: None,
        session_id: None,
        protocol_version: None,
        authorization: None,
        api_key: None,
        last_event_id: None,
        mcp_method: None,
        mcp_name: None,
        head_len,
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        match name.len() {
            4 if eq_ignore_case(name, "host") => head.host = Some(value),
            6 if eq_ignore_case(name, "accept") => head.accept = Some(value),
            6 if eq_ignore_case(name, "origin") => head.origin = Some(value),
            6 if eq_ignore_case(name, "expect") => {
                // HTTP/1.0 clients do not know 100 Continue; the expectation is ignored for them.
                head.expect_continue =
                    version == 1 && eq_ignore_case(value.trim_ascii(), "100-continue")
            }
            8 if eq_ignore_case(name, "mcp-name") => head.mcp_name = Some(value),
            9 if eq_ignore_case(name, "x-api-key") => head.api_key = Some(value),
            10 if eq_ignore_case(name, "connection") => {
                if has_token(value, "close") {
                    head.keep_alive = false;
                } else if has_token(value, "keep-alive") {
                    head.keep_alive = true;
                }
            }
            10 if eq_ignore_case(name, "mcp-method") => head.mcp_method = Some(value),
            12 if eq_ignore_case(name, "content-type") => head.content_type = Some(value),
            13 if eq_ignore_case(name, "authorization") => head.authorization = Some(value),
            13 if eq_ignore_case(name, "last-event-id") => head.last_event_id = Some(value),
            14 if eq_ignore_case(name, "content-length") => {
                let Some(n) = parse_decimal(value) else {
                    return HeadParse::Reject(Status::BadRequest, "invalid Content-Length");
                };
                if content_length.is_some_and(|prev| prev != n) {
                    return HeadParse::Reject(
                        Status::BadRequest,
                        "conflicting Content-Length headers",
                    );
                }
                content_length = Some(n);
            }
            14 if eq_ignore_case(name, "mcp-session-id") => head.session_id = Some(value),
            17 if eq_ignore_case(name, "transfer-encoding") => {
                // Only `chunked` (as the final coding) is supported; anything else is refused
                // rather than guessed at, which also closes request-smuggling doors.
                if !eq_ignore_case(value.trim_ascii(), "chunked") {
                    return HeadParse::Reject(
                        Status::NotImplemented,
                        "unsupported Transfer-Encoding",
                    );
                }
                chunked = true;
            }
            20 if eq_ignore_case(name, "mcp-protocol-version") => {
                head.protocol_version = Some(value)
            }
            _ => {}
        }
    }
    if version == 1 && head.host.is_none() {
        return HeadParse::Reject(
            Status::BadRequest,
            "HTTP/1.1 requests must carry a Host header",
        );
    }
    head.framing = match (chunked, content_length) {
        (true, Some(_)) => {
            return HeadParse::Reject(
                Status::BadRequest,
                "both Content-Length and Transfer-Encoding given",
            )
        }
        (true, None) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::Empty,
        (false, Some(n)) => {
            if n > limits.max_body_bytes {
                return HeadParse::Reject(
                    Status::PayloadTooLarge,
                    "request body is larger than the limit",
                );
            }
            BodyFraming::Length(n)
        }
    };
    HeadParse::Complete(head)
}

/// The path-and-query of an absolute-form target; other forms pass through.
fn absolute_form_path(target: &str) -> &str {
    let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    else {
        return target;
    };
    match rest.find(['/', '?']) {
        Some(i) => &rest[i..],
        None => "/",
    }
}

/// A non-empty run of ASCII digits that fits in usize.
pub(crate) fn parse_decimal(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0usize, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(usize::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> HeadParse<'_> {
        parse_head(s.as_bytes(), &HttpLimits::default())
    }

    #[test]
    fn reads_the_fields_that_route() {
        let raw = "POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
                   Accept: application/json, text/event-stream\r\nMcp-Session-Id: abc\r\nContent-Length: 5\r\n\r\nhello";
        let HeadParse::Complete(h) = parse(raw) else {
            panic!("not complete")
        };
        assert_eq!(h.method, Method::Post);
        assert_eq!((h.path, h.query), ("/mcp", Some("x=1")));
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert_eq!(h.session_id, Some(&b"abc"[..]));
        assert!(h.keep_alive);
        assert_eq!(&raw.as_bytes()[h.head_len..], b"hello");
    }

    #[test]
    fn keep_alive_rules() {
        let HeadParse::Complete(h) = parse("GET / HTTP/1.0\r\n\r\n") else {
            panic!()
        };
        assert!(!h.keep_alive);
        let HeadParse::Complete(h) = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        else {
            panic!()
        };
        assert!(h.keep_alive);
        let HeadParse::Complete(h) =
            parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n")
        else {
            panic!()
        };
        assert!(!h.keep_alive);
    }

    #[test]
    fn rejects_what_it_must() {
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost"),
            HeadParse::Partial
        ));
        assert!(matches!(
            parse("NOT A REQUEST\r\n\r\n"),
            HeadParse::Reject(Status::BadRequest, _)
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadParse::Reject(Status::BadRequest, _)
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"),
            HeadParse::Reject(Status::PayloadTooLarge, _)
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            HeadParse::Reject(Status::BadRequest, _)
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            HeadParse::Reject(Status::NotImplemented, _)
        ));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(20_000));
        assert!(matches!(
            parse(&big),
            HeadParse::Reject(Status::HeaderFieldsTooLarge, _)
        ));
        let many: String = (0..70).map(|i| format!("X{i}: y\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse(&many),
            HeadParse::Reject(Status::HeaderFieldsTooLarge, _)
        ));
    }

    /// Found by the `http_head` fuzz check (on its stable smoke run): a malformed line beyond
    /// the head limit was answered 400 when it arrived with the rest and 431 when it came in a
    /// later read.
    #[test]
    fn the_verdict_past_the_limit_does_not_depend_on_reads() {
        let limits = HttpLimits {
            max_header_bytes: 32,
            max_body_bytes: 16,
            ..HttpLimits::default()
        };
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: 0123456789\r\nno colon\r\n\r\n";
        assert!(matches!(
            parse_head(raw, &limits),
            HeadParse::Reject(Status::HeaderFieldsTooLarge, _)
        ));
        assert!(matches!(
            parse_head(&raw[..30], &limits),
            HeadParse::Partial
        ));
        assert!(matches!(
            parse_head(&raw[..40], &limits),
            HeadParse::Reject(Status::HeaderFieldsTooLarge, _)
        ));
        // Within the limit, a malformed line is still a malformed request.
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nno colon\r\n\r\n", &limits),
            HeadParse::Reject(Status::BadRequest, _)
        ));
    }

    #[test]
    fn host_absolute_form_and_expect() {
        assert!(matches!(
            parse("GET /mcp HTTP/1.1\r\n\r\n"),
            HeadParse::Reject(Status::BadRequest, _)
        ));
        let HeadParse::Complete(h) = parse("GET /x HTTP/1.0\r\n\r\n") else {
            panic!()
        };
        assert_eq!(h.path, "/x");
        let HeadParse::Complete(h) =
            parse("GET http://example:80/healthz?a=1 HTTP/1.1\r\nHost: example\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!((h.path, h.query), ("/healthz", Some("a=1")));
        let HeadParse::Complete(h) = parse("GET http://example HTTP/1.1\r\nHost: example\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(h.path, "/");
        let raw = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        let HeadParse::Complete(h) = parse(raw) else {
            panic!()
        };
        assert!(!h.expect_continue);
        let raw = "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        let HeadParse::Complete(h) = parse(raw) else {
            panic!()
        };
        assert!(h.expect_continue);
    }
}
