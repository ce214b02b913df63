//! Plain text tables: a header, a rule, and left-aligned columns two spaces apart. Cells are
//! single lines (control characters become spaces, so a gateway-supplied name cannot move
//! the cursor or fake rows); the last column may run long. Also the cell text the listing
//! commands make of the gateway's JSON.

pub use clawgate_client::fields::{field as s, strings as strs};
pub use clawgate_client::pairing::short_id as short;

pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Makes gateway-supplied text safe to print on one line.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| clean(&c)).collect());
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                if i + 1 == n {
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(w - width(cell) + 2));
                }
            }
            out.trim_end().to_owned()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
        out.push_str(&line(&rule));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

pub fn list_text(items: &[String]) -> String {
    if items.is_empty() {
        "—".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_columns_and_clean_cells() {
        let mut t = Table::new(&["A", "Long header", "C"]);
        t.row(vec!["x".into(), "y".into(), "z".into()]);
        t.row(vec![
            "wide cell".into(),
            "\x1b[2Jevil\nrow".into(),
            "".into(),
        ]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "A          Long header   C");
        assert_eq!(lines[2], "x          y             z");
        assert_eq!(lines[3], "wide cell   [2Jevil row");
        assert!(!text.contains('\x1b'));
    }
}
