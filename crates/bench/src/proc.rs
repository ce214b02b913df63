//! Process trees from `/proc`: their memory and how to stop them.
//!
//! Gateways are started in their own process group; a launcher (OpenClaw's) may spawn children,
//! so memory is summed over the whole tree and stopping signals the whole tree. Signals go
//! through the system `kill` program (the workspace forbids `unsafe`, so no `libc`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `(ppid, pgid, state)` of a process, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (the command name) is in parentheses and may contain anything.
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgid = f.next()?.parse().ok()?;
    Some((ppid, pgid, state))
}

fn live(state: char) -> bool {
    state != 'Z' && state != 'X'
}

/// Every live process as `(pid, ppid, pgid)`.
fn all() -> Vec<(u32, u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (ppid, pgid, state) = stat(pid)?;
            live(state).then_some((pid, ppid, pgid))
        })
        .collect()
}

/// `root`, its descendants, and the members of `root`'s process group (a child that moved to
/// another parent stays in the group). Never this process or pid 1.
pub fn tree(root: u32) -> BTreeSet<u32> {
    let procs = all();
    let mut pids = BTreeSet::new();
    if procs.iter().any(|&(p, _, _)| p == root) {
        pids.insert(root);
    }
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(p, pp, _) in &procs {
            if pp == parent && pids.insert(p) {
                frontier.push(p);
            }
        }
    }
    for &(p, _, g) in &procs {
        if g == root {
            pids.insert(p);
        }
    }
    pids.remove(&std::process::id());
    pids.remove(&1);
    pids
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`), in bytes.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&text, field)
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// Memory of a process tree at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeMemory {
    /// Σ VmRSS (resident set) over the tree, bytes.
    pub rss: u64,
    /// Σ VmHWM (each process's own peak RSS) over the live tree, bytes.
    pub hwm: u64,
    /// Σ RssAnon: the anonymous part of the RSS (heap, stacks), without mapped files such as
    /// the program's own code.
    pub anon: u64,
    pub processes: usize,
}

pub fn tree_memory(root: u32) -> TreeMemory {
    let mut m = TreeMemory::default();
    for pid in tree(root) {
        if let Some(rss) = status_kb(pid, "VmRSS") {
            m.rss += rss;
            m.hwm += status_kb(pid, "VmHWM").unwrap_or(rss);
            m.anon += status_kb(pid, "RssAnon").unwrap_or(rss);
            m.processes += 1;
        }
    }
    m
}

/// User + system CPU seconds of one process (all its threads, dead ones included), from
/// `/proc/<pid>/stat` (in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_seconds(&text)
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// CPU seconds used so far by the live processes of the tree of `root`.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    tree(root).into_iter().filter_map(cpu_seconds).sum()
}

/// CPU seconds used so far by this process.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn kill_program() -> &'static str {
    ["/bin/kill", "/usr/bin/kill"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("kill")
}

fn send(signal: &str, pids: &BTreeSet<u32>, group: Option<u32>) {
    if pids.is_empty() && group.is_none() {
        return;
    }
    let mut cmd = std::process::Command::new(kill_program());
    cmd.args(["-s", signal, "--"]);
    if let Some(g) = group {
        cmd.arg(format!("-{g}"));
    }
    cmd.args(pids.iter().map(u32::to_string));
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops the tree of `root` (started with its own process group, not yet reaped): SIGTERM to the
/// group and every descendant, up to `grace` for them to exit, then SIGKILL to what is left.
/// Returns true if everything exited within `grace`.
pub fn stop_tree(root: u32, grace: Duration) -> bool {
    let first = tree(root);
    if first.is_empty() {
        return true;
    }
    send("TERM", &first, Some(root));
    let deadline = Instant::now() + grace;
    loop {
        let left: BTreeSet<u32> = tree(root)
            .union(&first)
            .copied()
            .filter(|&p| stat(p).is_some_and(|(_, _, s)| live(s)))
            .collect();
        if left.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            send("KILL", &left, Some(root));
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_in_bytes() {
        let status = "Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t11\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(102_400 * 1024));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(204_800 * 1024));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn cpu_time_from_stat() {
        let stat = "42 (node (main)) S 1 42 42 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 11 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
        assert!(own_cpu_seconds() >= 0.0);
    }

    #[test]
    fn own_memory_is_visible() {
        // This process is excluded from trees, but its own status is readable.
        let me = std::process::id();
        assert!(status_kb(me, "VmRSS").unwrap() > 0);
        assert!(!tree(me).contains(&me));
    }
}
