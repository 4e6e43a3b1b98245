use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::source::Body;

fn object(kind: Kind, ns: &str, name: &str, body: serde_json::Value) -> SourceObject {
    let mut v = body;
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    v["metadata"]["name"] = json!(name);
    v["metadata"]["namespace"] = json!(ns);
    let text = v.to_string();
    if kind.is_report() {
        SourceObject::report(kind, serde_json::from_str(&text).expect("test report"))
    } else {
        SourceObject::object(kind, serde_json::from_str(&text).expect("test object"))
    }
}

fn new_agg(labels: LabelOptions) -> Aggregate {
    Aggregate::new(Config {
        labels,
        ..Config::default()
    })
}

fn apply(agg: &mut Aggregate, origin: &Origin, object: SourceObject) {
    agg.handle(SourceEvent::Apply {
        origin: origin.clone(),
        object,
    });
}

fn snapshot(agg: &Aggregate) -> Vec<(String, u64)> {
    agg.results_snapshot()
        .into_iter()
        .map(|(k, v)| (k.join("|"), v))
        .collect()
}

const W: Origin = Origin::Watch(Kind::PolicyReport);

#[test]
fn counts_each_result_once_per_subject() {
    let mut agg = new_agg(LabelOptions::default());
    // Per-resource layout: scope, no resources.
    apply(
        &mut agg,
        &W,
        object(
            Kind::PolicyReport,
            "prod",
            "uid-1",
            json!({"scope": {"kind": "Pod", "name": "a"}, "results": [
                {"policy": "p1", "result": "fail", "category": "Best Practices, EKS Best Practices",
                 "severity": "medium", "source": "kyverno"},
                {"policy": "p1", "result": "fail", "category": "Best Practices, EKS Best Practices",
                 "severity": "medium", "source": "kyverno"},
                {"policy": "p2", "result": "pass"}]}),
        ),
    );
    // Policy-wide layout: each result lists its subjects.
    apply(
        &mut agg,
        &W,
        object(
            Kind::PolicyReport,
            "prod",
            "cpol-p2",
            json!({"results": [
                {"policy": "p2", "result": "pass", "resources": [
                    {"kind": "Pod", "name": "a"}, {"kind": "Pod", "name": "b"}, {"kind": "Deployment", "name": "d"}]},
                {"policy": "p2", "result": "skip", "resources": []}]}),
        ),
    );
    assert_eq!(
        snapshot(&agg),
        vec![
            (
                "prod|p1|Best Practices, EKS Best Practices|medium|kyverno|fail".into(),
                2
            ),
            ("prod|p2||||pass".into(), 4),
            ("prod|p2||||skip".into(), 1),
        ]
    );
    assert_eq!(agg.stats().objects["policyreports.wgpolicyk8s.io"], 2);
}

#[test]
fn namespace_and_source_rules() {
    let mut agg = new_agg(LabelOptions::default());
    let cluster = Origin::Watch(Kind::ClusterPolicyReport);
    // A cluster report's namespace label is empty even if metadata says otherwise.
    apply(
        &mut agg,
        &cluster,
        object(
            Kind::ClusterPolicyReport,
            "ignored",
            "c1",
            json!({"results": [{"policy": "ns-labels", "result": "fail", "source": "kyverno"}]}),
        ),
    );
    // openreports: the top-level source is the fallback; a result's own wins.
    let rep = Origin::Watch(Kind::Report);
    apply(
        &mut agg,
        &rep,
        object(
            Kind::Report,
            "dev",
            "r1",
            json!({"source": "kyverno", "results": [
                {"policy": "a", "result": "pass"},
                {"policy": "a", "result": "pass", "source": "KyvernoValidatingPolicy"}]}),
        ),
    );
    assert_eq!(
        snapshot(&agg),
        vec![
            ("|ns-labels|||kyverno|fail".into(), 1),
            ("dev|a|||KyvernoValidatingPolicy|pass".into(), 1),
            ("dev|a|||kyverno|pass".into(), 1),
        ]
    );
}

#[test]
fn extra_labels_rule_and_subject_kind() {
    let mut agg = new_agg(LabelOptions {
        rule: true,
        kind: true,
    });
    apply(
        &mut agg,
        &W,
        object(
            Kind::PolicyReport,
            "prod",
            "x",
            json!({"scope": {"kind": "Deployment", "name": "d"}, "results": [
                {"policy": "p", "rule": "autogen-r", "result": "fail"},
                {"policy": "p", "rule": "r", "result": "fail", "resources": [
                    {"kind": "Pod", "name": "a"}, {"kind": "Pod", "name": "b"}, {"name": "nokind"}]}]}),
        ),
    );
    assert_eq!(
        snapshot(&agg),
        vec![
            ("prod|p||||fail|autogen-r|Deployment".into(), 1),
            ("prod|p||||fail|r|".into(), 1),
            ("prod|p||||fail|r|Pod".into(), 2),
        ]
    );
    assert_eq!(
        agg.labels().names(),
        vec![
            "namespace",
            "policy",
            "category",
            "severity",
            "source",
            "result",
            "rule",
            "kind"
        ]
    );
}

#[test]
fn update_replaces_and_delete_subtracts() {
    let mut agg = new_agg(LabelOptions::default());
    let body = |r: &str| json!({"results": [{"policy": "p", "result": r}]});
    apply(
        &mut agg,
        &W,
        object(Kind::PolicyReport, "a", "1", body("fail")),
    );
    apply(
        &mut agg,
        &W,
        object(Kind::PolicyReport, "a", "2", body("fail")),
    );
    apply(
        &mut agg,
        &W,
        object(Kind::PolicyReport, "a", "1", body("pass")),
    );
    assert_eq!(
        snapshot(&agg),
        vec![("a|p||||fail".into(), 1), ("a|p||||pass".into(), 1)]
    );
    agg.handle(SourceEvent::Delete {
        origin: W,
        object: object(Kind::PolicyReport, "a", "2", json!({})),
    });
    assert_eq!(snapshot(&agg), vec![("a|p||||pass".into(), 1)]);
    assert_eq!(agg.series_count(), 1, "the emptied series is freed");
    assert_eq!(agg.stats().objects["policyreports.wgpolicyk8s.io"], 1);
}

#[test]
fn relist_replaces_atomically_and_drops_what_vanished() {
    let mut agg = new_agg(LabelOptions::default());
    let body = |r: &str| json!({"results": [{"policy": "p", "result": r}]});
    for n in ["1", "2", "3"] {
        apply(
            &mut agg,
            &W,
            object(Kind::PolicyReport, "a", n, body("fail")),
        );
    }
    agg.handle(SourceEvent::ResyncStart { origin: W });
    agg.handle(SourceEvent::ResyncApply {
        origin: W,
        object: object(Kind::PolicyReport, "a", "1", body("pass")),
    });
    // Nothing of the relist is visible before it completes.
    assert_eq!(snapshot(&agg), vec![("a|p||||fail".into(), 3)]);
    agg.handle(SourceEvent::ResyncEnd { origin: W });
    assert_eq!(snapshot(&agg), vec![("a|p||||pass".into(), 1)]);
    assert_eq!(agg.stats().objects["policyreports.wgpolicyk8s.io"], 1);
    assert_eq!(agg.series_count(), 1);
}

#[test]
fn relists_of_other_origins_are_independent() {
    let mut agg = new_agg(LabelOptions::default());
    let f = Origin::File(Arc::from(Path::new("/x.yaml")));
    let body = json!({"results": [{"policy": "p", "result": "pass"}]});
    apply(
        &mut agg,
        &W,
        object(Kind::PolicyReport, "a", "1", body.clone()),
    );
    agg.handle(SourceEvent::ResyncStart { origin: f.clone() });
    agg.handle(SourceEvent::ResyncApply {
        origin: f.clone(),
        object: object(Kind::PolicyReport, "a", "1", body),
    });
    agg.handle(SourceEvent::ResyncEnd { origin: f.clone() });
    assert_eq!(
        snapshot(&agg),
        vec![("a|p||||pass".into(), 2)],
        "same name, two origins"
    );
    agg.handle(SourceEvent::ResyncStart { origin: f.clone() });
    agg.handle(SourceEvent::ResyncEnd { origin: f });
    assert_eq!(snapshot(&agg), vec![("a|p||||pass".into(), 1)]);
}

#[test]
fn invalid_reports_are_skipped_whole_counted_once_and_remove_old_values() {
    let mut agg = new_agg(LabelOptions::default());
    let good = json!({"results": [{"policy": "p", "result": "fail"}]});
    let bad =
        json!({"results": [{"policy": "p", "result": "pass"}, {"policy": "p", "result": "maybe"}]});
    apply(
        &mut agg,
        &W,
        object(Kind::PolicyReport, "a", "1", good.clone()),
    );
    apply(
        &mut agg,
        &W,
        object(Kind::PolicyReport, "a", "1", bad.clone()),
    );
    assert!(
        snapshot(&agg).is_empty(),
        "valid→invalid removes the old contribution"
    );
    apply(
        &mut agg,
        &W,
        object(Kind::PolicyReport, "a", "1", bad.clone()),
    );
    assert_eq!(
        agg.stats().invalid["policyreports.wgpolicyk8s.io"],
        1,
        "counted once"
    );
    assert_eq!(agg.stats().objects["policyreports.wgpolicyk8s.io"], 1);
    apply(&mut agg, &W, object(Kind::PolicyReport, "a", "1", good));
    assert_eq!(snapshot(&agg), vec![("a|p||||fail".into(), 1)]);
    let missing_policy = json!({"results": [{"result": "fail"}]});
    apply(
        &mut agg,
        &W,
        object(Kind::PolicyReport, "a", "2", missing_policy),
    );
    assert_eq!(agg.stats().invalid["policyreports.wgpolicyk8s.io"], 2);
    assert_eq!(snapshot(&agg), vec![("a|p||||fail".into(), 1)]);
}

#[test]
fn readiness_follows_sync_targets() {
    let mut agg = new_agg(LabelOptions::default());
    assert!(agg.ready());
    agg.expect_sync("a");
    agg.expect_sync("b");
    assert_eq!(agg.pending_targets(), vec!["a", "b"]);
    agg.handle(SourceEvent::Synced { target: "a".into() });
    assert!(!agg.ready());
    agg.handle(SourceEvent::Synced { target: "b".into() });
    assert!(agg.ready());
}

// ---- controls ------------------------------------------------------------

type ControlSnapshot = BTreeMap<(String, String, String, &'static str), u64>;

fn controls_of(agg: &Aggregate) -> ControlSnapshot {
    let mut out = BTreeMap::new();
    agg.for_each_control(|c, ns, kind, status, n| {
        out.insert(
            (
                c.to_string(),
                ns.to_string(),
                kind.to_string(),
                status.as_str(),
            ),
            n,
        );
    });
    out
}

const OK: &str = "compliant";
const BAD: &str = "noncompliant";
const EXC: &str = "excepted";

fn ctl(
    c: &str,
    ns: &str,
    kind: &str,
    status: &'static str,
    n: u64,
) -> ((String, String, String, &'static str), u64) {
    ((c.into(), ns.into(), kind.into(), status), n)
}

fn pod_report(ns: &str, uid: &str, results: serde_json::Value) -> SourceObject {
    object(
        Kind::PolicyReport,
        ns,
        uid,
        json!({"scope": {"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": format!("pod-{uid}"), "uid": uid},
               "results": results}),
    )
}

#[test]
fn controls_count_pods_by_status() {
    let mut agg = new_agg(LabelOptions::default());
    let rl = |r: &str| {
        json!({"policy": "require-requests-limits", "rule": "validate-resources", "result": r,
                              "category": "Best Practices, EKS Best Practices"})
    };
    let pss = |p: &str, r: &str| json!({"policy": p, "rule": "x", "result": r, "category": "Pod Security Standards (Baseline)"});
    apply(
        &mut agg,
        &W,
        pod_report(
            "prod",
            "u1",
            json!([rl("pass"), pss("disallow-privileged-containers", "pass")]),
        ),
    );
    apply(
        &mut agg,
        &W,
        pod_report(
            "prod",
            "u2",
            json!([
                rl("fail"),
                pss("disallow-host-path", "pass"),
                pss("disallow-capabilities", "warn")
            ]),
        ),
    );
    // An unscored policy writes warn: noncompliant. Error too.
    apply(&mut agg, &W, pod_report("prod", "u3", json!([rl("warn")])));
    apply(&mut agg, &W, pod_report("dev", "u4", json!([rl("error")])));
    // Only skips (a PolicyException): excepted, outside the percentage.
    apply(&mut agg, &W, pod_report("dev", "u5", json!([rl("skip")])));
    // A skip next to a pass is compliant: not every matching result skips.
    apply(
        &mut agg,
        &W,
        pod_report("dev", "u6", json!([rl("skip"), rl("pass")])),
    );
    // A Deployment's autogen rule: not a Pod, excluded by the default controls.
    apply(
        &mut agg,
        &W,
        object(
            Kind::PolicyReport,
            "prod",
            "d1",
            json!({"scope": {"kind": "Deployment", "name": "web", "namespace": "prod", "uid": "d1"},
                   "results": [{"policy": "require-requests-limits", "rule": "autogen-validate-resources", "result": "fail"}]}),
        ),
    );
    assert_eq!(
        controls_of(&agg),
        BTreeMap::from([
            ctl("resource-limits", "dev", "Pod", OK, 1),
            ctl("resource-limits", "dev", "Pod", BAD, 1),
            ctl("resource-limits", "dev", "Pod", EXC, 1),
            ctl("resource-limits", "prod", "Pod", BAD, 2),
            ctl("resource-limits", "prod", "Pod", OK, 1),
            ctl("secure-context", "prod", "Pod", BAD, 1),
            ctl("secure-context", "prod", "Pod", OK, 1),
        ])
    );
    // The excepted pod's exception ends and it fails: it moves, once.
    apply(&mut agg, &W, pod_report("dev", "u5", json!([rl("fail")])));
    assert_eq!(
        controls_of(&agg)
            .get(&ctl("resource-limits", "dev", "Pod", BAD, 0).0)
            .copied(),
        Some(2)
    );
    apply(&mut agg, &W, pod_report("dev", "u5", json!([rl("skip")])));
    agg.handle(SourceEvent::Delete {
        origin: W,
        object: pod_report("dev", "u6", json!([])),
    });
    // Fixing a pod moves it; deleting a report removes it; nothing else is touched.
    apply(
        &mut agg,
        &W,
        pod_report(
            "prod",
            "u2",
            json!([rl("pass"), pss("disallow-host-path", "pass")]),
        ),
    );
    agg.handle(SourceEvent::Delete {
        origin: W,
        object: pod_report("dev", "u4", json!([])),
    });
    assert_eq!(
        controls_of(&agg),
        BTreeMap::from([
            ctl("resource-limits", "dev", "Pod", EXC, 1),
            ctl("resource-limits", "prod", "Pod", BAD, 1),
            ctl("resource-limits", "prod", "Pod", OK, 2),
            ctl("secure-context", "prod", "Pod", OK, 2),
        ])
    );
}

#[test]
fn policy_wide_reports_combine_per_pod() {
    // Kyverno <= 1.10: one report per policy, the same pod in several.
    let mut agg = new_agg(LabelOptions::default());
    let res = |names: &[&str]| -> serde_json::Value {
        names
            .iter()
            .map(|n| json!({"apiVersion": "v1", "kind": "Pod", "namespace": "batch", "name": n}))
            .collect()
    };
    apply(
        &mut agg,
        &W,
        object(
            Kind::PolicyReport,
            "batch",
            "cpol-disallow-privileged-containers",
            json!({"results": [
                {"policy": "disallow-privileged-containers", "result": "pass", "category": "Pod Security Standards (Baseline)", "resources": res(&["a", "b"])}]}),
        ),
    );
    apply(
        &mut agg,
        &W,
        object(
            Kind::PolicyReport,
            "batch",
            "cpol-require-run-as-nonroot",
            json!({"results": [
                {"policy": "require-run-as-nonroot", "result": "fail", "category": "Pod Security Standards (Restricted)", "resources": res(&["b"])},
                {"policy": "require-run-as-nonroot", "result": "pass", "category": "Pod Security Standards (Restricted)", "resources": res(&["a", "c"])}]}),
        ),
    );
    // a: pass+pass, b: pass+fail, c: pass → 2 compliant, 1 noncompliant; b counted once.
    assert_eq!(
        controls_of(&agg),
        BTreeMap::from([
            ctl("secure-context", "batch", "Pod", BAD, 1),
            ctl("secure-context", "batch", "Pod", OK, 2)
        ])
    );
    agg.handle(SourceEvent::Delete {
        origin: W,
        object: object(
            Kind::PolicyReport,
            "batch",
            "cpol-require-run-as-nonroot",
            json!({}),
        ),
    });
    assert_eq!(
        controls_of(&agg),
        BTreeMap::from([ctl("secure-context", "batch", "Pod", OK, 2)])
    );
}

#[test]
fn relists_activate_in_listing_order() {
    // One uid under two namespaces (only possible with inconsistent input):
    // the resource takes the namespace of the first report listed, always.
    for _ in 0..20 {
        let mut agg = new_agg(LabelOptions::default());
        let f = Origin::File(Arc::from(Path::new("/f.yaml")));
        agg.handle(SourceEvent::ResyncStart { origin: f.clone() });
        for (ns, r) in [("q8a", "pass"), ("q8b", "fail")] {
            let results = json!([{"policy": "require-requests-limits", "result": r}]);
            agg.handle(SourceEvent::ResyncApply {
                origin: f.clone(),
                object: pod_report(ns, "same-uid", results),
            });
        }
        agg.handle(SourceEvent::ResyncEnd { origin: f });
        assert_eq!(
            controls_of(&agg),
            BTreeMap::from([ctl("resource-limits", "q8a", "Pod", BAD, 1)])
        );
    }
}

// ---- blocked admissions and policies --------------------------------------

fn blocked_event(
    name: &str,
    uid: &str,
    policy_kind: &str,
    policy: &str,
    msg: &str,
    count: serde_json::Value,
) -> SourceObject {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Event", "reason": "PolicyViolation", "type": "Warning",
        "action": "Resource Blocked", "reportingComponent": "kyverno-admission",
        "involvedObject": {"apiVersion": "kyverno.io/v1", "kind": policy_kind, "name": policy, "namespace": "team"},
        "message": msg,
    });
    if let Some(obj) = count.as_object() {
        for (k, val) in obj {
            v[k] = val.clone();
        }
    }
    let mut o = object(Kind::Event, "default", name, v);
    if let Body::Object(raw) = &mut o.body {
        raw.metadata.uid = Some(uid.into());
    }
    o
}

type BlockedSnapshot = BTreeMap<(String, String, String, String, String), u64>;

fn blocked_of(agg: &Aggregate) -> BlockedSnapshot {
    let mut out = BTreeMap::new();
    agg.for_each_blocked(|ns, p, r, k, c, n| {
        out.insert((ns.into(), p.into(), r.into(), k.into(), c.into()), n);
    });
    out
}

fn blk(
    ns: &str,
    p: &str,
    r: &str,
    k: &str,
    c: &str,
    n: u64,
) -> ((String, String, String, String, String), u64) {
    ((ns.into(), p.into(), r.into(), k.into(), c.into()), n)
}

#[test]
fn blocked_admissions_count_increases_only() {
    let ev = Origin::Watch(Kind::Event);
    let mut agg = new_agg(LabelOptions::default());
    let msg = "Pod prod/p1: [validate-resources] fail (blocked); validation error: limits required";
    apply(
        &mut agg,
        &ev,
        blocked_event(
            "e1",
            "u1",
            "ClusterPolicy",
            "require-requests-limits",
            msg,
            json!({"count": 2}),
        ),
    );
    // Grows through series.count: only the increase is added.
    apply(
        &mut agg,
        &ev,
        blocked_event(
            "e1",
            "u1",
            "ClusterPolicy",
            "require-requests-limits",
            msg,
            json!({"count": 2, "series": {"count": 5}}),
        ),
    );
    // An audit failure is not a block; a namespaced Policy uses namespace/name.
    apply(
        &mut agg,
        &ev,
        blocked_event(
            "e2",
            "u2",
            "ClusterPolicy",
            "require-requests-limits",
            "Pod prod/p2: [validate-resources] fail; validation error",
            json!({"action": "Resource Passed"}),
        ),
    );
    apply(
        &mut agg,
        &ev,
        blocked_event(
            "e3",
            "u3",
            "Policy",
            "require-team",
            "ConfigMap team/c: [check-team] fail (blocked); missing label",
            json!({}),
        ),
    );
    let expected = BTreeMap::from([
        blk(
            "prod",
            "require-requests-limits",
            "validate-resources",
            "Pod",
            "resource-limits",
            5,
        ),
        blk(
            "team",
            "team/require-team",
            "check-team",
            "ConfigMap",
            "",
            1,
        ),
    ]);
    assert_eq!(blocked_of(&agg), expected);
    let mut audit = BTreeMap::new();
    agg.for_each_audit_failure(|ns, p, r, k, c, n| {
        audit.insert(
            (
                ns.to_owned(),
                p.to_owned(),
                r.to_owned(),
                k.to_owned(),
                c.to_owned(),
            ),
            n,
        );
    });
    assert_eq!(
        audit,
        BTreeMap::from([blk(
            "prod",
            "require-requests-limits",
            "validate-resources",
            "Pod",
            "resource-limits",
            1
        )]),
        "the audit failure is the enforce forecast"
    );
    // Expiry never decreases; a relist of the same events adds nothing.
    agg.handle(SourceEvent::Delete {
        origin: ev.clone(),
        object: blocked_event("e3", "u3", "Policy", "require-team", "", json!({})),
    });
    agg.handle(SourceEvent::ResyncStart { origin: ev.clone() });
    agg.handle(SourceEvent::ResyncApply {
        origin: ev.clone(),
        object: blocked_event(
            "e1",
            "u1",
            "ClusterPolicy",
            "require-requests-limits",
            msg,
            json!({"series": {"count": 5}}),
        ),
    });
    agg.handle(SourceEvent::ResyncEnd { origin: ev.clone() });
    assert_eq!(blocked_of(&agg), expected);
    assert_eq!(
        agg.stats().objects["events"],
        1,
        "events missing from the relist are dropped"
    );
    // A new event under an old name (new uid) counts in full: the API
    // server deletes the old one first.
    agg.handle(SourceEvent::Delete {
        origin: ev.clone(),
        object: blocked_event("e1", "u1", "ClusterPolicy", "", "", json!({})),
    });
    apply(
        &mut agg,
        &ev,
        blocked_event(
            "e1",
            "u9",
            "ClusterPolicy",
            "require-requests-limits",
            msg,
            json!({"count": 3}),
        ),
    );
    assert_eq!(
        blocked_of(&agg)[&(
            "prod".into(),
            "require-requests-limits".into(),
            "validate-resources".into(),
            "Pod".into(),
            "resource-limits".into()
        )],
        8
    );
    assert_eq!(agg.stats().objects["events"], 1);
    // Malformed events are counted as invalid and change nothing.
    let bad = object(
        Kind::Event,
        "default",
        "bad",
        json!({"reason": "PolicyViolation", "count": "many"}),
    );
    apply(&mut agg, &ev, bad);
    assert_eq!(agg.stats().invalid["events"], 1);
}

#[test]
fn blocked_control_follows_the_policy_category() {
    let mut agg = new_agg(LabelOptions::default());
    let ev = Origin::Watch(Kind::Event);
    apply(
        &mut agg,
        &ev,
        blocked_event(
            "e1",
            "u1",
            "ClusterPolicy",
            "disallow-host-path",
            "Pod prod/p: [host-path] fail (blocked); no",
            json!({}),
        ),
    );
    assert_eq!(
        blocked_of(&agg),
        BTreeMap::from([blk("prod", "disallow-host-path", "host-path", "Pod", "", 1)])
    );
    // Learned from the policy object's annotation.
    let pol = Origin::Watch(Kind::ClusterPolicy);
    apply(
        &mut agg,
        &pol,
        object(
            Kind::ClusterPolicy,
            "",
            "disallow-host-path",
            json!({
        "metadata": {"name": "disallow-host-path", "annotations": {"policies.kyverno.io/category": "Pod Security Standards (Baseline)"}},
        "spec": {"validationFailureAction": "Enforce", "rules": [{"validate": {}}]}}),
        ),
    );
    assert_eq!(
        blocked_of(&agg),
        BTreeMap::from([blk(
            "prod",
            "disallow-host-path",
            "host-path",
            "Pod",
            "secure-context",
            1
        )])
    );
}

#[test]
fn policies_by_mode() {
    let mut agg = new_agg(LabelOptions::default());
    let pol = Origin::Watch(Kind::ClusterPolicy);
    let p = |action: &str| json!({"spec": {"validationFailureAction": action, "rules": [{"validate": {}}]}});
    apply(
        &mut agg,
        &pol,
        object(Kind::ClusterPolicy, "", "a", p("Audit")),
    );
    apply(
        &mut agg,
        &pol,
        object(Kind::ClusterPolicy, "", "b", p("enforce")),
    );
    let modes = |agg: &Aggregate| -> Vec<(String, &'static str)> {
        agg.policies()
            .map(|p| (p.policy.clone(), p.mode.as_str()))
            .collect()
    };
    assert_eq!(
        modes(&agg),
        [("a".to_string(), "audit"), ("b".to_string(), "enforce")]
    );
    apply(
        &mut agg,
        &pol,
        object(Kind::ClusterPolicy, "", "a", p("Enforce")),
    );
    assert_eq!(
        modes(&agg),
        [("a".to_string(), "enforce"), ("b".to_string(), "enforce")]
    );
    apply(
        &mut agg,
        &pol,
        object(Kind::ClusterPolicy, "", "b", p("Block")),
    );
    assert_eq!(
        modes(&agg),
        [("a".to_string(), "enforce")],
        "invalid policy removed"
    );
    assert_eq!(agg.stats().invalid["clusterpolicies.kyverno.io"], 1);
    let np = Origin::Watch(Kind::Policy);
    apply(&mut agg, &np, object(Kind::Policy, "team", "c", p("Audit")));
    assert_eq!(modes(&agg)[1], ("team/c".to_string(), "audit"));
}

// ---- property test -------------------------------------------------------

const POLICIES: [&str; 3] = [
    "require-requests-limits",
    "restrict-image-registries",
    "ns/team",
];
const CATEGORIES: [Option<&str>; 3] = [
    None,
    Some("Best Practices"),
    Some("Pod Security Standards (Baseline)"),
];
const OUTCOMES: [&str; 5] = ["pass", "fail", "warn", "error", "skip"];
const KINDS: [&str; 2] = ["Pod", "Deployment"];
const SOURCES: [&str; 2] = ["kyverno", "trivy"];
/// Result timestamps: stale, fresh, and exactly at the 3h cutoff (fresh).
const TIMES: [i64; 3] = [T - 5 * H - 600, T - 600, T - 3 * H];

#[derive(Clone, Debug)]
struct GenResult {
    policy: usize,
    category: usize,
    outcome: usize,
    subjects: Vec<usize>,
    source: Option<usize>,
    timestamp: Option<usize>,
}

#[derive(Clone, Debug)]
struct GenReport {
    results: Vec<GenResult>,
    invalid: bool,
    top_source: bool,
}

impl GenReport {
    /// A result's source: its own, else the report's.
    fn source_of(&self, r: &GenResult) -> &'static str {
        match (r.source, self.top_source) {
            (Some(s), _) => SOURCES[s],
            (None, true) => "kyverno",
            (None, false) => "",
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut results: Vec<_> = self
            .results
            .iter()
            .map(|r| {
                let mut v = json!({"policy": POLICIES[r.policy], "result": OUTCOMES[r.outcome]});
                if let Some(c) = CATEGORIES[r.category] {
                    v["category"] = json!(c);
                }
                if let Some(s) = r.source {
                    v["source"] = json!(SOURCES[s]);
                }
                if let Some(t) = r.timestamp {
                    v["timestamp"] = json!({"seconds": TIMES[t], "nanos": 0});
                }
                if !r.subjects.is_empty() {
                    v["resources"] = r
                        .subjects
                        .iter()
                        .map(|k| json!({"kind": KINDS[*k], "name": "x"}))
                        .collect();
                }
                v
            })
            .collect();
        if self.invalid {
            results.push(json!({"policy": "p", "result": "maybe"}));
        }
        let mut body = json!({"scope": {"kind": "Pod", "name": "x"}, "results": results});
        if self.top_source {
            body["source"] = json!("kyverno");
        }
        body
    }
}

#[derive(Clone, Debug)]
enum Op {
    Apply(usize, usize, usize, GenReport),
    Delete(usize, usize, usize),
    Relist(usize, Vec<(usize, usize, GenReport)>),
    AbandonedRelist(usize, Vec<(usize, usize, GenReport)>),
}

fn origins() -> [Origin; 3] {
    [
        Origin::Watch(Kind::PolicyReport),
        Origin::Watch(Kind::ClusterPolicyReport),
        Origin::File(Arc::from(Path::new("/reports/a.yaml"))),
    ]
}

fn kind_of(origin: usize) -> Kind {
    [
        Kind::PolicyReport,
        Kind::ClusterPolicyReport,
        Kind::PolicyReport,
    ][origin]
}

fn report_strategy() -> impl Strategy<Value = GenReport> + Clone {
    let result = (
        0..3usize,
        0..3usize,
        0..5usize,
        prop::collection::vec(0..2usize, 0..3),
        prop::option::weighted(0.3, 0..2usize),
        prop::option::weighted(0.7, 0..3usize),
    )
        .prop_map(
            |(policy, category, outcome, subjects, source, timestamp)| GenResult {
                policy,
                category,
                outcome,
                subjects,
                source,
                timestamp,
            },
        );
    (
        prop::collection::vec(result, 0..5),
        prop::bool::weighted(0.1),
        any::<bool>(),
    )
        .prop_map(|(results, invalid, top_source)| GenReport {
            results,
            invalid,
            top_source,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let entry = (0..2usize, 0..4usize, report_strategy());
    prop_oneof![
        5 => (0..3usize, 0..2usize, 0..4usize, report_strategy()).prop_map(|(o, ns, n, r)| Op::Apply(o, ns, n, r)),
        2 => (0..3usize, 0..2usize, 0..4usize).prop_map(|(o, ns, n)| Op::Delete(o, ns, n)),
        1 => (0..3usize, prop::collection::vec(entry.clone(), 0..6)).prop_map(|(o, e)| Op::Relist(o, e)),
        1 => (0..3usize, prop::collection::vec(entry, 0..3)).prop_map(|(o, e)| Op::AbandonedRelist(o, e)),
    ]
}

type Model = HashMap<(usize, String, String), GenReport>;

/// The valid reports of the model, each with its namespace (empty for the
/// cluster-scoped kinds).
fn valid_reports(model: &Model) -> impl Iterator<Item = (&str, &GenReport)> {
    model
        .iter()
        .filter(|(_, report)| !report.invalid)
        .map(|((origin, ns, _), report)| {
            let ns = if kind_of(*origin).namespaced() {
                ns.as_str()
            } else {
                ""
            };
            (ns, report)
        })
}

/// The expected series, computed directly from the final set by the rules.
fn from_scratch(model: &Model) -> BTreeMap<Vec<String>, u64> {
    let mut out: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for (ns, report) in valid_reports(model) {
        for r in &report.results {
            let key = vec![
                ns.to_string(),
                POLICIES[r.policy].to_string(),
                CATEGORIES[r.category].unwrap_or("").to_string(),
                String::new(),
                report.source_of(r).to_string(),
                OUTCOMES[r.outcome].to_string(),
            ];
            *out.entry(key).or_default() += r.subjects.len().max(1) as u64;
        }
    }
    out
}

/// The expected control tallies, computed directly from the final set.
fn controls_from_scratch(model: &Model) -> ControlSnapshot {
    // (control, namespace, kind, name) -> (pass, bad, skip)
    type Resource = (String, String, String, String);
    let mut tallies: BTreeMap<Resource, (u32, u32, u32)> = BTreeMap::new();
    for (ns, report) in valid_reports(model) {
        for r in &report.results {
            let (pass, bad, skip) = match OUTCOMES[r.outcome] {
                "pass" => (1, 0, 0),
                "skip" => (0, 0, 1),
                _ => (0, 1, 0),
            };
            // A result can belong to several controls.
            let mut controls = Vec::new();
            match POLICIES[r.policy] {
                "require-requests-limits" => controls.push("resource-limits"),
                "restrict-image-registries" => controls.push("approved-registries"),
                _ => {}
            }
            if CATEGORIES[r.category] == Some("Pod Security Standards (Baseline)") {
                controls.push("secure-context");
            }
            let kinds: Vec<&str> = if r.subjects.is_empty() {
                vec!["Pod"]
            } else {
                r.subjects.iter().map(|k| KINDS[*k]).collect()
            };
            for control in controls {
                for kind in kinds.iter().filter(|k| **k == "Pod") {
                    let t = tallies
                        .entry((control.into(), ns.into(), (*kind).into(), "x".into()))
                        .or_default();
                    t.0 += pass;
                    t.1 += bad;
                    t.2 += skip;
                }
            }
        }
    }
    let mut out = ControlSnapshot::new();
    for ((c, ns, kind, _), (pass, bad, skip)) in tallies {
        let status = if bad > 0 {
            BAD
        } else if pass > 0 {
            OK
        } else if skip > 0 {
            EXC
        } else {
            continue;
        };
        *out.entry((c, ns, kind, status)).or_default() += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_from_scratch(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let origins = origins();
        let clock = Clock::manual(T);
        let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
        let mut model: Model = HashMap::new();
        let namespaces = ["prod", "dev"];
        let obj = |o: usize, ns: usize, n: usize, r: &GenReport| {
            object(kind_of(o), namespaces[ns], &format!("r{n}"), r.json())
        };
        // Cluster-scoped kinds ignore the namespace in their identity.
        let key = |o: usize, ns: usize, n: usize| {
            let ns = if kind_of(o).namespaced() { namespaces[ns] } else { "" };
            (o, ns.to_string(), format!("r{n}"))
        };
        for op in ops {
            match op {
                Op::Apply(o, ns, n, r) => {
                    agg.handle(SourceEvent::Apply { origin: origins[o].clone(), object: obj(o, ns, n, &r) });
                    model.insert(key(o, ns, n), r);
                }
                Op::Delete(o, ns, n) => {
                    agg.handle(SourceEvent::Delete {
                        origin: origins[o].clone(),
                        object: obj(o, ns, n, &GenReport { results: vec![], invalid: false, top_source: false }),
                    });
                    model.remove(&key(o, ns, n));
                }
                Op::Relist(o, entries) => {
                    agg.handle(SourceEvent::ResyncStart { origin: origins[o].clone() });
                    model.retain(|(mo, _, _), _| *mo != o);
                    for (ns, n, r) in entries {
                        agg.handle(SourceEvent::ResyncApply { origin: origins[o].clone(), object: obj(o, ns, n, &r) });
                        model.insert(key(o, ns, n), r);
                    }
                    agg.handle(SourceEvent::ResyncEnd { origin: origins[o].clone() });
                }
                Op::AbandonedRelist(o, entries) => {
                    // A relist interrupted by a new one: only the second counts.
                    agg.handle(SourceEvent::ResyncStart { origin: origins[o].clone() });
                    for (ns, n, r) in entries {
                        agg.handle(SourceEvent::ResyncApply { origin: origins[o].clone(), object: obj(o, ns, n, &r) });
                    }
                    agg.handle(SourceEvent::ResyncStart { origin: origins[o].clone() });
                    let current: Vec<_> = model.iter().filter(|((mo, _, _), _)| *mo == o)
                        .map(|(k, r)| (k.clone(), r.clone())).collect();
                    for ((_, ns, name), r) in current {
                        let object = object(kind_of(o), &ns, &name, r.json());
                        agg.handle(SourceEvent::ResyncApply { origin: origins[o].clone(), object });
                    }
                    agg.handle(SourceEvent::ResyncEnd { origin: origins[o].clone() });
                }
            }
            prop_assert_eq!(agg.results_snapshot(), from_scratch(&model));
            prop_assert_eq!(controls_of(&agg), controls_from_scratch(&model));
            prop_assert_eq!(freshness_of(&agg), freshness_from_scratch(&model, T));
        }
        let expected = from_scratch(&model);
        prop_assert_eq!(agg.series_count(), expected.len(), "no series leaked");
        let held: u64 = agg.stats().objects.values().sum();
        prop_assert_eq!(held, model.len() as u64);
        // And a fresh aggregate fed only the final set agrees.
        let mut fresh = new_agg(LabelOptions::default());
        for ((o, ns, name), r) in &model {
            let object = object(kind_of(*o), ns, name, r.json());
            fresh.handle(SourceEvent::Apply { origin: origins[*o].clone(), object });
        }
        prop_assert_eq!(fresh.results_snapshot(), expected);
        // An hour later the fresh ones stale too, without a report changing.
        clock.set(T + H);
        agg.tick();
        prop_assert_eq!(freshness_of(&agg), freshness_from_scratch(&model, T + H));
    }
}

fn policy_reporter_snapshot(agg: &Aggregate) -> Vec<String> {
    let mut out = Vec::new();
    agg.for_each_policy_reporter_result(|l, n| {
        out.push(format!(
            "{}|{}|{}|{}|{}|{} {n}",
            l.namespace, l.policy, l.status, l.severity, l.category, l.source
        ))
    });
    out.sort();
    out
}

#[test]
fn policy_reporter_counts_results_not_subjects() {
    let mut agg = Aggregate::new(Config {
        policy_reporter: true,
        ..Config::default()
    });
    let report = |results: serde_json::Value| {
        object(
            Kind::PolicyReport,
            "prod",
            "cpol-p",
            json!({ "results": results }),
        )
    };
    apply(
        &mut agg,
        &W,
        report(json!([
            {"policy": "p", "result": "fail", "source": "kyverno", "resources": [
                {"kind": "Pod", "name": "a"}, {"kind": "Pod", "name": "b"}]},
            {"policy": "p", "result": "fail", "category": "", "resources": [{"kind": "Pod", "name": "c"}]},
            {"policy": "q", "result": "pass", "source": "", "category": "C", "severity": "low"}])),
    );
    assert_eq!(
        policy_reporter_snapshot(&agg),
        [
            "prod|p|fail||Other|kyverno 2",
            "prod|q|pass|low|C|kyverno 1"
        ]
    );
    // Our own family counts subjects, without the fallbacks.
    assert_eq!(snapshot(&agg)[0], ("prod|p||||fail".to_string(), 1));
    assert_eq!(snapshot(&agg)[1], ("prod|p|||kyverno|fail".to_string(), 2));

    // An update replaces, a relist replaces atomically, a delete removes:
    // nothing is left behind in the table.
    apply(
        &mut agg,
        &W,
        report(json!([{"policy": "p", "result": "pass", "source": "kyverno"}])),
    );
    assert_eq!(
        policy_reporter_snapshot(&agg),
        ["prod|p|pass||Other|kyverno 1"]
    );
    agg.handle(SourceEvent::ResyncStart { origin: W.clone() });
    agg.handle(SourceEvent::ResyncApply {
        origin: W.clone(),
        object: report(json!([{"policy": "p", "result": "warn"}])),
    });
    assert_eq!(
        policy_reporter_snapshot(&agg),
        ["prod|p|pass||Other|kyverno 1"]
    );
    agg.handle(SourceEvent::ResyncEnd { origin: W.clone() });
    assert_eq!(policy_reporter_snapshot(&agg), ["prod|p|warn||Other| 1"]);
    agg.handle(SourceEvent::Delete {
        origin: W.clone(),
        object: report(json!([])),
    });
    assert!(policy_reporter_snapshot(&agg).is_empty());
    assert_eq!(agg.policy_reporter.as_ref().map(SeriesTable::len), Some(0));
    assert_eq!(agg.series.len(), 0);

    // Off by default: nothing is kept.
    let mut off = new_agg(LabelOptions::default());
    apply(
        &mut off,
        &W,
        report(json!([{"policy": "p", "result": "pass"}])),
    );
    assert!(!off.policy_reporter_enabled());
    assert!(policy_reporter_snapshot(&off).is_empty());
}

fn namespace_modes(agg: &Aggregate) -> Vec<String> {
    let mut out = Vec::new();
    agg.for_each_namespace_mode(|p, ns, m| out.push(format!("{p}|{ns}|{m}")));
    out
}

#[test]
fn namespace_modes_follow_results_overrides_and_namespace_labels() {
    let mut agg = new_agg(LabelOptions::default());
    let w = |k: Kind| Origin::Watch(k);
    for (ns, policy) in [
        ("prod-a", "p"),
        ("dev", "p"),
        ("", "p"),
        ("team", "team/q"),
        ("other", "team/q"),
    ] {
        let kind = if ns.is_empty() {
            Kind::ClusterPolicyReport
        } else {
            Kind::PolicyReport
        };
        let body = json!({"results": [{"policy": policy, "result": "fail"}]});
        apply(
            &mut agg,
            &w(kind),
            object(kind, ns, &format!("r-{policy}"), body),
        );
    }
    let p = json!({"spec": {"validationFailureAction": "Audit",
        "validationFailureActionOverrides": [
            {"action": "Enforce", "namespaces": ["prod-*"]},
            {"action": "Enforce", "namespaces": ["literal"], "namespaceSelector": {"matchLabels": {"tier": "prod"}}}],
        "rules": [{"name": "r", "validate": {}}]}});
    apply(
        &mut agg,
        &w(Kind::ClusterPolicy),
        object(Kind::ClusterPolicy, "", "p", p.clone()),
    );
    let q = json!({"spec": {"validationActions": ["Deny"]}});
    apply(
        &mut agg,
        &w(Kind::NamespacedValidatingPolicy),
        object(Kind::NamespacedValidatingPolicy, "team", "q", q),
    );
    let none = json!({"spec": {"rules": [{"name": "m", "mutate": {}}]}});
    apply(
        &mut agg,
        &w(Kind::ClusterPolicy),
        object(Kind::ClusterPolicy, "", "m", none),
    );
    assert_eq!(
        namespace_modes(&agg),
        [
            "p||audit",
            "p|dev|audit",
            "p|literal|audit",
            "p|prod-a|enforce",
            "team/q|team|enforce"
        ],
        "sorted; a namespaced policy has its own namespace only; mode none has no series"
    );
    // The Namespace's labels arrive: the selector now matches.
    let ns = |tier: &str| {
        object(
            Kind::Namespace,
            "",
            "literal",
            json!({"metadata": {"labels": {"tier": tier}}}),
        )
    };
    apply(&mut agg, &w(Kind::Namespace), ns("prod"));
    assert!(namespace_modes(&agg).contains(&"p|literal|enforce".to_owned()));
    apply(&mut agg, &w(Kind::Namespace), ns("dev"));
    assert!(namespace_modes(&agg).contains(&"p|literal|audit".to_owned()));
    // The policy goes away: so do its series.
    agg.handle(SourceEvent::Delete {
        origin: w(Kind::ClusterPolicy),
        object: object(Kind::ClusterPolicy, "", "p", p),
    });
    assert_eq!(namespace_modes(&agg), ["team/q|team|enforce"]);
}

#[test]
fn policies_sharing_a_label_combine_their_namespace_modes_in_any_order() {
    let report = json!({"results": [{"policy": "p", "result": "fail"}]});
    let enforce = json!({"spec": {"validationFailureAction": "Enforce",
        "rules": [{"name": "r", "validate": {}}]}});
    let audit = json!({"spec": {"validationActions": ["Audit"]}});
    let policies = [
        (Kind::ClusterPolicy, enforce),
        (Kind::ValidatingPolicy, audit),
    ];
    for order in [[0, 1], [1, 0]] {
        let mut agg = new_agg(LabelOptions::default());
        let r = object(Kind::PolicyReport, "dev", "r", report.clone());
        apply(&mut agg, &Origin::Watch(Kind::PolicyReport), r);
        for i in order {
            let (kind, spec) = &policies[i];
            apply(
                &mut agg,
                &Origin::Watch(*kind),
                object(*kind, "", "p", spec.clone()),
            );
        }
        assert_eq!(namespace_modes(&agg), ["p|dev|mixed"], "order {order:?}");
    }
}

// ------------------------------------------------------------ report freshness

/// 2024-11-12T09:20:00Z, the "now" of the freshness tests.
const T: i64 = 1_731_403_200;
const H: i64 = 3600;

fn fresh_agg(stale_after: Duration, clock: &Clock) -> Aggregate {
    Aggregate::new(Config {
        stale_after,
        clock: clock.clone(),
        ..Config::default()
    })
}

/// (namespace, source, reports, stale, oldest) per row.
type FreshRow = (String, String, u64, Option<u64>, Option<i64>);

fn freshness_of(agg: &Aggregate) -> Vec<FreshRow> {
    let mut out = Vec::new();
    agg.for_each_freshness(|r| {
        out.push((
            r.namespace.to_owned(),
            r.source.to_owned(),
            r.reports,
            r.stale,
            r.oldest,
        ))
    });
    out
}

fn row(ns: &str, source: &str, reports: u64, stale: Option<u64>, oldest: Option<i64>) -> FreshRow {
    (ns.into(), source.into(), reports, stale, oldest)
}

/// A result of `policy` from `source` (none when empty) at `ts` (none when
/// `None`).
fn timed(policy: &str, source: &str, ts: Option<i64>) -> serde_json::Value {
    let mut r = json!({"policy": policy, "result": "pass"});
    if !source.is_empty() {
        r["source"] = json!(source);
    }
    if let Some(ts) = ts {
        r["timestamp"] = json!({"seconds": ts, "nanos": 0});
    }
    r
}

fn timed_report(ns: &str, name: &str, results: Vec<serde_json::Value>) -> SourceObject {
    let kind = if ns.is_empty() {
        Kind::ClusterPolicyReport
    } else {
        Kind::PolicyReport
    };
    object(kind, ns, name, json!({ "results": results }))
}

#[test]
fn freshness_counts_each_report_once_per_source_with_its_newest_timestamp() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
    let c = Origin::Watch(Kind::ClusterPolicyReport);
    // Newest of the two: 5h10m old, so stale at the 3h default.
    apply(
        &mut agg,
        &W,
        timed_report(
            "shop",
            "old",
            vec![
                timed("a", "kyverno", Some(T - 6 * H)),
                timed("b", "kyverno", Some(T - 5 * H - 600)),
            ],
        ),
    );
    apply(
        &mut agg,
        &W,
        timed_report("shop", "new", vec![timed("a", "kyverno", Some(T - 600))]),
    );
    // No timestamp: counted, never stale, not the oldest.
    apply(
        &mut agg,
        &W,
        timed_report("shop", "untimed", vec![timed("a", "kyverno", None)]),
    );
    // Two sources: counted under each, with each source's newest time.
    apply(
        &mut agg,
        &W,
        timed_report(
            "shop",
            "mixed",
            vec![
                timed("a", "kyverno", Some(T - 4 * H)),
                timed("t", "trivy", Some(T - H)),
                timed("t", "trivy", None),
            ],
        ),
    );
    // The report's own source (openreports), and a result without any.
    let top = json!({"source": "kubewarden", "results": [timed("k", "", Some(T - 2 * H))]});
    apply(&mut agg, &W, object(Kind::PolicyReport, "dev", "top", top));
    apply(
        &mut agg,
        &c,
        timed_report("", "cluster", vec![timed("n", "", Some(T - 2 * H))]),
    );
    // A report without results counts nowhere.
    apply(&mut agg, &W, timed_report("shop", "empty", vec![]));
    assert_eq!(
        freshness_of(&agg),
        vec![
            row("", "", 1, Some(0), Some(T - 2 * H)),
            row("dev", "kubewarden", 1, Some(0), Some(T - 2 * H)),
            row("shop", "kyverno", 4, Some(2), Some(T - 5 * H - 600)),
            row("shop", "trivy", 1, Some(0), Some(T - H)),
        ]
    );

    // A rescan refreshes the old report; deleting one uncounts it.
    apply(
        &mut agg,
        &W,
        timed_report("shop", "old", vec![timed("a", "kyverno", Some(T - 60))]),
    );
    agg.handle(SourceEvent::Delete {
        origin: W,
        object: timed_report("shop", "mixed", vec![]),
    });
    assert_eq!(
        freshness_of(&agg),
        vec![
            row("", "", 1, Some(0), Some(T - 2 * H)),
            row("dev", "kubewarden", 1, Some(0), Some(T - 2 * H)),
            row("shop", "kyverno", 3, Some(0), Some(T - 600)),
        ]
    );

    // A relist replaces an origin's reports at once.
    agg.handle(SourceEvent::ResyncStart { origin: c.clone() });
    agg.handle(SourceEvent::ResyncApply {
        origin: c.clone(),
        object: timed_report("", "cluster", vec![timed("n", "", Some(T - 4 * H))]),
    });
    assert_eq!(
        freshness_of(&agg)[0],
        row("", "", 1, Some(0), Some(T - 2 * H))
    );
    agg.handle(SourceEvent::ResyncEnd { origin: c.clone() });
    assert_eq!(
        freshness_of(&agg)[0],
        row("", "", 1, Some(1), Some(T - 4 * H))
    );
    agg.handle(SourceEvent::ResyncStart { origin: c.clone() });
    agg.handle(SourceEvent::ResyncEnd { origin: c });
    assert_eq!(freshness_of(&agg)[0].0, "dev", "the emptied entry is gone");
}

#[test]
fn stale_counts_follow_the_clock_at_each_tick() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
    for (name, age) in [("a", 2 * H), ("b", 10 * 60), ("c", 5 * 60)] {
        apply(
            &mut agg,
            &W,
            timed_report("shop", name, vec![timed("p", "kyverno", Some(T - age))]),
        );
    }
    let stale = |agg: &Aggregate| freshness_of(agg)[0].3;
    assert_eq!(stale(&agg), Some(0));

    // A tick that moves no report across the cutoff changes nothing.
    clock.set(T + 600);
    let generation = agg.generation();
    agg.tick();
    assert_eq!(agg.generation(), generation);
    assert_eq!(agg.now(), T + 600);
    assert_eq!(stale(&agg), Some(0));

    // Exactly 3h old is not older than 3h; one second later it is.
    clock.set(T + H);
    agg.tick();
    assert_eq!(stale(&agg), Some(0));
    clock.set(T + H + 1);
    agg.tick();
    assert_eq!(agg.generation(), generation + 1, "a stale count changed");
    assert_eq!(stale(&agg), Some(1));

    // The clock read only at ticks: no change without one.
    clock.set(T + 10 * H);
    assert_eq!(stale(&agg), Some(1));
    agg.tick();
    assert_eq!(stale(&agg), Some(3));

    // A clock set back un-stales them, and that is a change too.
    let generation = agg.generation();
    clock.set(T);
    agg.tick();
    assert_eq!(agg.generation(), generation + 1);
    assert_eq!(stale(&agg), Some(0));
}

#[test]
fn stale_after_zero_turns_staleness_off() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(Duration::ZERO, &clock);
    apply(
        &mut agg,
        &W,
        timed_report("shop", "a", vec![timed("p", "kyverno", Some(T - 10 * H))]),
    );
    assert_eq!(agg.stale_after(), None);
    assert_eq!(agg.tick_interval(), None);
    let generation = agg.generation();
    clock.set(T + 100 * H);
    agg.tick();
    assert_eq!(agg.generation(), generation);
    assert_eq!(
        freshness_of(&agg),
        vec![row("shop", "kyverno", 1, None, Some(T - 10 * H))]
    );
}

#[test]
fn ticks_are_one_percent_of_stale_after_between_one_and_fifteen_seconds() {
    let clock = Clock::manual(T);
    let every = |d: u64| fresh_agg(Duration::from_secs(d), &clock).tick_interval();
    assert_eq!(every(3 * 3600), Some(Duration::from_secs(15)));
    assert_eq!(every(600), Some(Duration::from_secs(6)));
    assert_eq!(every(3), Some(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn the_run_loop_publishes_when_time_makes_reports_stale() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
    apply(
        &mut agg,
        &W,
        timed_report(
            "shop",
            "a",
            vec![timed("p", "kyverno", Some(T - 3 * H + 20))],
        ),
    );
    let (tx, rx) = mpsc::channel(1);
    let (published_tx, mut published) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(agg, rx, Duration::from_millis(25), move |a| {
        let _ = published_tx.send(freshness_of(a)[0].3);
    }));
    assert_eq!(published.recv().await, Some(Some(0)));
    // No event arrives: the next tick finds the report stale and publishes.
    clock.set(T + 21);
    assert_eq!(published.recv().await, Some(Some(1)));
    drop(tx);
    let agg = task.await.expect("run");
    assert_eq!(agg.now(), T + 21);
}

/// The freshness rows a fresh aggregate computes for `model`, by the rules.
fn freshness_from_scratch(model: &Model, now: i64) -> Vec<FreshRow> {
    let mut out: BTreeMap<(String, String), (u64, u64, Option<i64>)> = BTreeMap::new();
    for (ns, report) in valid_reports(model) {
        let mut newest: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for r in &report.results {
            let n = newest.entry(report.source_of(r).to_owned()).or_default();
            *n = (*n).max(r.timestamp.map(|t| TIMES[t]));
        }
        for (source, newest) in newest {
            let e = out.entry((ns.to_owned(), source)).or_default();
            e.0 += 1;
            if let Some(t) = newest {
                e.1 += u64::from(t < now - DEFAULT_STALE_AFTER.as_secs() as i64);
                e.2 = Some(e.2.map_or(t, |o| o.min(t)));
            }
        }
    }
    out.into_iter()
        .map(|((ns, source), (n, stale, oldest))| (ns, source, n, Some(stale), oldest))
        .collect()
}
#[test]
fn a_contribution_stays_56_bytes() {
    // One per object held: 8 bytes more is 400 KB at 50k reports.
    assert_eq!(std::mem::size_of::<Contribution>(), 56);
}

#[test]
fn a_report_with_many_sources_counts_once_under_each() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
    // 40 sources, past the linear search; each twice, the newer time second.
    let results: Vec<_> = (0..80)
        .map(|i| {
            let age = if i < 40 { 5 * H } else { 60 };
            timed("p", &format!("s{:02}", i % 40), Some(T - age))
        })
        .collect();
    apply(&mut agg, &W, timed_report("shop", "many", results));
    let rows = freshness_of(&agg);
    assert_eq!(rows.len(), 40);
    assert!(
        rows.iter()
            .all(|r| (r.2, r.3, r.4) == (1, Some(0), Some(T - 60))),
        "{rows:?}"
    );
}
