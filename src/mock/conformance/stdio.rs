//! The conformance profile over stdio (`--profile conformance --stdio`): newline-delimited
//! JSON-RPC on stdin/stdout, one session for the life of the process.
//!
//! Three threads: a reader thread turns stdin lines into a channel, a writer thread owns
//! stdout, and this thread runs a monoio runtime where every request is a task (so a call
//! that waits for the client's answer to a sampling request does not hold up the next line,
//! which may be that very answer). monoio cannot read or write stdin/stdout itself (they may
//! be pipes, files or a terminal), hence the two blocking threads.
//!
//! At end of input the session is closed (requests waiting for the client fail), the calls
//! still running finish, and their answers are written before the process returns.

use std::io::{self, BufRead, Write};
use std::rc::Rc;

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use super::{answer, ClientMessage, Outbox, Session};
use crate::runtime::IoDriver;

/// Lines written to stdout; `None` tells the writer thread to flush and stop.
type OutLine = Option<Vec<u8>>;

/// Where every message goes: the writer thread.
struct StdoutOutbox(crossbeam_channel::Sender<OutLine>);

impl Outbox for StdoutOutbox {
    fn send(&self, message: Vec<u8>) {
        // The writer only stops when told to or when stdout is gone: nothing left to do then.
        let _ = self.0.send(Some(message));
    }
}

/// Serves the conformance profile on stdin/stdout until stdin closes.
pub fn run_stdio(driver: IoDriver) -> io::Result<()> {
    let (line_tx, line_rx) = mpsc::unbounded();
    let (out_tx, out_rx) = crossbeam_channel::unbounded::<OutLine>();
    std::thread::Builder::new()
        .name("conformance-stdin".into())
        .spawn(move || read_lines(io::stdin().lock(), &line_tx))?;
    let writer = std::thread::Builder::new()
        .name("conformance-stdout".into())
        .spawn(move || write_lines(io::stdout().lock(), &out_rx))?;
    let outbox = Rc::new(StdoutOutbox(out_tx.clone()));
    crate::runtime::block_on(driver, move || serve(line_rx, outbox))?;
    // Every answer is queued by now; the writer drains the queue up to this marker.
    let _ = out_tx.send(None);
    writer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the stdout writer thread panicked")))
}

/// Sends every non-blank line of `input` to `lines` until end of input (or a read error).
fn read_lines<R: BufRead>(mut input: R, lines: &UnboundedSender<Vec<u8>>) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let message = line.trim_ascii();
        if !message.is_empty() && lines.unbounded_send(message.to_vec()).is_err() {
            return;
        }
    }
}

/// Writes each line with a newline, flushing once per burst, until the `None` marker.
fn write_lines<W: Write>(
    mut out: W,
    lines: &crossbeam_channel::Receiver<OutLine>,
) -> io::Result<()> {
    while let Ok(Some(first)) = lines.recv() {
        out.write_all(&first)?;
        out.write_all(b"\n")?;
        loop {
            match lines.try_recv() {
                Ok(Some(more)) => {
                    out.write_all(&more)?;
                    out.write_all(b"\n")?;
                }
                Ok(None) => return out.flush(),
                Err(_) => break,
            }
        }
        out.flush()?;
    }
    out.flush()
}

/// Handles lines until input ends, then waits for the calls still running.
async fn serve(mut lines: UnboundedReceiver<Vec<u8>>, outbox: Rc<StdoutOutbox>) {
    let session = Rc::new(Session::new());
    // Each running call holds a clone; the receiver ends once all of them are dropped.
    let (running, mut all_done) = mpsc::unbounded::<()>();
    while let Some(line) = lines.next().await {
        match ClientMessage::parse(&line) {
            ClientMessage::Request { id, method, params } => {
                let (session, outbox, running) = (session.clone(), outbox.clone(), running.clone());
                monoio::spawn(async move {
                    let response = answer(&session, &*outbox, &id, &method, &params).await;
                    outbox.send(response.to_string().into_bytes());
                    drop(running);
                });
            }
            ClientMessage::Response(response) => {
                session.complete(&response);
            }
            ClientMessage::Notification { .. } => {}
            ClientMessage::Invalid(error) => outbox.send(error.to_string().into_bytes()),
        }
    }
    session.close();
    drop(running);
    while all_done.next().await.is_some() {}
}
