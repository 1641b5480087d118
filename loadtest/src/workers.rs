//! Load threads, each pinned to its own CPU among those this process may run on (the
//! gateway's placement rule, so `taskset -c 1 mcpgate-load …` keeps every load thread on
//! CPU 1). Each thread runs the gateway's runtime (`runtime::block_on`).

use std::io;
use std::thread::JoinHandle;

pub use mcpgate::runtime::placement;

/// Starts thread `mcpgate-load-<index>`, pinned to `cpu` if given, running `body`.
pub fn spawn<T, F>(index: usize, cpu: Option<usize>, body: F) -> io::Result<JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("mcpgate-load-{index}"))
        .spawn(move || {
            if let Some(cpu) = cpu {
                if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
                    eprintln!("mcpgate-load: cannot pin thread {index} to CPU {cpu}: {e}");
                }
            }
            body()
        })
}
