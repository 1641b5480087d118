//! A stdio upstream's supervision, on its own threads: start the child, hand its pipes to the
//! owning core, run the MCP handshake, wait for the child to end, back off and start it again
//! until shutdown; and stopping a child (stdin closed, then signals after a grace period).
//!
//! Owns: the child's life. Must never: run on a worker core (spawning and reaping block).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{on_stdout_line, Conn, Inner, StdioState, BROKEN_PIPE_GRACE, QUEUE_SLACK};
use crate::upstream::backoff::Backoff;
use crate::upstream::handshake::{
    initialize_request, parse_initialize_reply, INITIALIZED_NOTIFICATION,
};
use crate::upstream::pending::PendingCalls;
use crate::upstream::pipes;
use crate::upstream::process::{
    self, block_on_timeout, deadline_after, join_bounded, lock, thread_name, ChildProcess,
};
use crate::upstream::InitializeInfo;

/// The supervisor thread: run a child, wait for it to end, back off, repeat until shutdown.
pub(super) fn supervise(inner: Arc<Inner>) {
    let name = inner.spec.name.clone();
    let mut backoff = Backoff::default();
    loop {
        {
            let mut s = lock(&inner.shared);
            if s.shutdown {
                break;
            }
            s.state = StdioState::Starting;
            inner.changed.notify_all();
        }
        let (reason, ready_for, threads) = run_child(&inner);
        if lock(&inner.shared).shutdown {
            tracing::info!(server = %name, "stdio server shut down: {reason}");
            join_bounded(&name, threads, Duration::from_secs(2));
            break;
        }
        let requested = std::mem::take(&mut lock(&inner.shared).restart_requested);
        if requested {
            tracing::info!(server = %name, "stdio server restarting on request: {reason}");
            {
                let mut s = lock(&inner.shared);
                s.last_error = Some(format!("restarted on request after: {reason}"));
                s.first_attempt_done = true;
                s.restarts += 1;
            }
            join_bounded(&name, threads, Duration::from_secs(2));
            continue;
        }
        tracing::warn!(server = %name, "stdio server stopped: {reason}");
        let pause = backoff.pause_after(ready_for);
        let retry_at = deadline_after(pause).unwrap_or_else(Instant::now);
        let mut s = lock(&inner.shared);
        s.last_error = Some(reason);
        s.first_attempt_done = true;
        s.state = StdioState::Backoff { retry_at };
        inner.changed.notify_all();
        drop(s);
        join_bounded(&name, threads, Duration::from_secs(2));
        let mut s = lock(&inner.shared);
        while !s.shutdown && !s.restart_requested {
            let left = retry_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = inner
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if s.shutdown {
            break;
        }
        if s.restart_requested {
            s.restart_requested = false;
            tracing::info!(server = %name, "stdio server restarting on request, without waiting out its backoff");
        }
        s.restarts += 1;
    }
    let mut s = lock(&inner.shared);
    s.state = StdioState::Stopped;
    inner.changed.notify_all();
}

/// Spawns one child, handshakes, serves it until it is reaped. Returns why it ended, how long it
/// was Ready, and its pipe threads (finishing; the caller joins them after publishing the new state).
fn run_child(inner: &Arc<Inner>) -> (String, Duration, Vec<JoinHandle<()>>) {
    let name = &inner.spec.name;
    let (conn, threads) = match start_child(inner) {
        Ok(started) => started,
        Err(reason) => return (reason, Duration::ZERO, Vec::new()),
    };
    // A restart asked for while this child was being spawned replaces it before it serves.
    let shutting_down = {
        let mut s = lock(&inner.shared);
        s.child = Some(conn.clone());
        inner.changed.notify_all();
        s.shutdown || s.restart_requested
    };
    let (mut ready_at, mut reason) = (None, None);
    if !shutting_down {
        match handshake(inner, &conn) {
            Ok(info) => {
                let (pid, version) = (conn.process.pid(), info.protocol_version.clone());
                let mut s = lock(&inner.shared);
                if !s.shutdown {
                    s.state = StdioState::Ready;
                    s.info = Some(info);
                    s.first_attempt_done = true;
                    *lock(&inner.current) = Some(conn.clone());
                    ready_at = Some(Instant::now());
                    inner.changed.notify_all();
                    drop(s);
                    // Logged once calls are accepted: the line is the event that says so.
                    tracing::info!(server = %name, pid, version = %version, "stdio server ready");
                }
            }
            Err(e) => {
                let mut s = lock(&inner.shared);
                s.last_error = Some(format!("handshake failed: {e}"));
                s.first_attempt_done = true;
                inner.changed.notify_all();
                reason = s.last_error.clone();
            }
        }
    }
    if ready_at.is_none() {
        conn.process.signal_group(libc::SIGKILL);
    }
    let exit = conn.process.wait_exit(Duration::MAX).unwrap_or_default();
    {
        let mut cur = lock(&inner.current);
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
            *cur = None;
        }
    }
    lock(&inner.shared).child = None;
    let reason = reason.unwrap_or_else(|| format!("process exited ({exit})"));
    (
        reason,
        ready_at.map_or(Duration::ZERO, |t| t.elapsed()),
        threads,
    )
}

/// Spawns the child, its threads (a waiter that reaps it and fails pending calls at exit, and
/// the stderr logger) and, on the owner core, the tasks that drive its stdin and stdout. On
/// failure nothing is left running.
fn start_child(inner: &Inner) -> Result<(Arc<Conn>, Vec<JoinHandle<()>>), String> {
    let name = &inner.spec.name;
    let spawned = process::spawn(&inner.spec)
        .map_err(|e| format!("could not start '{}': {e}", inner.spec.command))?;
    let proc = spawned.process;
    let (tx, frames) = pipes::frame_queue(inner.spec.max_in_flight.saturating_add(QUEUE_SLACK));
    let conn = Arc::new(Conn {
        tx,
        pending: PendingCalls::default(),
        process: proc.clone(),
    });
    let named = |role: &str| thread::Builder::new().name(thread_name(role, name));
    let (c, n) = (conn.clone(), name.clone());
    let waiter = named("wait").spawn(move || {
        let reason = |exit: &str| format!("process exited ({exit}) during the call");
        process::reap(&c.process, |exit| c.pending.close(&n, &reason(exit)));
        c.tx.close();
    });
    let waiter = match waiter {
        Ok(h) => h,
        Err(e) => {
            proc.signal_group(libc::SIGKILL);
            process::reap(&proc, |_| {});
            return Err(format!("could not start a thread: {e}"));
        }
    };
    let mut threads = vec![waiter];
    let (n, stderr) = (name.clone(), spawned.stderr);
    let logger = named("err").spawn(move || process::stderr_loop(&n, stderr));
    let (c, n, max, driver) = (
        conn.clone(),
        name.clone(),
        inner.spec.max_line_bytes,
        inner.owner.driver(),
    );
    let (stdin, stdout) = (spawned.stdin, spawned.stdout);
    let driven = inner
        .owner
        .spawn(move || drive_pipes(n, c, stdin, stdout, frames, max, driver))
        .map_err(|e| e.to_string());
    let failed = match (logger, driven) {
        (Ok(h), Ok(())) => {
            threads.push(h);
            None
        }
        (Err(e), _) => Some(format!("could not start a thread: {e}")),
        (Ok(h), Err(e)) => {
            threads.push(h);
            Some(e)
        }
    };
    if let Some(reason) = failed {
        proc.signal_group(libc::SIGKILL);
        proc.wait_exit(Duration::MAX);
        join_bounded(name, threads, Duration::from_secs(2));
        return Err(reason);
    }
    Ok((conn, threads))
}

/// Runs on the owner core: the stdin writer as its own task, the stdout reader in this one.
/// A child that breaks either pipe but keeps running is useless and gets killed.
async fn drive_pipes(
    name: String,
    conn: Arc<Conn>,
    stdin: std::os::unix::net::UnixStream,
    stdout: std::os::unix::net::UnixStream,
    frames: pipes::FrameReceiver,
    max: usize,
    driver: crate::runtime::IoDriver,
) {
    let streams =
        pipes::attach(stdin, driver).and_then(|i| Ok((i, pipes::attach(stdout, driver)?)));
    let (stdin, stdout) = match streams {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(server = %name, "cannot drive the server's pipes: {e}");
            conn.process.signal_group(libc::SIGKILL);
            return;
        }
    };
    let (n, c) = (name.clone(), conn.clone());
    monoio::spawn(async move {
        if let Some(e) = pipes::write_frames(stdin, frames).await {
            tracing::warn!(server = %n, "writing to the server's stdin failed: {e}");
            kill_if_still_running(&n, &c.process, "its stdin is broken").await;
        }
    });
    let end = pipes::read_lines(stdout, max, |line| on_stdout_line(&name, &conn, max, line)).await;
    // The waiter fails pending calls when the process exits.
    kill_if_still_running(&name, &conn.process, &format!("it {end}")).await;
}

/// Stops one child gracefully: closes its stdin, waits up to `grace`, SIGTERMs its process
/// group, waits up to `grace` again, then SIGKILLs it. Blocking.
pub(super) fn stop_child(conn: &Conn, grace: Duration) {
    conn.tx.close();
    if conn.process.wait_exit(grace).is_none() {
        conn.process.signal_group(libc::SIGTERM);
        if conn.process.wait_exit(grace).is_none() {
            conn.process.signal_group(libc::SIGKILL);
        }
    }
}

async fn kill_if_still_running(name: &str, process: &ChildProcess, why: &str) {
    monoio::time::sleep(BROKEN_PIPE_GRACE).await;
    if process.exit().is_none() && process.signal_group(libc::SIGKILL) {
        tracing::warn!(server = %name, "killed the server: {why} but it kept running");
    }
}

/// `initialize` → reply → `notifications/initialized`, through the child's normal pipes.
fn handshake(inner: &Inner, conn: &Conn) -> Result<InitializeInfo, String> {
    let name = &inner.spec.name;
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let rx = conn
        .pending
        .register(name, id, usize::MAX, None)
        .map_err(|e| e.to_string())?;
    let mut frame = initialize_request(id);
    frame.push(b'\n');
    conn.send(name, frame).map_err(|e| e.to_string())?;
    let reply = match block_on_timeout(rx, inner.handshake_timeout) {
        None => {
            conn.pending.take(id);
            return Err(format!(
                "no answer to initialize within {} ms",
                inner.handshake_timeout.as_millis()
            ));
        }
        Some(Err(_)) => return Err("the reply channel closed".to_owned()),
        Some(Ok(Err(e))) => {
            return Err(match conn.process.wait_exit(Duration::from_secs(1)) {
                Some(exit) => format!("process exited ({exit}) before answering initialize"),
                None => e.to_string(),
            })
        }
        Some(Ok(Ok(line))) => line,
    };
    let info = parse_initialize_reply(&reply)?;
    let mut note = INITIALIZED_NOTIFICATION.to_vec();
    note.push(b'\n');
    conn.send(name, note).map_err(|e| e.to_string())?;
    Ok(info)
}
