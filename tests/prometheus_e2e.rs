//! The monitoring kit (dashboards/, rules/, deploy/base/prometheusrule.yaml)
//! against a real Prometheus scraping the exporter.
//!
//! - End to end: two exporter replicas serve a fixture folder (the examples
//!   plus generated policies, reports and Events). A per-cluster Prometheus
//!   scrapes both the way the ServiceMonitor does, loads the rules, and
//!   remote-writes to a second, global Prometheus, as Thanos or Mimir would
//!   receive it with the `cluster` external label. Every panel query (template
//!   variables filled in), every variable query and every recording rule
//!   returns data in both, every rule group is healthy, and the replicas are
//!   not counted twice. The per-cluster Prometheus loads the rules from
//!   deploy/base/prometheusrule.yaml (the PrometheusRule's spec), the global
//!   one from rules/policyreport.rules.yaml.
//! - The rollout semantics: the verdict per policy, what Enforce would have
//!   blocked, enforcement per namespace, excepted resources, and
//!   `policy:policyreport_ready_to_enforce:bool` are what the fixtures say.
//!
//! The static checks are in tests/rules.rs and tests/dashboards.rs, several
//! clusters in tests/multi_cluster.rs; the fixture and the Prometheus harness
//! in tests/common/.

mod common;
// In a folder of its own: cargo would build a tests/semantics.rs as a test
// binary of its own.
#[path = "prometheus_e2e/semantics.rs"]
mod semantics;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::e2e_fixtures::{NS, write_fixtures};
use common::monitoring::{
    JOB, NEEDS_KYVERNO, fmt_missing, panel_queries, record_expr, rule_groups, rule_names,
    substitute, variable_queries, variables,
};
use common::prometheus::{Prometheus, SETTLE, global_config, service_monitor_targets};
use common::{Exporter, repo};

use policyreport_test_support::metrics::Metrics;
use semantics::check_semantics;

/// The rules as deploy/ ships them: the PrometheusRule's spec, written as a
/// rule file.
fn write_deploy_rules(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("deploy/base/prometheusrule.yaml"))
        .expect("read deploy/base/prometheusrule.yaml");
    let rule: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("PrometheusRule YAML");
    let spec = serde_yaml_ng::to_string(&rule["spec"]).expect("spec as YAML");
    let path = dir.join("deploy-rules.yaml");
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(&path, spec).expect("write rule file");
    path
}

fn cluster_config(exporters: &[SocketAddr], global: SocketAddr, rules: &Path) -> String {
    let rules = rules.display().to_string();
    let targets = service_monitor_targets(exporters);
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
  external_labels:
    cluster: test
rule_files:
  - {rules}
scrape_configs:
  - job_name: {JOB}
    honor_labels: true
    static_configs:
{targets}remote_write:
  - url: http://{global}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 50ms
      max_backoff: 1s
    write_relabel_configs:
      # The global Prometheus evaluates the rules itself, as a Thanos or Mimir
      # ruler would: do not send it this one's results.
      - source_labels: [__name__]
        regex: '.*:.*|ALERTS|ALERTS_FOR_STATE'
        action: drop
"#
    )
}

/// Everything that should hold in one Prometheus; returns what does not.
fn check(prom: &Prometheus, cluster: &str, served: &Metrics) -> Vec<String> {
    let mut failures = Vec::new();
    let vars = variables(cluster);
    let name = prom.name;

    // Rule groups: loaded, evaluated, healthy.
    match prom.get_json("/api/v1/rules") {
        Err(e) => failures.push(format!("{name}: {e}")),
        Ok(data) => {
            let loaded = data["groups"].as_array().cloned().unwrap_or_default();
            for (group, rules) in rule_groups() {
                let Some(g) = loaded.iter().find(|g| g["name"] == group.as_str()) else {
                    failures.push(format!("{name}: rule group {group} not loaded"));
                    continue;
                };
                let got = g["rules"].as_array().cloned().unwrap_or_default();
                if got.len() != rules.len() {
                    failures.push(format!(
                        "{name}: group {group} has {} rules, the file {}",
                        got.len(),
                        rules.len()
                    ));
                }
                for r in got {
                    let health = r["health"].as_str().unwrap_or_default();
                    let err = r["lastError"].as_str().unwrap_or_default();
                    if health != "ok" || !err.is_empty() {
                        failures.push(format!(
                            "{name}: rule {} in {group}: health {health:?}, lastError {err:?}",
                            r["name"]
                        ));
                    }
                }
            }
        }
    }

    // Recording rules return data, labelled with the cluster in the global view.
    for record in rule_names("record")
        .into_iter()
        .filter(|r| !NEEDS_KYVERNO.contains(&r.as_str()))
    {
        match prom.query(&record) {
            Err(e) => failures.push(format!("{name}: recording rule {record}: {e}")),
            Ok(s) if s.is_empty() => failures.push(format!(
                "{name}: recording rule {record} has no data{}",
                fmt_missing(&record_expr(&record), served)
            )),
            Ok(s) => {
                if cluster != ".*" && s.iter().any(|x| x["metric"]["cluster"] != cluster) {
                    failures.push(format!("{name}: {record} lacks cluster=\"{cluster}\""));
                }
            }
        }
    }

    // Template variable queries have values, and the ones we use.
    for q in variable_queries(&vars, &mut failures) {
        let (file, var, def) = (&q.file, q.name.as_str(), &q.def);
        match prom.label_values(&q.label, q.selector.as_deref()) {
            Err(e) => failures.push(format!("{name}: {file}: variable {var}: {e}")),
            Ok(values) => {
                let want = &vars[var];
                let all = q.all_value.as_ref() == Some(want);
                if !all && !values.contains(want) {
                    failures.push(format!(
                        "{name}: {file}: variable {var} = {def}: {want:?} not among {values:?}"
                    ));
                }
                if var == "cluster" && cluster == ".*" && !values.is_empty() {
                    failures.push(format!(
                        "{name}: cluster has values {values:?} where it should come only from external labels"
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
            Err(e) => failures.push(format!(
                "{name}: {} / {}: {e}\n    {expr}",
                q.dashboard, q.panel
            )),
            Ok(s) if s.is_empty() => failures.push(format!(
                "{name}: {} / {}: no data{}",
                q.dashboard,
                q.panel,
                fmt_missing(&q.expr, served)
            )),
            Ok(_) => {}
        }
    }
    failures
}

#[test]
#[ignore = "a real Prometheus, about 11 s: scripts/test runs it"]
fn dashboards_and_rules_work_against_real_prometheus() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fixtures = tmp.path().join("fixtures");
    write_fixtures(&fixtures);
    let files = fixtures.display().to_string();

    // Two replicas serving the same numbers.
    let replicas = [
        Exporter::serve(&["--files", &files], &[]),
        Exporter::serve(&["--files", &files], &[]),
    ];
    for e in &replicas {
        e.wait_ready(Duration::from_secs(20));
    }
    let served = replicas[0].metrics();
    assert!(
        served
            .family("policyreport_results")
            .keys()
            .any(|l| l.iter().any(|(k, v)| k == "namespace" && v == NS)),
        "the exporter does not serve the generated reports:\n{}",
        served.render_results()
    );

    let global = Prometheus::start(
        "global",
        &tmp.path().join("global"),
        &global_config(),
        &["--web.enable-remote-write-receiver"],
    );
    let addrs: Vec<SocketAddr> = replicas.iter().map(|e| e.addr).collect();
    let cluster = Prometheus::start(
        "cluster",
        &tmp.path().join("cluster"),
        &cluster_config(&addrs, global.addr, &write_deploy_rules(tmp.path())),
        &[],
    );

    let start = Instant::now();
    let failures = loop {
        // In a single Prometheus the cluster label is only an external label:
        // the variable has no values and Grafana sends its All value, `.*`.
        let mut failures = check(&cluster, ".*", &served);
        // In the global view (remote write, as Thanos or Mimir receive it)
        // every series carries cluster="test".
        failures.extend(check(&global, "test", &served));
        failures.extend(check_semantics(&cluster, &served));
        if failures.is_empty() || start.elapsed() > SETTLE {
            break failures;
        }
        std::thread::sleep(Duration::from_millis(1000));
    };
    if !failures.is_empty() {
        let panels = panel_queries().len();
        panic!(
            "{} problems after {:?} ({} panel queries, {} recording rules, in 2 Prometheus servers):\n- {}\n\ncluster prometheus log:\n{}\nglobal prometheus log:\n{}",
            failures.len(),
            start.elapsed(),
            panels,
            rule_names("record").len(),
            failures.join("\n- "),
            cluster.logs(),
            global.logs()
        );
    }
    eprintln!(
        "all {} panel queries and {} recording rules return data in both Prometheus servers after {:?}",
        panel_queries().len(),
        rule_names("record").len(),
        start.elapsed()
    );
}
