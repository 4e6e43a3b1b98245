//! Criterion micro-benchmarks of the exporter's hot paths: decoding a
//! report, applying a contribution to the aggregate, and rendering /metrics.
//! Run with `cargo bench -p policyreport-bench`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use policyreport_bench::glue;
use policyreport_bench::reportgen::{self, GenKind, Spec};

/// One typical Pod report (20 results) as JSON.
fn pod_report_json() -> Vec<u8> {
    let set = reportgen::generate(&Spec::with_reports(200, 1));
    let pod = set
        .reports
        .iter()
        .find(|r| r.subject == "Pod" && r.results() == 20)
        .expect("a Pod report with 20 results");
    serde_json::to_vec(&pod.value).expect("serialize")
}

/// An aggregate holding `n` generated reports, and their raw forms.
fn loaded(
    n: usize,
) -> (
    policyreport_exporter::aggregate::Aggregate,
    Vec<(GenKind, policyreport_exporter::report::Report)>,
) {
    let set = reportgen::generate(&Spec::with_reports(n, 1));
    let raws: Vec<_> = set
        .reports
        .iter()
        .map(|r| {
            let json = serde_json::to_vec(&r.value).expect("serialize");
            (r.kind, glue::parse_report(&json).expect("parse"))
        })
        .collect();
    let mut agg = glue::new_aggregate();
    for (k, raw) in &raws {
        agg.handle(glue::apply_event(*k, raw.clone()));
    }
    (agg, raws)
}

fn decode(c: &mut Criterion) {
    let json = pod_report_json();
    let mut g = c.benchmark_group("decode");
    g.bench_function("decode_report_20_results", |b| {
        b.iter(|| glue::results_count(&glue::parse_report(black_box(&json)).expect("parse")))
    });
    g.finish();
}

fn apply(c: &mut Criterion) {
    let (mut agg, raws) = loaded(10_000);
    let (kind, raw) = raws
        .iter()
        .find(|(k, _)| *k == GenKind::PolicyReport)
        .cloned()
        .expect("a PolicyReport");
    let mut g = c.benchmark_group("aggregate");
    g.bench_function("handle_apply_update_20_results_in_10k", |b| {
        b.iter_batched(
            || glue::apply_event(kind, raw.clone()),
            |ev| agg.handle(ev),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn render(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics");
    for n in [1_000, 50_000] {
        let (agg, _) = loaded(n);
        g.bench_function(format!("snapshot_render_{n}_reports"), |b| {
            b.iter(|| glue::render(black_box(&agg)))
        });
    }
    g.finish();
}

criterion_group!(benches, decode, apply, render);
criterion_main!(benches);
