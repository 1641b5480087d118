//! Each upstream's health: a state with the last error and since when, kept current by the
//! registry keeper's checks (`registry::health_watch`) and read by calls (which fail fast while
//! a server is unhealthy) and by whoever reports status.
//!
//! Owns: the state and its transitions (each logged once). Must never: block a caller (a
//! state read is one atomic load) or hold its lock across anything but a copy.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Where a server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Connecting, spawning, or waiting for the first handshake.
    Starting,
    /// Answering.
    Healthy,
    /// Failed its last check; calls fail fast until a check passes.
    Unhealthy,
    /// Down, waiting before the next reconnect or restart.
    Backoff,
    /// Taken out (a reload removed it); no longer checked.
    Disabled,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Backoff => "backoff",
            HealthState::Disabled => "disabled",
        }
    }

    fn from_u8(v: u8) -> HealthState {
        match v {
            0 => HealthState::Starting,
            1 => HealthState::Healthy,
            2 => HealthState::Unhealthy,
            3 => HealthState::Backoff,
            _ => HealthState::Disabled,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            HealthState::Starting => 0,
            HealthState::Healthy => 1,
            HealthState::Unhealthy => 2,
            HealthState::Backoff => 3,
            HealthState::Disabled => 4,
        }
    }
}

/// What a server does while not healthy: its tools stay listed and calls fail naming it
/// (`Error`), or they leave the lists until it recovers (`Hide`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    #[default]
    Error,
    Hide,
}

/// How a server is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    pub on_failure: OnFailure,
    /// Between checks while healthy; a quarter of it (at least 250 ms) while not.
    pub interval: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            on_failure: OnFailure::Error,
            interval: Duration::from_secs(10),
        }
    }
}

impl HealthPolicy {
    /// The pause before the next check of a server in `state`.
    pub fn next_check(&self, state: HealthState) -> Duration {
        match state {
            HealthState::Healthy => self.interval,
            _ => (self.interval / 4).max(Duration::from_millis(250)),
        }
    }
}

/// A point-in-time view of a server's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub state: HealthState,
    pub last_error: Option<String>,
    pub since: SystemTime,
}

#[derive(Debug)]
pub struct Health {
    state: AtomicU8,
    detail: Mutex<(Option<String>, SystemTime)>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(HealthState::Starting, None)
    }
}

impl Health {
    pub fn new(state: HealthState, error: Option<String>) -> Health {
        Health {
            state: AtomicU8::new(state.as_u8()),
            detail: Mutex::new((error, SystemTime::now())),
        }
    }

    pub fn state(&self) -> HealthState {
        HealthState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether calls should be failed fast (the last check failed).
    pub fn failing(&self) -> bool {
        self.state() == HealthState::Unhealthy
    }

    pub fn report(&self) -> HealthReport {
        let (last_error, since) = self
            .detail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        HealthReport {
            state: self.state(),
            last_error,
            since,
        }
    }

    /// Moves to `state`; true when that is a change (then logged). `error` replaces the last
    /// error when given.
    pub fn set(&self, server: &str, state: HealthState, error: Option<String>) -> bool {
        let previous = HealthState::from_u8(self.state.swap(state.as_u8(), Ordering::AcqRel));
        let changed = previous != state;
        let mut detail = self.detail.lock().unwrap_or_else(PoisonError::into_inner);
        if error.is_some() {
            detail.0 = error;
        }
        if changed {
            detail.1 = SystemTime::now();
            match state {
                HealthState::Healthy => {
                    tracing::info!(server = %server, from = previous.as_str(), "upstream healthy")
                }
                HealthState::Disabled => {
                    tracing::info!(server = %server, "upstream disabled; no longer checked")
                }
                other => tracing::warn!(
                    server = %server, state = other.as_str(), error = detail.0.as_deref().unwrap_or(""),
                    "upstream not healthy"
                ),
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_are_reported_once_and_keep_the_error() {
        let h = Health::default();
        assert_eq!(h.state(), HealthState::Starting);
        assert!(h.set("s", HealthState::Healthy, None));
        assert!(!h.set("s", HealthState::Healthy, None));
        assert!(h.set("s", HealthState::Unhealthy, Some("timed out".into())));
        assert!(h.failing());
        let report = h.report();
        assert_eq!(report.last_error.as_deref(), Some("timed out"));
        assert!(h.set("s", HealthState::Healthy, None));
        assert_eq!(h.report().last_error.as_deref(), Some("timed out"));
    }

    #[test]
    fn unhealthy_servers_are_checked_faster() {
        let p = HealthPolicy {
            on_failure: OnFailure::Hide,
            interval: Duration::from_secs(8),
        };
        assert_eq!(p.next_check(HealthState::Healthy), Duration::from_secs(8));
        assert_eq!(p.next_check(HealthState::Unhealthy), Duration::from_secs(2));
        let fast = HealthPolicy {
            interval: Duration::from_millis(100),
            ..p
        };
        assert_eq!(
            fast.next_check(HealthState::Backoff),
            Duration::from_millis(250)
        );
    }
}
