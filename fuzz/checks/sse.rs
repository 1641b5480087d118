//! The SSE parser that reads upstream replies and streams.
//!
//! Events stay within the size limit, reports of skipped ones keep only their bounded start
//! and end, and (while nothing is skipped) the events do not depend on how the stream was
//! split into reads.

use mcpgate::http::sse::{SseItem, SseParser};

/// Mirrors the parser's private bounds on what a skipped event keeps.
const SKIPPED_HEAD: usize = 4096;
const SKIPPED_TAIL: usize = 256;

pub fn check(data: &[u8]) {
    for max_event in [16, 1 << 20] {
        let whole = items(data, max_event, data.len().max(1));
        for step in [1, 3, 64] {
            let split = items(data, max_event, step);
            let skipped =
                |items: &[SseItem]| items.iter().any(|i| matches!(i, SseItem::TooLarge(_)));
            if !skipped(&whole) && !skipped(&split) {
                assert_eq!(whole, split, "reads of {step} bytes changed the events");
            }
        }
        strict(data, max_event);
    }
}

/// Every item, pushing `step` bytes at a time and draining after each push.
fn items(data: &[u8], max_event: usize, step: usize) -> Vec<SseItem> {
    let mut parser = SseParser::new(max_event);
    let mut out = Vec::new();
    for piece in data.chunks(step) {
        parser.push(piece);
        while let Some(item) = parser.next_item() {
            match &item {
                SseItem::Event(e) => assert!(e.data.len() <= max_event, "event over the limit"),
                SseItem::TooLarge(s) => {
                    assert!(s.head.len() <= SKIPPED_HEAD && s.tail.len() <= SKIPPED_TAIL);
                    assert!(s.head.len() <= s.len && s.tail.len() <= s.len);
                }
            }
            out.push(item);
        }
    }
    out
}

/// `next_event`, which ends the stream at the first event over the limit.
fn strict(data: &[u8], max_event: usize) {
    let mut parser = SseParser::new(max_event);
    for piece in data.chunks(11) {
        parser.push(piece);
        loop {
            match parser.next_event() {
                Ok(Some(e)) => assert!(e.data.len() <= max_event),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
