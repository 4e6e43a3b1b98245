//! Keeps the unpaged (reports-server mode) row from rotting: the whole row
//! at a tiny scale. Not a timed test: it checks that every step runs and
//! that the counts stay exact through the replay and the relist.

use std::time::Duration;

use policyreport_bench::exporter::{Build, exporter_binary};
use policyreport_bench::unpaged::{UnpagedOptions, run};

#[test]
fn unpaged_row_at_tiny_scale() {
    let bin = exporter_binary(Build::Reuse).expect("the exporter binary");
    let mut o = UnpagedOptions::new(bin, 40, 3);
    o.relist_interval = Duration::from_secs(2);
    o.timeout = Duration::from_secs(60);
    let r = run(&o).expect("the unpaged row at 40 reports");
    assert!(r.exact, "counts exact after the unpaged sync: {r:?}");
    assert!(r.replay_unchanged, "a replay changes nothing: {r:?}");
    assert!(r.sync_peak_rss > 0 && r.list_bytes > 1000, "{r:?}");
    let table = r.table();
    assert!(
        table.contains("| peak RSS, unpaged initial sync |"),
        "{table}"
    );
}
