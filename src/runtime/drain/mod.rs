//! Graceful drain on SIGTERM/SIGINT. Each worker core, told to drain, stops accepting (its
//! listening socket is shut at once, so new connections are refused), closes connections that
//! wait for a next request, lets the requests it is serving finish and then closes their
//! connections, and tells its long-lived SSE streams to end. When it holds no client connection
//! any more it reports to the control thread. At the drain's deadline the requests still
//! running are abandoned (answered with an error where a reply can still be written, else cut).
//!
//! Owns: each core's drain phase and what it needs to act on it (thread-local: the phase, the
//! wakers of tasks waiting for a phase, the core's listening sockets, its count of open client
//! connections and of requests in progress, a tally of what the drain did), and, in
//! [`control`], the control thread's side that runs a drain over every core.
//! Must never: block a worker core; shut a descriptor that is no longer the listener that
//! registered it (a listener leaves the registry before its descriptor closes); hold the
//! control thread beyond the deadline plus a short bound for the last replies to leave.
//!
//! The phase only moves forward (serving → draining → deadline); a runtime that never drains
//! (the mock upstream, tests) pays a thread-local read per request and nothing else.

pub mod control;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crossbeam_channel::Sender;

pub use control::{drain_cores, DrainSummary};

/// Where a core is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving normally.
    Serving,
    /// Not accepting; finishing what is in progress.
    Draining,
    /// The grace period is over: whatever is still in progress is abandoned.
    Deadline,
}

/// What one core's drain did, for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Requests answered (plain replies and SSE replies that ended by themselves) after the
    /// drain began.
    pub answered: u64,
    /// Long-lived SSE streams (`GET /mcp`, `GET /sse`) the drain ended.
    pub streams_ended: u64,
    /// Requests still running at the deadline: answered with an error, or cut mid-stream.
    pub abandoned: u64,
    /// Connections closed at the deadline while a request was still arriving on them.
    pub cut: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.answered += other.answered;
        self.streams_ended += other.streams_ended;
        self.abandoned += other.abandoned;
        self.cut += other.cut;
    }
}

/// What a core tells the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    /// The listener is shut; this much was open at that moment.
    Started {
        connections: usize,
        requests: usize,
        streams: usize,
    },
    /// No client connection is left on the core.
    Idle(Tally),
}

/// Something the drain counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Answered,
    StreamEnded,
    Abandoned,
    Cut,
}

thread_local! {
    static PHASE: Cell<Phase> = const { Cell::new(Phase::Serving) };
    static CORE: RefCell<CoreState> = const { RefCell::new(CoreState::new()) };
}

struct CoreState {
    /// Wakers of tasks waiting for a phase; `None` marks a free slot (listed in `free`).
    waiters: Vec<Option<Waker>>,
    free: Vec<usize>,
    /// Listening sockets of this core, by registration token.
    listeners: Vec<(u64, RawFd)>,
    next_token: u64,
    connections: usize,
    /// Requests being handled or whose SSE reply is being written.
    requests: usize,
    /// Long-lived SSE streams open.
    streams: usize,
    tally: Tally,
    /// Set when the drain begins: where reports go.
    reports: Option<(usize, Sender<(usize, Report)>)>,
    idle_reported: bool,
}

impl CoreState {
    const fn new() -> Self {
        CoreState {
            waiters: Vec::new(),
            free: Vec::new(),
            listeners: Vec::new(),
            next_token: 0,
            connections: 0,
            requests: 0,
            streams: 0,
            tally: Tally {
                answered: 0,
                streams_ended: 0,
                abandoned: 0,
                cut: 0,
            },
            reports: None,
            idle_reported: false,
        }
    }

    /// Reports the core idle once it is draining and holds no client connection.
    fn report_if_idle(&mut self) {
        if self.idle_reported || self.connections > 0 {
            return;
        }
        if let Some((core, tx)) = &self.reports {
            self.idle_reported = true;
            let _ = tx.send((*core, Report::Idle(self.tally)));
        }
    }

    fn take_wakers(&mut self) -> Vec<Waker> {
        self.waiters.iter().flatten().cloned().collect()
    }
}

/// This core's phase.
#[inline]
pub fn phase() -> Phase {
    PHASE.with(Cell::get)
}

/// Resolves once this core's phase is `target` or later.
pub fn reached(target: Phase) -> Reached {
    Reached { target, slot: None }
}

/// See [`reached`]. Its waker slot is given back when it is dropped.
pub struct Reached {
    target: Phase,
    slot: Option<usize>,
}

impl Future for Reached {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if phase() >= self.target {
            return Poll::Ready(());
        }
        let slot = self.slot;
        let slot = CORE.with(|c| {
            let mut c = c.borrow_mut();
            match slot {
                Some(i) => {
                    if let Some(Some(w)) = c.waiters.get_mut(i) {
                        if !w.will_wake(cx.waker()) {
                            *w = cx.waker().clone();
                        }
                    }
                    i
                }
                None => match c.free.pop() {
                    Some(i) => {
                        if let Some(s) = c.waiters.get_mut(i) {
                            *s = Some(cx.waker().clone());
                        }
                        i
                    }
                    None => {
                        c.waiters.push(Some(cx.waker().clone()));
                        c.waiters.len() - 1
                    }
                },
            }
        });
        self.slot = Some(slot);
        Poll::Pending
    }
}

impl Drop for Reached {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            // The thread may be exiting (its thread-locals gone): nothing to give back then.
            let _ = CORE.try_with(|c| {
                let mut c = c.borrow_mut();
                if let Some(s) = c.waiters.get_mut(i) {
                    *s = None;
                    c.free.push(i);
                }
            });
        }
    }
}

/// Moves this core to `next` (never backwards) and wakes every task waiting for a phase.
fn advance(next: Phase) {
    if phase() >= next {
        return;
    }
    PHASE.with(|p| p.set(next));
    let wakers = CORE.with(|c| c.borrow_mut().take_wakers());
    // Woken outside the borrow: a waker may run code that looks at the state again.
    for w in wakers {
        w.wake();
    }
}

/// Starts this core's drain: shuts its listening sockets (new connections are refused from
/// now on), wakes everything that waits for the drain, and reports to `reports` as `core`.
fn begin(core: usize, reports: Sender<(usize, Report)>) {
    let started = CORE.with(|c| {
        let mut c = c.borrow_mut();
        for &(_, fd) in &c.listeners {
            // SAFETY: `fd` is a listening socket this core registered and still holds: a listener
            // leaves the registry (its guard drops) before its descriptor is closed, and both
            // happen on this thread. shutdown(2) has no memory-safety preconditions.
            let rc = unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            if rc != 0 {
                tracing::warn!(
                    error = %std::io::Error::last_os_error(),
                    "cannot shut the listening socket; it closes when its task ends"
                );
            }
        }
        let started = Report::Started {
            connections: c.connections,
            requests: c.requests,
            streams: c.streams,
        };
        c.reports = Some((core, reports));
        started
    });
    advance(Phase::Draining);
    CORE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((core, tx)) = &c.reports {
            let _ = tx.send((*core, started));
        }
        c.report_if_idle();
    });
}

/// The grace period is over on this core: wakes everything that abandons work at the deadline.
fn pass_deadline() {
    advance(Phase::Deadline);
}

/// Counts `event` when a drain is under way.
pub fn note(event: Event) {
    if phase() == Phase::Serving {
        return;
    }
    CORE.with(|c| {
        let t = &mut c.borrow_mut().tally;
        match event {
            Event::Answered => t.answered += 1,
            Event::StreamEnded => t.streams_ended += 1,
            Event::Abandoned => t.abandoned += 1,
            Event::Cut => t.cut += 1,
        }
    });
}

/// Keeps a listening socket in this core's registry, so a drain can shut it. Drop it before
/// the socket closes.
pub struct ListenerGuard {
    token: u64,
}

/// Registers this core's listening socket `fd`.
pub fn listening(fd: RawFd) -> ListenerGuard {
    CORE.with(|c| {
        let mut c = c.borrow_mut();
        let token = c.next_token;
        c.next_token += 1;
        c.listeners.push((token, fd));
        ListenerGuard { token }
    })
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        let token = self.token;
        let _ = CORE.try_with(|c| c.borrow_mut().listeners.retain(|(t, _)| *t != token));
    }
}

/// One open client connection of this core, counted until dropped.
pub struct ConnectionGuard(());

/// Counts a client connection (from accept to close).
pub fn connection() -> ConnectionGuard {
    CORE.with(|c| c.borrow_mut().connections += 1);
    ConnectionGuard(())
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let _ = CORE.try_with(|c| {
            let mut c = c.borrow_mut();
            c.connections = c.connections.saturating_sub(1);
            c.report_if_idle();
        });
    }
}

/// A request in progress on this core (its handler running, or its SSE reply being written),
/// counted until dropped.
pub struct RequestGuard {
    long_lived: bool,
}

/// Counts a request in progress.
pub fn request() -> RequestGuard {
    CORE.with(|c| c.borrow_mut().requests += 1);
    RequestGuard { long_lived: false }
}

impl RequestGuard {
    /// The request turned out to open a long-lived stream (`GET /mcp`, `GET /sse`): counted
    /// as a stream from now on, not as a request.
    pub fn long_lived(&mut self) {
        if !self.long_lived {
            self.long_lived = true;
            CORE.with(|c| {
                let mut c = c.borrow_mut();
                c.requests = c.requests.saturating_sub(1);
                c.streams += 1;
            });
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let long_lived = self.long_lived;
        let _ = CORE.try_with(|c| {
            let mut c = c.borrow_mut();
            if long_lived {
                c.streams = c.streams.saturating_sub(1);
            } else {
                c.requests = c.requests.saturating_sub(1);
            }
        });
    }
}

#[cfg(test)]
mod tests;
