//! Optional busy polling: after recent traffic a worker keeps polling its ring instead of
//! sleeping in the kernel, so the next message is seen without the wake-up of an idle CPU.
//! On virtual machines that wake-up (a halt exit) costs tens of microseconds per hop, which
//! dominates latency at moderate rates. The price is a core spinning at 100% while traffic
//! keeps arriving within the window; with no traffic for a window the worker sleeps again.
//!
//! Two tasks wake each other in turn: a task that woke itself would be re-queued at the front
//! by monoio 0.2.4 and starve the others; one woken by another task goes to the back. While
//! either is queued the runtime submits and reaps without blocking (`submit` + `tick`).
//! monoio fires timers only when it parks, so about once a millisecond the first task waits
//! on an already-due zero-length sleep instead: the runtime then parks with a zero timeout
//! (no sleep in the kernel), fires every due timer (call timeouts among them), and the
//! spinning resumes.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

struct Spin {
    window: Duration,
    last_activity: Cell<Instant>,
    /// The wakers of the two spinning tasks.
    wakers: [RefCell<Option<Waker>>; 2],
    /// Both tasks stopped after a quiet window; the next activity restarts them.
    resting: Cell<bool>,
}

thread_local! {
    static SPIN: RefCell<Option<Rc<Spin>>> = const { RefCell::new(None) };
}

/// Marks traffic on this worker: keeps busy polling going for another window (or restarts it).
/// Costs one clock read and a thread-local access; nothing when busy polling is off.
pub fn note_activity() {
    SPIN.with(|s| {
        if let Some(spin) = s.borrow().as_ref() {
            spin.last_activity.set(Instant::now());
            if spin.resting.replace(false) {
                if let Some(w) = spin.wakers[0].borrow().as_ref() {
                    w.wake_by_ref();
                }
            }
        }
    });
}

/// How often timers get their chance while spinning (monoio's timer tick).
const TIMER_PASS: Duration = Duration::from_millis(1);

struct Spinner {
    spin: Rc<Spin>,
    me: usize,
    /// Spinner 0 only: the zero-length sleep that lets the runtime park and fire timers.
    timer_pass: Option<Pin<Box<monoio::time::Sleep>>>,
    last_timer_pass: Instant,
}

impl Future for Spinner {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let spin = this.spin.clone();
        *spin.wakers[this.me].borrow_mut() = Some(cx.waker().clone());
        if this.me == 0 {
            if let Some(pass) = this.timer_pass.as_mut() {
                if pass.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timer_pass = None;
            }
            let now = Instant::now();
            if now.saturating_duration_since(this.last_timer_pass) >= TIMER_PASS {
                this.last_timer_pass = now;
                let mut pass = Box::pin(monoio::time::sleep(Duration::ZERO));
                if pass.as_mut().poll(cx).is_pending() {
                    // Spinner 1 is not woken: the queue drains and the runtime parks (zero timeout).
                    this.timer_pass = Some(pass);
                    return Poll::Pending;
                }
            }
        }
        if spin.last_activity.get().elapsed() < spin.window {
            if let Some(other) = spin.wakers[1 - this.me].borrow().as_ref() {
                other.wake_by_ref();
            }
        } else {
            spin.resting.set(true);
        }
        Poll::Pending
    }
}

/// Starts busy polling on the current worker's runtime (call from inside it).
pub fn start(window: Duration) {
    let spin = Rc::new(Spin {
        window,
        last_activity: Cell::new(Instant::now()),
        wakers: [RefCell::new(None), RefCell::new(None)],
        resting: Cell::new(false),
    });
    SPIN.with(|s| *s.borrow_mut() = Some(spin.clone()));
    let now = Instant::now();
    monoio::spawn(Spinner {
        spin: spin.clone(),
        me: 1,
        timer_pass: None,
        last_timer_pass: now,
    });
    monoio::spawn(Spinner {
        spin,
        me: 0,
        timer_pass: None,
        last_timer_pass: now,
    });
}
