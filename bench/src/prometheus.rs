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
use serde_json::{Value, json};

use crate::exporter::get_once;

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
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("  - {}\n", p.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}scrape_configs:\n  - job_name: {JOB}\n    honor_labels: true\n    \
             file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
            rules.concat(),
            targets.display()
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

/// Percent-encodes all but the unreserved characters of a query string.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The rules as `deploy/` ships them (the PrometheusRule's `spec`), written
/// as a rule file into `dir`.
pub fn deploy_rules(dir: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(
        crate::exporter::workspace_root().join("deploy/base/prometheusrule.yaml"),
    )
    .context("reading deploy/base/prometheusrule.yaml")?;
    let rule: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("deploy-rules.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&rule["spec"])?)?;
    Ok(path)
}
