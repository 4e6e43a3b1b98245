//! The measurements the runs return and the tables print.

use std::time::Duration;

/// The result of one update phase.
#[derive(Clone, Debug, Default)]
pub struct UpdateResult {
    /// The offered rate, or `None` for as fast as possible.
    pub offered: Option<f64>,
    /// Updates written to the fake server.
    pub written: usize,
    /// Updates the exporter showed by the end (all of them unless it fell behind).
    pub visible: usize,
    /// Writer rate (updates/s over the write window).
    pub writer_rate: f64,
    /// Updates visible per second, from the first write to the last update
    /// becoming visible.
    pub applied_rate: f64,
    /// Update → visible latency percentiles.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Worst case.
    pub max: Duration,
    /// Number of progress polls.
    pub polls: usize,
    /// Polls whose counters matched no prefix of the writes (should be 0).
    pub anomalies: usize,
    /// The two policies whose results were flipped.
    pub policies: (String, String),
    /// Reports cycled through.
    pub targets: usize,
    /// CPU of the exporter process during the phase (until all visible).
    pub exporter_cpu: Duration,
    /// CPU of this process (writer, fake server, poller) during the phase.
    pub bench_cpu: Duration,
}

/// Measurements at one size.
#[derive(Clone, Debug, Default)]
pub struct SizeResult {
    /// Reports.
    pub reports: usize,
    /// Results.
    pub results: u64,
    /// Namespaces.
    pub namespaces: usize,
    /// Size of the List JSON.
    pub list_bytes: usize,
    /// Series the exporter serves.
    pub series: usize,
    /// Whether the exporter's counts equal the generator's after the sync.
    pub exact: bool,
    /// The exporter's policyreport_results sum after the sync.
    pub exporter_total: u64,
    /// Start → /readyz.
    pub sync_wall: Duration,
    /// CPU of the exporter process at /readyz.
    pub sync_cpu: Duration,
    /// VmHWM at /readyz.
    pub peak_rss: u64,
    /// VmRSS after settling.
    pub steady_rss: u64,
    /// Scrape latency p50.
    pub scrape_p50: Duration,
    /// Scrape latency p99.
    pub scrape_p99: Duration,
    /// /metrics size.
    pub scrape_bytes: usize,
    /// gzip-compressed scrapes against plain ones.
    pub compressed: Option<crate::compressed::CompressedScrapes>,
    /// Floor CPU.
    pub floor_cpu: Duration,
    /// Wall time to fetch every list page from the fake server without
    /// decoding (what any client waits for this server).
    pub list_fetch: Duration,
    /// jq wall time.
    pub jq_wall: Option<Duration>,
    /// jq CPU time.
    pub jq_cpu: Option<Duration>,
    /// Unpaced update phase.
    pub max: Option<UpdateResult>,
    /// Paced update phase.
    pub paced: Option<UpdateResult>,
    /// VmHWM at the end (after updates).
    pub final_hwm: u64,
}

/// One exporter start on a folder or file: time to /readyz and what it cost.
#[derive(Clone, Debug, Default)]
pub struct FilesSync {
    /// Start → /readyz.
    pub wall: Duration,
    /// CPU of the exporter process at /readyz.
    pub cpu: Duration,
    /// VmHWM at /readyz.
    pub peak_rss: u64,
    /// Whether the exporter's counts equal the generator's.
    pub exact: bool,
}

/// Measurements of the files scale mode.
#[derive(Clone, Debug, Default)]
pub struct FilesResult {
    /// Reports.
    pub reports: usize,
    /// Results.
    pub results: u64,
    /// Files of each format (a `List` each).
    pub files: usize,
    /// Bytes of the `kubectl get -o json` files.
    pub json_bytes: u64,
    /// Bytes of the `kubectl get -o yaml` files.
    pub yaml_bytes: u64,
    /// The floor over the JSON files' bytes: best thread CPU of the runs.
    pub floor_cpu: Duration,
    /// The floor's wall time in the same run.
    pub floor_wall: Duration,
    /// jq over one List of the same reports (informative).
    pub jq_wall: Option<Duration>,
    /// The exporter on the JSON files.
    pub json: FilesSync,
    /// The exporter on the YAML files.
    pub yaml: FilesSync,
}

/// The large-file row: one `kubectl get -o json` or `-o yaml` List read
/// whole.
#[derive(Clone, Debug, Default)]
pub struct LargeFileResult {
    /// Whether the List is YAML (else JSON).
    pub yaml: bool,
    /// Reports in the List.
    pub reports: usize,
    /// Results.
    pub results: u64,
    /// The file's size.
    pub bytes: u64,
    /// The exporter reading it.
    pub sync: FilesSync,
}
