//! Fault tests: the real binary against the project's fake Kubernetes API
//! server while the server misbehaves. Every test ends by comparing the
//! served data families (results, control resources, blocked admissions,
//! policy info) with a from-scratch computation over what the server holds
//! at the end, and checks that `/readyz` and `policyreport_exporter_synced`
//! told the truth while the exporter recovered.
//!
//! Each test prints one `SCOREBOARD` line with what it observed (run with
//! `--nocapture` to see them); docs/reliability.md collects them.

mod common;

use std::time::{Duration, Instant};

use common::{
    Exporter, FakeCluster, Workload, assert_objects_held, data_text, poll_until, unsynced,
};
use policyreport_exporter::kind::Kind;
use policyreport_test_support::metrics::Metrics;
use policyreport_test_support::rng::Rng;

/// Generous: the machine running the tests may be loaded.
const READY: Duration = Duration::from_secs(30);
/// Recovery includes kube-rs's backoff (0.8 s doubling to 30 s, with jitter).
const CONVERGE: Duration = Duration::from_secs(60);

/// How long the retry storms last: long enough for several retries of
/// kube-rs's backoff (0.8 s, 1.6 s, 3.2 s, with jitter).
const STORM: Duration = Duration::from_secs(6);

const REPORT_RESOURCE: &str = "policyreports.wgpolicyk8s.io";

fn errors(m: &Metrics) -> f64 {
    m.sum("policyreport_exporter_watch_errors_total")
}

fn errors_of(m: &Metrics, resource: &str) -> f64 {
    m.value(
        "policyreport_exporter_watch_errors_total",
        &[("resource", resource)],
    )
    .unwrap_or(0.0)
}

/// List requests the watchers made (discovery requests carry no `limit`).
fn list_requests(c: &FakeCluster) -> usize {
    c.server
        .requests()
        .iter()
        .filter(|r| !r.is_watch() && r.param("limit").is_some())
        .count()
}

/// Touch every kind until every target reports synced again (a watch that
/// failed is healthy again at its next successful event). Returns how long.
fn touch_until_synced(c: &FakeCluster, w: &mut Workload, e: &Exporter) -> Duration {
    let start = Instant::now();
    loop {
        let m = e.metrics();
        let pending = unsynced(&m);
        if pending.is_empty() && !m.family("policyreport_exporter_synced").is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < CONVERGE,
            "still not synced after {CONVERGE:?}: {pending:?}; logs:\n{}",
            e.logs().join("\n")
        );
        w.touch_all(c);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The end of every test: every target synced, /readyz 200, the data
/// families equal to the from-scratch computation, and the object gauges
/// equal to what the server holds. Returns the convergence time.
fn settle(c: &FakeCluster, w: &mut Workload, e: &Exporter, what: &str) -> Duration {
    let synced_in = touch_until_synced(c, w, e);
    let converged_in = e.wait_data(what, &c.expected(), CONVERGE);
    assert_eq!(e.ready_status(), 200, "{what}: ready at the end");
    assert_objects_held(c, &e.metrics(), what);
    synced_in + converged_in
}

/// A cluster with every kind, populated, and an exporter that has synced.
fn running(seed: u64, kinds: &[Kind], args: &[&str]) -> (FakeCluster, Workload, Exporter) {
    let c = FakeCluster::start(kinds);
    let mut w = Workload::new(seed, kinds);
    w.populate(&c, 24, 10);
    let e = c.exporter(args);
    e.wait_ready(READY);
    e.wait_data("initial sync", &c.expected(), CONVERGE);
    (c, w, e)
}

fn warn_lines(e: &Exporter) -> usize {
    e.count_logs("WARN", "watch failed")
}

#[test]
fn a_watch_answered_with_410_gone_repeatedly_relists_exactly() {
    let (c, mut w, e) = running(410, &Kind::ALL, &[]);
    let lists = list_requests(&c);
    let mut recoveries = Vec::new();
    for cycle in 0..5 {
        // Take the server away, change (and delete) objects, and forget the
        // history: the watchers come back from a resourceVersion older than
        // the compaction point and get 410 Gone.
        c.stop();
        for _ in 0..25 {
            w.step(&c);
        }
        w.touch_all(&c);
        c.server.compact();
        c.resume();
        let start = Instant::now();
        e.wait_data(&format!("cycle {cycle}"), &c.expected(), CONVERGE);
        recoveries.push(start.elapsed());
        assert_eq!(e.ready_status(), 200, "stays ready during relists");
    }
    let relists = list_requests(&c) - lists;
    assert!(relists >= 5, "each cycle relisted: {relists} lists");
    let gone = e
        .log_json()
        .iter()
        .filter(|v| v.to_string().contains("too old resource version"))
        .count();
    assert!(gone >= 5, "410 Gone seen at least once per cycle: {gone}");
    let expired = e
        .metrics()
        .family("policyreport_exporter_relists_total")
        .into_iter()
        .filter(|(labels, _)| labels.iter().any(|(k, v)| k == "reason" && v == "expired"))
        .map(|(_, v)| v)
        .sum::<f64>();
    assert!(expired >= 5.0, "relists counted as expired: {expired}");
    let total = settle(&c, &mut w, &e, "after 410 cycles");
    let worst = recoveries.iter().max().copied().unwrap_or_default();
    println!(
        "SCOREBOARD faults::a_watch_answered_with_410_gone_repeatedly_relists_exactly: 5 cycles, \
         {relists} relists, {gone} log lines with 410, worst recovery {worst:.1?}, final settle {total:.1?}, \
         watch errors {}",
        errors(&e.metrics())
    );
}

#[test]
fn api_server_restart_with_new_resource_versions() {
    let (c, mut w, e) = running(7, &Kind::ALL, &[]);
    let before = errors(&e.metrics());
    c.stop();
    // While the server is away: synced goes to 0 once an error is counted,
    // and /readyz stays 200 (the initial lists completed long ago).
    let seen_down = poll_until(CONVERGE, || {
        let m = e.metrics();
        errors(&m) > before && e.synced(&m, REPORT_RESOURCE) == Some(0.0)
    })
    .expect("synced=0 and an error counted while the server is stopped");
    assert_eq!(
        e.ready_status(),
        200,
        "stays ready while the server is down"
    );
    for _ in 0..40 {
        w.step(&c);
    }
    c.server.bump_resource_versions(1_000_000);
    let rv = c.server.resource_version();
    let down_at = Instant::now();
    c.restart();
    let converged = e.wait_data("after restart", &c.expected(), CONVERGE);
    let watched_new = c.server.requests().iter().any(|r| {
        r.is_watch()
            && r.param("resourceVersion")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v > rv)
    });
    assert!(watched_new, "watches resumed from the new resourceVersions");
    let total = settle(&c, &mut w, &e, "after restart");
    println!(
        "SCOREBOARD faults::api_server_restart_with_new_resource_versions: synced=0 seen {seen_down:.1?} \
         after stop, data exact {converged:.1?} after restart (+{:.1?} to settle), rv jumped past {rv}, \
         watch errors {}",
        down_at.elapsed().saturating_sub(converged),
        errors(&e.metrics()) - before
    );
    let _ = total;
}

#[test]
fn connection_reset_in_the_middle_of_a_paged_list() {
    let kinds = [Kind::PolicyReport, Kind::ClusterPolicyReport];
    let c = FakeCluster::start(&kinds);
    let mut w = Workload::new(22, &kinds);
    w.populate(&c, 24, 0);
    c.server.reset_list_after_first_page(true);
    let e = c.exporter(&["--page-size", "2"]);
    // The initial list never completes: not ready, errors counted, and
    // nothing of the first pages is published.
    poll_until(CONVERGE, || errors_of(&e.metrics(), REPORT_RESOURCE) >= 2.0)
        .expect("failed lists counted");
    let (status, body) = e.get("/readyz");
    assert_eq!(status, 503, "not ready while the list keeps failing");
    assert!(body.contains(REPORT_RESOURCE), "{body}");
    let m = e.metrics();
    assert_eq!(e.synced(&m, REPORT_RESOURCE), Some(0.0));
    assert_eq!(data_text(&m), "", "no partial list is published");

    let start = Instant::now();
    c.server.reset_list_after_first_page(false);
    e.wait_ready(CONVERGE);
    let initial = e.wait_data("initial", &c.expected(), CONVERGE);
    let first_ready = start.elapsed().max(initial);

    // A relist that keeps failing half way keeps serving the old state.
    let old = data_text(&e.metrics());
    let lists = list_requests(&c);
    let warns = warn_lines(&e);
    let errs = errors(&e.metrics());
    c.server.reset_list_after_first_page(true);
    c.stop();
    for _ in 0..30 {
        w.step(&c);
    }
    w.touch_all(&c);
    c.server.compact();
    c.resume();
    poll_until(CONVERGE, || list_requests(&c) >= lists + 4).expect("relists retried");
    for _ in 0..10 {
        assert_eq!(
            data_text(&e.metrics()),
            old,
            "the old state is kept while the relist fails"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(e.ready_status(), 200);
    let storm_errors = errors(&e.metrics()) - errs;
    let storm_warns = warn_lines(&e) - warns;
    c.server.reset_list_after_first_page(false);
    let recovered = e.wait_data("after the resets", &c.expected(), CONVERGE);
    settle(&c, &mut w, &e, "after the resets");
    println!(
        "SCOREBOARD faults::connection_reset_in_the_middle_of_a_paged_list: initial list exact {first_ready:.1?} \
         after resets stopped; mid-life relist: {} lists retried, {storm_errors} errors, {storm_warns} warn lines, \
         old state served throughout, exact {recovered:.1?} after resets stopped",
        list_requests(&c) - lists
    );
}

#[test]
fn connection_reset_in_the_middle_of_a_watch() {
    let (c, mut w, e) = running(33, &Kind::ALL, &[]);
    let before = errors(&e.metrics());
    let watches = c.server.requests().iter().filter(|r| r.is_watch()).count();
    let warns: usize = e.log_json().iter().filter(|v| v["level"] == "WARN").count();
    // Watches started from now on end cleanly after 3 events; every 50
    // changes all open watches are also cut abruptly (no final chunk).
    c.server.set_watch_drop_after(Some(3));
    let mut drops = 0;
    for i in 0..400 {
        w.step(&c);
        if i % 50 == 0 {
            c.server.drop_watches();
            drops += 1;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    c.server.set_watch_drop_after(None);
    c.server.drop_watches();
    drops += 1;
    let converged = e.wait_data("after watch resets", &c.expected(), CONVERGE);
    let rewatches = c.server.requests().iter().filter(|r| r.is_watch()).count() - watches;
    assert!(
        rewatches >= drops,
        "the watches resumed after each cut: {rewatches} re-watches"
    );
    // kube-rs ends a watch whose body is cut (unexpected EOF) like a clean
    // end and resumes it from its resourceVersion: not a failed request.
    let errs = errors(&e.metrics()) - before;
    let all_warns: Vec<String> = e
        .log_json()
        .iter()
        .filter(|v| v["level"] == "WARN")
        .skip(warns)
        .map(|v| format!("{}: {}", v["target"], v["message"]))
        .collect();
    let mut by_message: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in &all_warns {
        *by_message.entry(l.as_str()).or_default() += 1;
    }
    let total = settle(&c, &mut w, &e, "after watch resets");
    println!(
        "SCOREBOARD faults::connection_reset_in_the_middle_of_a_watch: 400 changes, {drops} abrupt cuts of all {} watches + \
         clean ends every 3 events: {rewatches} re-watches, {errs} errors counted, exact {converged:.1?} after the last cut \
         (settled {total:.1?}); WARN lines meanwhile: {by_message:?}",
        Kind::ALL.len()
    );
}

#[test]
fn responses_of_500_and_429_with_retry_after() {
    let kinds = [
        Kind::PolicyReport,
        Kind::ClusterPolicyReport,
        Kind::Event,
        Kind::ClusterPolicy,
    ];
    let c = FakeCluster::start(&kinds);
    let mut w = Workload::new(500, &kinds);
    w.populate(&c, 24, 10);
    // The first three list requests fail with 500.
    c.server.fail_next(3, 500, None);
    let e = c.exporter(&[]);
    e.wait_ready(READY);
    e.wait_data("initial", &c.expected(), CONVERGE);
    assert_eq!(errors(&e.metrics()), 3.0, "each 500 is counted once");

    // A storm of 500s: every watch cut (kube-rs resumes cut watches at once),
    // and the next 8 requests fail.
    let warns = warn_lines(&e);
    let before = errors(&e.metrics());
    c.server.fail_next(8, 500, None);
    c.server.drop_watches();
    let down = poll_until(CONVERGE, || {
        let m = e.metrics();
        errors(&m) >= before + 8.0 && !unsynced(&m).is_empty()
    })
    .expect("8 500s counted, synced=0 meanwhile");
    assert_eq!(e.ready_status(), 200);
    for _ in 0..20 {
        w.step(&c);
    }
    let after_500 = settle(&c, &mut w, &e, "after 500s");
    let storm_warns = warn_lines(&e) - warns;
    let storm_errors = errors(&e.metrics()) - before;
    assert!(
        storm_warns <= kinds.len(),
        "at most one warn per watch for a streak: {storm_warns} warns for {storm_errors} errors"
    );

    // 429 with Retry-After: 1 s (kube's client retries these itself).
    let before = errors(&e.metrics());
    let start = Instant::now();
    c.server.fail_next(4, 429, Some(1));
    c.server.drop_watches();
    for _ in 0..20 {
        w.step(&c);
    }
    let after_429 = e.wait_data("after 429s", &c.expected(), CONVERGE);
    let settled = settle(&c, &mut w, &e, "after 429s");
    let retried = c
        .server
        .requests()
        .iter()
        .filter(|r| r.param("limit").is_some() || r.is_watch())
        .count();
    println!(
        "SCOREBOARD faults::responses_of_500_and_429_with_retry_after: 3 initial 500s counted exactly; storm of 8 500s + \
         4 drops: {storm_errors} errors, {storm_warns} warn lines, synced=0 seen after {down:.1?}, exact {after_500:.1?}; \
         4 429s (Retry-After 1): {} errors counted, exact {after_429:.1?} ({:.1?} incl. settle), {retried} list/watch requests logged",
        errors(&e.metrics()) - before,
        start.elapsed().max(settled)
    );
}

#[test]
fn a_hanging_response_times_out_and_is_retried() {
    let kinds = [Kind::PolicyReport, Kind::ClusterPolicyReport, Kind::Event];
    let c = FakeCluster::start(&kinds);
    let mut w = Workload::new(2, &kinds);
    w.populate(&c, 24, 10);
    c.server.hang_next(1);
    let start = Instant::now();
    let e = c.exporter(&["--request-timeout", "2"]);
    poll_until(READY, || {
        c.server
            .requests()
            .iter()
            .any(|r| r.param("limit").is_some())
    })
    .expect("a list request arrived");
    assert_eq!(
        e.ready_status(),
        503,
        "not ready while the first list hangs"
    );
    e.wait_ready(READY);
    let ready_in = start.elapsed();
    assert!(
        ready_in >= Duration::from_millis(1500),
        "ready only once the hanging list timed out: {ready_in:?}"
    );
    e.wait_data("initial", &c.expected(), CONVERGE);
    assert!(errors(&e.metrics()) >= 1.0, "the timeout was counted");

    // Mid-life: the reconnecting watches hang and time out.
    let before = errors(&e.metrics());
    c.server.hang_next(2);
    c.server.drop_watches();
    for _ in 0..20 {
        w.step(&c);
    }
    let t = Instant::now();
    poll_until(CONVERGE, || errors(&e.metrics()) >= before + 2.0).expect("2 timeouts counted");
    let counted = t.elapsed();
    let converged = e.wait_data("after hangs", &c.expected(), CONVERGE);
    settle(&c, &mut w, &e, "after hangs");
    c.server.release_hangs();
    println!(
        "SCOREBOARD faults::a_hanging_response_times_out_and_is_retried: --request-timeout 2: initial list hung, \
         ready after {ready_in:.1?}; 2 hung re-watches timed out and counted within {counted:.1?}, exact {:.1?} after the drop",
        counted.max(converged)
    );
}

#[test]
fn reports_deleted_while_the_watch_was_down_disappear() {
    let (c, mut w, e) = running(404, &Kind::ALL, &[]);
    let count = |c: &FakeCluster| -> usize {
        common::report_kinds()
            .into_iter()
            .map(|k| c.server.objects(&FakeCluster::def(k)).len())
            .sum()
    };
    let delete_some = |c: &FakeCluster, n: usize| {
        for kind in common::report_kinds() {
            let objects = c.server.objects(&FakeCluster::def(kind));
            for o in objects.iter().take(n) {
                let name = o["metadata"]["name"].as_str().expect("name");
                let ns = o["metadata"]["namespace"].as_str();
                assert!(c.delete(kind, ns, name));
            }
        }
    };
    let total = count(&c);
    // History kept: the watches resume and replay the DELETED events.
    c.stop();
    delete_some(&c, 4);
    c.resume();
    let replayed = e.wait_data("deletes replayed", &c.expected(), CONVERGE);
    // History lost: the watches get 410 and relist; the relist drops them.
    c.stop();
    delete_some(&c, 4);
    c.server.compact();
    c.resume();
    let relisted = e.wait_data("deletes by relist", &c.expected(), CONVERGE);
    let left = count(&c);
    assert_eq!(left, total - 32);
    settle(&c, &mut w, &e, "after deletes");
    println!(
        "SCOREBOARD faults::reports_deleted_while_the_watch_was_down_disappear: {total} reports, 16 deleted while \
         down and replayed from history (exact in {replayed:.1?}), 16 more deleted with history compacted \
         (exact by relist in {relisted:.1?}); objects gauge = {left} = server"
    );
}

#[test]
fn a_burst_of_10k_updates_to_the_same_reports() {
    let kinds = [Kind::PolicyReport, Kind::ClusterPolicyReport];
    let c = FakeCluster::start(&kinds);
    let mut w = Workload::new(10_000, &kinds);
    w.populate(&c, 10, 0);
    let e = c.exporter(&[]);
    e.wait_ready(READY);
    e.wait_data("initial", &c.expected(), CONVERGE);
    let start = Instant::now();
    let mut rng = Rng::new(99);
    for i in 0..10_000u64 {
        let ns = common::GEN_NAMESPACES[(i % 3) as usize];
        let name = format!("r-{}", (i / 3) % 4);
        c.apply(common::gen_report(
            &mut rng,
            Kind::PolicyReport,
            ns,
            &name,
            0.0,
        ));
    }
    let applied = start.elapsed();
    let converged = e.wait_data("after the burst", &c.expected(), CONVERGE);
    let m = e.metrics();
    assert_eq!(
        m.value(
            "policyreport_exporter_objects",
            &[("resource", REPORT_RESOURCE)]
        ),
        Some(
            c.server
                .objects(&FakeCluster::def(Kind::PolicyReport))
                .len() as f64
        )
    );
    let errs = errors(&m);
    settle(&c, &mut w, &e, "after the burst");
    println!(
        "SCOREBOARD faults::a_burst_of_10k_updates_to_the_same_reports: 10000 updates to 12 reports applied in \
         {applied:.1?}; exact {converged:.1?} after the last one; {errs} watch errors (lagging watch closed by the server)"
    );
}

#[test]
fn openreports_appearing_later_is_watched_and_dropped_when_it_goes() {
    let kinds = [
        Kind::PolicyReport,
        Kind::ClusterPolicyReport,
        Kind::Event,
        Kind::ClusterPolicy,
    ];
    let c = FakeCluster::start(&kinds);
    let mut w = Workload::new(
        77,
        &[
            Kind::PolicyReport,
            Kind::ClusterPolicyReport,
            Kind::Report,
            Kind::ClusterReport,
            Kind::Event,
            Kind::ClusterPolicy,
        ],
    );
    // openreports objects exist in the store but the kinds are not served yet.
    w.populate(&c, 24, 10);
    let e = c.exporter(&["--discovery-interval", "1"]);
    e.wait_ready(READY);
    e.wait_data("without openreports", &c.expected(), CONVERGE);
    let m = e.metrics();
    assert_eq!(e.synced(&m, "reports.openreports.io"), None);

    let start = Instant::now();
    c.serve_kind(Kind::Report);
    c.serve_kind(Kind::ClusterReport);
    let appeared = e.wait_data("openreports appeared", &c.expected(), CONVERGE);
    let m = e.wait_for("openreports synced", CONVERGE, |m| {
        m.value(
            "policyreport_exporter_synced",
            &[("resource", "reports.openreports.io")],
        ) == Some(1.0)
            && m.value(
                "policyreport_exporter_synced",
                &[("resource", "clusterreports.openreports.io")],
            ) == Some(1.0)
    });
    assert!(
        m.value(
            "policyreport_exporter_objects",
            &[("resource", "reports.openreports.io")]
        )
        .is_some_and(|n| n > 0.0)
    );
    let appeared_total = start.elapsed().max(appeared);

    let start = Instant::now();
    c.unserve_kind(Kind::Report);
    c.unserve_kind(Kind::ClusterReport);
    let gone = e.wait_data("openreports gone", &c.expected(), CONVERGE);
    let m = e.wait_for("openreports forgotten", CONVERGE, |m| {
        m.value(
            "policyreport_exporter_synced",
            &[("resource", "reports.openreports.io")],
        )
        .is_none()
    });
    assert_eq!(
        m.value(
            "policyreport_exporter_objects",
            &[("resource", "reports.openreports.io")]
        ),
        Some(0.0)
    );
    assert_eq!(e.ready_status(), 200);
    let gone_total = start.elapsed().max(gone);
    settle(&c, &mut w, &e, "after discovery changes");
    println!(
        "SCOREBOARD faults::openreports_appearing_later_is_watched_and_dropped_when_it_goes: --discovery-interval 1: \
         served later -> counted exactly in {appeared_total:.1?}; unserved -> objects dropped, synced series removed in {gone_total:.1?}"
    );
}

#[test]
fn readiness_stays_200_while_a_kind_discovered_later_lists() {
    let c = FakeCluster::start(&[Kind::PolicyReport, Kind::ClusterPolicyReport]);
    let mut w = Workload::new(5, &[Kind::PolicyReport, Kind::Report]);
    w.populate(&c, 12, 0);
    let e = c.exporter(&["--discovery-interval", "1", "--request-timeout", "3"]);
    e.wait_ready(READY);
    // The first list of the new kind hangs until the client times out.
    c.server.hang_next(1);
    c.serve_kind(Kind::Report);
    let mut statuses = Vec::new();
    let listed = poll_until(CONVERGE, || {
        statuses.push(e.ready_status());
        e.synced(&e.metrics(), "reports.openreports.io") == Some(1.0)
    });
    assert!(listed.is_some(), "the new kind was listed");
    let not_ready = statuses.iter().filter(|s| **s != 200).count();
    println!(
        "SCOREBOARD faults::readiness_stays_200_while_a_kind_discovered_later_lists: {not_ready} of {} /readyz \
         answers were not 200 while the new kind listed",
        statuses.len()
    );
    assert_eq!(
        not_ready, 0,
        "/readyz went back to 503 after being ready, while a newly discovered kind listed"
    );
    settle(&c, &mut w, &e, "after the new kind");
}

#[test]
fn sigterm_during_the_initial_sync_exits_cleanly_within_5s() {
    let c = FakeCluster::start(&Kind::ALL);
    let mut w = Workload::new(15, &Kind::ALL);
    w.populate(&c, 12, 5);
    c.server.hang_next(100);
    let e = c.exporter(&[]);
    poll_until(READY, || {
        c.server
            .requests()
            .iter()
            .any(|r| r.param("limit").is_some())
    })
    .expect("a list request is held");
    assert_eq!(e.ready_status(), 503, "still in the initial sync");
    let logs = e.log_sink();
    let start = Instant::now();
    let status = e.terminate(Duration::from_secs(10));
    let took = start.elapsed();
    c.server.release_hangs();
    let status = status.expect("exited after SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
    assert!(took < Duration::from_secs(5), "exited in {took:?}");
    // The log reader may still be reading the last lines.
    let said = poll_until(Duration::from_secs(5), || {
        logs.lock()
            .expect("logs")
            .iter()
            .any(|l| l.contains("shutting down"))
    });
    let logs = logs.lock().expect("logs").join("\n");
    assert!(said.is_some(), "{logs}");
    println!(
        "SCOREBOARD faults::sigterm_during_the_initial_sync_exits_cleanly_within_5s: lists held by the server; \
         exit status {status} after {took:.2?}"
    );
}

#[test]
fn a_retry_storm_logs_one_warning_per_watch() {
    let (c, mut w, e) = running(9, &Kind::ALL, &[]);
    let warns = warn_lines(&e);
    let before = errors(&e.metrics());
    let start = Instant::now();
    c.stop();
    // Down for 6 s: every watch retries with backoff (0.8 s doubling, with
    // jitter: at least two retries each) against a refused connection.
    // synced reads 0, /readyz stays 200, /healthz answers.
    let mut saw_unsynced = false;
    while start.elapsed() < STORM {
        let m = e.metrics();
        if errors(&m) > before && e.synced(&m, REPORT_RESOURCE) == Some(0.0) {
            saw_unsynced = true;
        }
        assert_eq!(e.get("/healthz").0, 200);
        assert_eq!(e.ready_status(), 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(saw_unsynced, "synced=0 while the server was down");
    let storm_errors = errors(&e.metrics()) - before;
    let storm_warns = warn_lines(&e) - warns;
    for _ in 0..30 {
        w.step(&c);
    }
    c.resume();
    let recovered = settle(&c, &mut w, &e, "after the storm");
    let recoveries = e.count_logs("INFO", "watch recovered");
    println!(
        "SCOREBOARD faults::a_retry_storm_logs_one_warning_per_watch: server down {STORM:?}: {storm_errors} failed requests \
         over {} watches, {storm_warns} warn lines, {recoveries} 'watch recovered' lines; exact and synced {recovered:.1?} after resume",
        Kind::ALL.len()
    );
    assert!(
        storm_errors >= 2.0 * Kind::ALL.len() as f64,
        "a storm: {storm_errors}"
    );
    assert!(
        storm_warns <= Kind::ALL.len(),
        "one warn per watch, not per retry: {storm_warns} warns for {storm_errors} errors"
    );
}

#[test]
fn a_relist_failing_after_its_first_page_is_one_failure_streak() {
    let kinds = [Kind::PolicyReport];
    let c = FakeCluster::start(&kinds);
    let mut w = Workload::new(23, &kinds);
    w.populate(&c, 24, 0);
    let e = c.exporter(&["--page-size", "2"]);
    e.wait_ready(READY);
    e.wait_data("initial", &c.expected(), CONVERGE);
    let warns = warn_lines(&e);
    let errs = errors(&e.metrics());
    let recovered = e.count_logs("INFO", "watch recovered");
    // Force a relist (410 after a restart) that fails after its first page
    // for 6 s (STORM).
    c.server.reset_list_after_first_page(true);
    c.restart();
    let start = Instant::now();
    let mut synced_samples = Vec::new();
    while start.elapsed() < STORM {
        synced_samples.push(e.synced(&e.metrics(), REPORT_RESOURCE));
        std::thread::sleep(Duration::from_millis(20));
    }
    let storm_errors = errors(&e.metrics()) - errs;
    let storm_warns = warn_lines(&e) - warns;
    let storm_recovered = e.count_logs("INFO", "watch recovered") - recovered;
    let flaps = synced_samples
        .windows(2)
        .filter(|w| w[0] == Some(0.0) && w[1] == Some(1.0))
        .count();
    c.server.reset_list_after_first_page(false);
    settle(&c, &mut w, &e, "after the failing relist");
    println!(
        "SCOREBOARD faults::a_relist_failing_after_its_first_page_is_one_failure_streak: {STORM:?} of relists cut after page 1: \
         {storm_errors} errors, {storm_warns} warn lines, {storm_recovered} 'watch recovered' lines, synced went 0->1 {flaps} times"
    );
    assert!(
        storm_errors >= 2.0,
        "a streak of failed relists: {storm_errors}"
    );
    assert!(
        storm_warns <= 1 && flaps == 0,
        "one failure streak: {storm_warns} warn lines and {flaps} synced flaps for {storm_errors} errors"
    );
}

#[test]
fn cut_watches_do_not_log_a_warning_each() {
    let (c, mut w, e) = running(34, &Kind::ALL, &[]);
    let warns = e.log_json().iter().filter(|v| v["level"] == "WARN").count();
    for _ in 0..5 {
        c.server.drop_watches();
        w.touch_all(&c);
        std::thread::sleep(Duration::from_millis(300));
    }
    e.wait_data("after cuts", &c.expected(), CONVERGE);
    let new_warns = e.log_json().iter().filter(|v| v["level"] == "WARN").count() - warns;
    assert!(
        new_warns <= Kind::ALL.len(),
        "{new_warns} WARN lines for 5 cuts of {} watches that resumed without error",
        Kind::ALL.len()
    );
}
