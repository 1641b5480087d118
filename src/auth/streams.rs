//! The long-lived streams each caller holds open (`GET /mcp`, `GET /sse`), capped per key.
//!
//! A session id is a stateless token and costs the gateway nothing while idle; what a session
//! holds is its open stream (a task, buffers, an inbox for announcements). That is what this
//! caps, so one key cannot hold gateway memory without bound. Owns: the per-caller gauges,
//! which survive a config reload for callers that stay. Must never: block, or forget to give a
//! slot back (the slot is an RAII guard held by the stream).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Streams a key may hold open unless the config says otherwise.
pub const DEFAULT_MAX_STREAMS: u32 = 64;

/// One caller's gauge of open streams.
#[derive(Clone, Default)]
pub struct StreamGauge(Arc<AtomicU32>);

/// A slot of an open stream; dropping it gives the slot back.
pub struct StreamSlot(Arc<AtomicU32>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StreamGauge {
    /// Takes a slot unless `max` streams are open already.
    pub fn open(&self, max: u32) -> Option<StreamSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamSlot(self.0.clone()))
    }

    pub fn open_now(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// Gauges by key name (`""`: anonymous), to carry over a reload.
pub fn carry_over(
    names: impl Iterator<Item = String>,
    previous: &HashMap<String, StreamGauge>,
) -> HashMap<String, StreamGauge> {
    names
        .map(|n| {
            let gauge = previous.get(&n).cloned().unwrap_or_default();
            (n, gauge)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_given_back() {
        let gauge = StreamGauge::default();
        let a = gauge.open(2).unwrap();
        let _b = gauge.open(2).unwrap();
        assert!(gauge.open(2).is_none());
        drop(a);
        assert_eq!(gauge.open_now(), 1);
        assert!(gauge.open(2).is_some());
    }

    #[test]
    fn gauges_survive_a_reload_by_name() {
        let old: HashMap<String, StreamGauge> = carry_over(
            ["a".to_string(), "b".to_string()].into_iter(),
            &HashMap::new(),
        );
        let _slot = old["a"].open(5).unwrap();
        let new = carry_over(["a".to_string(), "c".to_string()].into_iter(), &old);
        assert_eq!(new["a"].open_now(), 1);
        assert_eq!(new["c"].open_now(), 0);
    }
}
