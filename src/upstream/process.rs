//! The OS side of a stdio upstream's child process: spawning it into its own process group
//! with socketpairs for stdin and stdout, signalling that group, reaping the child, copying its
//! stderr into the log (bounded line reading), newline-delimited framing, and small helpers for
//! the dedicated threads (blocking on a oneshot, bounded joins).
//!
//! Owns: the child's pid and its lifetime from spawn to reap. Must never: run on a worker core
//! (everything here blocks), signal a process group once its leader has been reaped (the pid could
//! be reused), or buffer a line without bound.

use std::borrow::Cow;
use std::future::Future;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::{ChildStderr, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use super::stdio::StdioSpec;
use crate::jsonrpc::write_json_str;

/// Longest stderr line written to the log; the rest of a longer line is counted, not kept.
pub const STDERR_LINE_MAX: usize = 4096;
/// Buffer size for the stderr reader.
const PIPE_BUFFER: usize = 64 * 1024;
/// How much of an offending line goes into a log message.
const LOG_PREVIEW: usize = 200;

/// Locks a mutex, ignoring poisoning: every critical section here leaves the data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `now + d`, or `None` when that is too far away to represent (i.e. "never").
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// A freshly spawned child with the gateway's ends of its stdio.
pub struct Spawned {
    /// The child, to signal, wait for and reap.
    pub process: Arc<ChildProcess>,
    /// Socketpair ends: an async runtime can read and write these (it cannot use pipes).
    pub stdin: UnixStream,
    pub stdout: UnixStream,
    /// A pipe, read by a blocking thread.
    pub stderr: ChildStderr,
}

/// Starts the child described by `spec` in its own process group, its stdin and stdout
/// connected to socketpairs and its stderr to a pipe.
///
/// Must be called on the thread that supervises the child for its whole life: the child gets
/// `PR_SET_PDEATHSIG(SIGKILL)`, which Linux ties to the *thread* that forked it.
pub fn spawn(spec: &StdioSpec) -> io::Result<Spawned> {
    // Both ends are close-on-exec; the child gets its end as fd 0 or 1 (which drops the flag).
    let (stdin, child_stdin) = UnixStream::pair()?;
    let (stdout, child_stdout) = UnixStream::pair()?;
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(OwnedFd::from(child_stdin)))
        .stdout(Stdio::from(OwnedFd::from(child_stdout)))
        .stderr(Stdio::piped());
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (setpgid, prctl, getppid); it allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(move || {
            // Own process group, so SIGTERM/SIGKILL to the group reach grandchildren too.
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Die with the gateway (the supervising thread) even if it is SIGKILLed.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal would ever come.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("gateway exited during spawn"));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    // The child's ends must close here, or its stdin would never see end of input.
    drop(cmd);
    let pid = child.id();
    let Some(stderr) = child.stderr.take() else {
        // Cannot happen with Stdio::piped(); still, never leave the child behind.
        let process = ChildProcess::new(pid);
        process.signal_group(libc::SIGKILL);
        reap(&process, |_| {});
        return Err(io::Error::other("child spawned without a stderr pipe"));
    };
    // `Child` is dropped here: dropping neither kills nor reaps; `reap` waits by pid.
    Ok(Spawned {
        process: Arc::new(ChildProcess::new(pid)),
        stdin,
        stdout,
        stderr,
    })
}

struct ProcState {
    /// The group leader has exited (maybe not reaped yet): outsiders must not signal it any more.
    leader_exited: bool,
    /// Set once the child is reaped: how it ended.
    exit: Option<String>,
}

/// A spawned child, shared by its supervisor, its pipe threads and `shutdown`.
pub struct ChildProcess {
    pid: u32,
    state: Mutex<ProcState>,
    reaped: Condvar,
}

impl ChildProcess {
    fn new(pid: u32) -> ChildProcess {
        ChildProcess {
            pid,
            state: Mutex::new(ProcState {
                leader_exited: false,
                exit: None,
            }),
            reaped: Condvar::new(),
        }
    }

    /// The child's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `sig` to the child's whole process group. Returns false (and sends nothing) once the
    /// leader has exited: from then on only [`reap`] may signal the group, before it frees the pid.
    pub fn signal_group(&self, sig: libc::c_int) -> bool {
        let st = lock(&self.state);
        if st.leader_exited {
            return false;
        }
        // SAFETY: killpg has no memory-safety preconditions. The group id is our unreaped child's
        // pid (checked under the lock that `reap` takes before reaping), so it cannot be reused.
        unsafe { libc::killpg(self.pid as libc::pid_t, sig) == 0 }
    }

    /// Waits until the child has been reaped or `timeout` passed; returns how it ended.
    pub fn wait_exit(&self, timeout: Duration) -> Option<String> {
        let deadline = deadline_after(timeout);
        let mut st = lock(&self.state);
        loop {
            if let Some(exit) = &st.exit {
                return Some(exit.clone());
            }
            st = match deadline {
                None => self.reaped.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.reaped
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// How the child ended, once it is reaped.
    pub fn exit(&self) -> Option<String> {
        lock(&self.state).exit.clone()
    }
}

/// Blocks until the child exits, then: kills whatever is left of its process group (orphaned
/// grandchildren), calls `on_exit` with a description such as `exit status: 1` (pending calls
/// fail there, before the restart logic runs), reaps the child, and wakes [`ChildProcess::wait_exit`].
pub fn reap(process: &ChildProcess, on_exit: impl FnOnce(&str)) {
    let pid = process.pid as libc::pid_t;
    // WNOWAIT: learn that the leader exited without reaping it, so the pid (= group id) stays
    // ours while we signal the rest of the group.
    let (desc, still_ours) = loop {
        // SAFETY: an all-zero siginfo_t is a valid value (plain C struct).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            // SAFETY: waitid succeeded for a child exit, so the SIGCHLD fields are the ones filled.
            break (
                describe_exit(info.si_code, unsafe { info.si_status() }),
                true,
            );
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            // ECHILD: someone else reaped it (e.g. SIGCHLD set to SIG_IGN). It is gone either way.
            break (format!("exit status unknown: {err}"), false);
        }
    };
    {
        let mut st = lock(&process.state);
        st.leader_exited = true;
        if still_ours {
            // SAFETY: no memory-safety preconditions; the leader is an unreaped zombie, so the
            // group id is still ours. ESRCH (nothing left) is expected and ignored.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
        }
    }
    on_exit(&desc);
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid, writable c_int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    let mut st = lock(&process.state);
    st.exit = Some(desc);
    process.reaped.notify_all();
}

/// "exit status: 3", "killed by signal 9 (SIGKILL)", ... from a waitid result.
fn describe_exit(code: libc::c_int, status: libc::c_int) -> String {
    match code {
        libc::CLD_EXITED => format!("exit status: {status}"),
        libc::CLD_KILLED | libc::CLD_DUMPED => {
            let name = match status {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGPIPE => " (SIGPIPE)",
                libc::SIGBUS => " (SIGBUS)",
                _ => "",
            };
            let core = if code == libc::CLD_DUMPED {
                ", core dumped"
            } else {
                ""
            };
            format!("killed by signal {status}{name}{core}")
        }
        _ => format!("ended (code {code}, status {status})"),
    }
}

/// One line from [`LineReader`], without its `\n` (and `\r`).
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line within the limit.
    Full(&'a [u8]),
    /// A line over the limit: its first `max` bytes and its whole length. The rest was skipped.
    TooLong { head: &'a [u8], len: usize },
}

/// Reads newline-delimited lines, keeping at most `max` bytes of any one line in memory.
pub struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    max: usize,
}

impl<R: Read> LineReader<R> {
    /// A reader whose lines longer than `max` bytes come back as [`Line::TooLong`].
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::with_capacity(PIPE_BUFFER, inner),
            line: Vec::new(),
            max,
        }
    }

    /// The next line; `None` at end of stream. A last line without `\n` is still returned.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.line.clear();
        let mut skipped = 0usize;
        let mut seen_any = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !seen_any {
                    return Ok(None);
                }
                break;
            }
            seen_any = true;
            let (chunk, used, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            let room = self.max.saturating_sub(self.line.len());
            let take = chunk.len().min(room);
            self.line.extend_from_slice(&chunk[..take]);
            skipped = skipped.saturating_add(chunk.len() - take);
            self.inner.consume(used);
            if done {
                break;
            }
        }
        if skipped > 0 {
            return Ok(Some(Line::TooLong {
                head: &self.line,
                len: self.line.len().saturating_add(skipped),
            }));
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(Some(Line::Full(&self.line)))
    }
}

/// The stderr thread's body: every line goes to the log (truncated), until end of stream.
pub fn stderr_loop(server: &str, stderr: ChildStderr) {
    let mut lines = LineReader::new(stderr, STDERR_LINE_MAX);
    loop {
        match lines.next_line() {
            Ok(Some(Line::Full(l))) => {
                let line = String::from_utf8_lossy(l);
                tracing::info!(server = %server, "stderr: {line}");
            }
            Ok(Some(Line::TooLong { head, len })) => {
                let line = String::from_utf8_lossy(head);
                tracing::info!(server = %server, "stderr: {line}... ({len} bytes, truncated)");
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(server = %server, "reading the server's stderr failed: {e}");
                return;
            }
        }
    }
}

/// Linux keeps 15 bytes of a thread name.
pub(crate) fn thread_name(role: &str, server: &str) -> String {
    let mut n = format!("mcp-{role}-{server}");
    let mut end = n.len().min(15);
    while !n.is_char_boundary(end) {
        end -= 1;
    }
    n.truncate(end);
    n
}

/// Joins the child's threads; one still stuck after `limit` (a grandchild outside the process
/// group holding a pipe) is left to finish on its own.
pub(crate) fn join_bounded(name: &str, threads: Vec<JoinHandle<()>>, limit: Duration) {
    let deadline = deadline_after(limit);
    for h in threads {
        while !h.is_finished() && deadline.is_some_and(|d| Instant::now() < d) {
            thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            tracing::warn!(server = %name, "a pipe thread is still busy after the child exited; detaching it");
        }
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this (non-worker) thread, parking between polls; `None` after `timeout`.
pub(crate) fn block_on_timeout<F: Future + Unpin>(
    mut fut: F,
    timeout: Duration,
) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = deadline_after(timeout);
    loop {
        if let Poll::Ready(v) = Pin::new(&mut fut).poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                thread::park_timeout(left);
            }
        }
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params>}` and `\n`. Raw newlines
/// in `params` (only legal as whitespace in valid JSON) become spaces to keep the framing.
pub(crate) fn encode_message(id: Option<u64>, method: &str, params: Option<&[u8]>) -> Vec<u8> {
    let params = params.filter(|p| !p.trim_ascii().is_empty());
    let mut f = Vec::with_capacity(48 + method.len() + params.map_or(0, <[u8]>::len));
    f.extend_from_slice(br#"{"jsonrpc":"2.0","#);
    if let Some(id) = id {
        f.extend_from_slice(br#""id":"#);
        f.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        f.push(b',');
    }
    f.extend_from_slice(br#""method":"#);
    write_json_str(&mut f, method);
    if let Some(p) = params {
        f.extend_from_slice(br#","params":"#);
        let start = f.len();
        f.extend_from_slice(p);
        if memchr::memchr2(b'\n', b'\r', p).is_some() {
            for b in &mut f[start..] {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
        }
    }
    f.extend_from_slice(b"}\n");
    f
}

/// The gateway's answer to a request a server sent it, and `\n`: `ping` gets `{}`, any other
/// method -32601 (the gateway serves no other server→client request yet).
pub(crate) fn encode_answer_to_server(method: &str, id: crate::jsonrpc::RawJson<'_>) -> Vec<u8> {
    if method == "ping" {
        let mut f = Vec::with_capacity(48);
        f.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        f.extend_from_slice(id.get().as_bytes());
        f.extend_from_slice(b",\"result\":{}}\n");
        return f;
    }
    encode_error_to_server(id, -32601, &format!("Method not found: {method}"))
}

/// A JSON-RPC error answer to the server's request `id`, newline-terminated.
pub(crate) fn encode_error_to_server(
    id: crate::jsonrpc::RawJson<'_>,
    code: i32,
    message: &str,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(64 + message.len());
    f.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    f.extend_from_slice(id.get().as_bytes());
    f.extend_from_slice(br#","error":{"code":"#);
    f.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    f.extend_from_slice(br#","message":"#);
    write_json_str(&mut f, message);
    f.extend_from_slice(b"}}\n");
    f
}

/// The id of an over-long reply, when it is the first key or follows `"jsonrpc":"2.0"` (so it is
/// certainly the top-level id), to fail that call at once instead of letting it time out.
pub(crate) fn leading_id(head: &[u8]) -> Option<u64> {
    let mut rest = head.trim_ascii_start().strip_prefix(b"{")?;
    for _ in 0..2 {
        rest = rest.trim_ascii_start();
        if let Some(r) = rest.strip_prefix(br#""id""#) {
            let r = r.trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
            let digits = r.iter().take_while(|b| b.is_ascii_digit()).count();
            let after = r[digits..].trim_ascii_start();
            if digits == 0 || !(after.starts_with(b",") || after.starts_with(b"}")) {
                return None;
            }
            return std::str::from_utf8(&r[..digits]).ok()?.parse().ok();
        }
        let r = rest
            .strip_prefix(br#""jsonrpc""#)?
            .trim_ascii_start()
            .strip_prefix(b":")?;
        rest = r
            .trim_ascii_start()
            .strip_prefix(br#""2.0""#)?
            .trim_ascii_start()
            .strip_prefix(b",")?;
    }
    None
}

/// The start of a line, for log messages.
pub(crate) fn preview(line: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(&line[..line.len().min(LOG_PREVIEW)])
}

#[cfg(test)]
mod tests;
