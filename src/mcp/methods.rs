//! The JSON-RPC methods the gateway answers itself: the lifecycle, `ping`, and the `…/list`
//! pages precomputed in the registry snapshot.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::server_requests::ClientCapability;
use super::session::SessionKeys;
use super::version::ProtocolVersion;
use crate::http::{Response, Status};
use crate::jsonrpc::{write_error, write_result, Envelope, ErrorCode, RawJson, RawObject};
use crate::registry::{Access, CatalogKind};

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow)]
    protocol_version: Option<Cow<'a, str>>,
    #[serde(default)]
    capabilities: ClientCapabilities<'a>,
}

/// The client capabilities that decide which server requests may be relayed to it.
#[derive(Deserialize, Default)]
struct ClientCapabilities<'a> {
    #[serde(borrow, default)]
    sampling: Option<&'a RawValue>,
    #[serde(borrow, default)]
    elicitation: Option<&'a RawValue>,
    #[serde(borrow, default)]
    roots: Option<&'a RawValue>,
}

impl ClientCapabilities<'_> {
    fn bits(&self) -> u8 {
        let declared = |v: Option<&RawValue>| v.is_some_and(|v| v.get() != "null");
        let mut bits = 0;
        for (value, cap) in [
            (self.sampling, ClientCapability::Sampling),
            (self.elicitation, ClientCapability::Elicitation),
            (self.roots, ClientCapability::Roots),
        ] {
            if declared(value) {
                bits |= cap as u8;
            }
        }
        bits
    }
}

/// The [`ClientCapability`] bits of a client's raw capabilities object (`initialize` params,
/// or a stateless request's `_meta`); `None` when it is not an object.
pub fn capability_bits(capabilities: RawJson<'_>) -> Option<u8> {
    serde_json::from_str::<ClientCapabilities<'_>>(capabilities.get())
        .ok()
        .map(|c| c.bits())
}

/// What a client's `initialize` settles: the revision to answer with and the client
/// capabilities (bits) it declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub version: ProtocolVersion,
    pub capabilities: u8,
}

/// Reads an `initialize` request; `None` (with the error reply written to `out`) when it has
/// no `params.protocolVersion`.
pub fn handshake(env: &Envelope<'_>, out: &mut Vec<u8>) -> Option<Handshake> {
    let requested = env
        .params
        .and_then(|p| serde_json::from_str::<InitializeParams<'_>>(p.get()).ok());
    let capabilities = requested.as_ref().map_or(0, |p| p.capabilities.bits());
    let Some(requested) = requested.and_then(|p| p.protocol_version) else {
        write_error(
            out,
            env.id_or_null(),
            ErrorCode::InvalidParams,
            "initialize needs params.protocolVersion",
        );
        return None;
    };
    Some(Handshake {
        version: ProtocolVersion::negotiate(Some(&requested)),
        capabilities,
    })
}

/// The `initialize` result for a session that speaks `version`.
pub fn write_initialize_result(out: &mut Vec<u8>, id: &str, version: ProtocolVersion) {
    let result = format!(
        concat!(
            r#"{{"protocolVersion":"{}","capabilities":{{"tools":{{"listChanged":true}},"prompts":{{"listChanged":true}},"#,
            r#""resources":{{"subscribe":true,"listChanged":true}},"completions":{{}},"logging":{{}}}},"#,
            r#""serverInfo":{{"name":"mcpgate","version":"{}"}}}}"#
        ),
        version.as_str(),
        env!("CARGO_PKG_VERSION")
    );
    write_result(out, id, &result);
}

/// `initialize` on `/mcp`: negotiates the revision and issues the session id.
pub fn initialize(env: &Envelope<'_>, keys: &SessionKeys, key: [u8; 8], resp: &mut Response) {
    let Some(handshake) = handshake(env, resp.json(Status::Ok)) else {
        return;
    };
    let id = env.id_or_null();
    let session = match keys.issue_with(handshake.version, handshake.capabilities, key) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot issue a session id");
            write_error(
                resp.json(Status::InternalServerError),
                id,
                ErrorCode::InternalError,
                "cannot issue a session id",
            );
            return;
        }
    };
    resp.header("Mcp-Session-Id", session);
    write_initialize_result(resp.json(Status::Ok), id, handshake.version);
}

pub fn ping(out: &mut Vec<u8>, id: &str) {
    write_result(out, id, "{}");
}

/// `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`: a precomputed
/// page of the catalog.
pub fn list_page(
    access: Access<'_>,
    kind: CatalogKind,
    params: Option<RawJson<'_>>,
    id: &str,
    out: &mut Vec<u8>,
) {
    let cursor = match params.map(|p| RawObject::parse(p.get())) {
        None => None,
        Some(Ok(obj)) => match obj.get("cursor") {
            None => None,
            Some(raw) if raw.get() == "null" => None,
            Some(_) => match obj.get_str("cursor") {
                Some(c) => Some(c),
                None => {
                    return write_error(
                        out,
                        id,
                        ErrorCode::InvalidParams,
                        "Invalid params: cursor must be a string",
                    )
                }
            },
        },
        Some(Err(_)) => {
            return write_error(
                out,
                id,
                ErrorCode::InvalidParams,
                "Invalid params: expected an object",
            )
        }
    };
    match access.page(kind, cursor.as_deref()) {
        Some(page) => write_result(out, id, page.as_str()),
        None => write_error(
            out,
            id,
            ErrorCode::InvalidParams,
            "Invalid params: unknown cursor",
        ),
    }
}
