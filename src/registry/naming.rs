//! How upstream tool and prompt names, and resource URIs, become what clients see.
//!
//! Exposed names obey `^[A-Za-z0-9_.-]{1,64}$`, the pattern strict clients enforce. Anything
//! else is replaced by `_`; a name over 64 bytes is cut and given a short hash of the full
//! original so it stays unique and stable across restarts.

use sha2::{Digest, Sha256};

use crate::config::PrefixMode;

/// Longest exposed name.
pub const MAX_NAME: usize = 64;
/// Separator between server and tool in prefixed names.
pub const SEPARATOR: &str = "__";

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Replaces every byte outside the allowed set with `_` (a multi-byte character becomes one `_`).
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii() && allowed(c as u8) {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// 8 hex digits identifying `(server, tool)`; used for shortening and disambiguation.
pub fn short_hash(server: &str, tool: &str) -> String {
    let mut h = Sha256::new();
    h.update(server.as_bytes());
    h.update([0u8]);
    h.update(tool.as_bytes());
    let d = h.finalize();
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Cuts `name` to fit with `_<hash>` appended.
pub fn with_hash_suffix(name: &str, server: &str, tool: &str) -> String {
    let hash = short_hash(server, tool);
    let keep = MAX_NAME - hash.len() - 1;
    let cut = &name[..name.len().min(keep)];
    format!("{cut}_{hash}")
}

/// Whether an item gets its server's prefix under `mode`; `shared`: another server publishes
/// the same name or URI.
fn is_prefixed(mode: PrefixMode, shared: bool) -> bool {
    match mode {
        PrefixMode::Always => true,
        PrefixMode::OnConflict => shared,
        PrefixMode::Never => false,
    }
}

/// The name for `tool` of `server` under `mode`; `shared` says whether another server
/// publishes the same tool name (only `on_conflict` looks at it).
pub fn exposed_name(mode: PrefixMode, server: &str, tool: &str, shared: bool) -> String {
    let prefixed = is_prefixed(mode, shared);
    let raw = if prefixed {
        format!("{}{SEPARATOR}{}", sanitize(server), sanitize(tool))
    } else {
        sanitize(tool)
    };
    if raw.len() > MAX_NAME {
        with_hash_suffix(&raw, server, tool)
    } else {
        raw
    }
}

/// Scheme of the URIs under which a server's resources are exposed with its prefix.
pub const URI_SCHEME: &str = "mcpgate://";

/// The authority that names `server` in `mcpgate://<server>/…`: the name itself when it
/// consists of RFC 3986 unreserved characters (as server names normally do), otherwise with
/// every other byte percent-encoded so the URI stays parseable.
pub fn uri_authority(server: &str) -> String {
    let mut out = String::with_capacity(server.len());
    for b in server.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URI for resource (or template) `original` of `server` under `mode`: prefixed it is
/// `mcpgate://<server>/<original>` with the original appended verbatim; `shared` says whether
/// another server lists the same URI (only `on_conflict` looks at it).
pub fn exposed_uri(mode: PrefixMode, server: &str, original: &str, shared: bool) -> String {
    let prefixed = is_prefixed(mode, shared);
    if prefixed {
        format!("{URI_SCHEME}{}/{original}", uri_authority(server))
    } else {
        original.to_owned()
    }
}

/// Whether `name` is a valid exposed name.
pub fn is_valid(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_modes() {
        assert_eq!(
            exposed_name(PrefixMode::Always, "fs", "read", false),
            "fs__read"
        );
        assert_eq!(
            exposed_name(PrefixMode::OnConflict, "fs", "read", false),
            "read"
        );
        assert_eq!(
            exposed_name(PrefixMode::OnConflict, "fs", "read", true),
            "fs__read"
        );
        assert_eq!(exposed_name(PrefixMode::Never, "fs", "read", true), "read");
    }

    #[test]
    fn uris_are_prefixed_verbatim() {
        let uri = "demo://resource/static/document/a%20b.md";
        assert_eq!(
            exposed_uri(PrefixMode::Always, "docs", uri, false),
            "mcpgate://docs/demo://resource/static/document/a%20b.md"
        );
        assert_eq!(exposed_uri(PrefixMode::Never, "docs", uri, true), uri);
        assert_eq!(exposed_uri(PrefixMode::OnConflict, "docs", uri, false), uri);
        assert_eq!(
            exposed_uri(PrefixMode::OnConflict, "docs", "file:///{path}", true),
            "mcpgate://docs/file:///{path}"
        );
        assert_eq!(uri_authority("my server/é"), "my%20server%2F%C3%A9");
    }

    #[test]
    fn names_are_sanitized_and_bounded() {
        assert_eq!(
            exposed_name(PrefixMode::Always, "my server", "get/thing é", false),
            "my_server__get_thing__"
        );
        let long = "t".repeat(100);
        let a = exposed_name(PrefixMode::Always, "srv", &long, false);
        let b = exposed_name(PrefixMode::Always, "srv", &format!("{long}x"), false);
        assert!(is_valid(&a) && is_valid(&b));
        assert_eq!(a.len(), MAX_NAME);
        assert_ne!(a, b, "different long names stay distinct");
        assert_eq!(
            a,
            exposed_name(PrefixMode::Always, "srv", &long, false),
            "deterministic"
        );
    }
}
