//! A strict JSON scanner for the hot path: it checks the grammar of RFC 8259 and reports where
//! values begin and end, without building them. Every message the gateway reads (a client's
//! request, an upstream's reply) goes through it once; the parts it forwards stay byte spans.
//!
//! Owns: JSON syntax, string unescaping, and the nesting limit. Must never: recurse (nesting
//! is a bit stack), allocate while scanning, or accept text serde_json refuses.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of arrays and objects accepted. serde_json skips values of any depth; a
/// limit keeps what the gateway forwards within what the servers behind it parse (many
/// recurse), and nothing an MCP client sends legitimately nests this deep.
pub const MAX_DEPTH: usize = 1024;

/// One bit per open container (1 object, 0 array), `MAX_DEPTH` bits on the stack.
struct Nesting {
    bits: [u64; MAX_DEPTH / 64],
    depth: usize,
}

impl Nesting {
    fn push(&mut self, object: bool) -> bool {
        if self.depth == MAX_DEPTH {
            return false;
        }
        let (word, bit) = (self.depth / 64, self.depth % 64);
        self.bits[word] = (self.bits[word] & !(1 << bit)) | (u64::from(object) << bit);
        self.depth += 1;
        true
    }

    fn pop(&mut self) {
        self.depth -= 1;
    }

    /// Whether the innermost open container is an object.
    fn in_object(&self) -> bool {
        let top = self.depth - 1;
        self.bits[top / 64] >> (top % 64) & 1 == 1
    }
}

/// What is wrong with the text, and the byte offset where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError {
    pub what: &'static str,
    pub at: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for SyntaxError {}

/// A JSON string as it appears in the text: the bytes between its quotes.
#[derive(Debug, Clone, Copy)]
pub struct JsonStr<'a> {
    /// Between the quotes, escapes not decoded.
    pub raw: &'a str,
    pub escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The string's value: borrowed when it has no escapes.
    pub fn decode(self) -> Result<Cow<'a, str>, SyntaxError> {
        if self.escaped {
            unescape(self.raw).map(Cow::Owned)
        } else {
            Ok(Cow::Borrowed(self.raw))
        }
    }
}

/// What a value starts with, for callers that care about its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// Byte classes inside a string: 0 plain ASCII, 1 quote, 2 backslash, 3 control, 4 non-ASCII.
const STRING_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 3;
        i += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 2;
    let mut i = 0x80;
    while i < 256 {
        t[i] = 4;
        i += 1;
    }
    t
};

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
/// The high bit of every byte of a word: set in the mask of a non-ASCII byte.
pub(crate) const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);

/// The eight bytes at `at`, as a little-endian word (the first byte lowest).
pub(crate) fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// High bits set on the bytes of `w` a JSON string must escape (the quote, the backslash,
/// control characters): exactly on the first such byte, perhaps on later ones too, never on
/// earlier ones. `(x - 1) & !x` sets the high bit of a zero byte, and a borrow only travels
/// upward, to later bytes; bytes below 0x20 alike with 0x20 subtracted.
pub(crate) fn escape_mask(w: u64) -> u64 {
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH_BITS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH_BITS;
    zero(w ^ QUOTES) | zero(w ^ BACKSLASHES) | control
}

/// The offset of the first flagged byte of a non-zero mask.
pub(crate) fn first_flagged(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// A cursor over JSON text.
pub struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Scanner { text, pos: 0 }
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, SyntaxError> {
        Err(SyntaxError { what, at: self.pos })
    }

    /// The next byte after whitespace, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.text.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Consumes `b` (after whitespace) or fails with `what`.
    pub fn expect(&mut self, b: u8, what: &'static str) -> Result<(), SyntaxError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(what)
        }
    }

    /// Succeeds when only whitespace is left.
    pub fn end(&mut self) -> Result<(), SyntaxError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("trailing characters"),
        }
    }

    /// The text of `start..end` as `str`, for spans the scanner itself found: whole values
    /// or the insides of strings.
    fn text_of(&self, start: usize, end: usize) -> &'a str {
        let span = &self.text[start..end];
        debug_assert!(std::str::from_utf8(span).is_ok());
        // SAFETY: outside strings the scanner accepts only ASCII bytes (structural characters,
        // literals, numbers, whitespace), and `string` checks that every string holding a
        // non-ASCII byte is valid UTF-8 before it returns. A span of whole values, or the
        // inside of a checked string, therefore starts and ends on character boundaries and
        // is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(span) }
    }

    /// The kind of the next value, not consumed.
    pub fn kind(&mut self) -> Result<Kind, SyntaxError> {
        Ok(match self.peek() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b'-' | b'0'..=b'9') => Kind::Number,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            Some(_) => return self.fail("expected value"),
            None => return self.fail("EOF while parsing a value"),
        })
    }

    /// Reads one string (after whitespace).
    pub fn string(&mut self) -> Result<JsonStr<'a>, SyntaxError> {
        if self.peek() != Some(b'"') {
            return self.fail("expected a string");
        }
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            self.skip_plain_ascii();
            let Some(&b) = self.text.get(self.pos) else {
                return self.fail("EOF while parsing a string");
            };
            match STRING_CLASS[b as usize] {
                0 => self.pos += 1,
                1 => break,
                2 => {
                    escaped = true;
                    self.escape()?;
                }
                3 => return self.fail("control character in a string"),
                _ => {
                    ascii = false;
                    self.pos += 1;
                }
            }
        }
        let end = self.pos;
        self.pos += 1;
        if !ascii {
            if let Err(e) = std::str::from_utf8(&self.text[start..end]) {
                return Err(SyntaxError {
                    what: "invalid UTF-8 in a string",
                    at: start + e.valid_up_to(),
                });
            }
        }
        Ok(JsonStr {
            raw: self.text_of(start, end),
            escaped,
        })
    }

    /// Skips, eight bytes at a time, string bytes that need no attention (ASCII other than
    /// the quote, the backslash and control characters), stopping on the first that does.
    fn skip_plain_ascii(&mut self) {
        while let Some(w) = word_at(self.text, self.pos) {
            let flagged = escape_mask(w) | (w & HIGH_BITS);
            if flagged != 0 {
                self.pos += first_flagged(flagged);
                return;
            }
            self.pos += 8;
        }
        while self
            .text
            .get(self.pos)
            .is_some_and(|&b| STRING_CLASS[b as usize] == 0)
        {
            self.pos += 1;
        }
    }

    /// Checks one escape sequence; `pos` is at its backslash.
    fn escape(&mut self) -> Result<(), SyntaxError> {
        self.pos += 1;
        match self.text.get(self.pos) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
            Some(b'u') => {
                let hex = self.text.get(self.pos + 1..self.pos + 5);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return self.fail("invalid \\u escape");
                }
                self.pos += 5;
            }
            Some(_) => return self.fail("invalid escape"),
            None => return self.fail("EOF while parsing a string"),
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let from = self.pos;
        while self.text.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - from
    }

    fn number(&mut self) -> Result<(), SyntaxError> {
        if self.text.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.text.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.fail("invalid number"),
        }
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        if matches!(self.text.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.text.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.fail("expected value")
        }
    }

    /// Skips one whole value (after whitespace) and returns its text.
    pub fn value(&mut self) -> Result<&'a str, SyntaxError> {
        self.peek();
        let start = self.pos;
        let mut open = Nesting {
            bits: [0; MAX_DEPTH / 64],
            depth: 0,
        };
        'value: loop {
            match self.kind()? {
                Kind::Object | Kind::Array => {
                    let object = self.text[self.pos] == b'{';
                    if !open.push(object) {
                        return self.fail("nesting too deep");
                    }
                    self.pos += 1;
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        open.pop();
                    } else {
                        if object {
                            self.member_key()?;
                        }
                        continue 'value;
                    }
                }
                Kind::String => {
                    self.string()?;
                }
                Kind::Number => self.number()?,
                Kind::Bool if self.text[self.pos] == b't' => self.literal(b"true")?,
                Kind::Bool => self.literal(b"false")?,
                Kind::Null => self.literal(b"null")?,
            }
            // After a value: close containers until one continues with a comma.
            loop {
                if open.depth == 0 {
                    return Ok(self.text_of(start, self.pos));
                }
                let object = open.in_object();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.member_key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    Some(_) if object => return self.fail("expected `,` or `}`"),
                    Some(_) => return self.fail("expected `,` or `]`"),
                    None => return self.fail("EOF while parsing a value"),
                }
                self.pos += 1;
                open.pop();
            }
        }
    }

    /// Reads `"key":` inside an object.
    fn member_key(&mut self) -> Result<JsonStr<'a>, SyntaxError> {
        if self.peek() != Some(b'"') {
            return self.fail("expected a member name");
        }
        let key = self.string()?;
        self.expect(b':', "expected `:`")?;
        Ok(key)
    }

    /// Walks an object's members (after whitespace): `member` gets each key and the scanner
    /// positioned at its value, and must consume that value.
    pub fn object<F>(&mut self, mut member: F) -> Result<(), SyntaxError>
    where
        F: FnMut(JsonStr<'a>, &mut Self) -> Result<(), SyntaxError>,
    {
        self.expect(b'{', "expected an object")?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.member_key()?;
            member(key, self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => return self.fail("expected `,` or `}`"),
                None => return self.fail("EOF while parsing an object"),
            }
        }
    }
}

/// Checks that `text` is exactly one JSON value (whitespace around it allowed).
pub fn validate(text: &[u8]) -> Result<(), SyntaxError> {
    let mut s = Scanner::new(text);
    s.value()?;
    s.end()
}

/// Decodes the escapes of a string's raw text (already checked by the scanner).
fn unescape(raw: &str) -> Result<String, SyntaxError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let bad = |what, at| Err(SyntaxError { what, at });
    while i < bytes.len() {
        let Some(next) = raw[i..].find('\\').map(|n| i + n) else {
            out.push_str(&raw[i..]);
            break;
        };
        out.push_str(&raw[i..next]);
        i = next + 1;
        let c = match bytes.get(i) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let first = hex4(raw, i + 1).ok_or(SyntaxError {
                    what: "invalid \\u escape",
                    at: i,
                })?;
                i += 4;
                match first {
                    0xD800..=0xDBFF => {
                        let low = match (bytes.get(i + 1), bytes.get(i + 2)) {
                            (Some(b'\\'), Some(b'u')) => hex4(raw, i + 3),
                            _ => None,
                        };
                        match low {
                            Some(low @ 0xDC00..=0xDFFF) => {
                                i += 6;
                                let c = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
                                char::from_u32(c).unwrap_or('\u{FFFD}')
                            }
                            _ => return bad("lone leading surrogate in hex escape", i),
                        }
                    }
                    0xDC00..=0xDFFF => return bad("lone trailing surrogate in hex escape", i),
                    c => char::from_u32(c).unwrap_or('\u{FFFD}'),
                }
            }
            _ => return bad("invalid escape", i),
        };
        out.push(c);
        i += 1;
    }
    Ok(out)
}

fn hex4(raw: &str, at: usize) -> Option<u32> {
    let digits = raw.get(at..at + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
