//! Property-based fuzzing (proptest) of everything that reads untrusted
//! input: the report, Event and policy decoders, the blocked-message parser
//! and the file parser, over arbitrary JSON, YAML and bytes; and of the
//! aggregate, whose incremental state must always equal a from-scratch
//! computation over the valid objects.
//!
//! Bounds: each property runs a fixed number of cases (the `CASES_*`
//! constants; `FUZZ_CASES_FACTOR=N` multiplies them for a longer run:
//! `scripts/test` runs twice as many as a plain `cargo test`)
//! with a random seed; a failure prints the shrunk input. Each property
//! prints its case count and time (`--nocapture`); docs/reliability.md has
//! the figures measured in a debug build.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{gen_event, gen_policy, gen_report};
use policyreport_exporter::aggregate::{Aggregate, Config, ExtraLabel, LabelOptions, Outputs};
use policyreport_exporter::event;
use policyreport_exporter::kind::{Kind, Role};
use policyreport_exporter::metrics::Snapshot;
use policyreport_exporter::policy;
use policyreport_exporter::report::Report;
use policyreport_exporter::source::files;
use policyreport_exporter::source::{Origin, SourceEvent};
use policyreport_test_support::metrics::{Metrics, render_family};
use policyreport_test_support::rng::Rng;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

const CASES_DECODERS: u32 = 1000;
const CASES_MESSAGES: u32 = 2500;
const CASES_FILES: u32 = 500;
const CASES_AGGREGATE: u32 = 150;

fn cases(n: u32) -> u32 {
    let factor: u32 = std::env::var("FUZZ_CASES_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    n * factor.max(1)
}

/// Run a property; print its bounds and time.
fn run<S: Strategy>(
    name: &str,
    n: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: cases(n),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let start = Instant::now();
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
    println!("FUZZ {name}: {} cases in {:.1?}", cases(n), start.elapsed());
}

// ---------------------------------------------------------------------------
// Generators: arbitrary JSON, biased toward the shapes the decoders read.
// ---------------------------------------------------------------------------

const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "uid",
    "results",
    "scope",
    "source",
    "policy",
    "rule",
    "result",
    "category",
    "severity",
    "message",
    "scored",
    "properties",
    "resources",
    "timestamp",
    "reason",
    "note",
    "involvedObject",
    "regarding",
    "count",
    "deprecatedCount",
    "series",
    "spec",
    "rules",
    "validate",
    "failureAction",
    "failureActionOverrides",
    "validationFailureAction",
    "validationFailureActionOverrides",
    "action",
    "background",
    "validationActions",
    "evaluation",
    "enabled",
    "annotations",
    "items",
];

const STRINGS: &[&str] = &[
    "pass",
    "fail",
    "warn",
    "error",
    "skip",
    "maybe",
    "PASS",
    "",
    "PolicyViolation",
    "Audit",
    "Enforce",
    "audit",
    "enforce",
    "Deny",
    "Warn",
    "Block",
    "Pod",
    "ClusterPolicy",
    "Policy",
    "ValidatingPolicy",
    "kyverno",
    "v1",
    "kyverno.io/v1",
    "wgpolicyk8s.io/v1alpha2",
    "openreports.io/v1alpha1",
    "PolicyReport",
    "ClusterPolicyReport",
    "Report",
    "Event",
    "List",
    "PolicyReportList",
    "Pod ns/name: [rule] fail (blocked); x",
    "Pod name: [r] fail (blocked)",
    "Pod a/b: [r] fail; x",
    "policies.kyverno.io/category",
    "a\u{0}b",
    "é\u{1F600}\u{202E}",
    "\\",
    "\"",
    "*",
    "&a",
];

fn arb_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(STRINGS).prop_map(String::from),
        1 => any::<String>(),
        1 => "[ -~]{0,40}",
    ]
    .boxed()
}

fn arb_key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(KEYS).prop_map(String::from),
        1 => "[a-zA-Z./]{0,12}",
    ]
    .boxed()
}

fn arb_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        arb_string().prop_map(Value::String),
    ]
    .boxed()
}

fn arb_json() -> BoxedStrategy<Value> {
    arb_leaf()
        .prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                btree_map(arb_key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A field: mostly a valid value, sometimes absent, null or anything.
fn field(valid: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        8 => valid.prop_map(Some),
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => arb_json().prop_map(Some),
    ]
    .boxed()
}

fn string_of(items: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => select(items).prop_map(Value::from),
        1 => arb_string().prop_map(Value::from),
    ]
    .boxed()
}

fn object(fields: Vec<(&str, Option<Value>)>, extra: Option<(String, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    }
    if let Some((k, v)) = extra {
        m.insert(k, v);
    }
    Value::Object(m)
}

fn arb_extra() -> BoxedStrategy<Option<(String, Value)>> {
    prop::option::weighted(0.2, (arb_key(), arb_json())).boxed()
}

fn arb_subject() -> BoxedStrategy<Value> {
    (
        field(string_of(&["Pod", "Namespace", "Deployment"])),
        field(string_of(&["ns", "", "prod"])),
        field(string_of(&["web", "api"])),
        field(string_of(&["u1", "u2"])),
        field(string_of(&["v1"])),
        arb_extra(),
    )
        .prop_map(|(kind, ns, name, uid, av, extra)| {
            object(
                vec![
                    ("kind", kind),
                    ("namespace", ns),
                    ("name", name),
                    ("uid", uid),
                    ("apiVersion", av),
                ],
                extra,
            )
        })
        .boxed()
}

fn arb_result() -> BoxedStrategy<Value> {
    let strings = (
        field(string_of(&["require-requests-limits", "team/p", "p"])),
        field(string_of(&["pass", "fail", "warn", "error", "skip"])),
        field(string_of(&["check", "autogen-check"])),
        field(string_of(&[
            "Best Practices",
            "Pod Security Standards (Baseline), X",
        ])),
        field(string_of(&["low", "high"])),
        field(string_of(&["kyverno", "KyvernoValidatingPolicy"])),
        field(string_of(&["validation error"])),
    );
    let others = (
        field(any::<bool>().prop_map(Value::Bool).boxed()),
        field(
            btree_map(arb_key(), arb_string().prop_map(Value::String), 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
                .boxed(),
        ),
        field(vec(arb_subject(), 0..3).prop_map(Value::Array).boxed()),
        field(Just(json!({"seconds": 1, "nanos": 0})).boxed()),
        arb_extra(),
    );
    (strings, others)
        .prop_map(
            |(
                (policy, result, rule, category, severity, source, message),
                (scored, properties, resources, timestamp, extra),
            )| {
                object(
                    vec![
                        ("policy", policy),
                        ("result", result),
                        ("rule", rule),
                        ("category", category),
                        ("severity", severity),
                        ("source", source),
                        ("message", message),
                        ("scored", scored),
                        ("properties", properties),
                        ("resources", resources),
                        ("timestamp", timestamp),
                    ],
                    extra,
                )
            },
        )
        .boxed()
}

fn arb_metadata() -> BoxedStrategy<Value> {
    (
        field(string_of(&["r1", "r2"])),
        field(string_of(&["ns", "default"])),
        field(string_of(&["uid-1"])),
        arb_extra(),
    )
        .prop_map(|(name, ns, uid, extra)| {
            object(vec![("name", name), ("namespace", ns), ("uid", uid)], extra)
        })
        .boxed()
}

fn arb_report() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (
            field(arb_metadata()),
            field(vec(arb_result(), 0..5).prop_map(Value::Array).boxed()),
            field(arb_subject()),
            field(string_of(&["kyverno"])),
            arb_extra(),
        )
            .prop_map(|(metadata, results, scope, source, extra)| {
                object(
                    vec![
                        ("metadata", metadata),
                        ("results", results),
                        ("scope", scope),
                        ("source", source),
                    ],
                    extra,
                )
            }),
        1 => arb_json(),
    ]
    .boxed()
}

fn arb_message() -> BoxedStrategy<String> {
    let part = || {
        prop_oneof![
            3 => select(&["Pod", "ns/web", "web", "check", "a/b/c", "", " ", "[x]", "] ", ": ["][..])
                .prop_map(String::from),
            1 => any::<String>(),
        ]
    };
    prop_oneof![
        3 => (
            part(),
            part(),
            part(),
            select(&[
                "fail (blocked)",
                "fail",
                "pass",
                "fail (blocked)x",
                "FAIL (blocked)",
                "error",
                "error (blocked)",
                "errors",
            ][..]),
            part(),
            select(&["[{}] ", "", "[{}]", "{} "][..]),
            select(&["; ", "", ";", " "][..]),
        )
            .prop_map(|(kind, res, rule, verdict, rest, rule_form, sep)| {
                let rule = rule_form.replace("{}", &rule);
                format!("{kind} {res}: {rule}{verdict}{sep}{rest}")
            }),
        1 => any::<String>(),
        1 => arb_string(),
    ]
    .boxed()
}

fn arb_count() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (0u32..20).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
    ]
    .boxed()
}

fn arb_event() -> BoxedStrategy<Value> {
    let head = (
        field(string_of(&["PolicyViolation", "PolicyApplied"])),
        field(arb_message().prop_map(Value::String).boxed()),
        field(arb_message().prop_map(Value::String).boxed()),
        field(
            (
                field(string_of(&[
                    "ClusterPolicy",
                    "Policy",
                    "ValidatingPolicy",
                    "NamespacedValidatingPolicy",
                    "ImageValidatingPolicy",
                    "NamespacedImageValidatingPolicy",
                    "Pod",
                ])),
                field(string_of(&["team", ""])),
                field(string_of(&["p", ""])),
                field(string_of(&[
                    "kyverno.io/v1",
                    "policies.kyverno.io/v1beta1",
                    "v1",
                    "",
                ])),
            )
                .prop_map(|(k, ns, n, av)| {
                    object(
                        vec![
                            ("kind", k),
                            ("namespace", ns),
                            ("name", n),
                            ("apiVersion", av),
                        ],
                        None,
                    )
                })
                .boxed(),
        ),
    );
    let origin = (
        field(string_of(&["Resource Blocked", "Resource Passed", ""])),
        field(string_of(&["kyverno-admission", "kyverno-scan", ""])),
        field(string_of(&["kyverno-admission", "kyverno-scan", ""])),
        field(
            field(string_of(&["kyverno-admission", "kyverno-scan", ""]))
                .prop_map(|c| object(vec![("component", c)], None))
                .boxed(),
        ),
        field(
            (
                field(string_of(&["Deployment", "Namespace", ""])),
                field(string_of(&["other", ""])),
            )
                .prop_map(|(k, ns)| object(vec![("kind", k), ("namespace", ns)], None))
                .boxed(),
        ),
    );
    let tail = (
        field(
            (
                field(string_of(&["Policy", "ClusterPolicy"])),
                field(string_of(&["q"])),
            )
                .prop_map(|(k, n)| object(vec![("kind", k), ("name", n)], None))
                .boxed(),
        ),
        field(arb_count()),
        field(arb_count()),
        field(
            field(arb_count())
                .prop_map(|c| object(vec![("count", c)], None))
                .boxed(),
        ),
        arb_extra(),
    );
    prop_oneof![
        8 => (head, origin, tail).prop_map(
            |(
                (reason, message, note, involved),
                (action, component, controller, source, related),
                (regarding, count, dcount, series, extra),
            )| {
                object(
                    vec![
                        ("reason", reason),
                        ("message", message),
                        ("note", note),
                        ("involvedObject", involved),
                        ("regarding", regarding),
                        ("count", count),
                        ("deprecatedCount", dcount),
                        ("series", series),
                        ("action", action),
                        ("reportingComponent", component),
                        ("reportingController", controller),
                        ("source", source),
                        ("related", related),
                    ],
                    extra,
                )
            }
        ),
        1 => arb_json(),
    ]
    .boxed()
}

fn arb_policy() -> BoxedStrategy<Value> {
    let action = || {
        field(string_of(&[
            "Audit", "Enforce", "audit", "enforce", "Block",
        ]))
    };
    let overrides = move || {
        field(
            vec(
                action().prop_map(|a| object(vec![("action", a)], None)),
                0..3,
            )
            .prop_map(Value::Array)
            .boxed(),
        )
    };
    let rule = (
        field(string_of(&["r"])),
        field(
            (action(), overrides())
                .prop_map(|(a, o)| {
                    object(
                        vec![("failureAction", a), ("failureActionOverrides", o)],
                        None,
                    )
                })
                .boxed(),
        ),
    )
        .prop_map(|(name, validate)| object(vec![("name", name), ("validate", validate)], None));
    let spec = (
        action(),
        overrides(),
        field(any::<bool>().prop_map(Value::Bool).boxed()),
        field(vec(rule, 0..4).prop_map(Value::Array).boxed()),
        field(
            vec(string_of(&["Deny", "Audit", "Warn"]), 0..3)
                .prop_map(Value::Array)
                .boxed(),
        ),
        arb_extra(),
    )
        .prop_map(|(vfa, vfao, bg, rules, va, extra)| {
            object(
                vec![
                    ("validationFailureAction", vfa),
                    ("validationFailureActionOverrides", vfao),
                    ("background", bg),
                    ("rules", rules),
                    ("validationActions", va),
                ],
                extra,
            )
        });
    let metadata = (
        field(string_of(&["p", ""])),
        field(string_of(&["team"])),
        field(
            btree_map(
                select(
                    &[
                        "policies.kyverno.io/category",
                        "policies.kyverno.io/title",
                        "x",
                    ][..],
                )
                .prop_map(String::from),
                arb_leaf(),
                0..3,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect()))
            .boxed(),
        ),
    )
        .prop_map(|(n, ns, a)| {
            object(
                vec![("name", n), ("namespace", ns), ("annotations", a)],
                None,
            )
        });
    prop_oneof![
        8 => (field(metadata.boxed()), field(spec.boxed()))
            .prop_map(|(m, s)| object(vec![("metadata", m), ("spec", s)], None)),
        1 => arb_json(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Models: the documented rules, written independently of the decoders.
// `None` means "not specified": a JSON array where an object is expected
// (serde also accepts a struct as a positional array; no Kubernetes object
// looks like that).
// ---------------------------------------------------------------------------

fn opt_str(v: Option<&Value>) -> Option<bool> {
    match v {
        None | Some(Value::Null) | Some(Value::String(_)) => Some(true),
        Some(_) => Some(false),
    }
}

/// Whether a subject is valid; `None` when unspecified.
fn subject_ok(v: &Value) -> Option<bool> {
    let m = match v {
        Value::Object(m) => m,
        Value::Array(_) => return None,
        _ => return Some(false),
    };
    let mut ok = true;
    for k in ["kind", "namespace", "name", "uid", "apiVersion"] {
        ok &= opt_str(m.get(k))?;
    }
    Some(ok)
}

/// `Ok(count)` with the number of counted results, `Err(prefix)` with the
/// field the error must name; `None` when unspecified.
fn model_report(v: &Value) -> Option<Result<u64, String>> {
    let top = v.as_object()?;
    // The first invalid part in document order is the one reported; the
    // serialized keys are sorted: results, scope, source.
    let count = match model_results(top.get("results"))? {
        Ok(count) => count,
        Err(field) => return Some(Err(field)),
    };
    match top.get("scope") {
        None | Some(Value::Null) => {}
        Some(s) => {
            if !subject_ok(s)? {
                return Some(Err("scope".into()));
            }
        }
    }
    if !opt_str(top.get("source"))? {
        return Some(Err("source".into()));
    }
    Some(Ok(count))
}

fn model_results(results: Option<&Value>) -> Option<Result<u64, String>> {
    let items = match results {
        None | Some(Value::Null) => return Some(Ok(0)),
        Some(Value::Array(items)) => items,
        Some(_) => return Some(Err("results".into())),
    };
    let mut count = 0;
    for (i, item) in items.iter().enumerate() {
        let m = match item {
            Value::Object(m) => m,
            Value::Array(_) => return None,
            _ => return Some(Err(format!("results[{i}]"))),
        };
        let mut ok = matches!(m.get("policy"), Some(Value::String(_)))
            && matches!(m.get("result"), Some(Value::String(r)) if ["pass", "fail", "warn", "error", "skip"].contains(&r.as_str()));
        for k in ["source", "rule", "category", "severity", "message"] {
            ok &= opt_str(m.get(k))?;
        }
        ok &= matches!(m.get("scored"), None | Some(Value::Null | Value::Bool(_)));
        match m.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(p)) => ok &= p.values().all(Value::is_string),
            Some(Value::Array(_)) => return None,
            Some(_) => ok = false,
        }
        let subjects = match m.get("resources") {
            None | Some(Value::Null) => 0,
            Some(Value::Array(rs)) => {
                for r in rs {
                    ok &= subject_ok(r)?;
                }
                rs.len() as u64
            }
            Some(_) => {
                ok = false;
                0
            }
        };
        if !ok {
            return Some(Err(format!("results[{i}]")));
        }
        count += subjects.max(1);
    }
    Some(Ok(count))
}

/// `(kind, namespace, name, rule, blocked)` of an admission message.
type MessageModel = (String, String, String, String, bool);

fn model_parse_message(message: &str) -> Option<MessageModel> {
    let (kind, rest) = message.split_once(' ')?;
    let (resource, rest) = rest.split_once(": ")?;
    let (rule, rest) = match rest.strip_prefix('[') {
        Some(r) => r.split_once("] ")?,
        None => ("", rest),
    };
    // The verdict is everything up to the first `;`.
    let verdict = rest.split(';').next().unwrap_or(rest);
    let blocked = match verdict {
        "fail" | "error" => false,
        "fail (blocked)" | "error (blocked)" => true,
        _ => return None,
    };
    let (ns, name) = resource.split_once('/').unwrap_or(("", resource));
    if kind.is_empty() || name.is_empty() || name.contains(' ') {
        return None;
    }
    Some((kind.into(), ns.into(), name.into(), rule.into(), blocked))
}

/// `Ok(Some((policy, rule, kind, namespace, blocked, count)))` for an
/// admission result, `Ok(None)` for another valid Event, `Err(())` for an
/// invalid one; `None` when unspecified.
type AdmissionModel = (String, String, String, String, bool, u64);

/// The Event namespace the property test hands the decoder.
const EVENT_NS: &str = "evns";

fn model_event(v: &Value) -> Option<Result<Option<AdmissionModel>, ()>> {
    let m = v.as_object()?;
    let mut ok = true;
    for k in [
        "reason",
        "message",
        "note",
        "action",
        "reportingComponent",
        "reportingController",
    ] {
        ok &= opt_str(m.get(k))?;
    }
    for k in ["involvedObject", "regarding", "related"] {
        match m.get(k) {
            None | Some(Value::Null) => {}
            Some(s) => ok &= subject_ok(s)?,
        }
    }
    let source_component = match m.get("source") {
        None | Some(Value::Null) => "",
        Some(Value::Object(s)) => match s.get("component") {
            None | Some(Value::Null) => "",
            Some(Value::String(c)) => c.as_str(),
            Some(_) => {
                ok = false;
                ""
            }
        },
        Some(Value::Array(_)) => return None,
        Some(_) => {
            ok = false;
            ""
        }
    };
    let count = |v: Option<&Value>| -> Result<Option<i64>, ()> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(n) => n.as_i64().map(Some).ok_or(()),
        }
    };
    let plain = count(m.get("count"));
    let deprecated = count(m.get("deprecatedCount"));
    let series = match m.get("series") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(s)) => count(s.get("count")),
        Some(Value::Array(_)) => return None,
        Some(_) => Err(()),
    };
    let (Ok(plain), Ok(deprecated), Ok(series)) = (plain, deprecated, series) else {
        return Some(Err(()));
    };
    if !ok {
        return Some(Err(()));
    }
    let str_of = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
    if str_of("reason") != "PolicyViolation" {
        return Some(Ok(None));
    }
    let about = match m.get("involvedObject") {
        Some(Value::Object(o)) => o,
        _ => match m.get("regarding") {
            Some(Value::Object(o)) => o,
            _ => return Some(Ok(None)),
        },
    };
    let s = |k: &str| about.get(k).and_then(Value::as_str).unwrap_or("");
    // The policy kinds come from the table; what the model does with them
    // is its own.
    let Some(about_kind) = Kind::ALL
        .into_iter()
        .find(|k| k.is_policy() && k.kind() == s("kind"))
    else {
        return Some(Ok(None));
    };
    let (group, namespaced) = (about_kind.group(), about_kind.namespaced());
    if !s("apiVersion").is_empty() && !s("apiVersion").starts_with(&format!("{group}/")) {
        return Some(Ok(None));
    }
    let component = [
        str_of("reportingComponent"),
        str_of("reportingController"),
        source_component,
    ]
    .into_iter()
    .find(|c| !c.is_empty());
    if component.is_some_and(|c| c != "kyverno-admission") {
        return Some(Ok(None));
    }
    let message = m
        .get("message")
        .and_then(Value::as_str)
        .or(m.get("note").and_then(Value::as_str))
        .unwrap_or("");
    let Some((kind, ns, _, rule, message_blocked)) = model_parse_message(message) else {
        return Some(if component.is_none() {
            Ok(None)
        } else {
            Err(())
        });
    };
    let blocked = match str_of("action") {
        "" => message_blocked,
        action => action == "Resource Blocked",
    };
    if component.is_none() && !blocked {
        return Some(Ok(None));
    }
    if s("name").is_empty() {
        return Some(Err(()));
    }
    let policy = match (namespaced, s("namespace")) {
        (false, _) => s("name").to_owned(),
        (true, "") => format!("{EVENT_NS}/{}", s("name")),
        (true, ns) => format!("{ns}/{}", s("name")),
    };
    let (kind, ns) = match m.get("related") {
        Some(Value::Object(r))
            if r.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| !k.is_empty()) =>
        {
            (
                r["kind"].as_str().unwrap_or("").to_owned(),
                r.get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            )
        }
        _ => (kind, ns),
    };
    let count = [series, plain, deprecated]
        .into_iter()
        .flatten()
        .find(|n| *n > 0)
        .unwrap_or(1) as u64;
    Some(Ok(Some((policy, rule, kind, ns, blocked, count))))
}

// ---------------------------------------------------------------------------
// Decoder properties.
// ---------------------------------------------------------------------------

#[test]
fn the_report_decoder_agrees_with_the_documented_rules() {
    run("report::decode", CASES_DECODERS, arb_report(), |v| {
        let text = v.to_string();
        let Ok(report) = serde_json::from_str::<Report>(&text) else {
            prop_assert!(!v.is_object(), "refused: {text}");
            return Ok(());
        };
        // Only what identifies the object is read of the metadata.
        let bad_meta = match v.get("metadata") {
            None | Some(Value::Null) => false,
            Some(Value::Object(m)) => ["name", "namespace", "uid", "resourceVersion"]
                .iter()
                .any(|k| opt_str(m.get(*k)) == Some(false)),
            Some(_) => true,
        };
        if bad_meta {
            let field = report.error().map(|e| e.field.as_str()).unwrap_or("");
            prop_assert!(field.starts_with("metadata"), "metadata accepted: {text}");
            return Ok(());
        }
        let decoded = match report.error() {
            None => Ok(&report),
            Some(e) => Err(e),
        };
        let model = model_report(&v);
        match (&decoded, model) {
            (Ok(d), Some(Ok(count))) => {
                let got: u64 = d.results().map(|r| (r.subject_count() as u64).max(1)).sum();
                prop_assert_eq!(got, count, "counted results of {}", text);
            }
            (Err(e), Some(Err(prefix))) => {
                prop_assert!(
                    e.field.starts_with(&prefix),
                    "error field {} should start with {} for {}",
                    e.field,
                    prefix,
                    text
                );
                prop_assert!(!e.reason.is_empty());
                prop_assert!(!e.to_string().is_empty());
            }
            (_, None) => {}
            (d, m) => {
                return Err(TestCaseError::fail(format!(
                    "decoder {:?} but the rules say {m:?} for {text}",
                    d.as_ref().map(|_| "ok").map_err(|e| e.to_string())
                )));
            }
        }
        Ok(())
    });
}

#[test]
fn the_event_decoder_agrees_with_the_documented_rules() {
    run("event::decode", CASES_DECODERS, arb_event(), |v| {
        let text = v.to_string();
        let decoded = event::decode(&text, EVENT_NS);
        match (decoded, model_event(&v)) {
            (Ok(Some(b)), Some(Ok(Some((policy, rule, kind, ns, blocked, count))))) => {
                prop_assert_eq!(
                    (b.policy, b.rule, b.kind, b.namespace, b.blocked, b.count),
                    (policy, rule, kind, ns, blocked, count),
                    "{}",
                    text
                );
            }
            (Ok(None), Some(Ok(None))) | (_, None) => {}
            (Err(e), Some(Err(()))) => {
                prop_assert!(!e.reason.is_empty() && !e.field.is_empty());
            }
            (d, m) => {
                return Err(TestCaseError::fail(format!(
                    "decoder {d:?} but the rules say {m:?} for {text}"
                )));
            }
        }
        Ok(())
    });
}

#[test]
fn the_blocked_message_parser_agrees_with_the_documented_format() {
    run("event::parse_message", CASES_MESSAGES, arb_message(), |m| {
        let got = event::parse_message(&m).map(|p| {
            (
                p.kind.into(),
                p.namespace.into(),
                p.name.into(),
                p.rule.into(),
                p.blocked,
            )
        });
        prop_assert_eq!(got, model_parse_message(&m), "{:?}", m);
        Ok(())
    });
}

#[test]
fn the_policy_decoder_never_panics_and_names_what_it_refuses() {
    let policies: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.is_policy()).collect();
    let kinds = select(policies);
    run(
        "policy::decode",
        CASES_DECODERS,
        (kinds, arb_policy()),
        |(kind, v)| {
            let text = v.to_string();
            match policy::decode(kind, &text) {
                Ok(p) => {
                    let p = p.info;
                    // (A JSON array where metadata belongs reads positionally:
                    // unspecified, as no Kubernetes object looks like that.)
                    if v["metadata"].is_object() {
                        let name = v["metadata"]["name"].as_str().unwrap_or_default();
                        prop_assert!(!name.is_empty(), "a policy needs a name: {}", text);
                        prop_assert!(p.policy.ends_with(name), "{} for {}", p.policy, text);
                    }
                    if kind.role() == Role::CelPolicy {
                        prop_assert!(p.mode != policy::Mode::None, "{}", text);
                    }
                    if kind.role() != Role::CelPolicy
                        && let Some(rules) = v["spec"]["rules"].as_array()
                        && rules.iter().all(|r| {
                            r.is_object()
                                && matches!(
                                    r.get("validate"),
                                    None | Some(Value::Null | Value::Object(_))
                                )
                        })
                    {
                        let validates = rules.iter().any(|r| r["validate"].is_object());
                        prop_assert_eq!(
                            p.mode == policy::Mode::None,
                            !validates,
                            "mode {:?} for {}",
                            p.mode,
                            text
                        );
                    }
                }
                Err(e) => {
                    prop_assert!(
                        ["policy", "metadata.name"].contains(&e.field.as_str())
                            || e.field.starts_with("spec."),
                        "field {}",
                        e.field
                    );
                    prop_assert!(!e.reason.is_empty());
                }
            }
            Ok(())
        },
    );
}

/// The objects `files::parse` should find in a document: known kinds at the
/// top, or in the `items` of a `*List`.
fn model_file_objects(v: &Value, top: bool) -> usize {
    let Value::Object(m) = v else { return 0 };
    let av = m.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = m.get("kind").and_then(Value::as_str).unwrap_or("");
    if Kind::from_type(av, kind).is_some() {
        1
    } else if top && kind.ends_with("List") {
        match m.get("items") {
            Some(Value::Array(items)) => items.iter().map(|i| model_file_objects(i, false)).sum(),
            _ => 0,
        }
    } else {
        0
    }
}

fn arb_document() -> BoxedStrategy<Value> {
    let object = (
        select(
            &[
                ("wgpolicyk8s.io/v1alpha2", "PolicyReport"),
                ("wgpolicyk8s.io/v1alpha2", "ClusterPolicyReport"),
                ("openreports.io/v1alpha1", "Report"),
                ("v1", "Event"),
                ("events.k8s.io/v1", "Event"),
                ("kyverno.io/v1", "ClusterPolicy"),
                ("policies.kyverno.io/v1", "ValidatingPolicy"),
                ("v1", "ConfigMap"),
                ("wgpolicyk8s.io/v1beta1", "PolicyReport"),
            ][..],
        ),
        arb_report(),
    )
        .prop_map(|((av, kind), mut v)| {
            if let Value::Object(m) = &mut v {
                m.insert("apiVersion".into(), av.into());
                m.insert("kind".into(), kind.into());
            }
            v
        })
        .boxed();
    prop_oneof![
        4 => object.clone(),
        2 => (select(&["List", "PolicyReportList", "Lists"][..]), vec(object, 0..4))
            .prop_map(|(kind, items)| json!({"apiVersion": "v1", "kind": kind, "items": items})),
        1 => arb_json(),
    ]
    .boxed()
}

#[test]
fn the_file_parser_finds_every_object_and_refuses_garbage() {
    // Well-formed documents in both formats: every object of a known kind
    // is found (usable, or reported as bad).
    let slowest = std::sync::Mutex::new(Duration::ZERO);
    run(
        "files::parse (documents)",
        CASES_FILES,
        (vec(arb_document(), 1..4), any::<bool>()),
        |(docs, json)| {
            let (bytes, want) = if json {
                (
                    docs[0].to_string().into_bytes(),
                    model_file_objects(&docs[0], true),
                )
            } else {
                let text: Vec<String> = docs
                    .iter()
                    .map(|d| serde_yaml_ng::to_string(d).expect("YAML"))
                    .collect();
                (
                    text.join("---\n").into_bytes(),
                    docs.iter().map(|d| model_file_objects(d, true)).sum(),
                )
            };
            let start = Instant::now();
            let parsed = files::parse(&bytes, json);
            let took = start.elapsed();
            let mut s = slowest.lock().expect("lock");
            *s = (*s).max(took);
            match parsed {
                Ok(c) => prop_assert_eq!(
                    c.objects.len() + c.bad.len(),
                    want,
                    "{}",
                    String::from_utf8_lossy(&bytes)
                ),
                Err(e) => {
                    return Err(TestCaseError::fail(format!(
                        "well-formed input refused: {e}: {}",
                        String::from_utf8_lossy(&bytes)
                    )));
                }
            }
            Ok(())
        },
    );
    // Corrupted and arbitrary bytes: never a panic, errors say what failed.
    run(
        "files::parse (bytes)",
        CASES_FILES,
        (
            prop_oneof![
                1 => vec(any::<u8>(), 0..512),
                2 => (arb_document(), any::<bool>(), vec((any::<prop::sample::Index>(), any::<u8>()), 0..4), any::<prop::sample::Index>())
                    .prop_map(|(doc, json, flips, cut)| {
                        let mut b = if json { doc.to_string().into_bytes() } else { serde_yaml_ng::to_string(&doc).expect("YAML").into_bytes() };
                        for (i, byte) in flips {
                            if !b.is_empty() {
                                let i = i.index(b.len());
                                b[i] = byte;
                            }
                        }
                        if !b.is_empty() && cut.index(4) == 0 {
                            let at = cut.index(b.len());
                            b.truncate(at);
                        }
                        b
                    }),
                1 => select(&[
                    "a: &a [*a]\n",
                    "*x\n",
                    "--- !!binary\n",
                    "- &a x\n- *a\n- *a\n",
                    "{a: 1, a: 2}\n",
                    "? [1]\n: x\n",
                    "\u{feff}a: 1\n",
                    "%YAML 1.1\n---\na: 1\n",
                    "!!python/object:os.system [ls]\n",
                    "a: !!float nan\n",
                ][..])
                .prop_map(|s| s.as_bytes().to_vec()),
            ],
            any::<bool>(),
        ),
        |(bytes, json)| {
            let start = Instant::now();
            let parsed = files::parse(&bytes, json);
            let took = start.elapsed();
            let mut s = slowest.lock().expect("lock");
            *s = (*s).max(took);
            if let Err(e) = parsed {
                let msg = e.to_string();
                prop_assert!(
                    msg.starts_with("parsing JSON: ") || msg.starts_with("parsing YAML: "),
                    "{}",
                    msg
                );
            }
            Ok(())
        },
    );
    let slowest = *slowest.lock().expect("lock");
    println!("FUZZ files::parse: slowest single parse {slowest:.1?}");
    assert!(
        slowest < Duration::from_secs(5),
        "a small input took {slowest:?}"
    );
}

// ---------------------------------------------------------------------------
// The aggregate: incremental = from scratch over the valid objects.
// ---------------------------------------------------------------------------

/// The kinds the aggregate model generates (not Namespaces or the newer
/// policy kinds, which the decoder properties and tests/kube.rs cover).
const AGG_KINDS: [Kind; 8] = [
    Kind::PolicyReport,
    Kind::ClusterPolicyReport,
    Kind::Report,
    Kind::ClusterReport,
    Kind::Event,
    Kind::ClusterPolicy,
    Kind::Policy,
    Kind::ValidatingPolicy,
];
const SLOTS: u8 = 24;

#[derive(Clone, Debug)]
enum Op {
    /// Create or update the object in a slot of an origin.
    Apply {
        origin: u8,
        slot: u8,
        seed: u64,
        invalid: bool,
    },
    /// Delete it.
    Delete { origin: u8, slot: u8 },
    /// A relist of an origin, possibly after an interrupted one.
    Relist {
        origin: u8,
        objects: Vec<(u8, u64, bool)>,
        interrupted: Vec<(u8, u64, bool)>,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let entry = || (0..SLOTS, any::<u64>(), prop::bool::weighted(0.2));
    prop_oneof![
        6 => (0..3u8, 0..SLOTS, any::<u64>(), prop::bool::weighted(0.2))
            .prop_map(|(origin, slot, seed, invalid)| Op::Apply { origin, slot, seed, invalid }),
        2 => (0..3u8, 0..SLOTS).prop_map(|(origin, slot)| Op::Delete { origin, slot }),
        1 => (0..3u8, vec(entry(), 0..10), vec(entry(), 0..4))
            .prop_map(|(origin, objects, interrupted)| Op::Relist { origin, objects, interrupted }),
    ]
}

fn origin(o: u8) -> Origin {
    Origin::File(Arc::from(Path::new(&format!("/origin/{o}"))))
}

/// The model: what each origin holds, and what each Event (by uid) last
/// counted. Events only grow while they exist; a deleted Event comes back
/// with a new uid, as on a real API server.
#[derive(Default)]
struct Model {
    objects: BTreeMap<(u8, u8), (Kind, Value, bool)>,
    event_gen: HashMap<(u8, u8), u64>,
    event_count: HashMap<(u8, u8), u64>,
    /// uid → (namespace, policy, count) of every Event ever counted.
    blocked: BTreeMap<String, (String, String, u64)>,
}

impl Model {
    /// The object for a slot, and whether it is valid.
    fn object(&mut self, o: u8, slot: u8, seed: u64, invalid: bool) -> (Kind, Value, bool) {
        let kind = AGG_KINDS[(slot % 8) as usize];
        let idx = slot / 8;
        let ns = common::GEN_NAMESPACES[(idx % 2) as usize];
        let mut rng = Rng::new(seed);
        if kind.is_report() {
            let v = gen_report(
                &mut rng,
                kind,
                ns,
                &format!("o{idx}"),
                if invalid { 1.0 } else { 0.0 },
            );
            (kind, v, !invalid)
        } else if kind == Kind::Event {
            let generation = *self.event_gen.get(&(o, slot)).unwrap_or(&0);
            let count = self.event_count.get(&(o, slot)).copied().unwrap_or(0) + seed % 3 + 1;
            let (policy, _) = common::GEN_POLICIES[(idx % 6) as usize];
            let mut v = gen_event(ns, &format!("o{idx}"), policy, "web", count);
            v["metadata"]["uid"] = format!("{o}-{slot}-{generation}").into();
            (kind, v, true)
        } else {
            let (policy, _) = common::GEN_POLICIES[(idx % 6) as usize];
            let mut v = gen_policy(&mut rng, kind, ns, policy);
            if invalid {
                v["spec"] = json!({"rules": 5, "validationActions": 5});
            }
            (kind, v, !invalid)
        }
    }

    /// Record an Event the aggregate counts.
    fn counted(&mut self, o: u8, slot: u8, v: &Value) {
        let uid = v["metadata"]["uid"].as_str().expect("uid").to_owned();
        let count = v["series"]["count"].as_u64().expect("count");
        self.event_count.insert((o, slot), count);
        let ns = v["metadata"]["namespace"].as_str().expect("ns").to_owned();
        let policy = v["involvedObject"]["name"]
            .as_str()
            .expect("policy")
            .to_owned();
        self.blocked.insert(uid, (ns, policy, count));
    }

    fn deleted(&mut self, o: u8, slot: u8) {
        if AGG_KINDS[(slot % 8) as usize] == Kind::Event {
            *self.event_gen.entry((o, slot)).or_default() += 1;
            self.event_count.remove(&(o, slot));
        }
    }
}

fn render(agg: &Aggregate) -> Metrics {
    Metrics::parse(&String::from_utf8_lossy(&Snapshot::render(agg).prometheus))
}

#[test]
fn the_aggregate_always_equals_a_from_scratch_count_of_the_valid_objects() {
    let strategy = (vec(arb_op(), 1..60), any::<bool>(), any::<bool>());
    run(
        "aggregate",
        CASES_AGGREGATE,
        strategy,
        |(ops, rule, kind)| {
            let extra: Vec<ExtraLabel> = [(rule, ExtraLabel::Rule), (kind, ExtraLabel::Kind)]
                .into_iter()
                .filter_map(|(on, l)| on.then_some(l))
                .collect();
            let config = Config {
                outputs: Outputs {
                    labels: LabelOptions::of(&extra),
                    ..Outputs::default()
                },
                ..Config::default()
            };
            let mut agg = Aggregate::new(config.clone());
            let mut model = Model::default();
            for op in &ops {
                match op {
                    Op::Apply {
                        origin: o,
                        slot,
                        seed,
                        invalid,
                    } => {
                        let (kind, v, valid) = model.object(*o, *slot, *seed, *invalid);
                        if kind == Kind::Event {
                            model.counted(*o, *slot, &v);
                        }
                        agg.handle(SourceEvent::Apply {
                            origin: origin(*o),
                            object: common::source_object(kind, &v),
                        });
                        model.objects.insert((*o, *slot), (kind, v, valid));
                    }
                    Op::Delete { origin: o, slot } => {
                        if let Some((kind, v, _)) = model.objects.remove(&(*o, *slot)) {
                            model.deleted(*o, *slot);
                            agg.handle(SourceEvent::Delete {
                                origin: origin(*o),
                                object: common::source_object(kind, &v),
                            });
                        }
                    }
                    Op::Relist {
                        origin: o,
                        objects,
                        interrupted,
                    } => {
                        // An interrupted relist: started, some objects, never ended.
                        if !interrupted.is_empty() {
                            agg.handle(SourceEvent::RelistStart { origin: origin(*o) });
                            for (slot, seed, invalid) in interrupted {
                                let mut scratch = Model {
                                    event_gen: model.event_gen.clone(),
                                    event_count: model.event_count.clone(),
                                    ..Model::default()
                                };
                                let (kind, v, _) = scratch.object(*o, *slot, *seed, *invalid);
                                agg.handle(SourceEvent::RelistApply {
                                    origin: origin(*o),
                                    object: common::source_object(kind, &v),
                                });
                            }
                        }
                        // Objects missing from the relist were deleted.
                        let listed: Vec<u8> = objects.iter().map(|(s, _, _)| *s).collect();
                        let gone: Vec<(u8, u8)> = model
                            .objects
                            .keys()
                            .filter(|(oo, s)| oo == o && !listed.contains(s))
                            .copied()
                            .collect();
                        for key in gone {
                            model.objects.remove(&key);
                            model.deleted(key.0, key.1);
                        }
                        agg.handle(SourceEvent::RelistStart { origin: origin(*o) });
                        let mut pending: BTreeMap<u8, (Kind, Value, bool)> = BTreeMap::new();
                        for (slot, seed, invalid) in objects {
                            let (kind, v, valid) = model.object(*o, *slot, *seed, *invalid);
                            if kind == Kind::Event {
                                // Within one relist the last copy wins.
                                model.event_count.insert(
                                    (*o, *slot),
                                    v["series"]["count"].as_u64().expect("count"),
                                );
                            }
                            agg.handle(SourceEvent::RelistApply {
                                origin: origin(*o),
                                object: common::source_object(kind, &v),
                            });
                            pending.insert(*slot, (kind, v, valid));
                        }
                        agg.handle(SourceEvent::RelistEnd { origin: origin(*o) });
                        for (slot, entry) in pending {
                            if entry.0 == Kind::Event {
                                model.counted(*o, slot, &entry.1);
                            }
                            model.objects.insert((*o, slot), entry);
                        }
                    }
                }
            }
            // From scratch: a fresh aggregate fed the valid objects only.
            let mut fresh = Aggregate::new(config);
            for ((o, _), (kind, v, valid)) in &model.objects {
                if *valid {
                    fresh.handle(SourceEvent::Apply {
                        origin: origin(*o),
                        object: common::source_object(*kind, v),
                    });
                }
            }
            let (got, want) = (render(&agg), render(&fresh));
            for family in [
                "policyreport_results",
                "policyreport_control_resources",
                "policyreport_policy_info",
            ] {
                let (g, w) = (
                    render_family(family, &got.family(family)),
                    render_family(family, &want.family(family)),
                );
                prop_assert!(g == w, "{}:\n{}", family, common::text_diff(&w, &g, 20));
            }
            // Blocked admissions: a counter, the sum of every Event's last count.
            let mut blocked: BTreeMap<(String, String), f64> = BTreeMap::new();
            for (ns, policy, count) in model.blocked.values() {
                *blocked.entry((ns.clone(), policy.clone())).or_default() += *count as f64;
            }
            let mut got_blocked: BTreeMap<(String, String), f64> = BTreeMap::new();
            for (l, v) in got.family("policyreport_admission_blocked_total") {
                let get = |k: &str| {
                    l.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                *got_blocked
                    .entry((get("namespace"), get("policy")))
                    .or_default() += v;
            }
            prop_assert_eq!(got_blocked, blocked);
            // Objects held: every object present, valid or not.
            let mut held: BTreeMap<&str, u64> = BTreeMap::new();
            for (kind, _, _) in model.objects.values() {
                *held.entry(kind.resource()).or_default() += 1;
            }
            for k in AGG_KINDS {
                prop_assert_eq!(
                    agg.stats().objects.get(k.resource()).copied().unwrap_or(0),
                    held.get(k.resource()).copied().unwrap_or(0),
                    "objects of {}",
                    k.resource()
                );
            }
            Ok(())
        },
    );
}

#[test]
fn an_event_coming_back_from_invalid_is_not_counted_twice() {
    let mut agg = Aggregate::new(Config::default());
    let o = origin(0);
    let mut ev = gen_event("prod", "e", "restrict-image-registries", "web", 3);
    ev["metadata"]["uid"] = "u1".into();
    let apply = |agg: &mut Aggregate, v: &Value| {
        agg.handle(SourceEvent::Apply {
            origin: o.clone(),
            object: common::source_object(Kind::Event, v),
        })
    };
    apply(&mut agg, &ev);
    let mut broken = ev.clone();
    broken["series"]["count"] = "three".into();
    apply(&mut agg, &broken);
    apply(&mut agg, &ev);
    let mut audit = ev.clone();
    audit["message"] = "Pod prod/web: [check-0] fail; audit only".into();
    apply(&mut agg, &audit);
    apply(&mut agg, &ev);
    let m = render(&agg);
    assert_eq!(
        m.sum("policyreport_admission_blocked_total"),
        3.0,
        "one Event with count 3 is 3 blocked admissions"
    );
}
