//! A JSON object read member by member with every value kept raw, in its original order,
//! so one member can be replaced while every other byte passes through unchanged.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Members of a JSON object, values raw. Keys are unescaped (`Cow` borrows when they
/// contained no escapes).
#[derive(Debug)]
pub struct RawObject<'a> {
    pub members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    pub fn parse(json: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// A member that must be a string, if present and one.
    pub fn get_str(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.get(key)?;
        serde_json::from_str::<Cow<'a, str>>(raw.get()).ok()
    }

    /// Writes the object with `key`'s value replaced by the JSON string `value` (or that
    /// member added first when absent). Other members are copied byte for byte.
    pub fn write_replacing(&self, out: &mut Vec<u8>, key: &str, value: &str) {
        self.write_with(out, key, |out| {
            let _ = serde_json::to_writer(out, value);
        });
    }

    /// Like [`Self::write_replacing`] with `value` raw JSON text (an object, say), written as
    /// is.
    pub fn write_replacing_raw(&self, out: &mut Vec<u8>, key: &str, value: &[u8]) {
        self.write_with(out, key, |out| out.extend_from_slice(value));
    }

    fn write_with(&self, out: &mut Vec<u8>, key: &str, value: impl FnOnce(&mut Vec<u8>)) {
        out.push(b'{');
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        value(out);
        for (k, v) in &self.members {
            if k == key {
                continue;
            }
            out.push(b',');
            let _ = serde_json::to_writer(&mut *out, k.as_ref());
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
        }
        out.push(b'}');
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(RawObject { members })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
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
        let obj = RawObject::parse(r#"{"n\u0061me": "x"}"#).unwrap();
        assert_eq!(obj.get_str("name").as_deref(), Some("x"));
    }
}
