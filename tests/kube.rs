//! `serve` against the project's fake Kubernetes API server: the real binary
//! talks real HTTP (discovery, paged lists, watches) to a server whose
//! contents and faults the test controls.

mod common;

use std::time::Duration;

use common::{Exporter, FakeCluster, repo};
use fake_apiserver::ResourceDef;
use policyreport_exporter::kind::Kind;
use policyreport_test_support::metrics::{Metrics, render_family};
use serde::Deserialize;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(20);
const FOLLOW: Duration = Duration::from_secs(2);

/// Apply every object of a repository folder to the server; how many.
fn load_dir(cluster: &FakeCluster, dir: &str) -> usize {
    let objects = objects_in(dir);
    let n = objects.len();
    objects.into_iter().for_each(|o| cluster.apply(o));
    n
}

/// Delete an object the server holds.
fn delete(cluster: &FakeCluster, kind: Kind, namespace: Option<&str>, name: &str) {
    assert!(
        cluster.delete(kind, namespace, name),
        "{} {name} existed",
        kind.kind()
    );
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
    let cluster = FakeCluster::start(&[
        Kind::PolicyReport,
        Kind::ClusterPolicyReport,
        Kind::Report,
        Kind::ClusterReport,
    ]);
    let objects = load_dir(&cluster, "examples/reports");
    assert_eq!(objects, 16, "reports in examples/reports");
    // Hold the first list request so readiness can be observed before sync.
    cluster.server.hang_next(1);
    let e = cluster.exporter(&["--page-size", "3"]);
    let start = std::time::Instant::now();
    while !cluster
        .server
        .requests()
        .iter()
        .any(|r| r.path.contains("/apis/") && r.param("limit").is_some())
    {
        assert!(start.elapsed() < READY, "no list request arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, body) = e.get("/readyz");
    assert_eq!(status, 503, "not ready while a list is pending");
    assert!(
        body.starts_with("not ready: waiting for the initial list of "),
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
    delete(&cluster, Kind::PolicyReport, Some("t"), "r1");
    e.wait_for("deleted report", FOLLOW, |m| {
        value(m, "t", "p", "fail").is_none() && value(m, "t", "p", "pass").is_none()
    });
    let m = e.metrics();
    assert_eq!(m.render_results(), expected, "back to the starting state");
}

#[test]
fn reports_deleted_while_the_watch_was_down_vanish_after_a_410_relist() {
    let cluster = FakeCluster::start(&[Kind::PolicyReport, Kind::ClusterPolicyReport]);
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
    cluster.stop();
    delete(&cluster, Kind::PolicyReport, Some("a"), "r0");
    delete(&cluster, Kind::PolicyReport, Some("a"), "r1");
    cluster.apply(report("a", "r2", &[("p", "pass")]));
    cluster.server.compact();
    cluster.resume();

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
    // A 410 is the protocol asking for a relist, not an error: it counts as
    // a relist. (Whether the outage itself also failed a request depends on
    // when the watch reconnected.)
    assert!(
        m.value(
            "policyreport_exporter_relists_total",
            &[
                ("resource", "policyreports.wgpolicyk8s.io"),
                ("reason", "expired")
            ]
        )
        .is_some_and(|n| n >= 1.0),
        "the expired watch was counted as a relist"
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
    let cluster = FakeCluster::start(&[Kind::PolicyReport, Kind::ClusterPolicyReport]);
    cluster.apply(report("a", "r0", &[("p", "pass")]));
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    e.wait_for("initial", FOLLOW, |m| {
        value(m, "a", "p", "pass") == Some(1.0)
    });
    cluster.restart();
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
    let cluster = FakeCluster::start(&[Kind::PolicyReport, Kind::ClusterPolicyReport]);
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
            "discovery",
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
    let logs = e.logs().join("\n");
    assert!(logs.contains("not served"), "what is not served is logged");
    assert!(logs.contains("reports.openreports.io"));
}

#[test]
fn watch_errors_are_counted_and_survived() {
    let cluster = FakeCluster::start(&[Kind::PolicyReport]);
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
    let cluster = FakeCluster::start(&[Kind::PolicyReport]);
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
    let logs = e.logs().join("\n");
    assert!(
        logs.contains("\"name\":\"bad\"") && logs.contains("results[0].result"),
        "logged with name and field"
    );
}

const ALL_KINDS: [Kind; 7] = [
    Kind::PolicyReport,
    Kind::ClusterPolicyReport,
    Kind::Report,
    Kind::ClusterReport,
    Kind::Event,
    Kind::ClusterPolicy,
    Kind::Policy,
];

/// The families computed from objects (not the exporter's self-observation).
fn data_families(m: &Metrics) -> String {
    [
        "policyreport_results",
        "policyreport_control_resources",
        "policyreport_admission_blocked_total",
        "policyreport_admission_audit_failures_total",
        "policyreport_policy_info",
        "policyreport_policy_namespace_mode",
    ]
    .iter()
    .map(|f| render_family(f, &m.family(f)))
    .collect()
}

#[test]
fn events_and_policies_through_the_api_equal_files_mode() {
    let cluster = FakeCluster::start(&ALL_KINDS);
    let n = load_dir(&cluster, "examples");
    assert!(n > 16, "reports, policies and events loaded: {n}");
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    let files = Exporter::serve(
        &["--files", &repo().join("examples").display().to_string()],
        &[],
    );
    files.wait_ready(READY);
    let (api, disk) = (e.metrics(), files.metrics());
    assert_eq!(data_families(&api), data_families(&disk));
    // And the numbers are the ones the examples describe.
    let blocked = api.family("policyreport_admission_blocked_total");
    let by_control = |c: &str| -> f64 {
        blocked
            .iter()
            .filter(|(l, _)| l.contains(&("control".into(), c.into())))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(by_control("resource-limits"), 5.0);
    assert_eq!(by_control("secure-context"), 1.0);
    let mode = |p: &str| -> Vec<String> {
        api.family("policyreport_policy_info")
            .keys()
            .filter(|l| l.contains(&("policy".into(), p.into())))
            .flat_map(|l| {
                l.iter()
                    .filter(|(k, _)| k == "mode")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    };
    assert_eq!(mode("disallow-privileged-containers"), ["enforce"]);
    assert_eq!(mode("require-requests-limits"), ["mixed"]);
    assert_eq!(mode("production/require-team-label"), ["audit"]);
    for r in [
        "events",
        "clusterpolicies.kyverno.io",
        "policies.kyverno.io",
    ] {
        assert_eq!(
            api.value("policyreport_exporter_synced", &[("resource", r)]),
            Some(1.0),
            "{r}"
        );
    }
    let events = cluster.server.requests();
    let event_lists: Vec<_> = events
        .iter()
        .filter(|r| r.path == "/api/v1/events")
        .collect();
    assert!(!event_lists.is_empty());
    assert!(
        event_lists
            .iter()
            .all(|r| r.param("fieldSelector").as_deref() == Some("reason=PolicyViolation")),
        "events are filtered on the server"
    );
}

fn blocked_event(name: &str, count: u64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "type": "Warning", "reason": "PolicyViolation", "action": "Resource Blocked",
        "reportingComponent": "kyverno-admission",
        "involvedObject": {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "name": "restrict-image-registries"},
        "related": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web"},
        "message": "Pod shop/web: [validate-registries] fail (blocked); unknown image registry",
        "series": {"count": count, "lastObservedTime": "2026-11-27T05:00:00.000000Z"},
    })
}

#[test]
fn blocked_event_counts_grow_and_bad_objects_are_skipped() {
    let cluster = FakeCluster::start(&[Kind::PolicyReport, Kind::Event, Kind::ClusterPolicy]);
    cluster.apply(blocked_event("web.1", 2));
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    let labels = [
        ("namespace", "shop"),
        ("policy", "restrict-image-registries"),
        ("rule", "validate-registries"),
        ("kind", "Pod"),
        ("control", "approved-registries"),
    ];
    let blocked = |m: &Metrics| m.value("policyreport_admission_blocked_total", &labels);
    e.wait_for("initial count", FOLLOW, |m| blocked(m) == Some(2.0));
    cluster.apply(blocked_event("web.1", 7));
    e.wait_for("series.count grew", FOLLOW, |m| blocked(m) == Some(7.0));
    // Expiry does not decrease the counter.
    delete(&cluster, Kind::Event, Some("default"), "web.1");
    cluster.apply(blocked_event("web.2", 1));
    e.wait_for("a new event adds", FOLLOW, |m| blocked(m) == Some(8.0));

    // Malformed objects: skipped, counted, logged, and the service goes on.
    let mut bad_event = blocked_event("bad", 1);
    bad_event["series"] = json!({"count": "lots"});
    cluster.apply(bad_event);
    cluster.apply(
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "odd"},
        "spec": {"validationFailureAction": "Block", "rules": [{"name": "r", "validate": {}}]}}),
    );
    let m = e.wait_for("invalid counted", FOLLOW, |m| {
        m.value(
            "policyreport_exporter_invalid_objects_total",
            &[("resource", "events")],
        ) == Some(1.0)
            && m.value(
                "policyreport_exporter_invalid_objects_total",
                &[("resource", "clusterpolicies.kyverno.io")],
            ) == Some(1.0)
    });
    assert_eq!(blocked(&m), Some(8.0));
    cluster.apply(
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "good"},
        "spec": {"validationFailureAction": "Enforce", "rules": [{"name": "r", "validate": {}}]}}),
    );
    e.wait_for("service still follows", FOLLOW, |m| {
        m.family("policyreport_policy_info").len() == 1
    });
    let logs = e.logs().join("\n");
    assert!(
        logs.contains("\"name\":\"odd\"") && logs.contains("unknown failure action"),
        "policy logged with reason"
    );
    assert!(logs.contains("\"name\":\"bad\""), "event logged by name");
}

#[test]
fn summary_lists_the_cluster_like_files() {
    let cluster = FakeCluster::start(&ALL_KINDS);
    load_dir(&cluster, "examples");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"))
            .arg("summary")
            .args(args)
            .args(["--output", "json", "--page-size", "4"])
            .env_remove("KUBECONFIG")
            .envs(env.iter().copied())
            .output()
            .expect("run summary");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    let from_api = run(&[], &[("KUBECONFIG", &cluster.kubeconfig)]);
    let mut from_files = run(
        &["--files", &repo().join("examples").display().to_string()],
        &[],
    );
    // Only the files read differ: the cluster is no file.
    assert_eq!(from_api["input"]["files_read"], json!(0));
    assert_eq!(from_files["input"]["files_read"], json!(8));
    from_files["input"]["files_read"] = json!(0);
    assert_eq!(from_api, from_files);
    // Progress goes to stderr, never stdout; a stuck list times out clearly.
    cluster.server.hang_next(100);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"))
        .args(["summary", "--timeout", "2"])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .expect("run summary");
    cluster.server.release_hangs();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out after 2s"), "{stderr}");
    assert!(stderr.contains("listing…"), "progress on stderr: {stderr}");
    assert!(out.stdout.is_empty());
}

/// The work list, the rollout verdicts and the excepted counts are the same
/// from the cluster as from the files the objects came from.
#[test]
fn summary_failing_from_the_cluster_equals_files() {
    let cluster = FakeCluster::start(&ALL_KINDS);
    load_dir(&cluster, "tests/worklist");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"))
            .arg("summary")
            .args(args)
            .args(["--output", "json", "--failing", "--page-size", "2"])
            .env_remove("KUBECONFIG")
            .envs(env.iter().copied())
            .output()
            .expect("run summary");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    let from_api = run(&[], &[("KUBECONFIG", &cluster.kubeconfig)]);
    let mut from_files = run(
        &[
            "--files",
            &repo().join("tests/worklist").display().to_string(),
        ],
        &[],
    );
    assert_eq!(from_files["input"]["files_read"], json!(5));
    from_files["input"]["files_read"] = json!(0);
    assert_eq!(from_api, from_files);
    assert_eq!(from_api["failing"].as_array().map(Vec::len), Some(8));
    assert_eq!(from_api["rollout"].as_array().map(Vec::len), Some(7));
}

/// Every object of a repository folder, from YAML documents and `*List`s.
fn objects_in(dir: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(repo().join(dir)).sort_by_file_name() {
        let entry = entry.expect("walk");
        let ext = entry
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("");
        if !entry.file_type().is_file() || !["yaml", "yml", "json"].contains(&ext) {
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read fixture");
        for doc in serde_yaml_ng::Deserializer::from_slice(&bytes) {
            let v = Value::deserialize(doc).expect("fixture parses");
            match v["kind"].as_str() {
                Some(k) if k.ends_with("List") => {
                    out.extend(v["items"].as_array().cloned().unwrap_or_default())
                }
                _ => out.push(v),
            }
        }
    }
    out
}

/// tests/crosscheck/kyverno through a cluster that serves the new kinds at
/// the versions discovery must find: PolicyReport only at
/// `wgpolicyk8s.io/v1beta1`; ClusterPolicyReport at `v1alpha2` and
/// `v1beta1` (only `v1alpha2` is read); the CEL kinds at whatever version
/// the server prefers, including one the exporter has never heard of
/// (`v1beta2`); Namespaces through the metadata API. Every family equals
/// files mode's hand-checked values, and a Namespace's label change moves
/// the mode in force there.
#[test]
fn kyverno_shapes_through_the_api_equal_files_mode() {
    // Served kind by kind below, at the versions under test.
    let cluster = FakeCluster::start(&[]);
    let server = &cluster.server;
    let at = |kind: &str, version: &str| {
        let k = Kind::ALL
            .into_iter()
            .find(|k| k.kind() == kind)
            .expect("a kind the exporter reads");
        ResourceDef::new(k.group(), version, k.kind(), k.plural(), k.namespaced())
    };
    let served = [
        at("PolicyReport", "v1beta1"),
        at("ClusterPolicyReport", "v1alpha2"),
        at("ClusterPolicyReport", "v1beta1"),
        at("Event", "v1"),
        at("Namespace", "v1"),
        at("ClusterPolicy", "v1"),
        at("Policy", "v1"),
        at("ValidatingPolicy", "v1"),
        at("ValidatingPolicy", "v1beta1"),
        at("NamespacedValidatingPolicy", "v1beta1"),
        at("ImageValidatingPolicy", "v1alpha1"),
        at("NamespacedImageValidatingPolicy", "v1beta2"),
    ];
    for d in &served {
        server.serve(d.clone());
    }
    // Where each kind's objects go: the version the exporter must read.
    let target = |kind: &str| -> ResourceDef {
        match kind {
            "ClusterPolicyReport" => at(kind, "v1alpha2"),
            "PolicyReport" => at(kind, "v1beta1"),
            _ => served
                .iter()
                .find(|d| d.kind == kind)
                .cloned()
                .unwrap_or_else(|| panic!("not served: {kind}")),
        }
    };
    let objects = objects_in("tests/crosscheck/kyverno");
    for o in &objects {
        server.apply(&target(o["kind"].as_str().expect("kind")), o.clone());
    }
    // A ClusterPolicyReport stored only at v1beta1, which must not be read
    // while v1alpha2 is served for that kind.
    server.apply(
        &at("ClusterPolicyReport", "v1beta1"),
        json!({"apiVersion": "wgpolicyk8s.io/v1beta1", "kind": "ClusterPolicyReport",
               "metadata": {"name": "shadow"},
               "results": [{"policy": "shadow-policy", "result": "fail"}]}),
    );
    let e = cluster.exporter(&[]);
    e.wait_ready(READY);
    let m = e.metrics();
    let want = Metrics::parse(
        &std::fs::read_to_string(repo().join("tests/crosscheck/expected-kyverno.txt"))
            .expect("expected"),
    );
    assert_eq!(data_families(&m), data_families(&want));
    assert_eq!(m.sum("policyreport_exporter_invalid_objects_total"), 0.0);
    assert_eq!(
        m.value(
            "policyreport_exporter_objects",
            &[("resource", "namespaces")]
        ),
        Some(5.0)
    );

    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert!(paths.contains(&"/apis/wgpolicyk8s.io/v1beta1/policyreports"));
    assert!(paths.contains(&"/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports"));
    assert!(!paths.contains(&"/apis/wgpolicyk8s.io/v1beta1/clusterpolicyreports"));
    assert!(paths.contains(&"/apis/policies.kyverno.io/v1/validatingpolicies"));
    assert!(paths.contains(&"/apis/policies.kyverno.io/v1beta2/namespacedimagevalidatingpolicies"));
    let namespace_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/api/v1/namespaces")
        .collect();
    assert!(
        namespace_requests
            .iter()
            .any(|r| r.param("watch").is_some()),
        "Namespaces are watched"
    );
    assert!(
        namespace_requests.iter().all(|r| r
            .accept
            .as_deref()
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))),
        "Namespaces are read as metadata only: {namespace_requests:?}"
    );

    // A label change reaches the namespaceSelector: prod-us leaves team=pay,
    // so disallow-privileged-containers' rule override no longer applies.
    let mode = |m: &Metrics, mode: &str| {
        m.value(
            "policyreport_policy_namespace_mode",
            &[
                ("policy", "disallow-privileged-containers"),
                ("namespace", "prod-us"),
                ("mode", mode),
            ],
        )
    };
    assert_eq!(mode(&m, "mixed"), Some(1.0));
    server.apply(
        &at("Namespace", "v1"),
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "prod-us", "labels": {"tier": "prod", "team": "shop"}}}),
    );
    let m = e.wait_for("the label change", FOLLOW, |m| {
        mode(m, "enforce") == Some(1.0)
    });
    assert_eq!(mode(&m, "mixed"), None);

    // Namespaces relist through the same loop as every other kind: with the
    // server away, prod-us gets its labels back and the history is
    // forgotten, so the Namespace watch gets 410 Gone, relists (counted) and
    // the relist carries the change.
    let expired = |m: &Metrics| {
        m.value(
            "policyreport_exporter_relists_total",
            &[("resource", "namespaces"), ("reason", "expired")],
        )
    };
    assert_eq!(expired(&m), Some(0.0), "no relist before the compaction");
    let prod_us = objects
        .iter()
        .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "prod-us")
        .expect("prod-us in the fixtures");
    cluster.stop();
    server.apply(&at("Namespace", "v1"), prod_us.clone());
    server.compact();
    cluster.resume();
    let m = e.wait_for("the Namespace relist", Duration::from_secs(15), |m| {
        mode(m, "mixed") == Some(1.0) && expired(m) >= Some(1.0)
    });
    assert_eq!(expired(&m), Some(1.0));
    assert_eq!(mode(&m, "enforce"), None);
}
