//! The library's calls into the C library, and so all of its unsafe code:
//! the clock-tick rate of `/proc` CPU times, and glibc's `malloc_trim` and
//! `mallopt`.

/// Clock ticks per second of the CPU times in `/proc/*/stat` (USER_HZ).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf takes no pointers and only reads a system setting.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // sysconf returns -1 when the setting is unknown; Linux's USER_HZ is
    // 100 on every architecture it supports.
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Hand the heap memory that glibc's allocator holds free back to the
/// system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn malloc_trim() {
    // SAFETY: malloc_trim takes no pointers and only releases memory that
    // the allocator holds free; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Off glibc there is nothing to trim.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn malloc_trim() {}

/// Set glibc's thresholds: allocations from `mmap` bytes up get pages of
/// their own, and free memory at the top of a heap is handed back to the
/// system once it exceeds `trim` bytes. Values glibc refuses (`mmap` above
/// 32 MiB on 64-bit) leave its defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn malloc_thresholds(mmap: i32, trim: i32) {
    // SAFETY: mallopt takes no pointers and only changes allocator settings;
    // glibc serializes it against allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
    }
}

/// Off glibc there is nothing to set.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn malloc_thresholds(_mmap: i32, _trim: i32) {}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_ticks_are_linux_user_hz() {
        assert_eq!(super::clock_ticks_per_second(), 100.0);
    }
}
