//! The reports-server row: the real exporter against the fake API
//! server with both report kinds in reports-server mode (no paging, list
//! resourceVersion "1", every watch replays every report as ADDED). It
//! measures the peak RSS and CPU of the unpaged initial sync, the CPU of a
//! replay of every report (and that it changes nothing), and the CPU of one
//! `--relist-interval` relist.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use fake_apiserver::ReportsServerMode;
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::metrics::{sample_value, sum_results_with};
use policyreport_test_support::procfs::{self, mib};
use serde_json::json;

use crate::cluster::Cluster;
use crate::exporter::parse_results;
use crate::reportgen::{self, Counts, GenKind, Spec};
use crate::run::{targets, time_floor};

const KINDS: [GenKind; 2] = [GenKind::PolicyReport, GenKind::ClusterPolicyReport];
/// Results of this policy belong to the marker report, not the generated set.
const MARKER: &str = "bench-marker-";

/// What to run.
#[derive(Clone, Debug)]
pub struct UnpagedOptions {
    /// The exporter binary.
    pub exporter: PathBuf,
    /// Reports to generate.
    pub reports: usize,
    /// Generator seed.
    pub seed: u64,
    /// `--relist-interval` of the exporter; the row waits for one relist.
    pub relist_interval: Duration,
    /// How long to wait for any one step.
    pub timeout: Duration,
}

impl UnpagedOptions {
    /// Defaults: 60 s relist interval, 15 min per step.
    pub fn new(exporter: PathBuf, reports: usize, seed: u64) -> Self {
        Self {
            exporter,
            reports,
            seed,
            relist_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(900),
        }
    }
}

/// The measurements.
#[derive(Clone, Debug, Default)]
pub struct UnpagedResult {
    /// Reports.
    pub reports: usize,
    /// Results.
    pub results: u64,
    /// Size of the one list response for all reports (both kinds).
    pub list_bytes: usize,
    /// Start → /readyz.
    pub sync_wall: Duration,
    /// Exporter CPU until /readyz.
    pub sync_cpu: Duration,
    /// Peak RSS until /readyz.
    pub sync_peak_rss: u64,
    /// CPU of the replay that follows the initial list (its watch starts
    /// from resourceVersion "1").
    pub first_replay_cpu: Duration,
    /// Counts equal the generator's after the sync and its replay.
    pub exact: bool,
    /// CPU of one periodic relist (the list and the replay after it).
    pub relist_cpu: Duration,
    /// Peak RSS up to the end of that relist.
    pub relist_peak_rss: u64,
    /// CPU of a replay of every report (a watch ending and starting again).
    pub replay_cpu: Duration,
    /// The replay left every count as it was.
    pub replay_unchanged: bool,
    /// Plain serde decoding of the same bytes (one decode of every report).
    pub floor_cpu: Duration,
    /// RSS once everything settled.
    pub steady_rss: u64,
}

/// Counts without the marker report's series.
fn counts(text: &str) -> Counts {
    let mut c = parse_results(text);
    c.retain(|k, _| !k[1].starts_with(MARKER));
    c
}

fn relists(text: &str) -> f64 {
    KINDS
        .iter()
        .filter_map(|k| {
            let resource = format!("{}.wgpolicyk8s.io", k.plural());
            sample_value(
                text,
                "policyreport_exporter_relists_total",
                &[("resource", &resource), ("reason", "interval")],
            )
        })
        .sum()
}

/// Watch requests for the report kinds so far.
fn watches(cluster: &Cluster) -> usize {
    cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.is_watch() && KINDS.iter().any(|k| r.path.ends_with(k.plural())))
        .count()
}

/// Waits until `n` more report watches than `before` have started.
fn await_watches(cluster: &Cluster, before: usize, n: usize, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while watches(cluster) < before + n {
        if start.elapsed() > timeout {
            bail!("the watches did not start again within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Writes the marker report (a PolicyReport that sorts after every generated
/// one) with a new policy name and waits until the exporter shows it. Written
/// after a watch started, it arrives after that watch's replay (which sends
/// objects in namespace/name order, then live events), so once it shows the
/// replay has been applied.
fn mark(cluster: &Cluster, exporter: &Exporter, n: u32, timeout: Duration) -> Result<()> {
    let policy = format!("{MARKER}{n}");
    let report = json!({
        "metadata": {"name": "zzzz-bench-marker", "namespace": "zzzz-bench-marker"},
        "scope": {"apiVersion": "v1", "kind": "Pod", "name": "marker", "namespace": "zzzz-bench-marker"},
        "results": [{
            "policy": policy, "rule": "r", "result": "pass",
            "source": "kyverno", "scored": true
        }],
    });
    cluster
        .server
        .apply(&GenKind::PolicyReport.resource_def(), report);
    let needle = format!("policy=\"{policy}\"");
    let start = Instant::now();
    loop {
        let text = exporter.metrics()?;
        if sum_results_with(text.as_bytes(), &[&needle]) == 1 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("marker {n} not visible after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the row.
pub fn run(opts: &UnpagedOptions) -> Result<UnpagedResult> {
    let set = reportgen::generate(&Spec::with_reports(opts.reports, opts.seed));
    let expected = set.expected();
    let cluster = Cluster::start(1_000)?;
    cluster.load(&set.reports);
    for kind in KINDS {
        cluster
            .server
            .set_reports_server(&kind.resource_def(), Some(ReportsServerMode::default()));
    }
    let mut r = UnpagedResult {
        reports: opts.reports,
        results: set.total_results(),
        ..UnpagedResult::default()
    };
    {
        let list = cluster.list_json();
        r.list_bytes = list.len();
        r.floor_cpu = time_floor(&list, r.results, 1)?;
    }
    drop(set);

    let interval = format!("{}s", opts.relist_interval.as_secs().max(1));
    let kubeconfig = cluster.kubeconfig();
    let exporter = Exporter::spawn(
        &opts.exporter,
        &["--relist-interval", &interval],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap_or_default())],
    )?;
    let pid = exporter.pid;
    let cpu = || procfs::cpu_time(pid).unwrap_or_default();
    r.sync_wall = exporter.wait_ready(opts.timeout, Duration::from_millis(5))?;
    r.sync_cpu = cpu();
    r.sync_peak_rss = procfs::hwm(pid).unwrap_or_default();
    eprintln!(
        "[unpaged {}] ready after {:.3}s, {:.3}s CPU, peak {:.1} MiB",
        r.reports,
        r.sync_wall.as_secs_f64(),
        r.sync_cpu.as_secs_f64(),
        mib(r.sync_peak_rss)
    );
    await_watches(&cluster, 0, KINDS.len(), opts.timeout)?;
    mark(&cluster, &exporter, 1, opts.timeout)?;
    r.first_replay_cpu = cpu().saturating_sub(r.sync_cpu);
    r.exact = counts(&exporter.metrics()?) == expected;

    // One periodic relist of each kind, then a marker after its replay.
    let before = relists(&exporter.metrics()?);
    let watched = watches(&cluster);
    let c0 = cpu();
    let start = Instant::now();
    while relists(&exporter.metrics()?) < before + KINDS.len() as f64 {
        if start.elapsed() > opts.relist_interval + opts.timeout {
            bail!("no relist within {:?}", opts.relist_interval + opts.timeout);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    await_watches(&cluster, watched, KINDS.len(), opts.timeout)?;
    mark(&cluster, &exporter, 2, opts.timeout)?;
    r.relist_cpu = cpu().saturating_sub(c0);
    r.relist_peak_rss = procfs::hwm(pid).unwrap_or_default();

    // A replay: every watch ends (as at its timeout) and starts again.
    let before = counts(&exporter.metrics()?);
    let watched = watches(&cluster);
    let c0 = cpu();
    cluster.server.end_watches();
    await_watches(&cluster, watched, KINDS.len(), opts.timeout)?;
    mark(&cluster, &exporter, 3, opts.timeout)?;
    r.replay_cpu = cpu().saturating_sub(c0);
    let after = counts(&exporter.metrics()?);
    r.replay_unchanged = before == after && after == expected;
    std::thread::sleep(Duration::from_secs(2));
    r.steady_rss = procfs::rss(pid).unwrap_or_default();
    exporter.stop(Duration::from_secs(60));
    eprintln!("[unpaged {}] {r:?}", r.reports);
    Ok(r)
}

impl UnpagedResult {
    /// The row's table (Markdown).
    pub fn table(&self) -> String {
        let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
        let ratio = |d: Duration| d.as_secs_f64() / self.floor_cpu.as_secs_f64().max(1e-9);
        let mut t = String::new();
        let _ = writeln!(
            t,
            "### Unpaged (Kyverno reports-server mode), {} reports: {} results, one list response of {:.1} MiB\n",
            self.reports,
            self.results,
            mib(self.list_bytes as u64)
        );
        let _ = writeln!(
            t,
            "| measure | exporter | vs floor decode ({}) | target | verdict |\n|---|---|---|---|---|",
            s(self.floor_cpu)
        );
        let peak_ok = mib(self.sync_peak_rss) <= targets::PEAK_RSS_MIB;
        let _ = writeln!(
            t,
            "| initial sync, start → /readyz | {} wall, {} CPU | {:.2}× | | |",
            s(self.sync_wall),
            s(self.sync_cpu),
            ratio(self.sync_cpu)
        );
        let _ = writeln!(
            t,
            "| peak RSS, unpaged initial sync | {:.1} MiB | | ≤ {} MiB | {} |",
            mib(self.sync_peak_rss),
            targets::PEAK_RSS_MIB,
            if peak_ok { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(
            t,
            "| counts after sync and first replay | {} | | exact | {} |",
            if self.exact { "exact" } else { "differ" },
            if self.exact { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(
            t,
            "| replay after the initial list (watch from rv \"1\") | {} CPU | {:.2}× | | |",
            s(self.first_replay_cpu),
            ratio(self.first_replay_cpu)
        );
        let _ = writeln!(
            t,
            "| replay of every report (watch restarted) | {} CPU, counts {} | {:.2}× | ≈ 1 decode, unchanged | {} |",
            s(self.replay_cpu),
            if self.replay_unchanged {
                "unchanged"
            } else {
                "CHANGED"
            },
            ratio(self.replay_cpu),
            if self.replay_unchanged {
                "PASS"
            } else {
                "FAIL"
            }
        );
        let _ = writeln!(
            t,
            "| one periodic relist (list + its replay) | {} CPU, peak RSS so far {:.1} MiB | {:.2}× | | |",
            s(self.relist_cpu),
            mib(self.relist_peak_rss),
            ratio(self.relist_cpu)
        );
        let _ = writeln!(
            t,
            "| steady RSS after the relist and replay | {:.1} MiB | | | |",
            mib(self.steady_rss)
        );
        t
    }
}
