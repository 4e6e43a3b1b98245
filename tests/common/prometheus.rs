//! A real Prometheus server for the end-to-end tests: started on a free
//! loopback port with a generated configuration, queried over its HTTP API,
//! killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use policyreport_test_support::http::{http_get, urlencode};
use serde_json::{Value, json};

use super::monitoring::rules_path;

/// How long the end-to-end tests wait for every query to return data.
pub const SETTLE: Duration = Duration::from_secs(40);

/// A free loopback port (closed again before use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A Prometheus server, killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    pub name: &'static str,
}

impl Prometheus {
    pub fn start(name: &'static str, dir: &Path, config: &str, extra: &[&str]) -> Prometheus {
        std::fs::create_dir_all(dir).expect("prometheus dir");
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            // An agent refuses the server's storage flags and has its own.
            .arg(format!(
                "{}={}",
                if extra.iter().any(|a| a.contains("agent")) {
                    "--storage.agent.path"
                } else {
                    "--storage.tsdb.path"
                },
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).expect("log file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start prometheus (apt-get install prometheus; scripts/test installs it)");
        let mut p = Prometheus {
            child,
            addr,
            log,
            name,
        };
        let start = Instant::now();
        loop {
            if let Ok((200, _, _)) = http_get(p.addr, "/-/ready", &[]) {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("{name} prometheus exited with {status}:\n{}", p.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} prometheus not ready:\n{}",
                p.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get_json(&self, path: &str) -> Result<Value, String> {
        let (status, _, body) =
            http_get(self.addr, path, &[]).map_err(|e| format!("GET {path}: {e}"))?;
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("GET {path}: {status} {body}"));
        }
        Ok(v["data"].clone())
    }

    /// An instant query: its samples (a scalar counts as one).
    pub fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let data = self.get_json(&format!("/api/v1/query?query={}", urlencode(q)))?;
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                Ok(data["result"].as_array().cloned().unwrap_or_default())
            }
            Some("scalar") | Some("string") => {
                Ok(vec![json!({"metric": {}, "value": data["result"]})])
            }
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    /// Values of a label among the series that match a selector.
    pub fn label_values(&self, label: &str, selector: Option<&str>) -> Result<Vec<String>, String> {
        let mut path = format!("/api/v1/label/{label}/values");
        if let Some(s) = selector {
            path.push_str(&format!("?match[]={}", urlencode(s)));
        }
        let data = self.get_json(&path)?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A Prometheus that receives remote write (started with
/// `--web.enable-remote-write-receiver`) and evaluates the rules of
/// rules/policyreport.rules.yaml, as a Thanos or Mimir ruler would.
pub fn global_config() -> String {
    format!(
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n",
        rules_path().display()
    )
}

/// `static_configs` entries for the exporter replicas at `exporters`, with
/// the target labels the Prometheus Operator sets from a ServiceMonitor.
pub fn service_monitor_targets(exporters: &[std::net::SocketAddr]) -> String {
    let mut targets = String::new();
    for (i, addr) in exporters.iter().enumerate() {
        targets.push_str(&format!(
            "      - targets: ['{addr}']\n        labels: {{namespace: policyreport-exporter, pod: policyreport-exporter-{i}, service: policyreport-exporter, endpoint: http, container: exporter}}\n"
        ));
    }
    targets
}
