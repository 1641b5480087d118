//! The control thread's side of a drain: tell every core to drain, wait until each holds no
//! client connection or the grace period ends, then tell the laggards the deadline passed and
//! give their last replies a short, bounded time to leave.
//!
//! Owns: the order and the bounds of those waits, and the two log lines operators see (one
//! when the drain starts, one when it is done, with counts). Must never: wait without a bound,
//! or ignore a second stop signal (that ends the drain at once).

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{begin, pass_deadline, Report, Tally};
use crate::runtime::CoreHandle;

/// How long the cores get to shut their listeners and report what they hold. Each does it in
/// one short job; the bound only matters for a core that is wedged.
const START_WAIT: Duration = Duration::from_secs(5);
/// After the deadline: how long abandoned requests' error replies get to be written.
const CUT_WAIT: Duration = Duration::from_secs(2);

/// How a drain ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainSummary {
    /// What the cores did, summed over those that reported.
    pub tally: Tally,
    /// Client connections open when the drain started.
    pub connections: usize,
    /// Requests in progress when the drain started (SSE replies included).
    pub requests: usize,
    /// Cores that still held connections when the drain gave up on them.
    pub cores_not_idle: usize,
    /// A second stop signal ended the drain early.
    pub interrupted: bool,
}

/// Drains every core in `cores`: new connections are refused at once, requests in progress get
/// up to `grace` to finish, then the rest are abandoned. A signal on `signals` (a second
/// SIGINT/SIGTERM) ends the wait at once. Logs when it starts and when it is done.
pub fn drain_cores(cores: &[CoreHandle], grace: Duration, signals: &Receiver<i32>) -> DrainSummary {
    let started_at = Instant::now();
    let deadline = started_at + grace;
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Report)>();
    let mut asked = 0usize;
    for (index, core) in cores.iter().enumerate() {
        let tx = tx.clone();
        if core.spawn(move || async move { begin(index, tx) }).is_ok() {
            asked += 1;
        }
    }
    drop(tx);

    let mut summary = DrainSummary::default();
    let mut started = vec![false; cores.len()];
    let mut idle = vec![false; cores.len()];
    let mut waiting_start = asked;
    let mut waiting_idle = asked;
    let start_deadline = started_at + START_WAIT;
    let mut record = |summary: &mut DrainSummary, (core, report): (usize, Report)| match report {
        Report::Started {
            connections,
            requests,
            ..
        } => {
            if let Some(seen) = started.get_mut(core).filter(|s| !**s) {
                *seen = true;
                summary.connections += connections;
                summary.requests += requests;
                return (true, false);
            }
            (false, false)
        }
        Report::Idle(tally) => {
            if let Some(seen) = idle.get_mut(core).filter(|s| !**s) {
                *seen = true;
                summary.tally.add(&tally);
                return (false, true);
            }
            (false, false)
        }
    };
    // Every core's listener is shut before the "draining" line: from that line on, a new
    // connection is refused.
    while waiting_start > 0 {
        match wait(&rx, signals, start_deadline) {
            Waited::Report(r) => {
                let (s, i) = record(&mut summary, r);
                waiting_start -= usize::from(s);
                waiting_idle -= usize::from(i);
            }
            Waited::Signal => return interrupted(summary, started_at),
            Waited::Ignored => {}
            Waited::Timeout | Waited::Closed => break,
        }
    }
    tracing::info!(
        connections = summary.connections,
        requests = summary.requests,
        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        "draining: no longer accepting connections; finishing requests in progress"
    );
    let mut deadline_passed = false;
    while waiting_idle > 0 {
        let until = if deadline_passed {
            deadline + CUT_WAIT
        } else {
            deadline
        };
        match wait(&rx, signals, until) {
            Waited::Report(r) => {
                let (_, i) = record(&mut summary, r);
                waiting_idle -= usize::from(i);
            }
            Waited::Signal => return interrupted(summary, started_at),
            Waited::Ignored => {}
            Waited::Timeout if !deadline_passed => {
                deadline_passed = true;
                tracing::warn!(
                    grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                    "drain deadline passed; abandoning the requests still in progress"
                );
                for core in cores {
                    let _ = core.spawn(|| async { pass_deadline() });
                }
            }
            Waited::Timeout | Waited::Closed => break,
        }
    }
    summary.cores_not_idle = waiting_idle;
    tracing::info!(
        answered = summary.tally.answered,
        streams_ended = summary.tally.streams_ended,
        abandoned = summary.tally.abandoned,
        cut = summary.tally.cut,
        cores_not_idle = summary.cores_not_idle,
        elapsed_ms = u64::try_from(started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
        "drained"
    );
    summary
}

fn interrupted(mut summary: DrainSummary, started_at: Instant) -> DrainSummary {
    summary.interrupted = true;
    tracing::warn!(
        elapsed_ms = u64::try_from(started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
        "second stop signal: stopping now without waiting for requests in progress"
    );
    summary
}

enum Waited {
    Report((usize, Report)),
    Signal,
    /// A signal that does not stop anything (SIGHUP: a reload no longer matters).
    Ignored,
    Timeout,
    /// Every core's sender is gone (their runtimes ended): nothing more will come.
    Closed,
}

/// The next report, a stop signal, or `until`, whichever comes first.
fn wait(reports: &Receiver<(usize, Report)>, signals: &Receiver<i32>, until: Instant) -> Waited {
    let left = until.saturating_duration_since(Instant::now());
    crossbeam_channel::select! {
        recv(reports) -> r => match r {
            Ok(r) => Waited::Report(r),
            Err(_) => Waited::Closed,
        },
        recv(signals) -> s => match s {
            Ok(signal_hook::consts::SIGHUP) => Waited::Ignored,
            Ok(_) => Waited::Signal,
            // The signal thread is gone; keep draining without it.
            Err(_) => match reports.recv_timeout(left) {
                Ok(r) => Waited::Report(r),
                Err(RecvTimeoutError::Timeout) => Waited::Timeout,
                Err(RecvTimeoutError::Disconnected) => Waited::Closed,
            },
        },
        default(left) => Waited::Timeout,
    }
}
