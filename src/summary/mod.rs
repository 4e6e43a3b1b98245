//! The `summary` command: list everything once, then print the rollout
//! numbers the guide tracks (per-namespace counts and violation rates, the
//! pass/fail ratio, control compliance against targets, blocked admissions,
//! policies by mode, a rollout verdict per policy, report freshness per
//! source, and with `--failing` the work list of failing resources) as a
//! table, JSON or Markdown, and exit with a status a CI job can gate on. It
//! replaces the guide's `kubectl get policyreport -A -o json | jq …` step.

mod markdown;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::aggregate::{Aggregate, ControlStatus, FILE_RESOURCE, FailingEntry, Problem};
use crate::app::{self, AppError};
use crate::cli::{FailingFilter, Output, SummaryArgs};
use crate::policy::Mode;
use crate::source::{Origin, SourceEvent};

/// Exit status when a target is missed, or no report was read at all, and
/// `--fail-on-targets` is set.
pub const EXIT_TARGET_MISSED: u8 = 3;
/// Exit status when an input could not be read or was invalid, unless
/// `--allow-invalid`. It wins over [`EXIT_TARGET_MISSED`].
pub const EXIT_INVALID_INPUT: u8 = 4;
/// How many refused inputs the JSON output names (all are counted, and all
/// are named on stderr).
pub const FIRST_PROBLEMS: usize = 10;

/// Errors of the summary command.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// Setting up the sources failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// Listing did not finish in time.
    #[error("timed out after {seconds}s waiting for the initial list of {pending}")]
    Timeout {
        /// The timeout.
        seconds: u64,
        /// What was still pending.
        pending: String,
    },
    /// `--target` names a control that does not exist.
    #[error("--target names unknown control {0:?}")]
    UnknownControl(String),
    /// `--control` names a control that does not exist.
    #[error("--control names unknown control {0:?}")]
    UnknownFilterControl(String),
    /// A `--policy` or `--namespace` glob does not compile.
    #[error("bad glob {glob:?}: {reason}")]
    Glob {
        /// The glob.
        glob: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// One namespace's result counts.
#[derive(Debug, Serialize, PartialEq)]
pub struct NamespaceRow {
    /// The namespace; empty for cluster-scoped reports.
    pub namespace: String,
    /// Results by outcome.
    pub pass: u64,
    /// Failing results.
    pub fail: u64,
    /// Warnings (unscored policies).
    pub warn: u64,
    /// Errors.
    pub error: u64,
    /// Skips.
    pub skip: u64,
    /// fail ÷ (pass + fail), in percent; absent without pass or fail.
    pub violation_rate: Option<f64>,
}

/// Totals over all namespaces.
#[derive(Debug, Serialize, PartialEq)]
pub struct Overall {
    /// Passing results.
    pub pass: u64,
    /// Failing results.
    pub fail: u64,
    /// Warnings.
    pub warn: u64,
    /// Errors.
    pub error: u64,
    /// Skips.
    pub skip: u64,
    /// pass ÷ (pass + fail), in percent.
    pub pass_ratio: Option<f64>,
    /// fail ÷ (pass + fail), in percent.
    pub violation_rate: Option<f64>,
    /// The violation rate must stay below this, in percent.
    pub violation_rate_target: f64,
    /// Whether the violation rate is below its target (absent without data).
    pub met: Option<bool>,
}

/// One control's compliance.
#[derive(Debug, Serialize, PartialEq)]
pub struct ControlRow {
    /// The control.
    pub control: String,
    /// Resources whose matching results all pass.
    pub compliant: u64,
    /// Resources with a failing, warning or error result.
    pub noncompliant: u64,
    /// Resources whose matching results are all skips (exceptions): not in
    /// the percentage.
    pub excepted: u64,
    /// compliant ÷ (compliant + noncompliant), in percent.
    pub compliance: Option<f64>,
    /// Target compliance, in percent.
    pub target: f64,
    /// Whether the target is reached (absent without data, or when not
    /// measurable).
    pub met: Option<bool>,
    /// False when the control has results from a source without a single
    /// pass result (see [`Summary::no_pass_results`]): its percentage
    /// would read 0% whatever the resources, so it is left out.
    pub measurable: bool,
}

/// A source with fail results and not a single pass result: Kyverno's
/// `--allowedResults` (1.17+) may leave out `pass`.
#[derive(Debug, Serialize, PartialEq)]
pub struct NoPassSource {
    /// The results' source (empty when they name none).
    pub source: String,
    /// Its fail results.
    pub fail: u64,
}

/// Report freshness: per source, the reports with results from it, how
/// many are stale, and the oldest refresh.
#[derive(Debug, Serialize, PartialEq)]
pub struct Freshness {
    /// `--stale-after` in seconds; absent when staleness is off.
    pub stale_after_seconds: Option<i64>,
    /// When staleness was judged, in seconds since the Unix epoch: for the
    /// ages the text prints. Not in the JSON, so two runs on the same data
    /// print the same bytes (the timestamps give the ages).
    #[serde(skip)]
    pub as_of_timestamp_seconds: i64,
    /// One row per source, sorted by source.
    pub sources: Vec<SourceFreshness>,
}

/// The reports with results from one source, over all namespaces.
#[derive(Debug, Serialize, PartialEq)]
pub struct SourceFreshness {
    /// The results' source (empty when they name none).
    pub source: String,
    /// Reports with results from it (a report with results from several
    /// sources counts once for each).
    pub reports: u64,
    /// Of those, the ones whose newest result from this source is older
    /// than `--stale-after`; absent when staleness is off.
    pub stale: Option<u64>,
    /// The oldest of their newest result timestamps, RFC 3339; absent when
    /// none has a timestamp.
    pub oldest_refresh: Option<String>,
    /// The same, in seconds since the Unix epoch.
    pub oldest_refresh_timestamp_seconds: Option<i64>,
}

/// Blocked admissions of one control.
#[derive(Debug, Serialize, PartialEq)]
pub struct BlockedRow {
    /// The control; empty for policies that belong to none.
    pub control: String,
    /// Blocked admission requests.
    pub blocked: u64,
}

/// Where a policy stands in the audit-first rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Audit mode, no failing results and no audit admission failures:
    /// ready to switch to Enforce.
    Ready,
    /// Audit mode with failing results or audit admission failures.
    FixFirst,
    /// Enforce mode, no failing results.
    Enforced,
    /// Enforce mode with failing results: existing resources the admission
    /// check never saw.
    EnforcedFailing,
    /// Mixed mode: some rules enforce, some audit.
    PartlyEnforced,
    /// No validate rules.
    None,
}

impl Verdict {
    /// The verdict for a policy's mode, failing results and audit
    /// admission failures.
    pub fn of(mode: Mode, failing: u64, audit_failures: u64) -> Self {
        match mode {
            Mode::Audit if failing == 0 && audit_failures == 0 => Self::Ready,
            Mode::Audit => Self::FixFirst,
            Mode::Enforce if failing == 0 => Self::Enforced,
            Mode::Enforce => Self::EnforcedFailing,
            Mode::Mixed => Self::PartlyEnforced,
            Mode::None => Self::None,
        }
    }

    /// The name printed and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::FixFirst => "fix-first",
            Self::Enforced => "enforced",
            Self::EnforcedFailing => "enforced-failing",
            Self::PartlyEnforced => "partly-enforced",
            Self::None => "none",
        }
    }
}

/// One policy's rollout verdict.
#[derive(Debug, Serialize, PartialEq)]
pub struct RolloutRow {
    /// The policy, as in reports.
    pub policy: String,
    /// `audit`, `enforce`, `mixed` or `none`.
    pub mode: &'static str,
    /// Its fail, warn and error results.
    pub failing: u64,
    /// Admission requests that failed it in Audit mode (let through).
    pub audit_admission_failures: u64,
    /// Admission requests it blocked.
    pub blocked_admissions: u64,
    /// The verdict.
    pub verdict: Verdict,
}

/// What was read, and what was refused.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Input {
    /// Files read and parsed (files mode).
    pub files_read: u64,
    /// Files (or paths) that could not be read, were too large, or did not
    /// parse.
    pub files_refused: u64,
    /// Reports read that decoded.
    pub reports_read: u64,
    /// Objects (reports, Events, policies) refused as invalid.
    pub objects_invalid: u64,
    /// The first refused inputs (at most [`FIRST_PROBLEMS`]), in the order
    /// met.
    pub first_problems: Vec<Problem>,
}

impl Input {
    /// Whether anything was refused.
    pub fn refused(&self) -> bool {
        self.files_refused + self.objects_invalid > 0
    }
}

/// Counts files as the files source hands them over: each read file starts
/// one relist of its own origin.
#[derive(Debug, Default)]
struct FilesSeen(std::collections::BTreeSet<String>);

impl FilesSeen {
    fn observe(&mut self, event: &SourceEvent) {
        if let SourceEvent::ResyncStart {
            origin: Origin::File(path),
        } = event
        {
            self.0.insert(path.display().to_string());
        }
    }

    /// Files seen and not refused.
    fn read(&self, problems: &[Problem]) -> u64 {
        let refused: std::collections::BTreeSet<&str> = problems
            .iter()
            .filter(|p| p.resource == FILE_RESOURCE)
            .map(|p| p.location.as_str())
            .collect();
        self.0
            .iter()
            .filter(|f| !refused.contains(f.as_str()))
            .count() as u64
    }
}

/// The whole summary.
#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    /// What was read and what was refused.
    pub input: Input,
    /// What makes numbers below untrustworthy, one sentence each.
    pub warnings: Vec<String>,
    /// Sources with fail results and not a single pass result.
    pub no_pass_results: Vec<NoPassSource>,
    /// Per-namespace counts.
    pub namespaces: Vec<NamespaceRow>,
    /// Totals.
    pub overall: Overall,
    /// Control compliance.
    pub controls: Vec<ControlRow>,
    /// Blocked admissions per control.
    pub blocked: Vec<BlockedRow>,
    /// Policy names by mode.
    pub policies: BTreeMap<String, Vec<String>>,
    /// A verdict per policy known from policy objects, by policy name.
    pub rollout: Vec<RolloutRow>,
    /// Report freshness per source.
    pub freshness: Freshness,
    /// The work list (`--failing`): failing subjects, once per result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<Vec<FailingEntry>>,
    /// Whether every evaluated target is met; false when no report was
    /// read, or a control is not measurable.
    pub targets_met: bool,
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

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
fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}%"))
}

/// A target's verdict as printed.
fn verdict(met: Option<bool>) -> &'static str {
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
fn shown<'a>(name: &'a str, when_empty: &'a str) -> &'a str {
    if name.is_empty() { when_empty } else { name }
}

/// A source as printed: `(none)` for results that name none.
fn source_name(source: &str) -> &str {
    shown(source, "(none)")
}

/// A time in seconds since the Unix epoch, RFC 3339.
fn rfc3339(seconds: i64) -> Option<String> {
    jiff::Timestamp::from_second(seconds)
        .ok()
        .map(|t| t.to_string())
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
fn refreshed(source: &SourceFreshness, now: i64) -> String {
    match (
        &source.oldest_refresh,
        source.oldest_refresh_timestamp_seconds,
    ) {
        (Some(text), Some(t)) if t > now => format!("{text} (in the future)"),
        (Some(text), Some(t)) => format!("{text} ({} ago)", age(now - t)),
        _ => "-".to_owned(),
    }
}

/// Per source, its pass and fail results.
type PassFail = BTreeMap<String, (u64, u64)>;

/// Per source, its pass and fail results; per control, the sources of its
/// results (by policy or category, whatever the rule).
fn sources_of(agg: &Aggregate) -> (PassFail, Vec<BTreeSet<String>>) {
    let names = agg.labels().names();
    let at = |label: &str| names.iter().position(|n| *n == label);
    let mut by_source = PassFail::new();
    let mut of_control: Vec<BTreeSet<String>> =
        agg.controls().iter().map(|_| BTreeSet::new()).collect();
    let (Some(p), Some(c), Some(s), Some(r)) =
        (at("policy"), at("category"), at("source"), at("result"))
    else {
        return (by_source, of_control);
    };
    agg.for_each_result(|labels, n| {
        let counts = by_source.entry(labels[s].to_owned()).or_default();
        match labels[r] {
            "pass" => counts.0 += n,
            "fail" => counts.1 += n,
            _ => {}
        }
        for (control, sources) in agg.controls().iter().zip(of_control.iter_mut()) {
            if control.covers(labels[p], labels[c]) && !sources.contains(labels[s]) {
                sources.insert(labels[s].to_owned());
            }
        }
    });
    (by_source, of_control)
}

/// Report freshness per source, from the aggregate's freshness index.
fn freshness(agg: &Aggregate) -> Freshness {
    let mut per_source: BTreeMap<String, (u64, Option<u64>, Option<i64>)> = BTreeMap::new();
    agg.for_each_freshness(|r| {
        let e = per_source
            .entry(r.source.to_owned())
            .or_insert((0, Some(0), None));
        e.0 += r.reports;
        e.1 = e.1.zip(r.stale).map(|(a, b)| a + b);
        e.2 = match (e.2, r.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    });
    Freshness {
        stale_after_seconds: agg.stale_after(),
        as_of_timestamp_seconds: agg.now(),
        sources: per_source
            .into_iter()
            .map(|(source, (reports, stale, oldest))| SourceFreshness {
                source,
                reports,
                stale,
                oldest_refresh: oldest.and_then(rfc3339),
                oldest_refresh_timestamp_seconds: oldest,
            })
            .collect(),
    }
}

/// The warning for a source without pass results, naming the controls it
/// leaves unmeasurable.
fn no_pass_warning(s: &NoPassSource, controls: &[&str]) -> String {
    let mut w = format!(
        "source {} has {} fail results and not a single pass result. Kyverno 1.17+ writes only \
         the results its reports controller's --allowedResults lists (default \
         pass,fail,error,warn,skip); without pass, every compliance percentage reads 0% whatever \
         the resources.",
        source_name(&s.source),
        s.fail
    );
    if !controls.is_empty() {
        let _ = write!(w, " Not measurable: {}.", controls.join(", "));
    }
    w.push_str(" Add pass to --allowedResults to measure compliance.");
    w
}

impl Summary {
    /// Compute the summary from an aggregate.
    pub fn from_aggregate(
        agg: &Aggregate,
        targets: &[(String, f64)],
        max_violation_rate: f64,
    ) -> Result<Self, SummaryError> {
        for (name, _) in targets {
            if !agg.controls().iter().any(|c| &c.name == name) {
                return Err(SummaryError::UnknownControl(name.clone()));
            }
        }
        let mut totals = [0u64; 5];
        let namespaces: Vec<NamespaceRow> = agg
            .results_by_namespace()
            .into_iter()
            .map(|(namespace, c)| {
                for (t, n) in totals.iter_mut().zip(c) {
                    *t += n;
                }
                let [pass, fail, warn, error, skip] = c;
                NamespaceRow {
                    namespace,
                    pass,
                    fail,
                    warn,
                    error,
                    skip,
                    violation_rate: percent(fail, pass + fail),
                }
            })
            .collect();
        let [pass, fail, warn, error, skip] = totals;
        let violation_rate = percent(fail, pass + fail);
        let overall = Overall {
            pass,
            fail,
            warn,
            error,
            skip,
            pass_ratio: percent(pass, pass + fail),
            violation_rate,
            violation_rate_target: max_violation_rate,
            met: violation_rate.map(|r| r < max_violation_rate),
        };

        let (by_source, fed_by) = sources_of(agg);
        let no_pass_results: Vec<NoPassSource> = by_source
            .into_iter()
            .filter(|(_, (pass, fail))| *pass == 0 && *fail > 0)
            .map(|(source, (_, fail))| NoPassSource { source, fail })
            .collect();
        let mut per_control: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        agg.for_each_control(|control, _, _, status, n| {
            let e = per_control.entry(control.to_owned()).or_default();
            match status {
                ControlStatus::Compliant => e.0 += n,
                ControlStatus::Noncompliant => e.1 += n,
                ControlStatus::Excepted => e.2 += n,
            }
        });
        let controls: Vec<ControlRow> = agg
            .controls()
            .iter()
            .zip(&fed_by)
            .map(|(c, sources)| {
                let measurable = !no_pass_results.iter().any(|s| sources.contains(&s.source));
                let (compliant, noncompliant, excepted) =
                    per_control.get(&c.name).copied().unwrap_or_default();
                let target = targets
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == c.name)
                    .map_or(c.target, |(_, t)| *t);
                let compliance =
                    percent(compliant, compliant + noncompliant).filter(|_| measurable);
                ControlRow {
                    control: c.name.clone(),
                    compliant,
                    noncompliant,
                    excepted,
                    compliance,
                    target,
                    met: compliance.map(|p| p >= target),
                    measurable,
                }
            })
            .collect();

        let mut blocked_by: BTreeMap<String, u64> =
            agg.controls().iter().map(|c| (c.name.clone(), 0)).collect();
        agg.for_each_blocked(|_, _, _, _, control, n| {
            *blocked_by.entry(control.to_owned()).or_default() += n
        });
        let order: Vec<&str> = agg.controls().iter().map(|c| c.name.as_str()).collect();
        let mut blocked: Vec<BlockedRow> = blocked_by
            .into_iter()
            .map(|(control, blocked)| BlockedRow { control, blocked })
            .collect();
        blocked.sort_by_key(|r| {
            order
                .iter()
                .position(|o| *o == r.control)
                .unwrap_or(usize::MAX)
        });

        let mut policies: BTreeMap<String, Vec<String>> = Mode::ALL
            .iter()
            .map(|m| (m.as_str().to_owned(), Vec::new()))
            .collect();
        for p in agg.policies() {
            let list = policies.entry(p.mode.as_str().to_owned()).or_default();
            if !list.contains(&p.policy) {
                list.push(p.policy.clone());
            }
        }

        let rollout = rollout(agg);

        let problems = agg.problems();
        let files_refused = problems
            .iter()
            .filter(|p| p.resource == FILE_RESOURCE)
            .count() as u64;
        let input = Input {
            files_read: 0,
            files_refused,
            reports_read: agg.valid_reports() as u64,
            objects_invalid: problems.len() as u64 - files_refused,
            first_problems: problems.iter().take(FIRST_PROBLEMS).cloned().collect(),
        };
        // Nothing to judge is a miss, not a pass; so is what cannot be
        // measured.
        let targets_met = input.reports_read > 0
            && overall.met != Some(false)
            && controls
                .iter()
                .all(|c| c.met != Some(false) && c.measurable);
        let warnings = no_pass_results
            .iter()
            .map(|s| {
                let unmeasured: Vec<&str> = controls
                    .iter()
                    .zip(&fed_by)
                    .filter(|(_, sources)| sources.contains(&s.source))
                    .map(|(c, _)| c.control.as_str())
                    .collect();
                no_pass_warning(s, &unmeasured)
            })
            .collect();
        Ok(Summary {
            input,
            warnings,
            no_pass_results,
            namespaces,
            overall,
            controls,
            blocked,
            policies,
            rollout,
            freshness: freshness(agg),
            failing: None,
            targets_met,
        })
    }

    /// Render as aligned text tables.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            let _ = writeln!(out, "WARNING: {w}\n");
        }
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
        text_table(&mut out, &columns, &rows);
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
        let widths = text_table(&mut out, &columns, &rows);
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
        text_table(&mut out, &columns, &rows);
        let _ = writeln!(out, "\nPOLICIES BY MODE");
        for (mode, list) in &self.policies {
            let names = if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(", ")
            };
            let _ = writeln!(out, "{mode} ({}): {names}", list.len());
        }
        self.rollout_table(&mut out);
        self.freshness_table(&mut out);
        if let Some(failing) = &self.failing {
            failing_table(&mut out, failing);
        }
        let _ = writeln!(out, "\n{}", self.input_line());
        let _ = writeln!(out, "Targets: {}", self.targets_line());
        out
    }

    /// What was read and refused, in one line.
    fn input_line(&self) -> String {
        let i = &self.input;
        format!(
            "Input: {} files read, {} refused; {} reports read, {} objects invalid",
            i.files_read, i.files_refused, i.reports_read, i.objects_invalid
        )
    }

    /// The targets' verdict, with why when missed for want of data.
    fn targets_line(&self) -> String {
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
    fn freshness_heading(&self) -> String {
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
    fn control_rows(&self) -> Vec<[String; 6]> {
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
    fn rollout_rows(&self) -> Vec<[String; 6]> {
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

    /// The exit status: 4 when input was refused (unless `allow_invalid`),
    /// else 3 when `fail_on_targets` and a target is missed, else 0.
    pub fn exit_status(&self, fail_on_targets: bool, allow_invalid: bool) -> u8 {
        if self.input.refused() && !allow_invalid {
            EXIT_INVALID_INPUT
        } else if fail_on_targets && !self.targets_met {
            EXIT_TARGET_MISSED
        } else {
            0
        }
    }
}

/// A verdict per policy known from policy objects (a policy listed by
/// several objects once, with its first mode).
fn rollout(agg: &Aggregate) -> Vec<RolloutRow> {
    let names = agg.labels().names();
    let (Some(p), Some(r)) = (
        names.iter().position(|n| *n == "policy"),
        names.iter().position(|n| *n == "result"),
    ) else {
        return Vec::new();
    };
    let mut failing: BTreeMap<String, u64> = BTreeMap::new();
    agg.for_each_result(|labels, n| {
        if matches!(labels[r], "fail" | "warn" | "error") {
            *failing.entry(labels[p].to_owned()).or_default() += n;
        }
    });
    let mut blocked: BTreeMap<String, u64> = BTreeMap::new();
    agg.for_each_blocked(|_, policy, _, _, _, n| {
        *blocked.entry(policy.to_owned()).or_default() += n
    });
    let mut audit: BTreeMap<String, u64> = BTreeMap::new();
    agg.for_each_audit_failure(|_, policy, _, _, _, n| {
        *audit.entry(policy.to_owned()).or_default() += n
    });
    let mut modes: BTreeMap<&str, Mode> = BTreeMap::new();
    for info in agg.policies() {
        modes.entry(&info.policy).or_insert(info.mode);
    }
    modes
        .into_iter()
        .map(|(policy, mode)| {
            let get = |m: &BTreeMap<String, u64>| m.get(policy).copied().unwrap_or(0);
            let (failing, audit_failures) = (get(&failing), get(&audit));
            RolloutRow {
                policy: policy.to_owned(),
                mode: mode.as_str(),
                failing,
                audit_admission_failures: audit_failures,
                blocked_admissions: get(&blocked),
                verdict: Verdict::of(mode, failing, audit_failures),
            }
        })
        .collect()
}

/// The work list: the failing entries the filters select, sorted, at most
/// `--limit` of them.
pub fn work_list(
    agg: &Aggregate,
    filter: &FailingFilter,
) -> Result<Vec<FailingEntry>, SummaryError> {
    for name in &filter.control_names {
        if !agg.controls().iter().any(|c| &c.name == name) {
            return Err(SummaryError::UnknownFilterControl(name.clone()));
        }
    }
    let globs = |list: &[String]| -> Result<Option<globset::GlobSet>, SummaryError> {
        if list.is_empty() {
            return Ok(None);
        }
        crate::glob::set(list)
            .map(Some)
            .map_err(|e| SummaryError::Glob {
                glob: e.pattern,
                reason: e.source.kind().to_string(),
            })
    };
    let (policies, namespaces) = (globs(&filter.policies)?, globs(&filter.namespaces)?);
    let selected = |e: &FailingEntry| {
        policies.as_ref().is_none_or(|g| g.is_match(&e.policy))
            && namespaces.as_ref().is_none_or(|g| g.is_match(&e.namespace))
            && (filter.control_names.is_empty()
                || filter.control_names.iter().any(|c| e.controls.contains(c)))
            && (filter.kinds.is_empty()
                || filter.kinds.iter().any(|k| k.eq_ignore_ascii_case(&e.kind)))
    };
    Ok(agg
        .failing()
        .into_iter()
        .filter(|e| selected(e))
        .take(filter.limit.unwrap_or(usize::MAX))
        .cloned()
        .collect())
}

/// A work-list entry's subject as printed: `Kind/name`.
fn subject(e: &FailingEntry) -> String {
    match (e.kind.as_str(), e.name.as_str()) {
        ("", "") => "(no subject)".to_owned(),
        (k, n) => format!("{k}/{n}"),
    }
}

/// The work list as a table, grouped by policy, then namespace, with a
/// count per group.
fn failing_table(out: &mut String, failing: &[FailingEntry]) {
    let _ = writeln!(out, "\nFAILING ({} entries)", failing.len());
    let mut i = 0;
    while i < failing.len() {
        let policy = &failing[i].policy;
        let in_policy = failing[i..]
            .iter()
            .take_while(|e| &e.policy == policy)
            .count();
        let _ = writeln!(out, "{policy} ({in_policy})");
        let group = &failing[i..i + in_policy];
        let mut j = 0;
        while j < group.len() {
            let ns = &group[j].namespace;
            let in_ns = group[j..].iter().take_while(|e| &e.namespace == ns).count();
            let name = shown(ns, "(cluster)");
            let _ = writeln!(out, "  {name} ({in_ns})");
            for e in &group[j..j + in_ns] {
                let subject = subject(e);
                let rule = shown(&e.rule, "-");
                let controls = if e.controls.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", e.controls.join(", "))
                };
                let _ = writeln!(
                    out,
                    "    {subject}  {rule}  {}{controls}: {}",
                    e.result, e.message
                );
            }
            j += in_ns;
        }
        i += in_policy;
    }
}

/// Run `summary`: list everything, print, and return the exit status.
pub async fn run(args: SummaryArgs) -> Result<u8, SummaryError> {
    let (tx, mut rx) = mpsc::channel(app::CHANNEL);
    // Markdown always shows the first entries of the work list.
    let work = args.failing.failing || args.output == Output::Markdown;
    if work {
        // Before any source starts decoding.
        crate::report::keep_messages();
    }
    let mut agg = app::start(&args.source, app::Outputs::default(), false, tx).await?;
    agg.keep_problems();
    if work {
        agg.keep_failing();
    }
    let mut files = FilesSeen::default();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    progress.tick().await;
    while !agg.ready() {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    files.observe(&ev);
                    agg.handle(ev);
                }
                None => break,
            },
            _ = progress.tick() => {
                let held: u64 = agg.stats().objects.values().sum();
                eprintln!(
                    "listing… {held} objects after {:.0}s; waiting for {}",
                    started.elapsed().as_secs_f64(),
                    agg.pending_targets().join(", ")
                );
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(SummaryError::Timeout {
                    seconds: args.timeout,
                    pending: agg.pending_targets().join(", "),
                });
            }
        }
    }
    // Everything already queued belongs to the initial lists.
    while let Ok(ev) = rx.try_recv() {
        files.observe(&ev);
        agg.handle(ev);
    }
    // Staleness as of now, not as of the start of a long list.
    agg.tick();
    let mut summary = Summary::from_aggregate(&agg, &args.targets, args.target_violation_rate)?;
    summary.input.files_read = files.read(agg.problems());
    if work {
        summary.failing = Some(work_list(&agg, &args.failing)?);
    }
    match args.output {
        Output::Table => print!("{}", summary.table()),
        Output::Json => match serde_json::to_string_pretty(&summary) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("cannot encode the summary as JSON: {e}"),
        },
        Output::Markdown => print!("{}", summary.markdown()),
    }
    let status = summary.exit_status(args.fail_on_targets, args.allow_invalid);
    report_problems(agg.problems(), args.allow_invalid);
    Ok(status)
}

/// Name every refused input on stderr, with its reason, and what it does to
/// the exit status.
fn report_problems(problems: &[Problem], allowed: bool) {
    if problems.is_empty() {
        return;
    }
    for p in problems {
        eprintln!("input refused: {}: {}", p.location, p.reason);
    }
    if allowed {
        eprintln!(
            "warning: {} input(s) refused; accepted as partial input (--allow-invalid)",
            problems.len()
        );
    } else {
        eprintln!(
            "error: {} input(s) refused; exit status {EXIT_INVALID_INPUT} \
             (--allow-invalid accepts partial input)",
            problems.len()
        );
    }
}
