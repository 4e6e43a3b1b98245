//! One size of the fake-server run: the baselines, then the exporter's
//! initial sync, steady memory, scrapes and update phases.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::procfs::{self, mib};

use super::baselines::{time_floor, time_jq, time_list_fetch};
use super::perf::{Phase, maybe_perf};
use super::update::update_phase;
use super::{Options, SizeResult};
use crate::cluster::Cluster;
use crate::exporter::parse_results;
use crate::reportgen::{self, Spec};
use crate::stats;

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
