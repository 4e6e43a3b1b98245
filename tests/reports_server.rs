//! The real binary against the fake API server with the report kinds served
//! the way Kyverno's reports-server serves them: unpaged lists with
//! resourceVersion "1", watches that replay every object as ADDED, no 410,
//! no deletions for a watch gap, and (with several replicas) live events
//! that never arrive. Every step ends by comparing the served data families
//! with a from-scratch computation over what the server holds.
//!
//! Each test prints one `SCOREBOARD` line (run with `--nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::{
    Exporter, FakeCluster, Workload, assert_objects_held, data_text, independent_count, poll_until,
    unsynced,
};
use fake_apiserver::ReportsServerMode;
use policyreport_exporter::kind::Kind;
use policyreport_test_support::metrics::Metrics;

/// Generous: the machine running the tests may be loaded.
const READY: Duration = Duration::from_secs(30);
const CONVERGE: Duration = Duration::from_secs(60);

const REPORTS: [Kind; 4] = [
    Kind::PolicyReport,
    Kind::ClusterPolicyReport,
    Kind::Report,
    Kind::ClusterReport,
];

/// Every kind served; the report kinds in reports-server mode.
fn cluster(mode: ReportsServerMode) -> FakeCluster {
    let c = FakeCluster::start(&Kind::ALL);
    set_mode(&c, mode);
    c
}

fn set_mode(c: &FakeCluster, mode: ReportsServerMode) {
    for kind in REPORTS {
        c.server
            .set_reports_server(&FakeCluster::def(kind), Some(mode));
    }
}

fn relists(m: &Metrics, reason: &str) -> f64 {
    m.family("policyreport_exporter_relists_total")
        .into_iter()
        .filter(|(labels, _)| labels.iter().any(|(k, v)| k == "reason" && v == reason))
        .map(|(_, v)| v)
        .sum()
}

/// List and watch requests of the report kinds, oldest first.
fn report_requests(c: &FakeCluster) -> Vec<fake_apiserver::RecordedRequest> {
    c.server
        .requests()
        .into_iter()
        .filter(|r| REPORTS.iter().any(|k| r.path.ends_with(k.plural())))
        .collect()
}

fn watches(c: &FakeCluster) -> usize {
    report_requests(c).iter().filter(|r| r.is_watch()).count()
}

fn lists(c: &FakeCluster) -> usize {
    report_requests(c).iter().filter(|r| !r.is_watch()).count()
}

/// Exact: data families equal the from-scratch computation, every target
/// synced, objects held equal the server's. Returns how long it took.
fn exact(c: &FakeCluster, e: &Exporter, what: &str) -> Duration {
    let took = e.wait_data(what, &c.expected(), CONVERGE);
    let m = e.metrics();
    assert_objects_held(c, &m, what);
    let synced = poll_until(CONVERGE, || unsynced(&e.metrics()).is_empty());
    assert!(
        synced.is_some(),
        "{what}: unsynced {:?}",
        unsynced(&e.metrics())
    );
    assert_eq!(e.ready_status(), 200, "{what}: ready");
    took
}

/// How long a watch must stay quiet after a failure to count as recovered
/// (`--quiet-recovery`, 45 s by default): shortened so that a kind without
/// events (Namespace) is synced again within the tests' waits.
const QUIET_RECOVERY: &str = "3s";

/// Populate, start the exporter (with the short [`QUIET_RECOVERY`]) and wait
/// for an exact initial sync.
fn running(
    seed: u64,
    reports: usize,
    mode: ReportsServerMode,
    args: &[&str],
) -> (FakeCluster, Workload, Exporter) {
    let c = cluster(mode);
    let mut w = Workload::new(seed, &Kind::ALL);
    w.populate(&c, reports, 10);
    let mut args = args.to_vec();
    args.extend(["--quiet-recovery", QUIET_RECOVERY]);
    let e = c.exporter(&args);
    e.wait_ready(READY);
    exact(&c, &e, "initial sync");
    (c, w, e)
}

#[test]
fn initial_sync_of_an_unpaged_list() {
    let c = cluster(ReportsServerMode::default());
    let mut w = Workload::new(15, &Kind::ALL);
    w.populate(&c, 300, 10);
    // The first resource request fails: its list is retried (reason error).
    c.server.fail_next(1, 500, None);
    let e = c.exporter(&["--page-size", "7"]);
    e.wait_ready(READY);
    let took = exact(&c, &e, "initial sync");
    let requests = report_requests(&c);
    let lists: Vec<_> = requests.iter().filter(|r| !r.is_watch()).collect();
    // One list per report kind (plus the failed one): limit=7 was sent and
    // ignored, and no continue followed.
    assert!(
        lists
            .iter()
            .all(|r| r.param("limit").as_deref() == Some("7")),
        "{lists:?}"
    );
    assert!(
        lists.iter().all(|r| r.param("continue").is_none()),
        "{lists:?}"
    );
    assert!(
        (REPORTS.len()..=REPORTS.len() + 1).contains(&lists.len()),
        "{lists:?}"
    );
    // The watch after the list starts from the list's resourceVersion "1",
    // so the server replays every report once more.
    let watches: Vec<_> = requests.iter().filter(|r| r.is_watch()).collect();
    assert!(
        watches
            .iter()
            .any(|r| r.param("resourceVersion").as_deref() == Some("1")),
        "{watches:?}"
    );
    let m = e.metrics();
    assert_eq!(relists(&m, "error"), 1.0, "the failed list, retried");
    assert_eq!(relists(&m, "expired") + relists(&m, "interval"), 0.0);
    println!(
        "SCOREBOARD reports_server::initial_sync_of_an_unpaged_list: {} objects, exact {took:.1?} \
         after ready, {} report lists, {} report watches",
        c.objects().len(),
        lists.len(),
        watches.len()
    );
}

#[test]
fn a_watch_timeout_is_followed_by_the_replay_which_changes_nothing() {
    let (c, mut w, e) = running(16, 60, ReportsServerMode::default(), &[]);
    for step in 0..3 {
        for _ in 0..20 {
            w.step(&c);
        }
        exact(&c, &e, &format!("step {step}: live events"));
        let watched = watches(&c);
        // The watches end as at their timeout; each comes back with its
        // last resourceVersion and gets every report again as ADDED.
        c.server.end_watches();
        poll_until(CONVERGE, || watches(&c) >= watched + REPORTS.len())
            .expect("every report watch started again");
        // The replay is done once a write after it shows.
        w.touch_all(&c);
        exact(&c, &e, &format!("step {step}: after the replay"));
        let m = e.metrics();
        assert_eq!(
            relists(&m, "expired") + relists(&m, "error") + relists(&m, "interval"),
            0.0,
            "a replay is not a relist"
        );
    }
    // The replay alone (no writes): families byte-identical.
    let before = data_text(&e.metrics());
    let watched = watches(&c);
    c.server.end_watches();
    poll_until(CONVERGE, || watches(&c) >= watched + REPORTS.len()).expect("re-watched");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(data_text(&e.metrics()), before, "a replay changes nothing");
    exact(&c, &e, "after a bare replay");
    println!(
        "SCOREBOARD reports_server::a_watch_timeout_is_followed_by_the_replay_which_changes_nothing: \
         4 replays of {} reports, exact after each",
        c.objects().len()
    );
}

#[test]
fn reports_deleted_and_modified_while_the_watch_was_down() {
    let interval = Duration::from_secs(12);
    let (c, mut w, e) = running(
        17,
        60,
        ReportsServerMode::default(),
        &["--relist-interval", "12s"],
    );
    // The watches fail while the server is away; meanwhile reports are
    // deleted and modified. On reconnection the server replays what it
    // holds (the modified reports included) but never sends the deletions.
    c.stop();
    let mut deleted = Vec::new();
    for kind in REPORTS {
        let def = FakeCluster::def(kind);
        let objects = c.server.objects(&def);
        for o in objects.iter().take(3) {
            let ns = o["metadata"]["namespace"].as_str();
            let name = o["metadata"]["name"].as_str().expect("name");
            assert!(c.delete(kind, ns, name));
            deleted.push((kind, o.clone()));
        }
        for o in objects.iter().skip(3).take(3) {
            let mut o = o.clone();
            o["results"] = serde_json::json!([{
                "policy": "modified-while-down", "rule": "r", "result": "fail",
                "source": "kyverno", "scored": true
            }]);
            c.apply(o);
        }
    }
    c.resume();
    let resumed = Instant::now();
    // Before the relist: the modifications are served, the deleted reports
    // are still counted (the stale state a replay leaves).
    let mut stale: Vec<_> = c.objects();
    stale.extend(deleted.iter().cloned());
    let stale_text = data_text(&independent_count(stale.iter().map(|(k, v)| (*k, v))));
    let seen = poll_until(interval, || {
        let m = e.metrics();
        relists(&m, "interval") == 0.0 && data_text(&m) == stale_text
    });
    assert!(
        seen.is_some(),
        "the replay's stale state (modified, deletions still counted) before any relist"
    );
    // Within one interval: exact.
    // The bound is on the data; `synced` of kinds without events (no
    // Namespace changed) comes back only after the quiet period
    // (QUIET_RECOVERY).
    let took = e.wait_data("after the relist", &c.expected(), CONVERGE);
    let since = resumed.elapsed();
    exact(&c, &e, "after the relist");
    let m = e.metrics();
    assert!(
        relists(&m, "interval") >= 4.0,
        "one relist per kind at least"
    );
    assert!(
        since <= interval + Duration::from_secs(5),
        "gone within one relist interval: {since:.1?}"
    );
    for _ in 0..20 {
        w.step(&c);
    }
    exact(&c, &e, "live events after the relist");
    println!(
        "SCOREBOARD reports_server::reports_deleted_and_modified_while_the_watch_was_down: {} \
         deleted and {} modified while down; stale state seen {:.1?} after resume, exact {since:.1?} \
         after resume (waited {took:.1?}), relist interval {interval:?}",
        deleted.len(),
        deleted.len(),
        seen.unwrap_or_default(),
    );
}

#[test]
fn dropped_live_events_are_recovered_by_the_next_relist() {
    let interval = Duration::from_secs(8);
    let (c, mut w, e) = running(
        18,
        60,
        ReportsServerMode::default(),
        &["--relist-interval", "8s"],
    );
    // Writes handled by another replica: the exporter's watches never hear
    // of them.
    let before = c.expected();
    set_mode(
        &c,
        ReportsServerMode {
            drop_live_events: true,
        },
    );
    let mut changed = 0;
    for _ in 0..60 {
        let kind = REPORTS[changed % REPORTS.len()];
        w.touch(&c, kind);
        changed += 1;
    }
    assert_ne!(c.expected(), before, "the writes changed the data");
    let written = Instant::now();
    // Until a relist, the served data is what the exporter last heard.
    let m = e.metrics();
    if relists(&m, "interval") == 0.0 {
        assert_eq!(data_text(&m), before, "dropped events are not seen");
    }
    let took = exact(&c, &e, "after the next relist");
    assert!(relists(&e.metrics(), "interval") >= 4.0);
    assert!(
        written.elapsed() <= interval + Duration::from_secs(5),
        "recovered within one interval: {:.1?}",
        written.elapsed()
    );
    set_mode(&c, ReportsServerMode::default());
    for _ in 0..20 {
        w.step(&c);
    }
    exact(&c, &e, "live events again");
    println!(
        "SCOREBOARD reports_server::dropped_live_events_are_recovered_by_the_next_relist: \
         {changed} dropped writes, exact {took:.1?} after them (relist interval {interval:?})"
    );
}

#[test]
fn relist_interval_0_disables_relists() {
    let (c, mut w, e) = running(
        19,
        20,
        ReportsServerMode::default(),
        &["--relist-interval", "0"],
    );
    let listed = lists(&c);
    set_mode(
        &c,
        ReportsServerMode {
            drop_live_events: true,
        },
    );
    w.touch(&c, Kind::PolicyReport);
    std::thread::sleep(Duration::from_secs(3));
    let m = e.metrics();
    assert_eq!(relists(&m, "interval"), 0.0);
    assert_eq!(lists(&c), listed, "no list after the initial ones");
}
