//! The exporter against a real kube-apiserver and etcd (`scripts/cluster`,
//! built from their Go modules), running with only the RBAC of `deploy/`.
//! Every scenario ends the same way: what the exporter serves equals the
//! independent Python count (`tests/crosscheck/crosscheck.py`) of what
//! `kubectl get -A -o json` returns from the same server at that moment.
//!
//! Each test starts its own control plane (about 15 s). They are `#[ignore]`d
//! in a plain `cargo test` (they need Go and take minutes); `scripts/test`
//! runs them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use policyreport_bench::exporter::{Build, exporter_binary, workspace_root};
use policyreport_bench::real::{Proxy, RealCluster, crosscheck, eventually, without_server_fields};
use policyreport_bench::reportgen::{self, Spec};
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::http::get_once;
use policyreport_test_support::metrics::sample_value;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(180);
const SETTLE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);

fn exporter(kubeconfig: &Path, args: &[&str]) -> Exporter {
    let bin = exporter_binary(Build::Reuse).expect("the exporter binary");
    let kc = kubeconfig.display().to_string();
    Exporter::spawn(&bin, args, &[("KUBECONFIG", kc.as_str())]).expect("exporter starts")
}

/// Waits until the exporter's families equal the Python count of what the
/// server holds; prints how long that took and returns the count's report.
fn settles(c: &RealCluster, e: &Exporter, what: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = std::time::Instant::now();
    let report = eventually(what, SETTLE, POLL, || {
        let snap = dir.path().join("snapshot");
        let _ = std::fs::remove_dir_all(&snap);
        c.snapshot(&snap).map_err(|e| e.to_string())?;
        let metrics = e.metrics().map_err(|e| e.to_string())?;
        crosscheck(&snap, &metrics)
    })
    .unwrap_or_else(|err| panic!("{err}\nexporter logs:\n{}", e.log_tail(30)));
    eprintln!(
        "{what}: exact within {:.1} s ({})",
        start.elapsed().as_secs_f64(),
        report.trim()
    );
    report
}

fn value(e: &Exporter, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = e.metrics().expect("metrics");
    sample_value(&text, name, labels).unwrap_or(0.0)
}

/// The objects of fixture files (Lists flattened), without the fields the
/// server sets, Namespaces first.
fn fixture_objects(paths: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for p in paths {
        let path = workspace_root().join(p);
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut f: Vec<PathBuf> = std::fs::read_dir(&path)
                .expect("fixture folder")
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x == "yaml" || x == "json" || x == "yml")
                })
                .collect();
            f.sort();
            f
        } else {
            vec![path]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).expect("fixture");
            let docs: Vec<Value> = if f.extension().is_some_and(|x| x == "json") {
                vec![serde_json::from_str(&text).expect("fixture JSON")]
            } else {
                serde_yaml_ng::Deserializer::from_str(&text)
                    .map(|d| serde::Deserialize::deserialize(d).expect("fixture YAML"))
                    .collect()
            };
            for d in docs {
                if d["kind"].as_str().is_some_and(|k| k.ends_with("List")) {
                    out.extend(d["items"].as_array().cloned().unwrap_or_default());
                } else if d.is_object() {
                    out.push(d);
                }
            }
        }
    }
    out.iter_mut().for_each(without_server_fields);
    out.sort_by_key(|o| o["kind"] != "Namespace");
    out
}

/// Result timestamps as a server holds them: integer seconds, with nanos.
fn whole_second_timestamps(o: &mut Value) {
    for r in o["results"].as_array_mut().into_iter().flatten() {
        if let Some(t) = r["timestamp"].as_object_mut() {
            let secs = t.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
            t.insert("seconds".into(), json!(secs as i64));
            t.entry("nanos").or_insert(json!(0));
        }
    }
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// Creates every namespace `objects` live in that is not created by them.
fn namespaces_for(c: &RealCluster, objects: &[Value]) {
    let defined: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let used: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .filter(|n| !defined.contains(n) && !matches!(*n, "default" | "kube-system"))
        .collect();
    for n in used {
        c.apply(&namespace(n, json!({}))).expect("namespace");
    }
}

/// Applies each object; returns the ones the server refused, with why.
fn apply_each(c: &RealCluster, objects: &[Value]) -> BTreeMap<String, String> {
    namespaces_for(c, objects);
    let mut refused = BTreeMap::new();
    for o in objects {
        if let Err(e) = c.apply(o) {
            let id = format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            refused.insert(id, format!("{e:#}"));
        }
    }
    refused
}

/// `n` generated reports in `namespaces` namespaces (plus one namespace
/// report per namespace), created in the server.
fn load_generated(c: &RealCluster, reports: usize, namespaces: usize, seed: u64) -> Vec<Value> {
    let spec = Spec {
        namespaces,
        ..Spec::with_reports(reports, seed)
    };
    let set = reportgen::generate(&spec);
    let mut objects: Vec<Value> = set.reports.into_iter().map(|r| r.value).collect();
    objects.iter_mut().for_each(without_server_fields);
    c.load(objects.clone(), 16).expect("reports created");
    objects
}

/// A generated report with its results' outcomes changed: an update that
/// moves counts between series.
fn changed(report: &Value, i: usize) -> Value {
    let mut r = report.clone();
    if let Some(results) = r["results"].as_array_mut() {
        for (j, res) in results.iter_mut().enumerate() {
            res["result"] = json!(if (i + j).is_multiple_of(3) {
                "fail"
            } else {
                "pass"
            });
        }
    }
    r
}

/// The ClusterRole as deploy/ renders it (from the cluster's folder).
fn cluster_role(c: &RealCluster) -> Value {
    let text = std::fs::read_to_string(c.dir().join("rbac.json")).expect("rbac.json");
    let list: Value = serde_json::from_str(&text).expect("rbac.json parses");
    list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|o| o["kind"] == "ClusterRole"))
        .cloned()
        .expect("a ClusterRole in deploy/")
}

/// (group, resource, verb) the role grants.
fn granted(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for g in rule["apiGroups"].as_array().into_iter().flatten() {
            for r in rule["resources"].as_array().into_iter().flatten() {
                for v in rule["verbs"].as_array().into_iter().flatten() {
                    out.insert((
                        g.as_str().unwrap_or_default().to_owned(),
                        r.as_str().unwrap_or_default().to_owned(),
                        v.as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

/// Objects of the fixtures that a real API server refuses, and why: shapes
/// that only a file can hold. Everything else in them is accepted.
const REFUSED_FIXTURES: [(&str, &str); 3] = [
    // events.k8s.io/v1 as a read through that API shows a core Event: the
    // deprecated* fields are set and eventTime is not, which a create refuses.
    (
        "Event default/require-requests-limits.187b1f93d4e5f607",
        "eventTime: Required value",
    ),
    // `count` written as a string: the file-mode decoder's lenient case.
    (
        "Event default/restrict-image-registries.187b1e7a9b0c1d2e",
        "Event.count of type int32",
    ),
    // `Block` is not an action the CRD admits (Kyverno's enum is Audit/Enforce).
    (
        "ClusterPolicy /disallow-proc-mount",
        "Unsupported value: \"Block\"",
    ),
];

/// Initial paged sync of 10k reports in 50 namespaces plus every policy kind,
/// both Event APIs and labelled Namespaces; then creates, updates and deletes
/// while watching; the RBAC of deploy/ is enough and no more.
#[test]
#[ignore = "needs Go and a real control plane: scripts/test runs it"]
fn sync_and_watch_every_kind_against_a_real_api_server() -> Result<()> {
    let c = RealCluster::start(&[])?;
    let fixtures = fixture_objects(&[
        "tests/crosscheck/kyverno/namespaces.yaml",
        "tests/crosscheck/kyverno/policies.yaml",
        "tests/crosscheck/kyverno/cel-policies.yaml",
        "tests/crosscheck/kyverno/events-1.12.yaml",
        "tests/crosscheck/kyverno/events-older.yaml",
        "tests/crosscheck/kyverno/reports.yaml",
        "tests/crosscheck/rollout",
        "tests/crosscheck/fixtures/openreports.yaml",
        "tests/crosscheck/fixtures/cluster-policy-report.yaml",
        "tests/crosscheck/fixtures/per-resource.yaml",
        "tests/crosscheck/fixtures/policy-wide.yaml",
    ]);
    let refused = apply_each(&c, &fixtures);
    let expected: BTreeSet<&str> = REFUSED_FIXTURES.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        refused.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected,
        "the server refused: {refused:#?}"
    );
    for (id, why) in REFUSED_FIXTURES {
        assert!(refused[id].contains(why), "{id}: {}", refused[id]);
    }
    let generated = load_generated(&c, 10_000, 50, 19);

    let e = exporter(&c.exporter_kubeconfig(), &["--page-size", "500"]);
    let ready = e.wait_ready(READY, POLL)?;
    settles(&c, &e, "initial sync");
    eprintln!("ready {:.1} s after start", ready.as_secs_f64());
    let held = value(
        &e,
        "policyreport_exporter_objects",
        &[("resource", "policyreports.wgpolicyk8s.io")],
    );
    let in_server = generated
        .iter()
        .filter(|r| r["kind"] == "PolicyReport")
        .count()
        + fixtures
            .iter()
            .filter(|o| o["kind"] == "PolicyReport" && o["apiVersion"] == "wgpolicyk8s.io/v1alpha2")
            .count();
    assert_eq!(held as usize, in_server, "PolicyReports held");

    // Paged: the initial list of PolicyReports took ceil(n / 500) requests,
    // all but the first with a continue token.
    let audit = c.audit()?;
    let pages = audit
        .iter()
        .filter(|a| a.verb == "list" && a.resource == "policyreports")
        .count();
    assert!(
        pages >= in_server.div_ceil(500),
        "paged list requests: {pages}"
    );
    let continued = audit
        .iter()
        .filter(|a| a.verb == "list" && a.resource == "policyreports")
        .filter(|a| a.uri.contains("limit=500") && a.uri.contains("continue="))
        .count();
    assert!(
        continued >= in_server.div_ceil(500) - 1,
        "continued pages: {continued}"
    );
    // The Events are filtered on the server.
    assert!(
        audit
            .iter()
            .filter(|a| a.resource == "events")
            .all(|a| a.uri.contains("fieldSelector=reason%3DPolicyViolation")),
        "every Event request carries the field selector"
    );
    // Discovery picks the version the server prefers for the CEL kinds.
    let group: Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/apis/policies.kyverno.io"])?)?;
    let preferred = group["preferredVersion"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(audit.iter().any(|a| {
        a.resource == "validatingpolicies"
            && a.uri
                .starts_with(&format!("/apis/policies.kyverno.io/{preferred}/"))
    }));

    // Creates, updates and deletes while watching; Namespace labels and a
    // policy's mode change; Events through both APIs.
    let reports: Vec<&Value> = generated
        .iter()
        .filter(|r| r["kind"] == "PolicyReport")
        .collect();
    for (i, r) in reports.iter().take(200).enumerate() {
        c.apply(&changed(r, i))?;
    }
    for r in reports.iter().skip(200).take(200) {
        c.delete(r)?;
    }
    load_generated(&c, 200, 5, 77);
    c.apply(&namespace("prod-eu", json!({"team": "pay", "tier": "dev"})))?;
    let mut policy = fixtures
        .iter()
        .find(|o| {
            o["kind"] == "ClusterPolicy" && o["metadata"]["name"] == "require-requests-limits"
        })
        .cloned()
        .context("require-requests-limits in the fixtures")?;
    policy["spec"]["validationFailureAction"] = json!("Enforce");
    c.apply(&policy)?;
    c.apply(&core_event("prod-us", "require-requests-limits", 4))?;
    c.apply(&events_k8s_io_event("dev", "disallow-host-path"))?;
    settles(&c, &e, "after creates, updates and deletes");

    // Every request was allowed, and every permission was used: the role is
    // enough and no more.
    let audit = c.audit()?;
    let denied: Vec<_> = audit.iter().filter(|a| a.code == 403).collect();
    assert!(denied.is_empty(), "forbidden requests: {denied:#?}");
    let used: BTreeSet<(String, String, String)> = audit
        .iter()
        .filter(|a| !a.resource.is_empty())
        .map(|a| (a.group.clone(), a.resource.clone(), a.verb.clone()))
        .collect();
    assert_eq!(
        used,
        granted(&cluster_role(&c)),
        "used permissions = granted ones"
    );
    assert!(e.stop(Duration::from_secs(10)), "clean exit on SIGTERM");
    Ok(())
}

/// A core v1 admission Event as Kyverno ≥ 1.12 writes it (one per occurrence).
fn core_event(ns: &str, policy: &str, n: u32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{policy}.real{n:012x}"), "namespace": "default"},
        "eventTime": "2026-12-01T10:00:00.000000Z",
        "type": "Warning", "reason": "PolicyViolation", "action": "Resource Blocked",
        "reportingComponent": "kyverno-admission",
        "reportingInstance": "kyverno-admission-kyverno-admission-controller-0",
        "involvedObject": {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "name": policy},
        "related": {"apiVersion": "v1", "kind": "Pod", "name": format!("pod-{n}"), "namespace": ns},
        "message": format!("Pod {ns}/pod-{n}: [validate-resources] fail (blocked); validation error: CPU and memory resource requests and limits are required.")
    })
}

/// An Event created through `events.k8s.io/v1`, read back through core v1.
fn events_k8s_io_event(ns: &str, policy: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": format!("{policy}.events-api"), "namespace": "default"},
        "eventTime": "2026-12-01T10:00:00.000000Z",
        "type": "Warning", "reason": "PolicyViolation", "action": "Resource Passed",
        "reportingController": "kyverno-admission",
        "reportingInstance": "kyverno-admission-kyverno-admission-controller-0",
        "regarding": {"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy", "name": policy},
        "related": {"apiVersion": "v1", "kind": "Pod", "name": "events-api-pod", "namespace": ns},
        "note": format!("Pod {ns}/events-api-pod: [disallow-host-path] fail; hostPath volumes are forbidden.")
    })
}

/// The connection cut and resumed, kube-apiserver and etcd restarted, a
/// report CRD deleted and installed again, bookmarks, each with changes made
/// while the exporter could not see them.
#[test]
#[ignore = "needs Go and a real control plane: scripts/test runs it"]
fn exact_through_cuts_restarts_crd_churn_and_bookmarks() -> Result<()> {
    let c = RealCluster::start(&[])?;
    let fixtures = fixture_objects(&[
        "tests/crosscheck/kyverno/namespaces.yaml",
        "tests/crosscheck/kyverno/cel-policies.yaml",
        "tests/crosscheck/fixtures/openreports.yaml",
    ]);
    assert!(apply_each(&c, &fixtures).is_empty());
    let generated = load_generated(&c, 1_000, 8, 23);
    let reports: Vec<&Value> = generated
        .iter()
        .filter(|r| r["kind"] == "PolicyReport")
        .collect();
    let proxy = Proxy::start(c.server)?;
    let kc = c.exporter_kubeconfig_via(proxy.addr)?;
    let e = exporter(&kc, &["--discovery-interval", "2"]);
    e.wait_ready(READY, POLL)?;
    settles(&c, &e, "initial sync");

    // Bookmarks: writes to a kind the exporter does not watch advance the
    // resourceVersion; the report watch hears of it only through bookmarks
    // (about once a minute), and resumes from there after a cut.
    let newest_report_rv = max_resource_version(&c, "policyreports.wgpolicyk8s.io")?;
    for i in 0..50 {
        c.apply(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("filler-{i}"), "namespace": "default"}, "data": {"i": i.to_string()}}))?;
    }
    // A consistent list makes the watch cache catch up with etcd's revision.
    c.kubectl(&["get", "policyreports.wgpolicyk8s.io", "-A", "-o", "name"])?;
    std::thread::sleep(Duration::from_secs(70));
    let watches_before = report_watches(&c)?.len();
    proxy.cut();
    std::thread::sleep(Duration::from_secs(1));
    proxy.resume();
    let resumed = eventually("a resumed report watch", SETTLE, POLL, || {
        report_watches(&c)
            .map_err(|e| e.to_string())?
            .get(watches_before)
            .and_then(|uri| query(uri, "resourceVersion"))
            .ok_or_else(|| "no new watch yet".to_owned())
    })?;
    let resumed: u64 = resumed.parse()?;
    assert!(
        resumed > newest_report_rv,
        "the watch resumed from {resumed}, a bookmark's resourceVersion above every report's ({newest_report_rv})"
    );
    settles(&c, &e, "after resuming from a bookmark");

    // The connection cut, with changes during the gap.
    proxy.cut();
    for (i, r) in reports.iter().take(50).enumerate() {
        c.apply(&changed(r, i))?;
    }
    for r in reports.iter().skip(50).take(50) {
        c.delete(r)?;
    }
    std::thread::sleep(Duration::from_secs(3));
    proxy.resume();
    settles(&c, &e, "after the connection came back");

    // kube-apiserver restarted; changes as soon as it is back.
    c.kill("apiserver")?;
    std::thread::sleep(Duration::from_secs(2));
    c.restart("apiserver")?;
    for (i, r) in reports.iter().skip(100).take(50).enumerate() {
        c.apply(&changed(r, i + 1))?;
    }
    settles(&c, &e, "after kube-apiserver restarted");

    // etcd restarted.
    c.kill("etcd")?;
    std::thread::sleep(Duration::from_secs(2));
    c.restart("etcd")?;
    for r in reports.iter().skip(150).take(50) {
        c.delete(r)?;
    }
    settles(&c, &e, "after etcd restarted");

    // A report CRD deleted (its objects go with it) and installed again.
    let crd = c.dir().join("crds/openreports.io_clusterreports.yaml");
    c.kubectl(&[
        "delete",
        "-f",
        crd.to_str().unwrap_or_default(),
        "--wait=true",
    ])?;
    eventually("ClusterReports dropped", SETTLE, POLL, || {
        let held = value(
            &e,
            "policyreport_exporter_objects",
            &[("resource", "clusterreports.openreports.io")],
        );
        (held == 0.0).then_some(()).ok_or(format!("{held} held"))
    })?;
    settles(&c, &e, "after the CRD was deleted");
    c.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        crd.to_str().unwrap_or_default(),
    ])?;
    c.kubectl(&[
        "wait",
        "--for",
        "condition=established",
        "-f",
        crd.to_str().unwrap_or_default(),
    ])?;
    let again: Vec<Value> = fixtures
        .iter()
        .filter(|o| o["kind"] == "ClusterReport")
        .cloned()
        .collect();
    assert!(!again.is_empty(), "the fixtures hold a ClusterReport");
    eventually("ClusterReport accepted again", SETTLE, POLL, || {
        again
            .iter()
            .try_for_each(|o| c.apply(o))
            .map_err(|e| e.to_string())
    })?;
    eventually("ClusterReports picked up again", SETTLE, POLL, || {
        let held = value(
            &e,
            "policyreport_exporter_objects",
            &[("resource", "clusterreports.openreports.io")],
        );
        (held as usize == again.len())
            .then_some(())
            .ok_or(format!("{held} held"))
    })?;
    settles(&c, &e, "after the CRD came back");
    assert_eq!(
        value(
            &e,
            "policyreport_exporter_synced",
            &[("resource", "policyreports.wgpolicyk8s.io")]
        ),
        1.0
    );
    Ok(())
}

/// The URIs of the PolicyReport watches the exporter opened, in order.
fn report_watches(c: &RealCluster) -> Result<Vec<String>> {
    Ok(c.audit()?
        .into_iter()
        .filter(|a| {
            a.verb == "watch" && a.resource == "policyreports" && a.stage == "ResponseStarted"
        })
        .map(|a| a.uri)
        .collect())
}

fn query(uri: &str, key: &str) -> Option<String> {
    let q = uri.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

fn max_resource_version(c: &RealCluster, kind: &str) -> Result<u64> {
    let list: Value = serde_json::from_str(&c.kubectl(&["get", kind, "-A", "-o", "json"])?)?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["metadata"]["resourceVersion"].as_str()?.parse().ok())
        .max()
        .unwrap_or(0))
}

/// `wgpolicyk8s.io` served as v1beta1 only (as Kubewarden installs it), the
/// watch cache off so that a watch resumed after compaction gets 410 Gone
/// from etcd, and a ClusterRole missing one resource.
#[test]
#[ignore = "needs Go and a real control plane: scripts/test runs it"]
fn v1beta1_reports_a_real_410_and_a_missing_permission() -> Result<()> {
    let c = RealCluster::start(&["--wgpolicy-v1beta1", "--no-watch-cache"])?;
    let mut fixtures = fixture_objects(&[
        "tests/crosscheck/kyverno/namespaces.yaml",
        "tests/crosscheck/kyverno/policies.yaml",
        "tests/crosscheck/kyverno/reports-v1beta1.yaml",
        "tests/crosscheck/kyverno/reports-v1beta1.json",
    ]);
    fixtures.retain(|o| o["metadata"]["name"] != "disallow-proc-mount");
    // The fixtures keep `timestamp.seconds` as floats (1.666094801e+09,
    // 1666094801.5) and some without `nanos`, as tools print them; the CRD
    // (int64 seconds, nanos required) refuses that, so the server holds
    // whole seconds.
    fixtures.iter_mut().for_each(whole_second_timestamps);
    let refused = apply_each(&c, &fixtures);
    assert!(refused.is_empty(), "{refused:#?}");
    let spec = Spec {
        namespaces: 6,
        ..Spec::with_reports(300, 31)
    };
    let mut generated: Vec<Value> = reportgen::generate(&spec)
        .reports
        .into_iter()
        .map(|r| r.value)
        .collect();
    for r in &mut generated {
        r["apiVersion"] = json!("wgpolicyk8s.io/v1beta1");
        without_server_fields(r);
    }
    c.load(generated.clone(), 16)?;

    // Without `namespaces` in the ClusterRole: the exporter says which
    // resource is forbidden, counts it, /readyz names it, the rest is served.
    let mut role = cluster_role(&c);
    let full = role.clone();
    for rule in role["rules"].as_array_mut().into_iter().flatten() {
        if let Some(res) = rule["resources"].as_array_mut() {
            res.retain(|r| r != "namespaces");
        }
    }
    c.apply(&role)?;
    let proxy = Proxy::start(c.server)?;
    let e = exporter(&c.exporter_kubeconfig_via(proxy.addr)?, &[]);
    eventually("namespaces forbidden", SETTLE, POLL, || {
        let n = value(
            &e,
            "policyreport_exporter_watch_errors_total",
            &[("resource", "namespaces")],
        );
        (n > 0.0)
            .then_some(())
            .ok_or_else(|| "no watch error yet".to_owned())
    })?;
    let (status, body) = get_once(e.addr, "/readyz")?;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("namespaces"), "{body}");
    let logs = e.logs().join("\n");
    assert!(
        logs.contains("namespaces") && logs.to_lowercase().contains("forbidden"),
        "the log names the forbidden resource:\n{}",
        e.log_tail(20)
    );
    eventually("reports served without namespaces", SETTLE, POLL, || {
        let v = value(
            &e,
            "policyreport_exporter_synced",
            &[("resource", "policyreports.wgpolicyk8s.io")],
        );
        (v == 1.0)
            .then_some(())
            .ok_or_else(|| "reports not synced".to_owned())
    })?;
    // The permission restored: the same process recovers on its own.
    c.apply(&full)?;
    e.wait_ready(READY, POLL)?;
    settles(&c, &e, "v1beta1 reports, permission restored");

    // A real 410: the watch is cut, reports change, etcd is compacted
    // (--etcd-compaction-interval 15s), and the watch resumes from a
    // compacted resourceVersion.
    let expired = |e: &Exporter| {
        value(
            e,
            "policyreport_exporter_relists_total",
            &[
                ("resource", "policyreports.wgpolicyk8s.io"),
                ("reason", "expired"),
            ],
        )
    };
    let before = expired(&e);
    proxy.cut();
    let reports: Vec<&Value> = generated
        .iter()
        .filter(|r| r["kind"] == "PolicyReport")
        .collect();
    for (i, r) in reports.iter().take(40).enumerate() {
        c.apply(&changed(r, i))?;
    }
    for r in reports.iter().skip(40).take(40) {
        c.delete(r)?;
    }
    std::thread::sleep(Duration::from_secs(35));
    proxy.resume();
    eventually("a 410 and a relist", SETTLE, POLL, || {
        let n = expired(&e);
        (n > before)
            .then_some(())
            .ok_or(format!("expired relists: {n}"))
    })?;
    settles(&c, &e, "after 410 Gone");
    Ok(())
}

/// The benchmark's real-server row at a tiny scale: every stage runs and the
/// counts are exact (not a timed test).
#[test]
#[ignore = "needs Go and a real control plane: scripts/test runs it"]
fn real_server_row_at_tiny_scale() -> Result<()> {
    let o = policyreport_bench::realrow::RealOptions {
        exporter: exporter_binary(Build::Reuse)?,
        reports: 200,
        seed: 3,
        settle: Duration::from_millis(200),
    };
    let r = policyreport_bench::realrow::run(&o)?;
    assert!(r.exact, "counts equal the generator's: {r:?}");
    assert!(
        r.results > 200 && r.peak_rss > 0 && r.steady_rss > 0,
        "{r:?}"
    );
    assert!(
        r.kubectl_wall > Duration::ZERO && r.kubectl_cpu > Duration::ZERO,
        "{r:?}"
    );
    let table = r.table(None);
    assert!(
        table.contains("| start → /readyz (kubectl: wall) |"),
        "{table}"
    );
    assert!(
        table.contains(&format!("Real kube-apiserver {}", r.kubernetes)),
        "{table}"
    );
    Ok(())
}
