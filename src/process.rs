//! The standard `process_*` metrics (as client libraries export them), read
//! from `/proc/self` at each scrape so they are always current. On systems
//! without `/proc` nothing is written.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::exposition::{Exposition, Family, Type, always};

/// Write the process families.
pub fn write(out: &mut Exposition) {
    let Some(p) = read() else { return };
    for family in FAMILIES {
        out.family(family, &p);
    }
}

/// The process families, named and described as client libraries do.
static FAMILIES: &[Family<Proc>] = &[
    Family {
        name: "process_cpu_seconds",
        help: "Total user and system CPU time spent in seconds.",
        kind: Type::Counter,
        when: always,
        samples: |p, s| s.float(p.cpu_seconds),
    },
    Family {
        name: "process_resident_memory_bytes",
        help: "Resident memory size in bytes.",
        kind: Type::Gauge,
        when: always,
        samples: |p, s| s.float(p.resident_bytes),
    },
    Family {
        name: "process_virtual_memory_bytes",
        help: "Virtual memory size in bytes.",
        kind: Type::Gauge,
        when: always,
        samples: |p, s| s.float(p.virtual_bytes),
    },
    Family {
        name: "process_start_time_seconds",
        help: "Start time of the process since unix epoch in seconds.",
        kind: Type::Gauge,
        when: always,
        samples: |p, s| s.float(p.start_time),
    },
    Family {
        name: "process_open_fds",
        help: "Number of open file descriptors.",
        kind: Type::Gauge,
        when: always,
        samples: |p, s| s.float(p.open_fds),
    },
    Family {
        name: "process_threads",
        help: "Number of OS threads in the process.",
        kind: Type::Gauge,
        when: always,
        samples: |p, s| s.float(p.threads),
    },
];

/// What `/proc` says about this process.
struct Proc {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time: f64,
    open_fds: f64,
    threads: f64,
}

fn read() -> Option<Proc> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    let (utime, stime, threads, start_ticks, vsize) =
        (field(11)?, field(12)?, field(17)?, field(19)?, field(20)?);
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64;
    let ticks = crate::sys::clock_ticks_per_second();
    Some(Proc {
        cpu_seconds: (utime + stime) / ticks,
        resident_bytes: rss_kb * 1024.0,
        virtual_bytes: vsize,
        start_time: boot + start_ticks / ticks,
        open_fds,
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let mut e = Exposition::default();
        write(&mut e);
        assert!(
            e.prometheus
                .contains("# TYPE process_cpu_seconds_total counter")
        );
        assert!(e.openmetrics.contains("# TYPE process_cpu_seconds counter"));
        let rss = e
            .prometheus
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("rss sample");
        assert!(rss > 1e6, "resident memory is at least a megabyte: {rss}");
    }
}
