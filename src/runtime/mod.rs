//! The thread-per-core runtime: one monoio runtime per worker thread, each with its own
//! SO_REUSEPORT listener, pinned to a core.
//!
//! Owns: choosing and building the I/O driver (io_uring with cooperative task running, or
//! epoll), binding listeners (refusing a port someone else holds), starting workers,
//! draining them on shutdown ([`drain`]), the per-core deadlines of the request path
//! ([`deadline`]), and what every core's hot path leans on: the memory allocator
//! ([`Mimalloc`]), futures boxed in place ([`boxed`]) and tick-granular clock readings
//! ([`coarse_clock`]).
//! Must never: pretend a driver runs that does not (the driver in use is reported).

mod allocator;
pub mod busy_poll;
pub mod coarse_clock;
mod core_handle;
pub mod deadline;
pub mod drain;
mod in_place;
mod listener;
mod placement;

pub use allocator::Mimalloc;
pub use core_handle::{core_channel, CoreHandle, CoreInbox, CoreStopped, SpawnRefused};
pub use in_place::boxed;
pub use listener::bind_listeners;
pub use placement::{allowed_cpus, placement};

use std::future::Future;
use std::io;
use std::thread::JoinHandle;

use crate::config::IoDriverChoice;

/// The driver a runtime actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    Uring,
    Epoll,
}

impl IoDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            IoDriver::Uring => "io_uring",
            IoDriver::Epoll => "epoll",
        }
    }

    /// Resolves a choice against what this kernel allows.
    pub fn resolve(choice: IoDriverChoice) -> io::Result<IoDriver> {
        match choice {
            IoDriverChoice::Epoll => Ok(IoDriver::Epoll),
            IoDriverChoice::Uring if monoio::utils::detect_uring() => Ok(IoDriver::Uring),
            IoDriverChoice::Uring => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring was requested (--io-driver uring) but this kernel or sandbox does not allow it; \
                 use --io-driver epoll or auto",
            )),
            IoDriverChoice::Auto if monoio::utils::detect_uring() => Ok(IoDriver::Uring),
            IoDriverChoice::Auto => Ok(IoDriver::Epoll),
        }
    }
}

/// Raises this process's open-file soft limit to its hard limit: every client and upstream
/// connection is a descriptor, and the usual soft default (1024) caps a gateway far below
/// what the machine can hold. Returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write exactly one rlimit struct that we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// Ring entries per core: room for many connections' operations in flight.
const URING_ENTRIES: u32 = 4096;

/// Runs `make()`'s future to completion on a fresh runtime with `driver`, on this thread.
///
/// Run at most one runtime per thread over the thread's life: monoio 0.2.4 keeps the handles
/// other threads use to wake a runtime per thread, so wake-ups meant for a second runtime on a
/// thread can go to the first one's dead handle and arrive only when something else wakes it
/// (measured: a stdio reply waiting ~1 ms instead of ~75 µs). Start-up and recovery therefore
/// each run on a thread that runs nothing else afterwards.
pub fn block_on<F, Fut>(driver: IoDriver, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    let out = match driver {
        IoDriver::Uring => {
            // Cooperative task running: completions are processed when the thread next enters
            // the kernel rather than by interrupting it, which measured as fast as epoll here
            // (the default setup is ~35% slower per CPU-second).
            let mut ring = io_uring::IoUring::builder();
            ring.setup_coop_taskrun();
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .uring_builder(ring)
                .enable_timer()
                .build()?;
            rt.block_on(make())
        }
        IoDriver::Epoll => {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()?;
            rt.block_on(make())
        }
    };
    deadline::runtime_ended();
    Ok(out)
}

thread_local! {
    /// Which worker this thread is, on worker threads.
    static WORKER_INDEX: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The index of the worker core running this thread (`0..workers`); `None` on other threads
/// (the control thread, stdio and helper threads).
pub fn worker_index() -> Option<usize> {
    WORKER_INDEX.with(std::cell::Cell::get)
}

/// Starts `workers` threads, each running `body(index)` on its own runtime, each pinned to its
/// own allowed CPU when there are no more workers than allowed CPUs.
pub fn spawn_workers<F, Fut>(
    workers: usize,
    driver: IoDriver,
    body: F,
) -> io::Result<Vec<JoinHandle<()>>>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()>,
{
    let cpus = placement(workers);
    let mut handles = Vec::with_capacity(workers);
    for index in 0..workers {
        let body = body.clone();
        let cpu = cpus.get(index).copied().flatten();
        let handle = std::thread::Builder::new()
            .name(format!("mcpgate-worker-{index}"))
            .spawn(move || {
                WORKER_INDEX.with(|w| w.set(Some(index)));
                if let Some(cpu) = cpu {
                if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
                    tracing::warn!(worker = index, cpu, error = %e, "cannot pin worker to its CPU");
                }
            }
                if let Err(e) = block_on(driver, || body(index)) {
                    tracing::error!(worker = index, error = %e, "worker runtime failed to start");
                    eprintln!(
                        "mcpgate: worker {index} could not start its {} runtime: {e}",
                        driver.as_str()
                    );
                    std::process::exit(1);
                }
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Serves HTTP with one worker per listener: worker `i` builds its handler with `make(i)` on
/// its own thread (handlers are per-core and need not be `Send`) and serves listener `i`.
pub fn serve_on_workers<H, F>(
    listeners: Vec<std::net::TcpListener>,
    driver: IoDriver,
    limits: crate::http::HttpLimits,
    busy_poll: Option<std::time::Duration>,
    make: F,
) -> io::Result<Vec<JoinHandle<()>>>
where
    H: crate::http::Handler + 'static,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    serve_on_workers_after(listeners, driver, limits, busy_poll, None, move |index| {
        std::future::ready(Some(make(index)))
    })
}

/// Like [`serve_on_workers`], but each worker's runtime starts first and runs `make(i)`'s
/// future before it accepts: work the handler depends on can use the worker cores meanwhile
/// (stdio upstreams are driven there). A future that yields `None` ends that worker unserved.
/// With `tls` the listeners serve only TLS.
pub fn serve_on_workers_after<H, F, Fut>(
    listeners: Vec<std::net::TcpListener>,
    driver: IoDriver,
    limits: crate::http::HttpLimits,
    busy_poll: Option<std::time::Duration>,
    tls: Option<crate::tls::TlsAcceptor>,
    make: F,
) -> io::Result<Vec<JoinHandle<()>>>
where
    H: crate::http::Handler + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<H>> + 'static,
{
    let count = listeners.len();
    let slots: Vec<std::sync::Mutex<Option<std::net::TcpListener>>> = listeners
        .into_iter()
        .map(|l| std::sync::Mutex::new(Some(l)))
        .collect();
    let shared = std::sync::Arc::new((slots, make));
    spawn_workers(count, driver, move |index| {
        let (slots, make) = &*shared;
        let listener = slots
            .get(index)
            .and_then(|s| s.lock().ok().and_then(|mut l| l.take()));
        let handler = make(index);
        let tls = tls.clone();
        async move {
            let Some(handler) = handler.await else {
                return;
            };
            if let Some(window) = busy_poll {
                busy_poll::start(window);
            }
            match listener {
                Some(listener) => {
                    crate::http::serve_listener(listener, std::rc::Rc::new(handler), limits, tls)
                        .await
                }
                None => tracing::error!(worker = index, "no listener for this worker"),
            }
            // The listener stops only for a drain. The connections it started (finishing their
            // requests), the stdio pipes driven here and the core's inbox are tasks of this
            // runtime: it keeps running them until the process exits.
            std::future::pending::<()>().await
        }
    })
}
