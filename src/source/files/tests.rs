use super::parse::flow_depth;
use super::*;
use crate::kind::Kind;
use crate::source::Body;

#[test]
fn parses_lists_and_documents_and_ignores_other_kinds() {
    let yaml = br#"
apiVersion: v1
kind: List
items:
- apiVersion: wgpolicyk8s.io/v1alpha2
  kind: PolicyReport
  metadata: {name: a, namespace: x}
  results: [{policy: p, result: pass}]
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
---
apiVersion: openreports.io/v1alpha1
kind: ClusterReport
metadata: {name: b}
source: kyverno
---
"#;
    let c = parse(yaml, false).expect("valid YAML");
    let kinds: Vec<_> = c.objects.iter().map(|o| (o.kind, o.id())).collect();
    assert_eq!(
        kinds,
        vec![
            (Kind::PolicyReport, ("x", "a")),
            (Kind::ClusterReport, ("", "b"))
        ]
    );
    let Body::Report(r) = &c.objects[1].body else {
        panic!("a report")
    };
    assert_eq!(r.source(), Some("kyverno"));
    assert!(c.bad.is_empty());
}

/// `kyverno apply --policy-report > file` as Kyverno 1.19.1 writes it:
/// deprecation warnings on stdout ahead of the report, in both formats.
#[test]
fn kyverno_cli_warning_lines_before_the_report_are_skipped() {
    let warning = "Warning: policies.yaml: kyverno.io/v1 ClusterPolicy is deprecated and will be \
                       removed in a future release; migrate to ValidatingPolicy, see \
                       https://kyverno.io/docs/guides/migration-to-cel/\n";
    let yaml = format!(
        "{warning}{warning}apiVersion: openreports.io/v1alpha1\nkind: ClusterReport\n\
             metadata:\n  name: merged\nresults:\n- policy: p\n  result: fail\n  \
             resources:\n  - {{apiVersion: v1, kind: Pod, name: a, namespace: ci}}\nsource: \"\"\n"
    );
    let json = format!(
        "{warning}{{\"kind\":\"ClusterReport\",\"apiVersion\":\"openreports.io/v1alpha1\",\
             \"metadata\":{{\"name\":\"merged\"}},\"source\":\"\",\"results\":[{{\"policy\":\"p\",\
             \"result\":\"pass\"}}]}}"
    );
    for (bytes, is_json) in [(yaml.as_bytes(), false), (json.as_bytes(), true)] {
        let c = parse(bytes, is_json).expect("the report after the warnings");
        let ids: Vec<_> = c.objects.iter().map(|o| (o.kind, o.id())).collect();
        assert_eq!(ids, vec![(Kind::ClusterReport, ("", "merged"))]);
    }
    // Only whole leading lines go: a file of nothing but warnings holds
    // nothing, and a warning after the report is still an error.
    assert!(
        parse(warning.trim_end().as_bytes(), false)
            .expect("empty")
            .objects
            .is_empty()
    );
    let late = format!("apiVersion: v1\nkind: List\nitems: []\n{warning}");
    assert!(parse(late.as_bytes(), false).is_err());
}

#[test]
fn parses_json_lists() {
    let json = br#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"ClusterPolicyReport","metadata":{"name":"n"},"results":null}]}"#;
    let c = parse(json, true).expect("valid JSON");
    assert_eq!(c.objects.len(), 1);
    let Body::Report(r) = &c.objects[0].body else {
        panic!("a report")
    };
    assert_eq!(r.results().len(), 0);
}

#[test]
fn bad_metadata_is_reported_per_object() {
    let yaml = b"apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: [1]}\n";
    let c = parse(yaml, false).expect("valid YAML");
    // Taken, and refused by the aggregator with the reason.
    assert!(c.bad.is_empty());
    let Body::Report(r) = &c.objects[0].body else {
        panic!("a report")
    };
    assert_eq!(r.error().map(|e| e.field.as_str()), Some("metadata.name"));
    let json = br#"{"kind":"List","items":[{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{"name":1}}]}"#;
    let c = parse(json, true).expect("valid JSON");
    let Body::Report(r) = &c.objects[0].body else {
        panic!("a report")
    };
    assert_eq!(r.error().map(|e| e.field.as_str()), Some("metadata.name"));
}

#[test]
fn reads_events_and_policies() {
    let yaml = b"apiVersion: v1\nkind: Event\nmetadata: {name: e, namespace: default, uid: u1}\nreason: PolicyViolation\n---\n\
apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\n---\n\
apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: e2, namespace: default}\n";
    let c = parse(yaml, false).expect("valid YAML");
    let kinds: Vec<_> = c.objects.iter().map(|o| (o.kind, o.id())).collect();
    assert_eq!(
        kinds,
        vec![
            (Kind::Event, ("default", "e")),
            (Kind::ClusterPolicy, ("", "p")),
            (Kind::Event, ("default", "e2"))
        ]
    );
    let Body::Object(o) = &c.objects[0].body else {
        panic!("an object")
    };
    assert_eq!(o.metadata.uid.as_deref(), Some("u1"));
    assert!(o.raw.get().contains("PolicyViolation"));
}

#[test]
fn json_lists_and_objects_take_the_lean_path() {
    let json = br#"{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{"name":"a","namespace":"n"},
            "results":[{"policy":"p","result":"pass"}]}"#;
    let c = parse(json, true).expect("valid");
    assert_eq!(c.objects.len(), 1);
    let Body::Report(r) = &c.objects[0].body else {
        panic!("a report")
    };
    let results: Vec<_> = r.results().map(|e| (e.policy, e.outcome)).collect();
    assert_eq!(results, vec![("p", crate::report::Outcome::Pass)]);
    // Other kinds, arrays and scalars are ignored; a report list's items too.
    assert!(
        parse(
            br#"{"apiVersion":"v1","kind":"ConfigMap","items":[1]}"#,
            true
        )
        .expect("valid")
        .objects
        .is_empty()
    );
    assert!(parse(b"[1,2]", true).expect("valid").objects.is_empty());
    assert!(parse(b"7", true).expect("valid").objects.is_empty());
    for odd in [
        r#"{"apiVersion":false}"#,
        r#"{"kind":"List","items":5}"#,
        r#"{"kind":"List","items":[1,"x",null]}"#,
    ] {
        let parsed = parse(odd.as_bytes(), true).expect("well-formed");
        assert!(parsed.objects.is_empty(), "{odd}");
    }
    let bad = br#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{"name":5}}]}"#;
    assert_eq!(parse(bad, true).expect("valid JSON").bad.len(), 1);
    assert!(parse(b"\xff\xfe", true).is_err(), "invalid UTF-8");
    assert!(
        parse(b"[1,", true).is_err(),
        "a malformed array is an error"
    );
    // Deep nesting in a field is skipped without recursion, and inside a
    // report it is kept raw here and refused when the report is decoded.
    let deep = format!(
        "{{\"a\":{}1{}}}",
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    );
    assert!(
        parse(deep.as_bytes(), true)
            .expect("valid JSON")
            .objects
            .is_empty()
    );
}

#[test]
fn deep_yaml_is_refused_before_parsing() {
    let deep = format!(
        "a: {}{}\n",
        "[".repeat(MAX_NESTING + 1),
        "]".repeat(MAX_NESTING + 1)
    );
    assert!(matches!(
        parse(deep.as_bytes(), false),
        Err(FileError::TooDeep(_))
    ));
    let fine = format!(
        "a: {}{}\nb: '[[[[' # [[[[\nc: \"{{{{\"\n",
        "[".repeat(10),
        "]".repeat(10)
    );
    assert!(parse(fine.as_bytes(), false).is_ok());
    assert_eq!(flow_depth(b"a: '[[' # [[\nb: [{c: [1]}]\n"), 3);
}

#[test]
fn broken_yaml_is_an_error() {
    assert!(parse(b"a: [1, 2\n", false).is_err());
    assert!(parse(b"{", true).is_err());
}

/// The result messages of the reports parsed from `bytes`.
fn messages(bytes: &[u8], json: bool, keep_messages: bool) -> Vec<String> {
    let mut c = FileContents::default();
    parse_into(bytes, json, keep_messages, &mut |p| c.take(p)).expect("valid");
    let reports = c.objects.iter().filter_map(|o| match &o.body {
        Body::Report(r) => Some(r),
        Body::Object(_) => None,
    });
    reports
        .flat_map(|r| r.results().map(|e| e.message.to_owned()))
        .collect()
}

#[test]
fn messages_are_kept_on_every_decoding_path_when_asked() {
    let report = |name: &str| {
        format!(
            r#"{{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{{"name":"{name}","namespace":"n"}},"results":[{{"policy":"p","result":"fail","message":"m-{name}"}}]}}"#
        )
    };
    let (a, b) = (report("a"), report("b"));
    let list = format!(r#"{{"apiVersion":"v1","items":[{a},{b}],"kind":"List"}}"#);
    let event = r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"e","namespace":"n"}}"#;
    // JSON is YAML too: single documents and a List are streamed, several
    // documents decoded whole, and with an Event through a value tree.
    for (text, json, want) in [
        (&a, true, &["m-a"][..]),
        (&list, true, &["m-a", "m-b"]),
        (&a, false, &["m-a"]),
        (&list, false, &["m-a", "m-b"]),
        (&format!("{a}\n---\n{b}\n"), false, &["m-a", "m-b"]),
        (&format!("{a}\n---\n{event}\n"), false, &["m-a"]),
    ] {
        assert_eq!(messages(text.as_bytes(), json, true), want, "{text}");
        let none = vec![String::new(); want.len()];
        assert_eq!(messages(text.as_bytes(), json, false), none, "{text}");
    }
}

/// A report as kubectl prints it: `kind` after the other fields.
pub(crate) fn report_json(ns: &str, name: &str, outcome: &str) -> String {
    format!(
        r#"{{"apiVersion":"wgpolicyk8s.io/v1alpha2","metadata":{{"name":"{name}","namespace":"{ns}"}},"results":[{{"policy":"p","result":"{outcome}"}}],"kind":"PolicyReport"}}"#
    )
}

/// A `kubectl get -o json` List: `items` first, `kind: List` last.
pub(crate) fn kubectl_list(items: &[String]) -> String {
    format!(
        r#"{{"apiVersion":"v1","items":[{}],"kind":"List","metadata":{{"resourceVersion":""}}}}"#,
        items.join(",")
    )
}

#[test]
fn files_are_streamed_in_path_order_on_any_number_of_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for i in 0..7 {
        let path = dir.path().join(format!("{i}.json"));
        let items: Vec<String> = (0..3)
            .map(|j| report_json("n", &format!("f{i}r{j}"), "pass"))
            .collect();
        let text = match i {
            4 => "{\"items\": [".to_string(),
            _ => kubectl_list(&items),
        };
        std::fs::write(&path, &text).expect("write");
        let fingerprint = Fingerprint {
            len: text.len() as u64,
            modified: None,
            inode: 0,
            changed: (0, 0),
        };
        files.push((path, fingerprint));
    }
    for workers in [1, 2, 3] {
        let mut seen = Vec::new();
        read_in_order(&files, workers, u64::MAX, false, |i, step| {
            seen.push(match step {
                Step::Parsed(Parsed::Object(o)) => format!("{i} {}", o.id().1),
                Step::Parsed(other) => format!("{i} {other:?}"),
                Step::End(r) => format!("{i} end {}", r.is_ok()),
            });
            true
        });
        let want: Vec<String> = (0..7)
            .flat_map(|i| match i {
                4 => vec!["4 end false".to_string()],
                _ => (0..3)
                    .map(|j| format!("{i} f{i}r{j}"))
                    .chain([format!("{i} end true")])
                    .collect(),
            })
            .collect();
        assert_eq!(seen, want, "{workers} workers");
        // Stopping midway stops taking.
        let mut taken = 0;
        read_in_order(&files, workers, u64::MAX, false, |_, _| {
            taken += 1;
            taken < 5
        });
        assert_eq!(taken, 5, "{workers} workers");
    }
}
