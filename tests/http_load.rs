//! The HTTP server under load and against slow or hostile clients: `wrk` at
//! about 500 requests/s on /metrics while 1000 report updates/s flow in,
//! idle connections beyond the connection cap, headers sent slowly, and
//! paths that must be 404.
//!
//! Needs `wrk` (Debian package `wrk`). The tests in this file run one at a
//! time (they share the machine's CPU and the exporter's connection cap).
//! The load run is `#[ignore]`d in a plain `cargo test` (it needs a quiet
//! machine and takes its time); `scripts/test` runs it, for
//! `HTTP_LOAD_SECONDS` (default 30).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{Exporter, FakeCluster, Workload, repo};
use policyreport_exporter::kind::Kind;
use policyreport_test_support::http::http_get;
use policyreport_test_support::procfs;
use policyreport_test_support::rng::Rng;

const READY: Duration = Duration::from_secs(30);

/// One test of this file at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn examples_exporter() -> Exporter {
    let e = Exporter::serve(
        &["--files", &repo().join("examples").display().to_string()],
        &[],
    );
    e.wait_ready(READY);
    e
}

/// wrk's summary: requests/s, latency percentiles, and error lines.
#[derive(Debug, Default)]
struct WrkReport {
    requests: u64,
    rate: f64,
    percentiles: Vec<(String, String)>,
    errors: Vec<String>,
}

fn parse_wrk(out: &str) -> WrkReport {
    let mut r = WrkReport::default();
    let mut in_distribution = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            if let Some((p, v)) = t.split_once(char::is_whitespace)
                && p.ends_with('%')
            {
                r.percentiles.push((p.to_owned(), v.trim().to_owned()));
                continue;
            }
            in_distribution = false;
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rate = v.trim().parse().unwrap_or(0.0);
        }
        if t.contains("requests in") {
            r.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if t.starts_with("Non-2xx") || t.starts_with("Socket errors") {
            r.errors.push(t.to_owned());
        }
    }
    r
}

/// The full-length load run, run by `scripts/test` (`--include-ignored`).
#[test]
#[ignore = "full length (30 s of wrk): scripts/test runs it"]
fn metrics_at_500_rps_for_30_seconds_while_1000_updates_per_second_arrive() {
    let seconds = std::env::var("HTTP_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    load(
        "metrics_at_500_rps_for_30_seconds_while_1000_updates_per_second_arrive",
        seconds,
    );
}

fn load(test: &str, seconds: u64) {
    let _serial = serial();
    if let Err(e) = std::process::Command::new("wrk").arg("--version").output() {
        panic!("this test needs wrk (apt-get install wrk; scripts/test installs it): {e}");
    }
    let kinds = [Kind::PolicyReport, Kind::ClusterPolicyReport];
    let c = Arc::new(FakeCluster::start(&kinds));
    let mut w = Workload::new(500, &kinds);
    w.pool = 60;
    w.populate(&c, 180, 0);
    let e = Exporter::serve(&[], &[("KUBECONFIG", &c.kubeconfig)]);
    e.wait_ready(READY);
    e.wait_data("initial", &c.expected(), READY);
    let (_, body) = e.get("/metrics");

    // 1000 report updates per second, in batches of 10 every 10 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let updates = Arc::new(AtomicU64::new(0));
    let updater = {
        let (c, stop, updates) = (c.clone(), stop.clone(), updates.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(1000);
            let start = Instant::now();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..10 {
                    let ns = *rng.pick(&common::GEN_NAMESPACES);
                    let name = format!("r-{}", rng.below(60));
                    c.apply(common::gen_report(
                        &mut rng,
                        Kind::PolicyReport,
                        ns,
                        &name,
                        0.0,
                    ));
                    n += 1;
                }
                updates.store(n, Ordering::Relaxed);
                let due = start + Duration::from_millis(n);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            start.elapsed()
        })
    };

    // wrk has no rate limit: 10 connections that each wait 19 ms after a
    // response come to about 500 requests/s.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("pace.lua");
    std::fs::write(&script, "function delay()\n  return 19\nend\n").expect("script");
    let cpu_before = procfs::cpu_time(e.pid).unwrap_or_default().as_secs_f64();
    let out = std::process::Command::new("wrk")
        .args([
            "-t2",
            "-c10",
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "5s",
        ])
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{}/metrics", e.addr))
        .output()
        .expect("run wrk");
    let cpu = procfs::cpu_time(e.pid).unwrap_or_default().as_secs_f64() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let updating = updater.join().expect("updater");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = parse_wrk(&text);
    println!("{text}");
    let applied = updates.load(Ordering::Relaxed);
    let update_rate = applied as f64 / updating.as_secs_f64();
    assert!(
        report.errors.is_empty(),
        "errors under load: {:?}\n{text}",
        report.errors
    );
    assert!(
        report.rate > 300.0,
        "about 500 requests/s expected, got {}\n{text}",
        report.rate
    );
    assert!(
        update_rate > 800.0,
        "about 1000 updates/s expected, got {update_rate:.0}"
    );
    let p99 = report
        .percentiles
        .iter()
        .find(|(p, _)| p == "99%")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let p50 = report
        .percentiles
        .iter()
        .find(|(p, _)| p == "50%")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // Still exact once the updates stop.
    let caught_up = e.wait_data("after the load", &c.expected(), READY);
    assert_eq!(e.get("/healthz").0, 200);
    let rss = e.status_kib("VmHWM").unwrap_or(0) / 1024;
    println!(
        "SCOREBOARD http_load::{test}: {seconds} s, {} requests at \
         {:.0} req/s on /metrics ({} KB body), 0 errors, 0 non-2xx, latency p50 {p50} p99 {p99}; {applied} report \
         updates at {update_rate:.0}/s; the exporter used {cpu:.1} CPU-seconds ({:.0}% of a core); exact {caught_up:.1?} \
         after the updates stopped; peak RSS {rss} MiB",
        report.requests,
        report.rate,
        body.len() / 1000,
        100.0 * cpu / seconds as f64
    );
}

/// Whether a connection was closed by the server within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn idle_connections_beyond_the_cap_cannot_lock_out_a_scrape() {
    let _serial = serial();
    let e = examples_exporter();
    let start = Instant::now();
    let mut idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(e.addr).expect("connect"))
        .collect();
    // Those beyond the cap of 256 are closed at once (as soon as the
    // exporter accepts them; allow a loaded machine some time for that).
    let mut closed = vec![false; idle.len()];
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until && closed.iter().filter(|c| **c).count() < 44 {
        for (s, c) in idle.iter_mut().zip(closed.iter_mut()) {
            if !*c {
                *c = closed_within(s, Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed_at_once = closed.iter().filter(|c| **c).count();
    // A new client: answered once the idle connections' header timeout
    // (5 s) frees slots, if not at once.
    let mut first_try = None;
    let answered = common::poll_until(Duration::from_secs(15), || {
        let ok = matches!(
            http_get(e.addr, "/metrics", &[]),
            Ok((200, _, ref body)) if body.contains("policyreport_results")
        );
        first_try.get_or_insert(ok);
        ok
    });
    let answered_after = start.elapsed();
    // And the idle ones were closed by the header timeout.
    let deadline = Instant::now() + Duration::from_secs(8);
    let closed_later = idle
        .iter_mut()
        .map(|s| {
            let left = deadline.saturating_duration_since(Instant::now());
            closed_within(s, left.max(Duration::from_millis(1)))
        })
        .filter(|closed| *closed)
        .count();
    println!(
        "SCOREBOARD http_load::idle_connections_beyond_the_cap_cannot_lock_out_a_scrape: 300 idle connections: \
         {closed_at_once} closed at once (cap 256), all 300 closed by the header timeout ({closed_later} seen \
         closed); a new client's /metrics answered {} after the idle connections opened (first try {})",
        answered.map_or("never".to_owned(), |_| format!("{answered_after:.1?}")),
        if first_try == Some(true) {
            "answered"
        } else {
            "refused"
        }
    );
    assert!(answered.is_some(), "/metrics never answered a new client");
    assert!(
        closed_at_once >= 40,
        "the cap closed the excess: {closed_at_once}"
    );
    assert_eq!(closed_later, 300, "idle connections are not held forever");
    assert!(
        answered_after < Duration::from_secs(8),
        "a new client waited {answered_after:?}"
    );
}

#[test]
fn headers_sent_slowly_are_cut_after_about_5_seconds() {
    let _serial = serial();
    let e = examples_exporter();
    let mut s = TcpStream::connect(e.addr).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let start = Instant::now();
    let mut cut = None;
    for i in 0..15 {
        std::thread::sleep(Duration::from_secs(1));
        if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .is_err()
            || closed_within(&mut s, Duration::from_millis(1))
        {
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("the connection was cut");
    // The server still answers others.
    assert_eq!(e.get("/healthz").0, 200);
    println!(
        "SCOREBOARD http_load::headers_sent_slowly_are_cut_after_about_5_seconds: one header line per second: \
         connection closed after {cut:.1?}; other clients unaffected"
    );
    assert!(
        cut >= Duration::from_secs(4) && cut <= Duration::from_secs(8),
        "cut after {cut:?}"
    );
}

/// GET with the path sent exactly as given (no normalisation).
fn raw_status(addr: std::net::SocketAddr, request_line: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(format!("{request_line}\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn other_paths_are_404() {
    let _serial = serial();
    let e = examples_exporter();
    let paths = [
        "/debug/pprof",
        "/debug/pprof/heap",
        "/metrics/../x",
        "/metrics/",
        "/metricsx",
        "/favicon.ico",
        "/.env",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/../../etc/passwd",
        "/healthz/../metrics",
        "/readyz?verbose",
        "//metrics",
    ];
    let mut got = Vec::new();
    for p in paths {
        let status = raw_status(e.addr, &format!("GET {p} HTTP/1.1"));
        got.push((p, status));
    }
    let ok: Vec<_> = ["/", "/metrics", "/healthz", "/readyz"]
        .iter()
        .map(|p| (*p, raw_status(e.addr, &format!("GET {p} HTTP/1.1"))))
        .collect();
    let post = raw_status(e.addr, "POST /metrics HTTP/1.1");
    println!(
        "SCOREBOARD http_load::other_paths_are_404: {got:?}; served: {ok:?}; POST /metrics -> {post}"
    );
    for (p, status) in &got {
        if *p == "/readyz?verbose" {
            assert_eq!(*status, 200, "a query string does not change the route");
        } else {
            assert_eq!(*status, 404, "{p}");
        }
    }
    assert!(ok.iter().all(|(_, s)| *s == 200), "{ok:?}");
    assert_ne!(post, 200, "only GET is served");
}
