//! Running the real exporter binary as a separate process and talking to it
//! over HTTP: finding or building the binary, spawning it, waiting for
//! `/readyz`, a keep-alive HTTP client, and parsing `/metrics`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

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

/// A running exporter process; killed on drop.
pub struct Exporter {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// The HTTP address it listens on.
    pub addr: SocketAddr,
    /// When it was spawned.
    pub started: Instant,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts `BIN --log-format json serve --listen 127.0.0.1:0 ARGS` and
    /// waits for its "listening" log line.
    pub fn spawn(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Exporter> {
        let mut cmd = Command::new(bin);
        cmd.args(["--log-format", "json", "--log-level", "info", "serve"])
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take().context("stderr is piped")?;
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
                let mut logs = sink.lock().unwrap_or_else(|e| e.into_inner());
                if logs.len() < 10_000 {
                    logs.push(line);
                }
            }
        });
        let mut exporter = Exporter {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            started,
            logs,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => {
                exporter.addr = a.parse().context("listening address")?;
                Ok(exporter)
            }
            Err(_) => bail!(
                "the exporter did not start listening; logs:\n{}",
                exporter.logs().join("\n")
            ),
        }
    }

    /// Log lines so far (JSON), at most the first 10 000.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Polls `/readyz` every `every` until it answers 200; returns the time
    /// since the process was spawned.
    pub fn wait_ready(&self, timeout: Duration, every: Duration) -> Result<Duration> {
        loop {
            if let Ok((200, _)) = get_once(self.addr, "/readyz") {
                return Ok(self.started.elapsed());
            }
            if self.started.elapsed() > timeout {
                bail!(
                    "not ready after {timeout:?}; last logs:\n{}",
                    tail(&self.logs(), 20)
                );
            }
            std::thread::sleep(every);
        }
    }

    /// The current `/metrics` text.
    pub fn metrics(&self) -> Result<String> {
        let (status, body) = get_once(self.addr, "/metrics")?;
        if status != 200 {
            bail!("GET /metrics: {status}");
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// A keep-alive connection to the exporter.
    pub fn connect(&self) -> Result<HttpConn> {
        Ok(HttpConn::connect(self.addr)?)
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit.
    pub fn stop(mut self, timeout: Duration) -> bool {
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One GET on a fresh connection.
pub fn get_once(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    HttpConn::connect(addr)?.get(path)
}

/// A minimal HTTP/1.1 keep-alive client, enough for the exporter's answers
/// (Content-Length or chunked bodies).
pub struct HttpConn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl HttpConn {
    /// Connects.
    pub fn connect(addr: SocketAddr) -> std::io::Result<HttpConn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(HttpConn {
            addr,
            reader: BufReader::with_capacity(256 * 1024, s),
        })
    }

    /// GET `path`; returns the status and body. Reconnects once if the
    /// server closed the connection.
    pub fn get(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let mut body = Vec::new();
        let status = self.get_into(path, &mut body)?;
        Ok((status, body))
    }

    /// Like [`get`](Self::get), reading the body into `body` (cleared first),
    /// so that a caller polling in a loop reuses one buffer.
    pub fn get_into(&mut self, path: &str, body: &mut Vec<u8>) -> std::io::Result<u16> {
        match self.try_get(path, body) {
            Ok(r) => Ok(r),
            Err(_) => {
                *self = HttpConn::connect(self.addr)?;
                self.try_get(path, body)
            }
        }
    }

    fn try_get(&mut self, path: &str, body: &mut Vec<u8>) -> std::io::Result<u16> {
        body.clear();
        let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/plain\r\n\r\n");
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim();
                if k == "content-length" {
                    length = v.parse::<usize>().ok();
                } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                let start = body.len();
                body.resize(start + n, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if n == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.reader.read_exact(body)?;
        } else {
            self.reader.read_to_end(body)?;
        }
        Ok(status)
    }
}

/// The label pairs of one sample line, unescaped.
fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim_start_matches(',').trim().to_owned();
        if name.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            break;
        }
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
        out.push((name, value));
    }
    out
}

/// A sample's label pairs.
type Labels = Vec<(String, String)>;

/// Splits a sample line into name, labels and value.
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    match series.split_once('{') {
        Some((name, rest)) => Some((name, parse_labels(rest.strip_suffix('}')?), value)),
        None => Some((series, Vec::new(), value)),
    }
}

/// The `policyreport_results` series of a `/metrics` text, keyed like
/// [`crate::reportgen::expected_counts`]. Extra labels are folded together.
pub fn parse_results(text: &str) -> Counts {
    let mut out = Counts::new();
    for line in text.lines() {
        if !line.starts_with("policyreport_results{") {
            continue;
        }
        let Some((_, labels, value)) = parse_sample(line) else {
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

/// The value of a sample with exactly these labels (any order), if present.
pub fn sample_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (n, l, v) = parse_sample(line)?;
        (n == name
            && l.len() == labels.len()
            && labels
                .iter()
                .all(|(k, val)| l.iter().any(|(a, b)| a == k && b == val)))
        .then_some(v)
    })
}

/// Every sample of the metric `name`: its labels (by name) and value.
pub fn samples(text: &str, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(parse_sample)
        .filter(|(n, _, _)| *n == name)
        .map(|(_, labels, v)| (labels.into_iter().collect(), v))
        .collect()
}

/// Sum of `policyreport_results` samples whose line contains every one of
/// `needles` (such as `policy="x"`): a fast scan for polling. Only the lines
/// holding the first needle are looked at, found with a SIMD substring search.
pub fn sum_results_with(text: &[u8], needles: &[&str]) -> u64 {
    const PREFIX: &[u8] = b"policyreport_results{";
    let Some((first, rest)) = needles.split_first() else {
        return text
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(PREFIX))
            .map(line_value)
            .sum();
    };
    let mut sum = 0;
    let mut from = 0;
    let finder = memchr::memmem::Finder::new(first.as_bytes());
    while let Some(i) = finder.find(&text[from..]) {
        let at = from + i;
        let start = memchr::memrchr(b'\n', &text[..at]).map_or(0, |n| n + 1);
        let end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |n| at + n);
        let line = &text[start..end];
        if line.starts_with(PREFIX)
            && rest
                .iter()
                .all(|n| memchr::memmem::find(line, n.as_bytes()).is_some())
        {
            sum += line_value(line);
        }
        from = end;
    }
    sum
}

/// The value of a sample line (after its last space), truncated to an integer; 0 if unparsable.
fn line_value(line: &[u8]) -> u64 {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    memchr::memrchr(b' ', line)
        .and_then(|i| std::str::from_utf8(&line[i + 1..]).ok())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results_and_samples() {
        let text = "# HELP x\npolicyreport_results{namespace=\"a\",policy=\"p\",category=\"C, D\",severity=\"\",source=\"kyverno\",result=\"fail\"} 3\n\
                    policyreport_exporter_objects{resource=\"r\"} 7\n";
        let r = parse_results(text);
        assert_eq!(r.len(), 1);
        let (k, v) = r.iter().next().unwrap();
        assert_eq!(k[2], "C, D");
        assert_eq!(*v, 3);
        assert_eq!(
            sample_value(text, "policyreport_exporter_objects", &[("resource", "r")]),
            Some(7.0)
        );
        assert_eq!(
            sum_results_with(text.as_bytes(), &["policy=\"p\"", "result=\"fail\""]),
            3
        );
        assert_eq!(sum_results_with(text.as_bytes(), &["result=\"pass\""]), 0);
    }
}
