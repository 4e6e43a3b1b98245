//! The run loop: consumes [`SourceEvent`]s into the [`Aggregate`], hands
//! the state to a publisher after each batch of changes, reads the clock
//! for stale counts, and hands freed memory back to the system.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Aggregate;
use crate::memory::Trimmer;
use crate::source::SourceEvent;

/// Free memory is handed back to the system at most this often, and this
/// long after it was freed. It bought the steady RSS at 50k reports
/// (58.9 → 53.7 MiB, docs/benchmarks.md).
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Apply an event; a completed relist or a delete has freed memory.
fn handle(aggregate: &mut Aggregate, trimmer: &Trimmer, event: SourceEvent) {
    if matches!(
        event,
        SourceEvent::ResyncEnd { .. } | SourceEvent::Delete { .. }
    ) {
        trimmer.freed();
    }
    aggregate.handle(event);
}

/// Consume events until every sender is gone. After each batch of changes,
/// and at most once per `min_interval` under load (but at once when the
/// aggregate becomes ready), call `publish` with the state so readers see
/// it. Every [`Aggregate::tick_interval`], read the clock, so stale counts
/// follow time without a change of any report. When idle after relists or
/// deletes, hand freed memory back to the system (at most once a second, on
/// a task of its own).
pub async fn run(
    mut aggregate: Aggregate,
    mut events: mpsc::Receiver<SourceEvent>,
    min_interval: Duration,
    mut publish: impl FnMut(&Aggregate),
) -> Aggregate {
    // Events handled before the publish check: bounds how long a flood of
    // events can delay a publish. Not measured separately.
    const BATCH: usize = 4096;
    publish(&aggregate);
    let mut published = aggregate.generation();
    let mut published_ready = aggregate.ready();
    let trimmer = Trimmer::spawn(TRIM_EVERY);
    let mut last_publish = tokio::time::Instant::now();
    let tick_every = aggregate.tick_interval();
    let mut next_tick = tick_every.map(|every| last_publish + every);
    loop {
        // Wake for the next publish, if one is pending, and the next tick.
        let publish_at = (published != aggregate.generation()).then(|| last_publish + min_interval);
        let event = match publish_at.into_iter().chain(next_tick).min() {
            Some(at) => match tokio::time::timeout_at(at, events.recv()).await {
                Ok(Some(ev)) => Some(ev),
                Ok(None) => break,
                Err(_elapsed) => None,
            },
            None => match events.recv().await {
                Some(ev) => Some(ev),
                None => break,
            },
        };
        if let Some(ev) = event {
            handle(&mut aggregate, &trimmer, ev);
            for _ in 0..BATCH {
                match events.try_recv() {
                    Ok(ev) => handle(&mut aggregate, &trimmer, ev),
                    Err(_) => break,
                }
            }
        }
        let now = tokio::time::Instant::now();
        if let (Some(at), Some(every)) = (next_tick, tick_every)
            && now >= at
        {
            aggregate.tick();
            next_tick = Some(now + every);
        }
        // Becoming ready is published at once: /readyz need not wait.
        let became_ready = aggregate.ready() && !published_ready;
        if published != aggregate.generation()
            && (now >= last_publish + min_interval || became_ready)
        {
            published_ready = aggregate.ready();
            publish(&aggregate);
            published = aggregate.generation();
            last_publish = now;
        }
    }
    if published != aggregate.generation() {
        publish(&aggregate);
    }
    aggregate
}
