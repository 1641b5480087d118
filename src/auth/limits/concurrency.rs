//! Calls in flight: one atomic gauge per account, and the permit that holds a slot.
//!
//! The gauge is exact (a slot is taken by CAS only below the maximum), so it is not leased
//! per core: one CAS to take a slot and one atomic subtraction to give it back, per account
//! with a maximum. Accounts without one are not counted at all.

use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::per_core::CoreInner;
use super::AccountId;

/// Takes a slot if fewer than `max` are taken.
pub(super) fn acquire(gauge: &AtomicU32, max: u32) -> bool {
    let mut cur = gauge.load(Relaxed);
    loop {
        if cur >= max {
            return false;
        }
        match gauge.compare_exchange_weak(cur, cur + 1, Relaxed, Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

/// Gives back a slot taken by [`acquire`].
pub(super) fn release(gauge: &AtomicU32) {
    gauge.fetch_sub(1, Relaxed);
}

/// Holds an admitted call's concurrency slots; dropping it gives them back.
///
/// `'static` and not `Send`: keep it in the task serving the call (it may be held across
/// awaits) and drop it on the core that admitted the call. It holds the core's limit state
/// by `Rc`, not the shared `Limits` by `Arc`, so admitting a call touches no shared
/// reference count.
#[must_use = "the call's slots are released when the permit is dropped"]
pub struct CallPermit {
    slots: Option<Slots>,
}

struct Slots {
    core: Rc<CoreInner>,
    ids: Ids,
}

/// The accounts whose gauges this permit holds, inline for the usual short chain.
enum Ids {
    Inline { ids: [AccountId; 4], len: usize },
    Heap(Box<[AccountId]>),
}

impl CallPermit {
    /// A permit holding one slot of each account in `held` (all already acquired).
    pub(super) fn new(
        core: &Rc<CoreInner>,
        held: impl Iterator<Item = AccountId> + Clone,
    ) -> CallPermit {
        let count = held.clone().count();
        if count == 0 {
            return CallPermit { slots: None };
        }
        let ids = if count <= 4 {
            let mut ids = [AccountId(0); 4];
            for (slot, id) in ids.iter_mut().zip(held) {
                *slot = id;
            }
            Ids::Inline { ids, len: count }
        } else {
            Ids::Heap(held.collect())
        };
        CallPermit {
            slots: Some(Slots {
                core: Rc::clone(core),
                ids,
            }),
        }
    }

    /// How many accounts' slots this permit holds.
    pub fn slots(&self) -> usize {
        match &self.slots {
            None => 0,
            Some(Slots {
                ids: Ids::Inline { len, .. },
                ..
            }) => *len,
            Some(Slots {
                ids: Ids::Heap(ids),
                ..
            }) => ids.len(),
        }
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        let Some(slots) = &self.slots else { return };
        let ids = match &slots.ids {
            Ids::Inline { ids, len } => &ids[..*len],
            Ids::Heap(ids) => ids,
        };
        for &id in ids {
            slots.core.release_slot(id);
        }
    }
}

impl std::fmt::Debug for CallPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallPermit")
            .field("slots", &self.slots())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn gauge_is_exact_under_threads() {
        let gauge = Arc::new(AtomicU32::new(0));
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (gauge, inside) = (Arc::clone(&gauge), Arc::clone(&inside));
                std::thread::spawn(move || {
                    let mut admitted = 0;
                    for _ in 0..20_000 {
                        if acquire(&gauge, 3) {
                            admitted += 1;
                            let now_inside = inside.fetch_add(1, Relaxed) + 1;
                            assert!(now_inside <= 3, "{now_inside} in flight");
                            inside.fetch_sub(1, Relaxed);
                            release(&gauge);
                        }
                    }
                    admitted
                })
            })
            .collect();
        let admitted: u32 = threads
            .into_iter()
            .map(|t| t.join().expect("a thread failed"))
            .sum();
        assert!(admitted > 0);
        assert_eq!(gauge.load(Relaxed), 0);
    }

    #[test]
    fn gauge_refuses_at_the_maximum() {
        let gauge = AtomicU32::new(0);
        assert!(acquire(&gauge, 2));
        assert!(acquire(&gauge, 2));
        assert!(!acquire(&gauge, 2));
        release(&gauge);
        assert!(acquire(&gauge, 2));
        assert!(!acquire(&gauge, 0));
    }
}
