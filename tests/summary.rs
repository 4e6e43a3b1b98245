//! `policyreport-exporter summary`: exact output on the examples, the same
//! numbers as `serve`, exit codes, and a run against the fake API server.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Exporter, freshness_dir, repo, timed_result};
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
        for status in ["compliant", "noncompliant", "excepted"] {
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
    let help = String::from_utf8_lossy(&summary(&["--help"], &[]).stdout).into_owned();
    assert!(
        help.contains("Exit status: 0 when every input was read")
            && help.contains("4 wins over 3")
            && help.contains("--allow-invalid"),
        "{help}"
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

// ---- failing closed ------------------------------------------------------

/// A per-resource PolicyReport about one pod, as YAML.
fn pod_report(ns: &str, pod: &str, results: &str) -> String {
    format!(
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {{name: {pod}, namespace: {ns}}}\n\
         scope: {{apiVersion: v1, kind: Pod, name: {pod}, namespace: {ns}, uid: uid-{pod}}}\n\
         results: {results}\n"
    )
}

const PASSING: &str = "[{policy: require-requests-limits, rule: r, result: pass}]";

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write fixture");
}

fn status(args: &[&str]) -> (Option<i32>, String, String) {
    let out = summary(args, &[]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_status_all_met_is_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "ok.yaml", &pod_report("a", "p1", PASSING));
    let d = dir.path().display().to_string();
    let (code, out, err) = status(&["--files", &d, "--fail-on-targets"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Targets: all met"), "{out}");
    assert!(
        out.contains("Input: 1 files read, 0 refused; 1 reports read, 0 objects invalid"),
        "{out}"
    );
    assert!(err.is_empty(), "nothing refused, nothing on stderr: {err}");
}

#[test]
fn exit_status_target_missed_is_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "bad.yaml",
        &pod_report(
            "a",
            "p1",
            "[{policy: require-requests-limits, rule: r, result: fail}]",
        ),
    );
    let d = dir.path().display().to_string();
    assert_eq!(status(&["--files", &d, "--fail-on-targets"]).0, Some(3));
    assert_eq!(status(&["--files", &d]).0, Some(0), "without the flag");
}

#[test]
fn exit_status_empty_folder_is_3_with_fail_on_targets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let (code, out, _) = status(&["--files", &d, "--fail-on-targets"]);
    assert_eq!(code, Some(3), "nothing to judge is a miss: {out}");
    assert!(
        out.contains("Targets: MISSED (no report was read)"),
        "{out}"
    );
    assert_eq!(status(&["--files", &d]).0, Some(0), "without the flag");
    // A folder of files that hold no report is no better.
    write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    assert_eq!(status(&["--files", &d, "--fail-on-targets"]).0, Some(3));
}

#[test]
fn exit_status_too_large_is_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "ok.yaml", &pod_report("a", "p1", PASSING));
    let big = pod_report("a", "p2", PASSING) + &format!("# {}\n", "x".repeat(2000));
    write(dir.path(), "big.yaml", &big);
    let d = dir.path().display().to_string();
    let (code, _, err) = status(&["--files", &d, "--fail-on-targets", "--max-file-size", "1k"]);
    assert_eq!(code, Some(4), "{err}");
    let path = dir.path().join("big.yaml").display().to_string();
    assert!(
        err.contains(&format!(
            "input refused: {path}: the file has {} bytes, more than --max-file-size (1000 bytes); \
             raise --max-file-size",
            big.len()
        )),
        "{err}"
    );
    assert!(err.contains("exit status 4"), "{err}");
    // 4 wins over 3, and over a pass without --fail-on-targets.
    assert_eq!(status(&["--files", &d, "--max-file-size", "1k"]).0, Some(4));
    // With the default limit (1Gi) the same folder is read whole.
    assert_eq!(status(&["--files", &d, "--fail-on-targets"]).0, Some(0));
}

#[test]
fn exit_status_unparsable_or_missing_file_is_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "ok.yaml", &pod_report("a", "p1", PASSING));
    write(dir.path(), "broken.json", "{\"items\": [");
    let d = dir.path().display().to_string();
    let (code, _, err) = status(&["--files", &d, "--fail-on-targets"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("broken.json: parsing JSON: EOF while parsing"),
        "{err}"
    );
    let missing = dir.path().join("nope").display().to_string();
    let (code, _, err) = status(&["--files", &missing]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("input refused: ") && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn exit_status_invalid_object_is_4_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "ok.yaml", &pod_report("a", "p1", PASSING));
    write(
        dir.path(),
        "invalid.yaml",
        &pod_report("a", "p2", "[{policy: x, result: maybe}]"),
    );
    let d = dir.path().display().to_string();
    let (code, _, err) = status(&["--files", &d, "--fail-on-targets"]);
    assert_eq!(code, Some(4), "{err}");
    let file = dir.path().join("invalid.yaml").display().to_string();
    assert!(
        err.contains(&format!(
            "input refused: file {file}: PolicyReport a/p2: results[0].result: unknown variant `maybe`"
        )),
        "{err}"
    );
    let (code, _, err) = status(&["--files", &d, "--fail-on-targets", "--allow-invalid"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning: 1 input(s) refused"), "{err}");
    // Allowed partial input still misses targets like any other.
    write(
        dir.path(),
        "fail.yaml",
        &pod_report(
            "a",
            "p3",
            "[{policy: require-requests-limits, result: fail}]",
        ),
    );
    assert_eq!(
        status(&["--files", &d, "--fail-on-targets", "--allow-invalid"]).0,
        Some(3)
    );
    assert_eq!(status(&["--files", &d, "--fail-on-targets"]).0, Some(4));
}

#[test]
fn json_input_counts_reads_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a-broken.json", "{");
    let big = pod_report("a", "p9", PASSING) + &format!("# {}\n", "x".repeat(2000));
    write(dir.path(), "b-big.yaml", &big);
    write(dir.path(), "c-ok.yaml", &pod_report("a", "p1", PASSING));
    write(
        dir.path(),
        "d-invalid.yaml",
        &pod_report("a", "p2", "[{result: pass}]"),
    );
    let d = dir.path().display().to_string();
    let out = summary(
        &["--files", &d, "--output", "json", "--max-file-size", "1k"],
        &[],
    );
    assert_eq!(out.status.code(), Some(4));
    let s: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let p = |f: &str| dir.path().join(f).display().to_string();
    assert_eq!(
        s["input"],
        json!({
            "files_read": 2,
            "files_refused": 2,
            "reports_read": 1,
            "objects_invalid": 1,
            "first_problems": [
                {"resource": "files", "location": p("a-broken.json"),
                 "reason": "parsing JSON: EOF while parsing an object at line 1 column 1"},
                {"resource": "files", "location": p("b-big.yaml"),
                 "reason": format!("the file has {} bytes, more than --max-file-size (1000 bytes); \
                                    raise --max-file-size (POLICYREPORT_EXPORTER_MAX_FILE_SIZE) to read it",
                                   big.len())},
                {"resource": "policyreports.wgpolicyk8s.io",
                 "location": format!("file {}: PolicyReport a/p2", p("d-invalid.yaml")),
                 "reason": "results[0]: missing field `policy`"},
            ]
        })
    );
    assert_eq!(s["targets_met"], json!(true), "the one report read passes");
}

// ---- the work list, the verdicts, exceptions ------------------------------

fn worklist_dir() -> String {
    repo().join("tests/worklist").display().to_string()
}

const M_LIMITS: &str = "validation error: CPU and memory resource requests and limits are required. \
                        rule validate-resources failed at path /spec/containers/0/resources/limits/";
const M_LIMITS_LEGACY: &str = "validation error: CPU and memory resource requests and limits are \
                               required. rule validate-resources failed at path \
                               /spec/containers/0/resources/requests/";
const M_AUTOGEN: &str = "validation error: CPU and memory resource requests and limits are required. \
                         rule autogen-validate-resources failed at path \
                         /spec/template/spec/containers/0/resources/limits/";
const M_LATEST: &str = "validation error: Using a mutable image tag e.g. 'latest' is not allowed. \
                        rule validate-image-tag failed at path /spec/containers/0/image/";
/// The first 200 of the fixture's 308 characters.
const M_CUT: &str = "failed to evaluate preconditions: failed to substitute variables in condition key: \
                     variable substitution failed for rule validate-resources: failed to resolve \
                     request.object.spec.containers[0].resourc";
const M_TEAM: &str = "validation error: The label `team` is required. rule check-team failed at path /metadata/labels/team/";

/// An entry: policy, namespace, kind, name, rule, result, message; controls.
fn entry(f: [&str; 7], controls: &[&str]) -> Value {
    let [policy, namespace, kind, name, rule, result, message] = f;
    json!({"policy": policy, "namespace": namespace, "kind": kind, "name": name, "rule": rule,
           "result": result, "message": message, "controls": controls})
}

/// Every entry of the fixtures, in the order printed.
fn all_entries() -> Vec<Value> {
    let rl = ["resource-limits"];
    let rrl = "require-requests-limits";
    vec![
        entry(
            [
                "disallow-latest-tag",
                "shop",
                "Pod",
                "web-1",
                "validate-image-tag",
                "warn",
                M_LATEST,
            ],
            &[],
        ),
        entry(
            [rrl, "batch", "", "", "", "error", "policy evaluation error"],
            &rl,
        ),
        entry(
            [
                rrl,
                "batch",
                "Pod",
                "job-a",
                "validate-resources",
                "fail",
                M_LIMITS_LEGACY,
            ],
            &rl,
        ),
        entry(
            [
                rrl,
                "batch",
                "Pod",
                "job-b",
                "validate-resources",
                "fail",
                M_LIMITS_LEGACY,
            ],
            &rl,
        ),
        entry(
            [
                rrl,
                "dev",
                "Pod",
                "tools",
                "validate-resources",
                "error",
                M_CUT,
            ],
            &rl,
        ),
        entry(
            [
                rrl,
                "shop",
                "Deployment",
                "web",
                "autogen-validate-resources",
                "fail",
                M_AUTOGEN,
            ],
            &rl,
        ),
        entry(
            [
                rrl,
                "shop",
                "Pod",
                "web-1",
                "validate-resources",
                "fail",
                M_LIMITS,
            ],
            &rl,
        ),
        entry(
            [
                "require-team-label",
                "",
                "Namespace",
                "shop",
                "check-team",
                "fail",
                M_TEAM,
            ],
            &[],
        ),
    ]
}

fn failing_json(extra: &[&str]) -> Value {
    let dir = worklist_dir();
    let mut args = vec!["--files", dir.as_str(), "--output", "json", "--failing"];
    args.extend_from_slice(extra);
    json_summary(&args)
}

#[test]
fn work_list_lists_every_failing_subject_once_per_result() {
    let s = failing_json(&[]);
    assert_eq!(s["failing"], Value::Array(all_entries()));
    assert_eq!(M_CUT.chars().count(), 200);
    // Without --failing there is no work list, and the same other numbers.
    let plain = json_summary(&["--files", &worklist_dir(), "--output", "json"]);
    assert_eq!(plain.get("failing"), None);
    let mut without = s.clone();
    without.as_object_mut().expect("object").remove("failing");
    assert_eq!(without, plain);
}

#[test]
fn work_list_filters_and_limit() {
    let all = all_entries();
    let pick = |idx: &[usize]| Value::Array(idx.iter().map(|&i| all[i].clone()).collect());
    let f = |extra: &[&str]| failing_json(extra)["failing"].clone();
    assert_eq!(f(&["--policy", "require-*"]), pick(&[1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(
        f(&["--policy", "*-tag", "--policy", "*-label"]),
        pick(&[0, 7])
    );
    assert_eq!(f(&["--namespace", "shop"]), pick(&[0, 5, 6]));
    assert_eq!(
        f(&["--namespace", "b*", "--namespace", "dev"]),
        pick(&[1, 2, 3, 4])
    );
    assert_eq!(
        f(&["--control", "resource-limits"]),
        pick(&[1, 2, 3, 4, 5, 6])
    );
    assert_eq!(f(&["--control", "approved-registries"]), json!([]));
    assert_eq!(f(&["--kind", "pod"]), pick(&[0, 2, 3, 4, 6]));
    assert_eq!(
        f(&["--kind", "Namespace", "--kind", "Deployment"]),
        pick(&[5, 7])
    );
    assert_eq!(
        f(&[
            "--kind",
            "Pod",
            "--namespace",
            "shop",
            "--control",
            "resource-limits"
        ]),
        pick(&[6])
    );
    assert_eq!(f(&["--limit", "3"]), pick(&[0, 1, 2]));
    assert_eq!(
        f(&["--policy", "require-requests-limits", "--limit", "1"]),
        pick(&[1])
    );
    // Filters need --failing; an unknown control is an error, not an empty list.
    let d = worklist_dir();
    assert_eq!(status(&["--files", &d, "--kind", "Pod"]).0, Some(2));
    let (code, _, err) = status(&["--files", &d, "--failing", "--control", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--control names unknown control \"nope\""),
        "{err}"
    );
}

#[test]
fn work_list_table_groups_by_policy_then_namespace() {
    let d = worklist_dir();
    let run = || summary(&["--files", &d, "--failing"], &[]);
    let (a, b) = (run(), run());
    assert_eq!(a.stdout, b.stdout, "two runs print the same bytes");
    let table = String::from_utf8_lossy(&a.stdout);
    let start = table
        .find("FAILING (8 entries)")
        .expect("work list section");
    let end = table.find("\nInput:").expect("input line");
    let want = format!(
        "FAILING (8 entries)
disallow-latest-tag (1)
  shop (1)
    Pod/web-1  validate-image-tag  warn: {M_LATEST}
require-requests-limits (6)
  batch (3)
    (no subject)  -  error [resource-limits]: policy evaluation error
    Pod/job-a  validate-resources  fail [resource-limits]: {M_LIMITS_LEGACY}
    Pod/job-b  validate-resources  fail [resource-limits]: {M_LIMITS_LEGACY}
  dev (1)
    Pod/tools  validate-resources  error [resource-limits]: {M_CUT}
  shop (2)
    Deployment/web  autogen-validate-resources  fail [resource-limits]: {M_AUTOGEN}
    Pod/web-1  validate-resources  fail [resource-limits]: {M_LIMITS}
require-team-label (1)
  (cluster) (1)
    Namespace/shop  check-team  fail: {M_TEAM}
"
    );
    assert_eq!(&table[start..end], want);
}

#[test]
fn rollout_verdict_per_policy() {
    let s = json_summary(&["--files", &worklist_dir(), "--output", "json"]);
    let row = |policy: &str, mode: &str, failing: u64, audit: u64, blocked: u64, verdict: &str| {
        json!({"policy": policy, "mode": mode, "failing": failing, "audit_admission_failures": audit,
               "blocked_admissions": blocked, "verdict": verdict})
    };
    assert_eq!(
        s["rollout"],
        json!([
            row("add-default-labels", "none", 0, 0, 0, "none"),
            row(
                "disallow-latest-tag",
                "enforce",
                1,
                0,
                0,
                "enforced-failing"
            ),
            row(
                "disallow-privileged-containers",
                "enforce",
                0,
                0,
                3,
                "enforced"
            ),
            row("require-probes", "audit", 0, 2, 0, "fix-first"),
            row("require-requests-limits", "audit", 6, 0, 0, "fix-first"),
            row("require-team-label", "mixed", 1, 0, 0, "partly-enforced"),
            row("restrict-image-registries", "audit", 0, 0, 0, "ready"),
        ])
    );
    let table =
        String::from_utf8_lossy(&summary(&["--files", &worklist_dir()], &[]).stdout).into_owned();
    assert!(
        table.contains(
            "ROLLOUT                         MODE     FAILING  AUDIT FAILURES  BLOCKED  VERDICT\n\
             add-default-labels              none           0               0        0  none\n"
        ),
        "{table}"
    );
    assert!(
        table.contains(
            "restrict-image-registries       audit          0               0        0  ready\n"
        ),
        "{table}"
    );
}

/// Fields of the row of one control in a JSON summary, as an array.
fn control_fields(s: &Value, name: &str, fields: &[&str]) -> Value {
    let row = s["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .find(|c| c["control"] == name)
        .unwrap_or_else(|| panic!("no row for control {name}"));
    fields.iter().map(|f| row[*f].clone()).collect()
}

#[test]
fn excepted_resources_stand_next_to_the_percentage() {
    let s = json_summary(&["--files", &worklist_dir(), "--output", "json"]);
    let control = |name: &str| {
        control_fields(
            &s,
            name,
            &["compliant", "noncompliant", "excepted", "compliance"],
        )
    };
    // web-2 has only skips: excepted, and out of the percentage.
    assert_eq!(control("resource-limits"), json!([1, 4, 1, 20.0]));
    assert_eq!(control("approved-registries"), json!([1, 0, 1, 100.0]));
    assert_eq!(control("secure-context"), json!([1, 0, 0, 100.0]));
    let table =
        String::from_utf8_lossy(&summary(&["--files", &worklist_dir()], &[]).stdout).into_owned();
    assert!(
        table.contains(
            "resource-limits              1             4   20.00% — 1 excepted     100%  MISSED\n"
        ),
        "{table}"
    );
    assert!(
        table.contains(
            "secure-context               1             0               100.00%     100%  met\n"
        ),
        "{table}"
    );
    // serve counts the same resources as excepted.
    let e = Exporter::serve(&["--files", &worklist_dir()], &[]);
    e.wait_ready(Duration::from_secs(20));
    let m = e.metrics();
    let v = |control: &str, ns: &str, status: &str| {
        m.value(
            "policyreport_control_resources",
            &[
                ("control", control),
                ("namespace", ns),
                ("kind", "Pod"),
                ("status", status),
            ],
        )
    };
    assert_eq!(v("resource-limits", "shop", "excepted"), Some(1.0));
    assert_eq!(v("approved-registries", "shop", "excepted"), Some(1.0));
    assert_eq!(v("resource-limits", "shop", "noncompliant"), Some(1.0));
    assert_eq!(v("approved-registries", "shop", "compliant"), Some(1.0));
    assert_eq!(
        v("secure-context", "shop", "excepted"),
        None,
        "web-2 has no secure-context result"
    );
}

// ---- report freshness, filtered results, Markdown -----------------------

fn text(args: &[&str]) -> String {
    String::from_utf8_lossy(&summary(args, &[]).stdout).into_owned()
}

fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .expect("a valid time")
        .to_string()
}

#[test]
fn freshness_per_source_in_text_and_json() {
    let (_dir, d, now) = freshness_dir("pass");
    let (old, new) = (now - 5 * 3600 - 600, now - 600);
    let s = json_summary(&["--files", &d, "--output", "json"]);
    assert_eq!(s["freshness"]["stale_after_seconds"], json!(10800));
    assert_eq!(
        s["freshness"].get("as_of_timestamp_seconds"),
        None,
        "no clock reading"
    );
    // kyverno: 4 reports in shop (2 stale) and the cluster one (stale).
    assert_eq!(
        s["freshness"]["sources"],
        json!([
            {"source": "kyverno", "reports": 5, "stale": 3, "oldest_refresh": rfc3339(old),
             "oldest_refresh_timestamp_seconds": old},
            {"source": "trivy", "reports": 1, "stale": 0, "oldest_refresh": rfc3339(new),
             "oldest_refresh_timestamp_seconds": new},
        ])
    );
    assert_eq!(s["warnings"], json!([]), "passes present: nothing filtered");
    let table = text(&["--files", &d]);
    // The age is of the summary's own clock: 10m, or 10m and a few seconds.
    assert!(
        table.contains(&format!(
            "REPORTS BY SOURCE  REPORTS    STALE  OLDEST REFRESH (stale: newest result older than 3h)\n\
             kyverno                  5        3  {} (5h10m ago)\n\
             trivy                    1        0  {} (10m",
            rfc3339(old),
            rfc3339(new)
        )),
        "{table}"
    );
    let table = text(&["--files", &d, "--stale-after", "0"]);
    assert!(
        table.contains("OLDEST REFRESH (staleness off (--stale-after 0))\nkyverno                  5        -  "),
        "{table}"
    );
}

#[test]
fn fail_results_without_a_single_pass_warn_and_name_allowed_results() {
    let (_dir, d, _) = freshness_dir("fail");
    let s = json_summary(&["--files", &d, "--output", "json"]);
    assert_eq!(
        s["no_pass_results"],
        json!([{"source": "kyverno", "fail": 6}, {"source": "trivy", "fail": 1}])
    );
    let warnings = s["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2);
    let kyverno = warnings[0].as_str().expect("text");
    assert!(
        kyverno.starts_with("source kyverno has 6 fail results and not a single pass result.")
            && kyverno.contains("--allowedResults")
            && kyverno.contains("Not measurable: resource-limits."),
        "{kyverno}"
    );
    let control = |name: &str| {
        control_fields(
            &s,
            name,
            &["noncompliant", "compliance", "met", "measurable"],
        )
    };
    // Not 0%: not measurable. The other controls have no results at all.
    assert_eq!(control("resource-limits"), json!([4, null, null, false]));
    assert_eq!(control("approved-registries"), json!([0, null, null, true]));
    assert_eq!(s["targets_met"], json!(false));
    let (code, table, _) = status(&["--files", &d, "--fail-on-targets"]);
    assert_eq!(code, Some(3), "what cannot be measured is not met");
    assert!(
        table.starts_with(
            "WARNING: source kyverno has 6 fail results and not a single pass result. Kyverno 1.17+"
        ),
        "{table}"
    );
    assert!(
        table.contains("resource-limits              0             4  not measurable     100%  NOT MEASURABLE\n"),
        "{table}"
    );
    let controls = text_rows(&table, "CONTROL ");
    assert!(
        controls.iter().all(|c| c[3] != "0.00%"),
        "no control at 0%: {controls:?}"
    );
    assert!(
        table.contains("Targets: MISSED (not measurable: resource-limits)"),
        "{table}"
    );

    // Passes from another source do not hide a source without any.
    let dir = tempfile::tempdir().expect("tempdir");
    let results = [
        timed_result("require-requests-limits", "pass", "kyverno", None),
        timed_result("vulnerabilities", "fail", "trivy", None),
    ];
    write(
        dir.path(),
        "r.yaml",
        &pod_report("a", "p1", &format!("[{}]", results.join(","))),
    );
    let d = dir.path().display().to_string();
    let s = json_summary(&["--files", &d, "--output", "json"]);
    assert_eq!(
        s["no_pass_results"],
        json!([{"source": "trivy", "fail": 1}])
    );
    let warning = s["warnings"][0].as_str().expect("one warning");
    assert!(!warning.contains("Not measurable"), "{warning}");
    assert_eq!(s["controls"][0]["compliance"], json!(100.0));
    assert_eq!(s["controls"][0]["measurable"], json!(true));
}

/// Cells of the rows of the text table that follows the line starting with
/// `heading`, split on runs of two or more spaces.
fn text_rows(table: &str, heading: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// Cells of the rows of the Markdown table under `### heading`.
fn markdown_rows(md: &str, heading: &str) -> Vec<Vec<String>> {
    md.lines()
        .skip_while(|l| !l.starts_with(&format!("### {heading}")))
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn markdown_shows_the_numbers_of_the_text_output() {
    let args = ["--files", &examples()];
    let table = text(&[&args[..], &["--failing"]].concat());
    let md = text(&[&args[..], &["--output", "markdown"]].concat());
    assert!(md.starts_with("## Policy report summary\n"), "{md}");

    // Targets: the violation rate and every control, with the same values
    // and verdicts, marked.
    let targets = markdown_rows(&md, "Targets");
    let overall = table
        .lines()
        .find(|l| l.starts_with("Overall: "))
        .expect("overall line");
    assert_eq!(targets[0][0], "Violation rate");
    assert!(
        overall.ends_with(&format!(
            "violation rate {} (target {}): {}",
            targets[0][1],
            targets[0][2],
            targets[0][3].trim_start_matches("❌ ")
        )),
        "{overall} vs {:?}",
        targets[0]
    );
    let controls = text_rows(&table, "CONTROL ");
    assert_eq!(controls.len(), 3);
    assert_eq!(targets.len(), 1 + controls.len());
    for (text, md) in controls.iter().zip(&targets[1..]) {
        let [name, _, _, compliance, target, status] = &text[..] else {
            panic!("control row {text:?}")
        };
        assert_eq!(md[0], format!("Control {name}"));
        assert_eq!((&md[1], &md[2]), (compliance, target));
        assert_eq!(md[3], format!("❌ {status}"));
    }
    assert_eq!(targets[1][1], "54.55%");

    // Verdicts: one row per policy, the same numbers and verdict.
    let text_verdicts = text_rows(&table, "ROLLOUT ");
    let md_verdicts = markdown_rows(&md, "Rollout verdicts");
    assert_eq!(md_verdicts.len(), 8);
    assert_eq!(text_verdicts.len(), md_verdicts.len());
    for (t, m) in text_verdicts.iter().zip(&md_verdicts) {
        assert_eq!(&t[..5], &m[..5]);
        assert_eq!(m[5], format!("**{}**", t[5]));
    }

    // The work list: the first 20 entries of the 23, then the count of the rest.
    let total = table
        .lines()
        .find_map(|l| l.strip_prefix("FAILING ("))
        .and_then(|l| l.strip_suffix(" entries)"))
        .expect("work list heading");
    assert_eq!(total, "23");
    assert!(md.contains("### Work list (23 entries)\n"), "{md}");
    let entries = markdown_rows(&md, "Work list");
    assert_eq!(entries.len(), 20);
    assert_eq!(
        entries[0][..5],
        [
            "disallow-latest-tag",
            "dev",
            "Pod/debug-tools",
            "validate-image-tag",
            "warn"
        ]
    );
    assert!(
        md.contains("\n… and 3 more: `policyreport-exporter summary --failing` lists them all.\n"),
        "{md}"
    );

    // Freshness, input and targets lines.
    let fresh_text = text_rows(&table, "REPORTS BY SOURCE");
    let fresh_md = markdown_rows(&md, "Reports by source");
    assert_eq!(fresh_text, fresh_md);
    assert_eq!(fresh_md[0][..3], ["kyverno", "16", "16"]);
    for line in ["Input: ", "Targets: "] {
        let t = table.lines().find(|l| l.starts_with(line)).expect(line);
        assert!(md.contains(t), "{t:?} in\n{md}");
    }
}
