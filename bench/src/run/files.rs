//! The `--files` rows: report sets written as files (a folder of
//! `kubectl get` Lists, or one large List) and the exporter's sync on them.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::procfs;

use super::baselines::{time_floor_files, time_jq};
use super::{FilesResult, FilesSync, LargeFileResult, Options};
use crate::exporter::parse_results;
use crate::reportgen::{self, ReportSet, Spec};

/// Writes a report set as multi-document YAML files, `per_file` reports each.
/// Returns (files, bytes).
pub fn write_yaml_dir(set: &ReportSet, dir: &Path, per_file: usize) -> Result<(usize, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut files = 0;
    let mut bytes = 0;
    for (i, chunk) in set.reports.chunks(per_file.max(1)).enumerate() {
        let mut text = String::new();
        for r in chunk {
            text.push_str("---\n");
            text.push_str(&serde_yaml_ng::to_string(&r.value)?);
        }
        let path = dir.join(format!("reports-{i:05}.yaml"));
        std::fs::write(&path, &text)?;
        files += 1;
        bytes += text.len() as u64;
    }
    Ok((files, bytes))
}

/// Writes a report set as `kubectl get -o json` (`json`) or `-o yaml` files,
/// a `kind: List` of `per_file` reports each. Returns the files' bytes.
pub fn write_kubectl_dir(
    set: &ReportSet,
    dir: &Path,
    per_file: usize,
    json: bool,
) -> Result<Vec<Vec<u8>>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (i, chunk) in set.reports.chunks(per_file.max(1)).enumerate() {
        let list = reportgen::list(chunk.iter().map(|r| r.value.clone()).collect());
        let (bytes, ext) = if json {
            (crate::kubectl::json(&list), "json")
        } else {
            (crate::kubectl::yaml(&list).into_bytes(), "yaml")
        };
        std::fs::write(dir.join(format!("reports-{i:05}.{ext}")), &bytes)?;
        out.push(bytes);
    }
    Ok(out)
}

/// Starts the exporter on a folder or file and measures it until /readyz.
fn files_sync(opts: &Options, path: &Path, expected: &reportgen::Counts) -> Result<FilesSync> {
    let exporter = Exporter::spawn(
        &opts.exporter,
        &[
            "--files",
            path.to_str().unwrap_or_default(),
            "--max-file-size",
            "4Gi",
        ],
        &[],
    )?;
    let wall = exporter.wait_ready(Duration::from_secs(900), Duration::from_millis(5))?;
    let cpu = procfs::cpu_time(exporter.pid).unwrap_or_default();
    let peak_rss = procfs::hwm(exporter.pid).unwrap_or_default();
    let exact = parse_results(&exporter.metrics()?) == *expected;
    exporter.stop(Duration::from_secs(120));
    Ok(FilesSync {
        wall,
        cpu,
        peak_rss,
        exact,
    })
}

/// The `--files` scale mode: the same reports as `kubectl get -o json` and
/// `kubectl get -o yaml` files (a `List` of `per_file` reports each); the
/// exporter's time to /readyz on each folder, against the floor over the
/// JSON files' bytes (and jq over one List, for information).
pub fn run_files(opts: &Options, reports: usize) -> Result<FilesResult> {
    let set = reportgen::generate(&Spec::with_reports(reports, opts.seed));
    let expected = set.expected();
    let dir = tempfile::tempdir()?;
    let mut r = FilesResult {
        reports,
        results: set.total_results(),
        ..FilesResult::default()
    };
    let json_dir = dir.path().join("json");
    let json = write_kubectl_dir(&set, &json_dir, opts.per_file, true)?;
    r.files = json.len();
    r.json_bytes = json.iter().map(|f| f.len() as u64).sum();
    (r.floor_cpu, r.floor_wall) = time_floor_files(&json, r.results, 3)?;
    drop(json);
    if opts.jq {
        let list_file = dir.path().join("list.json");
        std::fs::write(&list_file, crate::kubectl::json(&set.to_list()))?;
        if let Some((wall, _)) = time_jq(&list_file, if reports >= 20_000 { 1 } else { 3 })? {
            r.jq_wall = Some(wall);
        }
        std::fs::remove_file(&list_file)?;
    }
    r.json = files_sync(opts, &json_dir, &expected)?;
    std::fs::remove_dir_all(&json_dir)?;
    let yaml_dir = dir.path().join("yaml");
    let yaml = write_kubectl_dir(&set, &yaml_dir, opts.per_file, false)?;
    r.yaml_bytes = yaml.iter().map(|f| f.len() as u64).sum();
    drop(yaml);
    r.yaml = files_sync(opts, &yaml_dir, &expected)?;
    eprintln!("[files {reports}] {r:?}");
    Ok(r)
}

/// The large-file row: `reports` reports as one `kubectl get -o json` (or,
/// with `yaml`, `-o yaml`) List file, read by the exporter with the default
/// limit.
pub fn run_large_file(opts: &Options, reports: usize, yaml: bool) -> Result<LargeFileResult> {
    let set = reportgen::generate(&Spec::with_reports(reports, opts.seed));
    let expected = set.expected();
    let dir = tempfile::tempdir()?;
    let (file, bytes) = match yaml {
        false => ("reports.json", crate::kubectl::json(&set.to_list())),
        true => (
            "reports.yaml",
            crate::kubectl::yaml(&set.to_list()).into_bytes(),
        ),
    };
    let file = dir.path().join(file);
    std::fs::write(&file, &bytes)?;
    let mut r = LargeFileResult {
        yaml,
        reports,
        results: set.total_results(),
        bytes: bytes.len() as u64,
        ..LargeFileResult::default()
    };
    drop((bytes, set));
    r.sync = files_sync(opts, &file, &expected)?;
    eprintln!(
        "[large {} file {reports}] {r:?}",
        if yaml { "YAML" } else { "JSON" }
    );
    Ok(r)
}
