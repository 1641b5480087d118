//! An SSE reply (`GET /mcp`, `GET /sse`) read chunk by chunk over a plain TCP socket, so a test
//! can tell a stream that ended cleanly (the final zero-length chunk, then the server closing
//! the connection) from one that was cut or reset.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw_http::build_request;
use super::within;

/// One chunk of the reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// An SSE event or comment, as text.
    Data(String),
    /// The zero-length chunk that ends the body.
    Last,
}

pub struct SseConn {
    conn: TcpStream,
    buf: Vec<u8>,
    /// The response head (status line and headers), without the blank line.
    pub head: String,
}

impl SseConn {
    /// Sends `GET path` with `headers` and reads the response head.
    pub async fn open(addr: &str, path: &str, headers: &[(&str, &str)]) -> SseConn {
        Self::request(addr, "GET", path, headers, b"").await
    }

    /// Sends `method path` with `headers` and `body` and reads the response head (a POST
    /// whose reply streams).
    pub async fn request(
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> SseConn {
        let mut conn = within("connect", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let request = build_request(method, path, addr, headers, body);
        conn.write_all(&request)
            .await
            .unwrap_or_else(|e| panic!("write {method} {path}: {e}"));
        let mut sse = SseConn {
            conn,
            buf: Vec::new(),
            head: String::new(),
        };
        loop {
            if let Some(end) = find(&sse.buf, b"\r\n\r\n") {
                sse.head = String::from_utf8_lossy(&sse.buf[..end]).into_owned();
                sse.buf.drain(..end + 4);
                return sse;
            }
            if let Err(e) = sse.fill().await {
                panic!("{method} {path}: {e} before a response head");
            }
        }
    }

    /// Reads more bytes; an error describes an end or a failure of the connection.
    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = vec![0u8; 65536];
        match within("read the SSE stream", self.conn.read(&mut chunk)).await {
            Ok(0) => Err("the connection closed".to_owned()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("the connection failed: {e}")),
        }
    }

    /// The next chunk of the body; an error when the connection ends or fails first.
    pub async fn next(&mut self) -> Result<Chunk, String> {
        loop {
            if let Some(line_end) = find(&self.buf, b"\r\n") {
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.trim(), 16)
                    .map_err(|_| format!("bad chunk size line {size_text:?}"))?;
                if self.buf.len() >= line_end + 2 + size + 2 {
                    let data = self.buf[line_end + 2..line_end + 2 + size].to_vec();
                    self.buf.drain(..line_end + 2 + size + 2);
                    if size == 0 {
                        return Ok(Chunk::Last);
                    }
                    return Ok(Chunk::Data(String::from_utf8_lossy(&data).into_owned()));
                }
            }
            self.fill().await?;
        }
    }

    /// Reads chunks until the final one; returns the data chunks before it, or what went wrong
    /// (with what had been read).
    pub async fn until_end(&mut self) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Ok(Chunk::Data(d)) => seen.push(d),
                Ok(Chunk::Last) => return Ok(seen),
                Err(e) => return Err(format!("{e}; chunks before: {seen:?}")),
            }
        }
    }

    /// After the final chunk: the server closes the connection in order (end of stream, no
    /// reset, nothing more sent).
    pub async fn closed_cleanly(&mut self) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!(
                "bytes after the final chunk: {:?}",
                String::from_utf8_lossy(&self.buf)
            ));
        }
        match self.fill().await {
            Err(e) if e == "the connection closed" => Ok(()),
            Err(e) => Err(e),
            Ok(()) => Err(format!(
                "bytes after the final chunk: {:?}",
                String::from_utf8_lossy(&self.buf)
            )),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
