//! A small SVG bar chart: one pair of horizontal bars (clawgate, OpenClaw) per metric, each
//! metric on its own log10 axis with its decades marked, the median printed at the bar's end.

use std::fmt::Write as _;

use crate::report::{Better, Cmp, Results, Row, Unit, format_value};

const WIDTH: f64 = 960.0;
const LABEL_X: f64 = 16.0;
const BAR_X: f64 = 400.0;
const BAR_W: f64 = 440.0;
const BAR_H: f64 = 13.0;
const ROW_H: f64 = 54.0;
const TOP: f64 = 92.0;
const CLAWGATE: &str = "#e8590c";
const OPENCLAW: &str = "#3b5bdb";
const TARGET: &str = "#2b8a3e";

/// Escapes text for use in SVG content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The decade range `[10^a, 10^b]` (at least one decade) around the positive values.
pub fn decades(values: &[f64]) -> Option<(i32, i32)> {
    let pos: Vec<f64> = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if pos.is_empty() {
        return None;
    }
    let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = pos.iter().copied().fold(0.0, f64::max);
    let a = lo.log10().floor() as i32;
    let b = (hi.log10().ceil() as i32).max(a + 1);
    Some((a, b))
}

/// A tick label: the unit's usual prefix without trailing zeros ("10 ms", "1 MB").
fn tick_label(unit: Unit, v: f64) -> String {
    format_value(unit, v)
        .replace(".00 ", " ")
        .replace(".0 ", " ")
        .replace(".00/", "/")
        .replace(".0/", "/")
}

fn rows_for_chart(results: &Results) -> Vec<&Row> {
    results
        .rows
        .iter()
        .filter(|r| r.chart && (r.clawgate.median().is_some() || r.openclaw.median().is_some()))
        .collect()
}

/// The whole chart as an SVG document.
pub fn chart(results: &Results) -> String {
    let rows = rows_for_chart(results);
    let height = TOP + ROW_H * rows.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let title = format!(
        "clawgate vs OpenClaw {} — medians, each metric on its own log scale",
        results
            .versions
            .get("openclaw")
            .map(String::as_str)
            .unwrap_or("")
    );
    let m = &results.machine;
    let subtitle = format!(
        "{} UTC · {} cores, {} · {} RAM · {} ({} mode)",
        results.started,
        m.nproc,
        m.cpu_model,
        format_value(Unit::Bytes, m.memory_bytes as f64),
        results.command,
        results.mode
    );
    let _ = writeln!(
        s,
        r#"<text x="{LABEL_X}" y="26" font-size="16" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    let _ = writeln!(
        s,
        r##"<text x="{LABEL_X}" y="46" fill="#555555">{}</text>"##,
        escape(&subtitle)
    );
    for (i, (name, color)) in [("clawgate", CLAWGATE), ("OpenClaw", OPENCLAW)]
        .iter()
        .enumerate()
    {
        let x = LABEL_X + i as f64 * 110.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="60" width="14" height="12" fill="{color}"/><text x="{}" y="70">{name}</text>"#,
            x + 20.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{x:.1}" y1="58" x2="{x:.1}" y2="74" stroke="{TARGET}" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{:.1}" y="70">clawgate target</text>"##,
        LABEL_X + 230.0,
        x = LABEL_X + 222.0
    );
    for (i, row) in rows.iter().enumerate() {
        draw_row(&mut s, row, TOP + ROW_H * i as f64);
    }
    let _ = writeln!(
        s,
        r##"<text x="{LABEL_X}" y="{}" fill="#777777" font-size="11">Bars start at the decade below the smallest value; numbers are medians.</text>"##,
        height - 14.0
    );
    s.push_str("</svg>\n");
    s
}

fn draw_row(s: &mut String, row: &Row, y: f64) {
    let values = [row.clawgate.median(), row.openclaw.median()];
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let target = row.target.map(|t| t.value).filter(|_| !known.is_empty());
    let hint = match row.better {
        Better::Lower => "lower is better",
        Better::Higher => "higher is better",
        Better::Neither => "",
    };
    let _ = writeln!(
        s,
        r#"<text x="{LABEL_X}" y="{}">{}</text>"#,
        y + 13.0,
        escape(&row.label)
    );
    // "5. Handshakes (connect → …)" → "5. Handshakes": the table has the long form.
    let section = row.section.split(" (").next().unwrap_or(&row.section);
    let mut sub = format!("{section} · {hint}");
    if let Some(t) = row.target {
        let op = match t.cmp {
            Cmp::AtMost => "≤",
            Cmp::AtLeast => "≥",
        };
        sub.push_str(&format!(" · target {op} {}", tick_label(row.unit, t.value)));
    }
    let _ = writeln!(
        s,
        r##"<text x="{LABEL_X}" y="{}" fill="#888888" font-size="10">{}</text>"##,
        y + 27.0,
        escape(&sub)
    );
    let mut range = known.clone();
    range.extend(target);
    let Some((a, b)) = decades(&range) else {
        return;
    };
    let span = f64::from(b - a);
    let x_of = |v: f64| BAR_X + ((v.log10() - f64::from(a)) / span).clamp(0.0, 1.0) * BAR_W;
    // Decade grid and labels under the bars.
    let axis_y = y + 2.0 * BAR_H + 6.0;
    for d in a..=b {
        let v = 10f64.powi(d);
        let x = x_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{y:.1}" x2="{x:.1}" y2="{:.1}" stroke="#dddddd"/><text x="{x:.1}" y="{:.1}" fill="#888888" font-size="9" text-anchor="middle">{}</text>"##,
            axis_y,
            axis_y + 11.0,
            escape(&tick_label(row.unit, v))
        );
    }
    if let Some(t) = target {
        let x = x_of(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{axis_y:.1}" stroke="{TARGET}" stroke-width="1.5" stroke-dasharray="4 3"/>"##,
            y - 3.0
        );
    }
    for (k, (value, color)) in values.iter().zip([CLAWGATE, OPENCLAW]).enumerate() {
        let by = y + 1.0 + k as f64 * (BAR_H + 1.0);
        match value {
            Some(v) => {
                let w = (x_of(*v) - BAR_X).max(2.0);
                let _ = writeln!(
                    s,
                    r#"<rect x="{BAR_X}" y="{by:.1}" width="{w:.1}" height="{BAR_H}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                    BAR_X + w + 4.0,
                    by + BAR_H - 2.5,
                    escape(&format_value(row.unit, *v))
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    r##"<text x="{BAR_X}" y="{:.1}" font-size="11" fill="#888888">not measured</text>"##,
                    by + BAR_H - 2.5
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{results, row};
    use crate::report::{Better, Cell, Unit};

    #[test]
    fn decade_ranges_cover_both_values() {
        assert_eq!(decades(&[0.003, 20.0]), Some((-3, 2)));
        assert_eq!(decades(&[1000.0]), Some((3, 4)));
        assert_eq!(decades(&[0.0, f64::NAN]), None);
    }

    #[test]
    fn chart_is_well_formed_and_escaped() {
        let mut a = row("a", Unit::Seconds, Better::Lower, vec![0.003], vec![20.0]);
        a.label = "exec → hello-ok <fresh> & more".into();
        let mut b = row(
            "b",
            Unit::PerSecond,
            Better::Higher,
            vec![25_000.0],
            vec![400.0],
        );
        b.target = crate::report::Target::at_least(60_000.0);
        let mut c = row("c", Unit::Bytes, Better::Lower, vec![3e6], vec![]);
        c.openclaw = Cell::note("skipped");
        let mut hidden = row("d", Unit::Count, Better::Neither, vec![1.0], vec![1.0]);
        hidden.chart = false;
        let svg = chart(&results(vec![a, b, c, hidden]));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert!(svg.contains("exec → hello-ok &lt;fresh&gt; &amp; more"));
        // Background + 2 legend swatches + 5 bars (one value is missing).
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 5);
        assert!(svg.contains("not measured"));
        assert!(svg.contains(">3.00 ms<") && svg.contains(">20.0 s<"));
        assert!(svg.contains(">10 s<"), "decade labels drop trailing zeros");
        assert!(svg.contains("1. Test · higher is better · target ≥ 60,000/s"));
        assert_eq!(
            svg.matches("stroke-dasharray").count(),
            1 + 1,
            "legend + one target"
        );
        assert!(svg.contains(">100,000/s<"), "the axis reaches the target");
        // Every opened text element is closed.
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }
}
