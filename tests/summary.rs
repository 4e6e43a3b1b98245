//! `policyreport-exporter summary`: exact output on the examples, the same
//! numbers as `serve`, exit codes, and a run against the fake API server.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Exporter, repo};
use serde_json::{Value, json};

fn summary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"));
    cmd.arg("summary").args(args).env_remove("KUBECONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run summary")
}

fn examples() -> String {
    repo().join("examples").display().to_string()
}

fn json_summary(args: &[&str]) -> Value {
    let out = summary(args, &[]);
    assert!(
        out.status.success(),
        "summary failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary prints JSON")
}

#[test]
fn json_on_the_examples() {
    let s = json_summary(&["--files", &examples(), "--output", "json"]);
    let ns = |name: &str| {
        s["namespaces"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["namespace"] == name)
            .cloned()
    };
    let mut production = ns("production").expect("production row");
    let rate = production["violation_rate"].take().as_f64().expect("rate");
    assert!((rate - 400.0 / 33.0).abs() < 1e-9, "{rate}");
    assert_eq!(
        production,
        json!({"namespace": "production", "pass": 29, "fail": 4, "warn": 1, "error": 1, "skip": 0,
               "violation_rate": null})
    );
    assert_eq!(ns("").map(|r| r["fail"].clone()), Some(json!(1)));
    let overall = &s["overall"];
    assert_eq!(
        (
            &overall["pass"],
            &overall["fail"],
            &overall["warn"],
            &overall["error"],
            &overall["skip"]
        ),
        (&json!(53), &json!(19), &json!(3), &json!(1), &json!(1))
    );
    let rate = overall["violation_rate"].as_f64().expect("rate");
    assert!((rate - 1900.0 / 72.0).abs() < 1e-9, "{rate}");
    assert_eq!(overall["met"], json!(false));
    let controls: Vec<(String, u64, u64)> = s["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .map(|c| {
            (
                c["control"].as_str().unwrap_or_default().to_owned(),
                c["compliant"].as_u64().unwrap_or(99),
                c["noncompliant"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        controls,
        [
            ("resource-limits".to_string(), 6, 5),
            ("approved-registries".to_string(), 6, 5),
            ("secure-context".to_string(), 4, 4)
        ]
    );
    assert_eq!(
        s["blocked"],
        json!([
            {"control": "resource-limits", "blocked": 5},
            {"control": "approved-registries", "blocked": 0},
            {"control": "secure-context", "blocked": 1}
        ])
    );
    assert_eq!(
        s["policies"]["enforce"],
        json!(["disallow-privileged-containers"])
    );
    assert_eq!(s["policies"]["mixed"], json!(["require-requests-limits"]));
    assert_eq!(s["policies"]["audit"].as_array().map(Vec::len), Some(6));
    assert_eq!(s["targets_met"], json!(false));
}

/// `summary` prints the same numbers `serve` exports for the same files.
#[test]
fn summary_agrees_with_serve() {
    let s = json_summary(&["--files", &examples(), "--output", "json"]);
    let e = Exporter::serve(&["--files", &examples()], &[]);
    e.wait_ready(Duration::from_secs(20));
    let m = e.metrics();
    for row in s["namespaces"].as_array().expect("rows") {
        let ns = row["namespace"].as_str().expect("namespace");
        for result in ["pass", "fail", "warn", "error", "skip"] {
            let served: f64 = m
                .family("policyreport_results")
                .iter()
                .filter(|(l, _)| {
                    l.contains(&("namespace".into(), ns.into()))
                        && l.contains(&("result".into(), result.into()))
                })
                .map(|(_, v)| v)
                .sum();
            assert_eq!(row[result].as_f64(), Some(served), "{ns} {result}");
        }
    }
    for c in s["controls"].as_array().expect("controls") {
        let name = c["control"].as_str().expect("name");
        for status in ["compliant", "noncompliant"] {
            let served: f64 = m
                .family("policyreport_control_resources")
                .iter()
                .filter(|(l, _)| {
                    l.contains(&("control".into(), name.into()))
                        && l.contains(&("status".into(), status.into()))
                })
                .map(|(_, v)| v)
                .sum();
            assert_eq!(c[status].as_f64(), Some(served), "{name} {status}");
        }
    }
    let blocked_total: u64 = s["blocked"]
        .as_array()
        .expect("blocked")
        .iter()
        .filter_map(|b| b["blocked"].as_u64())
        .sum();
    assert_eq!(
        blocked_total as f64,
        m.sum("policyreport_admission_blocked_total")
    );
    let policies: usize = s["policies"]
        .as_object()
        .expect("modes")
        .values()
        .filter_map(|v| v.as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(policies, m.family("policyreport_policy_info").len());
}

#[test]
fn exit_codes_follow_targets() {
    let missed = summary(&["--files", &examples(), "--fail-on-targets"], &[]);
    assert_eq!(missed.status.code(), Some(3), "targets missed");
    let table = String::from_utf8_lossy(&missed.stdout);
    assert!(
        table.contains("resource-limits") && table.contains("MISSED"),
        "{table}"
    );
    let no_flag = summary(&["--files", &examples()], &[]);
    assert_eq!(no_flag.status.code(), Some(0), "without --fail-on-targets");
    let relaxed = summary(
        &[
            "--files",
            &examples(),
            "--fail-on-targets",
            "--target",
            "resource-limits=50",
            "--target",
            "approved-registries=50",
            "--target",
            "secure-context=50",
            "--target-violation-rate",
            "30",
        ],
        &[],
    );
    assert_eq!(
        relaxed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&relaxed.stdout)
    );
    let unknown = summary(&["--files", &examples(), "--target", "nope=50"], &[]);
    assert_ne!(unknown.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nope"));
}

#[test]
fn custom_controls_replace_the_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("controls.yaml");
    std::fs::write(
        &file,
        "controls:\n- name: no-latest\n  policies: [disallow-latest-tag]\n  target: 90\n",
    )
    .expect("write");
    let s = json_summary(&[
        "--files",
        &examples(),
        "--output",
        "json",
        "--controls",
        &file.display().to_string(),
    ]);
    let controls = s["controls"].as_array().expect("controls");
    assert_eq!(controls.len(), 1);
    assert_eq!(controls[0]["control"], "no-latest");
    assert_eq!(controls[0]["target"], json!(90.0));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "controls:\n- name: x\n").expect("write");
    let out = summary(
        &[
            "--files",
            &examples(),
            "--controls",
            &bad.display().to_string(),
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("needs at least one of policies or categories")
    );
}
