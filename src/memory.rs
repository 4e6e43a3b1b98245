//! Returning freed heap memory to the operating system.
//!
//! glibc's allocator keeps memory freed by a relist (the replaced objects'
//! contributions, the list pages) in its arenas, so the resident size stays
//! at its peak long after; churn of creates and deletes fragments it. The
//! aggregator asks for it back when it is idle after relists or deletes.

use std::time::{Duration, Instant};

/// Releases free memory `every` after it was first freed, and at most once
/// per `every`: the wait lets the sources drop their own buffers (a
/// relist's pages) before the release.
#[derive(Debug)]
pub struct Trimmer {
    every: Duration,
    last: Option<Instant>,
    /// When memory was first freed since the last release.
    freed: Option<Instant>,
}

impl Trimmer {
    /// A trimmer that releases at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            freed: None,
        }
    }

    /// Memory was freed (a relist completed, an object was deleted).
    pub fn freed(&mut self) {
        self.freed.get_or_insert_with(Instant::now);
    }

    /// When a release is due: `None` when nothing was freed since the last.
    pub fn due_at(&self) -> Option<Instant> {
        let freed = self.freed? + self.every;
        Some(self.last.map_or(freed, |t| freed.max(t + self.every)))
    }

    /// Release free memory if it is due. Returns whether it released.
    pub fn idle(&mut self) -> bool {
        if self.due_at().is_none_or(|t| t > Instant::now()) {
            return false;
        }
        self.freed = None;
        self.last = Some(Instant::now());
        release();
        true
    }
}

/// Hand free heap memory back to the system (a no-op off glibc).
pub fn release() {
    crate::sys::malloc_trim();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_only_when_due_and_not_too_often() {
        let mut t = Trimmer::new(Duration::from_secs(3600));
        assert!(!t.idle(), "nothing freed yet");
        assert_eq!(t.due_at(), None);
        t.freed();
        let due = t.due_at().expect("due");
        assert!(
            due > Instant::now() + Duration::from_secs(3000),
            "waits after the free"
        );
        assert!(!t.idle());
        t.freed();
        assert_eq!(t.due_at(), Some(due), "the first free counts");
        let mut t = Trimmer::new(Duration::ZERO);
        t.freed();
        assert!(t.idle());
        assert!(!t.idle(), "no longer due");
        assert_eq!(t.due_at(), None);
        t.freed();
        assert!(t.idle());
    }
}
