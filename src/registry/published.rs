//! Publishing snapshots to the worker cores.
//!
//! The control thread swaps in a new `Arc` and bumps a generation counter; each core keeps
//! its own `Rc` to the snapshot and only looks at the shared slot when the counter moved, so
//! a read on the hot path is one atomic load and a non-atomic refcount bump.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::snapshot::RegistrySnapshot;

/// The current snapshot, shared by every core.
pub struct PublishedRegistry {
    generation: AtomicU64,
    current: Mutex<Arc<RegistrySnapshot>>,
}

impl PublishedRegistry {
    pub fn new(first: RegistrySnapshot) -> Arc<Self> {
        Arc::new(PublishedRegistry {
            generation: AtomicU64::new(first.generation),
            current: Mutex::new(Arc::new(first)),
        })
    }

    /// Makes `next` current; its generation must be higher than the current one.
    pub fn publish(&self, next: RegistrySnapshot) {
        let generation = next.generation;
        let next = Arc::new(next);
        match self.current.lock() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        self.generation.store(generation, Ordering::Release);
    }

    pub fn load(&self) -> Arc<RegistrySnapshot> {
        match self.current.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A core's view of the published registry. The `Rc` around the shared `Arc` is deliberate:
/// per-request clones bump a core-local count instead of the `Arc`'s atomic one, which every
/// core would otherwise contend on.
#[allow(clippy::redundant_allocation)]
pub struct RegistryReader {
    shared: Arc<PublishedRegistry>,
    cached: RefCell<(u64, Rc<Arc<RegistrySnapshot>>)>,
}

impl RegistryReader {
    pub fn new(shared: Arc<PublishedRegistry>) -> Self {
        let snap = shared.load();
        RegistryReader {
            cached: RefCell::new((snap.generation, Rc::new(snap))),
            shared,
        }
    }

    /// The current snapshot; hold it for the whole request.
    #[allow(clippy::redundant_allocation)]
    pub fn current(&self) -> Rc<Arc<RegistrySnapshot>> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        let mut cached = self.cached.borrow_mut();
        if cached.0 != generation {
            let snap = self.shared.load();
            *cached = (snap.generation, Rc::new(snap));
        }
        cached.1.clone()
    }
}
