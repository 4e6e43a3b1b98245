//! Several clusters, as docs/monitoring.md recommends running them: two
//! clusters with three exporters, a Prometheus agent per cluster adding the
//! `cluster` external label, and remote write to a central Prometheus that
//! evaluates the rules. Per cluster and for all of them, every panel query,
//! variable query and recording rule returns data, the replicas are counted
//! once, and the alerts carry the cluster.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use policyreport_test_support::metrics::Metrics;
use serde_json::{Value, json};

use common::Exporter;
use common::e2e_fixtures::{NS, pod_report, write_fixtures};
use common::monitoring::{
    JOB, NEEDS_KYVERNO, fmt_missing, panel_expr, panel_queries, record_expr, rule_names, run,
    substitute, variable_queries, variables,
};
use common::prometheus::{Prometheus, SETTLE, global_config, service_monitor_targets, value};

/// The flag that starts Prometheus in agent mode: `--agent` from 3.0,
/// `--enable-feature=agent` in 2.x.
fn agent_flag() -> &'static str {
    let (ok, out) = run(Command::new("prometheus").arg("--version"));
    assert!(
        ok,
        "prometheus --version failed (apt-get install -y prometheus):\n{out}"
    );
    let major: u32 = out
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {out:?}"));
    if major >= 3 {
        "--agent"
    } else {
        "--enable-feature=agent"
    }
}

/// A cluster's Prometheus in agent mode: it scrapes the cluster's exporter
/// replicas as the ServiceMonitor does, adds `cluster` as an external
/// label, and remote-writes everything to the central Prometheus, which
/// evaluates the rules (agents cannot).
fn agent_config(cluster: &str, exporters: &[SocketAddr], central: SocketAddr) -> String {
    let targets = service_monitor_targets(exporters);
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels:
    cluster: {cluster}
scrape_configs:
  - job_name: {JOB}
    honor_labels: true
    static_configs:
{targets}remote_write:
  - url: http://{central}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 50ms
      max_backoff: 1s
"#
    )
}

/// fail / (pass + fail) over the `policyreport_results` of several exporters
/// (one per cluster).
fn violation_rate(served: &[&Metrics]) -> f64 {
    let count = |result: &str| -> f64 {
        served
            .iter()
            .flat_map(|m| m.family("policyreport_results"))
            .filter(|(l, _)| l.iter().any(|(k, v)| k == "result" && v == result))
            .map(|(_, v)| v)
            .sum()
    };
    count("fail") / (count("fail") + count("pass"))
}

/// What must hold in the central Prometheus for one cluster or, with
/// `cluster` `.*`, for all of them together. `clusters` gives, per cluster,
/// what one of its exporters serves and how many replicas it runs.
fn check_central(prom: &Prometheus, cluster: &str, clusters: &[(&Metrics, usize)]) -> Vec<String> {
    let served: Vec<&Metrics> = clusters.iter().map(|(m, _)| *m).collect();
    let mut failures = Vec::new();
    let vars = variables(cluster);
    let selector = format!("cluster=~\"{cluster}\"");
    let one = |q: &str| -> Result<f64, String> {
        match prom.query(q)?.as_slice() {
            [x] => Ok(value(x)),
            other => Err(format!("{} samples for {q}", other.len())),
        }
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;

    // Every recording rule has data for the cluster.
    for record in rule_names("record")
        .into_iter()
        .filter(|r| !NEEDS_KYVERNO.contains(&r.as_str()))
    {
        match prom.query(&format!("{record}{{{selector}}}")) {
            Ok(s) if !s.is_empty() => {}
            other => failures.push(format!(
                "{cluster}: recording rule {record}: {other:?}{}",
                fmt_missing(&record_expr(&record), served[0])
            )),
        }
    }

    // Every variable query returns the value used.
    for q in variable_queries(&vars, &mut failures) {
        let (file, var) = (&q.file, q.name.as_str());
        match prom.label_values(&q.label, q.selector.as_deref()) {
            Err(e) => failures.push(format!("{cluster}: {file}: variable {var}: {e}")),
            Ok(values) if var == "cluster" => {
                if !(values.contains(&"a".to_owned()) && values.contains(&"b".to_owned())) {
                    failures.push(format!("{file}: cluster variable lists {values:?}"));
                }
            }
            Ok(values) => {
                if !values.contains(&vars[var]) {
                    failures.push(format!(
                        "{cluster}: {file}: variable {var}: {:?} not among {values:?}",
                        vars[var]
                    ));
                }
            }
        }
    }

    // Every panel query returns data.
    for q in panel_queries()
        .into_iter()
        .filter(|q| !NEEDS_KYVERNO.contains(&q.panel.as_str()))
    {
        let expr = substitute(&q.expr, &vars);
        match prom.query(&expr) {
            Ok(s) if !s.is_empty() => {}
            other => failures.push(format!(
                "{cluster}: {} / {}: {other:?}{}\n    {expr}",
                q.dashboard,
                q.panel,
                fmt_missing(&q.expr, served[0])
            )),
        }
    }

    // Each replica's series arrive, and the merge counts them once.
    let total: f64 = served.iter().map(|m| m.sum("policyreport_results")).sum();
    let raw_total: f64 = clusters
        .iter()
        .map(|(m, n)| *n as f64 * m.sum("policyreport_results"))
        .sum();
    match (
        one(&format!("sum(policyreport_results{{{selector}}})")),
        one(&format!(
            "sum(max without (instance, pod) (policyreport_results{{{selector}}}))"
        )),
    ) {
        (Ok(raw), Ok(merged)) => {
            if !close(raw, raw_total) {
                failures.push(format!(
                    "{cluster}: every replica should arrive: raw sum {raw}, expected {raw_total}"
                ));
            }
            if !close(merged, total) {
                failures.push(format!("{cluster}: merged sum {merged}, expected {total}"));
            }
        }
        other => failures.push(format!("{cluster}: sums: {other:?}")),
    }
    let overview = "Policy reports / Compliance overview";
    let mut rate_vars = vars.clone();
    rate_vars.insert("namespace", ".*".to_owned());
    let expected = violation_rate(&served);
    match one(&substitute(
        &panel_expr(overview, "Violation rate"),
        &rate_vars,
    )) {
        Ok(v) if close(v, expected) => {}
        other => failures.push(format!(
            "{cluster}: overview violation rate {other:?}, expected {expected}"
        )),
    }
    if cluster != ".*" {
        match one(&format!(
            "cluster:policyreport_violation_rate:ratio{{{selector}}}"
        )) {
            Ok(v) if close(v, expected) => {}
            other => failures.push(format!(
                "{cluster}: cluster:policyreport_violation_rate:ratio = {other:?}, expected {expected}"
            )),
        }
    }

    // The alerts carry the cluster.
    if cluster != ".*" {
        match prom.get_json("/api/v1/alerts") {
            Err(e) => failures.push(e),
            Ok(data) => {
                let alerts = data["alerts"].as_array().cloned().unwrap_or_default();
                for (name, label, value) in [
                    ("PolicyReportViolationRateHigh", "namespace", NS),
                    (
                        "PolicyReportControlBelowTarget",
                        "control",
                        "resource-limits",
                    ),
                ] {
                    let found = alerts.iter().any(|a| {
                        a["labels"]["alertname"] == name
                            && a["labels"][label] == value
                            && a["labels"]["cluster"] == cluster
                    });
                    if !found {
                        failures.push(format!(
                            "no {name} alert with {label}={value:?} and cluster={cluster:?}"
                        ));
                    }
                }
                if let Some(a) = alerts.iter().find(|a| a["labels"]["cluster"].is_null()) {
                    failures.push(format!("an alert without cluster: {a}"));
                }
            }
        }
    }
    failures
}

/// A failing pod report that only cluster b has, so that its numbers differ
/// from cluster a's.
fn cluster_b_extra(dir: &Path) {
    let reports: Vec<Value> = (0..3)
        .map(|i| pod_report(100 + i, &format!("e2e-b-bad-{i}"), true))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": reports});
    std::fs::write(
        dir.join("e2e-generated/cluster-b.json"),
        serde_json::to_string_pretty(&list).expect("json"),
    )
    .expect("write fixture");
}

#[test]
#[ignore = "three Prometheus servers, about 10 s: scripts/test runs it"]
fn several_clusters_and_replicas_through_remote_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_fixtures(&dir_a);
    write_fixtures(&dir_b);
    cluster_b_extra(&dir_b);
    let serve = |dir: &Path| {
        let e = Exporter::serve(&["--files", &dir.display().to_string()], &[]);
        e.wait_ready(Duration::from_secs(20));
        e
    };
    // Cluster a runs two replicas on the same data, cluster b one.
    let a = [serve(&dir_a), serve(&dir_a)];
    let b = serve(&dir_b);
    let (served_a, served_b) = (a[0].metrics(), b.metrics());
    assert_ne!(
        served_a.sum("policyreport_results"),
        served_b.sum("policyreport_results"),
        "the clusters should differ"
    );

    let central = Prometheus::start(
        "central",
        &tmp.path().join("central"),
        &global_config(),
        &["--web.enable-remote-write-receiver"],
    );
    let agent = agent_flag();
    let addrs_a: Vec<SocketAddr> = a.iter().map(|e| e.addr).collect();
    let _agent_a = Prometheus::start(
        "agent-a",
        &tmp.path().join("agent-a"),
        &agent_config("a", &addrs_a, central.addr),
        &[agent],
    );
    let _agent_b = Prometheus::start(
        "agent-b",
        &tmp.path().join("agent-b"),
        &agent_config("b", &[b.addr], central.addr),
        &[agent],
    );

    let start = Instant::now();
    let failures = loop {
        let mut failures = check_central(&central, "a", &[(&served_a, 2)]);
        failures.extend(check_central(&central, "b", &[(&served_b, 1)]));
        failures.extend(check_central(
            &central,
            ".*",
            &[(&served_a, 2), (&served_b, 1)],
        ));
        if failures.is_empty() || start.elapsed() > SETTLE {
            break failures;
        }
        std::thread::sleep(Duration::from_millis(1000));
    };
    assert!(
        failures.is_empty(),
        "{} problems after {:?} in the central Prometheus:\n- {}\n\ncentral prometheus log:\n{}",
        failures.len(),
        start.elapsed(),
        failures.join("\n- "),
        central.logs()
    );
    eprintln!(
        "clusters a (2 replicas) and b through 2 agents: {} panel queries and {} recording rules answer per cluster and for all, after {:?}",
        panel_queries().len(),
        rule_names("record").len(),
        start.elapsed()
    );
}
