//! Calls whose server talks before it answers: progress notifications and sampling requests
//! from server-everything reach the rmcp client that made the call (over an SSE reply), the
//! client's answer reaches the server, and a client that did not declare sampling is never
//! asked. Server-everything runs behind the gateway over stdio and over streamable HTTP.
//!
//! A server that asks faster than it takes the gateway's answers (tests/common/asking_http.rs)
//! gets at most `MAX_ANSWERS_IN_FLIGHT` answers in flight, on a call's reply and on its own
//! `GET` stream alike; the requests beyond are refused with an error that names the limit,
//! and the gateway serves on.

// Sampling is what server-everything asks for; rmcp marks its types deprecated (SEP-2577).
#![allow(deprecated)]

mod common;

use std::sync::{Arc, Mutex};

use common::asking_http::AskingHttp;
use common::raw_http::RawSession;
use common::*;
use mcpgate::upstream::http::MAX_ANSWERS_IN_FLIGHT;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, Implementation, ProgressNotificationParam, SamplingMessage,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::json;
use tokio::sync::Notify;

/// A client that records progress and answers sampling requests (when it declares sampling).
#[derive(Clone, Default)]
struct Recorder {
    sampling: bool,
    progress: Arc<Mutex<Vec<f64>>>,
    progressed: Arc<Notify>,
    asked: Arc<Mutex<Vec<String>>>,
}

const SAMPLED: &str = "sampled by the test client";

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        let declared = if self.sampling {
            json!({"sampling": {}})
        } else {
            json!({})
        };
        let caps: ClientCapabilities = serde_json::from_value(declared).expect("capabilities");
        ClientConfig::new(caps, Implementation::new("mcpgate-streaming-test", "1"))
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let text = serde_json::to_string(&params.messages).unwrap_or_default();
        self.asked.lock().expect("lock").push(text);
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(SAMPLED),
            "test-model".into(),
        ))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().expect("lock").push(params.progress);
        self.progressed.notify_one();
    }
}

async fn connect(url: &str, handler: Recorder) -> RunningService<RoleClient, Recorder> {
    let transport = http_transport(StreamableHttpClientTransportConfig::with_uri(url));
    within("rmcp initialize", handler.serve(transport))
        .await
        .expect("initialize through the gateway")
}

async fn both_transports(driver: &str, test: impl AsyncFn(&Gateway, &str)) {
    let http = HttpUpstream::everything().await;
    let gw = Gateway::start(
        driver,
        &config(&[
            ("stdio", everything_stdio()),
            ("http", http_server(&http.url)),
        ]),
    )
    .await;
    for server in ["stdio", "http"] {
        test(&gw, server).await;
    }
}

both_drivers!(progress_reaches_the_calling_client);

async fn progress_reaches_the_calling_client(driver: &str) {
    both_transports(driver, async |gw, server| {
        let recorder = Recorder::default();
        let client = connect(&gw.url, recorder.clone()).await;
        let tool = format!("{server}__trigger-long-running-operation");
        let args = json!({"duration": 0.3, "steps": 3});
        let result = within(
            "long-running operation",
            client.call_tool(
                CallToolRequestParams::new(tool.clone())
                    .with_arguments(args.as_object().cloned().unwrap_or_default()),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(text_of(&result).contains("completed"), "{result:?}");
        // Notifications are handled on their own tasks: wait for all three, not for a time.
        within("three progress notifications", async {
            while recorder.progress.lock().expect("lock").len() < 3 {
                recorder.progressed.notified().await;
            }
        })
        .await;
        let seen = recorder.progress.lock().expect("lock").clone();
        assert_eq!(seen, [1.0, 2.0, 3.0], "{server}: progress in order");
        client.cancel().await.expect("close");
    })
    .await;
}

both_drivers!(sampling_is_answered_by_the_calling_client);

async fn sampling_is_answered_by_the_calling_client(driver: &str) {
    both_transports(driver, async |gw, server| {
        let tool = format!("{server}__trigger-sampling-request");
        let recorder = Recorder {
            sampling: true,
            ..Recorder::default()
        };
        let client = connect(&gw.url, recorder.clone()).await;
        let prompt = format!("hello from {}", unique_token());
        let result = within(
            "sampling round trip",
            client.call_tool(
                CallToolRequestParams::new(tool.clone()).with_arguments(
                    json!({"prompt": prompt, "maxTokens": 10})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(text_of(&result).contains(SAMPLED), "{server}: {result:?}");
        let asked = recorder.asked.lock().expect("lock").clone();
        assert_eq!(asked.len(), 1, "{server}: asked once");
        assert!(asked[0].contains(&prompt), "{server}: {asked:?}");
        client.cancel().await.expect("close");

        // A client without sampling is never sent the request: the server gets a refusal.
        let plain = Recorder::default();
        let client = connect(&gw.url, plain.clone()).await;
        let refused = within(
            "sampling refused",
            client.call_tool(
                CallToolRequestParams::new(tool.clone()).with_arguments(
                    json!({"prompt": "nobody answers", "maxTokens": 10})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
            ),
        )
        .await;
        let shown = match &refused {
            Ok(r) => {
                assert_eq!(r.is_error, Some(true), "{server}: {r:?}");
                text_of(r)
            }
            Err(e) => e.to_string(),
        };
        assert!(shown.contains("sampling"), "{server}: {shown}");
        assert!(plain.asked.lock().expect("lock").is_empty());
        client.cancel().await.expect("close");
    })
    .await;
}

/// The requests one round asks: the bound and ten more.
const ASKED: usize = MAX_ANSWERS_IN_FLIGHT + 10;

/// What the asking server reports when the gateway let out as many answers as the bound and
/// refused the rest.
fn bounded_round() -> String {
    format!(
        "answered {ASKED}: ok {MAX_ANSWERS_IN_FLIGHT}, refused 10: mcpgate refused this request: \
         {MAX_ANSWERS_IN_FLIGHT} answers to this server's requests are in flight already (the \
         most the gateway sends at once); ask again once the server has taken them"
    )
}

/// Calls the asking server's `tool` with `ASKED` requests; the round's result text.
async fn ask(session: &RawSession, tool: &str) -> String {
    let reply = session
        .request(
            "tools/call",
            json!({"name": format!("asking__{tool}"), "arguments": {"count": ASKED}}),
        )
        .await;
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{tool}: {reply}"))
        .to_owned()
}

/// The gateway still serves the server.
async fn hello(session: &RawSession) {
    let reply = session
        .request(
            "tools/call",
            json!({"name": "asking__hello", "arguments": {}}),
        )
        .await;
    assert_eq!(reply["result"]["content"][0]["text"], "hello", "{reply}");
}

both_drivers!(a_server_asking_during_a_call_gets_errors_beyond_the_answers_in_flight);

async fn a_server_asking_during_a_call_gets_errors_beyond_the_answers_in_flight(driver: &str) {
    let server = AskingHttp::start().await;
    let gw = Gateway::start(driver, &config(&[("asking", http_server(&server.url))])).await;
    let session = RawSession::open(&gw.addr()).await;
    assert_eq!(ask(&session, "ask").await, bounded_round());
    hello(&session).await;
}

both_drivers!(a_server_asking_on_its_own_stream_gets_errors_beyond_the_answers_in_flight);

async fn a_server_asking_on_its_own_stream_gets_errors_beyond_the_answers_in_flight(driver: &str) {
    let server = AskingHttp::start().await;
    let mut gw = Gateway::start(driver, &config(&[("asking", http_server(&server.url))])).await;
    gw.wait_following_get_stream();
    let session = RawSession::open(&gw.addr()).await;
    assert_eq!(ask(&session, "ask_on_stream").await, bounded_round());
    hello(&session).await;
}
