//! Incremental decoding of `Transfer-Encoding: chunked` bodies (sans I/O), used for request
//! bodies from clients and reply bodies from upstreams.

/// Where the decoder is inside the chunked stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(usize),
    DataEnd,
    Trailers,
    Done,
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    Malformed,
    TooLarge,
}

/// Decodes chunks from a byte buffer into `out`, remembering where it stopped.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    limit: usize,
}

/// Longest chunk-size line (hex digits plus extensions) accepted.
const MAX_SIZE_LINE: usize = 1024;

impl ChunkedDecoder {
    pub fn new(limit: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            limit,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes as much of `input` as possible, appending data to `out`. Returns how many
    /// input bytes were consumed; call again with more input until `is_done`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkedError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok(pos),
                State::Size => {
                    let rest = &input[pos..];
                    let Some(nl) = line_end(rest)? else {
                        return Ok(pos);
                    };
                    let line = rest[..nl]
                        .strip_suffix(b"\r")
                        .ok_or(ChunkedError::Malformed)?;
                    let digits = match memchr::memchr(b';', line) {
                        Some(semi) => &line[..semi],
                        None => line,
                    };
                    let size = parse_hex(digits.trim_ascii()).ok_or(ChunkedError::Malformed)?;
                    pos += nl + 1;
                    if size == 0 {
                        self.state = State::Trailers;
                    } else {
                        if out.len().saturating_add(size) > self.limit {
                            return Err(ChunkedError::TooLarge);
                        }
                        self.state = State::Data(size);
                    }
                }
                State::Data(left) => {
                    let take = left.min(input.len() - pos);
                    if take == 0 {
                        return Ok(pos);
                    }
                    out.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    self.state = if take == left {
                        State::DataEnd
                    } else {
                        State::Data(left - take)
                    };
                }
                State::DataEnd => {
                    let rest = &input[pos..];
                    if rest.len() < 2 {
                        if rest.first().is_some_and(|&b| b != b'\r') {
                            return Err(ChunkedError::Malformed);
                        }
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(ChunkedError::Malformed);
                    }
                    pos += 2;
                    self.state = State::Size;
                }
                State::Trailers => {
                    // Trailer fields are ignored; the body ends at the first empty line.
                    let rest = &input[pos..];
                    let Some(nl) = line_end(rest)? else {
                        return Ok(pos);
                    };
                    let line = &rest[..nl];
                    pos += nl + 1;
                    if line == b"\r" || line.is_empty() {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

/// Where the line at the start of `rest` ends (its '\n'), `None` if it has not arrived yet.
/// A line longer than [`MAX_SIZE_LINE`] is refused whether or not its end is in `rest`, so
/// the verdict does not depend on how the bytes were split into reads.
fn line_end(rest: &[u8]) -> Result<Option<usize>, ChunkedError> {
    match memchr::memchr(b'\n', &rest[..rest.len().min(MAX_SIZE_LINE + 1)]) {
        Some(nl) => Ok(Some(nl)),
        None if rest.len() > MAX_SIZE_LINE => Err(ChunkedError::Malformed),
        None => Ok(None),
    }
}

fn parse_hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0usize, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some(acc * 16 + d as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_in_any_split() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for split in 0..body.len() {
            let mut dec = ChunkedDecoder::new(1 << 20);
            let mut out = Vec::new();
            let mut buf = body[..split].to_vec();
            let used = dec.decode(&buf, &mut out).unwrap();
            buf.drain(..used);
            buf.extend_from_slice(&body[split..]);
            let used = dec.decode(&buf, &mut out).unwrap();
            assert!(dec.is_done(), "split {split}");
            assert_eq!(out, b"Wikipedia");
            assert_eq!(&buf[used..], b"NEXT");
        }
    }

    /// The split-independence property of the `http_head` fuzz target showed this (on an
    /// input written for it; the fuzzer's runs had not reached lines that long): a size line
    /// or trailer over the limit was accepted when its end came in the same read and refused
    /// when it came later.
    #[test]
    fn long_lines_are_refused_however_they_arrive() {
        let ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "a".repeat(MAX_SIZE_LINE));
        let trailer = format!("1\r\nx\r\n0\r\nT: {}\r\n\r\n", "a".repeat(MAX_SIZE_LINE));
        for body in [ext, trailer] {
            let mut out = Vec::new();
            assert_eq!(
                ChunkedDecoder::new(1 << 20).decode(body.as_bytes(), &mut out),
                Err(ChunkedError::Malformed)
            );
        }
        // A line of exactly the limit is still fine.
        let ok = format!("1;{}\r\nx\r\n0\r\n\r\n", "a".repeat(MAX_SIZE_LINE - 3));
        let mut dec = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        assert_eq!(dec.decode(ok.as_bytes(), &mut out), Ok(ok.len()));
        assert!(dec.is_done());
    }

    #[test]
    fn refuses_bad_and_big() {
        let mut out = Vec::new();
        assert_eq!(
            ChunkedDecoder::new(100).decode(b"zz\r\n", &mut out),
            Err(ChunkedError::Malformed)
        );
        assert_eq!(
            ChunkedDecoder::new(3).decode(b"4\r\nWiki\r\n", &mut out),
            Err(ChunkedError::TooLarge)
        );
        assert_eq!(
            ChunkedDecoder::new(100).decode(b"1\r\nab\r\n", &mut out),
            Err(ChunkedError::Malformed)
        );
        assert_eq!(
            ChunkedDecoder::new(100).decode(&[b'1'; 2000], &mut out),
            Err(ChunkedError::Malformed)
        );
    }
}
