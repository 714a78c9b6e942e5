//! The one table every run prints (and a full-size run writes into `BENCHMARKS.md`).

use std::path::Path;

use anyhow::{bail, Result};

/// Where the results go inside `BENCHMARKS.md`.
pub const BEGIN: &str = "<!-- chimpsync-bench:results:begin -->";
/// End marker.
pub const END: &str = "<!-- chimpsync-bench:results:end -->";
/// Where a run of the many-accounts scenarios alone (`accounts`) goes.
pub const ACCOUNTS_BEGIN: &str = "<!-- chimpsync-bench:accounts:begin -->";
/// Its end marker.
pub const ACCOUNTS_END: &str = "<!-- chimpsync-bench:accounts:end -->";

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario number or name (`1`, `3`, `T`).
    pub id: String,
    /// What was measured.
    pub scenario: String,
    /// The figure.
    pub figure: String,
    /// The goal or the baseline it is compared with.
    pub goal: String,
    /// Figure against goal, oriented so that >= 1.0 meets it; or figure against baseline.
    pub ratio: Option<f64>,
    /// Met, short, or an informational row (None).
    pub met: Option<bool>,
}

impl Row {
    /// A row with a goal.
    pub fn goal(
        id: &str,
        scenario: impl Into<String>,
        figure: impl Into<String>,
        goal: impl Into<String>,
        ratio: f64,
    ) -> Row {
        Row {
            id: id.into(),
            scenario: scenario.into(),
            figure: figure.into(),
            goal: goal.into(),
            ratio: Some(ratio),
            met: Some(ratio >= 1.0),
        }
    }

    /// An informational row (a side-by-side figure without a goal of its own).
    pub fn info(
        id: &str,
        scenario: impl Into<String>,
        figure: impl Into<String>,
        baseline: impl Into<String>,
        ratio: Option<f64>,
    ) -> Row {
        Row {
            id: id.into(),
            scenario: scenario.into(),
            figure: figure.into(),
            goal: baseline.into(),
            ratio,
            met: None,
        }
    }
}

/// The collected results of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Machine and server.
    pub header: Vec<String>,
    /// Table rows.
    pub rows: Vec<Row>,
    /// Details per scenario (timing and CPU breakdowns).
    pub notes: Vec<String>,
}

impl Report {
    /// A note line under the table.
    pub fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        eprintln!("  {line}");
        self.notes.push(line);
    }

    /// The table as Markdown (it reads fine in a terminal too).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for h in &self.header {
            out.push_str(h);
            out.push('\n');
        }
        out.push('\n');
        out.push_str("| # | scenario | figure | goal / baseline | ratio | |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for r in &self.rows {
            let ratio = r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default();
            let verdict = match r.met {
                Some(true) => "met",
                Some(false) => "SHORT",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.id, r.scenario, r.figure, r.goal, ratio, verdict
            ));
        }
        out.push_str(
            "\nratio: figure / goal, or goal / figure for \"at most\" goals (time, memory), so \
             >= 1.00 meets the goal; for a comparison, ours / baseline.\n",
        );
        if !self.notes.is_empty() {
            out.push_str("\nDetails:\n\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out
    }

    /// Replaces the text between the markers `(begin, end)` of `path` with the table.
    pub fn write_into(&self, path: &Path, (begin, end): (&str, &str)) -> Result<()> {
        let text = std::fs::read_to_string(path)?;
        let (Some(b), Some(e)) = (text.find(begin), text.find(end)) else {
            bail!("{} has no {begin} ... {end} markers", path.display());
        };
        if e < b {
            bail!("{}: the markers are in the wrong order", path.display());
        }
        let updated = format!("{}{begin}\n\n{}\n{}", &text[..b], self.render(), &text[e..]);
        std::fs::write(path, updated)?;
        Ok(())
    }
}

/// A percentile of sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of some values.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

/// `1,234,567`
pub fn thousands(n: u64) -> String {
    let digits = n.to_string().into_bytes();
    let groups: Vec<String> = digits
        .rchunks(3)
        .rev()
        .map(|g| String::from_utf8_lossy(g).into_owned())
        .collect();
    groups.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
