//! CPU time of a process on this machine (Linux `/proc`), sampled around rounds so `compare`
//! can report the CPU each side's server spent per call within the same run. Comparing the
//! gateway's CPU per call with a bare server's, measured in alternating rounds, gives a figure
//! a noisy shared machine moves much less than either absolute time.

use std::time::Duration;

/// A process whose CPU time (all its threads, user + system) is sampled.
#[derive(Debug, Clone, Copy)]
pub struct WatchedProcess {
    pid: u32,
    ticks_per_sec: u64,
}

impl WatchedProcess {
    /// Checks that `pid`'s CPU time can be read.
    pub fn new(pid: u32) -> Result<WatchedProcess, String> {
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks_per_sec = u64::try_from(ticks)
            .ok()
            .filter(|&t| t > 0)
            .ok_or("the clock tick rate (sysconf _SC_CLK_TCK) is unknown")?;
        let p = WatchedProcess { pid, ticks_per_sec };
        p.cpu()?;
        Ok(p)
    }

    /// The CPU time the process has used so far.
    pub fn cpu(&self) -> Result<Duration, String> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {path} (is process {} running?): {e}", self.pid))?;
        let ticks = cpu_ticks(&stat).ok_or_else(|| format!("{path}: unexpected format"))?;
        Ok(Duration::from_micros(
            ticks.saturating_mul(1_000_000) / self.ticks_per_sec,
        ))
    }
}

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`. The command name (field
/// 2) is in parentheses and may itself hold spaces or parentheses, so fields are counted from
/// the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state (3), ppid (4), …, utime (14), stime (15).
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_read_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
    }

    #[test]
    fn a_truncated_line_is_refused() {
        assert_eq!(cpu_ticks("4242 (x) S 1 2 3"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn this_process_cpu_time_grows_while_it_works() {
        let me = WatchedProcess::new(std::process::id()).unwrap();
        let before = me.cpu().unwrap();
        // Work until the tick-granular counter moves; bounded, so a counter that never moves
        // fails the test instead of hanging it.
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        let mut now = before;
        while now == before && std::time::Instant::now() < give_up {
            std::hint::black_box((0..10_000u64).sum::<u64>());
            now = me.cpu().unwrap();
        }
        assert!(now > before, "CPU time stayed at {before:?}");
    }

    #[test]
    fn a_missing_process_is_named() {
        let e = WatchedProcess::new(u32::MAX).unwrap_err();
        assert!(e.contains(&u32::MAX.to_string()), "{e}");
    }
}
