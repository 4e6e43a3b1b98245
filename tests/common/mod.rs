//! Shared helpers for integration tests: run the real binary, talk to it
//! over real HTTP, and parse what it serves.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running exporter process, killed on drop.
pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Start `policyreport-exporter serve ARGS` on a free loopback port.
    pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Exporter {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"));
        cmd.args([
            "--log-format",
            "json",
            "--log-level",
            "info,policyreport_exporter=debug",
            "serve",
        ])
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the exporter binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "listening"
                {
                    let _ = tx.send(v["address"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "exporter did not start listening; logs: {:#?}",
                    logs.lock().expect("log lock")
                );
            }
        };
        Exporter { child, addr, logs }
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
        let start = Instant::now();
        loop {
            if let Ok((200, _, _)) = self.get_with("/readyz", &[]) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "not ready after {timeout:?}; logs: {:#?}",
                self.logs.lock().expect("log lock")
            );
            std::thread::sleep(Duration::from_millis(25));
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
    pub fn terminate(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY-free: use the kill command rather than libc.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Log lines (JSON) seen so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, content_type, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Parsed samples: metric name → (sorted labels → value).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Metrics(pub BTreeMap<String, BTreeMap<Vec<(String, String)>, f64>>);

impl Metrics {
    /// Parse Prometheus text (or OpenMetrics) samples.
    pub fn parse(text: &str) -> Metrics {
        let mut out = Metrics::default();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let value: f64 = value.parse().expect("numeric sample value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (
                    n,
                    parse_labels(rest.strip_suffix('}').expect("closing brace")),
                ),
                None => (series, Vec::new()),
            };
            out.0
                .entry(name.to_owned())
                .or_default()
                .insert(labels, value);
        }
        out
    }

    /// Samples of one metric.
    pub fn family(&self, name: &str) -> BTreeMap<Vec<(String, String)>, f64> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    /// The value of a sample given as `name{a="b",...}` label pairs.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        key.sort();
        self.0.get(name)?.get(&key).copied()
    }

    /// Sum of all samples of a metric.
    pub fn sum(&self, name: &str) -> f64 {
        self.family(name).values().sum()
    }

    /// `policyreport_results` in a stable text form, for diffs.
    pub fn render_results(&self) -> String {
        render_family("policyreport_results", &self.family("policyreport_results"))
    }
}

/// Render samples sorted, one per line, labels sorted by name.
pub fn render_family(name: &str, samples: &BTreeMap<Vec<(String, String)>, f64>) -> String {
    let mut out = String::new();
    for (labels, v) in samples {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        out.push_str(&format!("{name}{{{}}} {v}\n", l.join(",")));
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label value starts with a quote");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((name.trim_start_matches(',').to_owned(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out.sort();
    out
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

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
