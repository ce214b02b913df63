//! `node.host.stats`: CPU count, load average, memory and disk of the home directory's
//! file system, in the shape the OpenClaw node host publishes every 60 s.

use serde_json::{Map, Value, json};
use std::path::Path;

/// How often the stats are published.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A sample of this machine's stats.
pub fn sample(home: &Path) -> Value {
    let mut out = Map::new();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4096);
    out.insert("cpuCount".into(), json!(cpus));
    if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
        let loads: Vec<f64> = text
            .split_whitespace()
            .take(3)
            .filter_map(|w| w.parse().ok())
            .map(|l: f64| (l.clamp(0.0, 1e5) * 100.0).round() / 100.0)
            .collect();
        if loads.len() == 3 && loads.iter().any(|l| *l != 0.0) {
            out.insert("loadAverage".into(), json!(loads));
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo")
        && let Some(total) = meminfo_bytes(&text, "MemTotal:")
    {
        let free = meminfo_bytes(&text, "MemAvailable:")
            .or_else(|| meminfo_bytes(&text, "MemFree:"))
            .unwrap_or(0)
            .min(total);
        out.insert("memoryTotalBytes".into(), json!(total));
        out.insert("memoryFreeBytes".into(), json!(free));
    }
    if let Ok(fs) = rustix::fs::statvfs(home) {
        let total = fs.f_blocks.saturating_mul(fs.f_frsize);
        let avail = fs.f_bavail.saturating_mul(fs.f_frsize).min(total);
        out.insert("diskTotalBytes".into(), json!(total));
        out.insert("diskAvailableBytes".into(), json!(avail));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_has_the_real_fields() {
        let s = sample(Path::new("/"));
        assert!(s["cpuCount"].as_u64().unwrap() >= 1);
        assert!(s["memoryTotalBytes"].as_u64().unwrap() > 0);
        assert!(s["memoryFreeBytes"].as_u64().unwrap() <= s["memoryTotalBytes"].as_u64().unwrap());
        assert!(s["diskTotalBytes"].as_u64().unwrap() > 0);
    }
}
