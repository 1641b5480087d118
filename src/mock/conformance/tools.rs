//! `tools/call` in the conformance profile: what each tool of [`super::catalog::tools`] does,
//! including the ones that talk to the client while they run (log and progress notifications,
//! `sampling/createMessage` and `elicitation/create` requests, closing the SSE stream).
//!
//! The behaviour follows the scenario descriptions of `@modelcontextprotocol/conformance`.
//! Waits are short fixed delays the scenarios ask for (so notifications arrive spread out);
//! nothing here waits on a timer to synchronise with anything.

use std::time::Duration;

use serde_json::{json, Value};

use super::catalog::{self, RED_PIXEL_PNG, SILENT_WAV};
use super::session::{Outbox, Session};
use super::RpcError;

/// The gap between the notifications of `test_tool_with_logging` and `test_tool_with_progress`.
const STEP: Duration = Duration::from_millis(50);

/// How long `test_reconnection` works before and after closing its stream.
const RECONNECTION_PAUSE: Duration = Duration::from_millis(100);

/// A result with one text block.
fn text_result(text: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": text }] })
}

/// A tool-level failure: MCP reports those in the result, not as JSON-RPC errors.
fn tool_error(text: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": true })
}

/// Runs `tools/call` with `params` and returns its `result`.
pub async fn call(
    session: &Session,
    outbox: &dyn Outbox,
    params: &Value,
) -> Result<Value, RpcError> {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Err(RpcError::invalid_params("tools/call needs a string name"));
    };
    let empty = json!({});
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(args @ Value::Object(_)) => args,
        Some(_) => return Err(RpcError::invalid_params("arguments must be an object")),
    };
    let string_arg = |key: &str| {
        arguments
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params(&format!("missing string argument '{key}'")))
    };
    Ok(match name {
        "test_simple_text" => text_result("This is a simple text response for testing."),
        "test_image_content" => json!({ "content": [
            { "type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png" }
        ]}),
        "test_audio_content" => json!({ "content": [
            { "type": "audio", "data": SILENT_WAV, "mimeType": "audio/wav" }
        ]}),
        "test_embedded_resource" => json!({ "content": [{ "type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain",
            "text": "This is an embedded resource content.",
        }}]}),
        "test_multiple_content_types" => json!({ "content": [
            { "type": "text", "text": "Multiple content types test:" },
            { "type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png" },
            { "type": "resource", "resource": {
                "uri": "test://mixed-content-resource", "mimeType": "application/json",
                "text": json!({ "test": "data", "value": 123 }).to_string(),
            }},
        ]}),
        "test_error_handling" => tool_error("This tool intentionally returns an error for testing"),
        "test_tool_with_logging" => with_logging(session, outbox).await,
        "test_tool_with_progress" => with_progress(session, outbox, params).await,
        "test_sampling" => sampling(session, outbox, string_arg("prompt")?).await,
        "test_elicitation" => {
            let message = string_arg("message")?;
            let answer = elicit(session, outbox, message, catalog::contact_form()).await;
            match answer {
                Ok((action, content)) => text_result(&format!(
                    "User response: action={action}, content={content}"
                )),
                Err(failure) => failure,
            }
        }
        "test_elicitation_sep1034_defaults" | "test_elicitation_sep1330_enums" => {
            let (message, form) = match name {
                "test_elicitation_sep1034_defaults" => (
                    "Please review and update the form fields with defaults",
                    catalog::defaults_form(),
                ),
                _ => (
                    "Please choose from each kind of enum",
                    catalog::enums_form(),
                ),
            };
            match elicit(session, outbox, message, form).await {
                Ok((action, content)) => text_result(&format!(
                    "Elicitation completed: action={action}, content={content}"
                )),
                Err(failure) => failure,
            }
        }
        "json_schema_2020_12_tool" => {
            text_result(&format!("json_schema_2020_12_tool called with {arguments}"))
        }
        "test_reconnection" => {
            monoio::time::sleep(RECONNECTION_PAUSE).await;
            outbox.close_stream();
            monoio::time::sleep(RECONNECTION_PAUSE).await;
            text_result(
                "Reconnection test completed: this result was sent after the stream was closed.",
            )
        }
        other => return Err(RpcError::invalid_params(&format!("Unknown tool: {other}"))),
    })
}

/// `test_tool_with_logging`: three info messages, [`STEP`] apart.
async fn with_logging(session: &Session, outbox: &dyn Outbox) -> Value {
    session.log(outbox, "info", "Tool execution started");
    monoio::time::sleep(STEP).await;
    session.log(outbox, "info", "Tool processing data");
    monoio::time::sleep(STEP).await;
    session.log(outbox, "info", "Tool execution completed");
    text_result("Tool with logging executed successfully")
}

/// `test_tool_with_progress`: progress 0, 50, 100 of 100, [`STEP`] apart, when the request
/// carries `_meta.progressToken` (the same delays without one).
async fn with_progress(session: &Session, outbox: &dyn Outbox, params: &Value) -> Value {
    let token = params
        .get("_meta")
        .and_then(|meta| meta.get("progressToken"))
        .filter(|t| t.is_string() || t.is_number());
    for (step, progress) in [0, 50, 100].into_iter().enumerate() {
        if step > 0 {
            monoio::time::sleep(STEP).await;
        }
        if let Some(token) = token {
            let params = json!({ "progressToken": token, "progress": progress, "total": 100,
                                 "message": format!("step {} of 3", step + 1) });
            session.notify(outbox, "notifications/progress", params);
        }
    }
    text_result("Tool with progress executed successfully")
}

/// `test_sampling`: asks the client to complete `prompt` and returns what it said.
async fn sampling(session: &Session, outbox: &dyn Outbox, prompt: &str) -> Value {
    if !session.client_supports("sampling") {
        return tool_error("The client does not support sampling (no sampling capability)");
    }
    let params = json!({
        "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
        "maxTokens": 100,
    });
    match session
        .ask_client(outbox, "sampling/createMessage", params)
        .await
    {
        Ok(result) => {
            let content = &result["content"];
            // `content` is one block, or a list of blocks since 2025-11-25.
            let said = match content.get("text").and_then(Value::as_str) {
                Some(text) => text.to_owned(),
                None => content.to_string(),
            };
            text_result(&format!("LLM response: {said}"))
        }
        Err(error) => tool_error(&format!("Sampling failed: {error}")),
    }
}

/// Sends `elicitation/create` with `message` and `form`; returns the client's action and the
/// content (as JSON text), or the tool error to answer with.
async fn elicit(
    session: &Session,
    outbox: &dyn Outbox,
    message: &str,
    form: Value,
) -> Result<(String, String), Value> {
    if !session.client_supports("elicitation") {
        return Err(tool_error(
            "The client does not support elicitation (no elicitation capability)",
        ));
    }
    let params = json!({ "message": message, "requestedSchema": form });
    match session
        .ask_client(outbox, "elicitation/create", params)
        .await
    {
        Ok(result) => {
            let action = result["action"].as_str().unwrap_or("unknown").to_owned();
            let content = result.get("content").cloned().unwrap_or_else(|| json!({}));
            Ok((action, content.to_string()))
        }
        Err(error) => Err(tool_error(&format!("Elicitation failed: {error}"))),
    }
}
