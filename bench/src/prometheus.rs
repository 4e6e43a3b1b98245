//! A real Prometheus server (Debian's `prometheus`, which `scripts/test`
//! installs) that scrapes exporters found through a file-based service
//! discovery, as the Prometheus Operator finds a restarted Pod at its new
//! address, and evaluates rule files; and its instant-query API.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use policyreport_test_support::http::{get_once, urlencode};
use serde_json::{Value, json};

/// The scrape job, as the rules of `deploy/` and the dashboards expect it.
pub const JOB: &str = "policyreport-exporter";

/// One sample of a query's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Its labels (`__name__` included when the answer keeps it).
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The scrape job of Kyverno's admission controller, as its chart's
/// ServiceMonitor names it (the metrics Service).
pub const KYVERNO_JOB: &str = "kyverno-svc-metrics";

/// A Prometheus server in a folder of its own; killed on drop.
pub struct Prometheus {
    child: Child,
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping job [`JOB`] every second from the
    /// targets [`set_targets`](Self::set_targets) writes, and evaluating
    /// `rule_files` every second. Returns once `/-/ready` answers.
    pub fn start(dir: &Path, rule_files: &[PathBuf]) -> Result<Prometheus> {
        std::fs::create_dir_all(dir)?;
        let targets = dir.join("targets.json");
        std::fs::write(&targets, "[]")?;
        let kyverno = dir.join("kyverno-targets.json");
        std::fs::write(&kyverno, "[]")?;
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("  - {}\n", p.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}scrape_configs:\n  - job_name: {JOB}\n    honor_labels: true\n    \
             file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n  \
             - job_name: {KYVERNO_JOB}\n    file_sd_configs:\n      - files: ['{}']\n        \
             refresh_interval: 1s\n",
            rules.concat(),
            targets.display(),
            kyverno.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log"))?)
            .spawn()
            .context(
                "starting prometheus (apt-get install prometheus; scripts/test installs it)",
            )?;
        let mut p = Prometheus {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = get_once(p.addr, "/-/ready") {
                return Ok(p);
            }
            if let Some(status) = p.child.try_wait()? {
                bail!("prometheus exited with {status}:\n{}", p.logs());
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("prometheus not ready after 60 s:\n{}", p.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Points the scrape job at `targets` (replacing the previous ones),
    /// with the target labels a ServiceMonitor gives a Pod.
    pub fn set_targets(&self, targets: &[SocketAddr]) -> Result<()> {
        let groups: Vec<Value> = targets
            .iter()
            .enumerate()
            .map(|(i, a)| {
                json!({"targets": [a.to_string()], "labels": {
                    "namespace": "policyreport-exporter",
                    "pod": format!("policyreport-exporter-{i}"),
                    "service": "policyreport-exporter", "endpoint": "http", "container": "exporter"}})
            })
            .collect();
        // Written whole, then renamed: the discovery never reads half a file.
        let tmp = self.dir.join("targets.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&groups)?)?;
        std::fs::rename(&tmp, self.dir.join("targets.json"))?;
        Ok(())
    }

    /// Points the Kyverno job at the admission controller's metrics
    /// endpoint, with the target labels its chart's ServiceMonitor gives:
    /// `namespace="kyverno"` among them, which the rules must not mistake for
    /// the resource's namespace.
    pub fn set_kyverno_target(&self, target: SocketAddr) -> Result<()> {
        let groups = json!([{"targets": [target.to_string()], "labels": {
            "namespace": "kyverno", "pod": "kyverno-admission-controller-0",
            "service": KYVERNO_JOB, "endpoint": "metrics-port", "container": "kyverno"}}]);
        let tmp = self.dir.join("kyverno-targets.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&groups)?)?;
        std::fs::rename(&tmp, self.dir.join("kyverno-targets.json"))?;
        Ok(())
    }

    /// The answer of query `ref_id` of the panel `title` of a shipped
    /// dashboard (`dashboards/FILE`), variables set by [`substitute`].
    pub fn panel(&self, file: &str, title: &str, ref_id: &str, range: &str) -> Result<Vec<Sample>> {
        let (_, _, expr) = dashboard_queries(file)?
            .into_iter()
            .find(|(t, r, _)| t == title && r == ref_id)
            .ok_or_else(|| anyhow!("{file} has no panel {title:?} with query {ref_id}"))?;
        self.query(&substitute(&expr, range))
    }

    /// Whether alert `name` is firing now, and with which labels.
    pub fn firing(&self, name: &str) -> Result<Vec<BTreeMap<String, String>>> {
        Ok(self
            .query(&format!(
                "ALERTS{{alertname=\"{name}\", alertstate=\"firing\"}}"
            ))?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    /// Its log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query at the current time; a scalar answer is one sample
    /// without labels.
    pub fn query(&self, q: &str) -> Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", urlencode(q));
        let (status, body) = get_once(self.addr, &path).with_context(|| format!("GET {path}"))?;
        let v: Value = serde_json::from_slice(&body)
            .with_context(|| format!("{q}: {}", String::from_utf8_lossy(&body)))?;
        if status != 200 || v["status"] != "success" {
            bail!("{q}: {status} {v}");
        }
        let value = |pair: &Value| -> Result<f64> {
            pair[1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("{q}: a value that is not a number: {pair}"))
        };
        let data = &v["data"];
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let labels = s["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect();
                    Ok(Sample {
                        labels,
                        value: value(&s["value"])?,
                    })
                })
                .collect(),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: value(&data["result"])?,
            }]),
            other => bail!("{q}: unexpected result type {other:?}"),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rules as `deploy/` ships them (the PrometheusRule's `spec`), written
/// as a rule file into `dir`.
pub fn deploy_rules(dir: &Path) -> Result<PathBuf> {
    deploy_rules_waiting(dir, &[])
}

/// [`deploy_rules`] with the `for:` of the alerts named in `waits` replaced,
/// so that a test sees them fire without waiting their real time (promtool
/// tests check that time).
pub fn deploy_rules_waiting(dir: &Path, waits: &[(&str, &str)]) -> Result<PathBuf> {
    let text = std::fs::read_to_string(
        crate::exporter::workspace_root().join("deploy/base/prometheusrule.yaml"),
    )
    .context("reading deploy/base/prometheusrule.yaml")?;
    let mut rule: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
    for (alert, wait) in waits {
        let found = rule["spec"]["groups"]
            .as_sequence_mut()
            .into_iter()
            .flatten()
            .filter_map(|g| g["rules"].as_sequence_mut())
            .flatten()
            .find(|r| r["alert"].as_str() == Some(alert))
            .ok_or_else(|| anyhow!("no alert {alert} in deploy/"))?;
        found["for"] = serde_yaml_ng::Value::from(*wait);
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("deploy-rules.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&rule["spec"])?)?;
    Ok(path)
}

/// (panel title, refId, expr) of every query of a shipped dashboard
/// (`dashboards/FILE`), rows' panels included.
pub fn dashboard_queries(file: &str) -> Result<Vec<(String, String, String)>> {
    let path = crate::exporter::workspace_root()
        .join("dashboards")
        .join(file);
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().into_iter().flatten().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or_default().to_owned(),
                t["refId"].as_str().unwrap_or_default().to_owned(),
                t["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    if out.len() < 10 {
        bail!("{file} has {} queries", out.len());
    }
    Ok(out)
}

/// A dashboard query with Grafana's variables set as a person would for one
/// look: every cluster and namespace, and the time range (and rate
/// interval) `range`.
pub fn substitute(expr: &str, range: &str) -> String {
    let vars = [
        ("__rate_interval", range),
        ("__range", range),
        ("namespace", ".*"),
        ("cluster", ".*"),
    ];
    let mut out = expr.to_owned();
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}
