//! Fitting the setups users already run, through the real binary over real
//! HTTP on folders outside the repository (and the fake API server):
//! Policy Reporter's families (`--compat policy-reporter`), namespace
//! scoping, namespace labels for team routing, and gzip-compressed scrapes.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use policyreport_exporter::kind::Kind;
use policyreport_test_support::http::http_get_bytes;
use policyreport_test_support::metrics::{Metrics, render_family};
use serde_json::{Value, json};

use common::{Exporter, FakeCluster, copy_tree, namespace, repo};

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

/// Every family computed from objects, including the optional ones.
const FAMILIES: [&str; 9] = [
    "policyreport_results",
    "policyreport_control_resources",
    "policyreport_admission_blocked_total",
    "policyreport_admission_audit_failures_total",
    "policyreport_policy_info",
    "policyreport_policy_namespace_mode",
    "policyreport_namespace_info",
    "policy_report_result",
    // Last: only cluster-scoped results, which no namespace pattern removes.
    "cluster_policy_report_result",
];

/// The Kyverno fixtures (reports, policies with namespace overrides, audit
/// and blocked admission Events, Namespaces) and the compat fixtures, in a
/// folder outside the repository.
fn scoping_fixtures(dir: &Path) {
    copy_tree(
        &repo().join("tests/crosscheck/kyverno"),
        &dir.join("kyverno"),
    );
    std::fs::create_dir_all(dir.join("compat")).expect("mkdir");
    compat_fixtures(&dir.join("compat"));
}

/// One family's samples: sorted labels → value.
type Samples = BTreeMap<Vec<(String, String)>, f64>;

fn samples(m: &Metrics) -> BTreeMap<&'static str, Samples> {
    FAMILIES.iter().map(|f| (*f, m.family(f))).collect()
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn namespace_scoping_removes_exactly_the_excluded_namespaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    scoping_fixtures(dir.path());
    let files = dir.path().display().to_string();
    let common_args = [
        "--files",
        files.as_str(),
        "--compat",
        "policy-reporter",
        "--namespace-labels",
        "team,tier",
    ];
    let all = Exporter::serve(&common_args, &[]);
    all.wait_ready(READY);
    let everything = samples(&all.metrics());
    // prod-* and dev and staging are in; prod-us is excluded again; shop,
    // sandbox and prod (of the compat fixtures) are not included.
    let mut args = common_args.to_vec();
    args.extend(["--namespace-include", "prod-*,dev,staging"]);
    let scoped = Exporter::serve(
        &args,
        &[("POLICYREPORT_EXPORTER_NAMESPACE_EXCLUDE", "prod-us")],
    );
    scoped.wait_ready(READY);
    let got = samples(&scoped.metrics());
    let kept = |ns: &str| ["", "prod-eu", "dev", "staging"].contains(&ns);
    let mut removed: BTreeMap<&str, usize> = BTreeMap::new();
    for (family, all_samples) in &everything {
        let want: BTreeMap<_, _> = all_samples
            .iter()
            .filter(|(l, _)| {
                let in_scope = label(l, "namespace").is_none_or(kept);
                // A namespaced policy belongs to its namespace.
                let policy_in_scope = label(l, "policy")
                    .and_then(|p| p.split_once('/'))
                    .is_none_or(|(ns, _)| kept(ns));
                let keep = in_scope && policy_in_scope;
                if !keep {
                    *removed.entry(family).or_default() += 1;
                }
                keep
            })
            .map(|(l, v)| (l.clone(), *v))
            .collect();
        assert_eq!(
            render_family(family, &got[family]),
            render_family(family, &want),
            "{family}"
        );
    }
    // The test bites: each family with namespaces lost samples.
    for family in &FAMILIES[..8] {
        assert!(
            removed.get(family).copied().unwrap_or(0) > 0,
            "{family} had nothing to remove: {removed:?}"
        );
    }
    let m = scoped.metrics();
    assert_eq!(
        m.value(
            "policyreport_namespace_info",
            &[
                ("namespace", "prod-eu"),
                ("label_team", "shop"),
                ("label_tier", "prod")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.family("policyreport_namespace_info").len(),
        2,
        "prod-eu and dev"
    );

    // An empty pattern removes the cluster-scoped reports, not the
    // cluster-scoped policies.
    let mut args = common_args.to_vec();
    args.extend(["--namespace-exclude", ",prod-us"]);
    let no_cluster = Exporter::serve(&args, &[]);
    no_cluster.wait_ready(READY);
    let m = no_cluster.metrics();
    assert!(m.family("cluster_policy_report_result").is_empty());
    assert!(
        !m.family("policyreport_results")
            .keys()
            .any(|l| label(l, "namespace") == Some("")),
        "no cluster-scoped results"
    );
    assert_eq!(
        m.family("policyreport_policy_info").len(),
        everything["policyreport_policy_info"].len(),
        "every policy stays (none is in prod-us)"
    );
    assert!(
        !m.family("policyreport_results")
            .keys()
            .any(|l| label(l, "namespace") == Some("prod-us"))
    );

    // A bad glob stops the service with a clear message.
    let out = Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"))
        .args(["serve", "--files", &files, "--namespace-exclude", "team-["])
        .output()
        .expect("run the exporter");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("namespace pattern \"team-[\""), "{err}");
}

fn summary_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"))
        .arg("summary")
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("run summary");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "summary JSON: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn summary_takes_the_same_namespace_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("tests/crosscheck/kyverno"), dir.path());
    let files = dir.path().display().to_string();
    let all = summary_json(&["--files", &files]);
    let scoped = summary_json(&["--files", &files, "--namespace-exclude", "prod-*"]);
    let rows = |v: &Value| -> BTreeMap<String, Value> {
        v["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|r| (r["namespace"].as_str().unwrap_or("?").to_owned(), r.clone()))
            .collect()
    };
    let (all_rows, scoped_rows) = (rows(&all), rows(&scoped));
    assert!(all_rows.contains_key("prod-eu") && all_rows.contains_key("prod-us"));
    let mut want = all_rows.clone();
    want.retain(|ns, _| !ns.starts_with("prod-"));
    assert_eq!(scoped_rows, want);
    let sum = |rows: &BTreeMap<String, Value>, k: &str| -> u64 {
        rows.values().map(|r| r[k].as_u64().unwrap_or(0)).sum()
    };
    for k in ["pass", "fail", "error"] {
        assert_eq!(scoped["overall"][k].as_u64(), Some(sum(&want, k)), "{k}");
    }
    assert!(
        scoped["overall"]["fail"].as_u64() < all["overall"]["fail"].as_u64(),
        "prod-* failures are gone"
    );
}

#[test]
fn namespace_info_from_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("tests/crosscheck/kyverno"), dir.path());
    let files = dir.path().display().to_string();
    let e = Exporter::serve(
        &[
            "--files",
            &files,
            "--namespace-labels",
            "team,tier,kubernetes.io/metadata.name",
        ],
        &[],
    );
    e.wait_ready(READY);
    let want = r#"policyreport_namespace_info{label_kubernetes_io_metadata_name="",label_team="",label_tier="",namespace="sandbox"} 1
policyreport_namespace_info{label_kubernetes_io_metadata_name="dev",label_team="",label_tier="dev",namespace="dev"} 1
policyreport_namespace_info{label_kubernetes_io_metadata_name="prod-eu",label_team="shop",label_tier="prod",namespace="prod-eu"} 1
policyreport_namespace_info{label_kubernetes_io_metadata_name="prod-us",label_team="pay",label_tier="prod",namespace="prod-us"} 1
policyreport_namespace_info{label_kubernetes_io_metadata_name="shop",label_team="shop",label_tier="prod",namespace="shop"} 1
"#;
    assert_eq!(render(&e.metrics(), &["policyreport_namespace_info"]), want);
    let (_, _, body) = e.get_with("/metrics", &[]).expect("GET");
    assert!(body.contains(
        "\npolicyreport_namespace_info{namespace=\"dev\",label_team=\"\",label_tier=\"dev\",label_kubernetes_io_metadata_name=\"dev\"} 1\n"
    ), "labels in the order given");
    // Without the flag, no such family.
    let plain = Exporter::serve(&["--files", &files], &[]);
    plain.wait_ready(READY);
    assert!(
        plain
            .metrics()
            .family("policyreport_namespace_info")
            .is_empty()
    );
}

#[test]
fn namespace_info_through_the_api_server() {
    let cluster = FakeCluster::start(&[Kind::Namespace]);
    cluster.apply(namespace(
        "payments",
        json!({"team": "pay", "owner": "ann"}),
    ));
    cluster.apply(namespace("web", json!({"team": "shop"})));
    cluster.apply(namespace("kube-system", json!({"team": "platform"})));
    let e = cluster.exporter(&[
        "--namespace-labels",
        "team,owner",
        "--namespace-exclude",
        "kube-*",
    ]);
    e.wait_ready(READY);
    let info = |m: &Metrics| render(m, &["policyreport_namespace_info"]);
    assert_eq!(
        info(&e.metrics()),
        r#"policyreport_namespace_info{label_owner="",label_team="shop",namespace="web"} 1
policyreport_namespace_info{label_owner="ann",label_team="pay",namespace="payments"} 1
"#
    );
    // Label changes, new and deleted Namespaces follow the watch.
    cluster.apply(namespace(
        "web",
        json!({"team": "storefront", "owner": "bo"}),
    ));
    cluster.apply(namespace("batch", json!({})));
    assert!(
        cluster.delete(Kind::Namespace, None, "payments"),
        "payments existed"
    );
    let want = r#"policyreport_namespace_info{label_owner="",label_team="",namespace="batch"} 1
policyreport_namespace_info{label_owner="bo",label_team="storefront",namespace="web"} 1
"#;
    let m = e.wait_for("the Namespace changes", Duration::from_secs(5), |m| {
        info(m) == want
    });
    assert_eq!(info(&m), want);
}
