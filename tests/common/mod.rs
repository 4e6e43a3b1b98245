//! Helpers of the integration tests alone: the exporter with the tests'
//! conveniences, generated objects and workloads, a fake cluster, fixtures.
//! What the benchmark uses too (the exporter process, HTTP, `/metrics`
//! parsing, `/proc`, the RNG) is in `test-support/`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use policyreport_test_support as support;
use support::exporter::Logging;
use support::http::http_get;
use support::metrics::{Metrics, render_family};
use support::procfs;
use support::rng::Rng;

pub mod e2e_fixtures;
pub mod monitoring;
pub mod prometheus;

/// The exporter process of `policyreport_test_support`, started with the
/// tests' [`Logging`], with the conveniences of the tests: they panic rather
/// than return errors, and [`metrics`](Self::metrics) and
/// [`wait_ready`](Self::wait_ready) here parse and panic where the shared
/// methods of the same names return text and errors. Everything else
/// (`addr`, `pid`, `logs`, `exited`…) is the shared type's, through `Deref`.
pub struct Exporter(support::exporter::Exporter);

impl Deref for Exporter {
    type Target = support::exporter::Exporter;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Exporter {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Exporter {
    /// Start `policyreport-exporter serve ARGS` on a free loopback port.
    pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Exporter {
        Self::serve_with(args, env, |_| {})
    }

    /// Start `serve ARGS` like [`Exporter::serve`], letting `configure`
    /// adjust the command first (for example to run as another user).
    pub fn serve_with(
        args: &[&str],
        env: &[(&str, &str)],
        configure: impl FnOnce(&mut Command),
    ) -> Exporter {
        Self::serve_program(
            Path::new(env!("CARGO_BIN_EXE_policyreport-exporter")),
            args,
            env,
            configure,
        )
    }

    /// Like [`Exporter::serve_with`], running `program` (a copy of the
    /// binary, say) instead of the one cargo built.
    pub fn serve_program(
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        configure: impl FnOnce(&mut Command),
    ) -> Exporter {
        let e =
            support::exporter::Exporter::spawn_with(program, args, env, Logging::TESTS, configure)
                .unwrap_or_else(|e| panic!("{e:#}"));
        Exporter(e)
    }

    /// GET a path; returns status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_with(path, &[])
            .map(|(s, _, b)| (s, b))
            .expect("HTTP request")
    }

    /// GET with extra headers; returns status, content type and body.
    pub fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<(u16, String, String)> {
        http_get(self.addr, path, headers)
    }

    /// Current `policyreport_results` and other samples.
    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics");
        Metrics::parse(&body)
    }

    /// Wait until /readyz answers 200.
    pub fn wait_ready(&self, timeout: Duration) {
        if self
            .0
            .wait_ready(timeout, Duration::from_millis(25))
            .is_err()
        {
            panic!("not ready after {timeout:?}; logs: {:#?}", self.logs());
        }
    }

    /// Wait until `cond` holds for the served metrics; returns them.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let start = Instant::now();
        loop {
            let m = self.metrics();
            if cond(&m) {
                return m;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; last metrics:\n{}",
                m.render_results()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.0.terminate(timeout)
    }

    /// A `kB` field of `/proc/PID/status`, such as `VmRSS` or `VmHWM` (peak RSS).
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        procfs::status_bytes(self.pid, field).map(|b| b / 1024)
    }

    /// Log lines parsed as JSON (lines that are not JSON are skipped).
    pub fn log_json(&self) -> Vec<serde_json::Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Log lines at `level` (`WARN`, `INFO`, …) whose message contains `text`.
    pub fn count_logs(&self, level: &str, text: &str) -> usize {
        self.log_json()
            .iter()
            .filter(|v| {
                v["level"] == level && v["message"].as_str().is_some_and(|m| m.contains(text))
            })
            .count()
    }

    /// Wait until a log line satisfies `pred`; returns it.
    pub fn wait_log(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(v) = self.log_json().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for a log line: {what}; logs:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait until the data families served equal `want` (see [`data_text`]);
    /// returns how long it took. Fails with a diff.
    pub fn wait_data(&self, what: &str, want: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let got = data_text(&self.metrics());
            if got == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: served metrics differ from the from-scratch computation after {timeout:?}:\n{}",
                text_diff(want, &got, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `policyreport_exporter_synced` value of one target.
    pub fn synced(&self, m: &Metrics, target: &str) -> Option<f64> {
        m.value("policyreport_exporter_synced", &[("resource", target)])
    }

    /// The `/readyz` status code.
    pub fn ready_status(&self) -> u16 {
        self.get_with("/readyz", &[]).map(|r| r.0).unwrap_or(0)
    }
}

/// Copy a folder tree (for tests that edit files).
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk fixture tree");
        let rel = entry.path().strip_prefix(from).expect("prefix");
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// A Namespace object with `labels`.
pub fn namespace(name: &str, labels: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// Reliability helpers (faults, bad input, HTTP load, soak). Appended only.
// ---------------------------------------------------------------------------

/// Every family `serve` computes from objects under its default flags (not
/// the exporter's own self-observation), in a stable text form for
/// comparisons: the families the independent count
/// (`tests/crosscheck/crosscheck.py`) computes. `--namespace-labels` and
/// `--compat` add families of their own, which their tests check.
pub const DATA_FAMILIES: [&str; 9] = [
    "policyreport_results",
    "policyreport_control_resources",
    "policyreport_admission_blocked_total",
    "policyreport_admission_audit_failures_total",
    "policyreport_policy_info",
    "policyreport_policy_namespace_mode",
    "policyreport_reports",
    "policyreport_reports_stale",
    "policyreport_report_oldest_refresh_timestamp_seconds",
];

/// [`DATA_FAMILIES`] of `m`, sorted, one sample per line.
pub fn data_text(m: &Metrics) -> String {
    DATA_FAMILIES
        .iter()
        .map(|f| render_family(f, &m.family(f)))
        .collect()
}

/// Lines that differ between two renderings (`-` only in `want`, `+` only in
/// `got`), at most `limit` of them, for failure messages.
pub fn text_diff(want: &str, got: &str, limit: usize) -> String {
    let w: std::collections::BTreeSet<&str> = want.lines().collect();
    let g: std::collections::BTreeSet<&str> = got.lines().collect();
    let mut out: Vec<String> = w.difference(&g).map(|l| format!("- {l}")).collect();
    out.extend(g.difference(&w).map(|l| format!("+ {l}")));
    let n = out.len();
    out.truncate(limit);
    if n > limit {
        out.push(format!("… {} more", n - limit));
    }
    out.join("\n")
}

/// What the exporter must serve for `objects`, counted independently of
/// its code by `tests/crosscheck/crosscheck.py --print` (written to a
/// temporary folder as one JSON `List` per kind): the [`DATA_FAMILIES`].
pub fn independent_count<'a>(
    objects: impl IntoIterator<Item = (policyreport_exporter::kind::Kind, &'a serde_json::Value)>,
) -> Metrics {
    let dir = tempfile::tempdir().expect("tempdir");
    write_lists(dir.path(), objects);
    let out = Command::new("python3")
        .arg(repo().join("tests/crosscheck/crosscheck.py"))
        .arg("--print")
        .arg(dir.path())
        .output()
        .expect("python3 (apt-get install python3)");
    assert!(
        out.status.success(),
        "crosscheck.py --print: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Metrics::parse(&String::from_utf8_lossy(&out.stdout))
}

/// Writes `objects` into `dir` as one JSON `List` per kind.
fn write_lists<'a>(
    dir: &Path,
    objects: impl IntoIterator<Item = (policyreport_exporter::kind::Kind, &'a serde_json::Value)>,
) {
    let mut by_kind: BTreeMap<&str, Vec<&serde_json::Value>> = BTreeMap::new();
    for (kind, v) in objects {
        by_kind.entry(kind.kind()).or_default().push(v);
    }
    for (kind, items) in by_kind {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        std::fs::write(dir.join(format!("{kind}.json")), list.to_string()).expect("write a List");
    }
}

/// An object as the watch source hands it over.
pub fn source_object(
    kind: policyreport_exporter::kind::Kind,
    value: &serde_json::Value,
) -> policyreport_exporter::source::SourceObject {
    use policyreport_exporter::source::SourceObject;
    let text = value.to_string();
    if kind.is_report() {
        SourceObject::report(kind, serde_json::from_str(&text).expect("report metadata"))
    } else {
        SourceObject::object(kind, serde_json::from_str(&text).expect("object metadata"))
    }
}

/// Run the independent Python count (`tests/crosscheck/crosscheck.py`) over
/// `objects` (written to a temporary folder as one JSON `List` per kind)
/// against `metrics` (Prometheus text). Returns its output, or an error
/// with the differing series.
pub fn crosscheck(
    objects: &[(policyreport_exporter::kind::Kind, serde_json::Value)],
    metrics: &str,
) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let objects_dir = dir.path().join("objects");
    std::fs::create_dir(&objects_dir).map_err(|e| e.to_string())?;
    write_lists(&objects_dir, objects.iter().map(|(k, v)| (*k, v)));
    let metrics_file = dir.path().join("metrics.txt");
    std::fs::write(&metrics_file, metrics).map_err(|e| e.to_string())?;
    let out = Command::new("python3")
        .arg(repo().join("tests/crosscheck/crosscheck.py"))
        .arg("--metrics")
        .arg(&metrics_file)
        .arg(&objects_dir)
        .output()
        .map_err(|e| format!("running python3: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Policies the generated objects use: (name, category). The first three
/// match the built-in controls.
pub const GEN_POLICIES: [(&str, &str); 6] = [
    ("require-requests-limits", "Best Practices"),
    (
        "restrict-image-registries",
        "Best Practices, EKS Best Practices",
    ),
    (
        "podsecurity-subrule-baseline",
        "Pod Security Standards (Baseline)",
    ),
    (
        "disallow-privileged-containers",
        "Pod Security Standards (Baseline)",
    ),
    ("disallow-latest-tag", "Best Practices"),
    ("require-team-label", ""),
];

const GEN_OUTCOMES: [&str; 5] = ["pass", "fail", "warn", "error", "skip"];

fn gen_subject(kind: &str, ns: &str, name: &str) -> serde_json::Value {
    let mut s = serde_json::json!({
        "apiVersion": "v1", "kind": kind, "name": name,
        // One uid per (kind, namespace, name): the same resource always
        // looks the same, whichever report names it.
        "uid": format!("uid-{kind}-{ns}-{name}"),
    });
    if !ns.is_empty() {
        s["namespace"] = ns.into();
    }
    s
}

/// A random report of a report kind. With `invalid_rate` > 0 some reports
/// carry an unknown outcome (and are invalid as a whole).
pub fn gen_report(
    rng: &mut Rng,
    kind: policyreport_exporter::kind::Kind,
    ns: &str,
    name: &str,
    invalid_rate: f64,
) -> serde_json::Value {
    use policyreport_exporter::kind::Kind;
    let namespaced = kind.namespaced();
    let openreports = matches!(kind, Kind::Report | Kind::ClusterReport);
    let subject_kind = if namespaced { "Pod" } else { "Namespace" };
    let subject_ns = if namespaced { ns } else { "" };
    let policy_wide = rng.chance(0.25);
    let n = 1 + rng.below(6);
    let mut results = Vec::new();
    for _ in 0..n {
        let (policy, category) = *rng.pick(&GEN_POLICIES);
        let policy = if policy == "require-team-label" && namespaced {
            format!("{ns}/{policy}")
        } else {
            policy.to_owned()
        };
        let mut r = serde_json::json!({
            "policy": policy,
            "rule": format!("check-{}", rng.below(2)),
            "result": rng.pick(&GEN_OUTCOMES),
            "message": "generated",
            "scored": true,
            "properties": {"process": "background scan"},
            "timestamp": {"seconds": 1_700_000_000u64 + rng.below(1000), "nanos": 0},
        });
        if !(openreports && rng.chance(0.5)) {
            r["source"] = "kyverno".into();
        }
        if !category.is_empty() {
            r["category"] = category.into();
        }
        if rng.chance(0.7) {
            r["severity"] = (*rng.pick(&["low", "medium", "high"])).into();
        }
        if policy_wide {
            let subjects: Vec<_> = (0..1 + rng.below(3))
                .map(|_| gen_subject(subject_kind, subject_ns, &format!("res-{}", rng.below(8))))
                .collect();
            r["resources"] = subjects.into();
        }
        results.push(r);
    }
    if rng.chance(invalid_rate) {
        let i = rng.below(results.len() as u64) as usize;
        results[i]["result"] = "maybe".into();
    }
    let mut metadata = serde_json::json!({"name": name});
    if namespaced {
        metadata["namespace"] = ns.into();
    }
    let mut report = serde_json::json!({
        "apiVersion": format!("{}/{}", kind.group(), kind.versions()[0]),
        "kind": kind.kind(),
        "metadata": metadata,
        "results": results,
    });
    if !policy_wide {
        report["scope"] = gen_subject(subject_kind, subject_ns, &format!("res-{}", rng.below(8)));
    }
    if openreports {
        report["source"] = "kyverno".into();
    }
    report
}

/// A blocked-admission Event about a ClusterPolicy (or a Policy when the
/// policy name has a `namespace/` prefix), with `series.count` = `count`.
pub fn gen_event(ns: &str, name: &str, policy: &str, pod: &str, count: u64) -> serde_json::Value {
    let involved = match policy.split_once('/') {
        Some((pns, p)) => {
            serde_json::json!({"apiVersion": "kyverno.io/v1", "kind": "Policy", "namespace": pns, "name": p})
        }
        None => {
            serde_json::json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "name": policy})
        }
    };
    serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "type": "Warning", "reason": "PolicyViolation", "action": "Resource Blocked",
        "reportingComponent": "kyverno-admission",
        "involvedObject": involved,
        "message": format!("Pod {ns}/{pod}: [check-0] fail (blocked); generated"),
        "series": {"count": count, "lastObservedTime": "2026-11-27T05:00:00.000000Z"},
    })
}

/// The report kinds, in [`Kind::ALL`]'s order.
///
/// [`Kind::ALL`]: policyreport_exporter::kind::Kind::ALL
pub fn report_kinds() -> Vec<policyreport_exporter::kind::Kind> {
    use policyreport_exporter::kind::Kind;
    Kind::ALL.into_iter().filter(|k| k.is_report()).collect()
}

/// A random Kyverno policy of a policy kind (`name` is one of the
/// [`GEN_POLICIES`] names, so reports and Events refer to it), or, for
/// `Namespace`, the namespace `ns` with random labels.
pub fn gen_policy(
    rng: &mut Rng,
    kind: policyreport_exporter::kind::Kind,
    ns: &str,
    name: &str,
) -> serde_json::Value {
    use policyreport_exporter::kind::{Kind, Role};
    if kind == Kind::Namespace {
        return serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"tier": rng.pick(&["prod", "dev"])}},
        });
    }
    let category = GEN_POLICIES
        .iter()
        .find(|(p, _)| *p == name)
        .map_or("", |(_, c)| *c);
    let mut metadata = serde_json::json!({
        "name": name,
        "annotations": {
            "policies.kyverno.io/category": category,
            "policies.kyverno.io/severity": rng.pick(&["low", "medium", "high"]),
            "policies.kyverno.io/title": format!("Title {}", rng.below(3)),
        },
    });
    if kind.namespaced() {
        metadata["namespace"] = ns.into();
    }
    let spec = if kind.role() == Role::CelPolicy {
        serde_json::json!({
            "validationActions": [rng.pick(&["Deny", "Audit", "Warn"])],
            "evaluation": {"background": {"enabled": rng.chance(0.5)}},
        })
    } else {
        let rules: Vec<_> = (0..1 + rng.below(3))
            .map(|i| {
                let mut validate = serde_json::json!({"message": "m", "pattern": {}});
                if rng.chance(0.3) {
                    validate["failureAction"] = (*rng.pick(&["Audit", "Enforce"])).into();
                }
                serde_json::json!({"name": format!("check-{i}"), "validate": validate})
            })
            .collect();
        serde_json::json!({
            "validationFailureAction": rng.pick(&["Audit", "Enforce", "audit", "enforce"]),
            "background": rng.chance(0.8),
            "rules": rules,
        })
    };
    serde_json::json!({
        "apiVersion": format!("{}/{}", kind.group(), kind.versions()[0]),
        "kind": kind.kind(),
        "metadata": metadata,
        "spec": spec,
    })
}

/// A fake Kubernetes cluster (the project's fake API server on a runtime of
/// its own) plus a kubeconfig for it, tracking which kinds it serves.
pub struct FakeCluster {
    pub rt: tokio::runtime::Runtime,
    pub server: fake_apiserver::FakeApiServer,
    pub kubeconfig: String,
    served: Mutex<std::collections::BTreeSet<policyreport_exporter::kind::Kind>>,
    _dir: tempfile::TempDir,
}

impl FakeCluster {
    pub fn start(kinds: &[policyreport_exporter::kind::Kind]) -> FakeCluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt
            .block_on(fake_apiserver::FakeApiServer::start())
            .expect("fake API server");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        server.write_kubeconfig(&path).expect("kubeconfig");
        let cluster = FakeCluster {
            rt,
            server,
            kubeconfig: path.display().to_string(),
            served: Mutex::new(Default::default()),
            _dir: dir,
        };
        for k in kinds {
            cluster.serve_kind(*k);
        }
        cluster
    }

    /// The resource definition the fake server uses for a kind.
    pub fn def(kind: policyreport_exporter::kind::Kind) -> fake_apiserver::ResourceDef {
        fake_apiserver::ResourceDef::new(
            kind.group(),
            kind.versions()[0],
            kind.kind(),
            kind.plural(),
            kind.namespaced(),
        )
    }

    pub fn serve_kind(&self, kind: policyreport_exporter::kind::Kind) {
        self.server.serve(Self::def(kind));
        self.served.lock().expect("lock").insert(kind);
    }

    /// Stop serving a kind (it leaves discovery; its objects stay stored).
    pub fn unserve_kind(&self, kind: policyreport_exporter::kind::Kind) {
        self.server
            .unserve(kind.group(), kind.versions()[0], kind.plural());
        self.served.lock().expect("lock").remove(&kind);
    }

    pub fn served(&self) -> Vec<policyreport_exporter::kind::Kind> {
        self.served.lock().expect("lock").iter().copied().collect()
    }

    pub fn exporter(&self, args: &[&str]) -> Exporter {
        Exporter::serve(args, &[("KUBECONFIG", &self.kubeconfig)])
    }

    /// Apply an object; its kind comes from its `apiVersion` and `kind`.
    pub fn apply(&self, object: serde_json::Value) {
        let kind = policyreport_exporter::kind::Kind::from_type(
            object["apiVersion"].as_str().unwrap_or(""),
            object["kind"].as_str().unwrap_or(""),
        )
        .expect("a kind the exporter reads");
        self.server.apply(&Self::def(kind), object);
    }

    pub fn delete(
        &self,
        kind: policyreport_exporter::kind::Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        self.server.delete(&Self::def(kind), namespace, name)
    }

    /// Every object of the kinds currently served.
    pub fn objects(&self) -> Vec<(policyreport_exporter::kind::Kind, serde_json::Value)> {
        self.served()
            .into_iter()
            .flat_map(|k| {
                self.server
                    .objects(&Self::def(k))
                    .into_iter()
                    .map(move |v| (k, v))
            })
            .collect()
    }

    /// The data families computed from scratch over what the server holds
    /// (served kinds only), as [`data_text`].
    pub fn expected(&self) -> String {
        let objects = self.objects();
        data_text(&independent_count(objects.iter().map(|(k, v)| (*k, v))))
    }

    pub fn stop(&self) {
        self.rt.block_on(self.server.stop());
    }

    pub fn resume(&self) {
        self.rt.block_on(self.server.resume()).expect("resume");
    }

    pub fn restart(&self) {
        self.rt.block_on(self.server.restart()).expect("restart");
    }

    pub fn restart_keeping_history(&self) {
        self.rt
            .block_on(self.server.restart_keeping_history())
            .expect("restart");
    }
}

/// Targets whose `synced` is not 1.
pub fn unsynced(m: &Metrics) -> Vec<String> {
    m.family("policyreport_exporter_synced")
        .into_iter()
        .filter(|(_, v)| *v != 1.0)
        .map(|(l, _)| l[0].1.clone())
        .collect()
}

/// The objects held per kind (`policyreport_exporter_objects`) equal what
/// the server holds, for every kind it serves.
pub fn assert_objects_held(c: &FakeCluster, m: &Metrics, what: &str) {
    for kind in c.served() {
        let held = c.server.objects(&FakeCluster::def(kind)).len() as f64;
        let got = m.value(
            "policyreport_exporter_objects",
            &[("resource", kind.resource())],
        );
        assert_eq!(
            got,
            Some(held),
            "{what}: objects held for {}",
            kind.resource()
        );
    }
}

/// Poll `cond` every 20 ms until it holds; returns the elapsed time, or
/// `None` on timeout.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the tests run as root (which ignores file permissions).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Creates, updates and deletes generated objects in a [`FakeCluster`]:
/// reports of every report kind, blocked-admission Events (created and
/// grown, never deleted, so the blocked counters equal the Events' counts)
/// and policies. Deterministic for a seed.
pub struct Workload {
    pub rng: Rng,
    kinds: Vec<policyreport_exporter::kind::Kind>,
    /// Event name → (namespace, policy, pod, count).
    events: BTreeMap<String, (String, String, String, u64)>,
    /// Reports per kind and namespace the names are drawn from.
    pub pool: u64,
    /// Probability that a written report is invalid.
    pub invalid_rate: f64,
    /// Operations applied so far.
    pub ops: u64,
}

pub const GEN_NAMESPACES: [&str; 3] = ["team-a", "team-b", "prod"];

impl Workload {
    pub fn new(seed: u64, kinds: &[policyreport_exporter::kind::Kind]) -> Workload {
        Workload {
            rng: Rng::new(seed),
            kinds: kinds.to_vec(),
            events: BTreeMap::new(),
            pool: 12,
            invalid_rate: 0.0,
            ops: 0,
        }
    }

    /// Create `reports` reports of each report kind, `events` Events and
    /// every policy.
    pub fn populate(&mut self, c: &FakeCluster, reports: usize, events: usize) {
        use policyreport_exporter::kind::Kind;
        for kind in self.kinds.clone() {
            if kind.is_report() {
                for i in 0..reports {
                    let ns = GEN_NAMESPACES[i % GEN_NAMESPACES.len()];
                    let name = format!("r-{}", i / GEN_NAMESPACES.len());
                    self.write_report(c, kind, ns, &name);
                }
            } else if kind == Kind::Event {
                for _ in 0..events {
                    self.new_event(c);
                }
            } else {
                for (policy, _) in GEN_POLICIES {
                    self.write_policy(c, kind, policy);
                }
            }
        }
    }

    fn write_report(
        &mut self,
        c: &FakeCluster,
        kind: policyreport_exporter::kind::Kind,
        ns: &str,
        name: &str,
    ) {
        let r = gen_report(&mut self.rng, kind, ns, name, self.invalid_rate);
        c.apply(r);
    }

    fn write_policy(
        &mut self,
        c: &FakeCluster,
        kind: policyreport_exporter::kind::Kind,
        policy: &str,
    ) {
        let ns = *self.rng.pick(&GEN_NAMESPACES);
        let p = gen_policy(&mut self.rng, kind, ns, policy);
        c.apply(p);
    }

    fn new_event(&mut self, c: &FakeCluster) {
        let name = format!("ev-{}", self.events.len());
        let ns = (*self.rng.pick(&GEN_NAMESPACES)).to_owned();
        let (policy, _) = *self.rng.pick(&GEN_POLICIES);
        let policy = if policy == "require-team-label" {
            format!("{ns}/{policy}")
        } else {
            policy.to_owned()
        };
        let pod = format!("res-{}", self.rng.below(8));
        let count = 1 + self.rng.below(3);
        c.apply(gen_event(&ns, &name, &policy, &pod, count));
        self.events.insert(name, (ns, policy, pod, count));
    }

    fn grow_event(&mut self, c: &FakeCluster) {
        if self.events.is_empty() {
            return self.new_event(c);
        }
        let i = self.rng.below(self.events.len() as u64) as usize;
        let name = self.events.keys().nth(i).expect("event").clone();
        let grow = 1 + self.rng.below(3);
        let (ns, policy, pod, count) = self.events.get_mut(&name).expect("event");
        *count += grow;
        let e = gen_event(ns, &name, policy, pod, *count);
        c.apply(e);
    }

    /// One change to an object of `kind`.
    pub fn touch(&mut self, c: &FakeCluster, kind: policyreport_exporter::kind::Kind) {
        use policyreport_exporter::kind::Kind;
        self.ops += 1;
        if kind.is_report() {
            let ns = *self.rng.pick(&GEN_NAMESPACES);
            let name = format!("r-{}", self.rng.below(self.pool));
            let ns_arg = kind.namespaced().then_some(ns);
            if self.rng.chance(0.2) {
                c.delete(kind, ns_arg, &name);
            } else {
                self.write_report(c, kind, ns, &name);
            }
        } else if kind == Kind::Event {
            if self.rng.chance(0.3) {
                self.new_event(c);
            } else {
                self.grow_event(c);
            }
        } else {
            let (policy, _) = *self.rng.pick(&GEN_POLICIES);
            if self.rng.chance(0.2) {
                let ns = *self.rng.pick(&GEN_NAMESPACES);
                c.delete(kind, kind.namespaced().then_some(ns), policy);
            } else {
                self.write_policy(c, kind, policy);
            }
        }
    }

    /// One change to an object of a random kind (reports more often).
    pub fn step(&mut self, c: &FakeCluster) {
        let reports: Vec<_> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| k.is_report())
            .collect();
        let kind = if !reports.is_empty() && self.rng.chance(0.7) {
            *self.rng.pick(&reports)
        } else {
            let kinds = self.kinds.clone();
            *self.rng.pick(&kinds)
        };
        self.touch(c, kind);
    }

    /// One change to every kind, so that each watch sees an event.
    pub fn touch_all(&mut self, c: &FakeCluster) {
        for kind in self.kinds.clone() {
            self.ops += 1;
            if kind.is_report() {
                let ns = GEN_NAMESPACES[0];
                self.write_report(c, kind, ns, "touched");
            } else if kind == policyreport_exporter::kind::Kind::Event {
                self.grow_event(c);
            } else {
                // A change that is never a no-op: a fresh title every time.
                let mut p = gen_policy(&mut self.rng, kind, GEN_NAMESPACES[0], "touched");
                p["metadata"]["annotations"]["policies.kyverno.io/title"] =
                    format!("touch {}", self.ops).into();
                c.apply(p);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Report freshness fixtures.
// ---------------------------------------------------------------------------

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A result of `policy` (`fail` or `pass`) from `source`, at `seconds`
/// (without a timestamp when `None`).
pub fn timed_result(policy: &str, outcome: &str, source: &str, seconds: Option<i64>) -> String {
    let ts = seconds.map_or(String::new(), |s| {
        format!(r#","timestamp":{{"seconds":{s},"nanos":0}}"#)
    });
    format!(
        r#"{{"policy":"{policy}","rule":"check","result":"{outcome}","source":"{source}","category":"Best Practices"{ts}}}"#
    )
}

/// A temporary folder holding the freshness fixture (see
/// [`write_freshness_reports`]) with timestamps relative to now; its path
/// and that now.
pub fn freshness_dir(outcome: &str) -> (tempfile::TempDir, String, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = unix_now();
    write_freshness_reports(dir.path(), now, outcome);
    let path = dir.path().display().to_string();
    (dir, path, now)
}

/// Write the freshness fixture into `dir`, with timestamps relative to
/// `now`: in `shop`, a report refreshed 5h10m ago (its older result 6h
/// ago), one 10m ago, one without timestamps, and one with results from
/// `kyverno` (5h10m ago) and `trivy` (10m ago); a cluster-scoped report
/// 5h10m ago (`seconds` written as a float, as v1beta1 tools do). The 10m
/// report is YAML.
pub fn write_freshness_reports(dir: &Path, now: i64, outcome: &str) {
    let old = now - 5 * 3600 - 600;
    let new = now - 600;
    let report = |ns: &str, name: &str, results: &[String]| {
        format!(
            r#"{{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{{"name":"{name}","namespace":"{ns}"}},
            "scope":{{"apiVersion":"v1","kind":"Pod","name":"{name}","namespace":"{ns}","uid":"uid-{name}"}},
            "results":[{}]}}"#,
            results.join(",")
        )
    };
    let r = |policy, source, ts| timed_result(policy, outcome, source, ts);
    let files = [
        (
            "old.json",
            report(
                "shop",
                "old",
                &[
                    r("require-requests-limits", "kyverno", Some(now - 6 * 3600)),
                    r("disallow-latest-tag", "kyverno", Some(old)),
                ],
            ),
        ),
        (
            "untimed.json",
            report(
                "shop",
                "untimed",
                &[r("require-requests-limits", "kyverno", None)],
            ),
        ),
        (
            "mixed.json",
            report(
                "shop",
                "mixed",
                &[
                    r("require-requests-limits", "kyverno", Some(old)),
                    r("vulnerabilities", "trivy", Some(new)),
                ],
            ),
        ),
        (
            "cluster.json",
            format!(
                r#"{{"apiVersion":"wgpolicyk8s.io/v1beta1","kind":"ClusterPolicyReport","metadata":{{"name":"cluster"}},
                "results":[{{"policy":"require-ns-labels","result":"{outcome}","source":"kyverno","timestamp":{{"seconds":{old}.0,"nanos":0}}}}]}}"#
            ),
        ),
        (
            "new.yaml",
            format!(
                "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata:\n  name: new\n  namespace: shop\n\
                 scope: {{apiVersion: v1, kind: Pod, name: new, namespace: shop, uid: uid-new}}\n\
                 results:\n- policy: require-requests-limits\n  rule: check\n  result: {outcome}\n  source: kyverno\n\
                 \x20 category: Best Practices\n  timestamp:\n    seconds: {new}\n    nanos: 0\n"
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write freshness fixture");
    }
}
