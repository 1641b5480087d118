//! Percent-decoding of URL parts (RFC 3986 §2.1) for the few places that read them: the admin
//! API's path segments and query strings.
//!
//! Owns: `%XX` escapes and, in form-encoded query strings, `+` as a space. Must never: accept a
//! broken escape or produce text that is not UTF-8.

/// What a `+` means in the text being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    /// In a path segment, `+` is itself.
    Literal,
    /// In an `application/x-www-form-urlencoded` query string, `+` is a space.
    Space,
}

/// Decodes `%XX` escapes (and `+` as `plus` says); `None` for a broken escape or bytes that are
/// not UTF-8.
pub fn percent_decode(text: &str, plus: Plus) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus == Plus::Space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_plus() {
        assert_eq!(
            percent_decode("a%20b%2Fc", Plus::Literal).as_deref(),
            Some("a b/c")
        );
        assert_eq!(percent_decode("a+b", Plus::Literal).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("a+b", Plus::Space).as_deref(), Some("a b"));
        assert_eq!(percent_decode("%C3%A9", Plus::Space).as_deref(), Some("é"));
        for broken in ["%zz", "%4", "%", "%+1", "%ff"] {
            assert_eq!(percent_decode(broken, Plus::Space), None, "{broken}");
        }
    }
}
