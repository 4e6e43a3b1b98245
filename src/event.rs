//! Kyverno's admission Events: deciding which Events are admission results
//! (blocked, or let through by Audit), and what they name: the policy, the
//! rule, and the resource's kind and namespace.
//!
//! Kyverno writes, per failing or erroring rule of an admission request, a
//! `Warning` Event with reason `PolicyViolation` about the policy (one of
//! a policy kind: [`Kind::is_policy`]), whose message reads
//! `<Kind> <namespace>/<name>: [<rule>] <fail|error>[ (blocked)]; <message>`
//! (`<Kind> <name>: …` for cluster-scoped resources; since 1.16 the
//! `[<rule>] ` part is left out when the rule has no name). The rules:
//! - the reporting component (`reportingComponent`, `reportingController`,
//!   else `source.component`) must be `kyverno-admission` when set; with no
//!   component at all only blocked Events count;
//! - blocked when `action` is `Resource Blocked`, or, for Events without
//!   `action`, when the status is followed by ` (blocked)`; for the
//!   `policies.kyverno.io` CEL kinds this is only the Event's claim (see
//!   [`Admission::decided_by_policy`]);
//! - the resource's kind and namespace come from `related` when present;
//! - the count is `series.count`, else `count` when above 0, else
//!   `deprecatedCount` when above 0, else 1.

use serde::Deserialize;

use crate::decode::{DecodeError, Text};
use crate::kind::{Kind, Role};

/// The reporting component of Kyverno's admission controller.
pub const ADMISSION_COMPONENT: &str = "kyverno-admission";
/// The `action` of a blocked admission.
pub const BLOCKED_ACTION: &str = "Resource Blocked";

/// An admission result named by an Event.
#[derive(Debug, PartialEq, Eq)]
pub struct Admission {
    /// The policy: `name` for the cluster-wide kinds, `namespace/name` for
    /// Policy and the Namespaced kinds.
    pub policy: String,
    /// The rule that failed or errored (empty for rule-less CEL policies).
    pub rule: String,
    /// Kind of the resource.
    pub kind: String,
    /// Namespace of the resource (empty when cluster-scoped).
    pub namespace: String,
    /// Whether the Event says the request was blocked; otherwise Audit let
    /// it through.
    pub blocked: bool,
    /// The policy is of a CEL kind, whose Events say blocked for every
    /// failing policy of a webhook call in which any policy has the `Deny`
    /// action, failing or not (Kyverno's `pkg/webhooks/resource/vpol` and
    /// `ivpol` handlers, `audit()`): a failing Audit-only policy beside a
    /// passing Deny one is reported blocked though the request was admitted.
    /// For these, the policy's own `validationActions` decide.
    pub decided_by_policy: bool,
    /// How many times it happened.
    pub count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventIn<'a> {
    #[serde(borrow, default)]
    reason: Option<Text<'a>>,
    #[serde(borrow, default)]
    message: Option<Text<'a>>,
    /// `events.k8s.io/v1` name of the message.
    #[serde(borrow, default)]
    note: Option<Text<'a>>,
    #[serde(borrow, default)]
    action: Option<Text<'a>>,
    #[serde(borrow, default)]
    involved_object: Option<ObjectRef<'a>>,
    /// `events.k8s.io/v1` name of the involved object.
    #[serde(borrow, default)]
    regarding: Option<ObjectRef<'a>>,
    #[serde(borrow, default)]
    related: Option<ObjectRef<'a>>,
    #[serde(borrow, default)]
    reporting_component: Option<Text<'a>>,
    /// `events.k8s.io/v1` name of the reporting component.
    #[serde(borrow, default)]
    reporting_controller: Option<Text<'a>>,
    #[serde(borrow, default)]
    source: Option<SourceIn<'a>>,
    #[serde(default)]
    count: Option<i64>,
    /// `events.k8s.io/v1` name of `count`.
    #[serde(default)]
    deprecated_count: Option<i64>,
    #[serde(default)]
    series: Option<SeriesIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef<'a> {
    #[serde(borrow, default)]
    api_version: Option<Text<'a>>,
    #[serde(borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    /// Checked for type only.
    #[serde(borrow, default, rename = "uid")]
    _uid: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct SourceIn<'a> {
    #[serde(borrow, default)]
    component: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct SeriesIn {
    #[serde(default)]
    count: Option<i64>,
}

fn text<'b>(t: &'b Option<Text<'_>>) -> &'b str {
    t.as_ref().map_or("", Text::as_str)
}

fn invalid(field: &str, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Decode an Event living in `event_namespace`. `Ok(None)` when it is valid
/// but not an admission result of a Kyverno policy; an error when it is a
/// Kyverno admission Event that cannot be read (no policy name, a message
/// not in Kyverno's form) or does not decode at all.
pub fn decode(raw: &str, event_namespace: &str) -> Result<Option<Admission>, DecodeError> {
    let event: EventIn<'_> =
        serde_json::from_str(raw).map_err(|e| invalid("event", e.to_string()))?;
    if text(&event.reason) != "PolicyViolation" {
        return Ok(None);
    }
    let Some(about) = event.involved_object.as_ref().or(event.regarding.as_ref()) else {
        return Ok(None);
    };
    let about_kind = text(&about.kind);
    let Some(policy_kind) = Kind::policy_named(about_kind) else {
        return Ok(None);
    };
    let (group, namespaced) = (policy_kind.group(), policy_kind.namespaced());
    // A `Policy` of another API group is not Kyverno's.
    let api_version = text(&about.api_version);
    if !api_version.is_empty() && api_version.split_once('/').map(|(g, _)| g) != Some(group) {
        return Ok(None);
    }
    let component = reporter(&event);
    if component
        .as_deref()
        .is_some_and(|c| c != ADMISSION_COMPONENT)
    {
        return Ok(None);
    }
    let (field, message) = message(&event);
    let Some(parsed) = parse_message(message) else {
        if component.is_none() {
            // Of unknown origin: not necessarily Kyverno's admission.
            return Ok(None);
        }
        return Err(invalid(
            field,
            format!("not `<Kind> <name>: [<rule>] fail|error …`: {message:.80}"),
        ));
    };
    let blocked = match event.action.as_ref().map(Text::as_str) {
        Some(action) if !action.is_empty() => action == BLOCKED_ACTION,
        _ => parsed.blocked,
    };
    if component.is_none() && !blocked {
        // Unblocked, of unknown origin: may be the background scan.
        return Ok(None);
    }
    let policy = policy_name(about, namespaced, event_namespace)?;
    let (kind, namespace) = match &event.related {
        Some(r) if !text(&r.kind).is_empty() => (text(&r.kind), text(&r.namespace)),
        _ => (parsed.kind, parsed.namespace),
    };
    let count = count(&event);
    Ok(Some(Admission {
        policy,
        rule: parsed.rule.to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        blocked,
        decided_by_policy: policy_kind.role() == Role::CelPolicy,
        count,
    }))
}

/// The component that reported the Event, by whichever field names it.
fn reporter(event: &EventIn<'_>) -> Option<String> {
    [
        &event.reporting_component,
        &event.reporting_controller,
        &event.source.as_ref().and_then(|s| s.component.clone()),
    ]
    .into_iter()
    .map(text)
    .find(|c| !c.is_empty())
    .map(str::to_owned)
}

/// The Event's message and the name of its field (`note` in
/// `events.k8s.io/v1`).
fn message<'e>(event: &'e EventIn<'_>) -> (&'static str, &'e str) {
    let field = if event.message.is_none() && event.note.is_some() {
        "note"
    } else {
        "message"
    };
    let message = text(
        event
            .message
            .as_ref()
            .map_or(&event.note, |_| &event.message),
    );
    (field, message)
}

/// The policy the Event is about: `namespace/name` for a namespaced kind
/// (in the Event's namespace when the reference names none), else `name`.
fn policy_name(
    about: &ObjectRef<'_>,
    namespaced: bool,
    event_namespace: &str,
) -> Result<String, DecodeError> {
    let name = text(&about.name);
    if name.is_empty() {
        return Err(invalid("involvedObject.name", "missing"));
    }
    Ok(if namespaced {
        let ns = Some(text(&about.namespace))
            .filter(|ns| !ns.is_empty())
            .unwrap_or(event_namespace);
        if ns.is_empty() {
            return Err(invalid("involvedObject.namespace", "missing"));
        }
        format!("{ns}/{name}")
    } else {
        name.to_owned()
    })
}

/// How many times the Event happened: the first positive of its series
/// count, `count` and `deprecatedCount`, else once.
fn count(event: &EventIn<'_>) -> u64 {
    let positive = |n: Option<i64>| n.filter(|n| *n > 0);
    positive(event.series.as_ref().and_then(|s| s.count))
        .or(positive(event.count))
        .or(positive(event.deprecated_count))
        .unwrap_or(1)
        .unsigned_abs()
}

/// The rule status an admission message reports.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The rule failed.
    Fail,
    /// The rule errored.
    Error,
}

/// What an admission message names.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Kind of the resource.
    pub kind: &'a str,
    /// Its namespace, empty when cluster-scoped.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The rule, empty when the message names none.
    pub rule: &'a str,
    /// `fail` or `error`.
    pub status: Status,
    /// Whether ` (blocked)` follows the status.
    pub blocked: bool,
}

/// Parse `<Kind> [<namespace>/]<name>: [[<rule>] ]<fail|error>[ (blocked)][; …]`.
/// Returns `None` for anything else (other statuses, other text).
pub fn parse_message(message: &str) -> Option<Message<'_>> {
    let (kind, rest) = message.split_once(' ')?;
    let (resource, rest) = rest.split_once(": ")?;
    let (rule, rest) = match rest.strip_prefix('[') {
        Some(r) => r.split_once("] ")?,
        None => ("", rest),
    };
    let (status, rest) = if let Some(r) = rest.strip_prefix("fail") {
        (Status::Fail, r)
    } else if let Some(r) = rest.strip_prefix("error") {
        (Status::Error, r)
    } else {
        return None;
    };
    let (blocked, rest) = match rest.strip_prefix(" (blocked)") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if !(rest.is_empty() || rest.starts_with(';')) || kind.is_empty() {
        return None;
    }
    let (namespace, name) = resource.split_once('/').unwrap_or(("", resource));
    if name.is_empty() || name.contains(' ') {
        return None;
    }
    Some(Message {
        kind,
        namespace,
        name,
        rule,
        status,
        blocked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_message_shape() {
        assert_eq!(
            parse_message(
                "Pod production/bad-pod: [validate-resources] fail (blocked); validation error: x"
            ),
            Some(Message {
                kind: "Pod",
                namespace: "production",
                name: "bad-pod",
                rule: "validate-resources",
                status: Status::Fail,
                blocked: true,
            })
        );
        assert_eq!(
            parse_message("Namespace team-x: [check-labels] error (blocked); boom"),
            Some(Message {
                kind: "Namespace",
                namespace: "",
                name: "team-x",
                rule: "check-labels",
                status: Status::Error,
                blocked: true,
            })
        );
        // Kyverno 1.16+: no rule for rule-less CEL policies.
        assert_eq!(
            parse_message("Deployment default/foo: fail; denied"),
            Some(Message {
                kind: "Deployment",
                namespace: "default",
                name: "foo",
                rule: "",
                status: Status::Fail,
                blocked: false,
            })
        );
        assert_eq!(
            parse_message("Pod a/b: [] fail (blocked)").map(|m| (m.rule, m.blocked)),
            Some(("", true))
        );
    }

    #[test]
    fn other_text_is_not_an_admission_message() {
        assert_eq!(parse_message("Pod a/b: [r] pass"), None);
        assert_eq!(parse_message("Pod a/b: [r] skip; x"), None);
        assert_eq!(parse_message("policy x/r fail: msg"), None);
        assert_eq!(parse_message("Pod a/b: [r] failed"), None);
        assert_eq!(parse_message(""), None);
        assert_eq!(parse_message("Pod : [r] fail (blocked); x"), None);
    }

    fn event(extra: &str) -> String {
        format!(
            r#"{{"reason":"PolicyViolation","type":"Warning","action":"Resource Blocked",
            "reportingComponent":"kyverno-admission",
            "involvedObject":{{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","name":"require-requests-limits"}},
            "message":"Pod prod/p1: [validate-resources] fail (blocked); missing limits"{extra}}}"#
        )
    }

    fn count(extra: &str) -> Option<u64> {
        decode(&event(extra), "default")
            .expect("valid")
            .map(|a| a.count)
    }

    #[test]
    fn count_takes_series_then_positive_count_then_deprecated_count_then_one() {
        assert_eq!(count(r#","count":2,"series":{"count":5}"#), Some(5));
        assert_eq!(count(r#","count":2"#), Some(2));
        assert_eq!(count(r#","count":0,"deprecatedCount":3"#), Some(3));
        assert_eq!(count(r#","count":-4"#), Some(1));
        assert_eq!(count(""), Some(1));
        let a = decode(&event(""), "default")
            .expect("valid")
            .expect("admission");
        assert_eq!(
            a,
            Admission {
                policy: "require-requests-limits".into(),
                rule: "validate-resources".into(),
                kind: "Pod".into(),
                namespace: "prod".into(),
                blocked: true,
                decided_by_policy: false,
                count: 1
            }
        );
    }

    #[test]
    fn related_names_the_resource() {
        let e = event(
            r#","related":{"apiVersion":"apps/v1","kind":"Deployment","namespace":"other","name":"d"}"#,
        );
        let a = decode(&e, "default").expect("valid").expect("admission");
        assert_eq!(
            (a.kind.as_str(), a.namespace.as_str()),
            ("Deployment", "other")
        );
        let e = event(r#","related":{"apiVersion":"v1","kind":"Namespace","name":"n"}"#);
        let a = decode(&e, "default").expect("valid").expect("admission");
        assert_eq!((a.kind.as_str(), a.namespace.as_str()), ("Namespace", ""));
    }

    #[test]
    fn namespaced_policies_use_namespace_slash_name() {
        for kind in [
            "Policy",
            "NamespacedValidatingPolicy",
            "NamespacedImageValidatingPolicy",
        ] {
            let e = format!(
                r#"{{"reason":"PolicyViolation","reportingComponent":"kyverno-admission","action":"Resource Blocked",
                "involvedObject":{{"kind":"{kind}","namespace":"team","name":"p"}},
                "message":"ConfigMap team/c: [r] fail (blocked); no"}}"#
            );
            assert_eq!(
                decode(&e, "x").expect("valid").map(|a| a.policy),
                Some("team/p".into()),
                "{kind}"
            );
            // Without a namespace on the reference, the Event's own.
            let e = e.replace(r#""namespace":"team","#, "");
            assert_eq!(
                decode(&e, "evns").expect("valid").map(|a| a.policy),
                Some("evns/p".into()),
                "{kind}"
            );
        }
    }

    #[test]
    fn audit_failures_count_as_not_blocked() {
        let audit = r#"{"reason":"PolicyViolation","reportingComponent":"kyverno-admission",
            "involvedObject":{"apiVersion":"policies.kyverno.io/v1beta1","kind":"ImageValidatingPolicy","name":"p"},
            "message":"Pod a/b: error; no","action":"Resource Passed"}"#;
        let a = decode(audit, "default").expect("valid").expect("admission");
        assert!(!a.blocked);
        assert_eq!(a.rule, "");
        // `action` decides over the message.
        let e = audit.replace("error;", "error (blocked);");
        assert!(
            !decode(&e, "default")
                .expect("valid")
                .expect("admission")
                .blocked
        );
    }

    #[test]
    fn old_writers_decide_by_message_and_source_component() {
        // Kyverno 1.10: source.component, count, no action.
        let e = r#"{"reason":"PolicyViolation","source":{"component":"kyverno-admission"},"count":4,
            "involvedObject":{"kind":"ClusterPolicy","name":"p"},
            "message":"Pod a/b: [r] fail (blocked); no"}"#;
        let a = decode(e, "default").expect("valid").expect("admission");
        assert!(a.blocked);
        assert_eq!(a.count, 4);
        let e = e.replace(" (blocked)", "");
        assert!(
            !decode(&e, "default")
                .expect("valid")
                .expect("admission")
                .blocked
        );
        // No component at all: only blocked Events count.
        let e = e.replace(r#""source":{"component":"kyverno-admission"},"#, "");
        assert_eq!(decode(&e, "default").expect("valid"), None);
        let e = e.replace("fail;", "fail (blocked);");
        assert!(
            decode(&e, "default")
                .expect("valid")
                .expect("admission")
                .blocked
        );
    }

    #[test]
    fn scans_other_objects_and_other_reasons_are_ignored() {
        let scan = r#"{"reason":"PolicyViolation","reportingComponent":"kyverno-scan","action":"Resource Passed",
            "involvedObject":{"kind":"ClusterPolicy","name":"p"},"message":"Pod a/b: [r] fail; no"}"#;
        assert_eq!(decode(scan, "default").expect("valid"), None);
        let other = r#"{"reason":"PolicyApplied","involvedObject":{"kind":"ClusterPolicy","name":"p"},
            "message":"Pod a/b: [r] fail (blocked); no"}"#;
        assert_eq!(decode(other, "default").expect("valid"), None);
        let about_pod = r#"{"reason":"PolicyViolation","reportingComponent":"kyverno-admission",
            "involvedObject":{"kind":"Pod","name":"b"},"message":"policy p/r fail: no"}"#;
        assert_eq!(decode(about_pod, "default").expect("valid"), None);
        let foreign = r#"{"reason":"PolicyViolation","reportingComponent":"kyverno-admission",
            "involvedObject":{"apiVersion":"example.com/v1","kind":"Policy","name":"b"},"message":"x"}"#;
        assert_eq!(decode(foreign, "default").expect("valid"), None);
    }

    #[test]
    fn events_k8s_io_fields_are_read() {
        let e = r#"{"reason":"PolicyViolation","reportingController":"kyverno-admission","action":"Resource Blocked",
            "regarding":{"kind":"ValidatingPolicy","name":"vp"},"deprecatedCount":2,
            "note":"Pod a/b: fail (blocked); no"}"#;
        let a = decode(e, "default").expect("valid").expect("admission");
        assert_eq!((a.policy.as_str(), a.count, a.blocked), ("vp", 2, true));
    }

    #[test]
    fn bad_admission_events_are_errors() {
        assert!(decode(r#"{"reason":5}"#, "d").is_err());
        assert!(decode(r#"{"reason":"PolicyViolation","count":"x"}"#, "d").is_err());
        assert!(decode("[1]", "d").is_err());
        let no_message = r#"{"reason":"PolicyViolation","reportingComponent":"kyverno-admission",
            "involvedObject":{"kind":"ClusterPolicy","name":"p"}}"#;
        assert_eq!(
            decode(no_message, "d").expect_err("invalid").field,
            "message"
        );
        let garbled = r#"{"reason":"PolicyViolation","reportingComponent":"kyverno-admission",
            "involvedObject":{"kind":"ClusterPolicy","name":"p"},"message":"garbled"}"#;
        assert!(decode(garbled, "d").is_err());
        let no_name = r#"{"reason":"PolicyViolation","reportingComponent":"kyverno-admission","action":"Resource Blocked",
            "involvedObject":{"kind":"ClusterPolicy"},"message":"Pod a/b: [r] fail (blocked); x"}"#;
        assert_eq!(
            decode(no_name, "d").expect_err("invalid").field,
            "involvedObject.name"
        );
        let typed =
            r#"{"reason":"PolicyViolation","involvedObject":{"kind":"ClusterPolicy","name":7}}"#;
        assert!(decode(typed, "d").is_err());
    }
}
