//! The baselines the exporter is measured against: jq and the floor decoder
//! on the same bytes, and the fake API server's list pages fetched alone.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use policyreport_test_support::http::HttpConn;
use policyreport_test_support::procfs::{self, children_cpu};

use crate::cluster::Cluster;
use crate::reportgen::GenKind;

pub(super) fn jq_version() -> Option<String> {
    let out = Command::new("jq").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The jq program of the user's current method.
pub const JQ_PROGRAM: &str =
    "[.items[] | {namespace: .metadata.namespace, pass: .summary.pass, fail: .summary.fail}]";

/// Times jq over a List file: best wall time (and its CPU) of `runs`.
pub fn time_jq(list_file: &Path, runs: usize) -> Result<Option<(Duration, Duration)>> {
    if jq_version().is_none() {
        return Ok(None);
    }
    let mut best: Option<(Duration, Duration)> = None;
    for _ in 0..runs.max(1) {
        let cpu0 = children_cpu();
        let t = Instant::now();
        let status = Command::new("jq")
            .arg(JQ_PROGRAM)
            .arg(list_file)
            .stdout(Stdio::null())
            .status()
            .context("running jq")?;
        let wall = t.elapsed();
        let cpu = children_cpu().saturating_sub(cpu0);
        if !status.success() {
            bail!("jq failed on {}", list_file.display());
        }
        if best.is_none_or(|(w, _)| wall < w) {
            best = Some((wall, cpu));
        }
    }
    Ok(best)
}

/// The floor: best single-thread CPU time of decoding the List `runs` times.
pub fn time_floor(list: &[u8], expect_results: u64, runs: usize) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        let c0 = procfs::thread_cpu();
        let n = crate::floor::decode_list(list).context("floor decode")?;
        let c = procfs::thread_cpu().saturating_sub(c0);
        if n as u64 != expect_results {
            bail!("floor decoded {n} results, expected {expect_results}");
        }
        best = best.min(c);
    }
    Ok(best)
}

/// The floor over several files' bytes, one after the other on this
/// thread: best (CPU, wall) of `runs`, by CPU.
pub fn time_floor_files(
    files: &[Vec<u8>],
    expect_results: u64,
    runs: usize,
) -> Result<(Duration, Duration)> {
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..runs.max(1) {
        let c0 = procfs::thread_cpu();
        let t = Instant::now();
        let mut n = 0;
        for f in files {
            n += crate::floor::decode_list(f).context("floor decode")?;
        }
        let wall = t.elapsed();
        let c = procfs::thread_cpu().saturating_sub(c0);
        if n as u64 != expect_results {
            bail!("floor decoded {n} results, expected {expect_results}");
        }
        if c < best.0 {
            best = (c, wall);
        }
    }
    Ok(best)
}

/// Fetches every page of both report lists from the fake server over HTTP,
/// without decoding them: the part of a sync spent waiting for this server.
pub fn time_list_fetch(cluster: &Cluster, page: u32) -> Result<Duration> {
    let mut conn = HttpConn::connect(cluster.server.addr())?;
    let mut body = Vec::new();
    let start = Instant::now();
    for kind in [GenKind::PolicyReport, GenKind::ClusterPolicyReport] {
        let mut token = String::new();
        loop {
            let mut path = format!(
                "/apis/wgpolicyk8s.io/v1alpha2/{}?limit={page}",
                kind.plural()
            );
            if !token.is_empty() {
                path.push_str("&continue=");
                for b in token.bytes() {
                    if b.is_ascii_alphanumeric() {
                        path.push(b as char);
                    } else {
                        let _ = write!(path, "%{b:02X}");
                    }
                }
            }
            let status = conn.get_into(&path, &mut body)?;
            if status != 200 {
                bail!("GET {path}: {status}");
            }
            let head = String::from_utf8_lossy(&body[..body.len().min(4096)]);
            token = head
                .find("\"continue\":\"")
                .and_then(|i| {
                    let rest = &head[i + 12..];
                    rest.find('"').map(|e| rest[..e].to_owned())
                })
                .unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
    }
    Ok(start.elapsed())
}
