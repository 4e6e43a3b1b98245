//! The monitoring kit (dashboards/, rules/, deploy/base/prometheusrule.yaml)
//! against a real Prometheus.
//!
//! - `promtool check rules` and `promtool test rules` pass, and the unit tests
//!   cover every alert both firing and not firing.
//! - The generated files (dashboards, PrometheusRule) match their generators.
//! - Every dashboard is a well-formed Grafana model.
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

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Exporter, Metrics, copy_tree, http_get, repo};

/// The namespace the generated fixtures fill with every kind of data.
const NS: &str = "e2e-enforced";
/// A namespace where `e2e-override` only audits (its Enforce override names
/// `e2e-enf*`).
const NS_AUDITED: &str = "e2e-audited";
/// The scrape job, as the rules expect it.
const JOB: &str = "policyreport-exporter";
/// How long the end-to-end test waits for every query to return data.
const SETTLE: Duration = Duration::from_secs(40);

// ------------------------------------------------------------------ sources

fn rules_path() -> PathBuf {
    repo().join("rules/policyreport.rules.yaml")
}

fn rules() -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(rules_path()).expect("read the rules file");
    serde_yaml_ng::from_str(&text).expect("the rules file is YAML")
}

/// (group name, rules) of the rules file.
fn rule_groups() -> Vec<(String, Vec<serde_yaml_ng::Value>)> {
    rules()["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["name"].as_str().expect("group name").to_owned(),
                g["rules"].as_sequence().expect("group rules").clone(),
            )
        })
        .collect()
}

fn rule_names(kind: &str) -> Vec<String> {
    rule_groups()
        .into_iter()
        .flat_map(|(_, rules)| rules)
        .filter_map(|r| r[kind].as_str().map(str::to_owned))
        .collect()
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("dashboards")).expect("dashboards/") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read dashboard");
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 4,
        "expected the four dashboards, found {out:?}"
    );
    out
}

/// Panels, including those nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// One query of one panel.
struct PanelQuery {
    dashboard: String,
    panel: String,
    expr: String,
}

fn panel_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for (_, d) in dashboards() {
        let title = d["title"].as_str().unwrap_or_default().to_owned();
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(PanelQuery {
                    dashboard: title.clone(),
                    panel: p["title"].as_str().unwrap_or_default().to_owned(),
                    expr: t["expr"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    out
}

fn panel_expr(dashboard: &str, panel: &str) -> String {
    panel_exprs(dashboard, panel).remove(0)
}

/// Every query of a panel, in refId order.
fn panel_exprs(dashboard: &str, panel: &str) -> Vec<String> {
    let exprs: Vec<String> = panel_queries()
        .into_iter()
        .filter(|q| q.dashboard == dashboard && q.panel == panel)
        .map(|q| q.expr)
        .collect();
    assert!(!exprs.is_empty(), "no panel {panel:?} in {dashboard:?}");
    exprs
}

/// Fill in Grafana's template variables, longest names first.
fn substitute(expr: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut names: Vec<&&str> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_owned();
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &vars[*name])
            .replace(&format!("${name}"), &vars[*name]);
    }
    assert!(
        !out.contains('$'),
        "unknown template variable left in: {out}"
    );
    out
}

fn variables(cluster: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("cluster", cluster.to_owned()),
        ("namespace", NS.to_owned()),
        ("job", JOB.to_owned()),
        ("__rate_interval", "20s".to_owned()),
        ("__interval", "5s".to_owned()),
        ("__range", "1h".to_owned()),
    ])
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {cmd:?}: {e} (promtool: apt-get install prometheus; python3 with PyYAML: \
                 pip install pyyaml; scripts/test installs both)"
        )
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// ------------------------------------------------------------------ static checks

#[test]
fn rules_pass_promtool_check() {
    let (ok, out) = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(rules_path()));
    assert!(ok, "promtool check rules failed:\n{out}");
}

/// The promtool unit test files in tests/rules, sorted.
fn rule_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/rules"))
        .expect("tests/rules")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no promtool tests in tests/rules");
    files
}

/// promtool evaluates rule groups in a random order unless a test file sets
/// `group_eval_order`; the alerts read records of the same evaluation, so
/// without it an alert test passes or fails by chance (seen in CI).
#[test]
fn rules_unit_tests_evaluate_groups_in_file_order() {
    let groups: Vec<String> = rule_groups().into_iter().map(|(name, _)| name).collect();
    for f in rule_test_files() {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&f).expect("read test"))
                .expect("YAML");
        let order: Vec<String> = doc["group_eval_order"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect();
        assert_eq!(order, groups, "group_eval_order of {}", f.display());
    }
}

#[test]
#[ignore = "`promtool test rules` on every rule file, about 30 s: scripts/test runs it"]
fn rules_unit_tests_pass_and_cover_every_alert() {
    let dir = repo().join("tests/rules");
    let files = rule_test_files();
    let (ok, out) = run(Command::new("promtool")
        .current_dir(&dir)
        .arg("test")
        .arg("rules")
        .args(files.iter().map(|f| f.file_name().unwrap())));
    assert!(ok, "promtool test rules failed:\n{out}");

    // Every alert is tested firing and not firing.
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    let mut tested_records = BTreeSet::new();
    for f in &files {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(f).expect("read test")).expect("YAML");
        for test in doc["tests"].as_sequence().expect("tests") {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().expect("alertname").to_owned();
                let n = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
                if n > 0 {
                    firing.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
            for case in test["promql_expr_test"].as_sequence().into_iter().flatten() {
                tested_records.insert(case["expr"].as_str().expect("expr").to_owned());
            }
        }
    }
    let alerts = rule_names("alert");
    assert!(alerts.len() >= 7, "expected at least 7 alerts: {alerts:?}");
    for a in &alerts {
        assert!(firing.contains(a), "no promtool test where {a} fires");
        assert!(quiet.contains(a), "no promtool test where {a} stays quiet");
    }
    for r in rule_names("record") {
        assert!(
            tested_records.iter().any(|e| e.contains(&r)),
            "no promtool test of the recording rule {r}"
        );
    }
}

#[test]
fn prometheusrule_is_generated_from_the_rules() {
    let (ok, out) = run(Command::new("python3")
        .arg(repo().join("scripts/gen-prometheusrule.py"))
        .arg("--check"));
    assert!(ok, "{out}");
}

#[test]
fn dashboards_are_generated_and_valid() {
    let (ok, out) = run(Command::new("python3")
        .arg(repo().join("scripts/gen-dashboards.py"))
        .arg("--check"));
    assert!(ok, "{out}");

    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{file}: uid must be 1-40 chars"
        );
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
            "{file}: schemaVersion >= 39"
        );
        assert!(d["id"].is_null(), "{file}: id must be null for import");

        // Variables: datasource, cluster (from external labels, may be absent).
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let var = |name: &str| {
            vars.iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{file}: no variable {name}"))
        };
        let ds = var("datasource");
        assert_eq!(ds["type"], "datasource", "{file}");
        assert_eq!(ds["query"], "prometheus", "{file}");
        let cluster = var("cluster");
        assert_eq!(cluster["type"], "query", "{file}");
        assert_eq!(
            cluster["definition"], "label_values(policyreport_exporter_build_info, cluster)",
            "{file}"
        );
        assert_eq!(cluster["includeAll"], true, "{file}");
        assert_eq!(cluster["allValue"], ".*", "{file}");
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(
                v["datasource"]["uid"], "${datasource}",
                "{file}: variable {} datasource",
                v["name"]
            );
        }
        let names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
        if !file.contains("health") {
            assert!(names.contains(&"namespace"), "{file}: namespace variable");
        }

        // Panels: unique ids, a grid position inside 24 columns without
        // overlaps, the datasource variable, and targets with refId and expr.
        let mut ids = BTreeSet::new();
        let mut cells: BTreeMap<(i64, i64), String> = BTreeMap::new();
        let all = panels(&d);
        assert!(!all.is_empty(), "{file}: no panels");
        for p in all {
            let title = p["title"].as_str().unwrap_or_default();
            let id = p["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{file}: {title}: id"));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            assert!(!title.is_empty(), "{file}: panel {id} has no title");
            let g = &p["gridPos"];
            let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| {
                g[k].as_i64()
                    .unwrap_or_else(|| panic!("{file}: {title}: gridPos.{k}"))
            });
            assert!(
                h > 0 && w > 0 && x >= 0 && y >= 0 && x + w <= 24,
                "{file}: {title}: gridPos {g}"
            );
            for cx in x..x + w {
                for cy in y..y + h {
                    if let Some(other) = cells.insert((cx, cy), title.to_owned()) {
                        panic!("{file}: panels {other:?} and {title:?} overlap");
                    }
                }
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{file}: {title}: datasource"
            );
            assert_eq!(p["datasource"]["type"], "prometheus", "{file}: {title}");
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: {title}: targets"));
            assert!(!targets.is_empty(), "{file}: {title}: no targets");
            let mut refs = BTreeSet::new();
            for t in targets {
                let r = t["refId"].as_str().unwrap_or_default();
                assert!(!r.is_empty() && refs.insert(r), "{file}: {title}: refId");
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{file}: {title}: target datasource"
                );
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{file}: {title}: empty expr");
                // The query idiom: replicas are merged before anything is summed.
                assert!(
                    expr.contains("max without (instance, pod)") || expr.contains("max by ("),
                    "{file}: {title}: query does not merge replicas: {expr}"
                );
                assert!(
                    expr.contains("cluster=~\"$cluster\""),
                    "{file}: {title}: query ignores $cluster: {expr}"
                );
                // Every variable a query uses exists (or is a Grafana built-in).
                for var in expr.split('$').skip(1) {
                    let name: String = var
                        .trim_start_matches('{')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    assert!(
                        name.starts_with("__") || names.contains(&name.as_str()),
                        "{file}: {title}: unknown variable ${name}"
                    );
                }
            }
        }
    }
}

// ------------------------------------------------------------------ processes

/// A free loopback port (closed again before use).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    name: &'static str,
}

impl Prometheus {
    fn start(name: &'static str, dir: &Path, config: &str, extra: &[&str]) -> Prometheus {
        std::fs::create_dir_all(dir).expect("prometheus dir");
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            // An agent refuses the server's storage flags and has its own.
            .arg(format!(
                "{}={}",
                if extra.iter().any(|a| a.contains("agent")) {
                    "--storage.agent.path"
                } else {
                    "--storage.tsdb.path"
                },
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).expect("log file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start prometheus (apt-get install prometheus; scripts/test installs it)");
        let mut p = Prometheus {
            child,
            addr,
            log,
            name,
        };
        let start = Instant::now();
        loop {
            if let Ok((200, _, _)) = http_get(p.addr, "/-/ready", &[]) {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("{name} prometheus exited with {status}:\n{}", p.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} prometheus not ready:\n{}",
                p.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get_json(&self, path: &str) -> Result<Value, String> {
        let (status, _, body) =
            http_get(self.addr, path, &[]).map_err(|e| format!("GET {path}: {e}"))?;
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("GET {path}: {status} {body}"));
        }
        Ok(v["data"].clone())
    }

    /// An instant query: its samples (a scalar counts as one).
    fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let data = self.get_json(&format!("/api/v1/query?query={}", urlencode(q)))?;
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                Ok(data["result"].as_array().cloned().unwrap_or_default())
            }
            Some("scalar") | Some("string") => {
                Ok(vec![json!({"metric": {}, "value": data["result"]})])
            }
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    /// Values of a label among the series that match a selector.
    fn label_values(&self, label: &str, selector: Option<&str>) -> Result<Vec<String>, String> {
        let mut path = format!("/api/v1/label/{label}/values");
        if let Some(s) = selector {
            path.push_str(&format!("?match[]={}", urlencode(s)));
        }
        let data = self.get_json(&path)?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

// ------------------------------------------------------------------ fixtures

fn result(policy: &str, rule: &str, category: &str, severity: &str, outcome: &str) -> Value {
    json!({
        "policy": policy, "rule": rule, "category": category, "severity": severity,
        "result": outcome, "scored": true, "source": "kyverno",
        "message": format!("validation rule '{rule}' {outcome}"),
        "properties": {"process": "background scan"},
        "timestamp": {"seconds": 1_731_403_200, "nanos": 0},
    })
}

/// A per-resource (Kyverno >= 1.11) report for a Pod in the e2e namespace.
fn pod_report(index: usize, pod: &str, failing: bool) -> Value {
    let outcome = if failing { "fail" } else { "pass" };
    let bp = "Best Practices, EKS Best Practices";
    let results = vec![
        result(
            "require-requests-limits",
            "validate-resources",
            bp,
            "medium",
            outcome,
        ),
        result(
            "restrict-image-registries",
            "validate-registries",
            bp,
            "medium",
            outcome,
        ),
        result(
            "disallow-privileged-containers",
            "privileged-containers",
            "Pod Security Standards (Baseline)",
            "high",
            outcome,
        ),
        result(
            "e2e-enforce-team",
            "validate-team",
            "E2E Enforced",
            "high",
            outcome,
        ),
        result(
            "e2e-audit-clean",
            "validate-owner",
            "E2E Audit",
            "low",
            "pass",
        ),
        result(
            "e2e-audit-wouldblock",
            "validate-cost-center",
            "E2E Audit",
            "low",
            "pass",
        ),
        result(
            "e2e-enforce-clean",
            "validate-app",
            "E2E Enforced",
            "low",
            "pass",
        ),
        result(
            "e2e-audit-failing",
            "validate-version",
            "E2E Audit",
            "low",
            outcome,
        ),
        result(
            "e2e-override",
            "validate-tier",
            "E2E Override",
            "medium",
            outcome,
        ),
        result(
            "e2e-selector",
            "validate-contact",
            "E2E Override",
            "low",
            "pass",
        ),
    ];
    per_resource_report(index, NS, pod, results)
}

/// A Pod whose every result is `skip` (a PolicyException covers it): an
/// excepted resource for each of the three controls.
fn excepted_pod_report(index: usize, pod: &str) -> Value {
    let bp = "Best Practices, EKS Best Practices";
    let results = vec![
        result(
            "require-requests-limits",
            "validate-resources",
            bp,
            "medium",
            "skip",
        ),
        result(
            "restrict-image-registries",
            "validate-registries",
            bp,
            "medium",
            "skip",
        ),
        result(
            "disallow-privileged-containers",
            "privileged-containers",
            "Pod Security Standards (Baseline)",
            "high",
            "skip",
        ),
    ];
    per_resource_report(index, NS, pod, results)
}

/// A failing Pod in the namespace where `e2e-override` only audits.
fn audited_pod_report(index: usize, pod: &str) -> Value {
    let results = vec![result(
        "e2e-override",
        "validate-tier",
        "E2E Override",
        "medium",
        "fail",
    )];
    per_resource_report(index, NS_AUDITED, pod, results)
}

fn per_resource_report(index: usize, namespace: &str, pod: &str, results: Vec<Value>) -> Value {
    let uid = format!("e2e00000-0000-4000-8000-{index:012}");
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": uid, "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kyverno"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}],
        },
        "scope": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": namespace, "uid": uid},
        "results": results,
    })
}

fn cluster_policy(
    name: &str,
    title: &str,
    category: &str,
    severity: &str,
    action: &str,
    rule: &str,
) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": name,
            "annotations": {
                "policies.kyverno.io/title": title,
                "policies.kyverno.io/category": category,
                "policies.kyverno.io/severity": severity,
                "policies.kyverno.io/subject": "Pod",
            },
        },
        "spec": {
            "validationFailureAction": action,
            "background": true,
            "rules": [{
                "name": rule,
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {
                    "message": "The label is required.",
                    "pattern": {"metadata": {"labels": {"team": "?*"}}},
                },
            }],
        },
    })
}

/// A ClusterPolicy in Audit mode with one Enforce override on the spec.
fn overridden_policy(name: &str, rule: &str, category: &str, over: Value) -> Value {
    let mut p = cluster_policy(name, name, category, "medium", "Audit", rule);
    p["spec"]["validationFailureActionOverrides"] = json!([over]);
    p
}

/// A ClusterPolicy without a validate rule: mode `none`.
fn mutate_only_policy(name: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "rules": [{
                "name": "add-label",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"e2e": "yes"}}}},
            }],
        },
    })
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// An admission request that failed an Audit policy and was let through, as
/// Kyverno >= 1.12 writes it: one Event per occurrence, `action: Resource
/// Passed`, no count.
fn audit_failure_event(n: u32, policy: &str, rule: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{policy}.e2eaudit{n:04}"),
            "namespace": "default",
            "uid": format!("e2e0a0d1-0000-4000-8000-{n:012}"),
        },
        "type": "Warning",
        "reason": "PolicyViolation",
        "action": "Resource Passed",
        "eventTime": "2024-11-12T10:04:01.000001Z",
        "involvedObject": {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "name": policy},
        "related": {"apiVersion": "v1", "kind": "Pod", "name": format!("e2e-admitted-{n}"), "namespace": NS},
        "message": format!("Pod {NS}/e2e-admitted-{n}: [{rule}] fail; validation error: rule {rule} failed"),
        "reportingComponent": "kyverno-admission",
        "reportingInstance": "kyverno-admission-controller-e2e",
        "source": {},
    })
}

fn blocked_event(n: u32, policy: &str, rule: &str, count: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{policy}.e2e{n:04}"), "namespace": "default"},
        "type": "Warning",
        "reason": "PolicyViolation",
        "action": "Resource Blocked",
        "eventTime": "2024-11-12T10:02:17.412345Z",
        "involvedObject": {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "name": policy},
        "related": {"apiVersion": "v1", "kind": "Pod", "name": format!("e2e-blocked-{n}"), "namespace": NS},
        "message": format!("Pod {NS}/e2e-blocked-{n}: [{rule}] fail (blocked); validation error: rule {rule} failed"),
        "reportingComponent": "kyverno-admission",
        "reportingInstance": "kyverno-admission-controller-e2e",
        "series": {"count": count, "lastObservedTime": "2024-11-12T10:09:52.207113Z"},
        "source": {},
    })
}

/// The examples, plus generated data in `NS` so that every panel has
/// something to show: a policy for every verdict (ready `e2e-audit-clean`,
/// fix-first `e2e-audit-wouldblock` and `e2e-audit-failing`, enforced
/// `e2e-enforce-clean`,
/// enforced-failing `e2e-enforce-team`, partly-enforced `e2e-override` and
/// `e2e-selector`, none `e2e-mutate`), Enforce overrides by namespace glob and
/// by namespaceSelector, compliant, noncompliant and excepted pods for every
/// control, blocked admissions with and without a control, and audit
/// admission failures.
fn write_fixtures(dir: &Path) {
    copy_tree(&repo().join("examples"), dir);
    let gen_dir = dir.join("e2e-generated");
    std::fs::create_dir_all(&gen_dir).expect("mkdir");
    let list = |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut reports = vec![pod_report(0, "e2e-bad", true)];
    for i in 0..8 {
        reports.push(pod_report(i + 1, &format!("e2e-good-{i}"), false));
    }
    reports.push(excepted_pod_report(9, "e2e-excepted"));
    reports.push(audited_pod_report(10, "e2e-audited-bad"));
    let policies = vec![
        cluster_policy(
            "e2e-enforce-team",
            "E2E Require Team",
            "E2E Enforced",
            "high",
            "Enforce",
            "validate-team",
        ),
        cluster_policy(
            "e2e-audit-clean",
            "E2E Require Owner",
            "E2E Audit",
            "low",
            "Audit",
            "validate-owner",
        ),
        cluster_policy(
            "e2e-audit-wouldblock",
            "E2E Require Cost Center",
            "E2E Audit",
            "low",
            "Audit",
            "validate-cost-center",
        ),
        cluster_policy(
            "e2e-audit-failing",
            "E2E Require Version",
            "E2E Audit",
            "low",
            "Audit",
            "validate-version",
        ),
        cluster_policy(
            "e2e-enforce-clean",
            "E2E Require App",
            "E2E Enforced",
            "low",
            "Enforce",
            "validate-app",
        ),
        overridden_policy(
            "e2e-override",
            "validate-tier",
            "E2E Override",
            json!({"action": "Enforce", "namespaces": ["e2e-enf*"]}),
        ),
        overridden_policy(
            "e2e-selector",
            "validate-contact",
            "E2E Override",
            json!({"action": "Enforce", "namespaceSelector": {"matchLabels": {"e2e/enforce": "true"}}}),
        ),
        mutate_only_policy("e2e-mutate"),
    ];
    let namespaces = vec![
        namespace(NS, json!({"e2e/enforce": "true"})),
        namespace(NS_AUDITED, json!({})),
    ];
    let events = vec![
        blocked_event(1, "e2e-enforce-team", "validate-team", 4),
        blocked_event(2, "require-requests-limits", "validate-resources", 2),
        blocked_event(
            3,
            "disallow-privileged-containers",
            "privileged-containers",
            1,
        ),
        audit_failure_event(1, "e2e-audit-wouldblock", "validate-cost-center"),
        audit_failure_event(2, "e2e-audit-wouldblock", "validate-cost-center"),
    ];
    for (file, items) in [
        ("reports.json", reports),
        ("policies.json", policies),
        ("namespaces.json", namespaces),
        ("events.json", events),
    ] {
        let text = serde_json::to_string_pretty(&list(items)).expect("json");
        std::fs::write(gen_dir.join(file), text).expect("write fixture");
    }
}

// ------------------------------------------------------------------ end to end

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
    let mut targets = String::new();
    for (i, addr) in exporters.iter().enumerate() {
        // The target labels the Prometheus Operator sets from a ServiceMonitor.
        targets.push_str(&format!(
            "      - targets: ['{addr}']\n        labels: {{namespace: policyreport-exporter, pod: policyreport-exporter-{i}, service: policyreport-exporter, endpoint: http, container: exporter}}\n"
        ));
    }
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

fn global_config() -> String {
    format!(
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n",
        rules_path().display()
    )
}

/// Metric names a query reads that the exporter does not serve (yet).
fn missing_metrics(expr: &str, served: &Metrics) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        let is_metric = (word.starts_with("policyreport_") || word.starts_with("process_"))
            && !word.contains(':')
            && (c == '{' || c == '[');
        if is_metric && !served.0.contains_key(&word) {
            out.insert(word.clone());
        }
        word.clear();
    }
    out.into_iter().collect()
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
    for record in rule_names("record") {
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
    for (file, d) in dashboards() {
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] != "query" {
                continue;
            }
            let var = v["name"].as_str().unwrap_or_default();
            let def = v["definition"].as_str().unwrap_or_default();
            let Some(args) = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
            else {
                failures.push(format!("{file}: variable {var}: not label_values(): {def}"));
                continue;
            };
            let (selector, label) = match args.rsplit_once(',') {
                Some((sel, label)) => (Some(substitute(sel.trim(), &vars)), label.trim()),
                None => (None, args.trim()),
            };
            match prom.label_values(label, selector.as_deref()) {
                Err(e) => failures.push(format!("{name}: {file}: variable {var}: {e}")),
                Ok(values) => {
                    let want = &vars[var];
                    let all =
                        v["includeAll"] == true && want == v["allValue"].as_str().unwrap_or("");
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
    }

    // Every panel query returns data.
    for q in panel_queries() {
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

fn record_expr(record: &str) -> String {
    rule_groups()
        .into_iter()
        .flat_map(|(_, r)| r)
        .find(|r| r["record"].as_str() == Some(record))
        .and_then(|r| r["expr"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn fmt_missing(expr: &str, served: &Metrics) -> String {
    let m = missing_metrics(expr, served);
    if m.is_empty() {
        String::new()
    } else {
        format!(" (the exporter does not serve {})", m.join(", "))
    }
}

/// Numbers and meanings, checked in the per-cluster Prometheus: the replicas
/// are not counted twice, and the rollout panels list the right policies.
fn check_semantics(prom: &Prometheus, served: &Metrics) -> Vec<String> {
    let mut failures = Vec::new();
    let vars = variables(".*");
    let one = |q: &str| -> Result<f64, String> {
        let s = prom.query(q)?;
        match s.as_slice() {
            [x] => Ok(value(x)),
            other => Err(format!("{} samples for {q}", other.len())),
        }
    };
    let total = served.sum("policyreport_results");
    match (
        one("sum(policyreport_results)"),
        one("sum(max without (instance, pod) (policyreport_results))"),
    ) {
        (Ok(raw), Ok(merged)) => {
            if (raw - 2.0 * total).abs() > 1e-9 {
                failures.push(format!(
                    "two replicas should be scraped: sum {raw}, one exporter {total}"
                ));
            }
            if (merged - total).abs() > 1e-9 {
                failures.push(format!("merged sum {merged} != one exporter's {total}"));
            }
        }
        (a, b) => failures.push(format!("sums: {a:?} {b:?}")),
    }
    // fail / (pass + fail) from one exporter's /metrics, in one namespace or all.
    let rate = |namespace: Option<&str>| -> f64 {
        let count = |result: &str| -> f64 {
            served
                .family("policyreport_results")
                .iter()
                .filter(|(l, _)| l.iter().any(|(k, v)| k == "result" && v == result))
                .filter(|(l, _)| {
                    namespace.is_none_or(|ns| l.iter().any(|(k, v)| k == "namespace" && v == ns))
                })
                .map(|(_, v)| v)
                .sum()
        };
        count("fail") / (count("fail") + count("pass"))
    };
    let overview = "Policy reports / Compliance overview";
    let expected = rate(Some(NS));
    match one(&substitute(&panel_expr(overview, "Violation rate"), &vars)) {
        Ok(v) if (v - expected).abs() < 1e-9 => {}
        other => failures.push(format!(
            "overview violation rate in {NS}: {other:?}, expected fail/(pass+fail) = {expected}"
        )),
    }
    let expected = rate(None);
    match one("cluster:policyreport_violation_rate:ratio") {
        Ok(v) if (v - expected).abs() < 1e-9 => {}
        other => failures.push(format!(
            "cluster:policyreport_violation_rate:ratio = {other:?}, expected {expected}"
        )),
    }

    let rollout = "Policy reports / Rollout";
    let policies_in = |panel: &str| -> Result<BTreeSet<String>, String> {
        let s = prom.query(&substitute(&panel_expr(rollout, panel), &vars))?;
        Ok(s.iter()
            .filter_map(|x| x["metric"]["policy"].as_str().map(str::to_owned))
            .collect())
    };
    match policies_in("Ready to enforce: audit policies with no failure in 7 days") {
        Ok(p) if p.contains("e2e-audit-clean") && !p.contains("e2e-enforce-team") => {}
        other => failures.push(format!(
            "ready to enforce should list e2e-audit-clean only among the e2e policies: {other:?}"
        )),
    }
    match policies_in("Enforced policies with failing resources") {
        Ok(p) if p.contains("e2e-enforce-team") && !p.contains("e2e-audit-clean") => {}
        other => failures.push(format!(
            "enforced policies with failing resources should list e2e-enforce-team: {other:?}"
        )),
    }
    failures.extend(check_rollout(prom, served));

    // The alerts see the fixture: the e2e namespace is above the violation
    // target with an enforced policy, and every control is below 100%.
    match prom.get_json("/api/v1/alerts") {
        Err(e) => failures.push(e),
        Ok(data) => {
            let alerts = data["alerts"].as_array().cloned().unwrap_or_default();
            let has = |name: &str, label: &str, value: &str| {
                alerts
                    .iter()
                    .any(|a| a["labels"]["alertname"] == name && a["labels"][label] == value)
            };
            if !has("PolicyReportViolationRateHigh", "namespace", NS) {
                failures.push(format!("no PolicyReportViolationRateHigh alert for {NS}"));
            }
            // e2e-override fails in NS_AUDITED too, but only audits there.
            if has("PolicyReportViolationRateHigh", "namespace", NS_AUDITED) {
                failures.push(format!(
                    "PolicyReportViolationRateHigh fires for {NS_AUDITED}, where no policy is enforced"
                ));
            }
            // Audit admission failures of an Audit policy, new within the hour.
            if !has("PolicyReportWouldBlock", "policy", "e2e-audit-wouldblock") {
                failures.push("no PolicyReportWouldBlock alert for e2e-audit-wouldblock".into());
            }
            let would_block: Vec<&Value> = alerts
                .iter()
                .filter(|a| a["labels"]["alertname"] == "PolicyReportWouldBlock")
                .filter(|a| a["labels"]["policy"] != "e2e-audit-wouldblock")
                .filter(|a| {
                    a["labels"]["policy"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("e2e-"))
                })
                .collect();
            if !would_block.is_empty() {
                failures.push(format!(
                    "PolicyReportWouldBlock for policies without audit admission failures: {would_block:?}"
                ));
            }
            for control in ["resource-limits", "approved-registries", "secure-context"] {
                if !has("PolicyReportControlBelowTarget", "control", control) {
                    failures.push(format!(
                        "no PolicyReportControlBelowTarget alert for {control}"
                    ));
                }
            }
            for quiet in [
                // Prometheus has no data from an hour or 7 days ago.
                "PolicyReportRegression",
                "PolicyReportReadyToEnforce",
                "PolicyReportExporterDown",
                "PolicyReportExporterAbsent",
                "PolicyReportExporterNotSynced",
                "PolicyReportInvalidReports",
            ] {
                if alerts.iter().any(|a| a["labels"]["alertname"] == quiet) {
                    failures.push(format!("{quiet} is active against healthy exporters"));
                }
            }
        }
    }
    failures
}

/// The rollout plan against the fixtures: the verdict of every e2e policy,
/// `policy:policyreport_ready_to_enforce:bool`, "would have been blocked",
/// enforcement per namespace, and excepted resources.
fn check_rollout(prom: &Prometheus, served: &Metrics) -> Vec<String> {
    let mut failures = Vec::new();
    let vars = variables(".*");
    let mut all_ns = variables(".*");
    all_ns.insert("namespace", ".*".to_owned());
    let rollout = "Policy reports / Rollout";
    // label values of the samples of a query, keyed by policy
    let by_policy = |expr: &str, label: &str| -> Result<BTreeMap<String, String>, String> {
        Ok(prom
            .query(expr)?
            .iter()
            .filter_map(|x| {
                let policy = x["metric"]["policy"].as_str()?.to_owned();
                let v = if label == "value" {
                    value(x).to_string()
                } else {
                    x["metric"][label].as_str().unwrap_or_default().to_owned()
                };
                Some((policy, v))
            })
            .filter(|(p, _)| p.starts_with("e2e-"))
            .collect())
    };
    let expect =
        |what: &str, got: Result<BTreeMap<String, String>, String>, want: &[(&str, &str)]| {
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            match got {
                Ok(got) if got == want => None,
                other => Some(format!("{what}: {other:?}, expected {want:?}")),
            }
        };

    // The verdict per policy, with summary's rules.
    let plan = panel_exprs(rollout, "Rollout plan: verdict per policy");
    failures.extend(expect(
        "rollout plan verdicts",
        by_policy(&substitute(&plan[0], &all_ns), "verdict"),
        &[
            ("e2e-audit-clean", "ready"),
            ("e2e-audit-wouldblock", "fix-first"),
            ("e2e-audit-failing", "fix-first"),
            ("e2e-enforce-clean", "enforced"),
            ("e2e-enforce-team", "enforced-failing"),
            ("e2e-override", "partly-enforced"),
            ("e2e-selector", "partly-enforced"),
            ("e2e-mutate", "none"),
        ],
    ));
    // Its columns: failing results (fail + warn + error), audit admission
    // failures and blocked admissions in the range (here 1 h, so every
    // counter is younger than the range and counts with its whole value).
    let served_sum = |family: &str, policy: &str| -> f64 {
        served
            .family(family)
            .iter()
            .filter(|(l, _)| l.iter().any(|(k, v)| k == "policy" && v == policy))
            .filter(|(l, _)| {
                family != "policyreport_results"
                    || l.iter().any(|(k, v)| {
                        k == "result" && ["fail", "warn", "error"].contains(&v.as_str())
                    })
            })
            .map(|(_, v)| v)
            .sum()
    };
    for (column, family) in [
        (1, "policyreport_results"),
        (2, "policyreport_admission_audit_failures_total"),
        (3, "policyreport_admission_blocked_total"),
    ] {
        let want: Vec<(String, String)> = [
            "e2e-audit-clean",
            "e2e-audit-wouldblock",
            "e2e-audit-failing",
            "e2e-enforce-clean",
            "e2e-enforce-team",
            "e2e-override",
            "e2e-selector",
            "e2e-mutate",
        ]
        .iter()
        // + 0.0: an empty f64 sum is -0, which prints as "-0".
        .map(|p| ((*p).to_owned(), (served_sum(family, p) + 0.0).to_string()))
        .collect();
        let want: Vec<(&str, &str)> = want.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        failures.extend(expect(
            &format!("rollout plan column {family}"),
            by_policy(&substitute(&plan[column], &all_ns), "value"),
            &want,
        ));
    }
    if served_sum(
        "policyreport_admission_audit_failures_total",
        "e2e-audit-wouldblock",
    ) != 2.0
    {
        failures.push(format!(
            "the exporter should count the two audit admission failures of e2e-audit-wouldblock: {:?}",
            served.family("policyreport_admission_audit_failures_total")
        ));
    }

    // The recording rule: 1 for the clean Audit policy, 0 for the Audit
    // policies with audit admission failures or failing results, no series
    // for other modes.
    failures.extend(expect(
        "policy:policyreport_ready_to_enforce:bool",
        by_policy("policy:policyreport_ready_to_enforce:bool", "value"),
        &[
            ("e2e-audit-clean", "1"),
            ("e2e-audit-wouldblock", "0"),
            ("e2e-audit-failing", "0"),
        ],
    ));

    // Would have been blocked, with the policy's mode.
    failures.extend(expect(
        "would have been blocked (mode)",
        by_policy(
            &substitute(
                &panel_expr(
                    rollout,
                    "Would have been blocked: audit admission failures by policy",
                ),
                &vars,
            ),
            "mode",
        ),
        &[("e2e-audit-wouldblock", "audit")],
    ));

    // Enforcement per namespace: e2e-override is enforced in NS (glob
    // override) and audits in NS_AUDITED; e2e-selector is enforced in NS
    // through its namespaceSelector.
    let enforced = substitute(
        &panel_expr(rollout, "Enforced policies with failing resources"),
        &all_ns,
    );
    match prom.query(&enforced) {
        Err(e) => failures.push(e),
        Ok(s) => {
            let rows: BTreeSet<(String, String)> = s
                .iter()
                .map(|x| {
                    let l = |k: &str| x["metric"][k].as_str().unwrap_or_default().to_owned();
                    (l("policy"), l("namespace"))
                })
                .filter(|(p, _)| p.starts_with("e2e-"))
                .collect();
            let want: BTreeSet<(String, String)> = [("e2e-enforce-team", NS), ("e2e-override", NS)]
                .iter()
                .map(|(p, n)| ((*p).to_owned(), (*n).to_owned()))
                .collect();
            if rows != want {
                failures.push(format!(
                    "enforced policies with failing resources, per namespace: {rows:?}, expected {want:?}"
                ));
            }
        }
    }
    let modes = |policy: &str| -> Result<BTreeMap<String, String>, String> {
        Ok(prom
            .query(&format!(
                "max by (namespace, mode) (policyreport_policy_namespace_mode{{policy=\"{policy}\"}})"
            ))?
            .iter()
            .map(|x| {
                let l = |k: &str| x["metric"][k].as_str().unwrap_or_default().to_owned();
                (l("namespace"), l("mode"))
            })
            .collect())
    };
    for (policy, want) in [
        ("e2e-override", vec![(NS, "enforce"), (NS_AUDITED, "audit")]),
        ("e2e-selector", vec![(NS, "enforce")]),
    ] {
        let want: BTreeMap<String, String> = want
            .into_iter()
            .map(|(n, m)| (n.to_owned(), m.to_owned()))
            .collect();
        match modes(policy) {
            Ok(got) if got == want => {}
            other => failures.push(format!(
                "policyreport_policy_namespace_mode of {policy}: {other:?}, expected {want:?}"
            )),
        }
    }

    // The namespace detail: each policy's mode in NS after its overrides.
    failures.extend(expect(
        "namespace detail: policy modes in NS",
        by_policy(
            &substitute(
                &panel_expr(
                    "Policy reports / Namespace detail",
                    "Policy modes in this namespace",
                ),
                &vars,
            ),
            "mode",
        ),
        &[
            ("e2e-audit-clean", "audit"),
            ("e2e-audit-wouldblock", "audit"),
            ("e2e-audit-failing", "audit"),
            ("e2e-enforce-clean", "enforce"),
            ("e2e-enforce-team", "enforce"),
            ("e2e-override", "enforce"),
            ("e2e-selector", "enforce"),
        ],
    ));

    // Excepted: e2e-excepted is all skip, one excepted pod per control in NS,
    // shown next to each control's percentage.
    for (dashboard, panel, control) in [
        (
            "Policy reports / Compliance overview",
            "Pods with resource limits",
            "",
        ),
        (
            "Policy reports / Compliance overview",
            "Images from approved registries",
            "",
        ),
        (
            "Policy reports / Compliance overview",
            "Pods with a secure context",
            "",
        ),
        (
            "Policy reports / Compliance overview",
            "Compliance per control",
            "secure-context",
        ),
        (
            "Policy reports / Namespace detail",
            "Compliance per control",
            "resource-limits",
        ),
        (
            rollout,
            "Controls: compliance and exceptions",
            "approved-registries",
        ),
    ] {
        let exprs = panel_exprs(dashboard, panel);
        let Some(expr) = exprs.iter().find(|e| e.contains("status=\"excepted\"")) else {
            failures.push(format!("{dashboard} / {panel}: no excepted count"));
            continue;
        };
        let got = prom.query(&substitute(expr, &vars)).map(|s| {
            s.iter()
                .filter(|x| control.is_empty() || x["metric"]["control"] == control)
                .map(value)
                .collect::<Vec<f64>>()
        });
        match got {
            Ok(v) if v == [1.0] => {}
            other => failures.push(format!(
                "{dashboard} / {panel}: excepted in {NS} {other:?}, expected [1.0]"
            )),
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

// ------------------------------------------------------------------ several clusters

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
    let mut targets = String::new();
    for (i, addr) in exporters.iter().enumerate() {
        targets.push_str(&format!(
            "      - targets: ['{addr}']\n        labels: {{namespace: policyreport-exporter, pod: policyreport-exporter-{i}, service: policyreport-exporter, endpoint: http, container: exporter}}\n"
        ));
    }
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
    for record in rule_names("record") {
        match prom.query(&format!("{record}{{{selector}}}")) {
            Ok(s) if !s.is_empty() => {}
            other => failures.push(format!(
                "{cluster}: recording rule {record}: {other:?}{}",
                fmt_missing(&record_expr(&record), served[0])
            )),
        }
    }

    // Every variable query returns the value used.
    for (file, d) in dashboards() {
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] != "query" {
                continue;
            }
            let var = v["name"].as_str().unwrap_or_default();
            let def = v["definition"].as_str().unwrap_or_default();
            let Some(args) = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
            else {
                failures.push(format!("{file}: variable {var}: not label_values(): {def}"));
                continue;
            };
            let (sel, label) = match args.rsplit_once(',') {
                Some((sel, label)) => (Some(substitute(sel.trim(), &vars)), label.trim()),
                None => (None, args.trim()),
            };
            match prom.label_values(label, sel.as_deref()) {
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
    }

    // Every panel query returns data.
    for q in panel_queries() {
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
