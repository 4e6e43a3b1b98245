//! Kyverno's admission Events: deciding which are blocked admissions, and
//! what they name (policy, rule, and the blocked resource).
//!
//! Kyverno writes, for a request it denies, a `Warning` Event with reason
//! `PolicyViolation` about the ClusterPolicy or Policy, whose message reads
//! `<Kind> <namespace>/<name>: [<rule>] fail (blocked); <message>` (or
//! `<Kind> <name>: …` for cluster-scoped resources). Audit failures look the
//! same without `(blocked)` and are not counted.

use serde::Deserialize;

use crate::report::{DecodeError, Subject, Text};

/// A blocked admission named by an Event.
#[derive(Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The policy: `name` for a ClusterPolicy, `namespace/name` for a Policy.
    pub policy: String,
    /// The rule that failed.
    pub rule: String,
    /// Kind of the blocked resource.
    pub kind: String,
    /// Namespace of the blocked resource (empty when cluster-scoped).
    pub namespace: String,
    /// How many times it happened: `series.count`, else `count`, else 1.
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
    involved_object: Option<Subject<'a>>,
    /// `events.k8s.io/v1` name of the involved object.
    #[serde(borrow, default)]
    regarding: Option<Subject<'a>>,
    #[serde(default)]
    count: Option<i64>,
    /// `events.k8s.io/v1` name of `count`.
    #[serde(default)]
    deprecated_count: Option<i64>,
    #[serde(default)]
    series: Option<SeriesIn>,
}

#[derive(Deserialize)]
struct SeriesIn {
    #[serde(default)]
    count: Option<i64>,
}

/// Decode an Event. `Ok(None)` when it is valid but not a blocked admission.
pub fn decode(raw: &str) -> Result<Option<Blocked>, DecodeError> {
    let event: EventIn<'_> = serde_json::from_str(raw).map_err(|e| DecodeError {
        field: "event".into(),
        reason: e.to_string(),
    })?;
    if event.reason.as_ref().map(Text::as_str) != Some("PolicyViolation") {
        return Ok(None);
    }
    let Some(message) = event.message.as_ref().or(event.note.as_ref()) else {
        return Ok(None);
    };
    let Some(parsed) = parse_message(message.as_str()) else {
        return Ok(None);
    };
    let Some(about) = event.involved_object.as_ref().or(event.regarding.as_ref()) else {
        return Ok(None);
    };
    let kind = about.kind.as_ref().map_or("", Text::as_str);
    let name = about.name.as_ref().map_or("", Text::as_str);
    let policy = match kind {
        "ClusterPolicy" | "ValidatingPolicy" => name.to_owned(),
        "Policy" => match about.namespace.as_ref().map(Text::as_str) {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_owned(),
        },
        _ => return Ok(None),
    };
    if name.is_empty() {
        return Ok(None);
    }
    let count = event
        .series
        .and_then(|s| s.count)
        .or(event.count)
        .or(event.deprecated_count)
        .unwrap_or(1)
        .max(1)
        .unsigned_abs();
    Ok(Some(Blocked {
        policy,
        rule: parsed.rule.to_owned(),
        kind: parsed.kind.to_owned(),
        namespace: parsed.namespace.to_owned(),
        count,
    }))
}

/// What a blocked-admission message names.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Kind of the blocked resource.
    pub kind: &'a str,
    /// Its namespace, empty when cluster-scoped.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The failed rule.
    pub rule: &'a str,
}

/// Parse `<Kind> [<namespace>/]<name>: [<rule>] fail (blocked); …`. Returns
/// `None` for anything else, including audit failures without `(blocked)`.
pub fn parse_message(message: &str) -> Option<Message<'_>> {
    let (kind, rest) = message.split_once(' ')?;
    let (resource, rest) = rest.split_once(": [")?;
    let (rule, rest) = rest.split_once("] ")?;
    if !rest.starts_with("fail (blocked)") || kind.is_empty() {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaced_and_cluster_scoped_messages() {
        assert_eq!(
            parse_message(
                "Pod production/bad-pod: [validate-resources] fail (blocked); validation error: x"
            ),
            Some(Message {
                kind: "Pod",
                namespace: "production",
                name: "bad-pod",
                rule: "validate-resources"
            })
        );
        assert_eq!(
            parse_message("Namespace team-x: [check-labels] fail (blocked); missing label"),
            Some(Message {
                kind: "Namespace",
                namespace: "",
                name: "team-x",
                rule: "check-labels"
            })
        );
    }

    #[test]
    fn audit_failures_and_other_text_are_not_blocks() {
        assert_eq!(parse_message("Pod a/b: [r] fail; validation error"), None);
        assert_eq!(parse_message("Pod a/b: [r] pass"), None);
        assert_eq!(parse_message("policy x applied"), None);
        assert_eq!(parse_message(""), None);
        assert_eq!(parse_message("Pod : [r] fail (blocked); x"), None);
        // CEL policies may have no rule name.
        assert_eq!(
            parse_message("Pod a/b: [] fail (blocked); x").map(|m| m.rule),
            Some("")
        );
    }

    fn event(extra: &str) -> String {
        format!(
            r#"{{"reason":"PolicyViolation","type":"Warning","action":"Resource Blocked",
            "involvedObject":{{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","name":"require-requests-limits"}},
            "message":"Pod prod/p1: [validate-resources] fail (blocked); missing limits"{extra}}}"#
        )
    }

    #[test]
    fn count_prefers_series_then_count_then_one() {
        let e = event(r#","count":2,"series":{"count":5}"#);
        assert_eq!(decode(&e).expect("valid").map(|b| b.count), Some(5));
        let e = event(r#","count":2"#);
        assert_eq!(decode(&e).expect("valid").map(|b| b.count), Some(2));
        let e = event(r#","count":-4"#);
        assert_eq!(
            decode(&e).expect("valid").map(|b| b.count),
            Some(1),
            "at least 1"
        );
        let e = event("");
        let b = decode(&e).expect("valid").expect("blocked");
        assert_eq!(
            b,
            Blocked {
                policy: "require-requests-limits".into(),
                rule: "validate-resources".into(),
                kind: "Pod".into(),
                namespace: "prod".into(),
                count: 1
            }
        );
    }

    #[test]
    fn namespaced_policies_use_namespace_slash_name() {
        let e = r#"{"reason":"PolicyViolation","involvedObject":{"kind":"Policy","namespace":"team","name":"p"},
            "message":"ConfigMap team/c: [r] fail (blocked); no"}"#;
        assert_eq!(
            decode(e).expect("valid").map(|b| b.policy),
            Some("team/p".into())
        );
    }

    #[test]
    fn non_blocking_events_are_ignored_and_bad_ones_rejected() {
        let audit = r#"{"reason":"PolicyViolation","involvedObject":{"kind":"ClusterPolicy","name":"p"},
            "message":"Pod a/b: [r] fail; no","action":"Resource Passed"}"#;
        assert_eq!(decode(audit).expect("valid"), None);
        let other = r#"{"reason":"PolicyApplied","involvedObject":{"kind":"ClusterPolicy","name":"p"},
            "message":"Pod a/b: [r] fail (blocked); no"}"#;
        assert_eq!(decode(other).expect("valid"), None);
        let about_pod = r#"{"reason":"PolicyViolation","involvedObject":{"kind":"Pod","name":"b"},
            "message":"Pod a/b: [r] fail (blocked); no"}"#;
        assert_eq!(decode(about_pod).expect("valid"), None);
        assert!(decode(r#"{"reason":5}"#).is_err());
        assert!(decode(r#"{"reason":"PolicyViolation","count":"x"}"#).is_err());
        assert!(decode("[1]").is_err());
    }
}
