//! A stdio child's stdin and stdout as async streams on the core that owns them: a bounded
//! queue of outgoing frames with a writer task that batches them, and a reader that splits
//! stdout into newline-delimited messages.
//!
//! Owns: framing and buffering of the child's two socketpair ends. Must never: buffer a line or
//! a queue without bound, or run off the core that owns the streams (they are not `Send`).

use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_channel::mpsc::{unbounded, TryRecvError, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::UnixStream;

use super::process::Line;
use crate::runtime::IoDriver;

/// Bytes gathered into one write before it is issued.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Room kept free in the read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;
/// A read buffer grown beyond this for one big line is given back once that line is done.
const READ_BUFFER_KEEP: usize = 1 << 20;
/// How much of an over-long line is kept (to find its id and to log its start).
const TOO_LONG_HEAD: usize = 4096;

/// What the writer is asked to do.
pub enum WriterMsg {
    /// Bytes to write as they are (one JSON-RPC message ending in `\n`).
    Frame(Vec<u8>),
    /// Write what is queued before this, then close the child's stdin.
    Close,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// More frames are waiting than the queue holds.
    Full,
    /// The writer has stopped (stdin closed or broken).
    Closed,
}

/// The sending side of a child's stdin queue; callable from any thread.
pub struct FrameSender {
    tx: UnboundedSender<WriterMsg>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// The writer's side of the queue.
pub struct FrameReceiver {
    rx: UnboundedReceiver<WriterMsg>,
    queued: Arc<AtomicUsize>,
}

/// A queue that holds at most `capacity` frames not yet written.
pub fn frame_queue(capacity: usize) -> (FrameSender, FrameReceiver) {
    // The channel itself is unbounded; `queued` bounds it: `send` counts every frame against
    // `capacity` before queueing it, and only `close` (once per child's stop) goes uncounted.
    let (tx, rx) = unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        FrameSender {
            tx,
            queued: queued.clone(),
            capacity,
        },
        FrameReceiver { rx, queued },
    )
}

impl FrameSender {
    /// Queues one frame for the child's stdin.
    pub fn send(&self, frame: Vec<u8>) -> Result<(), QueueError> {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(QueueError::Full);
        }
        self.tx
            .unbounded_send(WriterMsg::Frame(frame))
            .map_err(|_| QueueError::Closed)
    }

    /// Asks the writer to close stdin after the frames already queued.
    pub fn close(&self) {
        let _ = self.tx.unbounded_send(WriterMsg::Close);
    }
}

impl FrameReceiver {
    fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A child's end of a socketpair as a stream of this core's runtime.
pub fn attach(stream: StdUnixStream, driver: IoDriver) -> io::Result<UnixStream> {
    // The epoll driver needs a non-blocking descriptor; io_uring must not get one (it would
    // hand EAGAIN back instead of waiting). Only this end changes: the child's end is another
    // open file and stays blocking, as programs expect of their stdio.
    if driver == IoDriver::Epoll {
        stream.set_nonblocking(true)?;
    }
    UnixStream::from_std(stream)
}

/// Writes queued frames to the child's stdin, several per write when they queue up, until
/// [`WriterMsg::Close`], until every sender is gone, or until a write fails (returned).
/// Returning drops `stdin`, which the child reads as end of input.
pub async fn write_frames(mut stdin: UnixStream, mut queue: FrameReceiver) -> Option<io::Error> {
    loop {
        let mut batch = match queue.rx.next().await {
            None | Some(WriterMsg::Close) => return None,
            Some(WriterMsg::Frame(frame)) => {
                queue.taken();
                frame
            }
        };
        let mut closing = false;
        while batch.len() < WRITE_BATCH_BYTES {
            match queue.rx.try_recv() {
                Ok(WriterMsg::Frame(frame)) => {
                    queue.taken();
                    batch.extend_from_slice(&frame);
                }
                Ok(WriterMsg::Close) | Err(TryRecvError::Closed) => {
                    closing = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let (res, _) = stdin.write_all(batch).await;
        if let Err(e) = res {
            return Some(e);
        }
        if closing {
            return None;
        }
    }
}

/// Reads `stdout` to its end, calling `on_line` for every line (without its `\n` or `\r`).
/// A line over `max` bytes is skipped and reported as [`Line::TooLong`] with its start. A last
/// line without `\n` is still delivered. Returns why reading stopped.
pub async fn read_lines(
    mut stdout: UnixStream,
    max: usize,
    mut on_line: impl FnMut(Line<'_>),
) -> String {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // Set while skipping a line over `max`: its start, and its length so far.
    let mut too_long: Option<(Vec<u8>, usize)> = None;
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = stdout.read(buf.slice_mut(len..cap)).await;
        buf = slice.into_inner();
        let n = match res {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return format!("stdout read failed: {e}"),
        };
        if n == 0 {
            match too_long.take() {
                Some((head, skipped)) => on_line(Line::TooLong {
                    head: &head,
                    len: skipped + buf.len(),
                }),
                None if !buf.is_empty() => on_line(Line::Full(trim_cr(&buf))),
                None => {}
            }
            return "closed its stdout".to_owned();
        }
        let mut start = 0;
        // Only the new bytes can hold a newline: the earlier ones were scanned already.
        let mut scan = len;
        while let Some(i) = memchr::memchr(b'\n', &buf[scan..]) {
            let end = scan + i;
            match too_long.take() {
                Some((head, skipped)) => on_line(Line::TooLong {
                    head: &head,
                    len: skipped + (end - start),
                }),
                None if end - start > max => on_line(Line::TooLong {
                    head: &buf[start..start + (end - start).min(TOO_LONG_HEAD).min(max)],
                    len: end - start,
                }),
                None => on_line(Line::Full(trim_cr(&buf[start..end]))),
            }
            start = end + 1;
            scan = start;
        }
        buf.drain(..start);
        // The unfinished line: once it passes `max`, keep only its start and count the rest.
        match &mut too_long {
            Some((_, skipped)) => {
                *skipped += buf.len();
                buf.clear();
            }
            None if buf.len() > max => {
                let head = buf[..buf.len().min(TOO_LONG_HEAD).min(max)].to_vec();
                too_long = Some((head, buf.len()));
                buf.clear();
            }
            None => {}
        }
        if buf.is_empty() && buf.capacity() > READ_BUFFER_KEEP {
            buf = Vec::with_capacity(READ_CHUNK);
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;
    use std::io::Write;

    fn lines_of(input: &[u8], max: usize, driver: IoDriver) -> Vec<String> {
        let (ours, mut theirs) = StdUnixStream::pair().expect("socketpair");
        let input = input.to_vec();
        // The input can exceed the socket buffer: write it while the reader runs.
        let writer = std::thread::spawn(move || theirs.write_all(&input));
        let got = block_on(driver, || async move {
            let stream = attach(ours, driver).expect("attach");
            let mut got = Vec::new();
            let end = read_lines(stream, max, |line| {
                got.push(match line {
                    Line::Full(l) => String::from_utf8_lossy(l).into_owned(),
                    Line::TooLong { head, len } => {
                        format!("too long {len}: {}", String::from_utf8_lossy(head))
                    }
                })
            })
            .await;
            assert_eq!(end, "closed its stdout");
            got
        })
        .expect("runtime");
        writer.join().expect("writer thread").expect("write");
        got
    }

    #[test]
    fn lines_are_split_trimmed_and_bounded() {
        for driver in [IoDriver::Epoll, IoDriver::Uring] {
            if driver == IoDriver::Uring && !monoio::utils::detect_uring() {
                continue;
            }
            let long = "x".repeat(300_000);
            let input = format!("one\r\ntwo\n\n{long}\nthree\n{}\nlast", "y".repeat(1000));
            let got = lines_of(input.as_bytes(), 100_000, driver);
            assert_eq!(got.len(), 7, "{driver:?}: {:?}", &got[..3]);
            assert_eq!(&got[..3], ["one", "two", ""]);
            assert!(
                got[3].starts_with("too long 300000: xxx"),
                "{}",
                &got[3][..40]
            );
            assert_eq!(got[3].len(), "too long 300000: ".len() + TOO_LONG_HEAD);
            assert_eq!(got[4], "three");
            assert_eq!(got[5].len(), 1000);
            assert_eq!(got[6], "last");
            // A whole over-long line can also arrive in one read.
            let got = lines_of(b"short\n0123456789abcdef\nok\n", 10, driver);
            assert_eq!(got, ["short", "too long 16: 0123456789", "ok"]);
        }
    }

    #[test]
    fn queued_frames_are_written_in_order_then_stdin_closes() {
        let (ours, theirs) = StdUnixStream::pair().expect("socketpair");
        let (tx, rx) = frame_queue(3);
        tx.send(b"a\n".to_vec()).expect("queued");
        tx.send(b"b\n".to_vec()).expect("queued");
        tx.send(b"c\n".to_vec()).expect("queued");
        assert_eq!(tx.send(b"d\n".to_vec()), Err(QueueError::Full));
        tx.close();
        let err = block_on(IoDriver::Epoll, || async move {
            write_frames(attach(ours, IoDriver::Epoll).expect("attach"), rx).await
        })
        .expect("runtime");
        assert!(err.is_none());
        let mut written = String::new();
        std::io::Read::read_to_string(&mut &theirs, &mut written).expect("read to end");
        assert_eq!(written, "a\nb\nc\n");
        assert_eq!(tx.send(b"e\n".to_vec()), Err(QueueError::Closed));
    }
}
