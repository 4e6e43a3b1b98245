//! The `summary` command and its [`Options`]: list everything once, then
//! print the rollout numbers the guide tracks (per-namespace counts and
//! violation rates, the pass/fail ratio, control compliance against
//! targets, blocked admissions, policies by mode, a rollout verdict per
//! policy, report freshness per source, and with `--failing` the work list
//! of failing resources) as a table, JSON or Markdown, and exit with a
//! status a CI job can gate on. It replaces the guide's
//! `kubectl get policyreport -A -o json | jq …` step.

mod compute;
mod markdown;
mod table;
mod worklist;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::aggregate::{self, Aggregate, FailingEntry, Problem, Publisher};
use crate::app::{self, AppError, StartConfig};
use crate::kind::FILE_RESOURCE;
use crate::policy::Mode;
use crate::source::{self, Origin, SourceEvent};

pub use worklist::{FailingFilter, work_list};

/// Exit status when a target is missed, or no report was read at all, and
/// `--fail-on-targets` is set.
pub const EXIT_TARGET_MISSED: u8 = 3;
/// Exit status when an input could not be read or was invalid, unless
/// `--allow-invalid`. It wins over [`EXIT_TARGET_MISSED`].
pub const EXIT_INVALID_INPUT: u8 = 4;
/// How many refused inputs the JSON output names (all are counted, and all
/// are named on stderr).
pub const FIRST_PROBLEMS: usize = 10;

/// What `summary` reads, how it prints it, and what it judges.
#[derive(Clone, Debug)]
pub struct Options {
    /// The sources and how they are counted.
    pub start: StartConfig,
    /// Output format.
    pub output: Output,
    /// Exit with [`EXIT_TARGET_MISSED`] when a target is missed or not
    /// measurable, or when no report was read at all.
    pub fail_on_targets: bool,
    /// Refused inputs are named and counted but do not make the exit status
    /// [`EXIT_INVALID_INPUT`].
    pub allow_invalid: bool,
    /// Targets overriding the controls' own: control name and percent.
    pub targets: Vec<(String, f64)>,
    /// The overall violation rate must stay below this, in percent.
    pub target_violation_rate: f64,
    /// The work list, and its filters.
    pub failing: FailingFilter,
    /// Give up when the sources have not listed everything by then.
    pub timeout: Duration,
}

/// Output formats of `summary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Aligned text tables.
    Table,
    /// One JSON document.
    Json,
    /// Markdown for CI pages: the targets with verdict marks, the verdict
    /// per policy, and the first entries of the work list with a count of
    /// the rest.
    Markdown,
}

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
        if let SourceEvent::RelistStart {
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

/// What the progress line and a timeout report while the initial lists
/// come in, and the files seen.
#[derive(Debug, Default)]
struct Listing {
    files: FilesSeen,
    /// Objects held at the last publish.
    held: u64,
    /// The sync targets pending at the last publish.
    pending: String,
}

fn lock(listing: &Mutex<Listing>) -> std::sync::MutexGuard<'_, Listing> {
    listing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the aggregator until every source has listed: records the files
/// seen and the progress, and stops the loop once the aggregate is ready.
struct UntilListed(Arc<Mutex<Listing>>);

impl Publisher for UntilListed {
    fn publish(&mut self, aggregate: &Aggregate) -> ControlFlow<()> {
        let mut l = lock(&self.0);
        l.held = aggregate.stats().objects.values().sum();
        l.pending = aggregate.pending_targets().join(", ");
        if aggregate.ready() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn event(&mut self, event: &SourceEvent) {
        lock(&self.0).files.observe(event);
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

impl Summary {
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

/// Run `summary`: list everything, print, and return the exit status.
pub async fn run(options: Options) -> Result<u8, SummaryError> {
    let (tx, rx) = mpsc::channel(app::CHANNEL);
    // Markdown always shows the first entries of the work list.
    let work = options.failing.failing || options.output == Output::Markdown;
    let reading = source::Reading {
        follow: false,
        keep_messages: work,
    };
    let mut agg = app::start(&options.start, aggregate::Outputs::default(), reading, tx).await?;
    agg.keep_problems();
    if work {
        agg.keep_failing();
    }
    let listing = Arc::new(Mutex::new(Listing::default()));
    let until = UntilListed(Arc::clone(&listing));
    let run = aggregate::run(agg, rx, app::PUBLISH_INTERVAL, until);
    tokio::pin!(run);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    progress.tick().await;
    let mut agg = loop {
        tokio::select! {
            agg = &mut run => break agg,
            _ = progress.tick() => {
                let l = lock(&listing);
                eprintln!(
                    "listing… {} objects after {:.0}s; waiting for {}",
                    l.held,
                    started.elapsed().as_secs_f64(),
                    l.pending
                );
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(SummaryError::Timeout {
                    seconds: options.timeout.as_secs(),
                    pending: lock(&listing).pending.clone(),
                });
            }
        }
    };
    let files = std::mem::take(&mut lock(&listing).files);
    // Staleness as of now, not as of the start of a long list.
    agg.tick();
    let mut summary =
        Summary::from_aggregate(&agg, &options.targets, options.target_violation_rate)?;
    summary.input.files_read = files.read(agg.problems());
    if work {
        summary.failing = Some(work_list(&agg, &options.failing)?);
    }
    match options.output {
        Output::Table => print!("{}", summary.table()),
        Output::Json => match serde_json::to_string_pretty(&summary) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("cannot encode the summary as JSON: {e}"),
        },
        Output::Markdown => print!("{}", summary.markdown()),
    }
    let status = summary.exit_status(options.fail_on_targets, options.allow_invalid);
    report_problems(agg.problems(), options.allow_invalid);
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
