//! What the conformance profile publishes: its tools, resources, resource templates, prompts
//! and completion values, as fixed JSON.
//!
//! The names, URIs and texts are the ones the official conformance suite
//! (`@modelcontextprotocol/conformance`) asks a server for; the suite calls them by these exact
//! names. This module holds data and pure lookups only: anything that talks to the client
//! during a call lives in `tools`.

use serde_json::{json, Value};

/// A 1×1 red PNG, base64: the suite only checks that image data and a MIME type are present.
pub const RED_PIXEL_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/// A valid WAV file (8 kHz, mono, 16-bit, eight samples of silence), base64.
pub const SILENT_WAV: &str =
    "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The JSON Schema dialect `json_schema_2020_12_tool` declares.
pub const SCHEMA_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// The one resource template: `{id}` is substituted when it is read.
pub const TEMPLATE_URI: &str = "test://template/{id}/data";

/// An input schema with no properties (tools that take no arguments).
fn no_arguments() -> Value {
    json!({ "type": "object", "properties": {} })
}

/// One `tools/list` entry.
fn tool(name: &str, description: &str, input_schema: Value) -> Value {
    json!({ "name": name, "description": description, "inputSchema": input_schema })
}

/// Every tool, in `tools/list` order.
pub fn tools() -> Vec<Value> {
    let string_arg = |name: &str, description: &str| {
        json!({
            "type": "object",
            "properties": { name: { "type": "string", "description": description } },
            "required": [name],
        })
    };
    vec![
        tool(
            "test_simple_text",
            "Returns one fixed text block.",
            no_arguments(),
        ),
        tool(
            "test_image_content",
            "Returns a 1x1 PNG image.",
            no_arguments(),
        ),
        tool(
            "test_audio_content",
            "Returns a short WAV clip.",
            no_arguments(),
        ),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource.",
            no_arguments(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, an image and an embedded resource in one result.",
            no_arguments(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends three info log notifications about 50 ms apart, then answers.",
            no_arguments(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100 about 50 ms apart when given a progress token.",
            no_arguments(),
        ),
        tool(
            "test_error_handling",
            "Always fails with a tool error (isError: true).",
            no_arguments(),
        ),
        tool(
            "test_sampling",
            "Asks the client to sample an LLM completion of the prompt and returns it.",
            string_arg("prompt", "The prompt to send to the LLM."),
        ),
        tool(
            "test_elicitation",
            "Asks the user (through the client) for a username and an email address.",
            string_arg("message", "The message to show the user."),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicits a form whose string, integer, number, enum and boolean fields have defaults.",
            no_arguments(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicits a form with every enum variant: untitled, titled and legacy single-select, untitled and titled multi-select.",
            no_arguments(),
        ),
        tool(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features ($schema, $defs, additionalProperties).",
            json!({
                "$schema": SCHEMA_2020_12,
                "type": "object",
                "$defs": {
                    "address": {
                        "type": "object",
                        "properties": {
                            "street": { "type": "string" },
                            "city": { "type": "string" },
                        },
                    },
                },
                "properties": {
                    "name": { "type": "string" },
                    "address": { "$ref": "#/$defs/address" },
                },
                "additionalProperties": false,
            }),
        ),
        tool(
            "test_reconnection",
            "Closes its SSE stream in the middle of the call; the result arrives when the client \
             resumes with Last-Event-ID (streamable HTTP only).",
            no_arguments(),
        ),
    ]
}

/// The direct resources (not templates), in `resources/list` order.
pub fn resources() -> Vec<Value> {
    vec![
        json!({ "uri": "test://static-text", "name": "static-text", "title": "Static text",
                "description": "A fixed text resource.", "mimeType": "text/plain" }),
        json!({ "uri": "test://static-binary", "name": "static-binary", "title": "Static binary",
                "description": "A fixed binary resource (a PNG image).", "mimeType": "image/png" }),
        json!({ "uri": "test://watched-resource", "name": "watched-resource",
                "title": "Watched resource",
                "description": "A resource clients can subscribe to.", "mimeType": "text/plain" }),
    ]
}

/// The resource templates.
pub fn resource_templates() -> Vec<Value> {
    vec![json!({
        "uriTemplate": TEMPLATE_URI,
        "name": "template-data",
        "title": "Templated data",
        "description": "JSON data for any id: test://template/<id>/data.",
        "mimeType": "application/json",
    })]
}

/// The `contents` of `resources/read` for `uri`, or `None` when no resource has that URI.
pub fn read_resource(uri: &str) -> Option<Value> {
    let text = |mime: &str, text: &str| json!([{ "uri": uri, "mimeType": mime, "text": text }]);
    match uri {
        "test://static-text" => Some(text(
            "text/plain",
            "This is the content of the static text resource.",
        )),
        "test://static-binary" => Some(json!([
            { "uri": uri, "mimeType": "image/png", "blob": RED_PIXEL_PNG }
        ])),
        "test://watched-resource" => Some(text(
            "text/plain",
            "The current content of the watched resource.",
        )),
        _ => {
            let id = template_id(uri)?;
            let data =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            Some(text("application/json", &data.to_string()))
        }
    }
}

/// The `{id}` of a URI matching [`TEMPLATE_URI`]: one non-empty path segment.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix("test://template/")?
        .strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Every prompt, in `prompts/list` order.
pub fn prompts() -> Vec<Value> {
    let arg = |name: &str, description: &str| json!({ "name": name, "description": description, "required": true });
    vec![
        json!({ "name": "test_simple_prompt", "description": "A prompt without arguments." }),
        json!({ "name": "test_prompt_with_arguments",
                "description": "A prompt that quotes its two arguments.",
                "arguments": [arg("arg1", "First test argument"), arg("arg2", "Second test argument")] }),
        json!({ "name": "test_prompt_with_embedded_resource",
                "description": "A prompt that embeds the resource it is given.",
                "arguments": [arg("resourceUri", "URI of the resource to embed")] }),
        json!({ "name": "test_prompt_with_image", "description": "A prompt with an image." }),
    ]
}

/// Why `prompts/get` failed.
#[derive(Debug, PartialEq, Eq)]
pub enum PromptError {
    /// No prompt has that name.
    Unknown,
    /// A required argument is missing (its name).
    MissingArgument(&'static str),
}

/// The `messages` of `prompts/get` for `name` with string `arguments`.
pub fn get_prompt(name: &str, arguments: &Value) -> Result<Value, PromptError> {
    let arg = |key: &'static str| {
        arguments
            .get(key)
            .and_then(Value::as_str)
            .ok_or(PromptError::MissingArgument(key))
    };
    let user = |content: Value| json!({ "role": "user", "content": content });
    let text = |text: &str| json!({ "type": "text", "text": text });
    match name {
        "test_simple_prompt" => Ok(json!([user(text("This is a simple prompt for testing."))])),
        "test_prompt_with_arguments" => {
            let (a, b) = (arg("arg1")?, arg("arg2")?);
            let said = format!("Prompt with arguments: arg1='{a}', arg2='{b}'");
            Ok(json!([user(text(&said))]))
        }
        "test_prompt_with_embedded_resource" => {
            let uri = arg("resourceUri")?;
            let resource = json!({ "type": "resource", "resource": {
                "uri": uri, "mimeType": "text/plain", "text": "Embedded resource content for testing.",
            }});
            Ok(json!([
                user(resource),
                user(text("Please process the embedded resource above."))
            ]))
        }
        "test_prompt_with_image" => {
            let image = json!({ "type": "image", "data": RED_PIXEL_PNG, "mimeType": "image/png" });
            Ok(json!([
                user(image),
                user(text("Please analyze the image above."))
            ]))
        }
        _ => Err(PromptError::Unknown),
    }
}

/// What `completion/complete` refers to.
pub enum CompletionRef<'a> {
    /// `ref/prompt` with the prompt's name.
    Prompt(&'a str),
    /// `ref/resource` with a URI or URI template.
    Resource(&'a str),
}

/// Completion candidates for one argument of a prompt or resource template, filtered by the
/// typed prefix; `None` when the prompt or template does not exist (an unknown argument of a
/// known one has no candidates).
pub fn complete(reference: CompletionRef<'_>, argument: &str, prefix: &str) -> Option<Vec<String>> {
    let candidates: &[&str] = match reference {
        CompletionRef::Prompt("test_prompt_with_arguments") => match argument {
            "arg1" => &["paris", "park", "party", "test", "testValue1"],
            "arg2" => &["world", "wonder", "testValue2"],
            _ => &[],
        },
        CompletionRef::Prompt("test_prompt_with_embedded_resource") => match argument {
            "resourceUri" => &["test://static-text", "test://watched-resource"],
            _ => &[],
        },
        CompletionRef::Prompt(name) if prompts().iter().any(|p| p["name"] == name) => &[],
        CompletionRef::Resource(TEMPLATE_URI) => match argument {
            "id" => &["1", "2", "3", "123"],
            _ => &[],
        },
        CompletionRef::Resource(uri) if read_resource(uri).is_some() => &[],
        _ => return None,
    };
    Some(
        candidates
            .iter()
            .filter(|c| c.starts_with(prefix))
            .map(|c| (*c).to_owned())
            .collect(),
    )
}

/// `requestedSchema` of `test_elicitation`.
pub fn contact_form() -> Value {
    json!({
        "type": "object",
        "properties": {
            "username": { "type": "string", "description": "User's response" },
            "email": { "type": "string", "description": "User's email address" },
        },
        "required": ["username", "email"],
    })
}

/// `requestedSchema` of `test_elicitation_sep1034_defaults`: a default for every primitive type.
pub fn defaults_form() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "Your name", "default": "John Doe" },
            "age": { "type": "integer", "description": "Your age", "default": 30 },
            "score": { "type": "number", "description": "Your score", "default": 95.5 },
            "status": { "type": "string", "description": "Account status",
                        "enum": ["active", "inactive", "pending"], "default": "active" },
            "verified": { "type": "boolean", "description": "Verified", "default": true },
        },
    })
}

/// `requestedSchema` of `test_elicitation_sep1330_enums`: the five enum shapes of SEP-1330.
pub fn enums_form() -> Value {
    let titled = |prefix: &str, titles: [&str; 3]| {
        titles
            .iter()
            .enumerate()
            .map(|(i, title)| json!({ "const": format!("{prefix}{}", i + 1), "title": title }))
            .collect::<Vec<_>>()
    };
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": { "type": "string", "description": "Untitled single-select",
                                "enum": ["option1", "option2", "option3"] },
            "titledSingle": { "type": "string", "description": "Titled single-select",
                              "oneOf": titled("value", ["First Option", "Second Option", "Third Option"]) },
            "legacyEnum": { "type": "string", "description": "Legacy titled enum",
                            "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"] },
            "untitledMulti": { "type": "array", "description": "Untitled multi-select",
                               "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
            "titledMulti": { "type": "array", "description": "Titled multi-select",
                             "items": { "anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"]) } },
        },
    })
}
