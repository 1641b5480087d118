//! The stream task of a legacy SSE upstream, on its owner core: open the GET stream, read the
//! `endpoint` event, handshake, hand every later message to [`super::dispatch`], and when the
//! stream ends fail the waiting calls and reconnect with backoff, until shutdown.
//!
//! Owns: the one GET connection and the event parser over it. Must never: hold more than one
//! event (bounded by the reply limit) of the stream in memory, or leave a call waiting on a
//! stream that has ended.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use futures_util::future::{select, Either};
use futures_util::StreamExt;

use super::super::backoff::Backoff;
use super::super::handshake::{
    initialize_request, parse_initialize_reply, InitializeInfo, INITIALIZED_NOTIFICATION,
};
use super::super::pool;
use super::super::sse_events::SseEvents as Events;
use super::dispatch::{dispatch, on_oversized, Answers};
use super::endpoint::resolve_endpoint;
use super::{Inner, Session, SseState};
use crate::http::client::{write_sse_get, ReplyKind};
use crate::http::sse::SseItem;

/// How long a fresh stream has to announce its endpoint and answer `initialize`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The task's body: one stream after another, until `control` closes. A message on `control`
/// ends the current stream (or the backoff pause) and opens the next one at once.
pub(super) async fn run(inner: Arc<Inner>, mut control: mpsc::Receiver<()>) {
    let name = inner.spec.name.clone();
    let mut backoff = Backoff::default();
    loop {
        inner.update(|s| s.state = SseState::Connecting);
        let (reason, ready_for) = match select(pin!(serve_stream(&inner)), control.next()).await {
            Either::Left((ended, _)) => ended,
            Either::Right((Some(()), _)) => {
                tracing::info!(server = %name, "SSE stream closed on request; opening a new one");
                // One update: whoever waits for the count to move must not see it with the
                // old stream's Ready.
                inner.update(|s| {
                    s.last_error = Some("the stream was reopened on request".to_owned());
                    s.first_attempt_done = true;
                    s.reconnects += 1;
                    s.state = SseState::Connecting;
                });
                continue;
            }
            Either::Right((None, _)) => break,
        };
        tracing::warn!(server = %name, "SSE stream ended: {reason}");
        let pause = backoff.pause_after(ready_for);
        let retry_at = Instant::now() + pause;
        inner.update(|s| {
            s.last_error = Some(reason);
            s.first_attempt_done = true;
            s.state = SseState::Backoff { retry_at };
        });
        let stopped = matches!(
            select(pin!(monoio::time::sleep(pause)), control.next()).await,
            Either::Right((None, _))
        );
        if stopped {
            break;
        }
        inner.update(|s| s.reconnects += 1);
    }
    tracing::info!(server = %name, "SSE upstream shut down");
    inner.update(|s| {
        s.state = SseState::Stopped;
        s.session = None;
    });
}

/// One stream from connect to end. Returns why it ended and how long it was Ready.
async fn serve_stream(inner: &Arc<Inner>) -> (String, Duration) {
    let opened = monoio::time::timeout(HANDSHAKE_TIMEOUT, open(inner)).await;
    let (mut events, endpoint) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(reason)) => return (reason, Duration::ZERO),
        Err(_) => {
            let ms = HANDSHAKE_TIMEOUT.as_millis();
            return (format!("no endpoint event within {ms} ms"), Duration::ZERO);
        }
    };
    let session = Arc::new(Session {
        endpoint,
        pending: Default::default(),
    });
    // Whatever ends this stream (including the task being stopped mid-way), calls waiting on
    // it fail at once and no new call is sent to it.
    let mut closing = CloseOnDrop {
        inner,
        session: &session,
        reason: "the gateway stopped the stream".to_owned(),
    };
    let answers = Answers::default();
    let mut reading = pin!(read_messages(inner, &session, &mut events, &answers));
    let handshake = pin!(monoio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(inner, &session)
    ));
    let ms = HANDSHAKE_TIMEOUT.as_millis();
    let handshaken = match select(reading.as_mut(), handshake).await {
        Either::Left((reason, _)) => {
            Err(format!("the stream ended during the handshake: {reason}"))
        }
        Either::Right((Ok(Ok(info)), _)) => Ok(info),
        Either::Right((Ok(Err(e)), _)) => Err(format!("handshake failed: {e}")),
        Either::Right((Err(_), _)) => Err(format!(
            "handshake failed: no answer to initialize within {ms} ms"
        )),
    };
    let info = match handshaken {
        Ok(info) => info,
        Err(reason) => {
            closing.reason = reason;
            return (closing.reason.clone(), Duration::ZERO);
        }
    };
    let version = info.protocol_version.clone();
    inner.update(|s| {
        s.state = SseState::Ready;
        s.info = Some(info);
        s.session = Some(session.clone());
        s.first_attempt_done = true;
    });
    tracing::info!(server = %inner.spec.name, version = %version, "SSE upstream ready");
    let ready_at = Instant::now();
    closing.reason = reading.await;
    (closing.reason.clone(), ready_at.elapsed())
}

/// Opens the GET stream and reads up to its `endpoint` event.
async fn open(inner: &Inner) -> Result<(Events, super::UpstreamUrl), String> {
    let url = &inner.url;
    let mut conn = pool::connect(url).await.map_err(|e| e.to_string())?;
    write_sse_get(conn.request_buf(), &url.path, &url.host, &inner.headers());
    conn.send()
        .await
        .map_err(|e| format!("sending the GET: {e}"))?;
    let head = conn
        .read_head()
        .await
        .map_err(|e| format!("reading the GET's reply: {e}"))?;
    if head.status != 200 {
        return Err(pool::refusal(&mut conn, &head).await);
    }
    if head.kind != ReplyKind::EventStream {
        return Err("the GET's reply is not text/event-stream".into());
    }
    let mut events = Events::new(conn, &head, inner.spec.max_event_bytes);
    loop {
        match events.next().await? {
            Some(SseItem::Event(e)) if e.event.as_deref() == Some("endpoint") => {
                let data = String::from_utf8_lossy(&e.data);
                let endpoint = resolve_endpoint(url, &data)?;
                return Ok((events, endpoint));
            }
            Some(SseItem::Event(e)) => {
                tracing::debug!(server = %inner.spec.name, event = ?e.event, "an event before the endpoint; ignored");
            }
            Some(SseItem::TooLarge(s)) => {
                tracing::warn!(server = %inner.spec.name, len = s.len, "an oversized event before the endpoint; ignored");
            }
            None => return Err("the stream ended before its endpoint event".into()),
        }
    }
}

/// `initialize` → reply (on the stream) → `notifications/initialized`.
async fn handshake(inner: &Inner, session: &Session) -> Result<InitializeInfo, String> {
    let id = inner
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reply = session
        .pending
        .register(&inner.spec.name, id, usize::MAX, None)
        .map_err(|e| e.to_string())?;
    inner
        .post(&session.endpoint, &initialize_request(id))
        .await
        .map_err(|e| e.to_string())?;
    let reply = match reply.await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("the stream reader stopped".into()),
    };
    let info = parse_initialize_reply(&reply)?;
    inner
        .post(&session.endpoint, INITIALIZED_NOTIFICATION)
        .await
        .map_err(|e| e.to_string())?;
    Ok(info)
}

/// Hands every message event to `dispatch` until the stream ends; returns why it ended.
async fn read_messages(
    inner: &Arc<Inner>,
    session: &Arc<Session>,
    events: &mut Events,
    answers: &Answers,
) -> String {
    let name = &inner.spec.name;
    loop {
        match events.next().await {
            Ok(Some(SseItem::Event(e))) => match e.event.as_deref() {
                None | Some("message") => dispatch(inner, session, answers, &e.data),
                Some(other) => {
                    tracing::debug!(server = %name, event = other, "ignoring an SSE event that is not a message");
                }
            },
            Ok(Some(SseItem::TooLarge(skipped))) => on_oversized(inner, session, &skipped),
            Ok(None) => return "the server closed the stream".into(),
            Err(reason) => return reason,
        }
    }
}

/// Takes a stream's session out of service when the stream is done with, failing its calls.
struct CloseOnDrop<'a> {
    inner: &'a Inner,
    session: &'a Arc<Session>,
    reason: String,
}

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.inner.update(|s| {
            if s.session
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, self.session))
            {
                s.session = None;
            }
        });
        self.session
            .pending
            .close(&self.inner.spec.name, &self.reason);
    }
}
