//! The end-to-end benchmark: for each size, load generated reports into the
//! fake API server, measure the real exporter process (initial sync, memory,
//! scrapes, updates) and the baselines on the same bytes, and print a table.
//! This module owns what to run ([`Options`]); its submodules the rest.

use std::path::PathBuf;
use std::time::Duration;

mod baselines;
mod files;
mod perf;
mod results;
mod size;
mod tables;
mod update;

pub use baselines::{JQ_PROGRAM, time_floor, time_floor_files, time_jq, time_list_fetch};
pub use files::{run_files, run_large_file, write_kubectl_dir, write_yaml_dir};
pub use perf::{Perf, Phase};
pub use results::{FilesResult, FilesSync, LargeFileResult, SizeResult, UpdateResult};
pub use size::run_size;
pub use tables::{files_table, header, large_file_table, table, targets, thousands};
pub use update::update_phase;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Report counts to run at.
    pub sizes: Vec<usize>,
    /// Generator seed.
    pub seed: u64,
    /// Number of timed `/metrics` scrapes.
    pub scrapes: usize,
    /// Length of each update phase.
    pub update_secs: f64,
    /// Run the unpaced (as fast as possible) update phase.
    pub max_phase: bool,
    /// Offered rate of the paced update phase (0 disables it).
    pub paced_rate: f64,
    /// Wait after /readyz before reading the steady RSS.
    pub settle: Duration,
    /// Run the jq baseline (if jq is installed).
    pub jq: bool,
    /// Reports of the `--files` scale mode (0 disables it).
    pub files_reports: usize,
    /// Reports per YAML file in the files mode.
    pub per_file: usize,
    /// The exporter binary.
    pub exporter: PathBuf,
    /// Optional profiling of one phase.
    pub perf: Option<Perf>,
    /// Watch history the fake server keeps (events).
    pub history_limit: usize,
    /// Interval between progress polls of /metrics in update phases.
    pub poll_every: Duration,
    /// Page size passed to the exporter.
    pub page_size: u32,
}

impl Options {
    /// Defaults for `run` with the given exporter binary.
    pub fn new(exporter: PathBuf) -> Options {
        Options {
            sizes: vec![1_000, 10_000, 50_000],
            seed: 1,
            scrapes: 1000,
            update_secs: 5.0,
            max_phase: true,
            paced_rate: 20_000.0,
            settle: Duration::from_secs(3),
            jq: true,
            files_reports: 20_000,
            per_file: 100,
            exporter,
            perf: None,
            history_limit: 100_000,
            poll_every: Duration::from_millis(5),
            page_size: 500,
        }
    }
}
