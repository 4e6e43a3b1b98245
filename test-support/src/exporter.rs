//! The real exporter binary as a child process: spawning `serve` on a free
//! loopback port, collecting its JSON log lines, waiting for `/readyz`,
//! reading `/metrics`, and stopping it with SIGTERM (or killing it on drop).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::http::{HttpConn, get_once};

/// How long the exporter may take to log that it listens. Generous: an exit
/// ends the wait at once, so only a hang waits this long, and a start on two
/// busy cores can take seconds.
const LISTENING_TIMEOUT: Duration = Duration::from_secs(60);

/// What the tests and the benchmark want differently from the exporter's logs.
#[derive(Clone, Copy, Debug)]
pub struct Logging {
    /// `--log-level`.
    pub level: &'static str,
    /// The first this many lines are kept; later ones are dropped.
    pub keep_lines: usize,
}

impl Logging {
    /// For measurements: `info`, so that logging costs nothing measurable,
    /// and at most 10,000 lines kept, so that a soak of millions of events
    /// cannot grow the benchmark's memory.
    pub const BENCH: Logging = Logging {
        level: "info",
        keep_lines: 10_000,
    };

    /// For the tests: the exporter's own debug lines, which tests wait for,
    /// and every line, so that a late line is still found.
    pub const TESTS: Logging = Logging {
        level: "info,policyreport_exporter=debug",
        keep_lines: usize::MAX,
    };
}

/// The log lines of an exporter (JSON, one per line), shared with the
/// thread that reads its stderr.
pub type LogSink = Arc<Mutex<Vec<String>>>;

/// A running exporter process; killed on drop.
pub struct Exporter {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// The HTTP address it listens on.
    pub addr: SocketAddr,
    /// When it was spawned.
    pub started: Instant,
    logs: LogSink,
}

impl Exporter {
    /// Starts `BIN --log-format json serve --listen 127.0.0.1:0 ARGS` with
    /// the benchmark's [`Logging`] and waits for its "listening" log line.
    pub fn spawn(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Exporter> {
        Self::spawn_with(bin, args, env, Logging::BENCH, |_| {})
    }

    /// Like [`spawn`](Self::spawn) with `logging`, letting `configure`
    /// adjust the command first (for example to run as another user).
    /// `KUBECONFIG` is removed from the environment unless `env` sets it.
    pub fn spawn_with(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        logging: Logging,
        configure: impl FnOnce(&mut Command),
    ) -> Result<Exporter> {
        let mut cmd = Command::new(bin);
        cmd.args([
            "--log-format",
            "json",
            "--log-level",
            logging.level,
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
        configure(&mut cmd);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take().context("stderr is piped")?;
        let logs = LogSink::default();
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
                if logs.len() < logging.keep_lines {
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
        // Fails at once if the process exits: the reader thread drops `tx`.
        match rx.recv_timeout(LISTENING_TIMEOUT) {
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

    /// Log lines so far (JSON), at most [`Logging::keep_lines`].
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last `n` log lines, one per line, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let lines = self.logs();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The shared log lines, still filled after the exporter has been
    /// stopped and dropped (its last lines may arrive after its exit).
    pub fn log_sink(&self) -> LogSink {
        self.logs.clone()
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
                    self.log_tail(20)
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

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> Option<ExitStatus> {
        // SAFETY: kill(2) with the pid of a child we have not waited for.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit.
    pub fn stop(self, timeout: Duration) -> bool {
        self.terminate(timeout).is_some_and(|s| s.success())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
