//! `mock-upstream --listen`: the mock MCP server over streamable HTTP, on the gateway's own
//! HTTP server and runtime. Stateless (no session ids), JSON replies only.

use std::sync::Arc;

use super::{MockFault, MockOutcome, MockServer};
use crate::http::{Handler, Method, Outcome, RequestHead, Response, SseStream, Status};

/// A stream that never yields; the mock never streams.
pub struct NoStream;

impl SseStream for NoStream {
    async fn next_event(&mut self, _out: &mut Vec<u8>) -> bool {
        false
    }
}

/// The HTTP face of a [`MockServer`].
pub struct MockHttp {
    server: Arc<MockServer>,
}

impl MockHttp {
    pub fn new(server: Arc<MockServer>) -> Self {
        MockHttp { server }
    }
}

impl Handler for MockHttp {
    type Stream = NoStream;

    async fn handle(
        &self,
        head: &RequestHead<'_>,
        body: &[u8],
        resp: &mut Response,
    ) -> Outcome<NoStream> {
        if head.method != Method::Post {
            resp.header("Allow", "POST");
            resp.text(
                Status::MethodNotAllowed,
                "the mock upstream answers POST only\n",
            );
            return Outcome::Done;
        }
        match self.server.handle(body) {
            MockOutcome::Reply { body, delay } => {
                if !delay.is_zero() {
                    monoio::time::sleep(delay).await;
                }
                resp.json(Status::Ok).extend_from_slice(&body);
            }
            MockOutcome::NoReply => resp.empty(Status::Accepted),
            MockOutcome::Fault(MockFault::ExitProcess) => {
                std::process::exit(super::stdio::FAULT_EXIT_STATUS)
            }
            MockOutcome::Fault(MockFault::GarbageThenReply(_)) => {
                resp.json(Status::Ok)
                    .extend_from_slice(super::stdio::GARBAGE_LINE);
            }
            MockOutcome::Fault(MockFault::Hang) => std::future::pending::<()>().await,
        }
        Outcome::Done
    }
}

/// Serves the mock over HTTP on `listeners` (one worker each) until the process ends.
pub fn spawn_http_workers(
    server: Arc<MockServer>,
    listeners: Vec<std::net::TcpListener>,
    driver: crate::runtime::IoDriver,
    busy_poll: Option<std::time::Duration>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let limits = crate::http::HttpLimits::default();
    crate::runtime::serve_on_workers(listeners, driver, limits, busy_poll, move |_| {
        MockHttp::new(server.clone())
    })
}
