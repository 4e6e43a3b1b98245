//! `serve` against the project's fake Kubernetes API server: the real binary
//! talks real HTTP (discovery, paged lists, watches) to a server whose
//! contents and faults the test controls.

mod common;

use std::time::Duration;

use common::{Exporter, Metrics, render_family, repo};
use fake_apiserver::{FakeApiServer, ResourceDef};
use serde::Deserialize;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(20);
const FOLLOW: Duration = Duration::from_secs(2);

fn def(kind: &str) -> ResourceDef {
    match kind {
        "PolicyReport" => {
            ResourceDef::new("wgpolicyk8s.io", "v1alpha2", kind, "policyreports", true)
        }
        "ClusterPolicyReport" => ResourceDef::new(
            "wgpolicyk8s.io",
            "v1alpha2",
            kind,
            "clusterpolicyreports",
            false,
        ),
        "Report" => ResourceDef::new("openreports.io", "v1alpha1", kind, "reports", true),
        "ClusterReport" => {
            ResourceDef::new("openreports.io", "v1alpha1", kind, "clusterreports", false)
        }
        other => panic!("not a report kind: {other}"),
    }
}

/// A fake cluster and the runtime it runs on, plus a kubeconfig for it.
struct Cluster {
    rt: tokio::runtime::Runtime,
    server: FakeApiServer,
    _dir: tempfile::TempDir,
    kubeconfig: String,
}

impl Cluster {
    fn start(kinds: &[&str]) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt
            .block_on(FakeApiServer::start())
            .expect("fake API server");
        for k in kinds {
            server.serve(def(k));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        server.write_kubeconfig(&path).expect("kubeconfig");
        Cluster {
            rt,
            server,
            kubeconfig: path.display().to_string(),
            _dir: dir,
        }
    }

    fn exporter(&self, args: &[&str]) -> Exporter {
        Exporter::serve(args, &[("KUBECONFIG", &self.kubeconfig)])
    }

    fn apply(&self, object: Value) {
        let kind = object["kind"].as_str().expect("kind").to_owned();
        self.server.apply(&def(&kind), object);
    }

    fn delete(&self, kind: &str, namespace: Option<&str>, name: &str) {
        assert!(
            self.server.delete(&def(kind), namespace, name),
            "{kind} {name} existed"
        );
    }

    /// Load every report from the example files into the server.
    fn load_examples(&self) -> usize {
        let mut n = 0;
        for entry in walkdir::WalkDir::new(repo().join("examples/reports")) {
            let entry = entry.expect("walk");
            if !entry.file_type().is_file() {
                continue;
            }
            let bytes = std::fs::read(entry.path()).expect("read example");
            for doc in serde_yaml_ng::Deserializer::from_slice(&bytes) {
                let v = Value::deserialize(doc).expect("example parses");
                let items = match v["kind"].as_str() {
                    Some(k) if k.ends_with("List") => {
                        v["items"].as_array().cloned().unwrap_or_default()
                    }
                    _ => vec![v],
                };
                for item in items {
                    self.apply(item);
                    n += 1;
                }
            }
        }
        n
    }
}

fn report(ns: &str, name: &str, results: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": ns},
        "scope": {"kind": "Pod", "name": name, "namespace": ns},
        "results": results.iter().map(|(p, r)| json!({"policy": p, "result": r, "source": "kyverno"})).collect::<Vec<_>>(),
    })
}

fn series(ns: &str, policy: &str, result: &str) -> [(&'static str, String); 6] {
    [
        ("namespace", ns.into()),
        ("policy", policy.into()),
        ("category", String::new()),
        ("severity", String::new()),
        ("source", "kyverno".into()),
        ("result", result.into()),
    ]
}

fn value(m: &Metrics, ns: &str, policy: &str, result: &str) -> Option<f64> {
    let s = series(ns, policy, result);
    let labels: Vec<(&str, &str)> = s.iter().map(|(k, v)| (*k, v.as_str())).collect();
    m.value("policyreport_results", &labels)
}

#[test]
fn initial_sync_serves_exact_values_then_follows_changes() {
    let cluster = Cluster::start(&[
        "PolicyReport",
        "ClusterPolicyReport",
        "Report",
        "ClusterReport",
    ]);
    let objects = cluster.load_examples();
    assert_eq!(objects, 16, "reports in examples/reports");
    // Hold the first list request so readiness can be observed before sync.
    cluster.server.hang_next(1);
    let e = cluster.exporter(&["--page-size", "3"]);
    let (status, body) = e.get("/readyz");
    assert_eq!(status, 503, "not ready while a list is pending");
    assert!(
        body.contains("policyreports.wgpolicyk8s.io") || body.contains("reports"),
        "{body}"
    );
    cluster.server.release_hangs();
    e.wait_ready(READY);

    // The same reports through the API give the same numbers as files mode.
    let m = e.metrics();
    let expected = std::fs::read_to_string(repo().join("tests/crosscheck/expected-examples.txt"))
        .expect("expected");
    let expected = render_family(
        "policyreport_results",
        &Metrics::parse(&expected).family("policyreport_results"),
    );
    assert_eq!(m.render_results(), expected);
    assert_eq!(m.sum("policyreport_exporter_objects"), objects as f64);
    for kind in [
        "policyreports.wgpolicyk8s.io",
        "clusterpolicyreports.wgpolicyk8s.io",
        "reports.openreports.io",
        "clusterreports.openreports.io",
    ] {
        assert_eq!(
            m.value("policyreport_exporter_synced", &[("resource", kind)]),
            Some(1.0),
            "{kind}"
        );
    }
    let paged = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.query.contains("continue="))
        .count();
    assert!(paged > 0, "the initial list was paged");

    // Create, modify, delete: metrics follow.
    cluster.apply(report("t", "r1", &[("p", "fail"), ("p", "fail")]));
    e.wait_for("created report", FOLLOW, |m| {
        value(m, "t", "p", "fail") == Some(2.0)
    });
    cluster.apply(report("t", "r1", &[("p", "fail"), ("p", "pass")]));
    e.wait_for("modified report", FOLLOW, |m| {
        value(m, "t", "p", "fail") == Some(1.0) && value(m, "t", "p", "pass") == Some(1.0)
    });
    cluster.delete("PolicyReport", Some("t"), "r1");
    e.wait_for("deleted report", FOLLOW, |m| {
        value(m, "t", "p", "fail").is_none() && value(m, "t", "p", "pass").is_none()
    });
    let m = e.metrics();
    assert_eq!(m.render_results(), expected, "back to the starting state");
}

#[test]
fn reports_deleted_while_the_watch_was_down_vanish_after_a_410_relist() {
    let cluster = Cluster::start(&["PolicyReport", "ClusterPolicyReport"]);
    for i in 0..5 {
        cluster.apply(report("a", &format!("r{i}"), &[("p", "fail")]));
    }
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    e.wait_for("initial", FOLLOW, |m| {
        value(m, "a", "p", "fail") == Some(5.0)
    });

    // Take the server away, delete and change reports, and forget history so
    // the watch must get 410 Gone and relist.
    cluster.rt.block_on(cluster.server.stop());
    cluster.delete("PolicyReport", Some("a"), "r0");
    cluster.delete("PolicyReport", Some("a"), "r1");
    cluster.apply(report("a", "r2", &[("p", "pass")]));
    cluster.server.compact();
    cluster
        .rt
        .block_on(cluster.server.resume())
        .expect("resume");

    let m = e.wait_for("relist", Duration::from_secs(15), |m| {
        value(m, "a", "p", "fail") == Some(2.0) && value(m, "a", "p", "pass") == Some(1.0)
    });
    assert_eq!(
        m.value(
            "policyreport_exporter_objects",
            &[("resource", "policyreports.wgpolicyk8s.io")]
        ),
        Some(3.0)
    );
    assert!(
        m.sum("policyreport_exporter_watch_errors_total") >= 1.0,
        "the outage was counted"
    );
    let relisted = cluster
        .server
        .requests()
        .iter()
        .filter(|r| !r.query.contains("watch"))
        .count();
    assert!(relisted >= 1);
}

#[test]
fn the_watch_recovers_after_an_api_server_restart() {
    let cluster = Cluster::start(&["PolicyReport", "ClusterPolicyReport"]);
    cluster.apply(report("a", "r0", &[("p", "pass")]));
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    e.wait_for("initial", FOLLOW, |m| {
        value(m, "a", "p", "pass") == Some(1.0)
    });
    cluster
        .rt
        .block_on(cluster.server.restart())
        .expect("restart");
    cluster.apply(report("a", "r1", &[("p", "pass")]));
    e.wait_for("recovered", Duration::from_secs(15), |m| {
        value(m, "a", "p", "pass") == Some(2.0)
    });
    // Nothing is counted twice after the relist.
    let m = e.metrics();
    assert_eq!(m.sum("policyreport_results"), 2.0);
}

#[test]
fn openreports_not_served_is_not_watched_and_still_ready() {
    let cluster = Cluster::start(&["PolicyReport", "ClusterPolicyReport"]);
    cluster.apply(report("a", "r0", &[("p", "pass")]));
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    let m = e.metrics();
    let synced = m.family("policyreport_exporter_synced");
    let names: Vec<&str> = synced.keys().map(|l| l[0].1.as_str()).collect();
    assert_eq!(
        names,
        [
            "clusterpolicyreports.wgpolicyk8s.io",
            "policyreports.wgpolicyk8s.io"
        ]
    );
    assert!(
        cluster
            .server
            .requests()
            .iter()
            .all(|r| !r.path.contains("/apis/openreports.io/v1alpha1/"))
    );
    let logs = e.log_lines().join("\n");
    assert!(logs.contains("not served"), "what is not served is logged");
    assert!(logs.contains("reports.openreports.io"));
}

#[test]
fn watch_errors_are_counted_and_survived() {
    let cluster = Cluster::start(&["PolicyReport"]);
    cluster.apply(report("a", "r0", &[("p", "pass")]));
    cluster.server.fail_next(2, 500, None);
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    let m = e.wait_for("synced after errors", FOLLOW, |m| {
        value(m, "a", "p", "pass") == Some(1.0)
    });
    assert_eq!(
        m.value(
            "policyreport_exporter_watch_errors_total",
            &[("resource", "policyreports.wgpolicyk8s.io")]
        ),
        Some(2.0)
    );
    cluster.server.fail_next(1, 429, Some(1));
    cluster.server.drop_watches();
    cluster.apply(report("a", "r1", &[("p", "pass")]));
    e.wait_for("recovered from 429", Duration::from_secs(15), |m| {
        value(m, "a", "p", "pass") == Some(2.0)
    });
}

#[test]
fn invalid_reports_from_the_api_are_skipped_and_counted() {
    let cluster = Cluster::start(&["PolicyReport"]);
    cluster.apply(report("a", "good", &[("p", "pass")]));
    cluster.apply(report("a", "bad", &[("p", "maybe")]));
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    let m = e.metrics();
    assert_eq!(m.sum("policyreport_results"), 1.0);
    assert_eq!(
        m.value(
            "policyreport_exporter_invalid_objects_total",
            &[("resource", "policyreports.wgpolicyk8s.io")]
        ),
        Some(1.0)
    );
    // A valid report that turns invalid loses its contribution.
    cluster.apply(report("a", "good", &[("p", "pass"), ("q", "5")]));
    e.wait_for("now invalid", FOLLOW, |m| {
        m.sum("policyreport_results") == 0.0
    });
    let logs = e.log_lines().join("\n");
    assert!(
        logs.contains("\"name\":\"bad\"") && logs.contains("results[0].result"),
        "logged with name and field"
    );
}
