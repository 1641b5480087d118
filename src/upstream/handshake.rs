//! The MCP lifecycle handshake the gateway performs as a client of each upstream.

use serde::Deserialize;

use crate::jsonrpc::Envelope;
use serde_json::value::RawValue;

/// The newest protocol revision the gateway speaks to upstreams; servers may answer older.
pub const UPSTREAM_PROTOCOL_VERSION: &str = "2025-11-25";

/// Revisions the gateway accepts from an upstream's `initialize` result.
pub const SUPPORTED_UPSTREAM_VERSIONS: &[&str] =
    &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// What an upstream said about itself in its `initialize` result.
#[derive(Debug, Clone)]
pub struct InitializeInfo {
    pub protocol_version: String,
    /// The whole `result` object, kept raw (capabilities, serverInfo, instructions).
    pub result: Box<RawValue>,
}

impl InitializeInfo {
    /// Whether the server declared `capability` (e.g. "prompts") in its `initialize` result.
    pub fn has_capability(&self, capability: &str) -> bool {
        let Ok(result) = crate::jsonrpc::RawObject::parse(self.result.get()) else {
            return false;
        };
        let Some(caps) = result.get("capabilities") else {
            return false;
        };
        crate::jsonrpc::RawObject::parse(caps.get()).is_ok_and(|c| c.get(capability).is_some())
    }
}

/// What the gateway declares to servers: it relays these requests to the client whose call
/// caused them (and refuses them for a client that did not declare the same).
const GATEWAY_CLIENT_CAPABILITIES: &str = r#"{"sampling":{},"elicitation":{},"roots":{}}"#;

/// The `initialize` request the gateway sends, with the given JSON-RPC id.
pub fn initialize_request(id: u64) -> Vec<u8> {
    initialize_request_with(id, "mcpgate", GATEWAY_CLIENT_CAPABILITIES)
}

/// An `initialize` request from a client called `client_name` that declares no capabilities
/// (the load generator reuses it).
pub fn initialize_request_as(id: u64, client_name: &str) -> Vec<u8> {
    initialize_request_with(id, client_name, "{}")
}

fn initialize_request_with(id: u64, client_name: &str, capabilities: &str) -> Vec<u8> {
    let mut out = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{UPSTREAM_PROTOCOL_VERSION}","capabilities":{capabilities},"clientInfo":{{"name":"#
    )
    .into_bytes();
    let _ = serde_json::to_writer(&mut out, client_name);
    out.extend_from_slice(br#","version":""#);
    out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(br#""}}}"#);
    out
}

/// The notification that completes the handshake.
pub const INITIALIZED_NOTIFICATION: &[u8] =
    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

#[derive(Deserialize)]
struct ResultHead<'a> {
    #[serde(rename = "protocolVersion", borrow)]
    protocol_version: Option<&'a str>,
}

/// Reads an upstream's reply to `initialize`. The error string says what was wrong,
/// for the server's status and the log.
pub fn parse_initialize_reply(message: &[u8]) -> Result<InitializeInfo, String> {
    let env =
        Envelope::decode(message).map_err(|e| format!("initialize reply is not JSON-RPC: {e}"))?;
    if let Some(err) = env.error {
        return Err(format!("initialize was refused: {}", err.get()));
    }
    let result = env
        .result
        .ok_or("initialize reply has neither result nor error")?;
    let head: ResultHead<'_> = serde_json::from_str(result.get())
        .map_err(|e| format!("initialize result is not an object: {e}"))?;
    let version = head
        .protocol_version
        .ok_or("initialize result has no protocolVersion")?;
    if !SUPPORTED_UPSTREAM_VERSIONS.contains(&version) {
        return Err(format!(
            "server answered unsupported protocol version {version:?}"
        ));
    }
    Ok(InitializeInfo {
        protocol_version: version.to_owned(),
        result: RawValue::from_string(result.get().to_owned())
            .map_err(|e| format!("initialize result is not JSON: {e}"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_request_is_valid_json() {
        let v: serde_json::Value = serde_json::from_slice(&initialize_request(7)).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["params"]["protocolVersion"], UPSTREAM_PROTOCOL_VERSION);
    }

    #[test]
    fn capabilities_are_read_from_the_result() {
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"prompts":{"listChanged":true}}}}"#;
        let info = parse_initialize_reply(ok).unwrap();
        assert!(info.has_capability("prompts") && info.has_capability("tools"));
        assert!(!info.has_capability("resources"));
    }

    #[test]
    fn parses_result_and_refusal() {
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}}}}"#;
        assert_eq!(
            parse_initialize_reply(ok).unwrap().protocol_version,
            "2025-06-18"
        );
        let bad = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"no"}}"#;
        assert!(parse_initialize_reply(bad).unwrap_err().contains("refused"));
        let old = br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"1999-01-01"}}"#;
        assert!(parse_initialize_reply(old)
            .unwrap_err()
            .contains("unsupported"));
    }
}
