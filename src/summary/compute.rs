//! Computing the summary from an aggregate: per-namespace counts and
//! totals, control compliance (measurable or not), blocked admissions,
//! policies by mode, a rollout verdict per policy, report freshness, and
//! what was read and refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::table::source_name;
use super::{
    BlockedRow, ControlRow, FIRST_PROBLEMS, Freshness, Input, NamespaceRow, NoPassSource, Overall,
    RolloutRow, SourceFreshness, Summary, SummaryError, Verdict,
};
use crate::aggregate::{Aggregate, ControlStatus};
use crate::kind::FILE_RESOURCE;
use crate::policy::Mode;

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// A time in seconds since the Unix epoch, RFC 3339.
fn rfc3339(seconds: i64) -> Option<String> {
    jiff::Timestamp::from_second(seconds)
        .ok()
        .map(|t| t.to_string())
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
        let (namespaces, overall) = namespace_rows(agg, max_violation_rate);
        let (by_source, fed_by) = sources_of(agg);
        let no_pass_results: Vec<NoPassSource> = by_source
            .into_iter()
            .filter(|(_, (pass, fail))| *pass == 0 && *fail > 0)
            .map(|(source, (_, fail))| NoPassSource { source, fail })
            .collect();
        let controls = compliance(agg, targets, &fed_by, &no_pass_results);
        let blocked = blocked_rows(agg);
        let policies = policies_by_mode(agg);
        let rollout = rollout(agg);
        let input = input_counts(agg);
        // Nothing to judge is a miss, not a pass; so is what cannot be
        // measured.
        let targets_met = input.reports_read > 0
            && overall.met != Some(false)
            && controls
                .iter()
                .all(|c| c.met != Some(false) && c.measurable);
        let warnings = no_pass_warnings(&no_pass_results, &controls, &fed_by);
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
}

/// Per-namespace counts and violation rates, and their totals.
fn namespace_rows(agg: &Aggregate, max_violation_rate: f64) -> (Vec<NamespaceRow>, Overall) {
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
    (namespaces, overall)
}

/// Per control, its compliance against its target (the last `--target`
/// for it, else its own); not measurable when a source feeding it has
/// no pass results.
fn compliance(
    agg: &Aggregate,
    targets: &[(String, f64)],
    fed_by: &[BTreeSet<String>],
    no_pass_results: &[NoPassSource],
) -> Vec<ControlRow> {
    let mut per_control: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    agg.for_each_control(|control, _, _, status, n| {
        let e = per_control.entry(control.to_owned()).or_default();
        match status {
            ControlStatus::Compliant => e.0 += n,
            ControlStatus::Noncompliant => e.1 += n,
            ControlStatus::Excepted => e.2 += n,
        }
    });
    agg.controls()
        .iter()
        .zip(fed_by)
        .map(|(c, sources)| {
            let measurable = !no_pass_results.iter().any(|s| sources.contains(&s.source));
            let (compliant, noncompliant, excepted) =
                per_control.get(&c.name).copied().unwrap_or_default();
            let target = targets
                .iter()
                .rev()
                .find(|(n, _)| *n == c.name)
                .map_or(c.target, |(_, t)| *t);
            let compliance = percent(compliant, compliant + noncompliant).filter(|_| measurable);
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
        .collect()
}

/// Blocked admissions per control, in the order controls are defined.
fn blocked_rows(agg: &Aggregate) -> Vec<BlockedRow> {
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
    blocked
}

/// Policy names by mode, every mode listed, each name once per mode.
fn policies_by_mode(agg: &Aggregate) -> BTreeMap<String, Vec<String>> {
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
    policies
}

/// What was read and refused; files read are counted by the caller.
fn input_counts(agg: &Aggregate) -> Input {
    let problems = agg.problems();
    let files_refused = problems
        .iter()
        .filter(|p| p.resource == FILE_RESOURCE)
        .count() as u64;
    Input {
        files_read: 0,
        files_refused,
        reports_read: agg.valid_reports() as u64,
        objects_invalid: problems.len() as u64 - files_refused,
        first_problems: problems.iter().take(FIRST_PROBLEMS).cloned().collect(),
    }
}

/// One warning per source without pass results, naming the controls it
/// feeds.
fn no_pass_warnings(
    no_pass_results: &[NoPassSource],
    controls: &[ControlRow],
    fed_by: &[BTreeSet<String>],
) -> Vec<String> {
    no_pass_results
        .iter()
        .map(|s| {
            let unmeasured: Vec<&str> = controls
                .iter()
                .zip(fed_by)
                .filter(|(_, sources)| sources.contains(&s.source))
                .map(|(c, _)| c.control.as_str())
                .collect();
            no_pass_warning(s, &unmeasured)
        })
        .collect()
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
