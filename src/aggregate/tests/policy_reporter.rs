//! Policy Reporter's simple-mode families (`--compat policy-reporter`).

use super::*;

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
        outputs: Outputs {
            policy_reporter: true,
            ..Outputs::default()
        },
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
    agg.handle(SourceEvent::RelistStart { origin: W.clone() });
    agg.handle(SourceEvent::RelistApply {
        origin: W.clone(),
        object: report(json!([{"policy": "p", "result": "warn"}])),
    });
    assert_eq!(
        policy_reporter_snapshot(&agg),
        ["prod|p|pass||Other|kyverno 1"]
    );
    agg.handle(SourceEvent::RelistEnd { origin: W.clone() });
    assert_eq!(policy_reporter_snapshot(&agg), ["prod|p|warn||Other| 1"]);
    agg.handle(SourceEvent::Delete {
        origin: W.clone(),
        object: report(json!([])),
    });
    assert!(policy_reporter_snapshot(&agg).is_empty());
    assert_eq!(
        agg.reports.policy_reporter.as_ref().map(|t| t.len()),
        Some(0)
    );
    assert_eq!(agg.series_count(), 0);

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
