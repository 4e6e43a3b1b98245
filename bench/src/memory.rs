//! The memory rows: what a report and a live admission Event cost the real
//! exporter process, as steady RSS through the fake API server, for sizing
//! its memory request and limit (docs/operations.md).
//!
//! Each row starts the exporter on a cluster holding only those objects,
//! waits for `/readyz` and lets it settle, then forces a relist of every
//! kind (the server's history is compacted under the exporter's watches, so
//! they get 410 Gone) and waits for it to end. A relist holds the new state
//! beside the old one until it ends, so its peak is what the limit must
//! cover. The baseline is the same on an empty cluster; a row's figure per
//! object is its RSS above the baseline divided by its objects.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use fake_apiserver::ResourceDef;
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::metrics::sample_value;
use policyreport_test_support::procfs::{self, mib};

use crate::admission::{self, EventSpec};
use crate::cluster::Cluster;
use crate::exporter::parse_results;
use crate::reportgen::{self, Spec};
use crate::run::thousands;

/// Targets, for sizing: what counting needs of an Event is its uid and the
/// last count; a report's contribution is series ids and counts.
pub mod targets {
    /// Steady RSS per live admission Event, at [`EVENTS_AT`] Events.
    pub const EVENT_BYTES: f64 = 128.0;
    /// The Event count the Event target is defined at (below it, the fixed
    /// cost of watching Events weighs on each).
    pub const EVENTS_AT: usize = 200_000;
    /// Steady RSS per report, at [`REPORTS_AT`] reports.
    pub const REPORT_BYTES: f64 = 512.0;
    /// The report count the report target is defined at.
    pub const REPORTS_AT: usize = 200_000;
}

/// What to run.
#[derive(Clone, Debug)]
pub struct MemoryOptions {
    /// The exporter binary.
    pub exporter: PathBuf,
    /// Report counts, one row each.
    pub reports: Vec<usize>,
    /// Live admission Event counts, one row each.
    pub events: Vec<usize>,
    /// (Pods, live admission Events): one row with the reports of that many
    /// Pods and their controllers, and the Events, together.
    pub cluster: Option<(usize, usize)>,
    /// Generator seed.
    pub seed: u64,
    /// Wait after /readyz, and after the relist, before reading the RSS.
    pub settle: Duration,
    /// How long to wait for any one step.
    pub timeout: Duration,
}

impl MemoryOptions {
    /// Rows at 50k and 200k reports, at 50k and 200k Events, and 150k Pods
    /// (Kubernetes' documented limit) with 50k Events.
    pub fn new(exporter: PathBuf, seed: u64) -> Self {
        Self {
            exporter,
            reports: vec![50_000, 200_000],
            events: vec![50_000, 200_000],
            cluster: Some((150_000, 50_000)),
            seed,
            settle: Duration::from_secs(3),
            timeout: Duration::from_secs(900),
        }
    }
}

/// What a row's cluster holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Generated reports.
    pub reports: usize,
    /// Their Pods.
    pub pods: usize,
    /// Their results.
    pub results: u64,
    /// Their namespaces.
    pub namespaces: usize,
    /// Live per-occurrence admission Events.
    pub events: usize,
}

impl Load {
    /// The objects a per-object figure divides by: the reports, or else the
    /// Events.
    fn objects(&self) -> usize {
        if self.reports > 0 {
            self.reports
        } else {
            self.events
        }
    }
}

/// One exporter run.
#[derive(Clone, Debug)]
pub struct Row {
    /// What the cluster held.
    pub load: Load,
    /// Start → /readyz.
    pub sync_wall: Duration,
    /// The exporter's CPU until /readyz.
    pub sync_cpu: Duration,
    /// VmRSS after /readyz and settling.
    pub steady_rss: u64,
    /// VmHWM at /readyz.
    pub sync_peak_rss: u64,
    /// VmHWM at the end of the forced relist (the whole run's peak).
    pub relist_peak_rss: u64,
    /// VmRSS after the relist and settling.
    pub after_relist_rss: u64,
    /// Counts equal what was loaded, after the sync and after the relist.
    pub exact: bool,
}

/// The memory rows and their baseline.
#[derive(Clone, Debug)]
pub struct MemoryResult {
    /// The exporter on an empty cluster.
    pub baseline: Row,
    /// The loaded runs.
    pub rows: Vec<Row>,
}

impl Row {
    /// Steady RSS above the baseline per object.
    pub fn bytes_each(&self, baseline: &Row) -> f64 {
        (self.steady_rss as f64 - baseline.steady_rss as f64) / self.load.objects().max(1) as f64
    }

    /// Peak RSS (through the relist) above the baseline's steady RSS, per
    /// object.
    pub fn peak_bytes_each(&self, baseline: &Row) -> f64 {
        (self.relist_peak_rss as f64 - baseline.steady_rss as f64)
            / self.load.objects().max(1) as f64
    }

    /// Whether the row meets its target (`None`: no target for this load).
    pub fn pass(&self, baseline: &Row) -> Option<bool> {
        let each = self.bytes_each(baseline);
        match self.load {
            Load {
                reports: targets::REPORTS_AT,
                events: 0,
                ..
            } => Some(each <= targets::REPORT_BYTES && self.exact),
            Load {
                reports: 0,
                events: targets::EVENTS_AT,
                ..
            } => Some(each <= targets::EVENT_BYTES && self.exact),
            _ => None,
        }
    }
}

fn events_def() -> ResourceDef {
    ResourceDef::new("", "v1", "Event", "events", true)
}

/// A check of what the exporter shows.
type Check = Box<dyn Fn(&str) -> bool>;

/// Runs the baseline and every row.
pub fn run(opts: &MemoryOptions) -> Result<MemoryResult> {
    let baseline = measure(opts, true, |_| {
        Ok((Load::default(), Box::new(|_: &str| true)))
    })?;
    eprintln!("[memory] baseline: {baseline:?}");
    let mut loads: Vec<(Spec, usize)> = Vec::new();
    for &n in &opts.reports {
        loads.push((Spec::with_reports(n, opts.seed), 0));
    }
    for &n in &opts.events {
        loads.push((Spec::with_reports(0, opts.seed), n));
    }
    if let Some((pods, events)) = opts.cluster {
        let mut spec = Spec::with_reports(0, opts.seed);
        spec.pods = Some(pods);
        spec.namespaces = (pods / 150).clamp(4, 400);
        loads.push((spec, events));
    }
    let mut rows = Vec::new();
    for (spec, events) in loads {
        let row = measure(opts, events > 0, |cluster| {
            fill(cluster, &spec, events, opts.seed)
        })?;
        eprintln!("[memory] {row:?}");
        rows.push(row);
    }
    Ok(MemoryResult { baseline, rows })
}

/// Loads the reports of `spec` (none when it asks for none) and `events`
/// admission Events into the cluster; returns what they are and how to
/// check the exporter's counts of them. The generated objects are dropped
/// once loaded: the server keeps their bytes.
fn fill(cluster: &Cluster, spec: &Spec, events: usize, seed: u64) -> Result<(Load, Check)> {
    let mut load = Load {
        events,
        ..Load::default()
    };
    let mut expected = reportgen::Counts::new();
    if spec.reports > 0 || spec.pods.is_some() {
        let set = reportgen::generate(spec);
        load.reports = set.reports.len();
        load.pods = set.reports.iter().filter(|r| r.subject == "Pod").count();
        load.results = set.total_results();
        load.namespaces = set.spec.namespaces + 1;
        expected = set.expected();
        cluster.load(&set.reports);
    }
    if events > 0 {
        let def = events_def();
        let mut batch = Vec::with_capacity(1024);
        for event in admission::events(&EventSpec::new(events, seed)) {
            batch.push(event);
            if batch.len() == batch.capacity() {
                cluster.server.apply_all(&def, std::mem::take(&mut batch));
            }
        }
        cluster.server.apply_all(&def, batch);
    }
    let check =
        move |text: &str| parse_results(text) == expected && admissions(text) == events as f64;
    Ok((load, Box::new(check)))
}

/// Blocked and audit admissions counted, over every series.
fn admissions(text: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with("policyreport_admission_blocked_total{")
                || l.starts_with("policyreport_admission_audit_failures_total{")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Relists counted for a resource (any reason).
fn relists(text: &str, resource: &str) -> f64 {
    ["expired", "error", "interval"]
        .iter()
        .filter_map(|reason| {
            sample_value(
                text,
                "policyreport_exporter_relists_total",
                &[("resource", resource), ("reason", reason)],
            )
        })
        .sum()
}

/// The resources the exporter watches in a cluster serving `events` or not.
fn resources(events: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![
        ("policyreports.wgpolicyk8s.io", "/policyreports"),
        (
            "clusterpolicyreports.wgpolicyk8s.io",
            "/clusterpolicyreports",
        ),
    ];
    if events {
        out.push(("events", "/events"));
    }
    out
}

/// Starts the exporter on a cluster serving the report kinds (and Events
/// with `with_events`), filled by `fill`, and measures it through its sync
/// and a forced relist.
fn measure(
    opts: &MemoryOptions,
    with_events: bool,
    fill: impl FnOnce(&Cluster) -> Result<(Load, Check)>,
) -> Result<Row> {
    let cluster = Cluster::start(100_000)?;
    if with_events {
        cluster.server.serve(events_def());
    }
    let (load, exact) = fill(&cluster)?;
    let exporter = Exporter::spawn(
        &opts.exporter,
        &[],
        &[(
            "KUBECONFIG",
            cluster.kubeconfig().to_str().unwrap_or_default(),
        )],
    )?;
    let pid = exporter.pid;
    let sync_wall = exporter.wait_ready(opts.timeout, Duration::from_millis(5))?;
    let sync_cpu = procfs::cpu_time(pid).unwrap_or_default();
    let sync_peak_rss = procfs::hwm(pid).unwrap_or_default();
    let mut ok = exact(&exporter.metrics()?);
    std::thread::sleep(opts.settle);
    let steady_rss = procfs::rss(pid).unwrap_or_default();

    // Force a relist of every kind: the server goes away, its history is
    // compacted past every watch's resourceVersion, and it comes back.
    let watched = resources(with_events);
    let text = exporter.metrics()?;
    let before: Vec<f64> = watched.iter().map(|(r, _)| relists(&text, r)).collect();
    cluster.rt.block_on(cluster.server.stop());
    cluster.server.bump_resource_versions(1);
    cluster.server.compact();
    cluster.server.clear_requests();
    cluster.rt.block_on(cluster.server.resume())?;
    let start = Instant::now();
    loop {
        let text = exporter.metrics()?;
        let relisted = watched
            .iter()
            .zip(&before)
            .all(|((r, _), b)| relists(&text, r) > *b);
        // A relist has ended once its kind is watched again after its list.
        let requests = cluster.server.requests();
        let watching = watched.iter().all(|(_, path)| {
            let of = |w: bool| {
                requests
                    .iter()
                    .rposition(|q| q.path.ends_with(path) && q.is_watch() == w)
            };
            matches!((of(false), of(true)), (Some(list), Some(watch)) if watch > list)
        });
        if relisted && watching {
            break;
        }
        if start.elapsed() > opts.timeout {
            bail!("the forced relist did not end within {:?}", opts.timeout);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(opts.settle);
    ok &= exact(&exporter.metrics()?);
    let row = Row {
        load,
        sync_wall,
        sync_cpu,
        steady_rss,
        sync_peak_rss,
        // VmHWM is the larger of the current RSS and a high-water mark the
        // kernel records lazily (on unmaps): pages reclaimed in between
        // (the binary's, under memory pressure) can make a later reading
        // lower than an earlier one, by 24 KiB in one CI run.
        relist_peak_rss: procfs::hwm(pid).unwrap_or_default().max(sync_peak_rss),
        after_relist_rss: procfs::rss(pid).unwrap_or_default(),
        exact: ok,
    };
    exporter.stop(Duration::from_secs(120));
    Ok(row)
}

/// Bytes per object above the baseline: (steady, peak through a relist).
type PerObject = (f64, f64);

impl MemoryResult {
    /// Per report and per Event, from the largest row of each alone: what
    /// the sizing in docs/operations.md adds up.
    pub fn model(&self) -> (Option<PerObject>, Option<PerObject>) {
        let b = &self.baseline;
        let largest = |reports: bool| {
            self.alone(reports)
                .last()
                .map(|r| (r.bytes_each(b), r.peak_bytes_each(b)))
        };
        (largest(true), largest(false))
    }

    /// The rows of reports alone (or of Events alone), smallest first.
    fn alone(&self, reports: bool) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| (r.load.reports > 0) == reports && (r.load.events > 0) != reports)
            .collect();
        rows.sort_by_key(|r| r.load.objects());
        rows
    }

    /// Bytes per object between the two largest rows of reports alone (or
    /// of Events alone): (steady, peak), without the fixed cost that the
    /// per-object figures of small rows carry.
    pub fn marginal(&self, reports: bool) -> Option<PerObject> {
        let [.., small, large] = self.alone(reports)[..] else {
            return None;
        };
        let n = large
            .load
            .objects()
            .checked_sub(small.load.objects())?
            .max(1) as f64;
        let per = |a: u64, b: u64| (b as f64 - a as f64) / n;
        Some((
            per(small.steady_rss, large.steady_rss),
            per(small.relist_peak_rss, large.relist_peak_rss),
        ))
    }

    /// The table (Markdown).
    pub fn table(&self) -> String {
        use targets::*;
        let b = &self.baseline;
        let (per_report, per_event) = self.model();
        let mut t = String::new();
        let _ = writeln!(
            t,
            "### Memory per report and per live admission Event (RSS above an empty cluster's)\n"
        );
        let _ = writeln!(
            t,
            "| load | ready after (CPU) | steady RSS | peak RSS (sync / through a relist) | RSS after the relist | bytes each, steady | bytes each, peak | target | verdict |\n|---|---|---|---|---|---|---|---|---|"
        );
        let _ = writeln!(
            t,
            "| empty cluster (baseline) | {:.2} s ({:.2} s) | {:.1} MiB | {:.1} / {:.1} MiB | {:.1} MiB | | | | |",
            b.sync_wall.as_secs_f64(),
            b.sync_cpu.as_secs_f64(),
            mib(b.steady_rss),
            mib(b.sync_peak_rss),
            mib(b.relist_peak_rss),
            mib(b.after_relist_rss)
        );
        for r in &self.rows {
            let l = &r.load;
            let mut what = Vec::new();
            if l.reports > 0 {
                what.push(format!(
                    "{} reports ({} Pods, {} results, {} namespaces)",
                    thousands(l.reports as u64),
                    thousands(l.pods as u64),
                    thousands(l.results),
                    l.namespaces
                ));
            }
            if l.events > 0 {
                what.push(format!(
                    "{} live admission Events",
                    thousands(l.events as u64)
                ));
            }
            let (each, target) = match (l.reports, l.events) {
                (_, 0) => (
                    format!("{:.0} | {:.0}", r.bytes_each(b), r.peak_bytes_each(b)),
                    format!(
                        "≤ {REPORT_BYTES} per report at {}",
                        thousands(REPORTS_AT as u64)
                    ),
                ),
                (0, _) => (
                    format!("{:.0} | {:.0}", r.bytes_each(b), r.peak_bytes_each(b)),
                    format!(
                        "≤ {EVENT_BYTES} per Event at {}",
                        thousands(EVENTS_AT as u64)
                    ),
                ),
                // Both: what the per-object figures predict.
                (reports, events) => match (per_report, per_event) {
                    (Some(pr), Some(pe)) => {
                        let predict = |(report, event): (f64, f64)| {
                            mib((b.steady_rss as f64
                                + reports as f64 * report
                                + events as f64 * event) as u64)
                        };
                        (
                            format!(
                                "predicted {:.1} MiB | predicted {:.1} MiB",
                                predict((pr.0, pe.0)),
                                predict((pr.1, pe.1))
                            ),
                            String::new(),
                        )
                    }
                    _ => (" | ".to_owned(), String::new()),
                },
            };
            let verdict = match r.pass(b) {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None if !r.exact => "FAIL (counts)",
                None => "",
            };
            let _ = writeln!(
                t,
                "| {} | {:.2} s ({:.2} s) | {:.1} MiB | {:.1} / {:.1} MiB | {:.1} MiB | {each} | {target} | {verdict} |",
                what.join(" + "),
                r.sync_wall.as_secs_f64(),
                r.sync_cpu.as_secs_f64(),
                mib(r.steady_rss),
                mib(r.sync_peak_rss),
                mib(r.relist_peak_rss),
                mib(r.after_relist_rss),
            );
        }
        for (what, reports) in [("report", true), ("Event", false)] {
            if let Some((steady, peak)) = self.marginal(reports) {
                let _ = writeln!(
                    t,
                    "\nbetween the two largest rows of {what}s alone, each more {what} costs {steady:.0} bytes steady, {peak:.0} at the peak"
                );
            }
        }
        let exact = self.rows.iter().all(|r| r.exact);
        let _ = writeln!(
            t,
            "\ncounts exact after each sync and relist: {}",
            if exact { "yes" } else { "NO" }
        );
        t
    }
}
