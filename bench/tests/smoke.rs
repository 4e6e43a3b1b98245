//! Keeps the benchmark from rotting: the whole pipeline at a tiny scale.
//! Not a timed test: it only checks that every stage runs and that the
//! numbers it produces are sane (counts exact, updates all visible).

use std::time::Duration;

use policyreport_bench::exporter::{Build, exporter_binary};
use policyreport_bench::memory::{self, MemoryOptions};
use policyreport_bench::run::{self, Options};
use policyreport_bench::soak::{SoakOptions, run_soak};

fn options() -> Options {
    let bin = exporter_binary(Build::Reuse).expect("the exporter binary");
    let mut o = Options::new(bin);
    o.sizes = vec![20];
    o.scrapes = 50;
    o.update_secs = 1.0;
    o.max_phase = false;
    // Slow enough that the 4×R-update cycle (R ≈ 10 reports) cannot wrap
    // between two progress polls.
    o.paced_rate = 200.0;
    o.poll_every = Duration::from_millis(2);
    o.settle = Duration::from_millis(200);
    o.files_reports = 20;
    o.per_file = 7;
    o
}

#[test]
fn pipeline_at_tiny_scale() {
    let o = options();
    let r = run::run_size(&o, 20).expect("run at 20 reports");
    assert_eq!(r.reports, 20);
    assert!(r.results > 20, "results: {}", r.results);
    assert!(r.exact, "exporter counts equal the generator's");
    assert_eq!(r.exporter_total, r.results);
    assert!(r.series > 0);
    assert!(r.sync_wall > Duration::ZERO && r.sync_wall < Duration::from_secs(20));
    assert!(r.peak_rss > 0 && r.steady_rss > 0);
    assert!(r.scrape_bytes > 100);
    assert!(r.scrape_p50 <= r.scrape_p99 && r.scrape_p99 < Duration::from_secs(1));
    let c = r.compressed.as_ref().expect("compressed scrapes measured");
    assert!(c.same_text, "the gzip answer decodes to the plain one");
    assert!(c.gzip_bytes > 0 && c.gzip_bytes < c.plain_bytes, "{c:?}");
    assert!(r.floor_cpu > Duration::ZERO);
    assert!(r.list_fetch > Duration::ZERO && r.list_fetch < r.sync_wall * 10);
    let u = r.paced.as_ref().expect("paced update phase");
    assert!(u.written > 50, "updates written: {}", u.written);
    assert_eq!(u.visible, u.written, "every update became visible: {u:?}");
    assert_eq!(u.anomalies, 0, "counters always matched a prefix: {u:?}");
    assert!(u.p99 < Duration::from_secs(5), "{u:?}");
    let table = run::table(&r);
    assert!(
        table.contains("| initial sync, start → /readyz |"),
        "{table}"
    );

    let f = run::run_files(&o, 20).expect("files mode at 20 reports");
    assert_eq!(f.files, 3);
    assert!(f.json.exact, "JSON files mode counts equal the generator's");
    assert!(f.yaml.exact, "YAML files mode counts equal the generator's");
    assert!(
        f.floor_cpu > Duration::ZERO,
        "the floor is timed in nanoseconds"
    );
    // The exporter's CPU is read from /proc in clock ticks (10 ms), which a
    // read of 20 reports may not reach: bounded, not required above zero.
    assert!(f.json.cpu < Duration::from_secs(5), "{:?}", f.json.cpu);
    let table = run::files_table(&f);
    assert!(table.contains("| JSON: CPU at /readyz"), "{table}");
    assert!(table.contains("| YAML: peak RSS"), "{table}");
    for (yaml, format) in [(false, "json"), (true, "yaml")] {
        let l = run::run_large_file(&o, 20, yaml).expect("large-file row at 20 reports");
        assert!(l.sync.exact && l.bytes > 1000, "{l:?}");
        let table = run::large_file_table(&l);
        assert!(table.contains("| peak RSS reading it"), "{table}");
        assert!(
            table.contains(&format!("`kubectl get -o {format}` List")),
            "{table}"
        );
    }
}

#[test]
fn soak_at_tiny_scale() {
    let bin = exporter_binary(Build::Reuse).expect("the exporter binary");
    let opts = SoakOptions {
        reports: 20,
        events: 3_000,
        relist_every: 500,
        burst: 5,
        rate: 1_500.0,
        settle: Duration::from_millis(200),
        converge_timeout: Duration::from_secs(15),
        ..SoakOptions::new(bin)
    };
    let r = run_soak(&opts).expect("soak");
    assert_eq!(r.events, 3_000);
    assert!(r.creates > 0 && r.updates > 0 && r.deletes > 0, "{r:?}");
    assert!(r.relists_forced >= 1, "{r:?}");
    assert!(
        r.relists_observed as u64 >= r.relists_forced,
        "the exporter relisted after each compaction (it needs the API server to answer \
         410 Expired for a compacted resourceVersion): {r:?}"
    );
    assert!(
        r.exact && r.objects_exact,
        "final counts equal a from-scratch count of the server's objects: {}",
        r.diff
    );
}

#[test]
fn memory_rows_at_tiny_scale() {
    let bin = exporter_binary(Build::Reuse).expect("the exporter binary");
    let opts = MemoryOptions {
        reports: vec![20],
        events: vec![30],
        cluster: Some((15, 10)),
        settle: Duration::from_millis(200),
        timeout: Duration::from_secs(60),
        ..MemoryOptions::new(bin, 1)
    };
    let r = memory::run(&opts).expect("memory rows");
    assert_eq!(r.rows.len(), 3);
    assert_eq!((r.rows[2].load.pods, r.rows[2].load.events), (15, 10));
    assert!(
        r.rows.iter().all(|row| row.exact),
        "counts exact after the sync and the forced relist: {r:?}"
    );
    assert!(r.baseline.steady_rss > 0 && r.baseline.relist_peak_rss >= r.baseline.steady_rss);
    let table = r.table();
    assert!(table.contains("| empty cluster (baseline) |"), "{table}");
    assert!(table.contains("| 30 live admission Events |"), "{table}");
    assert!(
        table.contains(" Pods, ") && table.contains(" + 10 live admission Events |"),
        "{table}"
    );
    assert!(table.contains("| predicted "), "{table}");
    // The targets are defined at 200k: smaller rows carry no verdict.
    let events_row = table
        .lines()
        .find(|l| l.starts_with("| 30 live admission Events"))
        .unwrap_or("");
    assert!(
        events_row.ends_with("| ≤ 128 per Event at 200,000 |  |"),
        "{events_row}"
    );
    assert!(
        table.contains("counts exact after each sync and relist: yes"),
        "{table}"
    );
}
