//! The end-to-end benchmark: for each size, load generated reports into the
//! fake API server, measure the real exporter process (initial sync, memory,
//! scrapes, updates) and the baselines on the same bytes, and print a table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::http::HttpConn;
use policyreport_test_support::metrics::sum_results_with;
use policyreport_test_support::procfs::{self, Machine, children_cpu, mib};

use crate::cluster::Cluster;
use crate::exporter::parse_results;
use crate::reportgen::{self, GenKind, LIBRARY, ReportSet, Spec};
use crate::stats;

/// Which phase to record with `perf record`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// The initial sync (start → /readyz).
    Sync,
    /// The 1000 scrapes.
    Scrape,
    /// The update phases.
    Update,
}

/// `perf record` settings.
#[derive(Clone, Debug)]
pub struct Perf {
    /// The phases to record (one file each).
    pub phases: Vec<Phase>,
    /// Where to write `perf-<size>-<phase>.data`.
    pub out: PathBuf,
    /// Sampling frequency.
    pub freq: u32,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Report counts to run at.
    pub sizes: Vec<usize>,
    /// Generator seed.
    pub seed: u64,
    /// Number of timed `/metrics` scrapes.
    pub scrapes: usize,
    /// Length of each update phase.
    pub update_secs: f64,
    /// Run the unpaced (as fast as possible) update phase.
    pub max_phase: bool,
    /// Offered rate of the paced update phase (0 disables it).
    pub paced_rate: f64,
    /// Wait after /readyz before reading the steady RSS.
    pub settle: Duration,
    /// Run the jq baseline (if jq is installed).
    pub jq: bool,
    /// Reports of the `--files` scale mode (0 disables it).
    pub files_reports: usize,
    /// Reports per YAML file in the files mode.
    pub per_file: usize,
    /// The exporter binary.
    pub exporter: PathBuf,
    /// Optional profiling of one phase.
    pub perf: Option<Perf>,
    /// Watch history the fake server keeps (events).
    pub history_limit: usize,
    /// Interval between progress polls of /metrics in update phases.
    pub poll_every: Duration,
    /// Page size passed to the exporter.
    pub page_size: u32,
}

impl Options {
    /// Defaults for `run` with the given exporter binary.
    pub fn new(exporter: PathBuf) -> Options {
        Options {
            sizes: vec![1_000, 10_000, 50_000],
            seed: 1,
            scrapes: 1000,
            update_secs: 5.0,
            max_phase: true,
            paced_rate: 20_000.0,
            settle: Duration::from_secs(3),
            jq: true,
            files_reports: 20_000,
            per_file: 100,
            exporter,
            perf: None,
            history_limit: 100_000,
            poll_every: Duration::from_millis(5),
            page_size: 500,
        }
    }
}

/// The result of one update phase.
#[derive(Clone, Debug, Default)]
pub struct UpdateResult {
    /// The offered rate, or `None` for as fast as possible.
    pub offered: Option<f64>,
    /// Updates written to the fake server.
    pub written: usize,
    /// Updates the exporter showed by the end (all of them unless it fell behind).
    pub visible: usize,
    /// Writer rate (updates/s over the write window).
    pub writer_rate: f64,
    /// Updates visible per second, from the first write to the last update
    /// becoming visible.
    pub applied_rate: f64,
    /// Update → visible latency percentiles.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Worst case.
    pub max: Duration,
    /// Number of progress polls.
    pub polls: usize,
    /// Polls whose counters matched no prefix of the writes (should be 0).
    pub anomalies: usize,
    /// The two policies whose results were flipped.
    pub policies: (String, String),
    /// Reports cycled through.
    pub targets: usize,
    /// CPU of the exporter process during the phase (until all visible).
    pub exporter_cpu: Duration,
    /// CPU of this process (writer, fake server, poller) during the phase.
    pub bench_cpu: Duration,
}

/// Measurements at one size.
#[derive(Clone, Debug, Default)]
pub struct SizeResult {
    /// Reports.
    pub reports: usize,
    /// Results.
    pub results: u64,
    /// Namespaces.
    pub namespaces: usize,
    /// Size of the List JSON.
    pub list_bytes: usize,
    /// Series the exporter serves.
    pub series: usize,
    /// Whether the exporter's counts equal the generator's after the sync.
    pub exact: bool,
    /// The exporter's policyreport_results sum after the sync.
    pub exporter_total: u64,
    /// Start → /readyz.
    pub sync_wall: Duration,
    /// CPU of the exporter process at /readyz.
    pub sync_cpu: Duration,
    /// VmHWM at /readyz.
    pub peak_rss: u64,
    /// VmRSS after settling.
    pub steady_rss: u64,
    /// Scrape latency p50.
    pub scrape_p50: Duration,
    /// Scrape latency p99.
    pub scrape_p99: Duration,
    /// /metrics size.
    pub scrape_bytes: usize,
    /// gzip-compressed scrapes against plain ones.
    pub compressed: Option<crate::compressed::CompressedScrapes>,
    /// Floor CPU.
    pub floor_cpu: Duration,
    /// Wall time to fetch every list page from the fake server without
    /// decoding (what any client waits for this server).
    pub list_fetch: Duration,
    /// jq wall time.
    pub jq_wall: Option<Duration>,
    /// jq CPU time.
    pub jq_cpu: Option<Duration>,
    /// Unpaced update phase.
    pub max: Option<UpdateResult>,
    /// Paced update phase.
    pub paced: Option<UpdateResult>,
    /// VmHWM at the end (after updates).
    pub final_hwm: u64,
}

/// One exporter start on a folder or file: time to /readyz and what it cost.
#[derive(Clone, Debug, Default)]
pub struct FilesSync {
    /// Start → /readyz.
    pub wall: Duration,
    /// CPU of the exporter process at /readyz.
    pub cpu: Duration,
    /// VmHWM at /readyz.
    pub peak_rss: u64,
    /// Whether the exporter's counts equal the generator's.
    pub exact: bool,
}

/// Measurements of the files scale mode.
#[derive(Clone, Debug, Default)]
pub struct FilesResult {
    /// Reports.
    pub reports: usize,
    /// Results.
    pub results: u64,
    /// Files of each format (a `List` each).
    pub files: usize,
    /// Bytes of the `kubectl get -o json` files.
    pub json_bytes: u64,
    /// Bytes of the `kubectl get -o yaml` files.
    pub yaml_bytes: u64,
    /// The floor over the JSON files' bytes: best thread CPU of the runs.
    pub floor_cpu: Duration,
    /// The floor's wall time in the same run.
    pub floor_wall: Duration,
    /// jq over one List of the same reports (informative).
    pub jq_wall: Option<Duration>,
    /// The exporter on the JSON files.
    pub json: FilesSync,
    /// The exporter on the YAML files.
    pub yaml: FilesSync,
}

/// The large-file row: one `kubectl get -o json` or `-o yaml` List read
/// whole.
#[derive(Clone, Debug, Default)]
pub struct LargeFileResult {
    /// Whether the List is YAML (else JSON).
    pub yaml: bool,
    /// Reports in the List.
    pub reports: usize,
    /// Results.
    pub results: u64,
    /// The file's size.
    pub bytes: u64,
    /// The exporter reading it.
    pub sync: FilesSync,
}

/// Where the run happened.
pub fn header(opts: &Options) -> String {
    let machine = Machine::current();
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=10"])
        .current_dir(crate::exporter::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let jq = jq_version().unwrap_or_else(|| "not installed".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!(
        "machine: {machine} (load average at start: {load})\nexporter: {} (commit {commit})\njq: {jq}\nseed: {}\n",
        opts.exporter.display(),
        opts.seed
    )
}

fn jq_version() -> Option<String> {
    let out = Command::new("jq").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The jq program of the user's current method.
pub const JQ_PROGRAM: &str =
    "[.items[] | {namespace: .metadata.namespace, pass: .summary.pass, fail: .summary.fail}]";

/// Times jq over a List file: best wall time (and its CPU) of `runs`.
pub fn time_jq(list_file: &Path, runs: usize) -> Result<Option<(Duration, Duration)>> {
    if jq_version().is_none() {
        return Ok(None);
    }
    let mut best: Option<(Duration, Duration)> = None;
    for _ in 0..runs.max(1) {
        let cpu0 = children_cpu();
        let t = Instant::now();
        let status = Command::new("jq")
            .arg(JQ_PROGRAM)
            .arg(list_file)
            .stdout(Stdio::null())
            .status()
            .context("running jq")?;
        let wall = t.elapsed();
        let cpu = children_cpu().saturating_sub(cpu0);
        if !status.success() {
            bail!("jq failed on {}", list_file.display());
        }
        if best.is_none_or(|(w, _)| wall < w) {
            best = Some((wall, cpu));
        }
    }
    Ok(best)
}

/// The floor: best single-thread CPU time of decoding the List `runs` times.
pub fn time_floor(list: &[u8], expect_results: u64, runs: usize) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        let c0 = procfs::thread_cpu();
        let n = crate::floor::decode_list(list).context("floor decode")?;
        let c = procfs::thread_cpu().saturating_sub(c0);
        if n as u64 != expect_results {
            bail!("floor decoded {n} results, expected {expect_results}");
        }
        best = best.min(c);
    }
    Ok(best)
}

/// The floor over several files' bytes, one after the other on this
/// thread: best (CPU, wall) of `runs`, by CPU.
pub fn time_floor_files(
    files: &[Vec<u8>],
    expect_results: u64,
    runs: usize,
) -> Result<(Duration, Duration)> {
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..runs.max(1) {
        let c0 = procfs::thread_cpu();
        let t = Instant::now();
        let mut n = 0;
        for f in files {
            n += crate::floor::decode_list(f).context("floor decode")?;
        }
        let wall = t.elapsed();
        let c = procfs::thread_cpu().saturating_sub(c0);
        if n as u64 != expect_results {
            bail!("floor decoded {n} results, expected {expect_results}");
        }
        if c < best.0 {
            best = (c, wall);
        }
    }
    Ok(best)
}

/// Fetches every page of both report lists from the fake server over HTTP,
/// without decoding them: the part of a sync spent waiting for this server.
pub fn time_list_fetch(cluster: &Cluster, page: u32) -> Result<Duration> {
    let mut conn = HttpConn::connect(cluster.server.addr())?;
    let mut body = Vec::new();
    let start = Instant::now();
    for kind in [GenKind::PolicyReport, GenKind::ClusterPolicyReport] {
        let mut token = String::new();
        loop {
            let mut path = format!(
                "/apis/wgpolicyk8s.io/v1alpha2/{}?limit={page}",
                kind.plural()
            );
            if !token.is_empty() {
                path.push_str("&continue=");
                for b in token.bytes() {
                    if b.is_ascii_alphanumeric() {
                        path.push(b as char);
                    } else {
                        let _ = write!(path, "%{b:02X}");
                    }
                }
            }
            let status = conn.get_into(&path, &mut body)?;
            if status != 200 {
                bail!("GET {path}: {status}");
            }
            let head = String::from_utf8_lossy(&body[..body.len().min(4096)]);
            token = head
                .find("\"continue\":\"")
                .and_then(|i| {
                    let rest = &head[i + 12..];
                    rest.find('"').map(|e| rest[..e].to_owned())
                })
                .unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
    }
    Ok(start.elapsed())
}

/// A running `perf record`, stopped with SIGINT.
struct PerfRecord(std::process::Child);

impl PerfRecord {
    fn start(perf: &Perf, pid: u32, name: &str) -> Result<PerfRecord> {
        std::fs::create_dir_all(&perf.out)?;
        let out = perf.out.join(format!("{name}.data"));
        let child = Command::new("perf")
            .args([
                "record",
                "-F",
                &perf.freq.to_string(),
                "--call-graph",
                "dwarf,16384",
            ])
            .arg("-o")
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf record")?;
        // Give perf time to attach.
        std::thread::sleep(Duration::from_millis(300));
        eprintln!("perf: recording {} into {}", name, out.display());
        Ok(PerfRecord(child))
    }

    fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.0.wait();
    }
}

fn maybe_perf(opts: &Options, phase: Phase, pid: u32, size: usize) -> Result<Option<PerfRecord>> {
    match &opts.perf {
        Some(p) if p.phases.contains(&phase) => {
            let name = format!("perf-{size}-{phase:?}").to_lowercase();
            PerfRecord::start(p, pid, &name).map(Some)
        }
        _ => Ok(None),
    }
}

/// Runs every measurement at one size.
pub fn run_size(opts: &Options, reports: usize) -> Result<SizeResult> {
    let t0 = Instant::now();
    let mut set = reportgen::generate(&Spec::with_reports(reports, opts.seed));
    let results = set.total_results();
    let expected = set.expected();
    eprintln!(
        "[{reports}] generated {reports} reports, {results} results in {:.1?}",
        t0.elapsed()
    );
    let cluster = Cluster::start(opts.history_limit)?;
    cluster.load(&set.reports);
    let mut r = SizeResult {
        reports,
        results,
        namespaces: set.spec.namespaces + 1,
        ..SizeResult::default()
    };

    // Baselines first, on the bytes the server serves, while nothing else runs.
    {
        let list = cluster.list_json();
        r.list_bytes = list.len();
        let runs = if reports >= 20_000 { 2 } else { 3 };
        r.floor_cpu = time_floor(&list, results, runs)?;
        eprintln!(
            "[{reports}] floor {:.3}s CPU over {:.1} MiB",
            r.floor_cpu.as_secs_f64(),
            mib(list.len() as u64)
        );
        r.list_fetch = time_list_fetch(&cluster, opts.page_size)?;
        eprintln!(
            "[{reports}] fetching the list pages alone: {:.3}s",
            r.list_fetch.as_secs_f64()
        );
        if opts.jq {
            let dir = tempfile::tempdir()?;
            let file = dir.path().join("list.json");
            std::fs::write(&file, &list)?;
            drop(list);
            if let Some((wall, cpu)) = time_jq(&file, if reports >= 20_000 { 1 } else { 3 })? {
                r.jq_wall = Some(wall);
                r.jq_cpu = Some(cpu);
                eprintln!("[{reports}] jq {:.3}s wall", wall.as_secs_f64());
            }
        }
    }

    // Initial sync.
    let kubeconfig = cluster.kubeconfig();
    let page_size = opts.page_size.to_string();
    let exporter = Exporter::spawn(
        &opts.exporter,
        &["--page-size", &page_size],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap_or_default())],
    )?;
    let pid = exporter.pid;
    let perf = maybe_perf(opts, Phase::Sync, pid, reports)?;
    r.sync_wall = exporter.wait_ready(Duration::from_secs(900), Duration::from_millis(5))?;
    r.sync_cpu = procfs::cpu_time(pid).unwrap_or_default();
    r.peak_rss = procfs::hwm(pid).unwrap_or_default();
    if let Some(p) = perf {
        p.stop();
    }
    eprintln!(
        "[{reports}] ready after {:.3}s, {:.3}s CPU, peak {:.1} MiB",
        r.sync_wall.as_secs_f64(),
        r.sync_cpu.as_secs_f64(),
        mib(r.peak_rss)
    );
    let text = exporter.metrics()?;
    let seen = parse_results(&text);
    r.exporter_total = reportgen::total(&seen);
    r.series = seen.len();
    r.exact = seen == expected;
    if !r.exact {
        eprintln!(
            "[{reports}] WARNING: exporter counts differ from the generator's: {}",
            crate::soak::diff_summary(&expected, &seen)
        );
    }

    std::thread::sleep(opts.settle);
    r.steady_rss = procfs::rss(pid).unwrap_or_default();

    // Scrapes.
    let perf = maybe_perf(opts, Phase::Scrape, pid, reports)?;
    let mut conn = exporter.connect()?;
    for _ in 0..5 {
        conn.get("/metrics")?;
    }
    let mut lat = Vec::with_capacity(opts.scrapes);
    for _ in 0..opts.scrapes {
        let t = Instant::now();
        let (status, body) = conn.get("/metrics")?;
        lat.push(t.elapsed());
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        r.scrape_bytes = body.len();
    }
    if let Some(p) = perf {
        p.stop();
    }
    r.scrape_p50 = stats::percentile(&mut lat, 0.50);
    r.scrape_p99 = stats::percentile(&mut lat, 0.99);
    let c = crate::compressed::measure(exporter.addr, opts.scrapes)?;
    eprintln!("[{reports}] compressed scrapes: {c:?}");
    r.compressed = Some(c);

    // Updates.
    let perf = maybe_perf(opts, Phase::Update, pid, reports)?;
    if opts.max_phase && opts.update_secs > 0.0 {
        let u = update_phase(opts, &cluster, &exporter, &mut set, None)?;
        eprintln!("[{reports}] updates (max): {u:?}");
        r.max = Some(u);
    }
    if opts.paced_rate > 0.0 && opts.update_secs > 0.0 {
        let u = update_phase(opts, &cluster, &exporter, &mut set, Some(opts.paced_rate))?;
        eprintln!("[{reports}] updates (paced): {u:?}");
        r.paced = Some(u);
    }
    if let Some(p) = perf {
        p.stop();
    }
    r.final_hwm = procfs::hwm(pid).unwrap_or_default();
    exporter.stop(Duration::from_secs(120));
    Ok(r)
}

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

/// Writes a report set as multi-document YAML files, `per_file` reports each.
/// Returns (files, bytes).
pub fn write_yaml_dir(set: &ReportSet, dir: &Path, per_file: usize) -> Result<(usize, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut files = 0;
    let mut bytes = 0;
    for (i, chunk) in set.reports.chunks(per_file.max(1)).enumerate() {
        let mut text = String::new();
        for r in chunk {
            text.push_str("---\n");
            text.push_str(&serde_yaml_ng::to_string(&r.value)?);
        }
        let path = dir.join(format!("reports-{i:05}.yaml"));
        std::fs::write(&path, &text)?;
        files += 1;
        bytes += text.len() as u64;
    }
    Ok((files, bytes))
}

/// Writes a report set as `kubectl get -o json` (`json`) or `-o yaml` files,
/// a `kind: List` of `per_file` reports each. Returns the files' bytes.
pub fn write_kubectl_dir(
    set: &ReportSet,
    dir: &Path,
    per_file: usize,
    json: bool,
) -> Result<Vec<Vec<u8>>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (i, chunk) in set.reports.chunks(per_file.max(1)).enumerate() {
        let list = reportgen::list(chunk.iter().map(|r| r.value.clone()).collect());
        let (bytes, ext) = if json {
            (crate::kubectl::json(&list), "json")
        } else {
            (crate::kubectl::yaml(&list).into_bytes(), "yaml")
        };
        std::fs::write(dir.join(format!("reports-{i:05}.{ext}")), &bytes)?;
        out.push(bytes);
    }
    Ok(out)
}

/// Starts the exporter on a folder or file and measures it until /readyz.
fn files_sync(opts: &Options, path: &Path, expected: &reportgen::Counts) -> Result<FilesSync> {
    let exporter = Exporter::spawn(
        &opts.exporter,
        &[
            "--files",
            path.to_str().unwrap_or_default(),
            "--max-file-size",
            "4Gi",
        ],
        &[],
    )?;
    let wall = exporter.wait_ready(Duration::from_secs(900), Duration::from_millis(5))?;
    let cpu = procfs::cpu_time(exporter.pid).unwrap_or_default();
    let peak_rss = procfs::hwm(exporter.pid).unwrap_or_default();
    let exact = parse_results(&exporter.metrics()?) == *expected;
    exporter.stop(Duration::from_secs(120));
    Ok(FilesSync {
        wall,
        cpu,
        peak_rss,
        exact,
    })
}

/// The `--files` scale mode: the same reports as `kubectl get -o json` and
/// `kubectl get -o yaml` files (a `List` of `per_file` reports each); the
/// exporter's time to /readyz on each folder, against the floor over the
/// JSON files' bytes (and jq over one List, for information).
pub fn run_files(opts: &Options, reports: usize) -> Result<FilesResult> {
    let set = reportgen::generate(&Spec::with_reports(reports, opts.seed));
    let expected = set.expected();
    let dir = tempfile::tempdir()?;
    let mut r = FilesResult {
        reports,
        results: set.total_results(),
        ..FilesResult::default()
    };
    let json_dir = dir.path().join("json");
    let json = write_kubectl_dir(&set, &json_dir, opts.per_file, true)?;
    r.files = json.len();
    r.json_bytes = json.iter().map(|f| f.len() as u64).sum();
    (r.floor_cpu, r.floor_wall) = time_floor_files(&json, r.results, 3)?;
    drop(json);
    if opts.jq {
        let list_file = dir.path().join("list.json");
        std::fs::write(&list_file, crate::kubectl::json(&set.to_list()))?;
        if let Some((wall, _)) = time_jq(&list_file, if reports >= 20_000 { 1 } else { 3 })? {
            r.jq_wall = Some(wall);
        }
        std::fs::remove_file(&list_file)?;
    }
    r.json = files_sync(opts, &json_dir, &expected)?;
    std::fs::remove_dir_all(&json_dir)?;
    let yaml_dir = dir.path().join("yaml");
    let yaml = write_kubectl_dir(&set, &yaml_dir, opts.per_file, false)?;
    r.yaml_bytes = yaml.iter().map(|f| f.len() as u64).sum();
    drop(yaml);
    r.yaml = files_sync(opts, &yaml_dir, &expected)?;
    eprintln!("[files {reports}] {r:?}");
    Ok(r)
}

/// The large-file row: `reports` reports as one `kubectl get -o json` (or,
/// with `yaml`, `-o yaml`) List file, read by the exporter with the default
/// limit.
pub fn run_large_file(opts: &Options, reports: usize, yaml: bool) -> Result<LargeFileResult> {
    let set = reportgen::generate(&Spec::with_reports(reports, opts.seed));
    let expected = set.expected();
    let dir = tempfile::tempdir()?;
    let (file, bytes) = match yaml {
        false => ("reports.json", crate::kubectl::json(&set.to_list())),
        true => (
            "reports.yaml",
            crate::kubectl::yaml(&set.to_list()).into_bytes(),
        ),
    };
    let file = dir.path().join(file);
    std::fs::write(&file, &bytes)?;
    let mut r = LargeFileResult {
        yaml,
        reports,
        results: set.total_results(),
        bytes: bytes.len() as u64,
        ..LargeFileResult::default()
    };
    drop((bytes, set));
    r.sync = files_sync(opts, &file, &expected)?;
    eprintln!(
        "[large {} file {reports}] {r:?}",
        if yaml { "YAML" } else { "JSON" }
    );
    Ok(r)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 0.1 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The benchmark's targets (defined for 50k reports on a 2-core machine).
pub mod targets {
    /// Exporter sync CPU ≤ this × floor.
    pub const CPU_VS_FLOOR: f64 = 1.5;
    /// jq wall / exporter time to /readyz ≥ this.
    pub const SPEEDUP_VS_JQ: f64 = 20.0;
    /// Peak RSS during sync.
    pub const PEAK_RSS_MIB: f64 = 150.0;
    /// Steady RSS.
    pub const STEADY_RSS_MIB: f64 = 64.0;
    /// /metrics p99 in ms.
    pub const SCRAPE_P99_MS: f64 = 5.0;
    /// Sustained updates/s.
    pub const UPDATES_PER_SEC: f64 = 20_000.0;
    /// Update → visible p99 in ms.
    pub const VISIBLE_P99_MS: f64 = 100.0;
    /// Files mode, `kubectl get -o json` files: exporter CPU ≤
    /// this × the floor's CPU on the same bytes.
    pub const FILES_JSON_CPU_VS_FLOOR: f64 = 1.5;
    /// Files mode, JSON: exporter wall time ≤ this × the floor's.
    pub const FILES_JSON_WALL_VS_FLOOR: f64 = 1.0;
    /// Files mode, `kubectl get -o yaml` files: exporter CPU ≤ this × its
    /// CPU on the same reports as JSON.
    pub const FILES_YAML_CPU_VS_JSON: f64 = 3.0;
    /// Reading one large List file (JSON, and YAML alike): peak
    /// RSS ≤ the file's size plus this.
    pub const LARGE_FILE_RSS_OVER_SIZE_MIB: f64 = 100.0;
}

/// One size's table (Markdown).
pub fn table(r: &SizeResult) -> String {
    use targets::*;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "### {} reports: {} results, {} namespaces, List JSON {:.1} MiB, {} series\n",
        thousands(r.reports as u64),
        thousands(r.results),
        r.namespaces,
        mib(r.list_bytes as u64),
        thousands(r.series as u64)
    );
    let _ = writeln!(
        t,
        "| measure | exporter | baseline | ratio | target (50k) | verdict |\n|---|---|---|---|---|---|"
    );
    let jq = match r.jq_wall {
        Some(j) => {
            let speedup = j.as_secs_f64() / r.sync_wall.as_secs_f64().max(1e-9);
            (
                format!("jq {}", secs(j)),
                format!("{speedup:.2}× faster than jq"),
                verdict(speedup >= SPEEDUP_VS_JQ),
            )
        }
        None => ("jq n/a".into(), "".into(), "n/a"),
    };
    let _ = writeln!(
        t,
        "| initial sync, start → /readyz | {} | {} | {} | ≥ {SPEEDUP_VS_JQ}× faster than jq | {} |",
        secs(r.sync_wall),
        jq.0,
        jq.1,
        jq.2
    );
    let _ = writeln!(
        t,
        "| of which the fake API server alone (all list pages fetched, not decoded) | {} | | {:.0}% of the sync wall time | | |",
        secs(r.list_fetch),
        r.list_fetch.as_secs_f64() / r.sync_wall.as_secs_f64().max(1e-9) * 100.0
    );
    let cpu_ratio = r.sync_cpu.as_secs_f64() / r.floor_cpu.as_secs_f64().max(1e-9);
    let _ = writeln!(
        t,
        "| initial sync CPU (exporter process) | {} | floor {} | {cpu_ratio:.2}× floor | ≤ {CPU_VS_FLOOR}× floor | {} |",
        secs(r.sync_cpu),
        secs(r.floor_cpu),
        verdict(cpu_ratio <= CPU_VS_FLOOR)
    );
    let _ = writeln!(
        t,
        "| peak RSS during sync (VmHWM) | {:.1} MiB | | | ≤ {PEAK_RSS_MIB} MiB | {} |",
        mib(r.peak_rss),
        verdict(mib(r.peak_rss) <= PEAK_RSS_MIB)
    );
    let _ = writeln!(
        t,
        "| steady RSS (VmRSS after settling) | {:.1} MiB | | | ≤ {STEADY_RSS_MIB} MiB | {} |",
        mib(r.steady_rss),
        verdict(mib(r.steady_rss) <= STEADY_RSS_MIB)
    );
    let _ = writeln!(
        t,
        "| /metrics latency p50 / p99 | {} / {} | | | p99 ≤ {SCRAPE_P99_MS} ms | {} |",
        ms(r.scrape_p50),
        ms(r.scrape_p99),
        verdict(r.scrape_p99.as_secs_f64() * 1000.0 <= SCRAPE_P99_MS)
    );
    let _ = writeln!(
        t,
        "| /metrics response size | {:.1} KiB | | | | |",
        r.scrape_bytes as f64 / 1024.0
    );
    if let Some(c) = &r.compressed {
        t.push_str(&crate::compressed::rows(c));
    }
    if let Some(u) = &r.max {
        let _ = writeln!(
            t,
            "| updates applied/s, as fast as possible (writer {:.0}/s) | {:.0}/s ({}/{} visible) | | | ≥ {UPDATES_PER_SEC} /s | {} |",
            u.writer_rate,
            u.applied_rate,
            u.visible,
            u.written,
            if u.applied_rate >= UPDATES_PER_SEC && u.visible == u.written {
                "PASS"
            } else if u.visible == u.written && u.applied_rate >= 0.97 * u.writer_rate {
                "NOT SHOWN (writer-bound; the exporter kept up)"
            } else {
                "FAIL"
            }
        );
        let _ = writeln!(
            t,
            "| update → visible p50 / p99 / max, as fast as possible | {} / {} / {} | | | | |",
            ms(u.p50),
            ms(u.p99),
            ms(u.max)
        );
        let per = u.exporter_cpu.as_secs_f64() / u.written.max(1) as f64;
        let _ = writeln!(
            t,
            "| exporter CPU per update (bench side: {:.0} µs) | {:.1} µs | | ⇒ {:.0} updates/s per core | | |",
            u.bench_cpu.as_secs_f64() / u.written.max(1) as f64 * 1e6,
            per * 1e6,
            1.0 / per.max(1e-12)
        );
    }
    if let Some(u) = &r.paced {
        let offered = u.offered.unwrap_or_default();
        let _ = writeln!(
            t,
            "| update → visible p50 / p99, {offered:.0}/s offered (writer {:.0}/s, applied {:.0}/s) | {} / {} | | | p99 ≤ {VISIBLE_P99_MS} ms | {} |",
            u.writer_rate,
            u.applied_rate,
            ms(u.p50),
            ms(u.p99),
            if u.p99.as_secs_f64() * 1000.0 > VISIBLE_P99_MS || u.visible != u.written {
                "FAIL"
            } else if u.writer_rate < offered * 0.95 {
                "NOT SHOWN (writer-bound)"
            } else {
                "PASS"
            }
        );
    }
    let _ = writeln!(
        t,
        "| counts exact after sync (exporter sum vs generator) | {} vs {} | | | equal | {} |",
        thousands(r.exporter_total),
        thousands(r.results),
        verdict(r.exact)
    );
    let _ = writeln!(
        t,
        "| peak RSS at the end (after updates) | {:.1} MiB | | | | |",
        mib(r.final_hwm)
    );
    t
}

/// The files-mode table (Markdown).
pub fn files_table(r: &FilesResult) -> String {
    use targets::*;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "### --files: {} reports ({} results) in {} files: `kubectl get -o json` {:.1} MiB, `-o yaml` {:.1} MiB\n",
        thousands(r.reports as u64),
        thousands(r.results),
        r.files,
        mib(r.json_bytes),
        mib(r.yaml_bytes)
    );
    let _ = writeln!(
        t,
        "| measure | exporter | baseline | ratio | target | verdict |\n|---|---|---|---|---|---|"
    );
    let cpu_ratio = r.json.cpu.as_secs_f64() / r.floor_cpu.as_secs_f64().max(1e-9);
    let _ = writeln!(
        t,
        "| JSON: CPU at /readyz (exporter process) | {} | floor {} | {cpu_ratio:.2}× floor | ≤ {FILES_JSON_CPU_VS_FLOOR}× floor | {} |",
        secs(r.json.cpu),
        secs(r.floor_cpu),
        verdict(cpu_ratio <= FILES_JSON_CPU_VS_FLOOR)
    );
    let wall_ratio = r.json.wall.as_secs_f64() / r.floor_wall.as_secs_f64().max(1e-9);
    let _ = writeln!(
        t,
        "| JSON: start → /readyz | {} | floor {} | {wall_ratio:.2}× floor | ≤ {FILES_JSON_WALL_VS_FLOOR}× floor | {} |",
        secs(r.json.wall),
        secs(r.floor_wall),
        verdict(wall_ratio <= FILES_JSON_WALL_VS_FLOOR)
    );
    let _ = writeln!(
        t,
        "| JSON: peak RSS (VmHWM) | {:.1} MiB | | | | |",
        mib(r.json.peak_rss)
    );
    let yaml_ratio = r.yaml.cpu.as_secs_f64() / r.json.cpu.as_secs_f64().max(1e-9);
    let _ = writeln!(
        t,
        "| YAML: CPU at /readyz | {} | exporter on JSON {} | {yaml_ratio:.2}× JSON | ≤ {FILES_YAML_CPU_VS_JSON}× JSON | {} |",
        secs(r.yaml.cpu),
        secs(r.json.cpu),
        verdict(yaml_ratio <= FILES_YAML_CPU_VS_JSON)
    );
    let _ = writeln!(
        t,
        "| YAML: peak RSS (VmHWM) | {:.1} MiB | | | ≤ {PEAK_RSS_MIB} MiB | {} |",
        mib(r.yaml.peak_rss),
        verdict(mib(r.yaml.peak_rss) <= PEAK_RSS_MIB)
    );
    let _ = writeln!(
        t,
        "| YAML: start → /readyz | {} | | {:.2}× the JSON wall time | | |",
        secs(r.yaml.wall),
        r.yaml.wall.as_secs_f64() / r.json.wall.as_secs_f64().max(1e-9)
    );
    match r.jq_wall {
        Some(j) => {
            let _ = writeln!(
                t,
                "| jq over one List of the same reports (informative) | | jq {} | JSON {:.1}× faster, YAML {:.1}× faster than jq | | |",
                secs(j),
                j.as_secs_f64() / r.json.wall.as_secs_f64().max(1e-9),
                j.as_secs_f64() / r.yaml.wall.as_secs_f64().max(1e-9)
            );
        }
        None => {
            let _ = writeln!(t, "| jq (informative) | | not installed | | | |");
        }
    }
    let _ = writeln!(
        t,
        "| counts exact (JSON, YAML) | {}, {} | | | equal | {} |",
        if r.json.exact { "yes" } else { "no" },
        if r.yaml.exact { "yes" } else { "no" },
        verdict(r.json.exact && r.yaml.exact)
    );
    t
}

/// The large-file row (Markdown).
pub fn large_file_table(r: &LargeFileResult) -> String {
    use targets::*;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "### One large file: {} reports ({} results) as one `kubectl get -o {}` List, {:.1} MiB\n",
        thousands(r.reports as u64),
        thousands(r.results),
        if r.yaml { "yaml" } else { "json" },
        mib(r.bytes)
    );
    let _ = writeln!(
        t,
        "| measure | exporter | target | verdict |\n|---|---|---|---|"
    );
    let limit = mib(r.bytes) + LARGE_FILE_RSS_OVER_SIZE_MIB;
    let _ = writeln!(
        t,
        "| peak RSS reading it (VmHWM at /readyz) | {:.1} MiB (file + {:.1} MiB) | ≤ file + {LARGE_FILE_RSS_OVER_SIZE_MIB} MiB ({limit:.1} MiB) | {} |",
        mib(r.sync.peak_rss),
        mib(r.sync.peak_rss) - mib(r.bytes),
        verdict(mib(r.sync.peak_rss) <= limit)
    );
    let _ = writeln!(
        t,
        "| start → /readyz (CPU) | {} ({}) | | |",
        secs(r.sync.wall),
        secs(r.sync.cpu)
    );
    let _ = writeln!(
        t,
        "| counts exact | {} | equal | {} |",
        if r.sync.exact { "yes" } else { "no" },
        verdict(r.sync.exact)
    );
    t
}
