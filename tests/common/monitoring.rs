//! The monitoring kit as files: the rules (rules/policyreport.rules.yaml),
//! the dashboards (dashboards/*.json) and their queries, and the template
//! variables the end-to-end tests fill in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use policyreport_test_support::metrics::Metrics;
use serde_json::Value;

use super::e2e_fixtures::NS;
use super::repo;

/// The scrape job, as the rules expect it.
pub const JOB: &str = "policyreport-exporter";

pub fn rules_path() -> PathBuf {
    repo().join("rules/policyreport.rules.yaml")
}

pub fn rules() -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(rules_path()).expect("read the rules file");
    serde_yaml_ng::from_str(&text).expect("the rules file is YAML")
}

/// (group name, rules) of the rules file.
pub fn rule_groups() -> Vec<(String, Vec<serde_yaml_ng::Value>)> {
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

/// Recording rules and panels that answer only where Prometheus scrapes
/// Kyverno's own admission metrics (or, for the panel, only when Events are
/// missing). The tests with real Kyverno check them:
/// `bench/tests/kyverno_burst.rs`, `kyverno_outcomes.rs`, `kyverno_walk.rs`.
pub const NEEDS_KYVERNO: &[&str] = &[
    "instance_policy_rule:kyverno_admission_failures_total:sum",
    "policy:kyverno_admission_failures:increase1h",
    "policy:policyreport_admission_events_missing:increase1h",
    "Admission results without an Event",
];

pub fn rule_names(kind: &str) -> Vec<String> {
    rule_groups()
        .into_iter()
        .flat_map(|(_, rules)| rules)
        .filter_map(|r| r[kind].as_str().map(str::to_owned))
        .collect()
}

pub fn dashboards() -> Vec<(String, Value)> {
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
pub fn panels(dashboard: &Value) -> Vec<&Value> {
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
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub expr: String,
}

pub fn panel_queries() -> Vec<PanelQuery> {
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

pub fn panel_expr(dashboard: &str, panel: &str) -> String {
    panel_exprs(dashboard, panel).remove(0)
}

/// Every query of a panel, in refId order.
pub fn panel_exprs(dashboard: &str, panel: &str) -> Vec<String> {
    let exprs: Vec<String> = panel_queries()
        .into_iter()
        .filter(|q| q.dashboard == dashboard && q.panel == panel)
        .map(|q| q.expr)
        .collect();
    assert!(!exprs.is_empty(), "no panel {panel:?} in {dashboard:?}");
    exprs
}

/// Fill in Grafana's template variables, longest names first.
pub fn substitute(expr: &str, vars: &BTreeMap<&str, String>) -> String {
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

/// A dashboard's template variable queried with
/// `label_values(selector, label)`.
pub struct VariableQuery {
    /// The dashboard file.
    pub file: String,
    /// The variable's name.
    pub name: String,
    /// Its query as written.
    pub def: String,
    /// The selector, with `vars` substituted; none for `label_values(label)`.
    pub selector: Option<String>,
    /// The label whose values it lists.
    pub label: String,
    /// The value that stands for "All", when the variable offers it.
    pub all_value: Option<String>,
}

/// Every query variable of every dashboard; one that is not a
/// `label_values()` query is a failure.
pub fn variable_queries(
    vars: &BTreeMap<&str, String>,
    failures: &mut Vec<String>,
) -> Vec<VariableQuery> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] != "query" {
                continue;
            }
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            let def = v["definition"].as_str().unwrap_or_default().to_owned();
            let Some(args) = def
                .strip_prefix("label_values(")
                .and_then(|a| a.strip_suffix(')'))
            else {
                failures.push(format!(
                    "{file}: variable {name}: not label_values(): {def}"
                ));
                continue;
            };
            let (selector, label) = match args.rsplit_once(',') {
                Some((sel, label)) => (Some(substitute(sel.trim(), vars)), label.trim()),
                None => (None, args.trim()),
            };
            out.push(VariableQuery {
                file: file.clone(),
                label: label.to_owned(),
                selector,
                all_value: (v["includeAll"] == true)
                    .then(|| v["allValue"].as_str().unwrap_or("").to_owned()),
                name,
                def,
            });
        }
    }
    out
}

pub fn variables(cluster: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("cluster", cluster.to_owned()),
        ("namespace", NS.to_owned()),
        ("job", JOB.to_owned()),
        ("__rate_interval", "20s".to_owned()),
        ("__interval", "5s".to_owned()),
        ("__range", "1h".to_owned()),
    ])
}

pub fn run(cmd: &mut Command) -> (bool, String) {
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

/// Metric names a query reads that the exporter does not serve (yet).
pub fn missing_metrics(expr: &str, served: &Metrics) -> Vec<String> {
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

pub fn record_expr(record: &str) -> String {
    rule_groups()
        .into_iter()
        .flat_map(|(_, r)| r)
        .find(|r| r["record"].as_str() == Some(record))
        .and_then(|r| r["expr"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub fn fmt_missing(expr: &str, served: &Metrics) -> String {
    let m = missing_metrics(expr, served);
    if m.is_empty() {
        String::new()
    } else {
        format!(" (the exporter does not serve {})", m.join(", "))
    }
}
