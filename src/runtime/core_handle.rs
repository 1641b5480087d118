//! Starting tasks on a chosen core's runtime from any thread.
//!
//! Owns: the per-core inbox of jobs and the handle other threads use to fill it. A stdio
//! upstream uses it to hand a freshly started child's pipes to the core that will drive them,
//! so calls made on that core never leave it.
//! Must never: run a job anywhere but on the runtime that drains the inbox, or block that
//! runtime (a job only spawns tasks).

use std::future::Future;
use std::io;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use super::{block_on, IoDriver};

type Job = Box<dyn FnOnce() + Send>;

/// A cheap, cloneable handle to one core's runtime: [`CoreHandle::spawn`] starts a task there.
#[derive(Clone)]
pub struct CoreHandle {
    jobs: UnboundedSender<Job>,
    driver: IoDriver,
}

/// The receiving side, drained by [`CoreInbox::run`] on the core's runtime.
pub struct CoreInbox {
    jobs: UnboundedReceiver<Job>,
}

/// The inbox has stopped: its runtime is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreStopped;

impl std::fmt::Display for CoreStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the core that runs this work has stopped")
    }
}

/// A handle and the inbox it fills, for a runtime that runs on `driver`.
pub fn core_channel(driver: IoDriver) -> (CoreHandle, CoreInbox) {
    let (jobs, rx) = unbounded();
    (CoreHandle { jobs, driver }, CoreInbox { jobs: rx })
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
        let job: Job = Box::new(move || {
            monoio::spawn(make());
        });
        self.jobs.unbounded_send(job).map_err(|_| CoreStopped)
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
    fn a_stopped_inbox_is_reported() {
        let (handle, inbox) = core_channel(IoDriver::Epoll);
        drop(inbox);
        assert_eq!(handle.spawn(|| async {}), Err(CoreStopped));
    }
}
