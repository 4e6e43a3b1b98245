//! The `summary` command: list everything once, then print the rollout
//! numbers the guide tracks (per-namespace counts and violation rates, the
//! pass/fail ratio, control compliance against targets, blocked admissions,
//! policies by mode) as a table or JSON. It replaces the guide's
//! `kubectl get policyreport -A -o json | jq …` step.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::aggregate::{Aggregate, LabelOptions};
use crate::app::{self, AppError};
use crate::cli::{Output, SummaryArgs};
use crate::policy::Mode;

/// Exit status when a target is missed and `--fail-on-targets` is set.
pub const EXIT_TARGET_MISSED: u8 = 3;

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
    /// compliant ÷ (compliant + noncompliant), in percent.
    pub compliance: Option<f64>,
    /// Target compliance, in percent.
    pub target: f64,
    /// Whether the target is reached (absent without data).
    pub met: Option<bool>,
}

/// Blocked admissions of one control.
#[derive(Debug, Serialize, PartialEq)]
pub struct BlockedRow {
    /// The control; empty for policies that belong to none.
    pub control: String,
    /// Blocked admission requests.
    pub blocked: u64,
}

/// The whole summary.
#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
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
    /// Whether every evaluated target is met.
    pub targets_met: bool,
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
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

        let mut per_control: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        agg.for_each_control(|control, _, _, compliant, n| {
            let e = per_control.entry(control.to_owned()).or_default();
            if compliant { e.0 += n } else { e.1 += n }
        });
        let controls: Vec<ControlRow> = agg
            .controls()
            .iter()
            .map(|c| {
                let (compliant, noncompliant) =
                    per_control.get(&c.name).copied().unwrap_or_default();
                let target = targets
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == c.name)
                    .map_or(c.target, |(_, t)| *t);
                let compliance = percent(compliant, compliant + noncompliant);
                ControlRow {
                    control: c.name.clone(),
                    compliant,
                    noncompliant,
                    compliance,
                    target,
                    met: compliance.map(|p| p >= target),
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

        let targets_met =
            overall.met != Some(false) && controls.iter().all(|c| c.met != Some(false));
        Ok(Summary {
            namespaces,
            overall,
            controls,
            blocked,
            policies,
            targets_met,
        })
    }

    /// Render as aligned text tables.
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}%"));
        let verdict = |m: Option<bool>| match m {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "no data",
        };
        let mut out = String::new();
        let w = self
            .namespaces
            .iter()
            .map(|n| n.namespace.len())
            .max()
            .unwrap_or(0)
            .max(9);
        let _ = writeln!(
            out,
            "{:<w$}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>14}",
            "NAMESPACE", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "VIOLATION RATE"
        );
        for n in &self.namespaces {
            let name = if n.namespace.is_empty() {
                "(cluster)"
            } else {
                &n.namespace
            };
            let _ = writeln!(
                out,
                "{name:<w$}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>14}",
                n.pass,
                n.fail,
                n.warn,
                n.error,
                n.skip,
                pct(n.violation_rate)
            );
        }
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
        let cw = self
            .controls
            .iter()
            .map(|c| c.control.len())
            .max()
            .unwrap_or(0)
            .max(12);
        let _ = writeln!(
            out,
            "\n{:<cw$}  {:>9}  {:>12}  {:>10}  {:>7}  STATUS",
            "CONTROL", "COMPLIANT", "NONCOMPLIANT", "COMPLIANCE", "TARGET"
        );
        for c in &self.controls {
            let _ = writeln!(
                out,
                "{:<cw$}  {:>9}  {:>12}  {:>10}  {:>6}%  {}",
                c.control,
                c.compliant,
                c.noncompliant,
                pct(c.compliance),
                c.target,
                verdict(c.met)
            );
        }
        let _ = writeln!(out, "\n{:<cw$}  {:>7}", "BLOCKED BY", "BLOCKED");
        for b in &self.blocked {
            let name = if b.control.is_empty() {
                "(no control)"
            } else {
                &b.control
            };
            let _ = writeln!(out, "{name:<cw$}  {:>7}", b.blocked);
        }
        let _ = writeln!(out, "\nPOLICIES BY MODE");
        for (mode, list) in &self.policies {
            let names = if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(", ")
            };
            let _ = writeln!(out, "{mode} ({}): {names}", list.len());
        }
        let _ = writeln!(
            out,
            "\nTargets: {}",
            if self.targets_met {
                "all met"
            } else {
                "MISSED"
            }
        );
        out
    }
}

/// Run `summary`: list everything, print, and return the exit status.
pub async fn run(args: SummaryArgs) -> Result<u8, SummaryError> {
    let (tx, mut rx) = mpsc::channel(app::CHANNEL);
    let mut agg = app::start(&args.source, LabelOptions::default(), false, tx).await?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    progress.tick().await;
    while !agg.ready() {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => agg.handle(ev),
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
        agg.handle(ev);
    }
    let summary = Summary::from_aggregate(&agg, &args.targets, args.target_violation_rate)?;
    match args.output {
        Output::Table => print!("{}", summary.table()),
        Output::Json => match serde_json::to_string_pretty(&summary) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("cannot encode the summary as JSON: {e}"),
        },
    }
    Ok(if args.fail_on_targets && !summary.targets_met {
        EXIT_TARGET_MISSED
    } else {
        0
    })
}
