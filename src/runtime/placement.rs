//! Which CPU each worker thread is pinned to: distinct CPUs among those the process may run
//! on, so `taskset -c 1 mcpgate …` keeps every worker on CPU 1 (pinning worker `i` to CPU `i`
//! would move worker 0 onto a core the operator kept for something else).

/// The CPUs this thread may run on, ascending; empty if the mask cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data, valid when zeroed; sched_getaffinity writes at most
    // `size_of::<cpu_set_t>()` bytes into it, and CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// The CPU for each of `threads` threads: distinct allowed CPUs while there are enough,
/// otherwise none (more threads than CPUs: the scheduler places them).
pub fn placement(threads: usize) -> Vec<Option<usize>> {
    let cpus = allowed_cpus();
    if threads <= cpus.len() {
        cpus.into_iter().take(threads).map(Some).collect()
    } else {
        vec![None; threads]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_threads_on_allowed_cpus() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        assert_eq!(
            placement(cpus.len()),
            cpus.iter().copied().map(Some).collect::<Vec<_>>()
        );
        assert!(placement(cpus.len() + 1).iter().all(Option::is_none));
    }
}
