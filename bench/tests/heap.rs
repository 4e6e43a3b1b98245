//! The heap the aggregate keeps per live admission Event and per report,
//! counted exactly by a global allocator that tracks the bytes of every live
//! allocation as glibc sizes them (usable size plus its 8-byte header).
//!
//! Each measurement feeds generated objects one at a time, as a watch's
//! first list does, and counts what is still allocated afterwards: what the
//! aggregate keeps, not what decoding cost on the way. `policyreport-bench
//! run --memory-reports … --memory-events …` measures the same through the
//! real process's RSS.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, Ordering};

use policyreport_bench::admission::{self, EventSpec};
use policyreport_bench::glue;
use policyreport_bench::reportgen::{self, Spec};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// glibc's chunk: the usable size and the 8-byte size header.
fn chunk(p: *mut u8) -> isize {
    // SAFETY: `p` was returned by the system allocator and is live.
    unsafe { libc::malloc_usable_size(p.cast()) as isize + 8 }
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(chunk(p), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        LIVE.fetch_sub(chunk(p), Ordering::Relaxed);
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(chunk(p), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = chunk(p);
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE.fetch_add(chunk(q) - old, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement at a time: the counter is process-wide.
static ONE: Mutex<()> = Mutex::new(());

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The target of the sizing work: what counting needs is the uid and the
/// last count, and the series it counts in.
const EVENT_TARGET: f64 = 128.0;

#[test]
fn a_live_admission_event_keeps_at_most_128_bytes() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 200_000;
    let spec = EventSpec {
        uids: true,
        ..EventSpec::new(N, 1)
    };
    let mut aggregate = glue::new_aggregate();
    let before = live();
    let objects = admission::events(&spec).map(|e| {
        let json = serde_json::to_vec(&e).expect("JSON");
        glue::event_object(&json).expect("an Event")
    });
    glue::initial_list(&mut aggregate, objects);
    let kept = live() - before;
    let (blocked, audit) = glue::admissions(&aggregate);
    assert_eq!(blocked + audit, N as u64, "every Event counts once");
    let per_event = kept as f64 / N as f64;
    eprintln!("{N} live admission Events: {kept} bytes kept, {per_event:.1} bytes each");
    assert!(
        per_event <= EVENT_TARGET,
        "{per_event:.1} bytes per live Event, target ≤ {EVENT_TARGET}"
    );
    drop(aggregate);
}

/// What a report keeps, measured at 10k reports: 523 bytes (the map entry of
/// its identity and contribution; its series ids and counts and its
/// freshness pair; for a Pod, its three control deltas and tallies;
/// docs/operations.md breaks it down). `HEAP_REPORTS=200000 cargo test
/// --release -p policyreport-bench --test heap` measures another count.
const REPORT_HEAP: f64 = 544.0;

#[test]
fn a_report_keeps_at_most_544_bytes_of_heap() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let n: usize = std::env::var("HEAP_REPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let set = reportgen::generate(&Spec::with_reports(n, 1));
    let mut aggregate = glue::new_aggregate();
    let before = live();
    let objects = set.reports.iter().map(|r| {
        let json = serde_json::to_vec(&r.value).expect("JSON");
        glue::source_object(r.kind, glue::parse_report(&json).expect("a report"))
    });
    glue::initial_list(&mut aggregate, objects);
    let kept = live() - before;
    assert_eq!(glue::series(&aggregate), set.expected().len());
    let per_report = kept as f64 / n as f64;
    eprintln!(
        "{n} reports ({} results): {kept} bytes kept, {per_report:.1} bytes each",
        set.total_results(),
    );
    if n == 10_000 {
        assert!(
            per_report <= REPORT_HEAP,
            "{per_report:.1} bytes per report, measured 523 (≤ {REPORT_HEAP})"
        );
    }
    drop(aggregate);
}
