//! The files source feeding the aggregate: a file that breaks after some of
//! its objects were streamed.

use tokio::sync::mpsc;

use super::*;
use crate::kind::FILE_RESOURCE;
use crate::source::files::tests::{kubectl_list, report_json};
use crate::source::files::{Files, FilesSource};

fn scan_into(
    source: &mut FilesSource,
    rx: &mut mpsc::Receiver<SourceEvent>,
    agg: &mut Aggregate,
) -> Vec<String> {
    source.scan();
    let mut seen = Vec::new();
    while let Ok(event) = rx.try_recv() {
        seen.push(match &event {
            SourceEvent::RelistStart { origin } => format!("start {origin}"),
            SourceEvent::RelistApply { object, .. } => format!("apply {}", object.id().1),
            SourceEvent::RelistEnd { origin } => format!("end {origin}"),
            SourceEvent::Invalid { location, .. } => format!("invalid {location}"),
            other => format!("{other:?}"),
        });
        agg.handle(event);
    }
    seen
}

fn results(agg: &Aggregate) -> Vec<String> {
    agg.results_snapshot()
        .into_iter()
        .map(|(k, v)| format!("{} {v}", k.join("|")))
        .collect()
}

#[test]
fn a_file_broken_after_streamed_objects_ends_empty_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("a.json");
    let other = dir.path().join("b.json");
    std::fs::write(&list, kubectl_list(&[report_json("x", "r1", "fail")])).expect("write");
    std::fs::write(&other, kubectl_list(&[report_json("y", "r9", "pass")])).expect("write");
    let (tx, mut rx) = mpsc::channel(1000);
    let mut source = FilesSource::new(Files::new(vec![dir.path().to_path_buf()]), tx);
    let mut agg = Aggregate::new(Config::default());
    scan_into(&mut source, &mut rx, &mut agg);
    assert_eq!(results(&agg), ["x|p||||fail 1", "y|p||||pass 1"]);

    // Valid in its first half (two reports decoded and sent), then cut.
    let whole = kubectl_list(&[
        report_json("x", "r2", "pass"),
        report_json("z", "r3", "pass"),
        report_json("z", "r4", "fail"),
    ]);
    let cut = whole.find("\"r4\"").expect("third report");
    std::fs::write(&list, &whole[..cut]).expect("rewrite");
    let a = Origin::File(Arc::from(list.as_path()));
    let seen = scan_into(&mut source, &mut rx, &mut agg);
    assert_eq!(
        seen,
        [
            format!("start {a}"),
            "apply r2".into(),
            "apply r3".into(),
            format!("invalid {}", list.display()),
            format!("start {a}"),
            format!("end {a}"),
        ]
    );
    // As before streaming: the broken file contributes nothing, the
    // other file is untouched, the file is counted invalid once.
    assert_eq!(results(&agg), ["y|p||||pass 1"]);
    assert_eq!(agg.stats().invalid.get(FILE_RESOURCE), Some(&1));
    assert_eq!(
        agg.stats().objects.get(Kind::PolicyReport.resource()),
        Some(&1)
    );

    // Whole again: read as a List.
    std::fs::write(&list, &whole).expect("fix");
    scan_into(&mut source, &mut rx, &mut agg);
    assert_eq!(
        results(&agg),
        [
            "x|p||||pass 1",
            "y|p||||pass 1",
            "z|p||||fail 1",
            "z|p||||pass 1"
        ]
    );
}
