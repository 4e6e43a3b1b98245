use super::*;

#[test]
fn rendering_into_a_spare_snapshot_reuses_its_buffers() {
    let agg = Aggregate::new(crate::aggregate::Config::default());
    let fresh = Snapshot::render(&agg);
    let spare = Snapshot::render(&agg);
    let held = spare.prometheus.as_ptr();
    let reused = Snapshot::render_reusing(&agg, Some(spare));
    assert_eq!(reused.prometheus, fresh.prometheus);
    assert_eq!(reused.openmetrics, fresh.openmetrics);
    assert_eq!(reused.prometheus.as_ptr(), held, "same allocation");
    // Buffers a reader still holds are left alone.
    let spare = Snapshot::render(&agg);
    let reader = spare.prometheus.clone();
    let reused = Snapshot::render_reusing(&agg, Some(spare));
    assert_eq!(reused.prometheus, fresh.prometheus);
    assert_eq!(reader, fresh.prometheus);
}
