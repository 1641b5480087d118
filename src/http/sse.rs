//! Server-Sent Events: framing events the gateway sends, and parsing the streams
//! upstreams send back (sans I/O).

/// One parsed event. Only `data` and `event` matter to MCP; `id` is kept for resumption.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: Vec<u8>,
}

/// Why an SSE stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    EventTooLarge,
}

/// Accumulates stream bytes and yields complete events.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned without finding a line end.
    scanned: usize,
    current: SseEvent,
    has_field: bool,
    max_event: usize,
}

impl SseParser {
    pub fn new(max_event: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            scanned: 0,
            current: SseEvent::default(),
            has_field: false,
            max_event,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        let mut start = 0;
        let result = loop {
            let from = start.max(self.scanned);
            let Some(rel) = memchr::memchr2(b'\n', b'\r', &self.buf[from..]) else {
                self.scanned = self.buf.len();
                if self.buf.len() - start + self.current.data.len() > self.max_event {
                    return Err(SseError::EventTooLarge);
                }
                break Ok(None);
            };
            let end = from + rel;
            // A lone '\r' at the end may be the first half of "\r\n": wait for more.
            let eol_len = if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        self.scanned = end;
                        break Ok(None);
                    }
                }
            } else {
                1
            };
            let line_start = start;
            start = end + eol_len;
            self.scanned = start;
            if end == line_start {
                if self.has_field {
                    self.has_field = false;
                    if self.current.data.last() == Some(&b'\n') {
                        self.current.data.pop();
                    }
                    break Ok(Some(std::mem::take(&mut self.current)));
                }
                continue;
            }
            let line = &self.buf[line_start..end];
            if line[0] == b':' {
                continue; // comment / heartbeat
            }
            let (field, value) = match memchr::memchr(b':', line) {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            match field {
                b"data" => {
                    if self.current.data.len() + value.len() > self.max_event {
                        return Err(SseError::EventTooLarge);
                    }
                    self.current.data.extend_from_slice(value);
                    self.current.data.push(b'\n');
                    self.has_field = true;
                }
                b"event" => {
                    self.current.event = Some(String::from_utf8_lossy(value).into_owned());
                    self.has_field = true;
                }
                b"id" => {
                    self.current.id = Some(String::from_utf8_lossy(value).into_owned());
                    self.has_field = true;
                }
                _ => {}
            }
        };
        self.buf.drain(..start);
        self.scanned -= start;
        result
    }
}

/// Appends `data: <message>\n\n`. JSON messages contain no raw newlines, but any are split
/// into `data:` lines so the framing holds for every input.
pub fn write_event(out: &mut Vec<u8>, message: &[u8]) {
    for line in message.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_events_and_comments() {
        let stream =
            b": hi\n\nevent: message\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: x\n\n";
        for split in 0..stream.len() {
            let mut p = SseParser::new(1 << 20);
            let mut got = Vec::new();
            p.push(&stream[..split]);
            while let Some(e) = p.next_event().unwrap() {
                got.push(e);
            }
            p.push(&stream[split..]);
            while let Some(e) = p.next_event().unwrap() {
                got.push(e);
            }
            assert_eq!(got.len(), 2, "split {split}");
            assert_eq!(got[0].data, b"{\"a\":\n1}");
            assert_eq!(got[0].event.as_deref(), Some("message"));
            assert_eq!(got[0].id.as_deref(), Some("7"));
            assert_eq!(got[1].data, b"x");
        }
    }

    #[test]
    fn bounds_event_size() {
        let mut p = SseParser::new(10);
        p.push(b"data: 0123456789abcdef");
        assert_eq!(p.next_event(), Err(SseError::EventTooLarge));
    }

    #[test]
    fn writes_events() {
        let mut out = Vec::new();
        write_event(&mut out, b"{\"x\":1}");
        assert_eq!(out, b"data: {\"x\":1}\n\n");
    }
}
