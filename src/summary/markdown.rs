//! `summary --output markdown`, for CI pages (GitHub job summaries, GitLab
//! merge request notes): the warnings, the targets with verdict marks, the
//! verdict per policy, the first entries of the work list with a count of
//! the rest, and report freshness. Numbers and verdicts are printed by the
//! same functions as the text tables, so the two always agree.

use std::fmt::Write;

use super::Summary;
use super::table::{pct, refreshed, shown, source_name, verdict};
use super::worklist::subject;
use crate::aggregate::FailingEntry;

/// Work-list entries shown; the rest are counted. A CI page is read, not
/// searched: `--failing` in a terminal lists them all.
pub const MARKDOWN_ENTRIES: usize = 20;

/// A verdict with its mark, as the text tables print it after the mark.
fn marked(status: &str) -> String {
    let mark = match status {
        "met" => "✅",
        "MISSED" => "❌",
        "no data" => "➖",
        _ => "⚠️",
    };
    format!("{mark} {status}")
}

/// Text made safe for a table cell: `|` and newlines would end the cell or
/// the row, and `<`, `` ` ``, `*`, `_`, `[` would start markup.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A table header and its alignment row; a column named with a leading
/// `>` is right-aligned (numbers).
fn header(out: &mut String, columns: &[&str]) {
    let names: Vec<&str> = columns.iter().map(|c| c.trim_start_matches('>')).collect();
    let align: Vec<&str> = columns
        .iter()
        .map(|c| if c.starts_with('>') { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "| {} |\n|{}|", names.join(" | "), align.join("|"));
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

impl Summary {
    /// Render as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::from("## Policy report summary\n\n");
        for w in &self.warnings {
            let _ = writeln!(out, "> **Warning:** {}\n", cell(w));
        }

        self.targets_section(&mut out);
        self.rollout_section(&mut out);
        if let Some(failing) = &self.failing {
            work_list_section(&mut out, failing);
        }
        self.freshness_section(&mut out);
        let _ = writeln!(
            out,
            "\n{}  \n**Targets: {}**",
            self.input_line(),
            self.targets_line()
        );
        out
    }

    /// The violation rate and each control against its target.
    fn targets_section(&self, out: &mut String) {
        out.push_str("### Targets\n\n");
        header(out, &["Target", ">Value", ">Goal", "Status"]);
        let o = &self.overall;
        row(
            out,
            &[
                "Violation rate".into(),
                pct(o.violation_rate),
                format!("below {:.2}%", o.violation_rate_target),
                marked(verdict(o.met)),
            ],
        );
        for [control, _, _, compliance, target, status] in self.control_rows() {
            let name = format!("Control {}", cell(&control));
            row(out, &[name, cell(&compliance), target, marked(&status)]);
        }
    }

    /// A verdict per policy known from policy objects.
    fn rollout_section(&self, out: &mut String) {
        out.push_str("\n### Rollout verdicts\n\n");
        if self.rollout.is_empty() {
            out.push_str("No policy objects were read.\n");
        } else {
            header(
                out,
                &[
                    "Policy",
                    "Mode",
                    ">Failing",
                    ">Audit failures",
                    ">Blocked",
                    "Verdict",
                ],
            );
            for [policy, mode, failing, audit, blocked, verdict] in self.rollout_rows() {
                let verdict = format!("**{verdict}**");
                row(
                    out,
                    &[cell(&policy), mode, failing, audit, blocked, verdict],
                );
            }
        }
    }

    /// Report freshness per source.
    fn freshness_section(&self, out: &mut String) {
        let mut heading = self.freshness_heading();
        if let Some(first) = heading.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        let _ = writeln!(out, "\n### Reports by source\n\n{heading}.\n");
        header(out, &["Source", ">Reports", ">Stale", "Oldest refresh"]);
        for s in &self.freshness.sources {
            row(
                out,
                &[
                    cell(source_name(&s.source)),
                    s.reports.to_string(),
                    s.stale.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    refreshed(s, self.freshness.as_of_timestamp_seconds),
                ],
            );
        }
    }
}

/// The first [`MARKDOWN_ENTRIES`] entries of the work list, and a count of
/// the rest.
fn work_list_section(out: &mut String, failing: &[FailingEntry]) {
    let _ = writeln!(out, "\n### Work list ({} entries)\n", failing.len());
    if failing.is_empty() {
        out.push_str("No failing results.\n");
    } else {
        header(
            out,
            &[
                "Policy",
                "Namespace",
                "Resource",
                "Rule",
                "Result",
                "Message",
            ],
        );
        for e in failing.iter().take(MARKDOWN_ENTRIES) {
            row(
                out,
                &[
                    cell(&e.policy),
                    cell(shown(&e.namespace, "(cluster)")),
                    cell(&subject(e)),
                    cell(shown(&e.rule, "-")),
                    e.result.to_owned(),
                    cell(&e.message),
                ],
            );
        }
        let rest = failing.len().saturating_sub(MARKDOWN_ENTRIES);
        if rest > 0 {
            let _ = writeln!(
                out,
                "\n… and {rest} more: `policyreport-exporter summary --failing` lists them all."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_the_table_or_start_markup() {
        assert_eq!(
            cell("a|b\nc <script> `x` *y* _z_ [l](u) \\"),
            "a\\|b c &lt;script&gt; \\`x\\` \\*y\\* \\_z\\_ \\[l\\](u) \\\\"
        );
    }

    #[test]
    fn marks_follow_the_printed_verdict() {
        assert_eq!(marked("met"), "✅ met");
        assert_eq!(marked("MISSED"), "❌ MISSED");
        assert_eq!(marked("no data"), "➖ no data");
        assert_eq!(marked("NOT MEASURABLE"), "⚠️ NOT MEASURABLE");
    }
}
