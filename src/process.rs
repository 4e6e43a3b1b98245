//! The standard `process_*` metrics (as client libraries export them), read
//! from `/proc/self` at each scrape so they are always current. On systems
//! without `/proc` nothing is written.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::metrics::{Exposition, Type, sample};

/// Write the process families.
pub fn write(out: &mut Exposition) {
    let Some(p) = read() else { return };
    let families: [(&str, &str, Type, f64); 6] = [
        (
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            Type::Counter,
            p.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Type::Gauge,
            p.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Type::Gauge,
            p.virtual_bytes,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Type::Gauge,
            p.start_time,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            Type::Gauge,
            p.open_fds,
        ),
        (
            "process_threads",
            "Number of OS threads in the process.",
            Type::Gauge,
            p.threads,
        ),
    ];
    for (name, help, kind, value) in families {
        let sample_name = match kind {
            Type::Counter => format!("{name}_total"),
            Type::Gauge => name.to_owned(),
        };
        out.family(name, help, kind, |buf| {
            float_sample(buf, &sample_name, value)
        });
    }
}

fn float_sample(buf: &mut String, name: &str, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        sample(buf, name, [], value as u64);
    } else {
        buf.push_str(&format!("{name} {value}\n"));
    }
}

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
