use super::*;

fn mode(kind: Kind, spec: &str) -> Mode {
    let raw = format!(r#"{{"metadata":{{"name":"p","namespace":"ns"}},"spec":{spec}}}"#);
    decode(kind, &raw).expect("valid policy").info.mode
}

#[test]
fn resolves_modes() {
    let validate = r#"{"validate":{"pattern":{}}}"#;
    assert_eq!(
        mode(Kind::ClusterPolicy, &format!(r#"{{"rules":[{validate}]}}"#)),
        Mode::Audit,
        "default"
    );
    assert_eq!(
        mode(
            Kind::ClusterPolicy,
            &format!(r#"{{"validationFailureAction":"enforce","rules":[{validate}]}}"#)
        ),
        Mode::Enforce,
        "lowercase legacy value"
    );
    assert_eq!(
        mode(
            Kind::ClusterPolicy,
            r#"{"validationFailureAction":"Audit","rules":[{"validate":{"failureAction":"Enforce"}}]}"#
        ),
        Mode::Enforce,
        "rule action wins over spec action"
    );
    assert_eq!(
        mode(
            Kind::ClusterPolicy,
            r#"{"rules":[{"validate":{"failureAction":"Enforce"}},{"validate":{"failureAction":"Audit"}}]}"#
        ),
        Mode::Mixed,
        "per-rule actions differ"
    );
    assert_eq!(
        mode(
            Kind::ClusterPolicy,
            &format!(
                r#"{{"validationFailureAction":"Audit","validationFailureActionOverrides":[{{"action":"Enforce","namespaces":["prod"]}}],"rules":[{validate}]}}"#
            )
        ),
        Mode::Mixed,
        "spec override adds its action"
    );
    assert_eq!(
        mode(
            Kind::ClusterPolicy,
            r#"{"rules":[{"validate":{"failureAction":"Audit","failureActionOverrides":[{"action":"Enforce"}]}}]}"#
        ),
        Mode::Mixed,
        "rule override adds its action"
    );
    assert_eq!(
        mode(Kind::ClusterPolicy, r#"{"rules":[{"mutate":{}}]}"#),
        Mode::None,
        "no validate rule"
    );
    assert_eq!(mode(Kind::ClusterPolicy, r#"{}"#), Mode::None);
    assert_eq!(
        mode(Kind::ValidatingPolicy, r#"{"validationActions":["Deny"]}"#),
        Mode::Enforce
    );
    assert_eq!(
        mode(
            Kind::ValidatingPolicy,
            r#"{"validationActions":["Audit","Warn"]}"#
        ),
        Mode::Audit
    );
    assert_eq!(mode(Kind::ValidatingPolicy, r#"{}"#), Mode::Audit);
    for kind in Kind::ALL
        .into_iter()
        .filter(|k| k.role() == Role::CelPolicy)
    {
        assert_eq!(
            mode(kind, r#"{"validationActions":["Audit","Deny"]}"#),
            Mode::Enforce
        );
        assert_eq!(mode(kind, r#"{"validationActions":["Warn"]}"#), Mode::Audit);
    }
}

#[test]
fn names_annotations_and_background() {
    let raw = r#"{"metadata":{"name":"require-team","namespace":"prod","annotations":{
            "policies.kyverno.io/title":"Require Team","policies.kyverno.io/category":"Best Practices",
            "policies.kyverno.io/severity":"medium"}},"spec":{"background":false,"rules":[{"validate":{}}]}}"#;
    let p = decode(Kind::Policy, raw).expect("valid").info;
    assert_eq!(
        p,
        PolicyInfo {
            policy: "prod/require-team".into(),
            mode: Mode::Audit,
            category: "Best Practices".into(),
            severity: "medium".into(),
            title: "Require Team".into(),
            background: false,
        }
    );
    assert_eq!(
        decode(Kind::ClusterPolicy, raw).expect("valid").info.policy,
        "require-team"
    );
}

fn routing(kind: Kind, spec: &str) -> Routing {
    let raw = format!(r#"{{"metadata":{{"name":"p","namespace":"team"}},"spec":{spec}}}"#);
    decode(kind, &raw).expect("valid policy").routing
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn wildcards_are_kyvernos() {
    assert!(wildcard("prod-*", "prod-eu"));
    assert!(wildcard("prod-*", "prod-"));
    assert!(!wildcard("prod-*", "staging"));
    assert!(wildcard("*-eu", "prod-eu"));
    assert!(wildcard("a?c", "abc"));
    assert!(!wildcard("a?c", "ac"));
    assert!(wildcard("*", ""));
    assert!(wildcard("[x]", "[x]"));
    assert!(!wildcard("[x]", "x"));
    assert!(wildcard("a*b*c", "aXbYbZc"));
}

#[test]
fn namespace_modes_follow_the_policycache_order() {
    let none = |_: &str| None;
    // A spec override beats a rule's own failureAction when the rule has
    // no overrides of its own (Kyverno 1.14-1.18; 1.19 differs here).
    let r = routing(
        Kind::ClusterPolicy,
        r#"{"validationFailureAction":"Audit",
                "validationFailureActionOverrides":[{"action":"Audit","namespaces":["prod-*"]}],
                "rules":[{"validate":{"failureAction":"Enforce"}}]}"#,
    );
    assert_eq!(r.mode_in("prod-eu", none), Mode::Audit);
    assert_eq!(r.mode_in("dev", none), Mode::Enforce);
    assert_eq!(
        r.mode_in("", none),
        Mode::Enforce,
        "no override applies to \"\""
    );
    // A rule's own overrides replace the spec's.
    let r = routing(
        Kind::ClusterPolicy,
        r#"{"validationFailureAction":"Audit",
                "validationFailureActionOverrides":[{"action":"Enforce","namespaces":["prod"]}],
                "rules":[{"validate":{"failureActionOverrides":[{"action":"Audit","namespaces":["prod"]}]}},
                         {"validate":{}}]}"#,
    );
    assert_eq!(r.mode_in("prod", none), Mode::Mixed);
    assert_eq!(r.mode_in("dev", none), Mode::Audit);
    let literal: Vec<&str> = r.literal_namespaces().collect();
    assert_eq!(literal, ["prod", "prod"]);
    // The first entry that applies wins.
    let r = routing(
        Kind::ClusterPolicy,
        r#"{"validationFailureActionOverrides":[{"action":"Audit","namespaces":["prod-test"]},
                {"action":"Enforce","namespaces":["prod-*"]}],"rules":[{"validate":{}}]}"#,
    );
    assert_eq!(r.mode_in("prod-test", none), Mode::Audit);
    assert_eq!(r.mode_in("prod-eu", none), Mode::Enforce);
    assert_eq!(r.literal_namespaces().collect::<Vec<_>>(), ["prod-test"]);
}

#[test]
fn selectors_need_known_labels_and_every_condition() {
    let r = routing(
        Kind::ClusterPolicy,
        r#"{"validationFailureActionOverrides":[{"action":"Enforce","namespaces":["prod-*"],
                "namespaceSelector":{"matchLabels":{"tier":"prod"},
                "matchExpressions":[{"key":"legacy","operator":"DoesNotExist"},
                                    {"key":"team","operator":"In","values":["a","b"]}]}}],
                "rules":[{"validate":{}}]}"#,
    );
    let prod = labels(&[("tier", "prod"), ("team", "a")]);
    let legacy = labels(&[("tier", "prod"), ("team", "a"), ("legacy", "y")]);
    let lookup = |ns: &str| match ns {
        "prod-a" | "other" => Some(&prod),
        "prod-old" => Some(&legacy),
        _ => None,
    };
    assert_eq!(r.mode_in("prod-a", lookup), Mode::Enforce);
    assert_eq!(r.mode_in("prod-old", lookup), Mode::Audit);
    assert_eq!(
        r.mode_in("other", lookup),
        Mode::Audit,
        "name must match too"
    );
    assert_eq!(
        r.mode_in("prod-unknown", lookup),
        Mode::Audit,
        "unknown labels"
    );
    let s = Selector {
        match_labels: BTreeMap::new(),
        expressions: vec![
            Expression {
                key: "x".into(),
                operator: Operator::NotIn,
                values: vec!["1".into()],
            },
            Expression {
                key: "y".into(),
                operator: Operator::Exists,
                values: vec![],
            },
        ],
    };
    assert!(s.matches(&labels(&[("y", "")])));
    assert!(s.matches(&labels(&[("x", "2"), ("y", "")])));
    assert!(!s.matches(&labels(&[("x", "1"), ("y", "")])));
    assert!(!s.matches(&labels(&[])));
    assert!(Selector::default().matches(&labels(&[])));
}

#[test]
fn namespaced_kinds_have_their_own_namespace_and_cel_kinds_one_mode() {
    for kind in [
        Kind::Policy,
        Kind::NamespacedValidatingPolicy,
        Kind::NamespacedImageValidatingPolicy,
    ] {
        let r = routing(
            kind,
            r#"{"validationActions":["Deny"],"rules":[{"validate":{}}]}"#,
        );
        assert_eq!(r.own_namespace.as_deref(), Some("team"), "{kind}");
    }
    let r = routing(
        Kind::ImageValidatingPolicy,
        r#"{"validationActions":["Deny"]}"#,
    );
    assert_eq!(r.own_namespace, None);
    assert_eq!(r.rules, Rules::Fixed(Mode::Enforce));
    assert_eq!(r.mode_in("anything", |_| None), Mode::Enforce);
}

#[test]
fn rejects_bad_policies() {
    assert!(
        decode(Kind::ClusterPolicy, r#"{"metadata":{}}"#).is_err(),
        "no name"
    );
    let bad_action = r#"{"metadata":{"name":"p"},"spec":{"validationFailureAction":"Block","rules":[{"validate":{}}]}}"#;
    assert!(decode(Kind::ClusterPolicy, bad_action).is_err());
    assert!(
        decode(
            Kind::ClusterPolicy,
            r#"{"metadata":{"name":"p"},"spec":{"rules":5}}"#
        )
        .is_err()
    );
    assert!(
        decode(
            Kind::ClusterPolicy,
            r#"{"metadata":{"name":"p","annotations":{"a":1}}}"#
        )
        .is_err()
    );
    let bad_operator = r#"{"metadata":{"name":"p"},"spec":{"validationFailureActionOverrides":[
            {"action":"Enforce","namespaceSelector":{"matchExpressions":[{"key":"a","operator":"Near"}]}}],
            "rules":[{"validate":{}}]}}"#;
    let err = decode(Kind::ClusterPolicy, bad_operator).expect_err("bad operator");
    assert_eq!(
        err.field,
        "spec.validationFailureActionOverrides[0].namespaceSelector.matchExpressions[0].operator"
    );
    assert!(
        decode(
            Kind::ValidatingPolicy,
            r#"{"metadata":{"name":"p"},"spec":{"validationActions":"Deny"}}"#
        )
        .is_err(),
        "wrongly typed validationActions"
    );
}
