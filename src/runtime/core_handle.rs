//! Starting tasks on a chosen core's runtime from any thread.
//!
//! Owns: the per-core inbox of jobs and the handle other threads use to fill it. A stdio
//! upstream uses it to hand a freshly started child's pipes to the core that will drive them,
//! so calls made on that core never leave it. The handle counts the jobs not yet run, so work
//! that a peer can cause at any rate (a server's resource updates fanned out to subscribers)
//! is sent with [`CoreHandle::spawn_within`] and refused past a bound instead of piling up.
//! Must never: run a job anywhere but on the runtime that drains the inbox, or block that
//! runtime (a job only spawns tasks).

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use super::{block_on, IoDriver};

type Job = Box<dyn FnOnce() + Send>;

/// A cheap, cloneable handle to one core's runtime: [`CoreHandle::spawn`] starts a task there.
#[derive(Clone)]
pub struct CoreHandle {
    jobs: UnboundedSender<Job>,
    driver: IoDriver,
    /// Jobs sent and not yet run (shared by every clone of the handle).
    pending: Arc<AtomicUsize>,
}

/// The receiving side, drained by [`CoreInbox::run`] on the core's runtime.
pub struct CoreInbox {
    jobs: UnboundedReceiver<Job>,
}

/// The inbox has stopped: its runtime is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreStopped;

/// Why [`CoreHandle::spawn_within`] did not send a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnRefused {
    /// The core has this many jobs waiting already (the bound asked for).
    Busy(usize),
    Stopped(CoreStopped),
}

impl std::fmt::Display for CoreStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the core that runs this work has stopped")
    }
}

/// A handle and the inbox it fills, for a runtime that runs on `driver`.
pub fn core_channel(driver: IoDriver) -> (CoreHandle, CoreInbox) {
    // Unbounded as a channel; what may fill it without bound goes through `spawn_within`.
    let (jobs, rx) = unbounded();
    let handle = CoreHandle {
        jobs,
        driver,
        pending: Arc::new(AtomicUsize::new(0)),
    };
    (handle, CoreInbox { jobs: rx })
}

impl std::fmt::Debug for CoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreHandle")
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

impl CoreHandle {
    /// Starts `make()`'s future as a task on the handle's core. `make` itself runs there too,
    /// so it may create values that must not cross threads (sockets, `Rc`s).
    pub fn spawn<F, Fut>(&self, make: F) -> Result<(), CoreStopped>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let pending = self.pending.clone();
        let job: Job = Box::new(move || {
            pending.fetch_sub(1, Ordering::Relaxed);
            monoio::spawn(make());
        });
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.jobs.unbounded_send(job).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            CoreStopped
        })
    }

    /// As [`CoreHandle::spawn`], unless the core has `most_pending` jobs or more waiting
    /// (a core busy with calls drains its inbox between them; this keeps a flood of work from
    /// another thread from piling up there).
    pub fn spawn_within<F, Fut>(&self, most_pending: usize, make: F) -> Result<(), SpawnRefused>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let waiting = self.pending.load(Ordering::Relaxed);
        if waiting >= most_pending {
            return Err(SpawnRefused::Busy(waiting));
        }
        self.spawn(make).map_err(SpawnRefused::Stopped)
    }

    /// The I/O driver of the handle's runtime (epoll needs non-blocking descriptors).
    pub fn driver(&self) -> IoDriver {
        self.driver
    }

    /// A runtime on a thread of its own that runs nothing but what is spawned through the
    /// returned handle, for programs without worker cores (`mcpgate tools`, tests, benches).
    /// The thread ends once every clone of the handle is dropped.
    pub fn dedicated(name: &str, driver: IoDriver) -> io::Result<CoreHandle> {
        let (handle, inbox) = core_channel(driver);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if let Err(e) = block_on(driver, || inbox.run()) {
                    tracing::error!(error = %e, "a dedicated runtime could not start");
                }
            })?;
        Ok(handle)
    }
}

impl CoreInbox {
    /// Runs every job sent to this inbox, until every handle is dropped. Spawn it as a task on
    /// the core's runtime.
    pub async fn run(mut self) {
        while let Some(job) = self.jobs.next().await {
            job();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_run_on_the_dedicated_thread() {
        let handle = CoreHandle::dedicated("core-handle-test", IoDriver::Epoll).expect("thread");
        let (tx, rx) = mpsc::channel();
        handle
            .spawn(move || async move {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send(name);
            })
            .expect("spawn");
        let ran_on = rx.recv().expect("the job ran");
        assert_eq!(ran_on.as_deref(), Some("core-handle-test"));
    }

    #[test]
    fn jobs_past_the_bound_are_refused_until_the_core_runs_them() {
        let (handle, inbox) = core_channel(IoDriver::Epoll);
        for _ in 0..3 {
            handle.spawn_within(3, || async {}).expect("room");
        }
        assert_eq!(
            handle.spawn_within(3, || async {}),
            Err(SpawnRefused::Busy(3))
        );
        // Plain spawns still go (they are counted too).
        handle.spawn(|| async {}).expect("spawn");
        assert_eq!(
            handle.clone().spawn_within(4, || async {}),
            Err(SpawnRefused::Busy(4))
        );
        // Once the core has run them, there is room again.
        let (tx, rx) = mpsc::channel();
        handle
            .spawn(move || async move {
                let _ = tx.send(());
            })
            .expect("spawn");
        std::thread::spawn(move || block_on(IoDriver::Epoll, || inbox.run()));
        rx.recv().expect("the jobs ran");
        assert_eq!(handle.spawn_within(1, || async {}), Ok(()));
    }

    #[test]
    fn a_stopped_inbox_is_reported() {
        let (handle, inbox) = core_channel(IoDriver::Epoll);
        drop(inbox);
        assert_eq!(handle.spawn(|| async {}), Err(CoreStopped));
    }
}
