//! The rules (rules/policyreport.rules.yaml) with promtool: `promtool check
//! rules`, and `promtool test rules` over tests/rules/, whose cases cover every
//! alert both firing and not firing and every recording rule. The
//! PrometheusRule in deploy/ matches its generator.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::monitoring::{rule_groups, rule_names, rules_path, run};
use common::repo;

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
