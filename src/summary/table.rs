//! The summary as aligned text tables (`--output table`), and the cell
//! formatting the Markdown output shares with them: percentages, verdicts,
//! names, ages and refresh times.

use std::fmt::Write;

use super::worklist::failing_table;
use super::{ControlRow, SourceFreshness, Summary};

/// A column of a text table: its heading, its least width, and whether it
/// is right-aligned (numbers).
type Column<'a> = (&'a str, usize, bool);

/// Write a heading line and rows, the columns two spaces apart, each as
/// wide as its least width, its heading and its widest cell; a left-aligned
/// last column is not padded. Returns the widths.
fn text_table<R: AsRef<[String]>>(
    out: &mut String,
    columns: &[Column<'_>],
    rows: &[R],
) -> Vec<usize> {
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (heading, min, _))| {
            rows.iter()
                .map(|r| r.as_ref().get(i).map_or(0, |c| c.chars().count()))
                .chain([heading.chars().count(), *min])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let headings: Vec<String> = columns.iter().map(|c| c.0.to_owned()).collect();
    for cells in std::iter::once(&headings[..]).chain(rows.iter().map(AsRef::as_ref)) {
        for (i, ((_, _, right), cell)) in columns.iter().zip(cells).enumerate() {
            let w = widths[i];
            if i > 0 {
                out.push_str("  ");
            }
            let _ = match (*right, i + 1 == columns.len()) {
                (true, _) => write!(out, "{cell:>w$}"),
                (false, true) => write!(out, "{cell}"),
                (false, false) => write!(out, "{cell:<w$}"),
            };
        }
        out.push('\n');
    }
    widths
}

/// A percentage as printed, `-` without data.
pub(super) fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}%"))
}

/// A target's verdict as printed.
pub(super) fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "no data",
    }
}

/// What the percentage of a control does not measure.
const NOT_MEASURABLE: &str = "not measurable";

impl ControlRow {
    /// The compliance as printed, with the excepted count next to the
    /// percentage it is left out of (`97.50% — 3 excepted`).
    fn compliance_text(&self) -> String {
        let value = if self.measurable {
            pct(self.compliance)
        } else {
            NOT_MEASURABLE.to_owned()
        };
        match self.excepted {
            0 => value,
            n => format!("{value} — {n} excepted"),
        }
    }

    /// The verdict as printed.
    fn status(&self) -> &'static str {
        if self.measurable {
            verdict(self.met)
        } else {
            "NOT MEASURABLE"
        }
    }
}

/// A name as printed: `when_empty` stands for an empty one (`(cluster)`
/// for the namespace of cluster-scoped reports, say).
pub(super) fn shown<'a>(name: &'a str, when_empty: &'a str) -> &'a str {
    if name.is_empty() { when_empty } else { name }
}

/// A source as printed: `(none)` for results that name none.
pub(super) fn source_name(source: &str) -> &str {
    shown(source, "(none)")
}

/// An age as printed: its largest unit and the next when not zero
/// (`5h10m`, `2d`, `45s`).
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let parts = [
        (s / 86_400, "d"),
        (s / 3_600 % 24, "h"),
        (s / 60 % 60, "m"),
        (s % 60, "s"),
    ];
    match parts.iter().position(|(n, _)| *n > 0) {
        None => "0s".to_owned(),
        Some(i) => parts[i..]
            .iter()
            .take(2)
            .filter(|(n, _)| *n > 0)
            .map(|(n, unit)| format!("{n}{unit}"))
            .collect(),
    }
}

/// A refresh time as printed: RFC 3339 and its age at `now`.
pub(super) fn refreshed(source: &SourceFreshness, now: i64) -> String {
    match (
        &source.oldest_refresh,
        source.oldest_refresh_timestamp_seconds,
    ) {
        (Some(text), Some(t)) if t > now => format!("{text} (in the future)"),
        (Some(text), Some(t)) => format!("{text} ({} ago)", age(now - t)),
        _ => "-".to_owned(),
    }
}

impl Summary {
    /// Render as aligned text tables.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            let _ = writeln!(out, "WARNING: {w}\n");
        }
        self.namespace_table(&mut out);
        self.control_tables(&mut out);
        self.policies_list(&mut out);
        self.rollout_table(&mut out);
        self.freshness_table(&mut out);
        if let Some(failing) = &self.failing {
            failing_table(&mut out, failing);
        }
        let _ = writeln!(out, "\n{}", self.input_line());
        let _ = writeln!(out, "Targets: {}", self.targets_line());
        out
    }

    /// Per-namespace counts and violation rates, then the totals.
    fn namespace_table(&self, out: &mut String) {
        let rows: Vec<Vec<String>> = self
            .namespaces
            .iter()
            .map(|n| {
                let counts = [n.pass, n.fail, n.warn, n.error, n.skip];
                std::iter::once(shown(&n.namespace, "(cluster)").to_owned())
                    .chain(counts.iter().map(u64::to_string))
                    .chain([pct(n.violation_rate)])
                    .collect()
            })
            .collect();
        let count = |heading| (heading, 7, true);
        let columns = [
            ("NAMESPACE", 9, false),
            count("PASS"),
            count("FAIL"),
            count("WARN"),
            count("ERROR"),
            count("SKIP"),
            ("VIOLATION RATE", 14, true),
        ];
        text_table(out, &columns, &rows);
        let o = &self.overall;
        let _ = writeln!(
            out,
            "\nOverall: {} pass, {} fail, {} warn, {} error, {} skip; pass/fail ratio {} pass; \
             violation rate {} (target below {:.2}%): {}",
            o.pass,
            o.fail,
            o.warn,
            o.error,
            o.skip,
            pct(o.pass_ratio),
            pct(o.violation_rate),
            o.violation_rate_target,
            verdict(o.met)
        );
    }

    /// Control compliance, then blocked admissions per control, the first
    /// column of both as wide.
    fn control_tables(&self, out: &mut String) {
        let rows = self.control_rows();
        out.push('\n');
        let columns = [
            ("CONTROL", 12, false),
            ("COMPLIANT", 9, true),
            ("NONCOMPLIANT", 12, true),
            ("COMPLIANCE", 10, true),
            ("TARGET", 7, true),
            ("STATUS", 0, false),
        ];
        let widths = text_table(out, &columns, &rows);
        let rows: Vec<Vec<String>> = self
            .blocked
            .iter()
            .map(|b| {
                let name = shown(&b.control, "(no control)");
                vec![name.to_owned(), b.blocked.to_string()]
            })
            .collect();
        out.push('\n');
        let columns = [("BLOCKED BY", widths[0], false), ("BLOCKED", 7, true)];
        text_table(out, &columns, &rows);
    }

    /// Policy names by mode, a line each.
    fn policies_list(&self, out: &mut String) {
        let _ = writeln!(out, "\nPOLICIES BY MODE");
        for (mode, list) in &self.policies {
            let names = if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(", ")
            };
            let _ = writeln!(out, "{mode} ({}): {names}", list.len());
        }
    }

    /// What was read and refused, in one line.
    pub(super) fn input_line(&self) -> String {
        let i = &self.input;
        format!(
            "Input: {} files read, {} refused; {} reports read, {} objects invalid",
            i.files_read, i.files_refused, i.reports_read, i.objects_invalid
        )
    }

    /// The targets' verdict, with why when missed for want of data.
    pub(super) fn targets_line(&self) -> String {
        let unmeasured: Vec<&str> = self
            .controls
            .iter()
            .filter(|c| !c.measurable)
            .map(|c| c.control.as_str())
            .collect();
        if self.targets_met {
            "all met".to_owned()
        } else if self.input.reports_read == 0 {
            "MISSED (no report was read)".to_owned()
        } else if !unmeasured.is_empty() {
            format!("MISSED ({NOT_MEASURABLE}: {})", unmeasured.join(", "))
        } else {
            "MISSED".to_owned()
        }
    }

    /// The heading of the freshness table: what stale means here.
    pub(super) fn freshness_heading(&self) -> String {
        match self.freshness.stale_after_seconds {
            Some(after) => format!("stale: newest result older than {}", age(after)),
            None => "staleness off (--stale-after 0)".to_owned(),
        }
    }

    fn freshness_table(&self, out: &mut String) {
        let f = &self.freshness;
        let rows: Vec<Vec<String>> = f
            .sources
            .iter()
            .map(|s| {
                vec![
                    source_name(&s.source).to_owned(),
                    s.reports.to_string(),
                    s.stale.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    refreshed(s, f.as_of_timestamp_seconds),
                ]
            })
            .collect();
        let last = format!("OLDEST REFRESH ({})", self.freshness_heading());
        let columns = [
            ("REPORTS BY SOURCE", 17, false),
            ("REPORTS", 7, true),
            ("STALE", 7, true),
            (last.as_str(), 0, false),
        ];
        out.push('\n');
        text_table(out, &columns, &rows);
    }

    /// Per control, the cells both the text and the Markdown print:
    /// control, compliant, noncompliant, compliance, target, status.
    pub(super) fn control_rows(&self) -> Vec<[String; 6]> {
        self.controls
            .iter()
            .map(|c| {
                [
                    c.control.clone(),
                    c.compliant.to_string(),
                    c.noncompliant.to_string(),
                    c.compliance_text(),
                    format!("{}%", c.target),
                    c.status().to_owned(),
                ]
            })
            .collect()
    }

    /// Per policy, the cells both the text and the Markdown print: policy,
    /// mode, failing, audit failures, blocked, verdict.
    pub(super) fn rollout_rows(&self) -> Vec<[String; 6]> {
        self.rollout
            .iter()
            .map(|r| {
                [
                    r.policy.clone(),
                    r.mode.to_owned(),
                    r.failing.to_string(),
                    r.audit_admission_failures.to_string(),
                    r.blocked_admissions.to_string(),
                    r.verdict.as_str().to_owned(),
                ]
            })
            .collect()
    }

    fn rollout_table(&self, out: &mut String) {
        let rows = self.rollout_rows();
        let columns = [
            ("ROLLOUT", 6, false),
            ("MODE", 7, false),
            ("FAILING", 7, true),
            ("AUDIT FAILURES", 14, true),
            ("BLOCKED", 7, true),
            ("VERDICT", 0, false),
        ];
        out.push('\n');
        text_table(out, &columns, &rows);
    }
}
