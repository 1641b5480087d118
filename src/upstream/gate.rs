//! The bound on one server's calls in flight (`max_concurrent_calls`), and the wait for a
//! slot (`queue_timeout_ms`): a slow or stuck server makes calls queue briefly and then fail
//! with a clear error, instead of piling up connections, pipe frames and memory.
//!
//! Semantics. The bound is split between the worker cores, and each core keeps its own share
//! with no state shared with any other core: with `W` workers and a bound of `M`, worker `i`
//! admits `M / W` calls at once, plus one if `i < M % W`, and at least one (so with `M < W`
//! the bound is in effect `W`). The shares add up to `M` whenever `M ≥ W`. A call beyond its
//! core's share waits, first come first served, on that core only (another core's free share
//! does not serve it) for up to `queue_timeout_ms` (0: not at all), then fails with
//! [`UpstreamError::Saturated`] naming the server, the calls in flight and the wait. A slot is
//! held from admission until the gateway is done with the call: its reply, its failure or
//! timeout (`timeout_ms`, counted from admission), or the client cancelling or going away
//! (the server is then sent `notifications/cancelled` and the slot is free, whether or not the
//! server stops work). A finished call hands its slot to the longest waiter, so a steady
//! stream of new calls cannot starve a waiting one. Only clients' requests pass through the
//! gate ([`crate::registry::ServerEntry::call`]); the gateway's own (health checks, listings,
//! `logging/setLevel`) do not.
//!
//! Must never: take a lock or touch memory another core writes while admitting or releasing a
//! call, or let a call past the bound of its core.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::UpstreamError;

/// A server's bound as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBound {
    /// Calls in flight at once, over all worker cores (split between them, see the module doc).
    pub max_concurrent_calls: u32,
    /// How long a call beyond the bound waits for a slot before it fails.
    pub queue_timeout: Duration,
}

/// `max_concurrent_calls` when the config does not say.
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 256;
/// `queue_timeout_ms` when the config does not say.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for CallBound {
    fn default() -> Self {
        CallBound {
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }
}

static NEXT_GATE_KEY: AtomicU64 = AtomicU64::new(1);

/// One server's gate, shared by every core (it holds only settings; the counts are per core).
#[derive(Debug)]
pub struct CallGate {
    key: u64,
    bound: CallBound,
    workers: u32,
}

thread_local! {
    /// This core's side of every gate it has used, by gate key.
    static CORE_GATES: RefCell<HashMap<u64, Rc<CoreGate>>> = RefCell::new(HashMap::new());
}

/// One core's share of a gate: plain cells, touched only by this core.
struct CoreGate {
    /// So the entry can be dropped once the gate is gone (a reload replaced the server).
    gate: Weak<CallGate>,
    share: u32,
    in_flight: Cell<u32>,
    next_ticket: Cell<u64>,
    /// Calls waiting for a slot, oldest first.
    waiting: RefCell<BTreeMap<u64, Waiter>>,
}

struct Waiter {
    waker: Option<Waker>,
    /// Set when a finishing call handed this waiter its slot.
    granted: Rc<Cell<bool>>,
}

/// One admitted call's slot; dropping it frees the slot (or hands it to the oldest waiter).
/// Not `Send`: it stays with the call on the core that admitted it.
#[must_use = "the slot is freed when this is dropped"]
pub struct CallSlot {
    core: Rc<CoreGate>,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.core.release();
    }
}

impl Default for CallGate {
    /// The default bound on one worker core.
    fn default() -> Self {
        CallGate::new(CallBound::default(), 1)
    }
}

impl CallGate {
    /// A gate for `bound` over `workers` worker cores.
    pub fn new(bound: CallBound, workers: usize) -> CallGate {
        CallGate {
            key: NEXT_GATE_KEY.fetch_add(1, Ordering::Relaxed),
            bound,
            workers: u32::try_from(workers.max(1)).unwrap_or(u32::MAX),
        }
    }

    pub fn bound(&self) -> CallBound {
        self.bound
    }

    /// Worker `index`'s share of the bound (see the module doc).
    pub fn share(&self, index: usize) -> u32 {
        let max = self.bound.max_concurrent_calls;
        let extra = u32::try_from(index).is_ok_and(|i| i < max % self.workers);
        (max / self.workers + u32::from(extra)).max(1)
    }

    /// The most calls all worker cores together admit at once.
    pub fn total(&self) -> usize {
        let total = self.bound.max_concurrent_calls.max(self.workers);
        usize::try_from(total).unwrap_or(usize::MAX)
    }

    /// Admits a call to `server` on this core, waiting up to the queue timeout for a slot.
    pub async fn enter(self: &Arc<Self>, server: &str) -> Result<CallSlot, UpstreamError> {
        let core = self.core();
        if core.in_flight.get() < core.share && core.waiting.borrow().is_empty() {
            core.in_flight.set(core.in_flight.get() + 1);
            return Ok(CallSlot { core });
        }
        // Boxed: the wait (a timer and a place in line) is rare, and would otherwise add its
        // state to every call's future.
        Box::pin(self.wait(core, server)).await
    }

    /// Waits in line on this core for a slot, up to the queue timeout.
    async fn wait(&self, core: Rc<CoreGate>, server: &str) -> Result<CallSlot, UpstreamError> {
        let wait = self.bound.queue_timeout;
        if !wait.is_zero() {
            if let Ok(slot) = monoio::time::timeout(wait, Wait::new(core.clone())).await {
                return Ok(slot);
            }
        }
        Err(UpstreamError::Saturated {
            server: server.to_owned(),
            in_flight: core.in_flight.get(),
            share: core.share,
            max: self.bound.max_concurrent_calls,
            waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// This core's side of the gate, made on first use.
    fn core(self: &Arc<Self>) -> Rc<CoreGate> {
        CORE_GATES.with(|gates| {
            if let Some(core) = gates.borrow().get(&self.key) {
                return core.clone();
            }
            let index = crate::runtime::worker_index().unwrap_or(0);
            let core = Rc::new(CoreGate {
                gate: Arc::downgrade(self),
                share: self.share(index),
                in_flight: Cell::new(0),
                next_ticket: Cell::new(0),
                waiting: RefCell::new(BTreeMap::new()),
            });
            let mut gates = gates.borrow_mut();
            // Rare (once per gate and core): forget the sides of gates that are gone. Calls
            // still holding one keep it alive by their own `Rc`.
            gates.retain(|_, c| c.gate.strong_count() > 0);
            gates.insert(self.key, core.clone());
            core
        })
    }
}

impl CoreGate {
    fn release(&self) {
        let next = self.waiting.borrow_mut().pop_first();
        match next {
            // The slot passes on: `in_flight` stays as it is.
            Some((_, waiter)) => {
                waiter.granted.set(true);
                if let Some(waker) = waiter.waker {
                    waker.wake();
                }
            }
            None => self.in_flight.set(self.in_flight.get().saturating_sub(1)),
        }
    }
}

/// A call waiting in line for a slot on this core.
struct Wait {
    core: Rc<CoreGate>,
    ticket: u64,
    granted: Rc<Cell<bool>>,
    /// The slot was taken as a [`CallSlot`]; nothing to give back on drop.
    taken: bool,
}

impl Wait {
    fn new(core: Rc<CoreGate>) -> Wait {
        let ticket = core.next_ticket.get();
        core.next_ticket.set(ticket + 1);
        let granted = Rc::new(Cell::new(false));
        core.waiting.borrow_mut().insert(
            ticket,
            Waiter {
                waker: None,
                granted: granted.clone(),
            },
        );
        Wait {
            core,
            ticket,
            granted,
            taken: false,
        }
    }
}

impl Future for Wait {
    type Output = CallSlot;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CallSlot> {
        if self.granted.get() {
            self.taken = true;
            return Poll::Ready(CallSlot {
                core: self.core.clone(),
            });
        }
        if let Some(waiter) = self.core.waiting.borrow_mut().get_mut(&self.ticket) {
            match &mut waiter.waker {
                Some(w) => w.clone_from(cx.waker()),
                None => waiter.waker = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        if self.granted.get() {
            // Handed a slot but gone before taking it (timed out, or the client left in the
            // same turn): pass it on.
            self.core.release();
        } else {
            self.core.waiting.borrow_mut().remove(&self.ticket);
        }
    }
}

#[cfg(test)]
mod tests;
