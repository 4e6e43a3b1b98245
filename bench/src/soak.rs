//! The soak: a long stream of report creates, updates and deletes with
//! forced relists, checking that memory returns to where it was and that
//! the exporter's counts equal a from-scratch count of what the server
//! holds at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::metrics::sample_value;
use policyreport_test_support::procfs::{self, mib};
use policyreport_test_support::rng::Rng;

use crate::cluster::Cluster;
use crate::exporter::parse_results;
use crate::reportgen::{self, Counts, GenKind, Generated, Spec};

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Reports present at the start (the population churns around it).
    pub reports: usize,
    /// Events (creates + updates + deletes) to write.
    pub events: u64,
    /// Force a relist after this many events.
    pub relist_every: u64,
    /// Events written while the watch is down before each compaction.
    pub burst: u64,
    /// Offered events per second (0 = as fast as possible).
    pub rate: f64,
    /// Generator seed.
    pub seed: u64,
    /// Wait before reading RSS (after ready, and after convergence).
    pub settle: Duration,
    /// How long to wait for the exporter to converge at the end.
    pub converge_timeout: Duration,
    /// The exporter binary.
    pub exporter: PathBuf,
    /// Fake server watch history (events).
    pub history_limit: usize,
}

impl SoakOptions {
    /// The defaults of `run --soak`.
    pub fn new(exporter: PathBuf) -> SoakOptions {
        SoakOptions {
            reports: 10_000,
            events: 1_000_000,
            relist_every: 100_000,
            burst: 100,
            rate: 20_000.0,
            seed: 1,
            settle: Duration::from_secs(3),
            converge_timeout: Duration::from_secs(120),
            exporter,
            history_limit: 100_000,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, Default)]
pub struct SoakResult {
    /// Events written.
    pub events: u64,
    /// Of which creates.
    pub creates: u64,
    /// Of which updates.
    pub updates: u64,
    /// Of which deletes.
    pub deletes: u64,
    /// Relists forced (compactions while the watch was down).
    pub relists_forced: u64,
    /// List requests the server saw after the initial sync.
    pub relists_observed: usize,
    /// Wall time of the event stream.
    pub write_secs: f64,
    /// Time from the last write until the counts matched.
    pub converge_secs: f64,
    /// VmRSS after the initial sync.
    pub rss_before: u64,
    /// VmRSS after the soak.
    pub rss_after: u64,
    /// VmHWM at the end.
    pub hwm: u64,
    /// Lowest and highest VmRSS sampled (about once a second) during the churn.
    pub rss_range: (u64, u64),
    /// Reports at the start and at the end.
    pub population: (usize, usize),
    /// Whether the final counts equal the from-scratch count.
    pub exact: bool,
    /// Whether the object gauge equals the server's object count.
    pub objects_exact: bool,
    /// A description of the difference, if any.
    pub diff: String,
    /// Exporter CPU over the whole soak.
    pub cpu: Duration,
}

impl SoakResult {
    /// RSS after / before.
    pub fn rss_ratio(&self) -> f64 {
        self.rss_after as f64 / self.rss_before.max(1) as f64
    }

    /// Whether RSS after the soak is at most 10% above RSS before it. The
    /// target guards against growth: ending lower (the allocator compacted
    /// under churn, or released what the initial list left) is no failure.
    pub fn rss_ok(&self) -> bool {
        self.rss_ratio() <= 1.10
    }

    /// Whether every soak criterion holds.
    pub fn pass(&self) -> bool {
        self.exact
            && self.objects_exact
            && self.rss_ok()
            && self.relists_observed as u64 >= self.relists_forced
    }

    /// A Markdown table.
    pub fn table(&self) -> String {
        let v = |ok: bool| if ok { "PASS" } else { "FAIL" };
        format!(
            "### soak: {} events ({} creates, {} updates, {} deletes), {} forced relists, population {} → {}\n\n\
             | measure | value | target | verdict |\n|---|---|---|---|\n\
             | RSS before → after (VmRSS) | {:.1} → {:.1} MiB ({:+.1}%) | at most +10% | {} |\n\
             | final counts vs from-scratch count of the server's objects | {} | equal | {} |\n\
             | policyreport_exporter_objects vs server objects | {} | equal | {} |\n\
             | relists observed (list requests) | {} | ≥ {} | {} |\n\
             | write time / convergence after the last write | {:.1} s / {:.2} s | | |\n\
             | exporter CPU over the soak, peak RSS (VmHWM) | {:.1} s, {:.1} MiB | | |\n\
             | VmRSS during the churn, sampled each second (min – max) | {:.1} – {:.1} MiB | | |\n",
            self.events,
            self.creates,
            self.updates,
            self.deletes,
            self.relists_forced,
            self.population.0,
            self.population.1,
            mib(self.rss_before),
            mib(self.rss_after),
            (self.rss_ratio() - 1.0) * 100.0,
            v(self.rss_ok()),
            if self.exact {
                "equal".to_owned()
            } else {
                self.diff.clone()
            },
            v(self.exact),
            if self.objects_exact {
                "equal"
            } else {
                "differ"
            },
            v(self.objects_exact),
            self.relists_observed,
            self.relists_forced,
            v(self.relists_observed as u64 >= self.relists_forced),
            self.write_secs,
            self.converge_secs,
            self.cpu.as_secs_f64(),
            mib(self.hwm),
            mib(self.rss_range.0),
            mib(self.rss_range.1),
        )
    }
}

/// Describes how two count maps differ.
pub fn diff_summary(expected: &Counts, seen: &Counts) -> String {
    let missing = expected.keys().filter(|k| !seen.contains_key(*k)).count();
    let extra = seen.keys().filter(|k| !expected.contains_key(*k)).count();
    let differ: Vec<_> = expected
        .iter()
        .filter_map(|(k, v)| seen.get(k).filter(|s| *s != v).map(|s| (k, *v, *s)))
        .collect();
    let mut out = format!(
        "{missing} series missing, {extra} unexpected, {} with other values; totals {} expected vs {} served",
        differ.len(),
        reportgen::total(expected),
        reportgen::total(seen)
    );
    if let Some((k, e, s)) = differ.first() {
        out.push_str(&format!(
            "; e.g. {}/{}/{}: {e} expected, {s} served",
            k[0], k[1], k[5]
        ));
    }
    out
}

/// New Pod-side reports for creates, generated in chunks with fresh seeds.
struct Spare {
    seed: u64,
    chunk: usize,
    queue: std::vec::IntoIter<Generated>,
}

impl Spare {
    fn next(&mut self) -> Generated {
        loop {
            if let Some(g) = self.queue.next() {
                return g;
            }
            self.seed += 1;
            let set = reportgen::generate(&Spec::with_reports(self.chunk, self.seed));
            let fresh: Vec<Generated> = set
                .reports
                .into_iter()
                .filter(|r| r.kind == GenKind::PolicyReport)
                .collect();
            self.queue = fresh.into_iter();
        }
    }
}

const OUTCOMES: [(&str, u64); 5] = [
    ("pass", 60),
    ("fail", 25),
    ("warn", 5),
    ("error", 5),
    ("skip", 5),
];

/// The churn state: what the server holds, mirrored.
struct Churn {
    live: Vec<Generated>,
    target: usize,
    rng: Rng,
    spare: Spare,
    result: SoakResult,
    k: u64,
}

impl Churn {
    fn step(&mut self, cluster: &Cluster) {
        self.k += 1;
        let pop = self.live.len();
        let (p_create, p_delete) = if pop > self.target {
            (15, 25)
        } else {
            (25, 15)
        };
        let roll = self.rng.below(100);
        if roll < p_create || pop < 2 {
            let g = self.spare.next();
            cluster.apply(&g);
            self.live.push(g);
            self.result.creates += 1;
        } else if roll < p_create + p_delete {
            // Only Pod-side reports come and go; Namespace reports stay.
            for _ in 0..8 {
                let i = self.rng.below(pop as u64) as usize;
                if self.live[i].kind == GenKind::PolicyReport {
                    let g = self.live.swap_remove(i);
                    cluster.delete(&g);
                    self.result.deletes += 1;
                    return;
                }
            }
            self.update(cluster);
        } else {
            self.update(cluster);
        }
    }

    fn update(&mut self, cluster: &Cluster) {
        let i = self.rng.below(self.live.len() as u64) as usize;
        let n = self.live[i].results();
        if n == 0 {
            return;
        }
        let j = self.rng.below(n as u64) as usize;
        let current = self.live[i].value["results"][j]["result"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let outcome = loop {
            let mut x = self.rng.below(100);
            let mut pick = "pass";
            for (o, w) in OUTCOMES {
                if x < w {
                    pick = o;
                    break;
                }
                x -= w;
            }
            if pick != current {
                break pick;
            }
        };
        reportgen::set_outcome(&mut self.live[i].value, j, outcome, 1_731_403_200 + self.k);
        cluster.apply(&self.live[i]);
        self.result.updates += 1;
    }
}

/// Runs the soak.
pub fn run_soak(opts: &SoakOptions) -> Result<SoakResult> {
    let set = reportgen::generate(&Spec::with_reports(opts.reports, opts.seed));
    let cluster = Cluster::start(opts.history_limit)?;
    cluster.load(&set.reports);
    let kubeconfig = cluster.kubeconfig();
    let exporter = Exporter::spawn(
        &opts.exporter,
        &[],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap_or_default())],
    )?;
    exporter.wait_ready(Duration::from_secs(600), Duration::from_millis(10))?;
    let initial = parse_results(&exporter.metrics()?);
    if initial != set.expected() {
        eprintln!(
            "soak: WARNING: counts after the initial sync differ: {}",
            diff_summary(&set.expected(), &initial)
        );
    }
    std::thread::sleep(opts.settle);
    let pid = exporter.pid;
    let cpu0 = procfs::cpu_time(pid).unwrap_or_default();
    let mut churn = Churn {
        target: set.reports.len(),
        live: set.reports,
        rng: Rng::new(opts.seed ^ 0x50A4),
        spare: Spare {
            seed: opts.seed.wrapping_mul(1_000_003),
            chunk: opts.reports.max(200),
            queue: Vec::new().into_iter(),
        },
        result: SoakResult {
            rss_before: procfs::rss(pid).unwrap_or_default(),
            ..SoakResult::default()
        },
        k: 0,
    };
    churn.result.population.0 = churn.live.len();
    cluster.server.clear_requests();
    let start = Instant::now();
    let mut next_relist = opts.relist_every;
    let mut last_report = Instant::now();
    let mut last_sample = Instant::now();
    while churn.k < opts.events {
        // Force the next relist only once the previous one has been seen
        // (the exporter waits out a backoff after losing its watch).
        if opts.relist_every > 0
            && churn.k >= next_relist
            && churn.k.is_multiple_of(64)
            && cluster.list_requests() as u64 >= churn.result.relists_forced
        {
            next_relist = churn.k + opts.relist_every;
            // The API server goes away (its watches drop and reconnects are
            // refused); changes happen while nobody watches; the history is
            // compacted, so the exporter's resourceVersion is too old when
            // it reconnects: it gets 410 Expired and must relist. (Dropping
            // the watches alone is not enough: the exporter reconnects
            // before the compaction.)
            cluster.rt.block_on(cluster.server.stop());
            for _ in 0..opts.burst {
                churn.step(&cluster);
            }
            cluster.server.compact();
            cluster.rt.block_on(cluster.server.resume())?;
            churn.result.relists_forced += 1;
            if std::env::var_os("BENCH_DEBUG_REQUESTS").is_some() {
                eprintln!(
                    "soak: forced relist {} at event {}",
                    churn.result.relists_forced, churn.k
                );
            }
        }
        churn.step(&cluster);
        if opts.rate > 0.0 && churn.k.is_multiple_of(16) {
            let due = Duration::from_secs_f64(churn.k as f64 / opts.rate);
            let el = start.elapsed();
            if due > el {
                std::thread::sleep(due - el);
            }
        }
        if churn.k.is_multiple_of(256) && last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            if let Some(rss) = procfs::rss(pid) {
                let range = &mut churn.result.rss_range;
                range.0 = if range.0 == 0 { rss } else { range.0.min(rss) };
                range.1 = range.1.max(rss);
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "soak: {} events, {} reports, exporter RSS {:.1} MiB",
                churn.k,
                churn.live.len(),
                mib(procfs::rss(pid).unwrap_or_default())
            );
        }
    }
    let mut r = churn.result;
    r.events = churn.k;
    r.population.1 = churn.live.len();
    r.write_secs = start.elapsed().as_secs_f64();
    let done = Instant::now();
    let expected = cluster.expected();
    let (namespaced, cluster_scoped) = cluster.object_counts();
    loop {
        let text = exporter.metrics()?;
        let seen = parse_results(&text);
        let objects = |res: &str| {
            sample_value(&text, "policyreport_exporter_objects", &[("resource", res)])
                .unwrap_or(-1.0)
        };
        r.exact = seen == expected;
        r.objects_exact = objects("policyreports.wgpolicyk8s.io") == namespaced as f64
            && objects("clusterpolicyreports.wgpolicyk8s.io") == cluster_scoped as f64;
        if r.exact && r.objects_exact {
            break;
        }
        if done.elapsed() > opts.converge_timeout {
            r.diff = diff_summary(&expected, &seen);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    r.converge_secs = done.elapsed().as_secs_f64();
    r.relists_observed = cluster.list_requests();
    if std::env::var_os("BENCH_DEBUG_REQUESTS").is_some() {
        for q in cluster.server.requests() {
            eprintln!("request: {} {} {}", q.method, q.path, q.query);
        }
    }
    std::thread::sleep(opts.settle);
    r.rss_after = procfs::rss(pid).unwrap_or_default();
    r.hwm = procfs::hwm(pid).unwrap_or_default();
    r.cpu = procfs::cpu_time(pid)
        .unwrap_or_default()
        .saturating_sub(cpu0);
    if r.relists_observed == 0 && r.relists_forced > 0 {
        eprintln!(
            "soak: no relist happened although {} were forced: the fake API server did not \
             answer 410 Expired for a compacted resourceVersion",
            r.relists_forced
        );
    }
    exporter.stop(Duration::from_secs(120));
    Ok(r)
}
