//! Redaction of recorded arguments: every member whose name is in `audit.redact`, at any
//! depth, gets the value `"[redacted]"`. Runs on the log thread.
//!
//! Names match without regard to case, `-` or `_`: `apiKey`, `api-key` and `API_KEY` are all
//! `api_key`. Owns: that matching. Must never: let a redacted value through in any form (the
//! whole value is replaced, whatever its type).

use std::collections::HashSet;

use serde_json::Value;

/// What a redacted value becomes.
pub const REDACTED: &str = "[redacted]";

pub struct Redactor {
    names: HashSet<String>,
}

fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

impl Redactor {
    pub fn new(names: &[String]) -> Redactor {
        Redactor {
            names: names.iter().map(|n| normalized(n)).collect(),
        }
    }

    fn hides(&self, name: &str) -> bool {
        self.names.contains(&normalized(name))
    }

    fn walk(&self, value: &mut Value) {
        match value {
            Value::Object(members) => {
                for (name, member) in members.iter_mut() {
                    if self.hides(name) {
                        *member = Value::String(REDACTED.to_owned());
                    } else {
                        self.walk(member);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.walk(item)),
            _ => {}
        }
    }

    /// `raw` JSON with the named members' values replaced, as JSON text. Text that is not
    /// JSON (it cannot be: it came from a parsed request) is not passed on.
    pub fn redact(&self, raw: &str) -> String {
        match serde_json::from_str::<Value>(raw) {
            Ok(mut value) => {
                self.walk(&mut value);
                value.to_string()
            }
            Err(_) => format!("\"{REDACTED}: not JSON\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_REDACT;

    fn defaults() -> Redactor {
        let names: Vec<String> = DEFAULT_REDACT.iter().map(|s| (*s).to_owned()).collect();
        Redactor::new(&names)
    }

    #[test]
    fn named_members_are_redacted_at_any_depth() {
        let out = defaults().redact(
            r#"{"query":"x","password":"hunter2","nested":{"apiKey":{"v":1},
                "list":[{"Access-Token":"t0k","keep":2}],"AUTHORIZATION":["Bearer a"]}}"#,
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["query"], "x");
        assert_eq!(v["password"], REDACTED);
        assert_eq!(
            v["nested"]["apiKey"], REDACTED,
            "the whole value, whatever its type"
        );
        assert_eq!(v["nested"]["list"][0]["Access-Token"], REDACTED);
        assert_eq!(v["nested"]["list"][0]["keep"], 2);
        assert_eq!(v["nested"]["AUTHORIZATION"], REDACTED);
        for secret in ["hunter2", "t0k", "Bearer a"] {
            assert!(!out.contains(secret), "{out}");
        }
    }

    #[test]
    fn configured_names_replace_the_defaults() {
        let r = Redactor::new(&["pin".to_owned()]);
        let v: Value = serde_json::from_str(&r.redact(r#"{"pin":1234,"password":"p"}"#)).unwrap();
        assert_eq!(v["pin"], REDACTED);
        assert_eq!(v["password"], "p");
        assert_eq!(r.redact("[1,2]"), "[1,2]");
    }
}
