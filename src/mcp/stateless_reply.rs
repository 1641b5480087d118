//! How a reply to a stateless (2026-07-28) request differs from a handshake-era one: every
//! result names its `resultType`, list and read results carry cache hints, log messages reach
//! the client only at the level its request asked for, and requests from servers do not reach
//! it at all (that revision carries them as multi-round-trip input requests instead).
//!
//! Owns: those rules, applied to replies the gateway writes and to replies it splices from
//! upstreams. Must never: change or drop a member an upstream wrote (members are only added,
//! and only when the result does not already name them).

use crate::jsonrpc::RawJson;

use super::log_level::LOG_LEVELS;
use crate::jsonrpc::RawObject;

/// What a stateless request asked of the messages about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatelessTerms {
    /// Rank in [`LOG_LEVELS`] of `_meta["io.modelcontextprotocol/logLevel"]`; without it the
    /// client gets no log messages (the revision forbids them).
    pub log_level: Option<u8>,
    /// The result is one the revision makes cacheable (`…/list`, `resources/read`): it must
    /// carry `ttlMs` and `cacheScope`.
    pub cache_hints: bool,
}

/// The rank of a log level name, if it is one.
pub fn level_rank(name: &str) -> Option<u8> {
    LOG_LEVELS
        .iter()
        .position(|l| *l == name)
        .and_then(|i| u8::try_from(i).ok())
}

impl StatelessTerms {
    /// Whether a server's `notifications/message` with `params` may reach the client: only
    /// when it asked for a level and the message is at least that severe.
    pub fn wants_log(&self, params: Option<RawJson<'_>>) -> bool {
        let Some(wanted) = self.log_level else {
            return false;
        };
        let level = params
            .and_then(|p| RawObject::parse(p.get()).ok())
            .and_then(|obj| obj.get_str("level"))
            .and_then(|name| level_rank(&name));
        level.is_some_and(|rank| rank >= wanted)
    }

    /// Completes the reply written at `out[start..]` for the client's `id`: when it is a
    /// result, the members the revision requires are added to it.
    pub fn complete_reply(&self, out: &mut Vec<u8>, start: usize, id: &str) {
        add_result_members(out, start, id, self.members());
    }

    fn members(&self) -> &'static [(&'static str, &'static str)] {
        if self.cache_hints {
            &[
                ("resultType", r#""complete""#),
                ("ttlMs", "0"),
                ("cacheScope", r#""private""#),
            ]
        } else {
            &[("resultType", r#""complete""#)]
        }
    }
}

/// Adds `members` (key, raw JSON value) at the end of the `result` object of the reply at
/// `out[start..]`, as `write_result` wrote it for `id`. A key the result already contains
/// anywhere is left out: the revision tells clients to read an absent `resultType` as
/// complete, so leaving one out is safe where a duplicate key would not be. Error replies and
/// anything not shaped as a result are left alone.
fn add_result_members(out: &mut Vec<u8>, start: usize, id: &str, members: &[(&str, &str)]) {
    const HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    const RESULT: &[u8] = br#","result":{"#;
    let reply = &out[start..];
    let Some(rest) = reply.strip_prefix(HEAD) else {
        return;
    };
    let Some(rest) = rest.strip_prefix(id.as_bytes()) else {
        return;
    };
    if !rest.starts_with(RESULT) || !reply.ends_with(b"}}") {
        return;
    }
    // The result object spans from its `{` to the `}` before the envelope's last byte.
    let open = start + HEAD.len() + id.len() + RESULT.len() - 1;
    let close = out.len() - 2;
    let body = &out[open + 1..close];
    let mut empty = body.iter().all(u8::is_ascii_whitespace);
    let mut added = Vec::with_capacity(64);
    for (key, value) in members {
        let quoted = format!("\"{key}\"");
        if memchr::memmem::find(body, quoted.as_bytes()).is_some() {
            continue;
        }
        if !empty {
            added.push(b',');
        }
        empty = false;
        added.extend_from_slice(quoted.as_bytes());
        added.push(b':');
        added.extend_from_slice(value.as_bytes());
    }
    out.splice(close..close, added);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{write_error, write_result, ErrorCode};

    fn completed(terms: StatelessTerms, result: &str) -> String {
        let mut out = b"prefix".to_vec();
        write_result(&mut out, "7", result);
        terms.complete_reply(&mut out, 6, "7");
        String::from_utf8(out[6..].to_vec()).unwrap()
    }

    #[test]
    fn result_type_is_added_and_upstream_members_kept() {
        let plain = StatelessTerms::default();
        assert_eq!(
            completed(plain, r#"{"content":[ {"type":"text"} ]}"#),
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[ {"type":"text"} ],"resultType":"complete"}}"#
        );
        assert_eq!(
            completed(plain, "{ }"),
            r#"{"jsonrpc":"2.0","id":7,"result":{ "resultType":"complete"}}"#
        );
        assert_eq!(
            completed(plain, r#"{"resultType":"input_required"}"#),
            r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required"}}"#
        );
        let cached = StatelessTerms {
            cache_hints: true,
            ..StatelessTerms::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&completed(cached, r#"{"tools":[]}"#)).unwrap();
        assert_eq!(v["result"]["resultType"], "complete");
        assert_eq!(v["result"]["ttlMs"], 0);
        assert_eq!(v["result"]["cacheScope"], "private");
    }

    #[test]
    fn errors_are_left_alone() {
        let mut out = Vec::new();
        write_error(&mut out, "7", ErrorCode::InvalidParams, "nope");
        let before = out.clone();
        StatelessTerms::default().complete_reply(&mut out, 0, "7");
        assert_eq!(out, before);
    }

    #[test]
    fn log_messages_need_a_requested_level() {
        let params = |level: &str| format!(r#"{{"level":"{level}","data":"x"}}"#);
        let quiet = StatelessTerms::default();
        assert!(!quiet.wants_log(Some(RawJson::new(&params("emergency")))));
        let warning = StatelessTerms {
            log_level: level_rank("warning"),
            ..StatelessTerms::default()
        };
        assert!(warning.wants_log(Some(RawJson::new(&params("error")))));
        assert!(warning.wants_log(Some(RawJson::new(&params("warning")))));
        assert!(!warning.wants_log(Some(RawJson::new(&params("info")))));
        assert!(!warning.wants_log(None));
    }
}
