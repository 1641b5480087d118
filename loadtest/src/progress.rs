//! The live progress line: each load thread sends a snapshot of its figures once a second (a
//! copy, so nothing is shared on the hot path); the main thread merges the latest ones and
//! prints calls/s, p99 so far and errors to stderr.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One load thread's measured figures so far.
pub struct Snapshot {
    pub thread: usize,
    pub ok: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

/// What a load thread tells the main thread.
pub enum Msg {
    Snapshot(Box<Snapshot>),
    /// The thread has finished (sent by a drop guard, so also when it panicked).
    Done,
}

/// How often load threads send a snapshot.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Receives until all `threads` are done, printing a line per interval when `label` is given.
pub fn watch(rx: &Receiver<Msg>, threads: usize, label: Option<&str>) {
    let mut latest: Vec<Option<Box<Snapshot>>> = (0..threads).map(|_| None).collect();
    let started = Instant::now();
    let mut last_print = started;
    let mut last_ok = 0u64;
    let mut done = 0;
    while done < threads {
        match rx.recv() {
            Ok(Msg::Done) => done += 1,
            Ok(Msg::Snapshot(snapshot)) => {
                if let Some(slot) = latest.get_mut(snapshot.thread) {
                    *slot = Some(snapshot);
                }
                let Some(label) = label else { continue };
                let now = Instant::now();
                if now.duration_since(last_print) < INTERVAL.mul_f64(0.9) {
                    continue;
                }
                let (ok, errors, p99) = merged(&latest);
                let rate = (ok.saturating_sub(last_ok)) as f64
                    / now.duration_since(last_print).as_secs_f64();
                eprintln!(
                    "{label}{:>4.0}s  {rate:>10.0} calls/s  p99 {p99} µs  ok {ok}  errors {errors}",
                    now.duration_since(started).as_secs_f64()
                );
                last_print = now;
                last_ok = ok;
            }
            Err(_) => break,
        }
    }
}

/// Calls that succeeded, errors and p99 (µs) over the latest snapshot of every thread.
fn merged(latest: &[Option<Box<Snapshot>>]) -> (u64, u64, u64) {
    let mut ok = 0;
    let mut errors = 0;
    let mut hist: Option<Histogram<u64>> = None;
    for s in latest.iter().flatten() {
        ok += s.ok;
        errors += s.errors;
        match hist.as_mut() {
            Some(acc) => {
                let _ = acc.add(&s.latency);
            }
            None => hist = Some(s.latency.clone()),
        }
    }
    let p99 = hist.map_or(0, |h| h.value_at_quantile(0.99));
    (ok, errors, p99)
}
