//! A child process whose stdout and stderr are captured line by line, with event-driven waits
//! for a line and a Drop guard that never leaks the process or its children.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Default)]
struct LogState {
    lines: Vec<(Stream, String)>,
    /// Streams not yet at EOF.
    open: usize,
}

#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

/// A spawned process in its own process group (so the whole tree can be killed), with its
/// output captured by two reader threads.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: Arc<Log>,
}

/// How long a process gets to exit after SIGTERM before its process group is SIGKILLed.
const TERM_GRACE: Duration = Duration::from_secs(10);

impl Proc {
    /// Spawns `cmd` with stdin null and stdout/stderr piped, in a new process group.
    ///
    /// The child also gets SIGKILL if the spawning *thread* dies, so an aborted test binary
    /// (stack overflow, `panic = abort`) leaks nothing. Spawn from the test's own thread (the
    /// one running the test future), which outlives every `Proc` the test owns; never from a
    /// blocking-pool thread, which may exit while the process is still needed.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        let log = Arc::new(Log::default());
        log.state.lock().unwrap().open = 2;
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        spawn_reader(stdout, Stream::Stdout, log.clone());
        spawn_reader(stderr, Stream::Stderr, log.clone());
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits for a stdout line matching `pred`; panics with the captured output if the process
    /// ends (closes both streams) first or `timeout` passes.
    pub fn wait_stdout_line(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.try_wait_line(Stream::Stdout, &pred, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for a stderr line matching `pred` (e.g. a log line reporting an event).
    pub fn wait_stderr_line(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.try_wait_line(Stream::Stderr, &pred, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A position in the captured output: [`Self::wait_stderr_line_after`] only looks at lines
    /// captured after it.
    pub fn mark(&self) -> usize {
        self.log.state.lock().unwrap().lines.len()
    }

    /// Waits for a stderr line captured after `mark` that matches `pred`.
    pub fn wait_stderr_line_after(
        &mut self,
        mark: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        self.try_wait_line_from(Stream::Stderr, mark, &pred, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until `count` stderr lines captured after `mark` match `pred`; returns them.
    pub fn wait_stderr_lines_after(
        &mut self,
        mark: usize,
        pred: impl Fn(&str) -> bool,
        count: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.log.state.lock().unwrap();
        loop {
            let found: Vec<String> = state.lines[mark.min(state.lines.len())..]
                .iter()
                .filter(|(s, l)| *s == Stream::Stderr && pred(l))
                .map(|(_, l)| l.clone())
                .collect();
            if found.len() >= count {
                return found;
            }
            let now = Instant::now();
            if state.open == 0 || now >= deadline {
                drop(state);
                panic!(
                    "{}: {} of {count} expected stderr lines within {timeout:?}\n{}",
                    self.name,
                    found.len(),
                    self.log_tail()
                );
            }
            state = self
                .log
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Sends `signal` to the process (not its group).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        assert!(pid > 0, "{} was already reaped", self.name);
        // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Waits for the process to exit (at most `timeout`, else it is SIGKILLed and the test
    /// fails) and returns its status. Its captured output stays readable.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the process was already reaped");
        let pid = child.id() as libc::pid_t;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(timeout) {
            Ok(status) => status.expect("wait for the process"),
            Err(_) => {
                // SAFETY: the process is not reaped yet (its waiter has not returned), so the
                // pid is still its group's id.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = rx.recv();
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
        }
    }

    /// Waits for a line on `stream` matching `pred`; the error carries the captured output.
    pub fn try_wait_line(
        &mut self,
        stream: Stream,
        pred: &dyn Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        self.try_wait_line_from(stream, 0, pred, timeout)
    }

    fn try_wait_line_from(
        &mut self,
        stream: Stream,
        from: usize,
        pred: &dyn Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.log.state.lock().unwrap();
        let mut checked = from.min(state.lines.len());
        loop {
            for (s, line) in &state.lines[checked..] {
                if *s == stream && pred(line) {
                    return Ok(line.clone());
                }
            }
            checked = state.lines.len();
            if state.open == 0 {
                drop(state);
                let status = self.child.as_mut().and_then(|c| c.wait().ok());
                return Err(format!(
                    "{} exited ({status:?}) before printing the expected {stream:?} line\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(state);
                return Err(format!(
                    "{} did not print the expected {stream:?} line within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            // Woken by every new line and by EOF; the bound only caps the whole wait.
            state = self
                .log
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// The last lines of captured output, for failure messages.
    pub fn log_tail(&self) -> String {
        let state = self.log.state.lock().unwrap();
        let start = state.lines.len().saturating_sub(200);
        let mut out = format!(
            "--- last output of {} (pid {}) ---\n",
            self.name,
            self.pid()
        );
        for (stream, line) in &state.lines[start..] {
            let tag = match stream {
                Stream::Stdout => "out",
                Stream::Stderr => "err",
            };
            out.push_str(tag);
            out.push_str("| ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("--- end ---");
        out
    }

    /// All captured stderr so far.
    pub fn stderr_text(&self) -> String {
        let state = self.log.state.lock().unwrap();
        state
            .lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stderr)
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn spawn_reader(pipe: impl Read + Send + 'static, stream: Stream, log: Arc<Log>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line =
                        strip_ansi(String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']));
                    log.state.lock().unwrap().lines.push((stream, line));
                    log.changed.notify_all();
                }
            }
        }
        log.state.lock().unwrap().open -= 1;
        log.changed.notify_all();
    });
}

/// Removes ANSI escape sequences (log colours) so lines can be matched and read as text.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final byte in '@'..='~'
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as libc::pid_t;
        // Ask politely (the gateway shuts its own upstream children down on SIGTERM)...
        // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            status
        });
        if rx.recv_timeout(TERM_GRACE).is_err() {
            // ...then kill the whole process group (the process is not reaped yet, so its
            // pid is still its group's id).
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = waiter.join();
        // Anything the process left behind in its group (a leaked upstream child) goes too. The
        // group id cannot be reused while any member is alive.
        // SAFETY: as above; ESRCH when the group is empty is harmless.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}
