//! Blocked and Audit-failed admissions from Events.

use super::*;

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

/// The message of the blocked admission of `prod/p1`.
const MSG: &str =
    "Pod prod/p1: [validate-resources] fail (blocked); validation error: limits required";

/// Events of two blocked admissions (one counted again through
/// `series.count`) and an audit failure.
fn three_admissions(ev: &Origin) -> Aggregate {
    let mut agg = new_agg(LabelOptions::default());
    apply(
        &mut agg,
        ev,
        blocked_event(
            "e1",
            "u1",
            "ClusterPolicy",
            "require-requests-limits",
            MSG,
            json!({"count": 2}),
        ),
    );
    // Grows through series.count: only the increase is added.
    apply(
        &mut agg,
        ev,
        blocked_event(
            "e1",
            "u1",
            "ClusterPolicy",
            "require-requests-limits",
            MSG,
            json!({"count": 2, "series": {"count": 5}}),
        ),
    );
    // An audit failure is not a block; a namespaced Policy uses namespace/name.
    apply(
        &mut agg,
        ev,
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
        ev,
        blocked_event(
            "e3",
            "u3",
            "Policy",
            "require-team",
            "ConfigMap team/c: [check-team] fail (blocked); missing label",
            json!({}),
        ),
    );
    agg
}

/// The blocked admissions of [`three_admissions`].
fn three_blocked() -> BlockedSnapshot {
    BTreeMap::from([
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
    ])
}

#[test]
fn blocked_admissions_count_increases_only() {
    let ev = Origin::Watch(Kind::Event);
    let agg = three_admissions(&ev);
    assert_eq!(blocked_of(&agg), three_blocked());
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
}

#[test]
fn blocked_admissions_survive_expiry_and_relists() {
    let ev = Origin::Watch(Kind::Event);
    let mut agg = three_admissions(&ev);
    let expected = three_blocked();
    // Expiry never decreases; a relist of the same events adds nothing.
    agg.handle(SourceEvent::Delete {
        origin: ev.clone(),
        object: blocked_event("e3", "u3", "Policy", "require-team", "", json!({})),
    });
    agg.handle(SourceEvent::RelistStart { origin: ev.clone() });
    agg.handle(SourceEvent::RelistApply {
        origin: ev.clone(),
        object: blocked_event(
            "e1",
            "u1",
            "ClusterPolicy",
            "require-requests-limits",
            MSG,
            json!({"series": {"count": 5}}),
        ),
    });
    agg.handle(SourceEvent::RelistEnd { origin: ev.clone() });
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
            MSG,
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

/// A CEL policy's admission Event, as Kyverno 1.19's vpol handler writes
/// it: blocked whenever any policy of the webhook call has Deny.
fn cel_event(uid: &str, policy: &str, pod: &str, blocked: bool) -> SourceObject {
    let (action, status) = if blocked {
        ("Resource Blocked", "fail (blocked)")
    } else {
        ("Resource Passed", "fail")
    };
    let v = json!({
        "apiVersion": "v1", "kind": "Event", "reason": "PolicyViolation", "type": "Warning",
        "action": action, "reportingComponent": "kyverno-admission",
        "involvedObject": {"apiVersion": "policies.kyverno.io/v1beta1", "kind": "ValidatingPolicy", "name": policy},
        "related": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": pod},
        "message": format!("Pod shop/{pod}: {status}; denied"),
    });
    let mut o = object(Kind::Event, "default", uid, v);
    if let Body::Object(raw) = &mut o.body {
        raw.metadata.uid = Some(uid.into());
    }
    o
}

fn validating_policy(name: &str, actions: &[&str]) -> SourceObject {
    object(
        Kind::ValidatingPolicy,
        "",
        name,
        json!({"metadata": {"name": name}, "spec": {"validationActions": actions, "validations": [{"expression": "true"}]}}),
    )
}

fn audit_failures_of(agg: &Aggregate) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    agg.for_each_audit_failure(|_, p, _, _, _, n| {
        *out.entry((p.to_owned(), String::new())).or_default() += n;
    });
    out
}

fn blocked_by_policy(agg: &Aggregate) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    agg.for_each_blocked(|_, p, _, _, _, n| {
        *out.entry((p.to_owned(), String::new())).or_default() += n;
    });
    out
}

fn per_policy(rows: &[(&str, u64)]) -> BTreeMap<(String, String), u64> {
    rows.iter()
        .map(|(p, n)| (((*p).to_owned(), String::new()), *n))
        .collect()
}

#[test]
fn a_cel_policys_blocked_event_counts_as_its_own_actions_say() {
    let mut agg = new_agg(LabelOptions::default());
    let pol = Origin::Watch(Kind::ValidatingPolicy);
    let ev = Origin::Watch(Kind::Event);
    apply(
        &mut agg,
        &pol,
        validating_policy("deny-privileged", &["Deny"]),
    );
    apply(
        &mut agg,
        &pol,
        validating_policy("audit-limits", &["Audit"]),
    );
    // Pod a fails only the Audit policy; the Deny policy in the same call
    // makes Kyverno write "(blocked)", yet the Pod was admitted.
    apply(&mut agg, &ev, cel_event("e1", "audit-limits", "a", true));
    // Pod b fails the Deny policy: refused.
    apply(&mut agg, &ev, cel_event("e2", "deny-privileged", "b", true));
    // Pod c in a call with no Deny policy: an ordinary audit Event.
    apply(&mut agg, &ev, cel_event("e3", "audit-limits", "c", false));
    assert_eq!(
        blocked_by_policy(&agg),
        per_policy(&[("deny-privileged", 1)])
    );
    assert_eq!(audit_failures_of(&agg), per_policy(&[("audit-limits", 2)]));

    // Switching the Audit policy to Deny leaves what was counted alone.
    apply(&mut agg, &pol, validating_policy("audit-limits", &["Deny"]));
    assert_eq!(
        blocked_by_policy(&agg),
        per_policy(&[("deny-privileged", 1)])
    );
    assert_eq!(audit_failures_of(&agg), per_policy(&[("audit-limits", 2)]));
    apply(&mut agg, &ev, cel_event("e4", "audit-limits", "d", true));
    assert_eq!(
        blocked_by_policy(&agg),
        per_policy(&[("audit-limits", 1), ("deny-privileged", 1)])
    );
}

#[test]
fn a_cel_event_before_its_policy_is_decided_when_the_policy_is_seen() {
    let mut agg = new_agg(LabelOptions::default());
    let ev = Origin::Watch(Kind::Event);
    apply(&mut agg, &ev, cel_event("e1", "audit-limits", "a", true));
    apply(&mut agg, &ev, cel_event("e2", "deny-privileged", "b", true));
    // Neither policy known yet: the Events' word is taken.
    assert_eq!(
        blocked_by_policy(&agg),
        per_policy(&[("audit-limits", 1), ("deny-privileged", 1)])
    );
    let pol = Origin::Watch(Kind::ValidatingPolicy);
    apply(
        &mut agg,
        &pol,
        validating_policy("audit-limits", &["Audit", "Warn"]),
    );
    apply(
        &mut agg,
        &pol,
        validating_policy("deny-privileged", &["Deny", "Audit"]),
    );
    assert_eq!(
        blocked_by_policy(&agg),
        per_policy(&[("deny-privileged", 1)])
    );
    assert_eq!(audit_failures_of(&agg), per_policy(&[("audit-limits", 1)]));
    // A later Event of the same series, decided on arrival, adds to the
    // same sample: one series, not two.
    apply(&mut agg, &ev, cel_event("e3", "audit-limits", "a", true));
    assert_eq!(audit_failures_of(&agg), per_policy(&[("audit-limits", 2)]));
    let mut samples = 0;
    agg.for_each_audit_failure(|_, _, _, _, _, _| samples += 1);
    assert_eq!(samples, 1);
}

#[test]
fn a_cluster_policys_event_keeps_its_own_word() {
    let mut agg = new_agg(LabelOptions::default());
    let pol = Origin::Watch(Kind::ClusterPolicy);
    apply(
        &mut agg,
        &pol,
        object(
            Kind::ClusterPolicy,
            "",
            "require-requests-limits",
            json!({"metadata": {"name": "require-requests-limits"},
                   "spec": {"validationFailureAction": "Audit", "rules": [{"validate": {}}]}}),
        ),
    );
    let ev = Origin::Watch(Kind::Event);
    apply(
        &mut agg,
        &ev,
        blocked_event(
            "e1",
            "u1",
            "ClusterPolicy",
            "require-requests-limits",
            MSG,
            json!({}),
        ),
    );
    assert_eq!(
        blocked_by_policy(&agg),
        per_policy(&[("require-requests-limits", 1)]),
        "Kyverno decides blocking per ClusterPolicy itself; its Event is right"
    );
}
