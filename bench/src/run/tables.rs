//! The Markdown tables of the runs, their header, and the targets each
//! verdict is checked against.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use policyreport_test_support::procfs::{Machine, mib};

use super::baselines::jq_version;
use super::{FilesResult, LargeFileResult, Options, SizeResult};

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
