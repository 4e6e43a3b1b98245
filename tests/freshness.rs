//! Report freshness end to end: `serve --files` on a temporary folder,
//! over real HTTP, with exact values of the three freshness families, and
//! stale counts that follow the clock without any file changing.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use policyreport_test_support::metrics::Metrics;

use common::{Exporter, freshness_dir, timed_result, unix_now};

const READY: Duration = Duration::from_secs(20);
const REPORTS: &str = "policyreport_reports";
const STALE: &str = "policyreport_reports_stale";
const OLDEST: &str = "policyreport_report_oldest_refresh_timestamp_seconds";

/// A family's expected samples: (namespace, source) → value.
fn samples(rows: &[(&str, &str, f64)]) -> BTreeMap<Vec<(String, String)>, f64> {
    rows.iter()
        .map(|(ns, source, v)| {
            let labels = vec![
                ("namespace".to_owned(), ns.to_string()),
                ("source".to_owned(), source.to_string()),
            ];
            (labels, *v)
        })
        .collect()
}

#[test]
fn freshness_families_have_exact_values() {
    let (_dir, path, now) = freshness_dir("pass");
    let e = Exporter::serve(&["--files", &path], &[]);
    e.wait_ready(READY);
    let m = e.metrics();
    let (old, new) = ((now - 5 * 3600 - 600) as f64, (now - 600) as f64);
    // Per (namespace "", kyverno), (shop, kyverno) and (shop, trivy). Stale at
    // the default 3h: the 5h10m-old reports (the cluster one, `old` and
    // `mixed`'s kyverno results); never the untimed one.
    for (family, [cluster, kyverno, trivy]) in [
        (REPORTS, [1.0, 4.0, 1.0]),
        (STALE, [1.0, 2.0, 0.0]),
        (OLDEST, [old, old, new]),
    ] {
        let rows = [
            ("", "kyverno", cluster),
            ("shop", "kyverno", kyverno),
            ("shop", "trivy", trivy),
        ];
        assert_eq!(m.family(family), samples(&rows), "{family}");
    }
    // The same counts under a longer threshold, and no stale family at 0.
    drop(e);
    let e = Exporter::serve(&["--files", &path, "--stale-after", "6h"], &[]);
    e.wait_ready(READY);
    let m = e.metrics();
    assert_eq!(m.sum(STALE), 0.0);
    assert_eq!(m.sum(REPORTS), 6.0);
    drop(e);
    let e = Exporter::serve(
        &["--files", &path],
        &[("POLICYREPORT_EXPORTER_STALE_AFTER", "0")],
    );
    e.wait_ready(READY);
    let (_, body) = e.get("/metrics");
    assert!(!body.contains(STALE), "no stale family when off:\n{body}");
    assert_eq!(Metrics::parse(&body).family(OLDEST).len(), 3);
}

#[test]
fn stale_counts_follow_the_clock_without_a_file_changing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Refreshed 6 s in the future: fresh at start, stale 1 s after that.
    let at = unix_now() + 6;
    let report = format!(
        r#"{{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{{"name":"r","namespace":"shop"}},"results":[{}]}}"#,
        timed_result("p", "pass", "kyverno", Some(at))
    );
    std::fs::write(dir.path().join("r.json"), report).expect("write report");
    let path = dir.path().display().to_string();
    let e = Exporter::serve(&["--files", &path, "--stale-after", "1s"], &[]);
    e.wait_ready(READY);
    let stale = |m: &Metrics| m.value(STALE, &[("namespace", "shop"), ("source", "kyverno")]);
    assert_eq!(
        stale(&e.metrics()),
        Some(0.0),
        "fresh at start (a start slower than 6 s would see it stale already)"
    );
    let m = e.wait_for("the report to turn stale", Duration::from_secs(15), |m| {
        stale(m) == Some(1.0)
    });
    assert!(
        unix_now() > at + 1,
        "stale only once older than --stale-after"
    );
    assert_eq!(
        m.value(OLDEST, &[("namespace", "shop"), ("source", "kyverno")]),
        Some(at as f64)
    );
}
