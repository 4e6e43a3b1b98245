//! Fitting the setups users already run, through the real binary over real
//! HTTP on folders outside the repository: Policy Reporter's families
//! (`--compat policy-reporter`) and gzip-compressed scrapes.

mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use common::{Exporter, Metrics, http_get_bytes, render_family};

const READY: Duration = Duration::from_secs(20);

fn write_list(dir: &Path, file: &str, items: Vec<Value>) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(dir.join(file), list.to_string()).expect("write fixture");
}

/// Reports in every layout Policy Reporter reads: per-resource and
/// policy-wide wgpolicyk8s.io reports, openreports reports with a top-level
/// source, cluster-scoped reports, empty categories and results without a
/// source.
fn compat_fixtures(dir: &Path) {
    let bp = "Best Practices";
    write_list(
        dir,
        "reports.json",
        vec![
            // Per-resource: two results of p1 (two rules) count 2.
            json!({
                "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
                "metadata": {"name": "uid-pod-a", "namespace": "prod"},
                "scope": {"apiVersion": "v1", "kind": "Pod", "name": "a", "namespace": "prod"},
                "results": [
                    {"policy": "p1", "rule": "r1", "result": "fail", "category": bp,
                     "severity": "medium", "source": "kyverno"},
                    {"policy": "p1", "rule": "r2", "result": "fail", "category": bp,
                     "severity": "medium", "source": "kyverno"},
                    {"policy": "p2", "rule": "r", "result": "pass", "source": "kyverno"},
                ],
            }),
            // Policy-wide: a result counts once, not once per listed
            // resource; a result without a source takes the first result's
            // (Policy Reporter's report source for wgpolicyk8s.io reports).
            json!({
                "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
                "metadata": {"name": "cpol-p2", "namespace": "prod"},
                "results": [
                    {"policy": "p2", "rule": "r", "result": "pass", "source": "kyverno",
                     "resources": [{"kind": "Pod", "name": "a"}, {"kind": "Pod", "name": "b"},
                                   {"kind": "Deployment", "name": "d"}]},
                    {"policy": "p3", "rule": "r", "result": "skip", "category": "",
                     "resources": [{"kind": "Pod", "name": "a"}]},
                ],
            }),
            // openreports: the top-level source when a result has none.
            json!({
                "apiVersion": "openreports.io/v1alpha1", "kind": "Report",
                "metadata": {"name": "r1", "namespace": "dev"},
                "source": "kyverno",
                "scope": {"apiVersion": "v1", "kind": "Pod", "name": "x", "namespace": "dev"},
                "results": [
                    {"policy": "p1", "result": "warn", "category": bp, "severity": "low"},
                    {"policy": "img", "result": "fail", "source": "trivy", "severity": "critical"},
                ],
            }),
            json!({
                "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "ClusterPolicyReport",
                "metadata": {"name": "uid-ns-prod"},
                "scope": {"apiVersion": "v1", "kind": "Namespace", "name": "prod"},
                "results": [
                    {"policy": "ns-labels", "rule": "r", "result": "fail", "severity": "high",
                     "source": "kyverno"},
                    {"policy": "ns-labels", "rule": "r2", "result": "fail", "severity": "high",
                     "source": "kyverno"},
                ],
            }),
            json!({
                "apiVersion": "openreports.io/v1alpha1", "kind": "ClusterReport",
                "metadata": {"name": "c1"},
                "source": "kube-bench",
                "results": [{"policy": "cis-1.1", "result": "error", "category": "CIS"}],
            }),
        ],
    );
}

fn render(m: &Metrics, families: &[&str]) -> String {
    families
        .iter()
        .map(|f| render_family(f, &m.family(f)))
        .collect()
}

#[test]
fn policy_reporter_families_have_policy_reporters_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    compat_fixtures(dir.path());
    let files = dir.path().display().to_string();
    let e = Exporter::serve(&["--files", &files, "--compat", "policy-reporter"], &[]);
    e.wait_ready(READY);
    let m = e.metrics();
    let want = r#"policy_report_result{category="Best Practices",namespace="dev",policy="p1",severity="low",source="kyverno",status="warn"} 1
policy_report_result{category="Best Practices",namespace="prod",policy="p1",severity="medium",source="kyverno",status="fail"} 2
policy_report_result{category="Other",namespace="dev",policy="img",severity="critical",source="trivy",status="fail"} 1
policy_report_result{category="Other",namespace="prod",policy="p2",severity="",source="kyverno",status="pass"} 2
policy_report_result{category="Other",namespace="prod",policy="p3",severity="",source="kyverno",status="skip"} 1
cluster_policy_report_result{category="CIS",policy="cis-1.1",severity="",source="kube-bench",status="error"} 1
cluster_policy_report_result{category="Other",policy="ns-labels",severity="high",source="kyverno",status="fail"} 2
"#;
    assert_eq!(
        render(
            &m,
            &["policy_report_result", "cluster_policy_report_result"]
        ),
        want
    );
    // Our own family keeps our semantics beside it: once per subject, the
    // category as written, no source fallback beyond the report's.
    assert_eq!(
        m.value(
            "policyreport_results",
            &[
                ("namespace", "prod"),
                ("policy", "p2"),
                ("category", ""),
                ("severity", ""),
                ("source", "kyverno"),
                ("result", "pass"),
            ]
        ),
        Some(4.0)
    );
    assert_eq!(
        m.value(
            "policyreport_results",
            &[
                ("namespace", "prod"),
                ("policy", "p3"),
                ("category", ""),
                ("severity", ""),
                ("source", ""),
                ("result", "skip"),
            ]
        ),
        Some(1.0)
    );
    let (_, _, body) = e.get_with("/metrics", &[]).expect("GET /metrics");
    assert!(body.contains(
        "# HELP policy_report_result Gauge of Results by Policy\n# TYPE policy_report_result gauge\n"
    ));

    // Deleting a report takes its results away, and a series that drops
    // to zero disappears, as in Policy Reporter.
    write_list(dir.path(), "reports.json", vec![]);
    let m = e.wait_for("the reports to go", Duration::from_secs(5), |m| {
        m.family("policyreport_results").is_empty()
    });
    assert!(m.family("policy_report_result").is_empty());
    assert!(m.family("cluster_policy_report_result").is_empty());

    // Off by default, and through the environment.
    let plain = Exporter::serve(&["--files", &files], &[]);
    plain.wait_ready(READY);
    let (_, _, body) = plain.get_with("/metrics", &[]).expect("GET /metrics");
    assert!(!body.contains("policy_report_result"), "off by default");
    compat_fixtures(dir.path());
    let env = Exporter::serve(
        &["--files", &files],
        &[("POLICYREPORT_EXPORTER_COMPAT", "policy-reporter")],
    );
    env.wait_ready(READY);
    assert_eq!(
        render(
            &env.metrics(),
            &["policy_report_result", "cluster_policy_report_result"]
        ),
        want
    );
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The text without the `process_*` samples, which are read at each scrape.
fn without_process(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("process_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn gzip_scrapes_decode_to_the_plain_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    compat_fixtures(dir.path());
    let files = dir.path().display().to_string();
    let e = Exporter::serve(&["--files", &files, "--compat", "policy-reporter"], &[]);
    e.wait_ready(READY);
    let openmetrics = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    for accept in [None, Some(openmetrics)] {
        let mut base: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = accept {
            base.push(("Accept", a));
        }
        let (status, headers, plain) = http_get_bytes(e.addr, "/metrics", &base).expect("GET");
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-encoding"), None);
        let plain = String::from_utf8(plain).expect("UTF-8");
        assert!(plain.contains("\nprocess_resident_memory_bytes "));
        for encoding in [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, gzip;q=0.5, *;q=0",
            "identity;q=0.5, *",
        ] {
            let mut h = base.clone();
            h.push(("Accept-Encoding", encoding));
            let (status, headers, body) = http_get_bytes(e.addr, "/metrics", &h).expect("GET");
            assert_eq!(status, 200, "{encoding}");
            assert_eq!(
                header(&headers, "content-encoding"),
                Some("gzip"),
                "{encoding}"
            );
            assert_eq!(header(&headers, "vary"), Some("Accept-Encoding"));
            let mut text = String::new();
            // One gzip member: a reader that stops after the first one
            // must see the whole answer.
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .expect("a gzip answer");
            assert!(
                text.contains("\nprocess_resident_memory_bytes "),
                "{encoding}"
            );
            assert_eq!(
                without_process(&text),
                without_process(&plain),
                "{encoding}"
            );
            assert!(body.len() < plain.len(), "compressed: {}", body.len());
            if accept.is_some() {
                assert!(text.ends_with("# EOF\n"));
            }
        }
        for encoding in ["identity", "deflate", "gzip;q=0", "*;q=0", "gzip;q=0, *"] {
            let mut h = base.clone();
            h.push(("Accept-Encoding", encoding));
            let (status, headers, body) = http_get_bytes(e.addr, "/metrics", &h).expect("GET");
            assert_eq!(status, 200, "{encoding}");
            assert_eq!(header(&headers, "content-encoding"), None, "{encoding}");
            let text = String::from_utf8(body).expect("plain text");
            assert_eq!(
                without_process(&text),
                without_process(&plain),
                "{encoding}"
            );
        }
    }
}
