//! Bad and hostile input through `serve --files`, end to end: each case must
//! be refused (or read exactly, for the large-but-valid ones) with a log line
//! naming the path and the reason, a counter increment, bounded memory, and
//! the service still running with exact metrics for the good files.
//!
//! Each test prints one `SCOREBOARD` line with what it observed (run with
//! `--nocapture`); docs/reliability.md collects them.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Exporter, data_text, independent_count};
use policyreport_exporter::kind::Kind;
use policyreport_test_support::metrics::{Metrics, render_family};
use policyreport_test_support::rng::Rng;
use serde_json::Value;

const READY: Duration = Duration::from_secs(60);
const FOLLOW: Duration = Duration::from_secs(20);

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A folder of good files: generated reports, a policy and an Event, each
/// in a file of its own.
struct Good {
    objects: Vec<(Kind, Value)>,
}

impl Good {
    fn write(dir: &Path, seed: u64, reports: usize) -> Good {
        let mut rng = Rng::new(seed);
        let mut objects = Vec::new();
        for i in 0..reports {
            let kind = *rng.pick(&common::report_kinds());
            let ns = *rng.pick(&common::GEN_NAMESPACES);
            let r = common::gen_report(&mut rng, kind, ns, &format!("good-{i}"), 0.0);
            objects.push((kind, r));
        }
        let p = common::gen_policy(&mut rng, Kind::ClusterPolicy, "", "require-requests-limits");
        objects.push((Kind::ClusterPolicy, p));
        let mut ev = common::gen_event("prod", "ev-1", "restrict-image-registries", "web", 4);
        ev["metadata"]["uid"] = "ev-1-uid".into();
        objects.push((Kind::Event, ev));
        for (i, (_, o)) in objects.iter().enumerate() {
            let name = dir.join(format!("good-{i:03}.yaml"));
            std::fs::write(&name, serde_yaml_ng::to_string(o).expect("yaml")).expect("write");
        }
        Good { objects }
    }

    fn expected(&self) -> String {
        data_text(&independent_count(
            self.objects.iter().map(|(k, v)| (*k, v)),
        ))
    }
}

/// Write a file whole, renamed into place, into a folder the exporter
/// watches: a rescan during a plain `std::fs::write` reads the file empty or
/// cut short, counts it invalid or drops what it held, and counts again
/// when it reads it whole, so exact counts would hold only by luck.
fn write_whole(path: &Path, contents: impl AsRef<[u8]>) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, contents).expect("write");
    std::fs::rename(&partial, path).expect("rename");
}

fn files_invalid(m: &Metrics) -> f64 {
    m.value(
        "policyreport_exporter_invalid_objects_total",
        &[("resource", "files")],
    )
    .unwrap_or(0.0)
}

/// Wait for the warn line that refuses `path` with a reason containing
/// `reason`; returns the line.
fn refusal(e: &Exporter, path: &str, reason: &str) -> Value {
    e.wait_log(&format!("{path}: {reason}"), FOLLOW, |v| {
        // A file that cannot be read names it in `location`; a report in
        // it that cannot be decoded names it in `origin`.
        let names = |field: &str| v[field].as_str().is_some_and(|l| l.contains(path));
        v["level"] == "WARN"
            && (names("location") || names("origin"))
            && v["reason"].as_str().is_some_and(|r| r.contains(reason))
    })
}

/// The service is alive and still serves exactly the good files.
fn still_good(e: &mut Exporter, good: &Good, what: &str) {
    assert!(
        e.exited().is_none(),
        "{what}: the exporter is still running"
    );
    assert_eq!(e.get("/healthz").0, 200, "{what}: healthz");
    assert_eq!(e.ready_status(), 200, "{what}: ready");
    e.wait_data(what, &good.expected(), FOLLOW);
}

fn mib(kib: Option<u64>) -> f64 {
    kib.unwrap_or(0) as f64 / 1024.0
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// CPU-heavy tests (large or many files) and tests with a time bound
/// (bombs, deep nesting): a time bound is never measured while a heavy test
/// shares the cores, however many test threads run.
static HEAVY: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A CPU-heavy test: may run beside other heavy tests.
fn heavy() -> std::sync::RwLockReadGuard<'static, ()> {
    HEAVY.read().unwrap_or_else(|e| e.into_inner())
}

/// A test with a time bound: runs beside no heavy test.
fn timed() -> std::sync::RwLockWriteGuard<'static, ()> {
    HEAVY.write().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_50mb_report_with_100k_results_gives_exact_counts() {
    const RESULTS: usize = 100_000;
    let _heavy = heavy();
    let dir = tempdir();
    let policies = [
        ("require-requests-limits", "Best Practices"),
        ("restrict-image-registries", "Best Practices"),
        (
            "podsecurity-subrule-baseline",
            "Pod Security Standards (Baseline)",
        ),
        ("disallow-latest-tag", "Best Practices"),
    ];
    let outcomes = ["pass", "fail", "warn", "error", "skip"];
    let severities = ["low", "medium", "high"];
    let message = "x".repeat(260);
    let mut text = String::with_capacity(52 << 20);
    text.push_str(
        r#"{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{"name":"big","namespace":"big"},"results":["#,
    );
    // Expected policyreport_results and control tallies, computed here.
    let mut results: BTreeMap<(usize, usize, usize), u64> = BTreeMap::new();
    let mut controls: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for i in 0..RESULTS {
        let (p, pod) = (i % 4, i / 4);
        let o = (pod * 7 + p * 3) % 5;
        let s = (pod + p) % 3;
        if i > 0 {
            text.push(',');
        }
        let _ = write!(
            text,
            r#"{{"policy":"{}","rule":"check","result":"{}","category":"{}","severity":"{}","source":"kyverno","message":"{message}","scored":true,"properties":{{"process":"background scan"}},"timestamp":{{"seconds":1700000000,"nanos":0}},"resources":[{{"apiVersion":"v1","kind":"Pod","name":"pod-{pod}","namespace":"big","uid":"uid-{pod}"}}]}}"#,
            policies[p].0, outcomes[o], policies[p].1, severities[s]
        );
        *results.entry((p, s, o)).or_default() += 1;
        let control = [
            "resource-limits",
            "approved-registries",
            "secure-context",
            "",
        ][p];
        if !control.is_empty() {
            // One result per pod and control: a lone skip is an exception.
            let status = match o {
                0 => "compliant",
                4 => "excepted",
                _ => "noncompliant",
            };
            *controls.entry((control, status)).or_default() += 1;
        }
    }
    text.push_str("]}");
    let size = text.len();
    assert!(size >= 50_000_000, "the report is {size} bytes");
    let file = dir.path().join("big.json");
    std::fs::write(&file, &text).expect("write");
    drop(text);

    let start = Instant::now();
    let e = Exporter::serve(&["--files", &path_str(&file)], &[]);
    e.wait_ready(READY);
    let ready_in = start.elapsed();
    let m = e.metrics();
    let mut want = BTreeMap::new();
    for ((p, s, o), n) in &results {
        let mut labels: Vec<(String, String)> = [
            ("category", policies[*p].1),
            ("namespace", "big"),
            ("policy", policies[*p].0),
            ("result", outcomes[*o]),
            ("severity", severities[*s]),
            ("source", "kyverno"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        labels.sort();
        want.insert(labels, *n as f64);
    }
    let want = render_family("policyreport_results", &want);
    assert_eq!(m.render_results(), want, "exact policyreport_results");
    assert_eq!(m.sum("policyreport_results"), RESULTS as f64);
    for ((control, status), n) in &controls {
        assert_eq!(
            m.value(
                "policyreport_control_resources",
                &[
                    ("control", control),
                    ("namespace", "big"),
                    ("kind", "Pod"),
                    ("status", status)
                ]
            ),
            Some(*n as f64),
            "{control} {status}"
        );
    }
    assert_eq!(
        m.family("policyreport_control_resources").len(),
        controls.len()
    );
    // And the independent Python count agrees.
    let (_, body) = e.get("/metrics");
    let metrics_file = dir.path().join("metrics.txt");
    std::fs::write(&metrics_file, &body).expect("write");
    let out = std::process::Command::new("python3")
        .arg(common::repo().join("tests/crosscheck/crosscheck.py"))
        .arg("--metrics")
        .arg(&metrics_file)
        .arg(&file)
        .output()
        .expect("python3 runs (scripts/test installs it with PyYAML)");
    assert!(
        out.status.success(),
        "crosscheck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let peak = mib(e.status_kib("VmHWM"));
    let rss = mib(e.status_kib("VmRSS"));
    println!(
        "SCOREBOARD bad_input::a_50mb_report_with_100k_results_gives_exact_counts: {:.1} MB, {RESULTS} results -> \
         {} series summing to {RESULTS}, {} control series exact, crosscheck agrees; ready in {ready_in:.1?}; \
         peak RSS {peak:.0} MiB, RSS after {rss:.0} MiB",
        size as f64 / 1e6,
        results.len(),
        controls.len()
    );
}

#[test]
fn a_file_above_max_file_size_is_skipped_unread() {
    let dir = tempdir();
    let good = Good::write(dir.path(), 1, 20);
    // A valid 12 MB report: refused by size alone, never read.
    let big = dir.path().join("big-12mb.json");
    let results: Vec<Value> = (0..30_000)
        .map(|i| {
            serde_json::json!({"policy": "p", "result": "fail", "message": "y".repeat(380), "rule": format!("r{i}")})
        })
        .collect();
    let report = serde_json::json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "big", "namespace": "big"}, "results": results});
    std::fs::write(&big, report.to_string()).expect("write");
    let size = std::fs::metadata(&big).expect("meta").len();
    assert!(size > 12_000_000, "{size}");
    let mut e = Exporter::serve(
        &["--files", &path_str(dir.path()), "--max-file-size", "10Mi"],
        &[],
    );
    e.wait_ready(READY);
    let line = refusal(&e, "big-12mb.json", "more than --max-file-size");
    assert_eq!(files_invalid(&e.metrics()), 1.0);
    still_good(&mut e, &good, "after the oversized file");
    let peak = mib(e.status_kib("VmHWM"));
    println!(
        "SCOREBOARD bad_input::a_file_above_max_file_size_is_skipped_unread: {size} bytes with --max-file-size 10Mi: \
         refused ({}), files counter 1, good files exact, peak RSS {peak:.0} MiB",
        line["reason"].as_str().unwrap_or_default()
    );
}

#[test]
fn a_file_over_1gib_is_refused_by_size_without_reading_it() {
    let dir = tempdir();
    let good = Good::write(dir.path(), 2, 20);
    // A 1.1 GB file (sparse, so writing it is instant) under the default
    // --max-file-size of 1Gi.
    let huge = dir.path().join("huge-1100mb.yaml");
    let f = std::fs::File::create(&huge).expect("create");
    f.set_len(1_100_000_000).expect("set_len");
    drop(f);
    let start = Instant::now();
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    let ready_in = start.elapsed();
    refusal(
        &e,
        "huge-1100mb.yaml",
        "more than --max-file-size (1073741824 bytes); raise --max-file-size",
    );
    assert_eq!(files_invalid(&e.metrics()), 1.0);
    still_good(&mut e, &good, "after the 1.1 GB file");
    let peak = mib(e.status_kib("VmHWM"));
    assert!(peak < 100.0, "the file was not read: peak RSS {peak} MiB");
    println!(
        "SCOREBOARD bad_input::a_file_over_1gib_is_refused_by_size_without_reading_it: 300 MB file, default \
         --max-file-size 64Mi: refused by size, files counter 1, ready in {ready_in:.1?}, peak RSS {peak:.0} MiB"
    );
}

/// Many small files in 50 folders: 2 000 in `cargo test`, enough to keep
/// the parse queue full many times over; the 10 000-file run below is the
/// full size.
#[test]
fn many_small_files_give_exact_totals() {
    small_files("many_small_files_give_exact_totals", 2_000);
}

/// The full-size run, run by `scripts/test` (`--include-ignored`).
#[test]
#[ignore = "full size (10 000 files): scripts/test runs it"]
fn ten_thousand_small_files_give_exact_totals() {
    small_files("ten_thousand_small_files_give_exact_totals", 10_000);
}

fn small_files(test: &str, files: usize) {
    let _heavy = heavy();
    let dir = tempdir();
    let mut rng = Rng::new(10_000);
    let mut objects = Vec::new();
    for i in 0..files {
        let sub = dir.path().join(format!("d{:02}", i % 50));
        if i < 50 {
            std::fs::create_dir(&sub).expect("mkdir");
        }
        let kind = *rng.pick(&common::report_kinds());
        let ns = *rng.pick(&common::GEN_NAMESPACES);
        let r = common::gen_report(&mut rng, kind, ns, &format!("r{i}"), 0.0);
        let (name, text) = if i % 2 == 0 {
            (format!("r{i}.json"), r.to_string())
        } else {
            (
                format!("r{i}.yaml"),
                serde_yaml_ng::to_string(&r).expect("yaml"),
            )
        };
        std::fs::write(sub.join(name), text).expect("write");
        objects.push((kind, r));
    }
    let want = data_text(&independent_count(objects.iter().map(|(k, v)| (*k, v))));
    let start = Instant::now();
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    let ready_in = start.elapsed();
    let m = e.metrics();
    assert_eq!(data_text(&m), want, "exact totals over {files} files");
    assert_eq!(m.sum("policyreport_exporter_objects"), files as f64);
    assert_eq!(files_invalid(&m), 0.0);
    let total = m.sum("policyreport_results");
    assert!(e.exited().is_none());
    let peak = mib(e.status_kib("VmHWM"));
    println!(
        "SCOREBOARD bad_input::{test}: {files} files (JSON and YAML, 50 folders) -> \
         {files} objects, {total} results, {} series, all four families equal to the from-scratch count; ready in \
         {ready_in:.1?}, peak RSS {peak:.0} MiB",
        m.family("policyreport_results").len()
    )
}

#[test]
fn invalid_utf8_is_refused() {
    let dir = tempdir();
    let good = Good::write(dir.path(), 3, 10);
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    e.wait_data("good files", &good.expected(), FOLLOW);
    let mut yaml = b"apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: u, namespace: x}\nresults:\n- policy: p\xff\xfe\n  result: pass\n".to_vec();
    write_whole(&dir.path().join("bad-utf8.yaml"), &yaml);
    yaml.clear();
    let json = b"{\"apiVersion\":\"wgpolicyk8s.io/v1alpha2\",\"kind\":\"PolicyReport\",\"metadata\":{\"name\":\"u\",\"namespace\":\"x\"},\"results\":[{\"policy\":\"p\xc3\x28\",\"result\":\"pass\"}]}";
    write_whole(&dir.path().join("bad-utf8.json"), json);
    let y = refusal(&e, "bad-utf8.yaml", "");
    let j = refusal(&e, "bad-utf8.json", "");
    e.wait_for("both counted", FOLLOW, |m| files_invalid(m) == 2.0);
    still_good(&mut e, &good, "after invalid UTF-8");
    println!(
        "SCOREBOARD bad_input::invalid_utf8_is_refused: YAML refused ({}); JSON refused ({}); files counter 2, good files exact",
        y["reason"].as_str().unwrap_or_default(),
        j["reason"].as_str().unwrap_or_default()
    );
}

/// Billion laughs: 9 levels of 9 aliases each (9^9 ≈ 387 million strings if
/// expanded), under a report's `results` and as a bare document.
fn billion_laughs(top: &str, key: &str) -> String {
    let mut s = String::from(top);
    s.push_str(
        "l0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..=9 {
        let prev = format!("*l{}", i - 1);
        let items = [prev.as_str(); 9].join(",");
        let _ = writeln!(s, "l{i}: &l{i} [{items}]");
    }
    let _ = writeln!(s, "{key}: *l9");
    s
}

#[test]
fn yaml_bombs_are_refused_quickly_with_bounded_memory() {
    let _timed = timed();
    let dir = tempdir();
    let good = Good::write(dir.path(), 4, 10);
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    e.wait_data("good files", &good.expected(), FOLLOW);
    let base = mib(e.status_kib("VmHWM"));
    let bombs = [
        (
            "bomb-report.yaml",
            billion_laughs(
                "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: bomb, namespace: x}\n",
                "results",
            ),
        ),
        ("bomb-plain.yaml", billion_laughs("", "lols")),
        (
            "bomb-list.yaml",
            billion_laughs("apiVersion: v1\nkind: List\n", "items"),
        ),
    ];
    let mut lines = Vec::new();
    for (i, (name, text)) in bombs.iter().enumerate() {
        let start = Instant::now();
        write_whole(&dir.path().join(name), text);
        let line = refusal(&e, name, "");
        let took = start.elapsed();
        // Refused as an unreadable file, or (JSON whose nesting sits in a
        // field) as an invalid report: either way counted once.
        e.wait_for("counted", FOLLOW, |m| {
            m.sum("policyreport_exporter_invalid_objects_total") == (i + 1) as f64
        });
        lines.push(format!(
            "{name} ({} bytes) refused in {took:.1?}: {}",
            text.len(),
            line["reason"].as_str().unwrap_or_default()
        ));
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
    }
    let peak = mib(e.status_kib("VmHWM"));
    still_good(&mut e, &good, "after the bombs");
    assert!(
        peak < base + 64.0,
        "bounded memory: peak RSS {peak} MiB, {base} MiB before"
    );
    println!(
        "SCOREBOARD bad_input::yaml_bombs_are_refused_quickly_with_bounded_memory: {}; peak RSS {base:.0} -> {peak:.0} MiB",
        lines.join("; ")
    );
}

#[test]
fn deeply_nested_json_and_yaml_are_refused() {
    let _timed = timed();
    let dir = tempdir();
    let good = Good::write(dir.path(), 5, 10);
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    e.wait_data("good files", &good.expected(), FOLLOW);
    let base = mib(e.status_kib("VmHWM"));
    // JSON is refused at depth 128 while it is read, so any depth is cheap.
    // YAML is parsed whole before the depth limit applies, and libyaml's
    // time grows with the square of the flow nesting: 10 000 levels here;
    // see `deep_flow_yaml_is_refused_quickly` for deeper ones.
    let depth = 200_000;
    let nested_json = format!(
        "{{\"apiVersion\":\"wgpolicyk8s.io/v1alpha2\",\"kind\":\"PolicyReport\",\"metadata\":{{\"name\":\"n\",\"namespace\":\"x\"}},\"results\":[{{\"policy\":\"p\",\"result\":\"pass\",\"properties\":{}{}}}]}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let yaml_depth = 10_000;
    let flow_yaml = format!(
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {{name: n, namespace: x}}\nresults: {}{}\n",
        "[".repeat(yaml_depth),
        "]".repeat(yaml_depth)
    );
    let mut block_yaml = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for d in 0..2_000 {
        let _ = writeln!(block_yaml, "{}- a:", " ".repeat(d * 2));
    }
    let mut json_objects = String::new();
    for _ in 0..depth {
        json_objects.push_str("{\"a\":");
    }
    json_objects.push('1');
    json_objects.push_str(&"}".repeat(depth));
    let cases = [
        ("nested-results.json", nested_json),
        ("nested-flow.yaml", flow_yaml),
        ("nested-block.yaml", block_yaml),
    ];
    let mut lines = Vec::new();
    for (i, (name, text)) in cases.iter().enumerate() {
        let start = Instant::now();
        write_whole(&dir.path().join(name), text);
        let line = refusal(&e, name, "");
        let took = start.elapsed();
        // Refused as an unreadable file, or (JSON whose nesting sits in a
        // field) as an invalid report: either way counted once.
        e.wait_for("counted", FOLLOW, |m| {
            m.sum("policyreport_exporter_invalid_objects_total") == (i + 1) as f64
        });
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
        lines.push(format!(
            "{name} ({} bytes) refused in {took:.1?}: {}",
            text.len(),
            line["reason"].as_str().unwrap_or_default()
        ));
    }
    // Valid JSON nested 200 000 deep that is no object the exporter reads:
    // skipped without recursion, so it is neither an error nor expensive.
    // A report written after it (later in scan order) is the barrier: once
    // it is served, the deep file has been read.
    let start = Instant::now();
    // Written whole: a reader that caught the file half written would count
    // the truncated JSON as a fourth refusal.
    write_whole(&dir.path().join("nested-objects.json"), &json_objects);
    write_whole(
        &dir.path().join("zz-marker.yaml"),
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: m, namespace: zz-marker}\nresults: [{policy: p, result: pass}]\n",
    );
    e.wait_for("the file after the deep one", FOLLOW, |m| {
        m.family("policyreport_results")
            .keys()
            .any(|l| l.contains(&("namespace".into(), "zz-marker".into())))
    });
    lines.push(format!(
        "nested-objects.json ({} bytes, no kind) skipped in {:.1?}",
        json_objects.len(),
        start.elapsed()
    ));
    std::fs::remove_file(dir.path().join("zz-marker.yaml")).expect("rm");
    let m = e.metrics();
    assert_eq!(
        m.sum("policyreport_exporter_invalid_objects_total"),
        cases.len() as f64,
        "not counted"
    );
    let peak = mib(e.status_kib("VmHWM"));
    still_good(&mut e, &good, "after nesting");
    assert!(
        peak < base + 64.0,
        "bounded memory: peak RSS {peak} MiB, {base} MiB before"
    );
    println!(
        "SCOREBOARD bad_input::deeply_nested_json_and_yaml_are_refused: {}; peak RSS {base:.0} -> {peak:.0} MiB",
        lines.join("; ")
    );
}

#[test]
fn files_deleted_while_being_read_do_not_crash_or_linger() {
    /// Long enough for dozens of create/delete cycles across rescans.
    const RACE_SECONDS: u64 = 4;
    let _heavy = heavy();
    let dir = tempdir();
    let good = Good::write(dir.path(), 6, 20);
    let race = dir.path().join("race");
    std::fs::create_dir(&race).expect("mkdir");
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    e.wait_data("good files", &good.expected(), FOLLOW);
    // Large enough that reading and parsing takes a while.
    let mut rng = Rng::new(6);
    let mut big = common::gen_report(&mut rng, Kind::PolicyReport, "race", "race", 0.0);
    let result = big["results"][0].clone();
    big["results"] = Value::Array(vec![result; 3_000]);
    let start = Instant::now();
    let mut cycles = 0u64;
    let mut objects = good.objects.clone();
    let mut size = 0;
    while start.elapsed() < Duration::from_secs(RACE_SECONDS) {
        let p = race.join(format!("r{cycles}.json"));
        big["metadata"]["name"] = format!("race-{cycles}").into();
        let text = big.to_string();
        size = text.len();
        std::fs::write(&p, &text).expect("write");
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        if cycles % 10 == 9 {
            objects.push((Kind::PolicyReport, big.clone()));
        } else {
            std::fs::remove_file(&p).expect("remove");
        }
        cycles += 1;
    }
    assert!(e.exited().is_none(), "still running");
    // The end state is what is on disk: the good files and the kept ones.
    let want = data_text(&independent_count(objects.iter().map(|(k, v)| (*k, v))));
    let settled = e.wait_data("what is on disk", &want, Duration::from_secs(45));
    let m = e.metrics();
    assert_eq!(
        m.sum("policyreport_exporter_objects"),
        objects.len() as f64,
        "objects held = objects on disk"
    );
    let refused = files_invalid(&m);
    assert_eq!(e.get("/healthz").0, 200);
    println!(
        "SCOREBOARD bad_input::files_deleted_while_being_read_do_not_crash_or_linger: {cycles} create/delete cycles of a \
         {} KB file over {RACE_SECONDS} s while the exporter rescanned; no crash; {refused} reads hit a vanished file (logged and counted); \
         end state = the {} objects on disk, exact {settled:.1?} after the last change",
        size / 1000,
        objects.len()
    );
}

/// Run the exporter as `nobody` when the tests run as root, since root
/// ignores file permissions (and so do FIFOs or mode-000 folders). The
/// binary is copied to a folder `nobody` can reach, as the build folder may
/// not be.
fn unprivileged_exporter(args: &[&str]) -> (Exporter, Option<tempfile::TempDir>) {
    if !common::running_as_root() {
        return (Exporter::serve(args, &[]), None);
    }
    let bin = tempdir();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let program = bin.path().join("policyreport-exporter");
    std::fs::copy(env!("CARGO_BIN_EXE_policyreport-exporter"), &program).expect("copy binary");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let e = Exporter::serve_program(&program, args, &[], |cmd| {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534).current_dir("/");
    });
    (e, Some(bin))
}

/// A folder `nobody` can read, with good files in it.
fn open_dir(seed: u64) -> (tempfile::TempDir, Good) {
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let good = Good::write(dir.path(), seed, 10);
    (dir, good)
}

#[test]
fn permission_denied_paths_are_refused() {
    let (dir, good) = open_dir(7);
    let secret = dir.path().join("secret.yaml");
    std::fs::copy(dir.path().join("good-000.yaml"), &secret).expect("copy");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::write(locked.join("inside.yaml"), "kind: x\n").expect("write");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let (mut e, _bin) = unprivileged_exporter(&["--files", &path_str(dir.path())]);
    e.wait_ready(READY);
    let f = refusal(&e, "secret.yaml", "Permission denied");
    let d = refusal(&e, "locked", "Permission denied");
    e.wait_for("both counted", FOLLOW, |m| files_invalid(m) == 2.0);
    still_good(&mut e, &good, "after permission errors");
    // Logged once, not at every rescan.
    std::fs::write(dir.path().join("poke.txt"), "x").expect("write");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(files_invalid(&e.metrics()), 2.0, "not counted again");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    println!(
        "SCOREBOARD bad_input::permission_denied_paths_are_refused: run as {}: unreadable file refused ({}), unreadable \
         folder refused ({}); files counter 2 (once each); good files exact",
        if common::running_as_root() {
            "uid 65534 (tests run as root)"
        } else {
            "the test user"
        },
        f["reason"].as_str().unwrap_or_default(),
        d["reason"].as_str().unwrap_or_default()
    );
}

#[test]
fn a_file_made_readable_again_is_read() {
    let (dir, mut good) = open_dir(8);
    let secret = dir.path().join("secret.yaml");
    let mut rng = Rng::new(8);
    let report = common::gen_report(&mut rng, Kind::PolicyReport, "team-a", "secret", 0.0);
    std::fs::write(&secret, serde_yaml_ng::to_string(&report).expect("yaml")).expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let (e, _bin) = unprivileged_exporter(&["--files", &path_str(dir.path())]);
    e.wait_ready(READY);
    refusal(&e, "secret.yaml", "Permission denied");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    good.objects.push((Kind::PolicyReport, report));
    // The chmod is seen by the file watcher (and a full rescan runs every
    // 30 s); either should pick the now readable file up.
    e.wait_data(
        "the file became readable",
        &good.expected(),
        Duration::from_secs(40),
    );
}

#[test]
fn symlink_loops_and_dangling_links_are_refused() {
    let dir = tempdir();
    let good = Good::write(dir.path(), 9, 10);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    std::os::unix::fs::symlink(dir.path(), sub.join("loop")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/report.yaml", dir.path().join("dangling.yaml"))
        .expect("symlink");
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    let l = refusal(&e, "loop", "");
    let d = refusal(&e, "dangling.yaml", "");
    e.wait_for("both counted", FOLLOW, |m| files_invalid(m) == 2.0);
    still_good(&mut e, &good, "after the links");
    // Rescans do not count them again.
    std::fs::write(dir.path().join("poke.txt"), "x").expect("write");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(files_invalid(&e.metrics()), 2.0);
    println!(
        "SCOREBOARD bad_input::symlink_loops_and_dangling_links_are_refused: loop refused ({}); dangling link refused ({}); \
         files counter 2 (once each); good files exact",
        l["reason"].as_str().unwrap_or_default(),
        d["reason"].as_str().unwrap_or_default()
    );
}

#[test]
fn unparseable_and_invalid_objects_are_refused_with_path_and_reason() {
    let dir = tempdir();
    let good = Good::write(dir.path(), 10, 10);
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    e.wait_data("good files", &good.expected(), FOLLOW);
    write_whole(&dir.path().join("broken.yaml"), "a: [1, 2\n");
    write_whole(&dir.path().join("broken.json"), "{\"a\": ");
    write_whole(&dir.path().join("empty.json"), "");
    write_whole(
        &dir.path().join("bad-result.yaml"),
        "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: bad, namespace: x}\nresults:\n- {policy: p, result: maybe}\n",
    );
    refusal(&e, "broken.yaml", "parsing YAML");
    refusal(&e, "broken.json", "parsing JSON");
    refusal(&e, "empty.json", "parsing JSON");
    let bad = e.wait_log("bad-result.yaml", FOLLOW, |v| {
        v["level"] == "WARN"
            && v.to_string().contains("bad-result.yaml")
            && v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("unknown variant"))
    });
    let m = e.wait_for("counted", FOLLOW, |m| {
        files_invalid(m) == 3.0
            && m.value(
                "policyreport_exporter_invalid_objects_total",
                &[("resource", "policyreports.wgpolicyk8s.io")],
            ) == Some(1.0)
    });
    let _ = m;
    still_good(&mut e, &good, "after broken files");
    println!(
        "SCOREBOARD bad_input::unparseable_and_invalid_objects_are_refused_with_path_and_reason: truncated YAML, truncated \
         JSON, empty JSON refused (files counter 3); a report with result 'maybe' refused ({}); good files exact",
        bad["reason"].as_str().unwrap_or_default()
    );
}

/// Events, policies of the newer kinds and Namespaces with missing or wrongly
/// typed fields: each is skipped, logged once (also when its file is
/// rewritten), counted under its resource, and the service goes on serving
/// exactly the good files.
#[test]
fn bad_events_policies_and_namespaces_of_the_new_kinds_are_skipped_once() {
    let dir = tempdir();
    let good = Good::write(dir.path(), 11, 6);
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    e.wait_data("good files", &good.expected(), FOLLOW);
    let admission = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: {name}, namespace: shop, uid: {name}-uid}}\n\
             reason: PolicyViolation\nreportingComponent: kyverno-admission\naction: Resource Blocked\n{extra}\n"
        )
    };
    let bad = [
        // (file, resource, name, text)
        (
            "nvpol.yaml",
            "namespacedvalidatingpolicies.policies.kyverno.io",
            "nvpol-bad",
            "apiVersion: policies.kyverno.io/v1beta1\nkind: NamespacedValidatingPolicy\n\
             metadata: {name: nvpol-bad, namespace: shop}\nspec: {validationActions: Deny}\n"
                .to_owned(),
        ),
        (
            "ivpol.yaml",
            "imagevalidatingpolicies.policies.kyverno.io",
            "ivpol-bad",
            "apiVersion: policies.kyverno.io/v1alpha1\nkind: ImageValidatingPolicy\n\
             metadata: {name: ivpol-bad}\nspec: {validationActions: [Deny], evaluation: {background: {enabled: \"yes\"}}}\n"
                .to_owned(),
        ),
        (
            "nivpol.yaml",
            "namespacedimagevalidatingpolicies.policies.kyverno.io",
            "",
            "apiVersion: policies.kyverno.io/v1beta1\nkind: NamespacedImageValidatingPolicy\n\
             metadata: {namespace: shop}\nspec: {validationActions: [Deny]}\n"
                .to_owned(),
        ),
        (
            "cpol.yaml",
            "clusterpolicies.kyverno.io",
            "selector-bad",
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: selector-bad}\n\
             spec:\n  validationFailureActionOverrides:\n  - {action: Enforce, namespaceSelector: {matchExpressions: [{key: a, operator: Near}]}}\n  \
             rules: [{name: r, validate: {}}]\n"
                .to_owned(),
        ),
        (
            "ns.yaml",
            "namespaces",
            "ns-bad",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-bad, labels: {tier: [prod]}}\n".to_owned(),
        ),
        (
            "ev-message.yaml",
            "events",
            "ev-message",
            admission(
                "ev-message",
                "involvedObject: {apiVersion: policies.kyverno.io/v1beta1, kind: NamespacedValidatingPolicy, name: p}\n\
                 message: 'garbled text'",
            ),
        ),
        (
            "ev-related.yaml",
            "events",
            "ev-related",
            admission(
                "ev-related",
                "involvedObject: {kind: ImageValidatingPolicy, name: p}\nrelated: Pod/web\n\
                 message: 'Pod shop/web: [p] fail (blocked); x'",
            ),
        ),
        (
            "ev-name.yaml",
            "events",
            "ev-name",
            admission(
                "ev-name",
                "involvedObject: {kind: ImageValidatingPolicy}\nmessage: 'Pod shop/web: fail (blocked); x'",
            ),
        ),
    ];
    for (file, _, _, text) in &bad {
        write_whole(&dir.path().join(file), text);
    }
    let want = |resource: &str| bad.iter().filter(|b| b.1 == resource).count() as f64;
    let invalid = |m: &Metrics, resource: &str| {
        m.value(
            "policyreport_exporter_invalid_objects_total",
            &[("resource", resource)],
        )
    };
    e.wait_for("every bad object counted", FOLLOW, |m| {
        bad.iter()
            .all(|(_, resource, _, _)| invalid(m, resource) == Some(want(resource)))
    });
    still_good(&mut e, &good, "after the bad objects");
    // Rewritten (the same bad content, plus a good Namespace that shows the
    // files were read again): not logged or counted again.
    for (file, _, _, text) in &bad {
        write_whole(
            &dir.path().join(file),
            format!("{text}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ok-{file}}}\n"),
        );
    }
    let m = e.wait_for("the rewritten files", FOLLOW, |m| {
        m.value(
            "policyreport_exporter_objects",
            &[("resource", "namespaces")],
        ) == Some(bad.len() as f64 + 1.0) // ns-bad is held too, as invalid
    });
    for (file, resource, name, _) in &bad {
        assert_eq!(
            invalid(&m, resource),
            Some(want(resource)),
            "{file}: counted once"
        );
        let lines = e
            .log_json()
            .into_iter()
            .filter(|v| {
                v["level"] == "WARN"
                    && v["message"] == "skipping invalid object"
                    && v["origin"]
                        .as_str()
                        .is_some_and(|o| o.ends_with(&format!("/{file}")))
            })
            .collect::<Vec<_>>();
        assert_eq!(lines.len(), 1, "{file}: logged once: {lines:?}");
        assert_eq!(lines[0]["name"].as_str(), Some(*name), "{file}");
        assert!(
            lines[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{file}: a reason"
        );
    }
    still_good(&mut e, &good, "after rewriting them");
    assert_eq!(
        m.sum("policyreport_admission_blocked_total"),
        4.0,
        "only the good Event"
    );
    println!(
        "SCOREBOARD bad_input::bad_events_policies_and_namespaces_of_the_new_kinds_are_skipped_once: {} bad Events, CEL \
         policies, a selector and a Namespace skipped, each logged once and counted under its resource; good files exact",
        bad.len()
    );
}

#[test]
fn deep_flow_yaml_is_refused_quickly() {
    let _timed = timed();
    let dir = tempdir();
    let good = Good::write(dir.path(), 11, 5);
    let mut e = Exporter::serve(&["--files", &path_str(dir.path())], &[]);
    e.wait_ready(READY);
    let depth = 100_000;
    let text = format!("results: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let start = Instant::now();
    write_whole(&dir.path().join("deep.yaml"), &text);
    refusal(&e, "deep.yaml", "nested deeper than 128 levels");
    let took = start.elapsed();
    still_good(&mut e, &good, "after the deep file");
    assert!(
        took < Duration::from_secs(5),
        "a {} KB file took {took:?} to refuse",
        text.len() / 1000
    );
}

#[test]
fn a_report_below_max_file_size_fits_the_deployments_memory_limit() {
    let _heavy = heavy();
    let dir = tempdir();
    let mut text = String::with_capacity(52 << 20);
    text.push_str(r#"{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{"name":"big","namespace":"big"},"results":["#);
    let message = "x".repeat(260);
    for i in 0..100_000 {
        if i > 0 {
            text.push(',');
        }
        let _ = write!(
            text,
            r#"{{"policy":"require-requests-limits","rule":"check","result":"fail","category":"Best Practices","severity":"medium","source":"kyverno","message":"{message}","scored":true,"properties":{{"process":"background scan"}},"timestamp":{{"seconds":1700000000,"nanos":0}},"resources":[{{"apiVersion":"v1","kind":"Pod","name":"pod-{i}","namespace":"big","uid":"uid-{i}"}}]}}"#
        );
    }
    text.push_str("]}");
    assert!(text.len() < 64 << 20, "below the default --max-file-size");
    let file = dir.path().join("big.json");
    std::fs::write(&file, &text).expect("write");
    let e = Exporter::serve(&["--files", &path_str(&file)], &[]);
    e.wait_ready(READY);
    assert_eq!(e.metrics().sum("policyreport_results"), 100_000.0);
    let peak = mib(e.status_kib("VmHWM"));
    assert!(
        peak < 256.0,
        "peak RSS {peak:.0} MiB for a {} MB file; it must stay under 256 MiB, well within deploy/'s 512Mi limit",
        text.len() / 1_000_000
    );
}
