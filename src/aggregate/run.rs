//! The run loop: consumes [`SourceEvent`]s into the [`Aggregate`], hands
//! the state to a publisher after each batch of changes, reads the clock
//! for stale counts, and hands freed memory back to the system.

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Aggregate;
use crate::memory::Trimmer;
use crate::source::SourceEvent;

/// Free memory is handed back to the system at most this often, and this
/// long after it was freed. It bought the steady RSS at 50k reports
/// (58.9 → 53.7 MiB, docs/benchmarks.md).
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// The caller's side of [`run`]: it sees the state after each batch of
/// changes, and may stop the loop. A closure publishes and never stops
/// (`serve`); `summary` stops once the initial lists are in.
pub trait Publisher {
    /// The state after a batch of changes. `Break` ends the loop once the
    /// events already queued are applied.
    fn publish(&mut self, aggregate: &Aggregate) -> ControlFlow<()>;

    /// An event, before it is applied.
    fn event(&mut self, _event: &SourceEvent) {}
}

impl<F: FnMut(&Aggregate)> Publisher for F {
    fn publish(&mut self, aggregate: &Aggregate) -> ControlFlow<()> {
        self(aggregate);
        ControlFlow::Continue(())
    }
}

/// Apply an event; a completed relist or a delete has freed memory.
fn handle(
    aggregate: &mut Aggregate,
    trimmer: &Trimmer,
    publisher: &mut impl Publisher,
    event: SourceEvent,
) {
    if matches!(
        event,
        SourceEvent::RelistEnd { .. } | SourceEvent::Delete { .. }
    ) {
        trimmer.freed();
    }
    publisher.event(&event);
    aggregate.handle(event);
}

/// Consume events until every sender is gone, or `publisher` stops the
/// loop (then the events already queued are applied first). After each
/// batch of changes, and at most once per `min_interval` under load (but at
/// once when the aggregate becomes ready), hand the state to `publisher` so
/// readers see it. Every [`Aggregate::tick_interval`], read the clock, so stale counts
/// follow time without a change of any report. When idle after relists or
/// deletes, hand freed memory back to the system (at most once a second, on
/// a task of its own).
pub async fn run(
    mut aggregate: Aggregate,
    mut events: mpsc::Receiver<SourceEvent>,
    min_interval: Duration,
    mut publisher: impl Publisher,
) -> Aggregate {
    // Events handled before the publish check: bounds how long a flood of
    // events can delay a publish. Not measured separately.
    const BATCH: usize = 4096;
    let trimmer = Trimmer::spawn(TRIM_EVERY);
    if publisher.publish(&aggregate).is_break() {
        drain(&mut aggregate, &mut events, &trimmer, &mut publisher);
        return aggregate;
    }
    let mut published = aggregate.generation();
    let mut published_ready = aggregate.ready();
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
            handle(&mut aggregate, &trimmer, &mut publisher, ev);
            for _ in 0..BATCH {
                match events.try_recv() {
                    Ok(ev) => handle(&mut aggregate, &trimmer, &mut publisher, ev),
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
            let flow = publisher.publish(&aggregate);
            published = aggregate.generation();
            last_publish = now;
            if flow.is_break() {
                drain(&mut aggregate, &mut events, &trimmer, &mut publisher);
                return aggregate;
            }
        }
    }
    if published != aggregate.generation() {
        let _ = publisher.publish(&aggregate);
    }
    aggregate
}

/// Apply the events already queued, before the loop stops.
fn drain(
    aggregate: &mut Aggregate,
    events: &mut mpsc::Receiver<SourceEvent>,
    trimmer: &Trimmer,
    publisher: &mut impl Publisher,
) {
    while let Ok(ev) = events.try_recv() {
        handle(aggregate, trimmer, publisher, ev);
    }
}
