//! Counting results into `policyreport_results`: the rules, updates,
//! deletes, relists and invalid reports.

use super::*;

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
    let mut agg = new_agg(LabelOptions::of(&[ExtraLabel::Rule, ExtraLabel::Kind]));
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
    agg.handle(SourceEvent::RelistStart { origin: W });
    agg.handle(SourceEvent::RelistApply {
        origin: W,
        object: object(Kind::PolicyReport, "a", "1", body("pass")),
    });
    // Nothing of the relist is visible before it completes.
    assert_eq!(snapshot(&agg), vec![("a|p||||fail".into(), 3)]);
    agg.handle(SourceEvent::RelistEnd { origin: W });
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
    agg.handle(SourceEvent::RelistStart { origin: f.clone() });
    agg.handle(SourceEvent::RelistApply {
        origin: f.clone(),
        object: object(Kind::PolicyReport, "a", "1", body),
    });
    agg.handle(SourceEvent::RelistEnd { origin: f.clone() });
    assert_eq!(
        snapshot(&agg),
        vec![("a|p||||pass".into(), 2)],
        "same name, two origins"
    );
    agg.handle(SourceEvent::RelistStart { origin: f.clone() });
    agg.handle(SourceEvent::RelistEnd { origin: f });
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
fn a_contribution_stays_56_bytes() {
    // One per object held: 8 bytes more is 400 KB at 50k reports.
    assert_eq!(std::mem::size_of::<Contribution>(), 56);
}
