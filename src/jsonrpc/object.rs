//! A JSON object read member by member with every value kept raw, in its original order,
//! so one member can be replaced while every other byte passes through unchanged.

use std::borrow::Cow;

use super::envelope::RawJson;
use super::reply::write_json_str;
use super::scan::{JsonStr, Scanner, SyntaxError};

/// Members of a JSON object, keys and values as they appear in the text: a member written
/// back is copied, key and all, without being unescaped and escaped again.
#[derive(Debug)]
pub struct RawObject<'a> {
    members: Vec<(JsonStr<'a>, RawJson<'a>)>,
}

/// Whether a member's key, unescaped, is `key`.
fn key_is(k: JsonStr<'_>, key: &str) -> bool {
    if k.escaped {
        k.decode().is_ok_and(|d| d == key)
    } else {
        k.raw == key
    }
}

impl<'a> RawObject<'a> {
    pub fn parse(json: &'a str) -> Result<Self, SyntaxError> {
        let mut s = Scanner::new(json.as_bytes());
        let mut members = Vec::with_capacity(4);
        s.object(|key, s| {
            if key.escaped {
                // The scanner checks an escape's form; a lone surrogate shows only here.
                key.decode()?;
            }
            members.push((key, RawJson::new(s.value()?)));
            Ok(())
        })?;
        s.end()?;
        Ok(RawObject { members })
    }

    /// The members in order, keys unescaped.
    pub fn members(&self) -> impl Iterator<Item = (Cow<'a, str>, RawJson<'a>)> + '_ {
        // `parse` decoded every escaped key once already, so decoding cannot fail here.
        self.members
            .iter()
            .map(|(k, v)| (k.decode().unwrap_or_default(), *v))
    }

    pub fn get(&self, key: &str) -> Option<RawJson<'a>> {
        self.members
            .iter()
            .find(|(k, _)| key_is(*k, key))
            .map(|(_, v)| *v)
    }

    /// A member that must be a string, if present and one.
    pub fn get_str(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.get(key)?;
        Scanner::new(raw.get().as_bytes())
            .string()
            .ok()?
            .decode()
            .ok()
    }

    /// Writes the object with `key`'s value replaced by the JSON string `value` (or that
    /// member added first when absent). Other members are copied byte for byte.
    pub fn write_replacing(&self, out: &mut Vec<u8>, key: &str, value: &str) {
        self.write_with(out, key, |out| write_json_str(out, value));
    }

    /// Like [`Self::write_replacing`] with `value` raw JSON text (an object, say), written as
    /// is.
    pub fn write_replacing_raw(&self, out: &mut Vec<u8>, key: &str, value: &[u8]) {
        self.write_with(out, key, |out| out.extend_from_slice(value));
    }

    fn write_with(&self, out: &mut Vec<u8>, key: &str, value: impl FnOnce(&mut Vec<u8>)) {
        out.push(b'{');
        write_json_str(out, key);
        out.push(b':');
        value(out);
        for (k, v) in &self.members {
            if key_is(*k, key) {
                continue;
            }
            out.push(b',');
            out.push(b'"');
            out.extend_from_slice(k.raw.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(v.get().as_bytes());
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_one_member_and_keeps_the_rest_raw() {
        let src = r#"{"arguments": {"b": 1.0e3, "a": "\u00e9"}, "name": "srv__echo", "_meta": {"progressToken": 5}}"#;
        let obj = RawObject::parse(src).unwrap();
        assert_eq!(obj.get_str("name").as_deref(), Some("srv__echo"));
        let mut out = Vec::new();
        obj.write_replacing(&mut out, "name", "echo");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"name":"echo","arguments":{"b": 1.0e3, "a": "\u00e9"},"_meta":{"progressToken": 5}}"#
        );
    }

    #[test]
    fn replaces_one_member_with_raw_json() {
        let obj =
            RawObject::parse(r#"{"argument":{"name":"a"},"ref":{"type":"ref/prompt"}}"#).unwrap();
        let mut out = Vec::new();
        obj.write_replacing_raw(&mut out, "ref", br#"{"type":"ref/prompt","name":"p"}"#);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a"}}"#
        );
    }

    #[test]
    fn refuses_non_objects() {
        assert!(RawObject::parse("[1]").is_err());
        assert!(RawObject::parse("{\"a\":").is_err());
    }

    #[test]
    fn escaped_keys_are_unescaped() {
        let obj = RawObject::parse(r#"{"n\u0061me": "x", "\u00e9t\"e": 1}"#).unwrap();
        assert_eq!(obj.get_str("name").as_deref(), Some("x"));
        assert_eq!(obj.get("ét\"e").map(RawJson::get), Some("1"));
        // Replaced under its unescaped name; the other key is copied as it was written.
        let mut out = Vec::new();
        obj.write_replacing(&mut out, "name", "y");
        assert_eq!(out, br#"{"name":"y","\u00e9t\"e":1}"#);
    }

    #[test]
    fn keys_with_lone_surrogates_are_refused() {
        assert!(RawObject::parse(r#"{"\ud800": 1}"#).is_err());
    }
}
