//! The exporter binary the benchmark runs (found, or built with Cargo), and
//! its `policyreport_results` read back as the generator counts them.
//! Spawning it and talking to it are `policyreport_test_support`'s.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use policyreport_test_support::metrics::parse_sample;

use crate::reportgen::Counts;

/// The workspace root (the exporter's package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// How to get the exporter binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// Always run `cargo build --release` (cheap when fresh): for measurements.
    Release,
    /// Use the binary of the current target dir and profile if it is newer
    /// than the exporter's sources, else `cargo build` it (debug): for tests.
    Reuse,
}

/// Finds the `policyreport-exporter` binary: `$POLICYREPORT_EXPORTER_BIN`
/// if set, else one built by Cargo (see [`Build`]).
pub fn exporter_binary(build: Build) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("POLICYREPORT_EXPORTER_BIN") {
        return Ok(PathBuf::from(p));
    }
    if build == Build::Reuse
        && let Some(candidate) = sibling_binary()
        && is_fresh(&candidate)
    {
        return Ok(candidate);
    }
    cargo_build(build == Build::Release)
}

/// `policyreport-exporter` next to the running executable (which may be in
/// `deps/`), if it exists.
fn sibling_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join("policyreport-exporter");
    p.is_file().then_some(p)
}

/// Whether `bin` is newer than every source file of the exporter.
fn is_fresh(bin: &Path) -> bool {
    let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    let root = workspace_root();
    let newest = newest_mtime(&root.join("src"))
        .into_iter()
        .chain(std::fs::metadata(root.join("Cargo.toml")).and_then(|m| m.modified()))
        .max();
    newest.is_some_and(|n| n <= built)
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// Builds the exporter with Cargo and returns the path of its executable.
fn cargo_build(release: bool) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "-p",
        "policyreport-exporter",
        "--bin",
        "policyreport-exporter",
        "--message-format",
        "json-render-diagnostics",
    ]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build for the exporter")?;
    if !out.status.success() {
        bail!("cargo build of policyreport-exporter failed");
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["target"]["name"] == "policyreport-exporter"
            && let Some(exe) = v["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo build did not report the exporter executable")
}

/// The `policyreport_results` series of a `/metrics` text, keyed like
/// [`crate::reportgen::expected_counts`]. Extra labels are folded together.
pub fn parse_results(text: &str) -> Counts {
    let mut out = Counts::new();
    for line in text.lines() {
        if !line.starts_with("policyreport_results{") {
            continue;
        }
        let Ok(Some((_, labels, value))) = parse_sample(line) else {
            continue;
        };
        let get = |k: &str| {
            labels
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let key = [
            get("namespace"),
            get("policy"),
            get("category"),
            get("severity"),
            get("source"),
            get("result"),
        ];
        *out.entry(key).or_default() += value as u64;
    }
    out.retain(|_, n| *n > 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results() {
        let text = "# HELP x\npolicyreport_results{namespace=\"a\",policy=\"p\",category=\"C, D\",severity=\"\",source=\"kyverno\",result=\"fail\"} 3\n\
                    policyreport_results{namespace=\"a\",policy=\"q\",category=\"\",severity=\"\",source=\"kyverno\",result=\"pass\"} 0\n\
                    policyreport_exporter_objects{resource=\"r\"} 7\n";
        let r = parse_results(text);
        assert_eq!(r.len(), 1);
        let (k, v) = r.iter().next().unwrap();
        assert_eq!(k[2], "C, D");
        assert_eq!(*v, 3);
    }
}
