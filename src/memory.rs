//! Returning freed heap memory to the operating system.
//!
//! glibc's allocator keeps memory freed by a relist (the replaced objects'
//! contributions, the list pages) in its arenas, so the resident size stays
//! at its peak long after; churn of creates and deletes fragments it. The
//! aggregator asks for it back when it is idle after relists or deletes.
//! Since it does, glibc's own eager trimming is turned down ([`tune`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Releases freed memory on a task of its own, `every` after it is told
/// that memory was freed, and at most once per `every`: the wait lets the
/// sources drop their own buffers (a relist's pages) before the release,
/// and keeps the release off the aggregator's event loop.
#[derive(Debug)]
pub struct Trimmer {
    freed: Arc<Notify>,
    releases: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Trimmer {
    /// Start the task (on the current Tokio runtime).
    pub fn spawn(every: Duration) -> Self {
        let freed = Arc::new(Notify::new());
        let releases = Arc::new(AtomicUsize::new(0));
        let (wake, count) = (Arc::clone(&freed), Arc::clone(&releases));
        let task = tokio::spawn(async move {
            loop {
                // Frees while it waits or releases leave one wake-up.
                wake.notified().await;
                tokio::time::sleep(every).await;
                release();
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Self {
            freed,
            releases,
            task,
        }
    }

    /// How many releases happened.
    pub fn releases(&self) -> usize {
        self.releases.load(Ordering::Relaxed)
    }

    /// Memory was freed (a relist completed, an object was deleted).
    pub fn freed(&self) {
        self.freed.notify_one();
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Allocations of at least this many bytes get pages of their own (glibc's
/// largest allowed value); smaller ones, such as the read buffer of a
/// `--files` file, reuse freed heap memory.
const MMAP_THRESHOLD: i32 = 32 << 20;

/// glibc hands free memory at the top of a heap back to the system only
/// beyond this, so freeing one buffer below [`MMAP_THRESHOLD`] never does;
/// the [`Trimmer`] releases the rest after relists and deletes.
const TRIM_THRESHOLD: i32 = 32 << 20;

/// Stop glibc from handing memory back on every large free, which it then
/// has to fault in again (a no-op off glibc). With its defaults, each file
/// of a `--files` read got a fresh buffer, and the decoded reports fresh
/// heap pages, faulted in and zeroed by the kernel. On 20k reports in 20
/// JSON files the thresholds above cut page faults by 30% and system time
/// by about 0.1 s (a third), for a higher peak RSS (docs/benchmarks.md,
/// "Files mode CPU").
pub fn tune() {
    crate::sys::malloc_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD);
}

/// Hand free heap memory back to the system (a no-op off glibc).
pub fn release() {
    crate::sys::malloc_trim();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn releases_once_per_interval_after_a_free() {
        let every = Duration::from_secs(1);
        let t = Trimmer::spawn(every);
        tokio::time::sleep(every * 3).await;
        assert_eq!(t.releases(), 0, "nothing freed yet");
        t.freed();
        t.freed();
        tokio::time::sleep(every / 2).await;
        assert_eq!(t.releases(), 0, "waits after the free");
        t.freed();
        tokio::time::sleep(every).await;
        assert_eq!(t.releases(), 1, "frees while waiting make one release");
        tokio::time::sleep(every * 3).await;
        assert_eq!(t.releases(), 2, "one more for the free during the wait");
        tokio::time::sleep(every * 3).await;
        assert_eq!(t.releases(), 2, "then nothing until memory is freed");
    }
}
