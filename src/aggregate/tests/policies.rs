//! Policies by mode, and each policy's mode per namespace.

use super::*;

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
