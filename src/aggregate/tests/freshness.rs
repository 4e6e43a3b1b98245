//! Report freshness and the clock.

use tokio::sync::mpsc;

use super::*;

fn row(ns: &str, source: &str, reports: u64, stale: Option<u64>, oldest: Option<i64>) -> FreshRow {
    (ns.into(), source.into(), reports, stale, oldest)
}

/// A result of `policy` from `source` (none when empty) at `ts` (none when
/// `None`).
fn timed(policy: &str, source: &str, ts: Option<i64>) -> serde_json::Value {
    let mut r = json!({"policy": policy, "result": "pass"});
    if !source.is_empty() {
        r["source"] = json!(source);
    }
    if let Some(ts) = ts {
        r["timestamp"] = json!({"seconds": ts, "nanos": 0});
    }
    r
}

fn timed_report(ns: &str, name: &str, results: Vec<serde_json::Value>) -> SourceObject {
    let kind = if ns.is_empty() {
        Kind::ClusterPolicyReport
    } else {
        Kind::PolicyReport
    };
    object(kind, ns, name, json!({ "results": results }))
}

/// Reports in two namespaces and cluster-scoped, from several sources,
/// with and without timestamps, as of [`T`].
fn seven_reports(clock: &Clock) -> Aggregate {
    let mut agg = fresh_agg(DEFAULT_STALE_AFTER, clock);
    let c = Origin::Watch(Kind::ClusterPolicyReport);
    // Newest of the two: 5h10m old, so stale at the 3h default.
    apply(
        &mut agg,
        &W,
        timed_report(
            "shop",
            "old",
            vec![
                timed("a", "kyverno", Some(T - 6 * H)),
                timed("b", "kyverno", Some(T - 5 * H - 600)),
            ],
        ),
    );
    apply(
        &mut agg,
        &W,
        timed_report("shop", "new", vec![timed("a", "kyverno", Some(T - 600))]),
    );
    // No timestamp: counted, never stale, not the oldest.
    apply(
        &mut agg,
        &W,
        timed_report("shop", "untimed", vec![timed("a", "kyverno", None)]),
    );
    // Two sources: counted under each, with each source's newest time.
    apply(
        &mut agg,
        &W,
        timed_report(
            "shop",
            "mixed",
            vec![
                timed("a", "kyverno", Some(T - 4 * H)),
                timed("t", "trivy", Some(T - H)),
                timed("t", "trivy", None),
            ],
        ),
    );
    // The report's own source (openreports), and a result without any.
    let top = json!({"source": "kubewarden", "results": [timed("k", "", Some(T - 2 * H))]});
    apply(&mut agg, &W, object(Kind::PolicyReport, "dev", "top", top));
    apply(
        &mut agg,
        &c,
        timed_report("", "cluster", vec![timed("n", "", Some(T - 2 * H))]),
    );
    // A report without results counts nowhere.
    apply(&mut agg, &W, timed_report("shop", "empty", vec![]));
    agg
}

#[test]
fn freshness_counts_each_report_once_per_source_with_its_newest_timestamp() {
    let clock = Clock::manual(T);
    let agg = seven_reports(&clock);
    assert_eq!(
        freshness_of(&agg),
        vec![
            row("", "", 1, Some(0), Some(T - 2 * H)),
            row("dev", "kubewarden", 1, Some(0), Some(T - 2 * H)),
            row("shop", "kyverno", 4, Some(2), Some(T - 5 * H - 600)),
            row("shop", "trivy", 1, Some(0), Some(T - H)),
        ]
    );
}

#[test]
fn freshness_follows_rescans_deletes_and_relists() {
    let clock = Clock::manual(T);
    let mut agg = seven_reports(&clock);
    let c = Origin::Watch(Kind::ClusterPolicyReport);
    // A rescan refreshes the old report; deleting one uncounts it.
    apply(
        &mut agg,
        &W,
        timed_report("shop", "old", vec![timed("a", "kyverno", Some(T - 60))]),
    );
    agg.handle(SourceEvent::Delete {
        origin: W,
        object: timed_report("shop", "mixed", vec![]),
    });
    assert_eq!(
        freshness_of(&agg),
        vec![
            row("", "", 1, Some(0), Some(T - 2 * H)),
            row("dev", "kubewarden", 1, Some(0), Some(T - 2 * H)),
            row("shop", "kyverno", 3, Some(0), Some(T - 600)),
        ]
    );

    // A relist replaces an origin's reports at once.
    agg.handle(SourceEvent::RelistStart { origin: c.clone() });
    agg.handle(SourceEvent::RelistApply {
        origin: c.clone(),
        object: timed_report("", "cluster", vec![timed("n", "", Some(T - 4 * H))]),
    });
    assert_eq!(
        freshness_of(&agg)[0],
        row("", "", 1, Some(0), Some(T - 2 * H))
    );
    agg.handle(SourceEvent::RelistEnd { origin: c.clone() });
    assert_eq!(
        freshness_of(&agg)[0],
        row("", "", 1, Some(1), Some(T - 4 * H))
    );
    agg.handle(SourceEvent::RelistStart { origin: c.clone() });
    agg.handle(SourceEvent::RelistEnd { origin: c });
    assert_eq!(freshness_of(&agg)[0].0, "dev", "the emptied entry is gone");
}

#[test]
fn stale_counts_follow_the_clock_at_each_tick() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
    for (name, age) in [("a", 2 * H), ("b", 10 * 60), ("c", 5 * 60)] {
        apply(
            &mut agg,
            &W,
            timed_report("shop", name, vec![timed("p", "kyverno", Some(T - age))]),
        );
    }
    let stale = |agg: &Aggregate| freshness_of(agg)[0].3;
    assert_eq!(stale(&agg), Some(0));

    // A tick that moves no report across the cutoff changes nothing.
    clock.set(T + 600);
    let generation = agg.generation();
    agg.tick();
    assert_eq!(agg.generation(), generation);
    assert_eq!(agg.now(), T + 600);
    assert_eq!(stale(&agg), Some(0));

    // Exactly 3h old is not older than 3h; one second later it is.
    clock.set(T + H);
    agg.tick();
    assert_eq!(stale(&agg), Some(0));
    clock.set(T + H + 1);
    agg.tick();
    assert_eq!(agg.generation(), generation + 1, "a stale count changed");
    assert_eq!(stale(&agg), Some(1));

    // The clock read only at ticks: no change without one.
    clock.set(T + 10 * H);
    assert_eq!(stale(&agg), Some(1));
    agg.tick();
    assert_eq!(stale(&agg), Some(3));

    // A clock set back un-stales them, and that is a change too.
    let generation = agg.generation();
    clock.set(T);
    agg.tick();
    assert_eq!(agg.generation(), generation + 1);
    assert_eq!(stale(&agg), Some(0));
}

#[test]
fn stale_after_zero_turns_staleness_off() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(Duration::ZERO, &clock);
    apply(
        &mut agg,
        &W,
        timed_report("shop", "a", vec![timed("p", "kyverno", Some(T - 10 * H))]),
    );
    assert_eq!(agg.stale_after(), None);
    assert_eq!(agg.tick_interval(), None);
    let generation = agg.generation();
    clock.set(T + 100 * H);
    agg.tick();
    assert_eq!(agg.generation(), generation);
    assert_eq!(
        freshness_of(&agg),
        vec![row("shop", "kyverno", 1, None, Some(T - 10 * H))]
    );
}

#[test]
fn ticks_are_one_percent_of_stale_after_between_one_and_fifteen_seconds() {
    let clock = Clock::manual(T);
    let every = |d: u64| fresh_agg(Duration::from_secs(d), &clock).tick_interval();
    assert_eq!(every(3 * 3600), Some(Duration::from_secs(15)));
    assert_eq!(every(600), Some(Duration::from_secs(6)));
    assert_eq!(every(3), Some(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn the_run_loop_publishes_when_time_makes_reports_stale() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
    apply(
        &mut agg,
        &W,
        timed_report(
            "shop",
            "a",
            vec![timed("p", "kyverno", Some(T - 3 * H + 20))],
        ),
    );
    let (tx, rx) = mpsc::channel(1);
    let (published_tx, mut published) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(
        agg,
        rx,
        Duration::from_millis(25),
        move |a: &Aggregate| {
            let _ = published_tx.send(freshness_of(a)[0].3);
        },
    ));
    assert_eq!(published.recv().await, Some(Some(0)));
    // No event arrives: the next tick finds the report stale and publishes.
    clock.set(T + 21);
    assert_eq!(published.recv().await, Some(Some(1)));
    drop(tx);
    let agg = task.await.expect("run");
    assert_eq!(agg.now(), T + 21);
}

#[test]
fn a_report_with_many_sources_counts_once_under_each() {
    let clock = Clock::manual(T);
    let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
    // 40 sources, past the linear search; each twice, the newer time second.
    let results: Vec<_> = (0..80)
        .map(|i| {
            let age = if i < 40 { 5 * H } else { 60 };
            timed("p", &format!("s{:02}", i % 40), Some(T - age))
        })
        .collect();
    apply(&mut agg, &W, timed_report("shop", "many", results));
    let rows = freshness_of(&agg);
    assert_eq!(rows.len(), 40);
    assert!(
        rows.iter()
            .all(|r| (r.2, r.3, r.4) == (1, Some(0), Some(T - 60))),
        "{rows:?}"
    );
}
