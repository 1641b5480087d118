//! Writing response heads and whole responses into a connection's write buffer.

/// The statuses the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Accepted,
    NoContent,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    HeaderFieldsTooLarge,
    InternalServerError,
    NotImplemented,
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::Accepted => 202,
            Status::NoContent => 204,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::NotAcceptable => 406,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::UnsupportedMediaType => 415,
            Status::TooManyRequests => 429,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
        }
    }

    fn status_line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::Accepted => b"HTTP/1.1 202 Accepted\r\n",
            Status::NoContent => b"HTTP/1.1 204 No Content\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::Unauthorized => b"HTTP/1.1 401 Unauthorized\r\n",
            Status::Forbidden => b"HTTP/1.1 403 Forbidden\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Status::NotAcceptable => b"HTTP/1.1 406 Not Acceptable\r\n",
            Status::RequestTimeout => b"HTTP/1.1 408 Request Timeout\r\n",
            Status::PayloadTooLarge => b"HTTP/1.1 413 Content Too Large\r\n",
            Status::UnsupportedMediaType => b"HTTP/1.1 415 Unsupported Media Type\r\n",
            Status::TooManyRequests => b"HTTP/1.1 429 Too Many Requests\r\n",
            Status::HeaderFieldsTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::InternalServerError => b"HTTP/1.1 500 Internal Server Error\r\n",
            Status::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\n",
            Status::ServiceUnavailable => b"HTTP/1.1 503 Service Unavailable\r\n",
        }
    }
}

/// A response the handler fills in: status, extra headers, and a body written into a
/// buffer the connection reuses from request to request.
pub struct Response {
    pub status: Status,
    pub content_type: Option<&'static str>,
    /// Extra headers, each written as `name: value`.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Who made the request (a virtual key's name), for the access log; set by handlers that
    /// keep one.
    pub who: Option<std::sync::Arc<str>>,
}

impl Default for Response {
    fn default() -> Self {
        Response::new()
    }
}

impl Response {
    pub fn new() -> Self {
        Response {
            status: Status::Ok,
            content_type: None,
            headers: Vec::new(),
            // Taken from the connection's pool when a request arrives.
            body: Vec::new(),
            who: None,
        }
    }

    /// Clears everything for the next request, keeping the body's capacity (bounded so one
    /// huge reply does not pin memory for the connection's lifetime).
    pub fn reset(&mut self) {
        self.status = Status::Ok;
        self.content_type = None;
        self.headers.clear();
        self.body.clear();
        self.who = None;
        if self.body.capacity() > 256 * 1024 {
            self.body.shrink_to(4096);
        }
    }

    pub fn header(&mut self, name: &'static str, value: impl Into<String>) {
        self.headers.push((name, value.into()));
    }

    /// A JSON body with the given status.
    pub fn json(&mut self, status: Status) -> &mut Vec<u8> {
        self.status = status;
        self.content_type = Some("application/json");
        &mut self.body
    }

    /// A short plain-text body (errors outside JSON-RPC, e.g. 405).
    pub fn text(&mut self, status: Status, text: &str) {
        self.status = status;
        self.content_type = Some("text/plain; charset=utf-8");
        self.body.clear();
        self.body.extend_from_slice(text.as_bytes());
    }

    /// A status with no body.
    pub fn empty(&mut self, status: Status) {
        self.status = status;
        self.content_type = None;
        self.body.clear();
    }
}

/// Writes the status line and headers shared by every response.
fn write_head_start(
    out: &mut Vec<u8>,
    status: Status,
    content_type: Option<&str>,
    headers: &[(&'static str, String)],
) {
    out.extend_from_slice(status.status_line());
    if let Some(ct) = content_type {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        write_header(out, name, value);
    }
}

/// Appends one `name: value` header line.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole response to `out`; without the body when `head_only` (a reply to HEAD,
/// which keeps the Content-Length the body would have had).
pub fn write_response(out: &mut Vec<u8>, resp: &Response, keep_alive: bool, head_only: bool) {
    out.reserve(resp.body.len() + 160);
    write_head_start(out, resp.status, resp.content_type, &resp.headers);
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(resp.body.len()).as_bytes());
    out.extend_from_slice(if keep_alive {
        b"\r\n\r\n"
    } else {
        b"\r\nConnection: close\r\n\r\n"
    });
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
}

/// Appends the head of a chunked SSE response; events follow as chunks. Without `keep_alive`
/// the head says the connection closes after the stream.
pub fn write_sse_head(out: &mut Vec<u8>, resp: &Response, keep_alive: bool) {
    write_head_start(out, resp.status, Some("text/event-stream"), &resp.headers);
    out.extend_from_slice(b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n");
    out.extend_from_slice(if keep_alive {
        b"\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
}

/// Appends one chunk holding `data` (nothing for empty data: that would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    let mut n = data.len();
    let mut i = hex.len();
    while n > 0 {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The zero-length chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_response() {
        let mut r = Response::new();
        r.json(Status::Ok).extend_from_slice(b"{}");
        r.header("Mcp-Session-Id", "s1");
        let mut out = Vec::new();
        write_response(&mut out, &r, false, false);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }

    #[test]
    fn chunks_are_hex_sized() {
        let mut out = Vec::new();
        write_chunk(&mut out, &[b'x'; 26]);
        assert!(out.starts_with(b"1a\r\nxxx"));
        let mut out = Vec::new();
        write_chunk(&mut out, b"");
        assert!(out.is_empty());
    }
}
