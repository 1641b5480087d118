//! Server-Sent Events: framing events the gateway sends, and parsing the streams
//! upstreams send back (sans I/O).

/// One parsed event. Only `data` and `event` matter to MCP; `id` is kept for resumption.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: Vec<u8>,
}

/// An event dropped for being larger than the parser's limit: the start and the end of its
/// data (enough to find a JSON-RPC message's id) and its data size. Only these few bytes are
/// ever held of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkippedEvent {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub len: usize,
}

/// What [`SseParser::next_item`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(SseEvent),
    /// An event over the limit, reported once its end has gone by.
    TooLarge(SkippedEvent),
}

/// Bytes of a skipped event's data kept from its start and from its end.
const SKIPPED_HEAD: usize = 4096;
const SKIPPED_TAIL: usize = 256;
/// A line start longer than this without a `:` is no `data` field.
const FIELD_NAME_MAX: usize = 16;

impl SkippedEvent {
    fn record(&mut self, bytes: &[u8]) {
        let room = SKIPPED_HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let from = bytes.len().saturating_sub(SKIPPED_TAIL);
        self.tail.extend_from_slice(&bytes[from..]);
        let excess = self.tail.len().saturating_sub(SKIPPED_TAIL);
        self.tail.drain(..excess);
        self.len = self.len.saturating_add(bytes.len());
    }
}

/// Where the skipper stands in the line it is passing over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SkippedLine {
    /// At a line start: the field is not known yet.
    Start,
    /// Inside a `data` line whose start was consumed.
    Data,
    /// Inside another line whose start was consumed.
    Other,
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
    /// Set while an event over `max_event` is being passed over (see `next_item`).
    skipping: Option<(SkippedEvent, SkippedLine)>,
}

impl SseParser {
    pub fn new(max_event: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            scanned: 0,
            current: SseEvent::default(),
            has_field: false,
            max_event,
            skipping: None,
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
                    // The unfinished line stays first in the buffer, for `skip_lines`.
                    self.buf.drain(..start);
                    self.scanned = 0;
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
                b"data" if self.current.data.len() + value.len() > self.max_event => {
                    // The offending line stays first in the buffer, for `skip_lines`.
                    self.buf.drain(..line_start);
                    self.scanned = 0;
                    return Err(SseError::EventTooLarge);
                }
                b"data" => {
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

impl SseParser {
    /// The next complete event, or a report of one that was over the limit: unlike
    /// [`SseParser::next_event`], an event too large does not end the stream; its bytes are
    /// dropped as they arrive (never buffered) up to its end, and parsing goes on after it.
    pub fn next_item(&mut self) -> Option<SseItem> {
        loop {
            if self.skipping.is_some() {
                return self.skip_lines().map(SseItem::TooLarge);
            }
            match self.next_event() {
                Ok(event) => return event.map(SseItem::Event),
                Err(SseError::EventTooLarge) => {
                    let mut skipped = SkippedEvent::default();
                    skipped.record(&std::mem::take(&mut self.current).data);
                    self.has_field = false;
                    self.skipping = Some((skipped, SkippedLine::Start));
                }
            }
        }
    }

    /// Consumes the buffered lines of the event being skipped, keeping only its data's start
    /// and end. Returns it once its closing blank line went by; `None` when more bytes are
    /// needed (at most a field name's worth stays buffered).
    fn skip_lines(&mut self) -> Option<SkippedEvent> {
        let (skipped, at) = self.skipping.as_mut()?;
        let mut start = 0;
        let ended = loop {
            let rest = &self.buf[start..];
            let Some(rel) = memchr::memchr2(b'\n', b'\r', rest) else {
                match *at {
                    SkippedLine::Data => skipped.record(rest),
                    SkippedLine::Other => {}
                    SkippedLine::Start if memchr::memchr(b':', rest).is_some() => {
                        *at = skip_line_start(skipped, rest);
                    }
                    SkippedLine::Start if rest.len() > FIELD_NAME_MAX => *at = SkippedLine::Other,
                    // Too little to tell the field yet: keep these few bytes.
                    SkippedLine::Start => break false,
                }
                start = self.buf.len();
                break false;
            };
            let end = start + rel;
            let line = &rest[..rel];
            let eol_len = match (self.buf[end], self.buf.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    // A lone '\r' may be half of "\r\n": take the line's bytes, keep the '\r'.
                    match *at {
                        SkippedLine::Data => skipped.record(line),
                        SkippedLine::Other => {}
                        SkippedLine::Start if line.is_empty() => break false,
                        SkippedLine::Start => *at = skip_line_start(skipped, line),
                    }
                    start = end;
                    break false;
                }
                _ => 1,
            };
            start = end + eol_len;
            match std::mem::replace(at, SkippedLine::Start) {
                SkippedLine::Data => skipped.record(line),
                SkippedLine::Other => {}
                SkippedLine::Start if line.is_empty() => break true,
                SkippedLine::Start => {
                    skip_line_start(skipped, line);
                }
            }
        };
        self.buf.drain(..start);
        self.scanned = 0;
        if !ended {
            return None;
        }
        self.skipping.take().map(|(skipped, _)| skipped)
    }
}

/// Passes over the start of a line of a skipped event whose field is known: a `data` line's
/// value is recorded. Says what the rest of the line is.
fn skip_line_start(skipped: &mut SkippedEvent, line: &[u8]) -> SkippedLine {
    match line.strip_prefix(b"data:") {
        Some(v) => {
            skipped.record(v.strip_prefix(b" ").unwrap_or(v));
            SkippedLine::Data
        }
        None => SkippedLine::Other,
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
    fn events_over_the_limit_are_skipped_and_parsing_goes_on() {
        let big = format!(
            "{{\"result\":\"{}\",\"jsonrpc\":\"2.0\",\"id\":42}}",
            "x".repeat(5000)
        );
        let stream = format!(
            "event: message\r\ndata: {{\"a\":1}}\r\n\r\nevent: message\r\ndata: {big}\r\n\r\n: ping\n\ndata: two\ndata: {big}\n\nevent: message\ndata: {{\"b\":2}}\n\n"
        );
        let stream = stream.as_bytes();
        for step in [1, 7, 100, 4096, stream.len()] {
            let mut p = SseParser::new(1000);
            let mut got = Vec::new();
            for piece in stream.chunks(step) {
                p.push(piece);
                while let Some(item) = p.next_item() {
                    got.push(item);
                }
                assert!(
                    p.buf.len() <= 1000 + step,
                    "step {step}: buffered {}",
                    p.buf.len()
                );
            }
            assert_eq!(got.len(), 4, "step {step}: {got:?}");
            assert!(matches!(&got[0], SseItem::Event(e) if e.data == b"{\"a\":1}"));
            for (skipped, len) in [(&got[1], big.len()), (&got[2], big.len() + 4)] {
                let SseItem::TooLarge(s) = skipped else {
                    panic!("step {step}: {skipped:?}");
                };
                assert_eq!(s.len, len, "step {step}");
                assert!(
                    s.tail.ends_with(b",\"id\":42}"),
                    "step {step}: {:?}",
                    s.tail
                );
                assert_eq!(s.head.len(), SKIPPED_HEAD, "step {step}");
            }
            assert!(matches!(&got[3], SseItem::Event(e) if e.data == b"{\"b\":2}"));
        }
    }

    #[test]
    fn writes_events() {
        let mut out = Vec::new();
        write_event(&mut out, b"{\"x\":1}");
        assert_eq!(out, b"data: {\"x\":1}\n\n");
    }
}
