//! Per-core deadlines for the timeouts nearly every request arms and then drops unfired: a
//! call's deadline, the hang-up watch, a reply write's stall limit.
//!
//! Owns: this core's armed deadlines, kept in one list per duration. A deadline is the time it
//! was armed plus its duration, so each list is in deadline order by construction: arming
//! appends, dropping unlinks, firing pops from the front, each in constant time. One driver task
//! per core sleeps on monoio's timer until the earliest front and wakes what is due. Arming costs
//! a clock read and a few links in a slab; the future is 24 bytes. monoio's own timer costs a
//! 640-byte entry (padded to cache lines for threads this runtime does not share it with) and
//! a wheel insertion and removal, and every call carried three of them.
//!
//! Must never: be touched from a thread other than the one that armed it ([`Deadline`] is not
//! `Send`), or keep more than [`MAX_LISTS`] distinct durations: past that, a duration uses
//! monoio's timer directly.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use monoio::time::{Instant, Sleep};

/// Distinct durations with a list of their own: a few are in use (per-server call timeouts,
/// the hang-up watch, the write stall limit); the bound keeps the lookup short.
const MAX_LISTS: usize = 32;

const NIL: u32 = u32::MAX;

/// Thirty years: the deadline of a duration too long to add to the clock.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// An armed deadline, or a free slot (`waker` none, generation moved on).
struct Slot {
    at: Instant,
    waker: Option<Waker>,
    prev: u32,
    next: u32,
    list: u16,
    /// Bumped whenever the slot is freed: a handle with an older generation has fired.
    generation: u32,
}

struct List {
    after: Duration,
    head: u32,
    tail: u32,
}

#[derive(Default)]
struct Deadlines {
    slots: Vec<Slot>,
    free: Vec<u32>,
    lists: Vec<List>,
    /// The driver's waker, and the time its timer is set for (none: it waits to be woken).
    driver: Option<Waker>,
    driver_at: Option<Instant>,
}

thread_local! {
    static DEADLINES: RefCell<Deadlines> = RefCell::new(Deadlines::default());
    /// Whether a driver task runs on this thread's runtime.
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

impl Deadlines {
    fn list_for(&mut self, after: Duration) -> Option<u16> {
        if let Some(i) = self.lists.iter().position(|l| l.after == after) {
            return u16::try_from(i).ok();
        }
        if self.lists.len() >= MAX_LISTS {
            return None;
        }
        self.lists.push(List {
            after,
            head: NIL,
            tail: NIL,
        });
        u16::try_from(self.lists.len() - 1).ok()
    }

    /// Appends a deadline at `at` to `list`; its slot and generation, and whether it is the
    /// list's only entry. None when every slot index is taken (each is a live future).
    fn push(&mut self, list: u16, at: Instant, waker: Waker) -> Option<(u32, u32, bool)> {
        let tail = self.lists[usize::from(list)].tail;
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let index = u32::try_from(self.slots.len()).ok().filter(|&i| i < NIL)?;
                self.slots.push(Slot {
                    at,
                    waker: None,
                    prev: NIL,
                    next: NIL,
                    list,
                    generation: 0,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.at = at;
        slot.waker = Some(waker);
        slot.prev = tail;
        slot.next = NIL;
        slot.list = list;
        let generation = slot.generation;
        if tail == NIL {
            self.lists[usize::from(list)].head = index;
        } else {
            self.slots[tail as usize].next = index;
        }
        self.lists[usize::from(list)].tail = index;
        Some((index, generation, tail == NIL))
    }

    /// Unlinks and frees slot `index`; its waker.
    fn remove(&mut self, index: u32) -> Option<Waker> {
        let slot = &mut self.slots[index as usize];
        let (prev, next, list) = (slot.prev, slot.next, usize::from(slot.list));
        slot.generation = slot.generation.wrapping_add(1);
        let waker = slot.waker.take();
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        self.free.push(index);
        waker
    }

    /// Fires every deadline due at `now` (their wakers go to `due`); the earliest left.
    fn fire_due(&mut self, now: Instant, due: &mut Vec<Waker>) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for l in 0..self.lists.len() {
            loop {
                let head = self.lists[l].head;
                if head == NIL {
                    break;
                }
                let at = self.slots[head as usize].at;
                if at > now {
                    earliest = Some(earliest.map_or(at, |e| e.min(at)));
                    break;
                }
                due.extend(self.remove(head));
            }
        }
        earliest
    }
}

/// A future ready once `after` has passed since its first poll, on this core.
pub struct Deadline {
    state: State,
    /// Not `Send`: the slot it names is in this thread's list.
    _local: PhantomData<Rc<()>>,
}

enum State {
    Unarmed(Duration),
    Armed {
        index: u32,
        generation: u32,
    },
    Fired,
    /// More distinct durations than there are lists: monoio's timer.
    Fallback(Pin<Box<Sleep>>),
}

/// Ready `after` from its first poll (not from this call: a deadline built and not awaited
/// costs nothing).
pub fn after(after: Duration) -> Deadline {
    Deadline {
        state: State::Unarmed(after),
        _local: PhantomData,
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.state {
            State::Unarmed(after) => {
                let after = *after;
                let now = Instant::now();
                // A duration past any real deadline (a timeout configured as "never") waits
                // for ever, in effect, rather than overflowing the clock.
                let at = now.checked_add(after).unwrap_or(now + FAR_FUTURE);
                let armed = DEADLINES.with(|d| {
                    let mut d = d.borrow_mut();
                    let list = d.list_for(after)?;
                    let (index, generation, only) = d.push(list, at, cx.waker().clone())?;
                    // The driver's timer is set for the earliest front; only a new front can
                    // be earlier than that, and only if the driver is set later.
                    let wake = only && d.driver_at.is_none_or(|t| at < t);
                    Some((index, generation, wake.then(|| d.driver.clone()).flatten()))
                });
                match armed {
                    Some((index, generation, driver)) => {
                        self.state = State::Armed { index, generation };
                        if let Some(driver) = driver {
                            driver.wake();
                        }
                        ensure_driver();
                        Poll::Pending
                    }
                    None => {
                        let mut sleep = Box::pin(monoio::time::sleep_until(at));
                        let poll = sleep.as_mut().poll(cx);
                        self.state = State::Fallback(sleep);
                        poll
                    }
                }
            }
            State::Armed { index, generation } => {
                let (index, generation) = (*index, *generation);
                // A replaced waker is dropped after the borrow ends (dropping one may drop a
                // task, and with it other deadlines).
                let (fired, _replaced) = DEADLINES.with(|d| {
                    let mut d = d.borrow_mut();
                    let slot = &mut d.slots[index as usize];
                    if slot.generation != generation {
                        return (true, None);
                    }
                    if slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        return (false, None);
                    }
                    (false, slot.waker.replace(cx.waker().clone()))
                });
                if fired {
                    self.state = State::Fired;
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
            State::Fired => Poll::Ready(()),
            State::Fallback(sleep) => sleep.as_mut().poll(cx),
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let State::Armed { index, generation } = self.state {
            // `try_with`: a deadline dropped while the thread's locals are torn down has
            // nothing left to unlink from. Its waker is dropped after the borrow ends.
            let _waker = DEADLINES.try_with(|d| {
                let mut d = d.borrow_mut();
                if d.slots[index as usize].generation == generation {
                    d.remove(index)
                } else {
                    None
                }
            });
        }
    }
}

/// Forgets this thread's runtime after it has ended: its armed deadlines (their tasks will
/// not run again) and its driver, which monoio may keep without dropping it. A later runtime
/// on the thread then starts a driver of its own at its first deadline.
pub fn runtime_ended() {
    let mut wakers = Vec::new();
    let _ = DEADLINES.try_with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            for l in 0..d.lists.len() {
                while d.lists[l].head != NIL {
                    let head = d.lists[l].head;
                    wakers.extend(d.remove(head));
                }
            }
            wakers.extend(d.driver.take());
            d.driver_at = None;
        }
    });
    drop(wakers);
    let _ = DRIVING.try_with(|r| r.set(false));
}

/// Starts this runtime's driver unless one runs. A runtime that ends drops its driver; a
/// later runtime on the same thread starts its own at its first deadline.
fn ensure_driver() {
    if !DRIVING.with(Cell::get) {
        DRIVING.with(|r| r.set(true));
        monoio::spawn(Driver {
            sleep: None,
            _running: Running,
        });
    }
}

/// Clears [`DRIVING`] however the driver ends.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        let _ = DRIVING.try_with(|r| r.set(false));
        // Its waker and timer went with it.
        let _waker = DEADLINES.try_with(|d| {
            d.try_borrow_mut().ok().and_then(|mut d| {
                d.driver_at = None;
                d.driver.take()
            })
        });
    }
}

/// Sleeps until the earliest deadline, fires what is due, and waits to be woken when none is
/// armed. Never finishes; it goes with its runtime.
struct Driver {
    sleep: Option<Pin<Box<Sleep>>>,
    _running: Running,
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut due = Vec::new();
        loop {
            let now = Instant::now();
            let (next, _replaced) = DEADLINES.with(|d| {
                let mut d = d.borrow_mut();
                let replaced = if d.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    None
                } else {
                    d.driver.replace(cx.waker().clone())
                };
                let next = d.fire_due(now, &mut due);
                d.driver_at = next;
                (next, replaced)
            });
            // Woken outside the borrow: a waker may run code that arms another deadline.
            for waker in due.drain(..) {
                waker.wake();
            }
            let Some(at) = next else {
                return Poll::Pending;
            };
            let sleep = match &mut self.sleep {
                Some(sleep) => {
                    if sleep.deadline() != at {
                        sleep.as_mut().reset(at);
                    }
                    sleep
                }
                None => self.sleep.insert(Box::pin(monoio::time::sleep_until(at))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
    }

    fn armed() -> usize {
        DEADLINES.with(|d| {
            let d = d.borrow();
            d.lists
                .iter()
                .map(|l| {
                    let (mut n, mut i) = (0, l.head);
                    while i != NIL {
                        n += 1;
                        i = d.slots[i as usize].next;
                    }
                    n
                })
                .sum()
        })
    }

    #[test]
    fn a_deadline_fires_after_its_duration() {
        runtime().block_on(async {
            let start = Instant::now();
            after(Duration::from_millis(20)).await;
            assert!(start.elapsed() >= Duration::from_millis(20));
            assert_eq!(armed(), 0);
        });
    }

    #[test]
    fn deadlines_fire_in_order_across_durations() {
        runtime().block_on(async {
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for (name, ms) in [("long", 60), ("short", 10), ("middle", 30), ("short2", 10)] {
                let order = order.clone();
                tasks.push(monoio::spawn(async move {
                    after(Duration::from_millis(ms)).await;
                    order.borrow_mut().push(name);
                }));
            }
            for t in tasks {
                t.await;
            }
            let order = order.borrow();
            assert_eq!(order[2..], ["middle", "long"]);
            assert!(order[..2].contains(&"short") && order[..2].contains(&"short2"));
        });
    }

    #[test]
    fn a_dropped_deadline_is_unlinked_and_its_slot_reused() {
        runtime().block_on(async {
            let before = DEADLINES.with(|d| d.borrow().slots.len());
            for _ in 0..1000 {
                let d = after(Duration::from_secs(60));
                // Armed by a first poll, then dropped as a finished call drops it.
                let fired = monoio::select! {
                    () = d => true,
                    () = std::future::ready(()) => false,
                };
                assert!(!fired);
            }
            assert_eq!(armed(), 0);
            let slots = DEADLINES.with(|d| d.borrow().slots.len());
            assert!(slots <= before + 1, "{before} -> {slots}");
        });
    }

    #[test]
    fn an_earlier_deadline_in_an_empty_list_wakes_the_sleeping_driver() {
        runtime().block_on(async {
            // The driver sleeps towards a far deadline; a short one armed later must not wait
            // for it.
            let far = monoio::spawn(after(Duration::from_secs(3600)));
            // Tasks run in spawn order: once this one has run, so have `far` (arming) and
            // the driver (setting its timer).
            monoio::spawn(async {}).await;
            monoio::spawn(async {}).await;
            assert!(DEADLINES.with(|d| d.borrow().driver_at).is_some());
            let start = Instant::now();
            let near = after(Duration::from_millis(10));
            let won = monoio::select! {
                () = near => true,
                () = monoio::time::sleep(Duration::from_secs(30)) => false,
            };
            assert!(won, "the near deadline waited for the far one");
            assert!(start.elapsed() >= Duration::from_millis(10));
            drop(far);
        });
    }

    #[test]
    fn a_duration_too_long_for_the_clock_waits_instead_of_overflowing() {
        runtime().block_on(async {
            let won = monoio::select! {
                () = after(Duration::MAX) => false,
                () = after(Duration::from_millis(5)) => true,
            };
            assert!(won);
            assert_eq!(armed(), 0);
        });
    }

    #[test]
    fn durations_beyond_the_lists_use_monoios_timer() {
        runtime().block_on(async {
            let mut tasks = Vec::new();
            for ms in 1..=(MAX_LISTS as u64 + 8) {
                tasks.push(monoio::spawn(after(Duration::from_millis(ms))));
            }
            for t in tasks {
                t.await;
            }
            assert_eq!(armed(), 0);
            assert!(DEADLINES.with(|d| d.borrow().lists.len()) <= MAX_LISTS);
        });
    }

    #[test]
    fn a_second_runtime_on_the_thread_gets_its_own_driver() {
        runtime().block_on(async {
            // One left armed as the runtime ends, one fired.
            let mut armed = Box::pin(after(Duration::from_secs(3600)));
            monoio::select! {
                () = armed.as_mut() => (),
                () = after(Duration::from_millis(5)) => (),
            }
            std::mem::forget(armed);
        });
        runtime_ended();
        assert_eq!(armed(), 0);
        runtime().block_on(async {
            let won = monoio::select! {
                () = after(Duration::from_millis(5)) => true,
                () = monoio::time::sleep(Duration::from_secs(30)) => false,
            };
            assert!(won);
        });
    }
}
