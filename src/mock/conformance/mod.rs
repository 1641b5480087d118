//! The mock upstream's conformance profile (`mcpgate mock-upstream --profile conformance`): an
//! MCP server that implements what every server scenario of the official conformance suite
//! (`@modelcontextprotocol/conformance`) checks, so the suite can be run against the mock
//! directly and, later, through the gateway.
//!
//! Unlike the default profile it is stateful and built for coverage, not speed: it keeps
//! sessions (client capabilities, log level, subscriptions, requests waiting for the client),
//! serves resources, resource templates, prompts and completions, and its tools send log and
//! progress notifications and ask the client for sampling and elicitation mid-call. It must
//! never be used for performance figures, and must never block its runtime thread.
//!
//! This module owns the transport-independent part: reading one client message
//! ([`ClientMessage`]) and answering one request ([`answer`]). The submodules own the rest:
//! - `catalog`: the fixed tools, resources, templates, prompts and completion values;
//! - `session`: per-client state and the [`session::Outbox`] a request's messages go through;
//! - `tools`: `tools/call`;
//! - [`http`]: streamable HTTP (sessions, `GET`/`POST`/`DELETE`, DNS-rebinding protection);
//! - `streams`: the event logs behind its SSE streams (event ids, resumption);
//! - [`stdio`]: newline-delimited JSON-RPC on stdin/stdout.

mod catalog;
pub mod http;
mod session;
pub mod stdio;
mod streams;
mod tools;

#[cfg(test)]
mod tests;

use serde_json::{json, Value};

pub use session::{Outbox, Session};

use super::{
    INVALID_PARAMS, INVALID_REQUEST, LATEST_PROTOCOL_VERSION, METHOD_NOT_FOUND, PARSE_ERROR,
    PROTOCOL_VERSIONS,
};

/// `serverInfo.name` of the conformance profile.
pub const SERVER_NAME: &str = "mcpgate-mock-conformance";

/// MCP's error code for `resources/read` of an unknown URI.
const RESOURCE_NOT_FOUND: i64 = -32002;

/// A JSON-RPC error to answer a request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn invalid_params(why: &str) -> RpcError {
        RpcError {
            code: INVALID_PARAMS.into(),
            message: format!("Invalid params: {why}"),
        }
    }
}

/// One message from the client, classified.
#[derive(Debug)]
pub enum ClientMessage {
    /// A request: answer it with [`answer`].
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// A notification: nothing to answer.
    Notification { method: String, params: Value },
    /// A response to a request we sent: hand it to [`Session::complete`].
    Response(Value),
    /// Not a message we can take; answer with this error response (id `null` when unknown).
    Invalid(Value),
}

impl ClientMessage {
    /// Parses and classifies one serialized message. Batches are refused (no revision this
    /// profile speaks needs them).
    pub fn parse(bytes: &[u8]) -> ClientMessage {
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(_) => {
                return ClientMessage::Invalid(error_response(
                    &Value::Null,
                    PARSE_ERROR.into(),
                    "Parse error",
                ))
            }
        };
        let Value::Object(mut object) = value else {
            return ClientMessage::Invalid(error_response(
                &Value::Null,
                INVALID_REQUEST.into(),
                "Invalid Request: a message must be a JSON object",
            ));
        };
        let id = object.remove("id");
        let id_ok = matches!(id, None | Some(Value::String(_) | Value::Number(_)));
        let invalid = |id: &Option<Value>, why: &str| {
            let id = id.clone().filter(|_| id_ok).unwrap_or(Value::Null);
            ClientMessage::Invalid(error_response(&id, INVALID_REQUEST.into(), why))
        };
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return invalid(&id, "Invalid Request: jsonrpc must be \"2.0\"");
        }
        if !id_ok {
            return invalid(&id, "Invalid Request: id must be a string or a number");
        }
        let params = object.remove("params").unwrap_or_else(|| json!({}));
        match (object.remove("method"), id) {
            (Some(Value::String(method)), Some(id)) => {
                ClientMessage::Request { id, method, params }
            }
            (Some(Value::String(method)), None) => ClientMessage::Notification { method, params },
            (Some(_), id) => invalid(&id, "Invalid Request: method must be a string"),
            (None, Some(id)) if object.contains_key("result") || object.contains_key("error") => {
                object.insert("id".into(), id);
                ClientMessage::Response(Value::Object(object))
            }
            (None, id) => invalid(&id, "Invalid Request: missing method"),
        }
    }
}

/// A serialized error response.
pub fn error_response(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// The protocol version answered to a client that asked for `requested`: the same when this
/// profile speaks it, else the latest.
pub fn negotiate(requested: &str) -> &'static str {
    PROTOCOL_VERSIONS
        .iter()
        .copied()
        .find(|v| *v == requested)
        .unwrap_or(LATEST_PROTOCOL_VERSION)
}

/// Answers one request: returns the whole response message. Messages the request sends
/// while it runs (notifications, requests to the client) go through `outbox` first.
pub async fn answer(
    session: &Session,
    outbox: &dyn Outbox,
    id: &Value,
    method: &str,
    params: &Value,
) -> Value {
    match result_of(session, outbox, method, params).await {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => error_response(id, e.code, &e.message),
    }
}

/// The `result` of one request.
async fn result_of(
    session: &Session,
    outbox: &dyn Outbox,
    method: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let str_param = |key: &str| {
        params
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params(&format!("{method} needs a string {key}")))
    };
    let no_cursor = || match params.get("cursor") {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(RpcError::invalid_params(
            "unknown cursor (every list is one page)",
        )),
    };
    match method {
        "initialize" => {
            let version = negotiate(str_param("protocolVersion")?);
            session.set_client_capabilities(
                params
                    .get("capabilities")
                    .cloned()
                    .unwrap_or_else(|| json!({})),
            );
            Ok(initialize_result(version))
        }
        "ping" => Ok(json!({})),
        "logging/setLevel" => match session.set_log_level(str_param("level")?) {
            true => Ok(json!({})),
            false => Err(RpcError::invalid_params("unknown log level")),
        },
        "tools/list" => no_cursor().map(|()| json!({ "tools": catalog::tools() })),
        "tools/call" => tools::call(session, outbox, params).await,
        "resources/list" => no_cursor().map(|()| json!({ "resources": catalog::resources() })),
        "resources/templates/list" => {
            no_cursor().map(|()| json!({ "resourceTemplates": catalog::resource_templates() }))
        }
        "resources/read" => {
            let uri = str_param("uri")?;
            match catalog::read_resource(uri) {
                Some(contents) => Ok(json!({ "contents": contents })),
                None => Err(RpcError {
                    code: RESOURCE_NOT_FOUND,
                    message: format!("Resource not found: {uri}"),
                }),
            }
        }
        "resources/subscribe" => {
            session.subscribe(str_param("uri")?);
            Ok(json!({}))
        }
        "resources/unsubscribe" => {
            session.unsubscribe(str_param("uri")?);
            Ok(json!({}))
        }
        "prompts/list" => no_cursor().map(|()| json!({ "prompts": catalog::prompts() })),
        "prompts/get" => {
            let name = str_param("name")?;
            let arguments = params
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| json!({}));
            match catalog::get_prompt(name, &arguments) {
                Ok(messages) => Ok(json!({ "messages": messages })),
                Err(catalog::PromptError::Unknown) => {
                    Err(RpcError::invalid_params(&format!("unknown prompt: {name}")))
                }
                Err(catalog::PromptError::MissingArgument(arg)) => Err(RpcError::invalid_params(
                    &format!("missing required argument: {arg}"),
                )),
            }
        }
        "completion/complete" => complete(params),
        other => Err(RpcError {
            code: METHOD_NOT_FOUND.into(),
            message: format!("Method not found: {other}"),
        }),
    }
}

/// The `initialize` result for `version`.
fn initialize_result(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": { "subscribe": true, "listChanged": false },
            "prompts": { "listChanged": false },
            "logging": {},
            "completions": {},
        },
        "serverInfo": { "name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION") },
        "instructions": "The mcpgate mock upstream's conformance profile: the tools, resources and \
                         prompts the MCP conformance suite exercises.",
    })
}

/// `completion/complete`.
fn complete(params: &Value) -> Result<Value, RpcError> {
    let reference = &params["ref"];
    let argument = &params["argument"];
    let (Some(name), Some(prefix)) = (argument["name"].as_str(), argument["value"].as_str()) else {
        return Err(RpcError::invalid_params(
            "argument needs a string name and value",
        ));
    };
    let target = match (
        reference["type"].as_str(),
        reference["name"].as_str(),
        reference["uri"].as_str(),
    ) {
        (Some("ref/prompt"), Some(prompt), _) => catalog::CompletionRef::Prompt(prompt),
        (Some("ref/resource"), _, Some(uri)) => catalog::CompletionRef::Resource(uri),
        _ => {
            return Err(RpcError::invalid_params(
                "ref must be a ref/prompt with a name or a ref/resource with a uri",
            ))
        }
    };
    let Some(values) = catalog::complete(target, name, prefix) else {
        return Err(RpcError::invalid_params("no such prompt or resource"));
    };
    Ok(json!({ "completion": { "values": values, "total": values.len(), "hasMore": false } }))
}
