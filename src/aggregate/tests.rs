use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn object(kind: ReportKind, ns: &str, name: &str, body: serde_json::Value) -> SourceObject {
    let mut v = body;
    v["metadata"] = json!({"name": name, "namespace": ns});
    SourceObject {
        kind,
        report: serde_json::from_str(&v.to_string()).expect("test report"),
    }
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

const W: Origin = Origin::Watch(ReportKind::PolicyReport);

#[test]
fn counts_each_result_once_per_subject() {
    let mut agg = Aggregate::new(LabelOptions::default());
    // Per-resource layout: scope, no resources.
    apply(
        &mut agg,
        &W,
        object(
            ReportKind::PolicyReport,
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
            ReportKind::PolicyReport,
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
    let mut agg = Aggregate::new(LabelOptions::default());
    let cluster = Origin::Watch(ReportKind::ClusterPolicyReport);
    // A cluster report's namespace label is empty even if metadata says otherwise.
    apply(
        &mut agg,
        &cluster,
        object(
            ReportKind::ClusterPolicyReport,
            "ignored",
            "c1",
            json!({"results": [{"policy": "ns-labels", "result": "fail", "source": "kyverno"}]}),
        ),
    );
    // openreports: the top-level source is the fallback; a result's own wins.
    let rep = Origin::Watch(ReportKind::Report);
    apply(
        &mut agg,
        &rep,
        object(
            ReportKind::Report,
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
    let mut agg = Aggregate::new(LabelOptions {
        rule: true,
        kind: true,
    });
    apply(
        &mut agg,
        &W,
        object(
            ReportKind::PolicyReport,
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
    let mut agg = Aggregate::new(LabelOptions::default());
    let body = |r: &str| json!({"results": [{"policy": "p", "result": r}]});
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "1", body("fail")),
    );
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "2", body("fail")),
    );
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "1", body("pass")),
    );
    assert_eq!(
        snapshot(&agg),
        vec![("a|p||||fail".into(), 1), ("a|p||||pass".into(), 1)]
    );
    agg.handle(SourceEvent::Delete {
        origin: W,
        object: object(ReportKind::PolicyReport, "a", "2", json!({})),
    });
    assert_eq!(snapshot(&agg), vec![("a|p||||pass".into(), 1)]);
    assert_eq!(agg.series_count(), 1, "the emptied series is freed");
    assert_eq!(agg.stats().objects["policyreports.wgpolicyk8s.io"], 1);
}

#[test]
fn relist_replaces_atomically_and_drops_what_vanished() {
    let mut agg = Aggregate::new(LabelOptions::default());
    let body = |r: &str| json!({"results": [{"policy": "p", "result": r}]});
    for n in ["1", "2", "3"] {
        apply(
            &mut agg,
            &W,
            object(ReportKind::PolicyReport, "a", n, body("fail")),
        );
    }
    agg.handle(SourceEvent::ResyncStart { origin: W });
    agg.handle(SourceEvent::ResyncApply {
        origin: W,
        object: object(ReportKind::PolicyReport, "a", "1", body("pass")),
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
    let mut agg = Aggregate::new(LabelOptions::default());
    let f = Origin::File(Arc::from(Path::new("/x.yaml")));
    let body = json!({"results": [{"policy": "p", "result": "pass"}]});
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "1", body.clone()),
    );
    agg.handle(SourceEvent::ResyncStart { origin: f.clone() });
    agg.handle(SourceEvent::ResyncApply {
        origin: f.clone(),
        object: object(ReportKind::PolicyReport, "a", "1", body),
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
    let mut agg = Aggregate::new(LabelOptions::default());
    let good = json!({"results": [{"policy": "p", "result": "fail"}]});
    let bad =
        json!({"results": [{"policy": "p", "result": "pass"}, {"policy": "p", "result": "maybe"}]});
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "1", good.clone()),
    );
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "1", bad.clone()),
    );
    assert!(
        snapshot(&agg).is_empty(),
        "valid→invalid removes the old contribution"
    );
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "1", bad.clone()),
    );
    assert_eq!(
        agg.stats().invalid["policyreports.wgpolicyk8s.io"],
        1,
        "counted once"
    );
    assert_eq!(agg.stats().objects["policyreports.wgpolicyk8s.io"], 1);
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "1", good),
    );
    assert_eq!(snapshot(&agg), vec![("a|p||||fail".into(), 1)]);
    let missing_policy = json!({"results": [{"result": "fail"}]});
    apply(
        &mut agg,
        &W,
        object(ReportKind::PolicyReport, "a", "2", missing_policy),
    );
    assert_eq!(agg.stats().invalid["policyreports.wgpolicyk8s.io"], 2);
    assert_eq!(snapshot(&agg), vec![("a|p||||fail".into(), 1)]);
}

#[test]
fn readiness_follows_sync_targets() {
    let mut agg = Aggregate::new(LabelOptions::default());
    assert!(agg.ready());
    agg.expect_sync("a");
    agg.expect_sync("b");
    assert_eq!(agg.pending_targets(), vec!["a", "b"]);
    agg.handle(SourceEvent::Synced { target: "a".into() });
    assert!(!agg.ready());
    agg.handle(SourceEvent::Synced { target: "b".into() });
    assert!(agg.ready());
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

#[derive(Clone, Debug)]
struct GenResult {
    policy: usize,
    category: usize,
    outcome: usize,
    subjects: Vec<usize>,
}

#[derive(Clone, Debug)]
struct GenReport {
    results: Vec<GenResult>,
    invalid: bool,
    top_source: bool,
}

impl GenReport {
    fn json(&self) -> serde_json::Value {
        let mut results: Vec<_> = self
            .results
            .iter()
            .map(|r| {
                let mut v = json!({"policy": POLICIES[r.policy], "result": OUTCOMES[r.outcome]});
                if let Some(c) = CATEGORIES[r.category] {
                    v["category"] = json!(c);
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
        Origin::Watch(ReportKind::PolicyReport),
        Origin::Watch(ReportKind::ClusterPolicyReport),
        Origin::File(Arc::from(Path::new("/reports/a.yaml"))),
    ]
}

fn kind_of(origin: usize) -> ReportKind {
    [
        ReportKind::PolicyReport,
        ReportKind::ClusterPolicyReport,
        ReportKind::PolicyReport,
    ][origin]
}

fn report_strategy() -> impl Strategy<Value = GenReport> + Clone {
    let result = (
        0..3usize,
        0..3usize,
        0..5usize,
        prop::collection::vec(0..2usize, 0..3),
    )
        .prop_map(|(policy, category, outcome, subjects)| GenResult {
            policy,
            category,
            outcome,
            subjects,
        });
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

/// The expected series, computed directly from the final set by the rules.
fn from_scratch(model: &Model) -> BTreeMap<Vec<String>, u64> {
    let mut out: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for ((origin, ns, _), report) in model {
        if report.invalid {
            continue;
        }
        let ns = if kind_of(*origin).namespaced() {
            ns.as_str()
        } else {
            ""
        };
        for r in &report.results {
            let key = vec![
                ns.to_string(),
                POLICIES[r.policy].to_string(),
                CATEGORIES[r.category].unwrap_or("").to_string(),
                String::new(),
                if report.top_source {
                    "kyverno".into()
                } else {
                    String::new()
                },
                OUTCOMES[r.outcome].to_string(),
            ];
            *out.entry(key).or_default() += r.subjects.len().max(1) as u64;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_from_scratch(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let origins = origins();
        let mut agg = Aggregate::new(LabelOptions::default());
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
        }
        let expected = from_scratch(&model);
        prop_assert_eq!(agg.series_count(), expected.len(), "no series leaked");
        let held: u64 = agg.stats().objects.values().sum();
        prop_assert_eq!(held, model.len() as u64);
        // And a fresh aggregate fed only the final set agrees.
        let mut fresh = Aggregate::new(LabelOptions::default());
        for ((o, ns, name), r) in &model {
            let object = object(kind_of(*o), ns, name, r.json());
            fresh.handle(SourceEvent::Apply { origin: origins[*o].clone(), object });
        }
        prop_assert_eq!(fresh.results_snapshot(), expected);
    }
}
