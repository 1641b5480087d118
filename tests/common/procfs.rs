//! Reading `/proc` to see which processes a gateway started and whether any outlived it.
//!
//! A process is named by its pid *and* its start time, so a pid reused by an unrelated process
//! after the original exited is not mistaken for it.

use std::fs;

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    /// Clock ticks after boot at which it started.
    pub start: u64,
    /// `Z` for a zombie (exited, not reaped).
    pub state: char,
}

/// `/proc/<pid>/stat`, parsed; `None` when there is no such process.
pub fn stat(pid: u32) -> Option<ProcInfo> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')': the fields
    // after the last ')' are plain.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); ppid is field 4, pgrp 5, starttime 22.
    Some(ProcInfo {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every process visible in `/proc`.
pub fn all() -> Vec<ProcInfo> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// The processes whose parent is `pid`, and every process in the process groups those lead
/// (a stdio server's own children).
pub fn children_and_their_groups(pid: u32) -> Vec<ProcInfo> {
    let procs = all();
    let children: Vec<ProcInfo> = procs.iter().filter(|p| p.ppid == pid).copied().collect();
    let mut out = children.clone();
    for p in &procs {
        let in_group = children.iter().any(|c| p.pgid == c.pid);
        if in_group && !out.iter().any(|o| o.pid == p.pid) {
            out.push(*p);
        }
    }
    out
}

/// Whether `p` (the same process, not a reuse of its pid) still exists, zombie or not.
pub fn still_there(p: &ProcInfo) -> bool {
    stat(p.pid).is_some_and(|now| now.start == p.start)
}

/// Processes still alive in process group `pgid` (zombies aside).
pub fn live_in_group(pgid: u32) -> Vec<ProcInfo> {
    all()
        .into_iter()
        .filter(|p| p.pgid == pgid && p.state != 'Z')
        .collect()
}

/// The resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
