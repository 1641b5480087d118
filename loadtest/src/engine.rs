//! Running one load: a thread (and monoio runtime) per core, connections spread over them,
//! each connection a task that keeps one call in flight — back to back (closed loop) or on a
//! fixed schedule (open loop, see `schedule`) — and the measurement window they all share.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpgate::runtime::block_on;

use crate::gate::Gate;
use crate::mcp_conn::McpConn;
use crate::plan::{Plan, Stop};
use crate::progress::{self, Msg, Snapshot};
use crate::schedule::Schedule;
use crate::stats::Stats;
use crate::workers;

/// First pause after a failed connect or handshake; doubled up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_millis(100);
/// How long ending a session at the end of a run may take.
const END_SESSION_TIMEOUT: Duration = Duration::from_secs(1);

/// What a run measured.
pub struct RunResult {
    pub stats: Stats,
    /// From the start of the measurement to the end of the last measured call.
    pub measured: Duration,
}

struct Shared {
    plan: Plan,
    gate: Gate,
}

/// One thread's view of the run.
struct ThreadCtx {
    shared: Arc<Shared>,
    stats: RefCell<Stats>,
    /// The common start (the open-loop schedule's origin).
    t0: Instant,
    /// Calls intended (or, closed loop, started) before this are warm-up.
    measure_start: Instant,
    /// No call is started at or after this (duration runs).
    end: Option<Instant>,
}

/// Sends `Msg::Done` when dropped, so the main thread learns of a thread's end even when it
/// unwinds.
struct DoneGuard(Sender<Msg>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.0.send(Msg::Done);
    }
}

/// Runs `plan` to the end and returns the merged figures.
pub fn run(plan: Plan) -> Result<RunResult, String> {
    let threads = plan.threads;
    let label = plan.progress.clone();
    let warmup = plan.warmup;
    let driver = plan.driver;
    let shared = Arc::new(Shared {
        plan,
        gate: Gate::new(threads),
    });
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for (index, cpu) in workers::placement(threads).into_iter().enumerate() {
        let shared_t = shared.clone();
        let tx = tx.clone();
        let spawned = workers::spawn(index, cpu, move || {
            let _done = DoneGuard(tx.clone());
            let res = block_on(driver, || thread_main(shared_t.clone(), index, tx));
            if res.is_err() {
                shared_t.gate.break_it();
            }
            res
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.gate.break_it();
                return Err(format!("cannot start load thread {index}: {e}"));
            }
        }
    }
    drop(tx);
    progress::watch(&rx, threads, label.as_deref());

    let mut stats = Stats::new();
    let mut start = None;
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok((s, t0))) => {
                stats.merge(&s);
                start = start.or(t0);
            }
            Ok(Err(e)) => failure = Some(format!("a load thread's runtime failed: {e}")),
            Err(_) => failure = Some("a load thread panicked".to_owned()),
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    let measured = match (start, stats.last_done) {
        (Some(t0), Some(last)) => last.saturating_duration_since(t0 + warmup),
        _ => Duration::ZERO,
    };
    Ok(RunResult { stats, measured })
}

/// One thread: open this thread's sessions, wait for the others, run the connections.
/// Returns the thread's figures and the common start instant (`None` if it never came).
async fn thread_main(
    shared: Arc<Shared>,
    index: usize,
    tx: Sender<Msg>,
) -> (Stats, Option<Instant>) {
    let plan = &shared.plan;
    if let Some(window) = plan.busy_poll {
        mcpgate::runtime::busy_poll::start(window);
    }
    let ids: Vec<usize> = (index..plan.connections).step_by(plan.threads).collect();
    // Sessions are opened before the start, concurrently, so handshakes are not measured.
    // One that fails here is retried (and counted) by its connection task.
    let deadline = Instant::now() + plan.timeout;
    let opening: Vec<_> = ids
        .iter()
        .map(|_| {
            let s = shared.clone();
            monoio::spawn(async move { McpConn::open(&s.plan.target, deadline).await.ok() })
        })
        .collect();
    let mut conns = Vec::with_capacity(ids.len());
    for h in opening {
        conns.push(h.await);
    }
    let Some(t0) = shared.gate.arrive_and_wait() else {
        return (Stats::new(), None);
    };
    let ctx = Rc::new(ThreadCtx {
        shared: shared.clone(),
        stats: RefCell::new(Stats::new()),
        t0,
        measure_start: t0 + plan.warmup,
        end: match plan.stop {
            Stop::After(d) => Some(t0 + plan.warmup + d),
            Stop::Requests(_) => None,
        },
    });
    if plan.progress.is_some() {
        monoio::spawn(report_progress(ctx.clone(), index, tx));
    }
    let tasks: Vec<_> = ids
        .into_iter()
        .zip(conns)
        .map(|(g, conn)| monoio::spawn(connection(ctx.clone(), g, conn)))
        .collect();
    for t in tasks {
        t.await;
    }
    (ctx.stats.take(), Some(t0))
}

/// Sends this thread's figures to the main thread once per interval (for the progress line).
async fn report_progress(ctx: Rc<ThreadCtx>, thread: usize, tx: Sender<Msg>) {
    loop {
        monoio::time::sleep(progress::INTERVAL).await;
        let msg = {
            let s = ctx.stats.borrow();
            Msg::Snapshot(Box::new(Snapshot {
                thread,
                ok: s.ok,
                errors: s.errors.total(),
                latency: s.latency.clone(),
            }))
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// Sleeps until `t` (if it is still ahead).
async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        monoio::time::sleep(t - now).await;
    }
}

/// Connection `g`: calls until the run ends, reconnecting (with backoff) when it breaks.
async fn connection(ctx: Rc<ThreadCtx>, g: usize, mut conn: Option<McpConn>) {
    let plan = &ctx.shared.plan;
    let total = plan.connections as u64;
    let quota = match plan.stop {
        Stop::Requests(n) => Some(n / total + u64::from((g as u64) < n % total)),
        Stop::After(_) => None,
    };
    let wheel = plan.mix.wheel_len();
    // Connections start at different points of the mix so short runs still see all of it.
    let mut pos = g * wheel / plan.connections;
    let schedule = Schedule::new(plan.rate, ctx.t0, g, plan.connections);
    let mut measured_calls = 0u64;
    let mut slot = 0u64;
    let mut free_at = ctx.t0;
    let mut backoff = Duration::ZERO;
    let mut ever_open = conn.is_some();
    loop {
        let intended = schedule.intended(slot, Instant::now());
        slot += 1;
        if ctx.end.is_some_and(|end| intended >= end) {
            break;
        }
        let measured = intended >= ctx.measure_start;
        if measured {
            if quota.is_some_and(|q| measured_calls >= q) {
                break;
            }
            measured_calls += 1;
        }
        if schedule.is_open() {
            sleep_until(intended).await;
        }
        if conn.is_none() {
            match McpConn::open(&plan.target, Instant::now() + plan.timeout).await {
                Ok(c) => {
                    conn = Some(c);
                    backoff = Duration::ZERO;
                    if measured && ever_open {
                        ctx.stats.borrow_mut().reconnects += 1;
                    }
                    ever_open = true;
                }
                Err(kind) => {
                    let now = Instant::now();
                    if measured {
                        ctx.stats.borrow_mut().record_error(kind, now);
                    }
                    free_at = now;
                    backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                    let until = now + backoff;
                    sleep_until(ctx.end.map_or(until, |end| until.min(end))).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let send_at = Instant::now();
        let timing = schedule.timing(intended, send_at, free_at);
        let out = c
            .call(&plan.target, &plan.mix, pos, send_at + plan.timeout)
            .await;
        mcpgate::runtime::busy_poll::note_activity();
        pos = (pos + 1) % wheel;
        free_at = Instant::now();
        if measured {
            let mut s = ctx.stats.borrow_mut();
            if schedule.is_open() {
                s.record_send_lag(timing.lag, timing.late);
            }
            match out.result {
                Ok(()) => s.record_ok(
                    out.replied_at.saturating_duration_since(timing.origin),
                    out.replied_at,
                ),
                Err(kind) => s.record_error(kind, out.replied_at),
            }
            s.reconnects += std::mem::take(&mut c.reopened);
        }
        if out.session_lost {
            conn = None;
        }
    }
    if let Some(c) = conn {
        c.end_session(&plan.target, Instant::now() + END_SESSION_TIMEOUT)
            .await;
    }
}
