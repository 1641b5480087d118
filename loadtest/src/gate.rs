//! The start line: load threads open their sessions, then wait here until every thread is
//! ready, so the measurement starts at one instant for all and no handshake is measured.
//!
//! Unlike `std::sync::Barrier` it can be broken: a thread whose runtime fails to start breaks
//! it instead of leaving the others waiting forever.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

#[derive(Debug)]
struct State {
    waiting_for: usize,
    broken: bool,
    start: Option<Instant>,
}

#[derive(Debug)]
pub struct Gate {
    state: Mutex<State>,
    opened: Condvar,
}

impl Gate {
    pub fn new(threads: usize) -> Gate {
        Gate {
            state: Mutex::new(State {
                waiting_for: threads,
                broken: false,
                start: None,
            }),
            opened: Condvar::new(),
        }
    }

    /// Blocks until every thread arrived; returns the common start instant, or `None` if the
    /// gate was broken. (Called between runtime tasks, when this thread has nothing else to do.)
    pub fn arrive_and_wait(&self) -> Option<Instant> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.waiting_for = s.waiting_for.saturating_sub(1);
        if s.waiting_for == 0 && !s.broken {
            s.start = Some(Instant::now());
            self.opened.notify_all();
        }
        while s.start.is_none() && !s.broken {
            s = self.opened.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.broken {
            None
        } else {
            s.start
        }
    }

    /// Releases every waiting thread with `None`.
    pub fn break_it(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.broken = true;
        self.opened.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn opens_for_all_at_one_instant_or_breaks() {
        let gate = Arc::new(Gate::new(3));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let g = gate.clone();
                std::thread::spawn(move || g.arrive_and_wait())
            })
            .collect();
        let starts: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(starts[0].is_some());
        assert!(starts.iter().all(|s| *s == starts[0]));

        let gate = Arc::new(Gate::new(2));
        let g = gate.clone();
        let waiter = std::thread::spawn(move || g.arrive_and_wait());
        gate.break_it();
        assert_eq!(waiter.join().unwrap(), None);
    }
}
