//! One routed request under observation, on the worker core that serves it: what it named,
//! where it went, how long it took, and how it ended. Finishing it feeds the core's metrics and
//! (when the audit log runs) hands one record to the log thread — exactly once: a request that
//! is dropped unfinished (its client hung up, a shutdown ran out of time) finishes as
//! `cancelled` when its observation drops.
//!
//! Owns: the per-core [`Recorder`] and the rule "one record per routed request". Must never:
//! format, serialize or allocate for the audit log when it does not run, take a lock, or make
//! a syscall (the wall clock is read once, when the request finishes).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::access::AccessRecord;
use super::clock::now_micros;
use super::pipeline::AuditSender;
use super::record::{AuditRecord, Detail, Outcome, RoutedMethod, RpcId, Target};
use crate::admin::call_metrics::CallFigures;
use crate::admin::metrics::CoreMetrics;
use crate::mcp::client_info::ClientInfo;
use crate::upstream::CallTiming;

/// Why a request that was dropped unfinished is `cancelled`.
pub const DROPPED: &str =
    "the request ended before its reply: the client went away, or a shutdown ran out of time";

/// Longest arguments recorded, in bytes; larger ones are recorded as a note.
const MAX_ARGUMENTS: usize = 16 * 1024;

/// A worker core's sinks for what it observes: its metrics, and its end of the audit queues.
pub struct Recorder {
    pub metrics: CoreMetrics,
    audit: Option<AuditSender>,
}

impl Recorder {
    pub fn new(metrics: CoreMetrics, audit: Option<AuditSender>) -> Recorder {
        Recorder { metrics, audit }
    }

    fn audits(&self) -> bool {
        self.audit.as_ref().is_some_and(AuditSender::audits)
    }

    /// Whether HTTP requests are to be reported to [`Recorder::access`].
    pub fn logs_access(&self) -> bool {
        self.audit.as_ref().is_some_and(AuditSender::logs_access)
    }

    pub fn access(&self, record: AccessRecord) {
        if let Some(audit) = &self.audit {
            audit.access(Box::new(record));
        }
    }
}

/// Who made a request and through which session.
pub struct Caller {
    pub key: Option<Arc<str>>,
    pub group: Option<Arc<str>>,
    pub session: Option<[u8; 8]>,
    pub client: ClientInfo,
}

pub struct Observation {
    recorder: Rc<Recorder>,
    started: Instant,
    method: RoutedMethod,
    request_bytes: u64,
    reply_bytes: u64,
    /// What only the audit record needs; `None` when the audit log does not run.
    audit: Option<AuditPart>,
    server: Option<Arc<str>>,
    /// A catalog item's name: a metrics label as well.
    item: Option<Arc<str>>,
    /// Counted in `server`'s calls in flight.
    in_flight: bool,
    upstream_us: Option<u64>,
    done: bool,
}

/// The fields of an observation that only the audit record uses.
struct AuditPart {
    caller: Caller,
    rpc_id: RpcId,
    target: Target,
    arguments: Option<Box<str>>,
}

impl Observation {
    /// Starts observing `method` with JSON-RPC id `id` (raw), which arrived at `started` in
    /// `request_bytes` bytes. `caller` is asked for only when the audit log runs.
    pub fn begin(
        recorder: &Rc<Recorder>,
        method: RoutedMethod,
        started: Instant,
        request_bytes: usize,
        id: &str,
        caller: impl FnOnce() -> Caller,
    ) -> Observation {
        Observation {
            recorder: recorder.clone(),
            started,
            method,
            request_bytes: request_bytes as u64,
            reply_bytes: 0,
            audit: recorder.audits().then(|| AuditPart {
                caller: caller(),
                rpc_id: RpcId::new(id),
                target: Target::None,
                arguments: None,
            }),
            server: None,
            item: None,
            in_flight: false,
            upstream_us: None,
            done: false,
        }
    }

    /// The server the request is for.
    pub fn server(&mut self, name: &Arc<str>) {
        // Told twice on the way (routing, then sending): one shared count is enough.
        if !self.server.as_ref().is_some_and(|s| Arc::ptr_eq(s, name)) {
            self.server = Some(name.clone());
        }
    }

    /// The catalog item (tool, prompt) the request names, by its original name.
    pub fn item(&mut self, name: &Arc<str>) {
        self.item = Some(name.clone());
    }

    /// What the request names when it is not a catalog item: a URI, an unknown name.
    pub fn named(&mut self, text: &str) {
        if let Some(audit) = &mut self.audit {
            audit.target = Target::Text(text.into());
        }
    }

    /// The request's arguments (raw JSON), kept when the audit log records them.
    pub fn arguments(&mut self, raw: &str) {
        let wanted = self
            .recorder
            .audit
            .as_ref()
            .is_some_and(|a| a.log_arguments);
        if let (true, Some(audit)) = (wanted, &mut self.audit) {
            audit.arguments = Some(if raw.len() <= MAX_ARGUMENTS {
                raw.into()
            } else {
                format!(
                    "\"[{} bytes, over the {MAX_ARGUMENTS}-byte limit]\"",
                    raw.len()
                )
                .into()
            });
        }
    }

    /// The request goes upstream to `server` (the one named by [`Observation::server`]) now.
    pub fn sent(&mut self, server: &Arc<str>) {
        if self.server.is_none() {
            self.server = Some(server.clone());
        }
        if let Some(server) = &self.server {
            self.recorder.metrics.in_flight(server, 1);
            self.in_flight = true;
        }
    }

    /// When the upstream had the request and its reply.
    pub fn timing(&mut self, timing: &CallTiming) {
        if let (Some(sent), Some(received)) = (timing.sent, timing.received) {
            let micros = received.saturating_duration_since(sent).as_micros();
            self.upstream_us = Some(u64::try_from(micros).unwrap_or(u64::MAX));
        }
    }

    /// Bytes of the reply (or of a streamed reply's events) written so far.
    pub fn replied(&mut self, bytes: usize) {
        self.reply_bytes += bytes as u64;
    }

    /// Moves the observation into a new one (for a reply that streams on after the request
    /// handler returned); this one is left finished without a record.
    pub fn hand_over(&mut self) -> Observation {
        let moved = Observation {
            recorder: self.recorder.clone(),
            started: self.started,
            method: self.method,
            request_bytes: self.request_bytes,
            reply_bytes: self.reply_bytes,
            audit: self.audit.take(),
            server: self.server.take(),
            item: self.item.take(),
            in_flight: self.in_flight,
            upstream_us: self.upstream_us,
            done: false,
        };
        self.in_flight = false;
        self.done = true;
        moved
    }

    /// Ends the observation: metrics, and one audit record whose error message `detail`
    /// gives (asked for only when the audit log runs). Later calls do nothing.
    pub fn finish(&mut self, outcome: Outcome, detail: impl FnOnce() -> Detail) {
        if !self.done {
            self.finish_at(Instant::now(), outcome, detail);
        }
    }

    /// [`finish`](Self::finish) with the request's end read by the caller, who read the clock
    /// at that moment for a figure of its own.
    pub fn finish_at(&mut self, now: Instant, outcome: Outcome, detail: impl FnOnce() -> Detail) {
        if self.done {
            return;
        }
        self.done = true;
        let latency = now.saturating_duration_since(self.started);
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let metrics = &self.recorder.metrics;
        if self.in_flight {
            if let Some(server) = &self.server {
                metrics.in_flight(server, -1);
            }
        }
        let figures = CallFigures {
            method: self.method,
            server: self.server.as_ref(),
            tool: self.item.as_ref(),
            outcome,
            latency_us,
            upstream_us: self.upstream_us,
        };
        metrics.record_call(&figures, now);
        let (Some(audit), Some(sender)) = (self.audit.take(), &self.recorder.audit) else {
            return;
        };
        let AuditPart {
            caller,
            rpc_id,
            target,
            arguments,
        } = audit;
        sender.record(Box::new(AuditRecord {
            at_micros: now_micros().saturating_sub(latency_us),
            method: self.method,
            outcome,
            key: caller.key,
            group: caller.group,
            session: caller.session,
            client: caller.client,
            server: self.server.take(),
            // A catalog item's shared name is moved here, not cloned again.
            target: match (target, self.item.take()) {
                (Target::None, Some(item)) => Target::Item(item),
                (target, _) => target,
            },
            detail: detail(),
            latency_us,
            upstream_us: self.upstream_us,
            request_bytes: self.request_bytes,
            reply_bytes: self.reply_bytes,
            rpc_id,
            arguments,
        }));
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled, || Detail::Static(DROPPED));
    }
}
