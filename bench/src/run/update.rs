//! The update phases: results flipped in the fake server, as fast as
//! possible or at a paced rate, while polling /metrics for how far the
//! exporter has got; then the flips undone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::metrics::sum_results_with;
use policyreport_test_support::procfs;

use super::{Options, UpdateResult};
use crate::cluster::Cluster;
use crate::reportgen::{self, GenKind, LIBRARY, ReportSet};
use crate::stats;

/// Which results the update phase flips.
struct Plan {
    policy_a: &'static str,
    policy_b: &'static str,
    /// (report index, index of A's result, index of B's result)
    targets: Vec<(usize, usize, usize)>,
    base_a: u64,
    base_b: u64,
}

/// Picks the two single-rule policies that fail least, and the Pod-side
/// reports where both currently pass.
fn plan(set: &ReportSet) -> Option<Plan> {
    let mut cands: Vec<_> = LIBRARY[..set.spec.policies]
        .iter()
        .filter(|p| p.rules.len() == 1 && p.check == reportgen::Check::Validate)
        .collect();
    cands.sort_by(|a, b| a.fail_rate.total_cmp(&b.fail_rate));
    let (a, b) = (cands.first()?.name, cands.get(1)?.name);
    let mut targets = Vec::new();
    for (i, r) in set.reports.iter().enumerate() {
        if r.kind != GenKind::PolicyReport {
            continue;
        }
        let results = r.value["results"].as_array()?;
        let find = |p: &str| {
            results
                .iter()
                .position(|x| x["policy"] == p && x["result"] == "pass")
        };
        if let (Some(ia), Some(ib)) = (find(a), find(b)) {
            targets.push((i, ia, ib));
        }
    }
    if targets.is_empty() {
        return None;
    }
    let expected = set.expected();
    let base = |p: &str| {
        expected
            .iter()
            .filter(|(k, _)| k[1] == p && k[5] == "fail")
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    Some(Plan {
        policy_a: a,
        policy_b: b,
        targets,
        base_a: base(a),
        base_b: base(b),
    })
}

/// The position in the 4R-cycle of writes that these counters show: epoch 0
/// fails A report by report, epoch 1 fails B, epoch 2 passes A again, epoch
/// 3 passes B again. `None` when no prefix of the writes yields them.
fn cycle_position(a: u64, b: u64, r: u64) -> Option<u64> {
    if a > r || b > r {
        None
    } else if b == 0 {
        Some(a)
    } else if a == r {
        Some(r + b)
    } else if b == r {
        Some(2 * r + (r - a))
    } else if a == 0 {
        Some(3 * r + (r - b))
    } else {
        None
    }
}

/// Updates the writer of the update phase hands to the fake server at once.
const WRITE_BATCH: u64 = 16;

/// Flips results in the fake server for `opts.update_secs`, as fast as
/// possible (`rate = None`) or at `rate` updates/s, while polling /metrics to
/// see how far the exporter has got.
pub fn update_phase(
    opts: &Options,
    cluster: &Cluster,
    exporter: &Exporter,
    set: &mut ReportSet,
    rate: Option<f64>,
) -> Result<UpdateResult> {
    let Some(plan) = plan(set) else {
        bail!("no report to update");
    };
    let r = plan.targets.len() as u64;
    let window = Duration::from_secs_f64(opts.update_secs);
    let written = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let needle_a = format!("policy=\"{}\"", plan.policy_a);
    let needle_b = format!("policy=\"{}\"", plan.policy_b);
    let mut conn = exporter.connect()?;
    let cpu0 = procfs::cpu_time(exporter.pid).unwrap_or_default();
    let self0 = procfs::cpu_time(std::process::id()).unwrap_or_default();
    let start = Instant::now();
    let (times, polls, anomalies) = std::thread::scope(|s| -> Result<_> {
        let writer = std::thread::Builder::new()
            .name("bench-writer".into())
            .spawn_scoped(s, || {
                let def = GenKind::PolicyReport.resource_def();
                let mut times: Vec<Duration> = Vec::new();
                // Updates go to the server in batches (distinct reports, as
                // batch ≤ r): one lock and one watcher wake-up per batch.
                let batch = WRITE_BATCH.min(r);
                let mut objects = Vec::with_capacity(batch as usize);
                let mut k: u64 = 0;
                loop {
                    let el = start.elapsed();
                    if el >= window {
                        break;
                    }
                    if let Some(rate) = rate {
                        let due = Duration::from_secs_f64(k as f64 / rate);
                        if due > el {
                            std::thread::sleep(due - el);
                        }
                    }
                    for j in k..k + batch {
                        let (ri, ia, ib) = plan.targets[(j % r) as usize];
                        let (idx, outcome) = match (j / r) % 4 {
                            0 => (ia, "fail"),
                            1 => (ib, "fail"),
                            2 => (ia, "pass"),
                            _ => (ib, "pass"),
                        };
                        let mut object = std::mem::take(&mut set.reports[ri].value);
                        reportgen::set_outcome(&mut object, idx, outcome, 1_731_403_200 + j);
                        objects.push(object);
                    }
                    // Counted before the write: the exporter may show it before
                    // apply_all() returns.
                    written.store((k + batch) as usize, Ordering::Release);
                    // apply_all() hands back the objects it stored (serialized):
                    // keep them for the next change instead of cloning ours.
                    let stored = cluster.server.apply_all(&def, std::mem::take(&mut objects));
                    let t = start.elapsed();
                    for (j, object) in (k..k + batch).zip(stored) {
                        let (ri, _, _) = plan.targets[(j % r) as usize];
                        set.reports[ri].value = object;
                        times.push(t);
                    }
                    k += batch;
                }
                done.store(true, Ordering::Release);
                times
            })?;
        let mut polls: Vec<(Duration, u64)> = Vec::new();
        let mut last: u64 = 0;
        let mut anomalies = 0;
        let mut finished_at: Option<Instant> = None;
        let mut body = Vec::new();
        loop {
            let is_done = done.load(Ordering::Acquire);
            let status = conn.get_into("/metrics", &mut body)?;
            let t = start.elapsed();
            // The exporter cannot show more than has been written by now.
            let w = written.load(Ordering::Acquire) as u64;
            if status != 200 {
                bail!("GET /metrics answered {status}");
            }
            let fa = sum_results_with(&body, &[needle_a.as_str(), "result=\"fail\""]);
            let fb = sum_results_with(&body, &[needle_b.as_str(), "result=\"fail\""]);
            let pos = cycle_position(
                fa.saturating_sub(plan.base_a),
                fb.saturating_sub(plan.base_b),
                r,
            );
            match pos {
                Some(p) => {
                    // The smallest total progress ≥ the last one with this
                    // position in the cycle.
                    let cycle = 4 * r;
                    let mut total = last - last % cycle + p;
                    if total < last {
                        total += cycle;
                    }
                    if total <= w.max(last) {
                        last = total;
                    } else {
                        anomalies += 1;
                        if anomalies <= 3 {
                            eprintln!(
                                "update poll: position {p} ahead of the writes ({w}), last {last}"
                            );
                        }
                    }
                }
                None => {
                    anomalies += 1;
                    if anomalies <= 3 {
                        eprintln!(
                            "update poll: counters {fa}/{fb} (bases {}/{}) match no prefix, last {last}, written {w}",
                            plan.base_a, plan.base_b
                        );
                    }
                }
            }
            polls.push((t, last));
            if is_done {
                if last >= w {
                    break;
                }
                let f = *finished_at.get_or_insert_with(Instant::now);
                if f.elapsed() > Duration::from_secs(60) {
                    break;
                }
            }
            std::thread::sleep(opts.poll_every);
        }
        let times = writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))?;
        Ok((times, polls, anomalies))
    })?;
    let exporter_cpu = procfs::cpu_time(exporter.pid)
        .unwrap_or_default()
        .saturating_sub(cpu0);
    let bench_cpu = procfs::cpu_time(std::process::id())
        .unwrap_or_default()
        .saturating_sub(self0);
    restore(&plan, cluster, exporter, set)?;
    let n = times.len();
    let write_secs = times.last().map_or(0.0, |t| t.as_secs_f64()).max(1e-9);
    let mut lat = Vec::with_capacity(n);
    let mut prev = 0usize;
    let mut last_visible = Duration::ZERO;
    for (t, p) in &polls {
        let p = (*p as usize).min(n);
        for wt in &times[prev.min(p)..p] {
            lat.push(t.saturating_sub(*wt));
        }
        if p > prev {
            last_visible = *t;
            prev = p;
        }
    }
    let visible = prev;
    Ok(UpdateResult {
        offered: rate,
        written: n,
        visible,
        writer_rate: n as f64 / write_secs,
        applied_rate: visible as f64 / last_visible.as_secs_f64().max(1e-9),
        p50: stats::percentile(&mut lat, 0.50),
        p99: stats::percentile(&mut lat, 0.99),
        max: lat.iter().copied().max().unwrap_or_default(),
        polls: polls.len(),
        anomalies,
        policies: (plan.policy_a.to_owned(), plan.policy_b.to_owned()),
        targets: plan.targets.len(),
        exporter_cpu,
        bench_cpu,
    })
}

/// Puts the flipped results back to `pass` (untimed) and waits until the
/// exporter shows it, so that the next phase starts from the same state.
fn restore(plan: &Plan, cluster: &Cluster, exporter: &Exporter, set: &mut ReportSet) -> Result<()> {
    let def = GenKind::PolicyReport.resource_def();
    for &(ri, ia, ib) in &plan.targets {
        let report = &mut set.reports[ri].value;
        let mut changed = false;
        for idx in [ia, ib] {
            if report["results"][idx]["result"] != "pass" {
                reportgen::set_outcome(report, idx, "pass", 1_731_403_200);
                changed = true;
            }
        }
        if changed {
            *report = cluster.server.apply(&def, std::mem::take(report));
        }
    }
    let needle_a = format!("policy=\"{}\"", plan.policy_a);
    let needle_b = format!("policy=\"{}\"", plan.policy_b);
    let start = Instant::now();
    let mut conn = exporter.connect()?;
    loop {
        let (_, body) = conn.get("/metrics")?;
        let fa = sum_results_with(&body, &[needle_a.as_str(), "result=\"fail\""]);
        let fb = sum_results_with(&body, &[needle_b.as_str(), "result=\"fail\""]);
        if fa == plan.base_a && fb == plan.base_b {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("the exporter did not return to the starting counts ({fa}, {fb})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
