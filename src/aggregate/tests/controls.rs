//! Per-control resource tallies.

use super::*;

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

/// A `require-requests-limits` result.
fn rl(r: &str) -> serde_json::Value {
    json!({"policy": "require-requests-limits", "rule": "validate-resources", "result": r,
                          "category": "Best Practices, EKS Best Practices"})
}

/// A Pod Security Standards result.
fn pss(p: &str, r: &str) -> serde_json::Value {
    json!({"policy": p, "rule": "x", "result": r, "category": "Pod Security Standards (Baseline)"})
}

/// Six pods' reports in two namespaces, one of each status, and a
/// Deployment's.
fn six_pods() -> Aggregate {
    let mut agg = new_agg(LabelOptions::default());
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
    agg
}

#[test]
fn controls_count_pods_by_status() {
    let mut agg = six_pods();
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
        agg.handle(SourceEvent::RelistStart { origin: f.clone() });
        for (ns, r) in [("q8a", "pass"), ("q8b", "fail")] {
            let results = json!([{"policy": "require-requests-limits", "result": r}]);
            agg.handle(SourceEvent::RelistApply {
                origin: f.clone(),
                object: pod_report(ns, "same-uid", results),
            });
        }
        agg.handle(SourceEvent::RelistEnd { origin: f });
        assert_eq!(
            controls_of(&agg),
            BTreeMap::from([ctl("resource-limits", "q8a", "Pod", BAD, 1)])
        );
    }
}
