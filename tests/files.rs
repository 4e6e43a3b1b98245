//! `serve --files` end to end: the real binary, real HTTP, real files.

mod common;

use std::process::Command;
use std::time::Duration;

use policyreport_test_support::metrics::{Metrics, render_family};

use common::{Exporter, copy_tree, repo};

const READY: Duration = Duration::from_secs(20);
const FOLLOW: Duration = Duration::from_secs(2);

fn fixtures() -> String {
    repo()
        .join("tests/crosscheck/fixtures")
        .display()
        .to_string()
}

fn examples() -> String {
    repo().join("examples/reports").display().to_string()
}

fn expected(file: &str) -> String {
    let text =
        std::fs::read_to_string(repo().join("tests/crosscheck").join(file)).expect("expected file");
    render_family(
        "policyreport_results",
        &Metrics::parse(&text).family("policyreport_results"),
    )
}

fn results(labels: [&str; 6]) -> [(&'static str, &str); 6] {
    let names = [
        "namespace",
        "policy",
        "category",
        "severity",
        "source",
        "result",
    ];
    std::array::from_fn(|i| (names[i], labels[i]))
}

#[test]
fn fixtures_give_exact_values() {
    let e = Exporter::serve(&["--files", &fixtures()], &[]);
    e.wait_ready(READY);
    let m = e.metrics();
    assert_eq!(m.render_results(), expected("expected-fixtures.txt"));
    let bp = "Best Practices, EKS Best Practices";
    let pins = [
        // 1 per-resource result + a policy-wide result listing 3 pods.
        (
            [
                "team-a",
                "require-requests-limits",
                bp,
                "medium",
                "kyverno",
                "fail",
            ],
            4.0,
        ),
        // ClusterPolicyReport + openreports ClusterReport, namespace empty.
        (["", "require-ns-labels", "", "", "kyverno", "pass"], 2.0),
        // A result's own source overrides the report's top-level source.
        (
            [
                "team-b",
                "check-restart-policy",
                "",
                "",
                "KyvernoValidatingPolicy",
                "fail",
            ],
            1.0,
        ),
        // The same object in two files counts in both.
        (
            [
                "team-c",
                "require-requests-limits",
                bp,
                "medium",
                "kyverno",
                "pass",
            ],
            3.0,
        ),
        // The broken report next to this one in a List is skipped whole.
        (
            [
                "team-d",
                "require-requests-limits",
                bp,
                "medium",
                "kyverno",
                "pass",
            ],
            1.0,
        ),
    ];
    for (labels, value) in pins {
        assert_eq!(
            m.value("policyreport_results", &results(labels)),
            Some(value),
            "{labels:?}"
        );
    }
    assert_eq!(
        m.value(
            "policyreport_results",
            &results([
                "team-d",
                "require-requests-limits",
                bp,
                "medium",
                "kyverno",
                "fail"
            ])
        ),
        None
    );
    for ns in ["team-e", "team-h", "team-i", "team-ignored"] {
        assert!(
            m.family("policyreport_results")
                .keys()
                .all(|l| !l.contains(&("namespace".into(), ns.into()))),
            "no series for {ns}"
        );
    }
    assert_eq!(m.sum("policyreport_results"), 28.0);
    let invalid = |r: &str| {
        m.value(
            "policyreport_exporter_invalid_objects_total",
            &[("resource", r)],
        )
    };
    assert_eq!(
        invalid("policyreports.wgpolicyk8s.io"),
        Some(6.0),
        "broken, missing policy, 4 wrong types"
    );
    assert_eq!(
        invalid("files"),
        Some(2.0),
        "malformed.yaml and truncated.json"
    );
    assert_eq!(
        m.value("policyreport_exporter_synced", &[("resource", "files")]),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "policyreport_exporter_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    let logs = e.logs().join("\n");
    assert!(
        logs.contains("results[1].result") || logs.contains("unknown variant `maybe`"),
        "invalid report logged with reason"
    );
}

#[test]
fn examples_give_exact_values() {
    let e = Exporter::serve(&["--files", &examples()], &[]);
    e.wait_ready(READY);
    let m = e.metrics();
    assert_eq!(m.render_results(), expected("expected-examples.txt"));
    assert_eq!(m.sum("policyreport_results"), 77.0);
    assert_eq!(m.sum("policyreport_exporter_invalid_objects_total"), 0.0);
}

/// The independent Python computation agrees with what is served.
#[test]
fn independent_crosscheck_agrees() {
    for path in [
        examples(),
        fixtures(),
        repo().join("examples").display().to_string(),
        repo()
            .join("tests/crosscheck/rollout")
            .display()
            .to_string(),
        repo()
            .join("tests/crosscheck/kyverno")
            .display()
            .to_string(),
    ] {
        let e = Exporter::serve(&["--files", &path], &[]);
        e.wait_ready(READY);
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("metrics.txt");
        std::fs::write(&out, e.get("/metrics").1).expect("write metrics");
        let status = Command::new("python3")
            .arg(repo().join("tests/crosscheck/crosscheck.py"))
            .arg("--metrics")
            .arg(&out)
            .arg(&path)
            .status()
            .expect("python3 runs (scripts/test installs it with PyYAML)");
        assert!(status.success(), "crosscheck failed for {path}");
    }
}

#[test]
fn follows_file_edits_additions_and_deletions() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("examples/reports"), dir.path());
    let e = Exporter::serve(&["--files", &dir.path().display().to_string()], &[]);
    e.wait_ready(READY);
    let before = e.metrics().sum("policyreport_results");
    assert_eq!(before, 77.0);

    // Add a file with one report of three results.
    let added = dir.path().join("sub/new.yaml");
    std::fs::create_dir_all(added.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &added,
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: n1, namespace: added}\n\
         results:\n- {policy: p, result: fail}\n- {policy: p, result: fail}\n- {policy: q, result: pass}\n",
    )
    .expect("write");
    let fail = [
        ("namespace", "added"),
        ("policy", "p"),
        ("category", ""),
        ("severity", ""),
        ("source", ""),
        ("result", "fail"),
    ];
    e.wait_for("added file", FOLLOW, |m| {
        m.value("policyreport_results", &fail) == Some(2.0)
    });

    // Edit it: one fail becomes a pass.
    std::fs::write(
        &added,
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: n1, namespace: added}\n\
         results:\n- {policy: p, result: fail}\n- {policy: p, result: pass}\n- {policy: q, result: pass}\n",
    )
    .expect("rewrite");
    e.wait_for("edited file", FOLLOW, |m| {
        m.value("policyreport_results", &fail) == Some(1.0)
    });

    // Break it: its contribution goes away and it is counted as invalid.
    // (A rescan between the truncation and the write sees the file empty,
    // which also drops the results: wait for the count as well.)
    std::fs::write(&added, "apiVersion: [\n").expect("break");
    let files_invalid = |m: &Metrics| {
        m.value(
            "policyreport_exporter_invalid_objects_total",
            &[("resource", "files")],
        )
    };
    let m = e.wait_for("broken file", FOLLOW, |m| {
        m.value("policyreport_results", &fail).is_none() && files_invalid(m).is_some()
    });
    assert_eq!(m.sum("policyreport_results"), before);
    assert_eq!(files_invalid(&m), Some(1.0));

    // Delete one of the original files.
    std::fs::remove_file(dir.path().join("staging.yaml")).expect("rm");
    e.wait_for("deleted file", FOLLOW, |m| {
        m.family("policyreport_results")
            .keys()
            .all(|l| !l.contains(&("namespace".into(), "staging".into())))
    });
    std::fs::remove_dir_all(dir.path().join("sub")).expect("rm -r");
    let m = e.metrics();
    assert!(m.sum("policyreport_results") < before);
}

#[test]
fn flags_can_come_from_the_environment() {
    let e = Exporter::serve(
        &[],
        &[
            ("POLICYREPORT_EXPORTER_FILES", &fixtures()),
            ("POLICYREPORT_EXPORTER_EXTRA_LABELS", "rule,kind"),
        ],
    );
    e.wait_ready(READY);
    let m = e.metrics();
    let labels: Vec<String> = m
        .family("policyreport_results")
        .keys()
        .next()
        .expect("a series")
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        labels,
        [
            "category",
            "kind",
            "namespace",
            "policy",
            "result",
            "rule",
            "severity",
            "source"
        ]
    );
    // Extra labels split series but never change the total.
    assert_eq!(m.sum("policyreport_results"), 28.0);
    let autogen = m
        .family("policyreport_results")
        .into_iter()
        .filter(|(l, _)| {
            l.iter()
                .any(|(k, v)| k == "rule" && v.starts_with("autogen-"))
        })
        .count();
    assert!(autogen > 0, "autogen rules appear with --extra-labels rule");
}

#[test]
fn http_endpoints_and_content_negotiation() {
    let e = Exporter::serve(&["--files", &fixtures()], &[]);
    e.wait_ready(READY);
    let (status, ct, body) = e.get_with("/metrics", &[]).expect("GET");
    assert_eq!(status, 200);
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE policyreport_exporter_invalid_objects_total counter"));
    assert!(!body.contains("# EOF"));
    let accept =
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (status, ct, om) = e.get_with("/metrics", &[("Accept", accept)]).expect("GET");
    assert_eq!(status, 200);
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE policyreport_exporter_invalid_objects counter"));
    let without_process = |text: &str| {
        let mut m = Metrics::parse(text);
        m.0.retain(|name, _| !name.starts_with("process_"));
        m
    };
    assert_eq!(
        without_process(&om),
        without_process(&body),
        "same samples in both formats"
    );
    assert!(
        body.contains("\nprocess_resident_memory_bytes "),
        "process metrics are served"
    );
    assert_eq!(e.get("/healthz"), (200, "ok\n".into()));
    assert_eq!(e.get("/readyz"), (200, "ready\n".into()));
    assert_eq!(e.get("/").0, 200);
    assert_eq!(e.get("/metrics/x").0, 404);
    assert_eq!(e.get("/debug/pprof").0, 404);
}

#[test]
fn promtool_accepts_the_output() {
    for extra in [None, Some("rule,kind")] {
        let mut args = vec![
            "--files".to_string(),
            repo().join("examples").display().to_string(),
        ];
        if let Some(x) = extra {
            args.extend(["--extra-labels".into(), x.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = Exporter::serve(&args, &[]);
        e.wait_ready(READY);
        let body = e.get("/metrics").1;
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool is installed (apt-get install prometheus; scripts/test does this)");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), body.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool output");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.trim().is_empty(),
            "promtool check metrics: {text}"
        );
    }
}

#[test]
fn sigterm_stops_the_service() {
    let e = Exporter::serve(&["--files", &fixtures()], &[]);
    e.wait_ready(READY);
    let status = e
        .terminate(Duration::from_secs(5))
        .expect("exits within 5 s of SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
}

#[test]
fn a_missing_path_is_reported_and_the_service_stays_up() {
    let e = Exporter::serve(
        &["--files", "/nonexistent/reports", "--files", &fixtures()],
        &[],
    );
    e.wait_ready(READY);
    let m = e.metrics();
    assert_eq!(m.sum("policyreport_results"), 28.0);
    assert_eq!(
        m.value(
            "policyreport_exporter_invalid_objects_total",
            &[("resource", "files")]
        ),
        Some(3.0)
    );
    assert!(e.logs().iter().any(|l| l.contains("/nonexistent/reports")));
}

/// The rollout fixture set: controls, blocked admissions and policy modes.
#[test]
fn rollout_fixtures_give_exact_values() {
    let dir = repo()
        .join("tests/crosscheck/rollout")
        .display()
        .to_string();
    let e = Exporter::serve(&["--files", &dir], &[]);
    e.wait_ready(READY);
    let m = e.metrics();
    let text = std::fs::read_to_string(repo().join("tests/crosscheck/expected-rollout.txt"))
        .expect("expected");
    let want = Metrics::parse(&text);
    for family in HAND_CHECKED {
        assert_eq!(
            render_family(family, &m.family(family)),
            render_family(family, &want.family(family)),
            "{family}"
        );
    }
    let blocked = |ns: &str, policy: &str, rule: &str, kind: &str, control: &str| {
        let labels = [
            ("namespace", ns),
            ("policy", policy),
            ("rule", rule),
            ("kind", kind),
            ("control", control),
        ];
        m.value("policyreport_admission_blocked_total", &labels)
    };
    // series.count 3 (core/v1) + deprecatedCount 2 (events.k8s.io/v1).
    assert_eq!(
        blocked(
            "shop",
            "require-requests-limits",
            "validate-resources",
            "Pod",
            "resource-limits"
        ),
        Some(5.0)
    );
    // No policy object: the control comes from the category in report results.
    assert_eq!(
        blocked(
            "shop",
            "disallow-host-path",
            "host-path",
            "Pod",
            "secure-context"
        ),
        Some(1.0)
    );
    // A cluster-scoped blocked resource, counted from `count`.
    assert_eq!(
        blocked(
            "",
            "require-ns-labels",
            "check-for-labels-on-namespace",
            "Namespace",
            ""
        ),
        Some(3.0)
    );
    let control = |c: &str, ns: &str, status: &str| {
        m.value(
            "policyreport_control_resources",
            &[
                ("control", c),
                ("namespace", ns),
                ("kind", "Pod"),
                ("status", status),
            ],
        )
    };
    // A pod without uid passing in one file and failing in another.
    assert_eq!(
        control("secure-context", "legacy", "noncompliant"),
        Some(1.0)
    );
    // An error plus a fail; autogen fails on ReplicaSet/Deployment excluded.
    assert_eq!(
        control("resource-limits", "shop", "noncompliant"),
        Some(2.0)
    );
    let info = m.family("policyreport_policy_info");
    let modes = |p: &str| -> Vec<String> {
        info.keys()
            .filter(|l| l.contains(&("policy".into(), p.into())))
            .flat_map(|l| {
                l.iter()
                    .filter(|(k, _)| k == "mode")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    };
    assert_eq!(modes("podsecurity-subrule-baseline"), ["mixed"]);
    assert_eq!(
        modes("disallow-latest-tag"),
        ["audit"],
        "one series although in two files"
    );
    assert!(
        modes("disallow-proc-mount").is_empty(),
        "invalid action: no series"
    );
    assert!(
        m.value(
            "policyreport_exporter_invalid_objects_total",
            &[("resource", "clusterpolicies.kyverno.io")]
        ) >= Some(1.0)
    );
    assert!(
        m.value(
            "policyreport_exporter_invalid_objects_total",
            &[("resource", "events")]
        ) >= Some(1.0)
    );
}

/// The families the hand-checked expected files hold (`expected-*.txt`):
/// all of `common::DATA_FAMILIES` but freshness, which follows the clock.
/// `independent_crosscheck_agrees` checks all of them on the same inputs.
const HAND_CHECKED: [&str; 6] = [
    "policyreport_results",
    "policyreport_control_resources",
    "policyreport_admission_blocked_total",
    "policyreport_admission_audit_failures_total",
    "policyreport_policy_info",
    "policyreport_policy_namespace_mode",
];

/// Kyverno's objects in the shapes of each generation (tests/crosscheck/kyverno,
/// copied to a folder outside the repository): every family equals the
/// hand-checked expectation and the independent Python computation, and
/// nothing counts as invalid.
#[test]
fn kyverno_shapes_give_exact_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("tests/crosscheck/kyverno"), dir.path());
    let path = dir.path().display().to_string();
    let e = Exporter::serve(&["--files", &path], &[]);
    e.wait_ready(READY);
    let body = e.get("/metrics").1;
    let m = Metrics::parse(&body);
    let text = std::fs::read_to_string(repo().join("tests/crosscheck/expected-kyverno.txt"))
        .expect("expected");
    let want = Metrics::parse(&text);
    for family in HAND_CHECKED {
        assert_eq!(
            render_family(family, &m.family(family)),
            render_family(family, &want.family(family)),
            "{family}"
        );
    }
    assert_eq!(m.sum("policyreport_exporter_invalid_objects_total"), 0.0);
    for (resource, n) in [
        ("policyreports.wgpolicyk8s.io", 5.0),
        ("clusterpolicyreports.wgpolicyk8s.io", 1.0),
        ("namespaces", 5.0),
        ("events", 20.0),
        ("clusterpolicies.kyverno.io", 5.0),
        ("policies.kyverno.io", 1.0),
        ("validatingpolicies.policies.kyverno.io", 2.0),
        ("namespacedvalidatingpolicies.policies.kyverno.io", 1.0),
        ("imagevalidatingpolicies.policies.kyverno.io", 1.0),
        ("namespacedimagevalidatingpolicies.policies.kyverno.io", 1.0),
    ] {
        assert_eq!(
            m.value("policyreport_exporter_objects", &[("resource", resource)]),
            Some(n),
            "{resource}"
        );
    }

    let admission =
        |family: &str, ns: &str, policy: &str, rule: &str, kind: &str, control: &str| {
            let labels = [
                ("namespace", ns),
                ("policy", policy),
                ("rule", rule),
                ("kind", kind),
                ("control", control),
            ];
            m.value(family, &labels)
        };
    let blocked = "policyreport_admission_blocked_total";
    let audit = "policyreport_admission_audit_failures_total";
    let rrl = ("require-requests-limits", "validate-resources");
    // Two per-occurrence Events (Kyverno >= 1.12).
    assert_eq!(
        admission(blocked, "prod-eu", rrl.0, rrl.1, "Pod", "resource-limits"),
        Some(2.0)
    );
    // 1.11 series.count, 1.10 count with source.component and no action.
    assert_eq!(
        admission(blocked, "prod-us", rrl.0, rrl.1, "Pod", "resource-limits"),
        Some(4.0)
    );
    assert_eq!(
        admission(blocked, "staging", rrl.0, rrl.1, "Pod", "resource-limits"),
        Some(3.0)
    );
    assert_eq!(
        admission(
            audit,
            "staging",
            "restrict-image-registries",
            "validate-registries",
            "Pod",
            "approved-registries"
        ),
        Some(2.0)
    );
    // No component: counted only because blocked.
    assert_eq!(
        admission(blocked, "dev", rrl.0, rrl.1, "Pod", "resource-limits"),
        Some(1.0)
    );
    assert_eq!(
        admission(audit, "dev", rrl.0, rrl.1, "Pod", "resource-limits"),
        Some(1.0)
    );
    // Rule-less CEL messages (1.16), core/v1 and events.k8s.io/v1; the
    // category glob of the CEL port.
    for ns in ["prod-us", "prod-eu"] {
        assert_eq!(
            admission(
                blocked,
                ns,
                "disallow-host-path",
                "",
                "Pod",
                "secure-context"
            ),
            Some(1.0),
            "{ns}"
        );
    }
    // `error (blocked)` of a NamespacedImageValidatingPolicy; `error` in Audit.
    assert_eq!(
        admission(
            blocked,
            "prod-eu",
            "prod-eu/verify-signed",
            "verify-signed",
            "Pod",
            ""
        ),
        Some(1.0)
    );
    assert_eq!(
        admission(audit, "dev", "verify-images", "verify-images", "Pod", ""),
        Some(1.0)
    );
    assert_eq!(
        admission(audit, "shop", "shop/check-labels", "", "ConfigMap", ""),
        Some(1.0)
    );
    // Cluster-scoped resource; autogen on a Deployment.
    assert_eq!(
        admission(
            blocked,
            "",
            "require-ns-owner",
            "check-owner",
            "Namespace",
            ""
        ),
        Some(1.0)
    );
    assert_eq!(
        admission(
            blocked,
            "prod-us",
            "restrict-image-registries",
            "autogen-validate-registries",
            "Deployment",
            "approved-registries"
        ),
        Some(1.0)
    );
    assert_eq!(
        m.sum(blocked),
        15.0,
        "scan, resource and PolicyApplied Events ignored"
    );
    assert_eq!(m.sum(audit), 5.0);

    // (policy, namespace, the mode in force there), with why.
    let modes = [
        // Spec override for prod-*; cluster-scoped results get no override.
        ("require-requests-limits", "prod-eu", "enforce"),
        ("require-requests-limits", "staging", "audit"),
        ("require-ns-owner", "", "enforce"),
        // Kyverno 1.14-1.18 order: the spec override beats the rule's own
        // failureAction (1.19 would say enforce); `dev` named literally.
        ("restrict-image-registries", "dev", "audit"),
        ("restrict-image-registries", "prod-us", "enforce"),
        // namespaceSelector: labels from Namespace objects; unknown labels match nothing.
        ("disallow-privileged-containers", "dev", "mixed"),
        ("disallow-privileged-containers", "prod-us", "mixed"),
        ("disallow-privileged-containers", "prod-eu", "enforce"),
        ("disallow-privileged-containers", "staging", "enforce"),
        // Namespaced kinds: their own namespace only; CEL kinds one mode.
        ("shop/require-team-label", "shop", "enforce"),
        ("prod-eu/verify-signed", "prod-eu", "enforce"),
        ("verify-images", "dev", "audit"),
    ];
    for (policy, ns, mode) in modes {
        let labels = [("policy", policy), ("namespace", ns), ("mode", mode)];
        assert_eq!(
            m.value("policyreport_policy_namespace_mode", &labels),
            Some(1.0),
            "{policy} in {ns:?} is {mode}"
        );
    }
    assert_eq!(m.family("policyreport_policy_namespace_mode").len(), 21);

    // secure-context counts the CEL ports by their category.
    assert_eq!(
        m.value(
            "policyreport_control_resources",
            &[
                ("control", "secure-context"),
                ("namespace", "prod-us"),
                ("kind", "Pod"),
                ("status", "noncompliant")
            ],
        ),
        Some(1.0)
    );
    // v1beta1 reports with float timestamps count like any other.
    assert_eq!(
        m.value(
            "policyreport_results",
            &results([
                "dev",
                "verify-images",
                "Software Supply Chain Security",
                "high",
                "KyvernoImageValidatingPolicy",
                "error"
            ]),
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "policyreport_results",
            &results([
                "",
                "require-ns-owner",
                "Multi-Tenancy",
                "",
                "kyverno",
                "fail"
            ]),
        ),
        Some(1.0)
    );

    // The independent computation over the same folder.
    let out = dir.path().join("metrics.out");
    std::fs::write(&out, &body).expect("write metrics");
    let status = Command::new("python3")
        .arg(repo().join("tests/crosscheck/crosscheck.py"))
        .arg("--metrics")
        .arg(&out)
        .arg(&path)
        .status()
        .expect("python3 runs (PyYAML is installed by .ci/run)");
    assert!(status.success(), "crosscheck failed for {path}");
}
