//! The real-server row: generated reports loaded into a real kube-apiserver
//! and etcd ([`crate::real`]), the exporter's initial sync from it (with the
//! RBAC of `deploy/`), and `kubectl get policyreports -A -o json` on the same
//! server as the baseline.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::procfs::{self, children_cpu, mib};
use serde_json::Value;

use crate::exporter::parse_results;
use crate::real::{RealCluster, kubectl_binary};
use crate::reportgen::{self, Spec};

/// What to run.
#[derive(Clone, Debug)]
pub struct RealOptions {
    /// The exporter binary.
    pub exporter: PathBuf,
    /// Reports to load.
    pub reports: usize,
    /// Generator seed.
    pub seed: u64,
    /// Wait after /readyz before reading the steady RSS.
    pub settle: Duration,
}

/// The measurements.
#[derive(Clone, Debug, Default)]
pub struct RealResult {
    /// Reports loaded.
    pub reports: usize,
    /// Their results.
    pub results: u64,
    /// The Kubernetes release of the server.
    pub kubernetes: String,
    /// Wall time to create them (32 requests at a time).
    pub load_wall: Duration,
    /// Exporter start → /readyz.
    pub sync_wall: Duration,
    /// CPU of the exporter at /readyz.
    pub sync_cpu: Duration,
    /// VmHWM at /readyz.
    pub peak_rss: u64,
    /// VmRSS after settling.
    pub steady_rss: u64,
    /// Whether the exporter's counts equal the generator's.
    pub exact: bool,
    /// `kubectl get policyreports -A -o json > /dev/null`: wall.
    pub kubectl_wall: Duration,
    /// …and its CPU (user + system).
    pub kubectl_cpu: Duration,
}

/// Runs the row.
pub fn run(o: &RealOptions) -> Result<RealResult> {
    // kube-apiserver's default compaction interval: with the tests' 15 s, a
    // paged `kubectl get` of 50k reports outlives its continue token and
    // fails with 410 Expired (kubectl does not start over).
    let cluster = RealCluster::start_with(&[], &[("CLUSTER_COMPACTION_INTERVAL", "5m")])?;
    let set = reportgen::generate(&Spec::with_reports(o.reports, o.seed));
    let (expected, results) = (set.expected(), set.total_results());
    // The reports move into the load: the 50k set is held once, not thrice.
    let objects: Vec<Value> = set.reports.into_iter().map(|r| r.value).collect();
    let start = Instant::now();
    cluster.load(objects, 32)?;
    let load_wall = start.elapsed();
    eprintln!(
        "[real {}] loaded in {:.1}s",
        o.reports,
        load_wall.as_secs_f64()
    );

    let (kubectl_wall, kubectl_cpu) = time_kubectl(&cluster)?;
    let kc = cluster.exporter_kubeconfig().display().to_string();
    let e = Exporter::spawn(
        &o.exporter,
        &["--page-size", "500"],
        &[("KUBECONFIG", kc.as_str())],
    )?;
    let sync_wall = e.wait_ready(Duration::from_secs(900), Duration::from_millis(5))?;
    let sync_cpu = procfs::cpu_time(e.pid).unwrap_or_default();
    let peak_rss = procfs::hwm(e.pid).unwrap_or_default();
    std::thread::sleep(o.settle);
    let steady_rss = procfs::rss(e.pid).unwrap_or_default();
    let exact = parse_results(&e.metrics()?) == expected;
    let env = std::fs::read_to_string(cluster.dir().join("env")).unwrap_or_default();
    let kubernetes = env
        .lines()
        .find_map(|l| l.strip_prefix("KUBERNETES_VERSION="))
        .unwrap_or("?")
        .to_owned();
    Ok(RealResult {
        reports: o.reports,
        results,
        kubernetes,
        load_wall,
        sync_wall,
        sync_cpu,
        peak_rss,
        steady_rss,
        exact,
        kubectl_wall,
        kubectl_cpu,
    })
}

/// Wall and CPU time of `kubectl get policyreports -A -o json > /dev/null`.
fn time_kubectl(cluster: &RealCluster) -> Result<(Duration, Duration)> {
    let before = children_cpu();
    let start = Instant::now();
    let status = Command::new(kubectl_binary())
        .arg("--kubeconfig")
        .arg(cluster.admin_kubeconfig())
        .args(["get", "policyreports", "-A", "-o", "json"])
        .stdout(Stdio::null())
        .status()
        .context("running kubectl")?;
    let wall = start.elapsed();
    if !status.success() {
        bail!("kubectl get policyreports failed: {status}");
    }
    Ok((wall, children_cpu().saturating_sub(before)))
}

impl RealResult {
    /// The Markdown table; `fake` is the fake-server row of the same size, if
    /// it ran.
    pub fn table(&self, fake: Option<&crate::run::SizeResult>) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "### Real kube-apiserver {} and etcd: {} reports, {} results (loaded in {:.1} s)\n",
            self.kubernetes,
            self.reports,
            self.results,
            self.load_wall.as_secs_f64()
        );
        let _ = writeln!(
            t,
            "| measure | exporter, real server | exporter, fake server | `kubectl get policyreports -A -o json` |\n|---|---|---|---|"
        );
        let f = |v: Option<String>| v.unwrap_or_else(|| "not run".into());
        let _ = writeln!(
            t,
            "| start → /readyz (kubectl: wall) | {:.2} s | {} | {:.2} s |",
            self.sync_wall.as_secs_f64(),
            f(fake.map(|r| format!("{:.2} s", r.sync_wall.as_secs_f64()))),
            self.kubectl_wall.as_secs_f64()
        );
        let _ = writeln!(
            t,
            "| CPU to get there | {:.2} s | {} | {:.2} s |",
            self.sync_cpu.as_secs_f64(),
            f(fake.map(|r| format!("{:.2} s", r.sync_cpu.as_secs_f64()))),
            self.kubectl_cpu.as_secs_f64()
        );
        let _ = writeln!(
            t,
            "| peak RSS (VmHWM) | {:.1} MiB | {} | |",
            mib(self.peak_rss),
            f(fake.map(|r| format!("{:.1} MiB", mib(r.peak_rss))))
        );
        let _ = writeln!(
            t,
            "| steady RSS | {:.1} MiB | {} | |",
            mib(self.steady_rss),
            f(fake.map(|r| format!("{:.1} MiB", mib(r.steady_rss))))
        );
        let _ = writeln!(
            t,
            "| counts equal the generator's | {} | {} | |",
            if self.exact { "yes" } else { "NO" },
            f(fake.map(|r| if r.exact { "yes".into() } else { "NO".into() }))
        );
        t
    }
}
