use serde::Deserialize;

use super::*;

fn report(json: &str) -> Report {
    serde_json::from_str(json).expect("test JSON")
}

fn error(json: &str) -> DecodeError {
    report(json).error().cloned().expect("invalid")
}

#[test]
fn decodes_results_in_one_pass() {
    let r = report(
        r#"{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport",
            "metadata":{"name":"a","namespace":"ns","managedFields":[{"x":1}]},
            "scope":{"apiVersion":"v1","kind":"Pod","name":"p","namespace":"ns","uid":"u1"},
            "results":[{"policy":"p","rule":"r","result":"fail","category":"C, D","severity":"high",
            "message":"m","scored":true,"properties":{"process":"background scan"},
            "timestamp":{"seconds":1,"nanos":0},"resources":[{"kind":"Pod","name":"x","uid":"u"}]},
            {"policy":"q","result":"pass","category":"C, D","source":"kyverno"}],
            "summary":{"pass":1}}"#,
    );
    assert!(r.error().is_none());
    assert_eq!(r.metadata.name.as_deref(), Some("a"));
    assert!(r.metadata.managed_fields.is_none());
    assert_eq!(
        r.type_meta(),
        (Some("wgpolicyk8s.io/v1alpha2"), Some("PolicyReport"))
    );
    let scope = r.scope().expect("scope");
    assert_eq!((scope.kind, scope.uid), ("Pod", "u1"));
    let results: Vec<_> = r.results().collect();
    assert_eq!(results.len(), 2);
    let e = &results[0];
    assert_eq!(
        (e.policy, e.rule, e.category, e.severity, e.source),
        ("p", "r", "C, D", "high", None)
    );
    assert_eq!(e.outcome, Outcome::Fail);
    let subjects: Vec<_> = e.subjects().collect();
    assert_eq!(
        subjects,
        vec![SubjectView {
            kind: "Pod",
            namespace: "",
            name: "x",
            uid: "u"
        }]
    );
    let e = &results[1];
    assert_eq!((e.policy, e.rule, e.category), ("q", "", "C, D"));
    assert_eq!((e.source, e.subject_count()), (Some("kyverno"), 0));
    // The repeated category is stored once.
    assert_eq!(r.text.matches("C, D").count(), 1);
}

#[test]
fn reads_timestamp_seconds_and_never_fails_on_them() {
    let seconds = |ts: &str| {
        let r = report(&format!(
            r#"{{"results":[{{"policy":"p","result":"pass","timestamp":{ts}}}]}}"#
        ));
        assert!(r.error().is_none(), "{ts}: {:?}", r.error());
        r.results().next().and_then(|e| e.timestamp)
    };
    assert_eq!(
        seconds(r#"{"seconds":1731403200,"nanos":5}"#),
        Some(1_731_403_200)
    );
    assert_eq!(
        seconds(r#"{"nanos":0,"seconds":1.666094801e+09}"#),
        Some(1_666_094_801)
    );
    assert_eq!(seconds(r#"{"seconds":1666094801.5}"#), Some(1_666_094_801));
    assert_eq!(seconds(r#"{"seconds":-1.5}"#), Some(-2));
    assert_eq!(
        seconds(r#"{"seconds":18446744073709551615}"#),
        Some(i64::MAX)
    );
    assert_eq!(seconds(r#"{"seconds":1e300}"#), Some(i64::MAX));
    for odd in [
        r#"{"nanos":1}"#,
        r#"{"seconds":"1731403200"}"#,
        r#"{"seconds":null}"#,
        r#"{"seconds":{"a":1}}"#,
        r#"{"seconds":[1]}"#,
        r#"{"seconds":true}"#,
        "null",
        "1731403200",
        r#""2024-11-12T09:20:00Z""#,
        "[1,2]",
        "false",
    ] {
        assert_eq!(seconds(odd), None, "{odd}");
    }
    let r = report(r#"{"results":[{"policy":"p","result":"pass"}]}"#);
    assert_eq!(r.results().next().and_then(|e| e.timestamp), None);
}

fn messages(r: &Report) -> Vec<&str> {
    r.results().map(|e| e.message).collect()
}

#[test]
fn keeps_messages_when_asked() {
    let json = r#"{"results":[{"policy":"p","result":"fail","message":"a \"quoted\" m"},
        {"policy":"q","result":"pass"},{"message":null,"policy":"r","result":"warn"}]}"#;
    let kept = ["a \"quoted\" m", "", ""];
    let r: WithMessages = serde_json::from_str(json).expect("test JSON");
    assert_eq!(messages(&r.0), kept);
    // Plain decoding checks messages but keeps none.
    let plain = report(json);
    assert_eq!(messages(&plain), ["", "", ""]);
    assert!(plain.messages.is_empty());
    // A document: its own results and those of its items.
    let list = format!(
        r#"{{"kind":"List","items":[{json},1],"results":[{{"policy":"s","result":"skip","message":"top"}}]}}"#
    );
    let mut items = Vec::new();
    let seed = DocumentSeed {
        items: &mut items,
        keep_messages: true,
    };
    let object = seed
        .deserialize(&mut serde_json::Deserializer::from_str(&list))
        .expect("test JSON");
    assert_eq!(messages(&object), ["top"]);
    assert_eq!(items.len(), 1);
    assert_eq!(messages(&items[0]), kept);
    let d: WithMessages<Document> = serde_json::from_str(&list).expect("test JSON");
    assert_eq!(
        (messages(&d.0.object), messages(&d.0.items[0])),
        (vec!["top"], kept.to_vec())
    );
    let d: Document = serde_json::from_str(&list).expect("test JSON");
    assert_eq!(
        (messages(&d.object), messages(&d.items[0])),
        (vec![""], vec!["", "", ""])
    );
    assert!(d.object.messages.is_empty() && d.items[0].messages.is_empty());
    // A message of the wrong type is a problem either way.
    let bad = r#"{"results":[{"policy":"p","result":"pass","message":1}]}"#;
    let r: WithMessages = serde_json::from_str(bad).expect("test JSON");
    assert_eq!(
        r.0.error().map(|e| e.field.as_str()),
        Some("results[0].message")
    );
    assert_eq!(error(bad).field, "results[0].message");
}

#[test]
fn rejects_unknown_outcome_with_its_path() {
    let e =
        error(r#"{"results":[{"policy":"p","result":"pass"},{"policy":"p","result":"maybe"}]}"#);
    assert_eq!(e.field, "results[1].result");
    assert!(e.reason.contains("unknown variant `maybe`"), "{}", e.reason);
    // Nothing of an invalid report is kept.
    let r = report(r#"{"results":[{"policy":"p","result":"pass"},{"policy":"p","result":1}]}"#);
    assert_eq!(r.results().len(), 0);
}

#[test]
fn rejects_missing_fields_and_wrong_types() {
    let e = error(r#"{"results":[{"result":"pass"}]}"#);
    assert_eq!(
        (e.field.as_str(), e.reason.as_str()),
        ("results[0]", "missing field `policy`")
    );
    let e = error(r#"{"results":[{"policy":"p"}]}"#);
    assert_eq!(e.reason, "missing field `result`");
    let e = error(r#"{"results":[{"policy":"p","result":"pass","message":5}]}"#);
    assert_eq!(e.field, "results[0].message");
    assert_eq!(e.reason, "invalid type: integer `5`, expected a string");
    let e = error(r#"{"results":[{"policy":"p","result":"pass","properties":{"a":1}}]}"#);
    assert_eq!(e.field, "results[0].properties.a");
    let e = error(r#"{"results":[{"policy":"p","result":"pass","resources":["x"]}]}"#);
    assert_eq!(e.field, "results[0].resources[0]");
    let e = error(r#"{"results":[{"policy":"p","result":"pass","resources":[{"uid":2}]}]}"#);
    assert_eq!(e.field, "results[0].resources[0].uid");
    let e = error(r#"{"results":[{"policy":null,"result":"pass"}]}"#);
    assert_eq!(e.field, "results[0].policy");
    let e = error(r#"{"results":[{"policy":"p","result":"pass","scored":"yes"}]}"#);
    assert_eq!(e.field, "results[0].scored");
    let e = error(r#"{"results":[7]}"#);
    assert_eq!(e.field, "results[0]");
    assert_eq!(error(r#"{"results":{}}"#).field, "results");
    assert_eq!(error(r#"{"source":7}"#).field, "source");
    assert_eq!(error(r#"{"scope":{"kind":[]}}"#).field, "scope.kind");
    // The first problem is the one reported.
    let e = error(r#"{"source":1,"results":[{"result":"pass"}]}"#);
    assert_eq!(e.field, "source");
}

#[test]
fn null_and_missing_parts_are_empty() {
    for json in [
        r#"{"results":null,"scope":null,"source":null}"#,
        "{}",
        r#"{"results":[{"policy":"p","result":"skip","rule":null,"resources":null,"properties":null,"scored":null}]}"#,
    ] {
        let r = report(json);
        assert!(r.error().is_none(), "{json}");
        assert!(r.scope().is_none() && r.source().is_none());
    }
}

#[test]
fn escaped_strings_and_yaml_values_decode() {
    let r = report(r#"{"results":[{"policy":"a\"b","result":"skip"}]}"#);
    assert_eq!(r.results().next().map(|e| e.policy), Some("a\"b"));
    let v: serde_json::Value = serde_yaml_ng::from_str(
        "kind: PolicyReport\nmetadata: {name: y}\nresults:\n- {policy: p, result: warn, resources: [{kind: Pod}]}\n",
    )
    .expect("yaml");
    let r = Report::deserialize(v).expect("value");
    let e = r.results().next().expect("one result");
    assert_eq!((e.policy, e.outcome), ("p", Outcome::Warn));
    assert_eq!(e.subjects().next().map(|s| s.kind), Some("Pod"));
}

#[test]
fn bad_metadata_makes_the_report_invalid() {
    let e = error(
        r#"{"metadata":{"name":1,"namespace":"n"},"results":[{"policy":"p","result":"pass"}]}"#,
    );
    assert_eq!(e.field, "metadata.name");
    assert_eq!(error(r#"{"metadata":[]}"#).field, "metadata");
    let r = report(
        r#"{"metadata":{"name":"a","namespace":"n","uid":"u","resourceVersion":"7","labels":{"x":"y"}}}"#,
    );
    assert_eq!(r.metadata.resource_version.as_deref(), Some("7"));
    assert!(r.metadata.labels.is_none());
    assert!(serde_json::from_str::<Report>(r#"[1]"#).is_err());
}

#[test]
fn documents_decode_list_items_in_the_same_pass() {
    let d: Document = serde_json::from_str(
        r#"{"apiVersion":"v1","items":[{"kind":"PolicyReport","metadata":{"name":"a"},"results":[{"policy":"p","result":"fail"}]},
            1,{"kind":"ConfigMap"}],"kind":"List"}"#,
    )
    .expect("valid");
    assert_eq!(d.object.type_meta(), (Some("v1"), Some("List")));
    assert_eq!(d.items.len(), 2);
    assert_eq!(
        d.items[0].results().next().map(|e| e.outcome),
        Some(Outcome::Fail)
    );
    assert_eq!(d.items[1].type_meta().1, Some("ConfigMap"));
    let d: Document = serde_json::from_str("[1, 2]").expect("valid");
    assert!(d.items.is_empty() && d.object.type_meta() == (None, None));
    assert!(serde_json::from_str::<Document>("{\"items\": [").is_err());
}
