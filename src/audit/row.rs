//! The SQLite store's compact form of a batch of audit records. Each record is a JSON array
//! of its values in the order of [`FIELDS`], except that the time is microseconds after the
//! batch's base time, and the short strings that repeat from call to call (key, group, session,
//! client name and version, method, server, tool, outcome) are indexes into the batch's own
//! list of strings, each written once per batch.
//!
//! Why: what the store costs the log thread is mostly the kernel's work for the pages it
//! writes (twice: the write-ahead log, then the checkpoint), so it grows with the bytes per
//! record. An object with its field names takes ~330 bytes; a row of repeated strings ~140;
//! this form ~60 (see `perf/RESULTS.md`). The store's `audit` view decodes it, so SQL readers
//! see named columns and never this form.
//!
//! Owns: the encoding of a batch. Must never: run on a worker core.

use std::collections::HashMap;

use super::entry::{EntryForm, EntryWriter};
use super::record::AuditRecord;
use crate::jsonrpc::write_json_str;

#[cfg(doc)]
use super::entry::FIELDS;

/// One batch being encoded: its base time, its strings, its rows. Kept between batches, so
/// its buffers are allocated once.
pub struct RowBatch {
    /// The first record's time; the others are written relative to it.
    base_us: Option<u64>,
    /// Each string written so far and its index.
    index: HashMap<Box<str>, u32, ahash::RandomState>,
    /// The JSON array of the strings, in index order (not yet closed).
    strings: Vec<u8>,
    /// The JSON array of the rows (not yet closed).
    rows: Vec<u8>,
    len: usize,
}

impl Default for RowBatch {
    fn default() -> Self {
        let mut batch = RowBatch {
            base_us: None,
            index: HashMap::default(),
            strings: Vec::new(),
            rows: Vec::new(),
            len: 0,
        };
        batch.clear();
        batch
    }
}

/// The parts of a finished batch, as the store inserts them.
pub struct EncodedBatch<'a> {
    pub base_us: i64,
    pub strings: &'a [u8],
    pub rows: &'a [u8],
}

impl RowBatch {
    pub fn clear(&mut self) {
        self.base_us = None;
        self.index.clear();
        self.strings.clear();
        self.strings.push(b'[');
        self.rows.clear();
        self.rows.push(b'[');
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, writer: &EntryWriter, record: &AuditRecord) {
        if self.len > 0 {
            self.rows.push(b',');
        }
        let base_us = *self.base_us.get_or_insert(record.at_micros);
        let mut form = RowForm {
            base_us,
            index: &mut self.index,
            strings: &mut self.strings,
            out: &mut self.rows,
        };
        writer.append(&mut form, record);
        self.len += 1;
    }

    /// Closes the arrays; push nothing more before [`RowBatch::clear`].
    pub fn finish(&mut self) -> EncodedBatch<'_> {
        self.strings.push(b']');
        self.rows.push(b']');
        EncodedBatch {
            base_us: i64::try_from(self.base_us.unwrap_or(0)).unwrap_or(i64::MAX),
            strings: &self.strings,
            rows: &self.rows,
        }
    }
}

struct RowForm<'a> {
    base_us: u64,
    index: &'a mut HashMap<Box<str>, u32, ahash::RandomState>,
    strings: &'a mut Vec<u8>,
    out: &'a mut Vec<u8>,
}

impl EntryForm for RowForm<'_> {
    #[inline(always)]
    fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    #[inline(always)]
    fn field(&mut self, index: usize) {
        self.out.push(if index == 0 { b'[' } else { b',' });
    }

    #[inline(always)]
    fn time(&mut self, at_micros: u64) {
        // A record may be older than the batch's first (a long call finishes after a short
        // one that began later): the offset is signed.
        let offset = at_micros as i128 - self.base_us as i128;
        let offset = i64::try_from(offset).unwrap_or(0);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
    }

    #[inline(always)]
    fn name(&mut self, value: Option<&str>) {
        let Some(text) = value else {
            self.out.extend_from_slice(b"null");
            return;
        };
        let index = match self.index.get(text) {
            Some(&i) => i,
            None => {
                let i = self.index.len() as u32;
                if i > 0 {
                    self.strings.push(b',');
                }
                write_json_str(self.strings, text);
                self.index.insert(text.into(), i);
                i
            }
        };
        self.out
            .extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
    }

    #[inline(always)]
    fn end(&mut self) {
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::tests::sample;
    use crate::audit::entry::FIELDS;
    use crate::audit::redact::Redactor;

    #[test]
    fn rows_refer_to_strings_written_once() {
        let writer = EntryWriter::new(Redactor::new(&[]));
        let mut batch = RowBatch::default();
        let mut later = sample();
        later.at_micros += 250;
        let mut earlier = sample();
        earlier.at_micros -= 40;
        earlier.server = None;
        for record in [&sample(), &later, &earlier] {
            batch.push(&writer, record);
        }
        assert_eq!(batch.len(), 3);
        let done = batch.finish();
        assert_eq!(done.base_us as u64, sample().at_micros);
        let strings: Vec<String> = serde_json::from_slice(done.strings).unwrap();
        let rows: Vec<Vec<serde_json::Value>> = serde_json::from_slice(done.rows).unwrap();
        // Each distinct string once, in first-use order.
        let mut distinct = strings.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), strings.len(), "{strings:?}");
        assert_eq!(rows[0].len(), FIELDS.len());
        let offsets: Vec<i64> = rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
        assert_eq!(offsets, [0, 250, -40]);
        let name = |row: &[serde_json::Value], i: usize| {
            row[i].as_u64().map(|n| strings[n as usize].as_str())
        };
        assert_eq!(name(&rows[0], 1), Some("eng"));
        assert_eq!(name(&rows[0], 3), Some("deadbeef00010203"));
        assert_eq!(name(&rows[1], 7), Some("mock"));
        assert_eq!(name(&rows[2], 7), None, "an absent server is null");
        assert_eq!(name(&rows[0], 6), Some("tools/call"));
        assert_eq!(rows[0][11], 200_345, "numbers are inline");
    }

    #[test]
    fn a_cleared_batch_starts_afresh() {
        let writer = EntryWriter::new(Redactor::new(&[]));
        let mut batch = RowBatch::default();
        batch.push(&writer, &sample());
        let first = batch.finish().rows.to_vec();
        batch.clear();
        assert!(batch.is_empty());
        batch.push(&writer, &sample());
        assert_eq!(batch.finish().rows, first.as_slice());
    }
}
