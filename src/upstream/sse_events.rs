//! Reading an upstream's long-lived SSE stream (a legacy SSE server's `GET`, a streamable-HTTP
//! server's own `GET` stream) event by event, with each event bounded in size.
//!
//! Owns: the connection, its body framing and the event parser for one stream. Must never:
//! buffer an event beyond its limit (an oversized one is reported, not kept).

use crate::http::client::{BodyReader, ClientConn, ReplyHead};
use crate::http::sse::{SseItem, SseParser};

/// Bytes read from the stream at a time.
const READ_CHUNK: usize = 16 * 1024;

/// One open SSE stream.
pub struct SseEvents {
    conn: ClientConn,
    body: BodyReader,
    parser: SseParser,
    chunk: Vec<u8>,
    ended: bool,
}

impl SseEvents {
    /// The stream whose reply head is `head`, events up to `max_event` bytes.
    pub fn new(conn: ClientConn, head: &ReplyHead, max_event: usize) -> SseEvents {
        SseEvents {
            conn,
            body: BodyReader::new(head.framing, usize::MAX),
            parser: SseParser::new(max_event),
            chunk: Vec::with_capacity(READ_CHUNK),
            ended: false,
        }
    }

    /// The next event (or report of an oversized one); `None` once the stream ended.
    pub async fn next(&mut self) -> Result<Option<SseItem>, String> {
        loop {
            if let Some(item) = self.parser.next_item() {
                return Ok(Some(item));
            }
            if self.ended {
                return Ok(None);
            }
            self.chunk.clear();
            let more = self
                .body
                .read(&mut self.conn, &mut self.chunk, usize::MAX)
                .await
                .map_err(|e| format!("reading the stream failed: {e}"))?;
            self.parser.push(&self.chunk);
            self.ended = !more;
        }
    }
}
