//! `logging/setLevel`: the client's level goes to every server that declared `logging`.
//!
//! Owns: the fan-out (all servers at once, each bounded by its own timeout) and the answer.
//! The level is advisory, so the answer is `{}` even when some servers fail; they are named in
//! a warning in the gateway's log. Must never: hold the reply for a server that did not declare
//! `logging` (it is not asked).

use crate::jsonrpc::RawJson;

use super::forward::reply_payload;
use crate::jsonrpc::{write_error, write_result, ErrorCode, RawObject};
use crate::registry::Access;
use crate::upstream::CallTiming;

const METHOD: &str = "logging/setLevel";

/// The severity names of `notifications/message` and `logging/setLevel`, least severe first
/// (RFC 5424 order).
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Sends the level to every server with the `logging` capability and answers `{}`.
pub async fn set_level(
    access: Access<'_>,
    params: Option<RawJson<'_>>,
    id: &str,
    out: &mut Vec<u8>,
) {
    let invalid = |out: &mut Vec<u8>, message: &str| {
        write_error(out, id, ErrorCode::InvalidParams, message);
    };
    let Some(params) = params else {
        return invalid(out, "Invalid params: logging/setLevel needs params");
    };
    let level = match RawObject::parse(params.get()) {
        Ok(obj) => obj.get_str("level").map(|l| l.into_owned()),
        Err(_) => return invalid(out, "Invalid params: expected an object"),
    };
    let Some(level) = level else {
        return invalid(out, "Invalid params: params.level must be a string");
    };
    // Only servers the caller reaches: a key must not change what other keys' servers log.
    let calls = access
        .snapshot()
        .servers
        .iter()
        .enumerate()
        .filter(|&(i, s)| {
            access.touches_server(i)
                && s.upstream
                    .initialize_info()
                    .is_some_and(|info| info.has_capability("logging"))
        })
        .map(|(_, s)| s)
        .map(|server| async move {
            let reply = server
                .upstream
                .request(
                    &server.name,
                    METHOD,
                    Some(params.get().as_bytes()),
                    server.timeout,
                    None,
                    &mut CallTiming::default(),
                )
                .await;
            let failure = match reply {
                Ok(reply) => match reply_payload(&reply) {
                    Some((false, _)) => None,
                    Some((true, error)) => Some(error.to_owned()),
                    None => Some("reply has neither result nor error".to_owned()),
                },
                Err(e) => Some(e.to_string()),
            };
            failure.map(|why| format!("{}: {why}", server.name))
        });
    let failures: Vec<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect();
    if !failures.is_empty() {
        tracing::warn!(level = %level, failed = ?failures, "logging/setLevel did not reach every server; answered the client anyway");
    }
    write_result(out, id, "{}");
}
