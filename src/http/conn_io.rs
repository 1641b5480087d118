//! Waiting on a client connection with bounds: a read that a deadline or a drain can end, and
//! writes that must make progress within a stall limit (a client that stops reading is let go).
//!
//! Owns: those waits. Must never: wait on a peer without a bound.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::time::Instant;

use super::conn_buffers::read_more;
use crate::runtime::drain::{self, Phase};

/// What may end a wait for more bytes, besides the bytes.
#[derive(Clone, Copy)]
pub(super) struct ReadWait {
    /// The request head must be complete by then.
    pub(super) until: Option<Instant>,
    /// A drain reaching this phase ends the wait (and the connection).
    pub(super) end_at: Phase,
}

/// How a wait for more bytes ended.
pub(super) enum ReadEnd {
    Data,
    /// End of stream or an error: the peer is gone.
    Closed,
    /// The request head did not arrive in time.
    TimedOut,
    /// The drain reached the wait's phase.
    Drained,
}

/// Reads more bytes into `buf` unless `wait` ends first. When it does, the pending read is
/// dropped and `buf` with it (monoio gives a dropped read's buffer to the kernel op): callers
/// close the connection then.
pub(super) async fn read_bounded<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    wait: ReadWait,
) -> ReadEnd {
    if drain::phase() >= wait.end_at {
        return ReadEnd::Drained;
    }
    let read = read_more(stream, buf);
    let drained = drain::reached(wait.end_at);
    let read = match wait.until {
        None => monoio::select! {
            ok = read => Some(ok),
            () = drained => None,
        },
        // Boxed: monoio's timer entry is 640 bytes aligned to 128. Inline, it made this wait the
        // largest state of every connection's task, idle ones included, although only a head
        // that arrives in pieces arms it.
        Some(until) => monoio::select! {
            ok = read => Some(ok),
            () = drained => None,
            () = Box::pin(monoio::time::sleep_until(until)) => return ReadEnd::TimedOut,
        },
    };
    match read {
        Some(true) => ReadEnd::Data,
        Some(false) => ReadEnd::Closed,
        None => ReadEnd::Drained,
    }
}

/// Writes and clears `buf`; false when the peer is gone, or took none of it for `stall` (a
/// client that stopped reading: what it would hold, a reply or a stream and the call behind
/// it, is let go with the connection, which the caller closes).
pub(super) async fn flush<S: AsyncWriteRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    stall: Duration,
) -> bool {
    if buf.is_empty() {
        return true;
    }
    let mut data = std::mem::take(buf);
    let mut sent = 0;
    while sent < data.len() {
        let Some((res, slice)) = unless_stalled(stream.write(data.slice(sent..)), stall).await
        else {
            // The dropped write took the buffer with it; the connection closes.
            tracing::info!(
                "closed a client connection: it took no bytes of its reply or stream for {} ms \
                 (client_write_timeout_ms)",
                stall.as_millis()
            );
            return false;
        };
        data = slice.into_inner();
        match res {
            Ok(n) if n > 0 => sent += n,
            _ => return false,
        }
    }
    data.clear();
    *buf = data;
    true
}

/// `fut`'s output, unless it is still pending `stall` after its first poll. A write that can
/// complete at once (the usual case under epoll) never arms a timer.
async fn unless_stalled<F: Future>(fut: F, stall: Duration) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    match first {
        Some(out) => Some(out),
        None => monoio::select! {
            out = fut => Some(out),
            () = crate::runtime::deadline::after(stall) => None,
        },
    }
}
