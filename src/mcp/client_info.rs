//! What a client says it is (`clientInfo.name` and `.version` at `initialize`, or in a
//! stateless request's `_meta`), cut short and kept inline: session tokens carry it (so any
//! core and any instance knows it without a session store) and audit records copy it without
//! an allocation.
//!
//! Owns: the length caps and the token encoding. Must never: trust the text for anything but
//! display (it is whatever the client sent).

use std::fmt;

use serde::Deserialize;

/// Bytes of the name kept; longer names are cut at a character boundary.
pub const MAX_NAME: usize = 32;
/// Bytes of the version kept.
pub const MAX_VERSION: usize = 16;
/// Most bytes [`ClientInfo::encode`] writes.
pub const MAX_ENCODED: usize = 2 + MAX_NAME + MAX_VERSION;

/// A client's declared name and version, each possibly empty.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    name_len: u8,
    version_len: u8,
    bytes: [u8; MAX_NAME + MAX_VERSION],
}

impl Default for ClientInfo {
    fn default() -> Self {
        ClientInfo {
            name_len: 0,
            version_len: 0,
            bytes: [0; MAX_NAME + MAX_VERSION],
        }
    }
}

/// The longest prefix of `s` within `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Deserialize)]
struct Declared<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    version: Option<std::borrow::Cow<'a, str>>,
}

impl ClientInfo {
    pub fn new(name: &str, version: &str) -> ClientInfo {
        let name = cut(name, MAX_NAME);
        let version = cut(version, MAX_VERSION);
        let mut info = ClientInfo {
            name_len: name.len() as u8,
            version_len: version.len() as u8,
            ..ClientInfo::default()
        };
        info.bytes[..name.len()].copy_from_slice(name.as_bytes());
        info.bytes[MAX_NAME..MAX_NAME + version.len()].copy_from_slice(version.as_bytes());
        info
    }

    /// Reads a `clientInfo` object (`{"name": …, "version": …}`); empty when it is not one.
    pub fn from_json(raw: &str) -> ClientInfo {
        match serde_json::from_str::<Declared<'_>>(raw) {
            Ok(d) => ClientInfo::new(
                d.name.as_deref().unwrap_or_default(),
                d.version.as_deref().unwrap_or_default(),
            ),
            Err(_) => ClientInfo::default(),
        }
    }

    pub fn name(&self) -> &str {
        let name = &self.bytes[..self.name_len as usize];
        // SAFETY: only `new` writes the fields (they are private), and it copies a `&str` cut
        // at a character boundary into exactly these bytes: they are UTF-8. (The audit log
        // reads both strings per record; checking them again cost more than the rest of it.)
        unsafe { std::str::from_utf8_unchecked(name) }
    }

    pub fn version(&self) -> &str {
        let version = &self.bytes[MAX_NAME..MAX_NAME + self.version_len as usize];
        // SAFETY: as in `name`, `new` wrote a `&str` cut at a character boundary here.
        unsafe { std::str::from_utf8_unchecked(version) }
    }

    pub fn is_empty(&self) -> bool {
        self.name_len == 0 && self.version_len == 0
    }

    /// Writes `[name length][name][version length][version]` to the start of `out` (which
    /// must hold [`MAX_ENCODED`] bytes); how many bytes were written.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let (name, version) = (self.name().as_bytes(), self.version().as_bytes());
        let total = 2 + name.len() + version.len();
        if out.len() < total {
            return 0;
        }
        out[0] = name.len() as u8;
        out[1..1 + name.len()].copy_from_slice(name);
        out[1 + name.len()] = version.len() as u8;
        out[2 + name.len()..total].copy_from_slice(version);
        total
    }

    /// Reads what [`ClientInfo::encode`] wrote at the start of `bytes`: the info and how many
    /// bytes it took; `None` when they are not a valid encoding.
    pub fn decode(bytes: &[u8]) -> Option<(ClientInfo, usize)> {
        let name_len = *bytes.first()? as usize;
        let name = bytes.get(1..1 + name_len)?;
        let version_len = *bytes.get(1 + name_len)? as usize;
        let version = bytes.get(2 + name_len..2 + name_len + version_len)?;
        if name_len > MAX_NAME || version_len > MAX_VERSION {
            return None;
        }
        let name = std::str::from_utf8(name).ok()?;
        let version = std::str::from_utf8(version).ok()?;
        Some((ClientInfo::new(name, version), 2 + name_len + version_len))
    }
}

impl fmt::Debug for ClientInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientInfo({:?}, {:?})", self.name(), self.version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_info_is_read_and_capped() {
        let info = ClientInfo::from_json(r#"{"name":"claude-code","version":"1.0.72","x":1}"#);
        assert_eq!((info.name(), info.version()), ("claude-code", "1.0.72"));
        let long = ClientInfo::new(&"é".repeat(40), "1.2.3-beta.4+build.567");
        assert_eq!(long.name(), "é".repeat(16), "cut on a character boundary");
        assert_eq!(long.version(), "1.2.3-beta.4+bui");
        assert!(ClientInfo::from_json("[1]").is_empty());
        assert!(ClientInfo::from_json(r#"{"name":5}"#).is_empty());
    }

    #[test]
    fn encoding_round_trips() {
        let mut buf = [0u8; MAX_ENCODED];
        for info in [
            ClientInfo::default(),
            ClientInfo::new("rmcp", "0.8"),
            ClientInfo::new(&"n".repeat(32), &"v".repeat(16)),
        ] {
            let n = info.encode(&mut buf);
            assert_eq!(ClientInfo::decode(&buf[..n]), Some((info, n)));
        }
        assert_eq!(ClientInfo::decode(&[3, b'a']), None);
        assert_eq!(ClientInfo::decode(&[1, 0xff, 0]), None, "not UTF-8");
        assert_eq!(ClientInfo::decode(&[33; 40]), None, "over the cap");
    }
}
