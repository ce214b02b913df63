//! The results file and its markdown rendering: one row per metric, both gateways, the ratio,
//! and whether clawgate meets its target.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Seconds,
    Bytes,
    PerSecond,
    Count,
}

/// Which direction is better; `Neither` rows (counts) get no ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
    Neither,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmp {
    AtMost,
    AtLeast,
}

/// A goal for clawgate's median.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub cmp: Cmp,
    pub value: f64,
}

impl Target {
    pub const fn at_most(value: f64) -> Option<Target> {
        Some(Target {
            cmp: Cmp::AtMost,
            value,
        })
    }

    pub const fn at_least(value: f64) -> Option<Target> {
        Some(Target {
            cmp: Cmp::AtLeast,
            value,
        })
    }

    pub fn met_by(&self, v: f64) -> bool {
        match self.cmp {
            Cmp::AtMost => v <= self.value,
            Cmp::AtLeast => v >= self.value,
        }
    }
}

/// One gateway's measurement of one metric: the raw samples (one per run or round), their
/// summary, and a note when it was not measured or failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub samples: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Cell {
    pub fn of(samples: Vec<f64>) -> Cell {
        Cell {
            summary: Summary::of(&samples),
            samples,
            note: None,
        }
    }

    pub fn note(note: impl Into<String>) -> Cell {
        Cell {
            note: Some(note.into()),
            ..Cell::default()
        }
    }

    pub fn median(&self) -> Option<f64> {
        self.summary.map(|s| s.median)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub id: String,
    pub section: String,
    pub label: String,
    pub unit: Unit,
    pub better: Better,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Drawn in the chart.
    #[serde(default)]
    pub chart: bool,
    pub clawgate: Cell,
    pub openclaw: Cell,
}

impl Row {
    /// How many times better clawgate is than OpenClaw (medians): OpenClaw/clawgate where lower
    /// is better, clawgate/OpenClaw where higher is better. Below 1 means clawgate is worse.
    /// No ratio for values that are not both positive (an RSS that shrank): a quotient of
    /// signed values reads as nonsense ("−0.8× worse").
    pub fn advantage(&self) -> Option<f64> {
        let (c, o) = (self.clawgate.median()?, self.openclaw.median()?);
        if c <= 0.0 || o <= 0.0 {
            return None;
        }
        let r = match self.better {
            Better::Lower => o / c,
            Better::Higher => c / o,
            Better::Neither => return None,
        };
        r.is_finite().then_some(r)
    }

    /// `Some(true|false)` when there is a target and clawgate has a value.
    pub fn target_met(&self) -> Option<bool> {
        Some(self.target?.met_by(self.clawgate.median()?))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub kernel: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    /// UTC start time, `YYYY-MM-DD HH:MM`.
    pub started: String,
    pub command: String,
    /// "default" or "quick".
    pub mode: String,
    pub profile: String,
    pub duration_s: f64,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    pub rows: Vec<Row>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Three significant digits, thousands separators from 1,000 up.
pub fn sig3(x: f64) -> String {
    let a = x.abs();
    if a >= 999.5 {
        return thousands(x.round() as i64);
    }
    let decimals = if a >= 99.95 {
        0
    } else if a >= 9.995 {
        1
    } else if a >= 0.9995 || a == 0.0 {
        2
    } else {
        3
    };
    format!("{x:.decimals$}")
}

pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A value with its unit, scaled to a readable prefix (bytes in decimal units: 1 MB = 10⁶ B).
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Seconds => {
            if v < 1e-3 {
                format!("{} µs", sig3(v * 1e6))
            } else if v < 1.0 {
                format!("{} ms", sig3(v * 1e3))
            } else {
                format!("{} s", sig3(v))
            }
        }
        Unit::Bytes => {
            if v < 1e3 {
                format!("{} B", sig3(v))
            } else if v < 1e6 {
                format!("{} kB", sig3(v / 1e3))
            } else if v < 1e9 {
                format!("{} MB", sig3(v / 1e6))
            } else {
                format!("{} GB", sig3(v / 1e9))
            }
        }
        Unit::PerSecond => format!("{}/s", sig3(v)),
        Unit::Count => thousands(v.round() as i64),
    }
}

/// Same unit and prefix as [`format_value`], without the min–max range (for the range parts).
fn format_bare(unit: Unit, v: f64, like: f64) -> String {
    let with = format_value(unit, v);
    // Drop the unit when it matches the median's, so "3.1 ms (2.9–4.0 ms)" reads "(2.9–4.0)".
    let unit_of = |s: &str| s.rsplit_once(' ').map(|(_, u)| u.to_owned());
    let same = unit_of(&with) == unit_of(&format_value(unit, like));
    match (unit, same) {
        (Unit::Seconds | Unit::Bytes, true) => with
            .rsplit_once(' ')
            .map(|(n, _)| n.to_owned())
            .unwrap_or(with),
        (Unit::PerSecond, _) => with.trim_end_matches("/s").to_owned(),
        _ => with,
    }
}

/// `median (min–max)`, or a single value, or the cell's note.
pub fn format_cell(unit: Unit, cell: &Cell) -> String {
    let mut out = match cell.summary {
        None => String::new(),
        Some(s) if s.n == 1 || s.min == s.max => format_value(unit, s.median),
        Some(s) => format!(
            "{} ({}–{})",
            format_value(unit, s.median),
            format_bare(unit, s.min, s.median),
            format_bare(unit, s.max, s.median)
        ),
    };
    if let Some(note) = &cell.note {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "_{note}_");
    }
    if out.is_empty() { "—".into() } else { out }
}

pub fn format_ratio(r: f64) -> String {
    let text = format!("{}×", sig3(r));
    if r < 1.0 {
        format!("{text} (worse)")
    } else {
        text
    }
}

fn target_text(row: &Row) -> String {
    let Some(t) = row.target else {
        return String::new();
    };
    let op = match t.cmp {
        Cmp::AtMost => "≤",
        Cmp::AtLeast => "≥",
    };
    let goal = format!("{op} {}", format_value(row.unit, t.value));
    match row.target_met() {
        Some(true) => format!("{goal} ✅"),
        Some(false) => format!("{goal} ❌ **missed**"),
        None => format!("{goal} (not measured)"),
    }
}

fn runs(row: &Row) -> String {
    let n = |c: &Cell| {
        c.summary
            .map(|s| s.n.to_string())
            .unwrap_or_else(|| "–".into())
    };
    format!("{} / {}", n(&row.clawgate), n(&row.openclaw))
}

/// The results table: metric, both gateways (median and min–max), clawgate's advantage, its
/// target, and how many runs each value summarizes.
pub fn markdown_table(results: &Results) -> String {
    let mut out = String::from(
        "| metric | clawgate | OpenClaw | clawgate advantage | clawgate target | runs (c / O) |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut section = "";
    for row in &results.rows {
        if row.section != section {
            section = &row.section;
            let _ = writeln!(out, "| **{section}** | | | | | |");
        }
        let ratio = row.advantage().map(format_ratio).unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.label,
            format_cell(row.unit, &row.clawgate),
            format_cell(row.unit, &row.openclaw),
            ratio,
            target_text(row),
            runs(row)
        );
    }
    out
}

/// Rows whose target clawgate misses, for the summary under the table.
pub fn missed_targets(results: &Results) -> Vec<&Row> {
    results
        .rows
        .iter()
        .filter(|r| r.target_met() == Some(false))
        .collect()
}

/// Machine, date, command, the table, and the misses: what `bench/run` prints and what the docs
/// show.
pub fn markdown_report(results: &Results, chart: Option<&str>) -> String {
    let m = &results.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Measured {} UTC with `{}` ({} mode, `{}` profile, {:.0} s in all).",
        results.started, results.command, results.mode, results.profile, results.duration_s
    );
    let _ = writeln!(
        out,
        "Machine: {} cores ({}), {} memory, Linux {}.",
        m.nproc,
        m.cpu_model,
        format_value(Unit::Bytes, m.memory_bytes as f64),
        m.kernel
    );
    if !results.versions.is_empty() {
        let v: Vec<String> = results
            .versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "Versions: {}.", v.join(", "));
    }
    out.push('\n');
    if let Some(chart) = chart {
        let _ = writeln!(out, "![clawgate vs OpenClaw, log scale]({chart})\n");
    }
    out.push_str(&markdown_table(results));
    let missed = missed_targets(results);
    out.push('\n');
    if missed.is_empty() {
        out.push_str("clawgate meets every target it was measured against.\n");
    } else {
        out.push_str("Targets clawgate misses in this run:\n");
        for row in missed {
            let _ = writeln!(
                out,
                "- {} — {}: {}",
                row.section,
                row.label,
                format_cell(row.unit, &row.clawgate)
            );
        }
    }
    if !results.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for n in &results.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

/// Replaces the text between `<!-- bench-results:begin -->` and `<!-- bench-results:end -->`.
pub fn splice(doc: &str, generated: &str) -> Option<String> {
    const BEGIN: &str = "<!-- bench-results:begin -->";
    const END: &str = "<!-- bench-results:end -->";
    let start = doc.find(BEGIN)? + BEGIN.len();
    let end = start + doc[start..].find(END)?;
    Some(format!(
        "{}\n{}\n{}",
        &doc[..start],
        generated.trim_end(),
        &doc[end..]
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(id: &str, unit: Unit, better: Better, c: Vec<f64>, o: Vec<f64>) -> Row {
        Row {
            id: id.into(),
            section: "1. Test".into(),
            label: id.into(),
            unit,
            better,
            target: None,
            chart: true,
            clawgate: Cell::of(c),
            openclaw: Cell::of(o),
        }
    }

    pub(crate) fn results(rows: Vec<Row>) -> Results {
        Results {
            date: "2026-09-07".into(),
            started: "2026-09-07 10:00".into(),
            command: "bench/run".into(),
            mode: "default".into(),
            profile: "bench-fast".into(),
            duration_s: 1.0,
            machine: Machine {
                nproc: 2,
                memory_bytes: 24_000_000_000,
                cpu_model: "Test CPU".into(),
                kernel: "6.1".into(),
            },
            versions: BTreeMap::new(),
            rows,
            notes: vec![],
        }
    }

    #[test]
    fn values_scale_with_three_significant_digits() {
        assert_eq!(format_value(Unit::Seconds, 0.000_012_34), "12.3 µs");
        assert_eq!(format_value(Unit::Seconds, 0.003_1), "3.10 ms");
        assert_eq!(format_value(Unit::Seconds, 21.7), "21.7 s");
        assert_eq!(format_value(Unit::Bytes, 3_456_789.0), "3.46 MB");
        assert_eq!(format_value(Unit::Bytes, 7_900.0), "7.90 kB");
        assert_eq!(format_value(Unit::Bytes, 1.2e9), "1.20 GB");
        assert_eq!(format_value(Unit::PerSecond, 23_456.4), "23,456/s");
        assert_eq!(format_value(Unit::PerSecond, 412.0), "412/s");
        assert_eq!(format_value(Unit::Count, 10_000.0), "10,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(sig3(0.0), "0.00");
    }

    #[test]
    fn ratios_say_how_many_times_better() {
        let lower = row("a", Unit::Seconds, Better::Lower, vec![0.01], vec![20.0]);
        assert_eq!(lower.advantage(), Some(2000.0));
        assert_eq!(format_ratio(2000.0), "2,000×");
        let higher = row(
            "b",
            Unit::PerSecond,
            Better::Higher,
            vec![500.0],
            vec![1000.0],
        );
        assert_eq!(higher.advantage(), Some(0.5));
        assert_eq!(format_ratio(0.5), "0.500× (worse)");
        let count = row("c", Unit::Count, Better::Neither, vec![1.0], vec![1.0]);
        assert_eq!(count.advantage(), None);
        let mut missing = lower.clone();
        missing.openclaw = Cell::note("skipped");
        assert_eq!(missing.advantage(), None);
        // An RSS that shrank on one side: no ratio rather than a negative one.
        let growth = row(
            "d",
            Unit::Bytes,
            Better::Lower,
            vec![-1_090_000.0],
            vec![860_000.0],
        );
        assert_eq!(growth.advantage(), None);
    }

    #[test]
    fn table_shows_ranges_targets_and_misses() {
        let mut fast = row(
            "start",
            Unit::Seconds,
            Better::Lower,
            vec![0.003, 0.002, 0.004],
            vec![20.0],
        );
        fast.target = Target::at_most(0.010);
        let mut slow = row("rss", Unit::Bytes, Better::Lower, vec![6e6], vec![1e9]);
        slow.target = Target::at_most(4e6);
        slow.section = "2. Memory".into();
        let mut skipped = row("n", Unit::Seconds, Better::Lower, vec![], vec![]);
        skipped.section = "2. Memory".into();
        skipped.clawgate = Cell::note("not yet measured");
        skipped.openclaw = Cell::note("not yet measured");
        let r = results(vec![fast, slow, skipped]);
        let table = markdown_table(&r);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + 2 + 3, "{table}");
        assert!(lines[0].starts_with("| metric | clawgate | OpenClaw | clawgate advantage"));
        assert_eq!(lines[2], "| **1. Test** | | | | | |");
        assert_eq!(
            lines[3],
            "| start | 3.00 ms (2.00–4.00) | 20.0 s | 6,667× | ≤ 10.0 ms ✅ | 3 / 1 |"
        );
        assert_eq!(
            lines[5],
            "| rss | 6.00 MB | 1.00 GB | 167× | ≤ 4.00 MB ❌ **missed** | 1 / 1 |"
        );
        assert!(lines[6].contains("_not yet measured_"), "{}", lines[6]);
        // Every row has the same number of columns.
        for l in &lines {
            assert_eq!(l.matches('|').count(), 7, "{l}");
        }
        let report = markdown_report(&r, Some("chart.svg"));
        assert!(report.contains("![clawgate vs OpenClaw, log scale](chart.svg)"));
        assert!(report.contains("- 2. Memory — rss: 6.00 MB"));
        assert!(report.contains("2 cores (Test CPU), 24.0 GB memory"));
    }

    #[test]
    fn ranges_keep_units_when_prefixes_differ() {
        let c = Cell::of(vec![0.0009, 0.0012, 0.002]);
        assert_eq!(format_cell(Unit::Seconds, &c), "1.20 ms (900 µs–2.00)");
        let r = Cell::of(vec![900.0, 1200.0, 1500.0]);
        assert_eq!(format_cell(Unit::PerSecond, &r), "1,200/s (900–1,500)");
    }

    #[test]
    fn splice_replaces_only_the_marked_part() {
        let doc = "# T\n<!-- bench-results:begin -->\nold\n<!-- bench-results:end -->\ntail\n";
        let out = splice(doc, "new table\n").unwrap();
        assert_eq!(
            out,
            "# T\n<!-- bench-results:begin -->\nnew table\n<!-- bench-results:end -->\ntail\n"
        );
        assert_eq!(splice("no markers", "x"), None);
    }

    #[test]
    fn results_round_trip_through_json() {
        let r = results(vec![row(
            "a",
            Unit::Seconds,
            Better::Lower,
            vec![1.0],
            vec![2.0],
        )]);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"unit\":\"seconds\""));
        assert_eq!(serde_json::from_str::<Results>(&text).unwrap(), r);
    }
}
