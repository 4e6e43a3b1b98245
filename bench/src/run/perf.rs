//! `perf record` of the exporter during one phase of a size's run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::Options;

/// Which phase to record with `perf record`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// The initial sync (start → /readyz).
    Sync,
    /// The 1000 scrapes.
    Scrape,
    /// The update phases.
    Update,
}

/// `perf record` settings.
#[derive(Clone, Debug)]
pub struct Perf {
    /// The phases to record (one file each).
    pub phases: Vec<Phase>,
    /// Where to write `perf-<size>-<phase>.data`.
    pub out: PathBuf,
    /// Sampling frequency.
    pub freq: u32,
}

/// A running `perf record`, stopped with SIGINT.
pub(super) struct PerfRecord(std::process::Child);

impl PerfRecord {
    fn start(perf: &Perf, pid: u32, name: &str) -> Result<PerfRecord> {
        std::fs::create_dir_all(&perf.out)?;
        let out = perf.out.join(format!("{name}.data"));
        let child = Command::new("perf")
            .args([
                "record",
                "-F",
                &perf.freq.to_string(),
                "--call-graph",
                "dwarf,16384",
            ])
            .arg("-o")
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf record")?;
        // Give perf time to attach.
        std::thread::sleep(Duration::from_millis(300));
        eprintln!("perf: recording {} into {}", name, out.display());
        Ok(PerfRecord(child))
    }

    pub(super) fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.0.wait();
    }
}

pub(super) fn maybe_perf(
    opts: &Options,
    phase: Phase,
    pid: u32,
    size: usize,
) -> Result<Option<PerfRecord>> {
    match &opts.perf {
        Some(p) if p.phases.contains(&phase) => {
            let name = format!("perf-{size}-{phase:?}").to_lowercase();
            PerfRecord::start(p, pid, &name).map(Some)
        }
        _ => Ok(None),
    }
}
