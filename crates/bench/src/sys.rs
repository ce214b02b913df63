//! The machine a run happened on, and UTC dates without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::report::Machine;

fn first_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: u64 = first_field(&meminfo, "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_bytes: memory_kb * 1024,
        cpu_model: first_field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    }
}

/// Busy CPU seconds of the whole machine since boot (all cores, idle and iowait excluded), from
/// `/proc/stat` (clock ticks of 1/100 s).
pub fn cpu_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_busy(&stat)
}

fn parse_busy(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle) as f64 / 100.0)
}

/// CPU seconds of this process plus its reaped children (the gateways and CLIs it ran).
pub fn own_and_children_cpu_seconds() -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(close) = text.rfind(')') else {
        return 0.0;
    };
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // utime, stime, cutime, cstime: fields 14–17, i.e. 11–14 after the command name.
    (11..=14)
        .filter_map(|i| f.get(i)?.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 100.0
}

pub use clawgate_base::civil_from_days;

/// `("YYYY-MM-DD", "YYYY-MM-DD HH:MM")` in UTC.
pub fn utc_stamp(t: SystemTime) -> (String, String) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let date = format!("{y:04}-{m:02}-{d:02}");
    let stamp = format!("{date} {:02}:{:02}", sod / 3600, sod % 3600 / 60);
    (date, stamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_from_unix_time() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let t = UNIX_EPOCH + Duration::from_secs(1_789_000_000);
        assert_eq!(utc_stamp(t).1, "2026-09-10 00:26");
    }

    #[test]
    fn busy_time_excludes_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_busy(stat), Some(1.6));
        assert!(cpu_busy_seconds().is_some());
        assert!(own_and_children_cpu_seconds() >= 0.0);
    }

    #[test]
    fn machine_facts_are_read() {
        let m = machine();
        assert!(m.nproc >= 1);
        assert!(m.memory_bytes > 0);
    }
}
