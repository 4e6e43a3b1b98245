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

use crate::admission::{self, EventSpec};
use crate::cluster::Cluster;
use crate::exporter::{Exporter, parse_results, sample_value};
use crate::procfs::{self, mib};
use crate::reportgen::{self, Spec};
use crate::run::thousands;

/// Targets, for sizing: what counting needs of an Event is its uid and the
/// last count; a report's contribution is series ids and counts.
pub mod targets {
    /// Steady RSS per live admission Event.
    pub const EVENT_BYTES: f64 = 128.0;
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
    /// Generator seed.
    pub seed: u64,
    /// Wait after /readyz, and after the relist, before reading the RSS.
    pub settle: Duration,
    /// How long to wait for any one step.
    pub timeout: Duration,
}

impl MemoryOptions {
    /// Rows at 50k and 200k reports and at 50k and 200k Events.
    pub fn new(exporter: PathBuf, seed: u64) -> Self {
        Self {
            exporter,
            reports: vec![50_000, 200_000],
            events: vec![50_000, 200_000],
            seed,
            settle: Duration::from_secs(3),
            timeout: Duration::from_secs(900),
        }
    }
}

/// What a row holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Load {
    /// Nothing: the baseline.
    Empty,
    /// Generated reports.
    Reports {
        /// Reports.
        reports: usize,
        /// Results in them.
        results: u64,
        /// Namespaces.
        namespaces: usize,
    },
    /// Live per-occurrence admission Events.
    Events(usize),
}

impl Load {
    fn objects(&self) -> usize {
        match self {
            Load::Empty => 0,
            Load::Reports { reports, .. } => *reports,
            Load::Events(n) => *n,
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

    /// Whether the row meets its target (`None`: no target at this size).
    pub fn pass(&self, baseline: &Row) -> Option<bool> {
        let each = self.bytes_each(baseline);
        match self.load {
            Load::Reports { reports, .. } if reports == targets::REPORTS_AT => {
                Some(each <= targets::REPORT_BYTES && self.exact)
            }
            Load::Events(_) => Some(each <= targets::EVENT_BYTES && self.exact),
            _ => None,
        }
    }
}

fn events_def() -> ResourceDef {
    ResourceDef::new("", "v1", "Event", "events", true)
}

/// Runs the baseline and every row.
pub fn run(opts: &MemoryOptions) -> Result<MemoryResult> {
    let baseline = measure(opts, Load::Empty, |_| Ok(()), |_| true)?;
    eprintln!("[memory] baseline: {baseline:?}");
    let mut rows = Vec::new();
    for &n in &opts.reports {
        let set = reportgen::generate(&Spec::with_reports(n, opts.seed));
        let load = Load::Reports {
            reports: n,
            results: set.total_results(),
            namespaces: set.spec.namespaces + 1,
        };
        let expected = set.expected();
        let row = measure(
            opts,
            load,
            |cluster| {
                cluster.load(&set.reports);
                Ok(())
            },
            |text| parse_results(text) == expected,
        )?;
        eprintln!("[memory] {row:?}");
        rows.push(row);
    }
    for &n in &opts.events {
        let spec = EventSpec::new(n, opts.seed);
        let row = measure(
            opts,
            Load::Events(n),
            |cluster| {
                let def = events_def();
                let mut batch = Vec::with_capacity(1024);
                for event in admission::events(&spec) {
                    batch.push(event);
                    if batch.len() == batch.capacity() {
                        cluster.server.apply_all(&def, std::mem::take(&mut batch));
                    }
                }
                cluster.server.apply_all(&def, batch);
                Ok(())
            },
            |text| admissions(text) == n as f64,
        )?;
        eprintln!("[memory] {row:?}");
        rows.push(row);
    }
    Ok(MemoryResult { baseline, rows })
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

fn measure(
    opts: &MemoryOptions,
    load: Load,
    fill: impl FnOnce(&Cluster) -> Result<()>,
    exact: impl Fn(&str) -> bool,
) -> Result<Row> {
    let with_events = !matches!(load, Load::Reports { .. });
    let cluster = Cluster::start(100_000)?;
    if with_events {
        cluster.server.serve(events_def());
    }
    fill(&cluster)?;
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
        steady_rss,
        sync_peak_rss,
        relist_peak_rss: procfs::hwm(pid).unwrap_or_default(),
        after_relist_rss: procfs::rss(pid).unwrap_or_default(),
        exact: ok,
    };
    exporter.stop(Duration::from_secs(120));
    Ok(row)
}

impl MemoryResult {
    /// The table (Markdown).
    pub fn table(&self) -> String {
        use targets::*;
        let b = &self.baseline;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "### Memory per report and per live admission Event (steady RSS above an empty cluster's)\n"
        );
        let _ = writeln!(
            t,
            "| load | ready after | steady RSS | peak RSS (sync / through a relist) | RSS after the relist | bytes each, steady | bytes each, peak | target | verdict |\n|---|---|---|---|---|---|---|---|---|"
        );
        let _ = writeln!(
            t,
            "| empty cluster (baseline) | {:.2} s | {:.1} MiB | {:.1} / {:.1} MiB | {:.1} MiB | | | | |",
            b.sync_wall.as_secs_f64(),
            mib(b.steady_rss),
            mib(b.sync_peak_rss),
            mib(b.relist_peak_rss),
            mib(b.after_relist_rss)
        );
        for r in &self.rows {
            let (what, target) = match &r.load {
                Load::Empty => ("empty".to_owned(), String::new()),
                Load::Reports {
                    reports,
                    results,
                    namespaces,
                } => (
                    format!(
                        "{} reports ({} results, {namespaces} namespaces)",
                        thousands(*reports as u64),
                        thousands(*results)
                    ),
                    format!(
                        "≤ {REPORT_BYTES} per report at {}",
                        thousands(REPORTS_AT as u64)
                    ),
                ),
                Load::Events(n) => (
                    format!("{} live admission Events", thousands(*n as u64)),
                    format!("≤ {EVENT_BYTES} per Event"),
                ),
            };
            let verdict = match r.pass(b) {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None if !r.exact => "FAIL (counts)",
                None => "",
            };
            let _ = writeln!(
                t,
                "| {what} | {:.2} s | {:.1} MiB | {:.1} / {:.1} MiB | {:.1} MiB | {:.0} | {:.0} | {target} | {verdict} |",
                r.sync_wall.as_secs_f64(),
                mib(r.steady_rss),
                mib(r.sync_peak_rss),
                mib(r.relist_peak_rss),
                mib(r.after_relist_rss),
                r.bytes_each(b),
                r.peak_bytes_each(b),
            );
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
