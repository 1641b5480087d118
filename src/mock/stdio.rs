//! The mock upstream's stdio transport: newline-delimited JSON-RPC on stdin/stdout, the way MCP
//! clients run a server as a child process.
//!
//! Two threads, no async runtime:
//! - the calling thread reads lines and runs [`MockServer::handle`] on each;
//! - an output thread owns the writer *and* the timers. Replies reach it over a channel, either
//!   "now" or "at instant T". It keeps the delayed ones in a min-heap and waits on the channel with
//!   the nearest deadline as timeout, so any number of delayed calls are in flight at once and each
//!   is sent when its own delay runs out. It writes everything that is ready into one buffer and
//!   flushes once per burst.
//!
//! Why not monoio: stdin and stdout may be pipes, files or a terminal, which monoio cannot read or
//! write (its pipe type has no I/O). Reading them needs a blocking thread anyway, and then a timer
//! heap beside the writer is all the concurrency the delays need. It is also simple, with no
//! runtime to set up.
//!
//! [`serve_lines`] works over any `BufRead`/`Write`, so tests drive it with in-memory input or a
//! socket pair. [`run_stdio`] binds it to the process's stdin/stdout and acts out `fault_exit`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{self, BufRead, Write};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::{MockConfig, MockFault, MockOutcome, MockServer};

/// The line `fault_garbage` writes before its real reply.
pub const GARBAGE_LINE: &[u8] = b"this is not json-rpc {{{";

/// Exit status of the process after `fault_exit` in stdio mode.
pub const FAULT_EXIT_STATUS: i32 = 3;

/// Bytes gathered before a write even in the middle of a burst, so memory stays bounded.
const MAX_BATCH: usize = 256 * 1024;

/// Messages taken off the channel per burst before due timers get their turn.
const MAX_BURST: usize = 1024;

/// Why [`serve_lines`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeEnd {
    /// The input reached end of file. Replies still waiting out a delay were sent first.
    InputClosed,
    /// The output was closed (broken pipe), so there was nobody left to answer.
    OutputClosed,
    /// `fault_exit` was called. What had been answered before it was flushed; nothing else was.
    ExitRequested,
}

/// What the reading side sends to the output thread.
enum Out {
    /// Write this line as soon as possible.
    Now(Vec<u8>),
    /// Write this line at the given instant.
    At(Instant, Vec<u8>),
    /// Flush what was already sent and stop, dropping the pending delayed replies.
    Abort,
}

/// A delayed reply in the timer heap. Ordered so the `BinaryHeap` (a max-heap) pops the earliest
/// deadline first, and replies with the same deadline in arrival order.
struct Pending {
    /// When to send it.
    due: Instant,
    /// Arrival order, to break ties between equal deadlines.
    seq: u64,
    /// The reply, without its newline.
    line: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// Serves MCP over stdin/stdout (newline-delimited JSON-RPC) until stdin closes. Requests with a delay
/// must not serialize: many calls in flight at once each finish after their own delay (here, a timer
/// heap on the output thread; see the module docs for why not monoio).
/// Writes are batched (flush once per burst, not per message). Exits 0 when stdin closes.
///
/// Returns `Ok(())` when stdin or stdout closes. On `fault_exit` it ends the process with status
/// [`FAULT_EXIT_STATUS`] (3) without answering that call.
pub fn run_stdio(cfg: MockConfig) -> io::Result<()> {
    let server = MockServer::new(cfg);
    let stdin = io::stdin();
    // `Stdout` is line-buffered, but each burst is handed over in one `write_all` that ends with a
    // newline, which it passes straight through as one write.
    match serve_lines(stdin.lock(), io::stdout(), &server)? {
        ServeEnd::InputClosed | ServeEnd::OutputClosed => Ok(()),
        ServeEnd::ExitRequested => std::process::exit(FAULT_EXIT_STATUS),
    }
}

/// Serves newline-delimited JSON-RPC from `reader` to `writer` until `reader` reaches end of file,
/// `writer` is closed, or `fault_exit` is called.
///
/// Blank lines are skipped and a trailing `\r` is ignored. Replies go out in the order they become
/// ready, not the order of the requests. At end of input, replies still waiting out a delay are
/// sent before returning (a client that closes stdin but still reads stdout gets them); `fault_hang`
/// calls are never answered. A `fault_garbage` call writes [`GARBAGE_LINE`] and then its reply.
pub fn serve_lines<R: BufRead, W: Write + Send>(
    reader: R,
    writer: W,
    server: &MockServer,
) -> io::Result<ServeEnd> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::scope(|scope| {
        let output = std::thread::Builder::new()
            .name("mock-stdio-out".into())
            .spawn_scoped(scope, move || write_loop(writer, rx))?;
        let read_result = read_loop(reader, &tx, server);
        if !matches!(read_result, Ok(ReadEnd::Eof)) {
            // Stop now rather than wait out the pending delays. If the output thread is gone the
            // send fails, which is fine.
            let _ = tx.send(Out::Abort);
        }
        drop(tx);
        let write_result = output
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("mock stdio output thread panicked")));
        match (read_result, write_result) {
            (_, Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ServeEnd::OutputClosed),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e),
            (Ok(ReadEnd::Eof), Ok(())) => Ok(ServeEnd::InputClosed),
            (Ok(ReadEnd::Exit), Ok(())) => Ok(ServeEnd::ExitRequested),
            // The output thread ended by itself: it only does so on a write error, handled above.
            (Ok(ReadEnd::OutputGone), Ok(())) => Ok(ServeEnd::OutputClosed),
        }
    })
}

/// How the reading side stopped.
enum ReadEnd {
    /// End of input.
    Eof,
    /// `fault_exit`.
    Exit,
    /// The output thread stopped (it failed to write).
    OutputGone,
}

/// Reads lines, handles them and passes the replies to the output thread.
fn read_loop<R: BufRead>(
    mut reader: R,
    tx: &Sender<Out>,
    server: &MockServer,
) -> io::Result<ReadEnd> {
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if line.capacity() > 1 << 20 {
            // Do not keep a huge buffer around after one huge message.
            line = Vec::with_capacity(4096);
        }
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(ReadEnd::Eof);
        }
        let message = line.trim_ascii();
        if message.is_empty() {
            continue;
        }
        let out = match server.handle(message) {
            MockOutcome::Reply { body, delay } if delay.is_zero() => Out::Now(body),
            MockOutcome::Reply { body, delay } => match Instant::now().checked_add(delay) {
                Some(due) => Out::At(due, body),
                // Too far in the future to represent: it would never be sent anyway.
                None => continue,
            },
            MockOutcome::NoReply | MockOutcome::Fault(MockFault::Hang) => continue,
            MockOutcome::Fault(MockFault::ExitProcess) => return Ok(ReadEnd::Exit),
            MockOutcome::Fault(MockFault::GarbageThenReply(body)) => {
                let mut both = Vec::with_capacity(GARBAGE_LINE.len() + 1 + body.len());
                both.extend_from_slice(GARBAGE_LINE);
                both.push(b'\n');
                both.extend_from_slice(&body);
                Out::Now(both)
            }
        };
        if tx.send(out).is_err() {
            return Ok(ReadEnd::OutputGone);
        }
    }
}

/// The output thread: writes replies as they become ready, batching each burst into one write and
/// one flush. Returns when the channel closes and no delayed reply is left, or on [`Out::Abort`].
fn write_loop<W: Write>(mut writer: W, rx: Receiver<Out>) -> io::Result<()> {
    let mut timers: BinaryHeap<Pending> = BinaryHeap::new();
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut seq = 0u64;
    let mut input_open = true;
    loop {
        // Wait for the next message or the next deadline, whichever comes first.
        let mut first = None;
        if input_open {
            let next_due = timers.peek().map(|p| p.due);
            let received = match next_due {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(due) => rx.recv_deadline(due),
            };
            match received {
                Ok(msg) => first = Some(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => input_open = false,
            }
        } else {
            match timers.peek() {
                None => break,
                Some(p) => std::thread::sleep(p.due.saturating_duration_since(Instant::now())),
            }
        }

        // Take the rest of the burst, bounded so due timers are not starved.
        let mut taken = 0;
        let mut next = first;
        while let Some(msg) = next {
            match msg {
                Out::Now(line) => push_line(&mut writer, &mut batch, &line)?,
                Out::At(due, line) => {
                    seq += 1;
                    timers.push(Pending { due, seq, line });
                }
                Out::Abort => {
                    writer.write_all(&batch)?;
                    return writer.flush();
                }
            }
            taken += 1;
            next = if taken >= MAX_BURST || !input_open {
                None
            } else {
                match rx.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        input_open = false;
                        None
                    }
                }
            };
        }

        let now = Instant::now();
        while timers.peek().is_some_and(|p| p.due <= now) {
            if let Some(p) = timers.pop() {
                push_line(&mut writer, &mut batch, &p.line)?;
            }
        }

        if !batch.is_empty() {
            writer.write_all(&batch)?;
            batch.clear();
            writer.flush()?;
        }
    }
    writer.flush()
}

/// Appends one line to the batch, writing the batch out early when it gets large.
fn push_line<W: Write>(writer: &mut W, batch: &mut Vec<u8>, line: &[u8]) -> io::Result<()> {
    batch.extend_from_slice(line);
    batch.push(b'\n');
    if batch.len() >= MAX_BATCH {
        writer.write_all(batch)?;
        batch.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io::{BufReader, Read};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// Runs `serve_lines` on `input` (all at once, then end of file) and returns the output lines.
    fn run(cfg: MockConfig, input: &str) -> (ServeEnd, Vec<String>) {
        let server = MockServer::new(cfg);
        let mut out = Vec::new();
        let end = serve_lines(input.as_bytes(), &mut out, &server).expect("serve");
        let text = String::from_utf8(out).expect("utf-8");
        (end, text.lines().map(str::to_owned).collect())
    }

    fn ids(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).expect("json line")["id"].clone())
            .collect()
    }

    fn sleep_call(id: u32, ms: u64) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"sleep","arguments":{{"ms":{ms}}}}}}}"#
        )
    }

    const PING: &str = r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#;

    #[test]
    fn answers_lines_and_skips_notifications() {
        let input = format!(
            "{}\r\n\n  \n{}\n{PING}\nnot json\n{}",
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#, // no trailing newline
        );
        let (end, lines) = run(MockConfig::default(), &input);
        assert_eq!(end, ServeEnd::InputClosed);
        assert_eq!(
            ids(&lines),
            vec![
                Value::from(1),
                Value::from("p"),
                Value::Null,
                Value::from(2)
            ]
        );
        assert!(lines[2].contains("-32700"));
    }

    #[test]
    fn delayed_replies_do_not_serialize() {
        let input = format!("{}\n{}\n{PING}\n", sleep_call(1, 300), sleep_call(2, 100));
        let started = Instant::now();
        let (end, lines) = run(MockConfig::default(), &input);
        assert_eq!(end, ServeEnd::InputClosed);
        // Each reply leaves after its own delay: the shortest first, the pending ones at end of input.
        assert_eq!(
            ids(&lines),
            vec![Value::from("p"), Value::from(2), Value::from(1)]
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn many_concurrent_sleeps_over_a_socket() {
        let (client, server_end) = UnixStream::pair().expect("socketpair");
        let cfg = MockConfig {
            latency_us: 2000,
            ..MockConfig::default()
        };
        let handle = std::thread::spawn(move || {
            let server = MockServer::new(cfg);
            let reader = BufReader::new(server_end.try_clone().expect("clone"));
            serve_lines(reader, server_end, &server)
        });
        let mut input = String::new();
        for id in 0..200u32 {
            input.push_str(&sleep_call(id, u64::from(200 - id) % 50));
            input.push('\n');
        }
        (&client).write_all(input.as_bytes()).expect("write");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let mut output = String::new();
        (&client).read_to_string(&mut output).expect("read");
        assert_eq!(
            handle.join().expect("join").expect("serve"),
            ServeEnd::InputClosed
        );
        let mut seen: Vec<u64> = output
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("json")["id"]
                    .as_u64()
                    .expect("id")
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn fault_garbage_then_reply() {
        let cfg = MockConfig {
            faults: true,
            ..MockConfig::default()
        };
        let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fault_garbage","arguments":{"x":1}}}"#;
        let (_, lines) = run(cfg, &format!("{call}\n{PING}\n"));
        assert_eq!(lines[0].as_bytes(), GARBAGE_LINE);
        assert_eq!(ids(&lines[1..]), vec![Value::from(7), Value::from("p")]);
    }

    #[test]
    fn fault_exit_flushes_earlier_replies_and_stops() {
        let cfg = MockConfig {
            faults: true,
            ..MockConfig::default()
        };
        let exit =
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fault_exit"}}"#;
        let input = format!("{PING}\n{}\n{exit}\n{PING}\n", sleep_call(1, 5000));
        let started = Instant::now();
        let (end, lines) = run(cfg, &input);
        assert_eq!(end, ServeEnd::ExitRequested);
        assert_eq!(ids(&lines), vec![Value::from("p")]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "pending sleeps were dropped"
        );
    }

    #[test]
    fn fault_hang_never_answers() {
        let cfg = MockConfig {
            faults: true,
            ..MockConfig::default()
        };
        let hang =
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fault_hang"}}"#;
        let (end, lines) = run(cfg, &format!("{hang}\n{PING}\n"));
        assert_eq!(end, ServeEnd::InputClosed);
        assert_eq!(ids(&lines), vec![Value::from("p")]);
    }

    #[test]
    fn closed_output_ends_serving() {
        let (client, server_end) = UnixStream::pair().expect("socketpair");
        let input = format!("{PING}\n").repeat(100_000);
        drop(client);
        let server = MockServer::new(MockConfig::default());
        let end = serve_lines(input.as_bytes(), server_end, &server).expect("serve");
        assert_eq!(end, ServeEnd::OutputClosed);
    }

    #[test]
    fn large_bursts_are_complete() {
        let cfg = MockConfig {
            reply_bytes: 10_000,
            ..MockConfig::default()
        };
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool_0003","arguments":{}}}"#;
        let input = format!("{call}\n").repeat(500);
        let (_, lines) = run(cfg, &input);
        assert_eq!(lines.len(), 500);
        assert!(lines.iter().all(|l| l.len() > 10_000 && l.len() < 10_100));
    }
}
