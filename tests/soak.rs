//! A soak: the exporter against the fake API server for 8 s (the
//! full-length run, `#[ignore]` so that `cargo test` stays quick and run by
//! `scripts/test`: `SOAK_SECONDS`, default 120) while reports, Events and
//! policies are created, updated and deleted, and faults are injected at
//! random (seeded by `SOAK_SEED`):
//! restarts with and without history, cut watches, compaction, 500s and
//! 429s, hanging requests with a short --request-timeout, outages, paged
//! lists cut half way, failing discovery and openreports coming and going.
//! When the faults stop and the exporter has caught up, the metrics must
//! equal a from-scratch computation (and the independent Python count) over
//! what the server holds.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{FakeCluster, Workload, assert_objects_held, data_text, unsynced};
use policyreport_exporter::kind::Kind;
use policyreport_test_support::metrics::Metrics;
use policyreport_test_support::rng::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The soak of `cargo test`: short enough for a quick developer loop.
#[test]
fn soak_with_random_faults_ends_exact() {
    soak("soak_with_random_faults_ends_exact", 5);
}

/// The full-length soak, run by `scripts/test` (`--include-ignored`).
#[test]
#[ignore = "full length (2 minutes): scripts/test runs it"]
fn soak_full_length_with_random_faults_ends_exact() {
    soak(
        "soak_full_length_with_random_faults_ends_exact",
        env_u64("SOAK_SECONDS", 120),
    );
}

fn soak(test: &str, seconds: u64) {
    // One soak at a time: each loads the machine on its own.
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = env_u64("SOAK_SEED", 20_261_127);
    println!("soak: {seconds} s, SOAK_SEED={seed}");
    let c = Arc::new(FakeCluster::start(&Kind::ALL));
    let mut w = Workload::new(seed, &Kind::ALL);
    w.invalid_rate = 0.05;
    w.populate(&c, 30, 20);
    let e = Arc::new(c.exporter(&[
        "--request-timeout",
        "3",
        "--discovery-interval",
        "1",
        "--page-size",
        "7",
    ]));
    e.wait_ready(Duration::from_secs(30));
    e.wait_data("initial", &c.expected(), Duration::from_secs(30));

    let stop = Arc::new(AtomicBool::new(false));
    // Changes: about 50 a second.
    let workload = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                w.step(&c);
                std::thread::sleep(Duration::from_millis(20));
            }
            w
        })
    };
    // Watch what clients see: /healthz must always answer; /readyz and
    // synced are sampled.
    let health_failures = Arc::new(AtomicU64::new(0));
    let not_ready = Arc::new(AtomicU64::new(0));
    let unsynced_samples = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let monitor = {
        let (e, stop) = (e.clone(), stop.clone());
        let (hf, nr, us, sa) = (
            health_failures.clone(),
            not_ready.clone(),
            unsynced_samples.clone(),
            samples.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                sa.fetch_add(1, Ordering::Relaxed);
                if !matches!(e.get_with("/healthz", &[]), Ok((200, _, _))) {
                    hf.fetch_add(1, Ordering::Relaxed);
                }
                if e.ready_status() != 200 {
                    nr.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok((200, _, body)) = e.get_with("/metrics", &[])
                    && !unsynced(&Metrics::parse(&body)).is_empty()
                {
                    us.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    // Faults, one every 1-4 s.
    let mut rng = Rng::new(seed ^ 0xFA17);
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut openreports = true;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1000 + rng.below(3000)));
        let fault = match rng.below(12) {
            0 => {
                c.server.bump_resource_versions(rng.below(1_000_000));
                c.restart();
                "restart (new resourceVersions)"
            }
            1 => {
                c.restart_keeping_history();
                "restart keeping history"
            }
            2 => {
                c.server.drop_watches();
                "watches cut"
            }
            3 => {
                c.server.compact();
                c.server.drop_watches();
                "compaction + watches cut"
            }
            4 => {
                c.server.fail_next(1 + rng.below(5) as usize, 500, None);
                c.server.drop_watches();
                "500s"
            }
            5 => {
                c.server.fail_next(1 + rng.below(3) as usize, 429, Some(1));
                c.server.drop_watches();
                "429s with Retry-After"
            }
            6 => {
                c.server.hang_next(1 + rng.below(3) as usize);
                c.server.drop_watches();
                "hanging requests"
            }
            7 => {
                c.stop();
                std::thread::sleep(Duration::from_millis(500 + rng.below(2500)));
                c.resume();
                "outage"
            }
            8 => {
                if openreports {
                    c.unserve_kind(Kind::Report);
                    c.unserve_kind(Kind::ClusterReport);
                } else {
                    c.serve_kind(Kind::Report);
                    c.serve_kind(Kind::ClusterReport);
                }
                openreports = !openreports;
                "openreports served/unserved"
            }
            9 => {
                c.server
                    .set_watch_drop_after(Some(1 + rng.below(20) as usize));
                c.server.drop_watches();
                std::thread::sleep(Duration::from_millis(rng.below(3000)));
                c.server.set_watch_drop_after(None);
                "watches ending after a few events"
            }
            10 => {
                c.server.reset_list_after_first_page(true);
                c.server.compact();
                c.server.drop_watches();
                std::thread::sleep(Duration::from_millis(rng.below(3000)));
                c.server.reset_list_after_first_page(false);
                "paged lists cut after page 1"
            }
            _ => {
                c.server
                    .fail_next_discovery(1 + rng.below(3) as usize, 500, None);
                "discovery 500s"
            }
        };
        *faults.entry(fault).or_default() += 1;
        assert_eq!(
            e.get("/healthz").0,
            200,
            "alive after {fault}; logs:\n{}",
            e.logs().join("\n")
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut w = workload.join().expect("workload");
    monitor.join().expect("monitor");

    // The faults stop; the exporter catches up.
    c.server.clear_faults();
    c.server.release_hangs();
    c.server.set_watch_drop_after(None);
    c.server.reset_list_after_first_page(false);
    c.resume();
    c.serve_kind(Kind::Report);
    c.serve_kind(Kind::ClusterReport);
    let caught_up = Instant::now();
    let synced = common::poll_until(Duration::from_secs(90), || {
        let m = e.metrics();
        if unsynced(&m).is_empty() && e.ready_status() == 200 {
            return true;
        }
        w.touch_all(&c);
        std::thread::sleep(Duration::from_millis(300));
        false
    });
    assert!(
        synced.is_some(),
        "not synced 90 s after the faults stopped: {:?}",
        unsynced(&e.metrics())
    );
    let want = c.expected();
    e.wait_data("after the soak", &want, Duration::from_secs(90));
    let caught_up = caught_up.elapsed();
    let m = e.metrics();
    assert_objects_held(&c, &m, "after the soak");
    // The independent Python count agrees too.
    let (_, body) = e.get("/metrics");
    let python = common::crosscheck(&c.objects(), &body)
        .unwrap_or_else(|diff| panic!("crosscheck disagrees:\n{diff}"));
    let mut e = Arc::try_unwrap(e).unwrap_or_else(|_| panic!("exporter still shared"));
    assert!(e.exited().is_none(), "still running");
    let series = data_text(&m).lines().count();
    let total_faults: u64 = faults.values().sum();
    println!(
        "SCOREBOARD soak::{test}: {seconds} s, seed {seed}: {} changes, {total_faults} faults \
         {faults:?}; /healthz failures {}; /readyz non-200 in {} of {} samples; synced=0 in {} samples; {} watch errors \
         counted, {} invalid objects; caught up {caught_up:.1?} after the faults stopped; {series} data series equal to \
         the from-scratch count; python: {}; peak RSS {} MiB",
        w.ops,
        health_failures.load(Ordering::Relaxed),
        not_ready.load(Ordering::Relaxed),
        samples.load(Ordering::Relaxed),
        unsynced_samples.load(Ordering::Relaxed),
        m.sum("policyreport_exporter_watch_errors_total"),
        m.sum("policyreport_exporter_invalid_objects_total"),
        python.trim(),
        e.status_kib("VmHWM").unwrap_or(0) / 1024
    );
    assert_eq!(
        health_failures.load(Ordering::Relaxed),
        0,
        "/healthz always answered"
    );
}
