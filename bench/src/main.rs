//! `policyreport-bench`: generate report sets, run the benchmark, run the soak.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use policyreport_bench::cluster::Cluster;
use policyreport_bench::exporter::{Build, exporter_binary};
use policyreport_bench::memory::{self, MemoryOptions};
use policyreport_bench::real::RealCluster;
use policyreport_bench::realrow::{self, RealOptions};
use policyreport_bench::reportgen::{self, DEFAULT_POLICIES, Spec};
use policyreport_bench::run::{self, Options, Perf, Phase};
use policyreport_bench::soak::{self, SoakOptions};
use policyreport_bench::unpaged::{self, UnpagedOptions};

/// Reproducible benchmark of policyreport-exporter.
#[derive(Parser)]
#[command(name = "policyreport-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a realistic report set.
    Gen(GenArgs),
    /// Run the benchmark (or, with --soak, the soak) and print the tables.
    Run(RunArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A folder of multi-document YAML files (for `serve --files`).
    YamlDir,
    /// One `kubectl get -o json` List.
    List,
    /// A folder of `kubectl get -o json` Lists, `--per-file` reports each
    /// (the files mode's JSON input).
    KubectlJsonDir,
    /// A folder of `kubectl get -o yaml` Lists, `--per-file` reports each
    /// (the files mode's YAML input).
    KubectlYamlDir,
    /// Load a fake API server, write a kubeconfig for it and serve until Ctrl-C.
    Server,
    /// Create the reports (and their Namespaces) in the real API server that
    /// `scripts/cluster start DIR` runs (`--out DIR`).
    Cluster,
}

#[derive(Args)]
struct GenArgs {
    /// Total number of reports (Pods, their controllers, Namespaces).
    #[arg(long, default_value_t = 1000, conflicts_with = "pods")]
    reports: usize,
    /// Instead of --reports: the number of Pods (controllers and Namespaces come on top).
    #[arg(long)]
    pods: Option<usize>,
    /// Application namespaces (default: one per 250 reports, 4 to 400).
    #[arg(long)]
    namespaces: Option<usize>,
    /// Library policies applied to Pods (at most 22; 19 give 20 results per Pod report).
    #[arg(long, default_value_t = DEFAULT_POLICIES)]
    policies: usize,
    /// Seed; the same arguments always give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::List)]
    format: Format,
    /// Output folder (yaml-dir, kubectl-json-dir), file (list; "-" for stdout) or
    /// the folder of `scripts/cluster start DIR` (cluster).
    #[arg(long, default_value = "-")]
    out: PathBuf,
    /// Reports per file (yaml-dir, kubectl-json-dir).
    #[arg(long, default_value_t = 100)]
    per_file: usize,
    /// Where to write the kubeconfig (server).
    #[arg(long, default_value = "kubeconfig-bench")]
    kubeconfig: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    /// Report counts to measure at (none: only the files and unpaged rows).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [1_000usize, 10_000, 50_000])]
    sizes: Vec<usize>,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timed /metrics scrapes per size.
    #[arg(long, default_value_t = 1000)]
    scrapes: usize,
    /// Seconds of each update phase (0 skips updates).
    #[arg(long, default_value_t = 5.0)]
    update_secs: f64,
    /// Offered rate of the paced update phase (0 skips it).
    #[arg(long, default_value_t = 20_000.0)]
    paced_rate: f64,
    /// Skip the as-fast-as-possible update phase.
    #[arg(long)]
    no_max_phase: bool,
    /// Seconds to wait after /readyz before reading the steady RSS.
    #[arg(long, default_value_t = 3.0)]
    settle_secs: f64,
    /// Skip the jq baseline.
    #[arg(long)]
    no_jq: bool,
    /// Reports of the --files scale mode (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    files_reports: usize,
    /// Reports per file (a `List` each) in the --files scale mode.
    #[arg(long, default_value_t = 1000)]
    per_file: usize,
    /// Reports of the large-file row: one `kubectl get -o json` List read
    /// whole (0 skips it).
    #[arg(long, default_value_t = 50_000)]
    large_file_reports: usize,
    /// Reports of the large YAML file row: one `kubectl get -o yaml` List
    /// read whole (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    large_yaml_file_reports: usize,
    /// The exporter binary (default: built with cargo build --release).
    #[arg(long, env = "POLICYREPORT_EXPORTER_BIN")]
    exporter: Option<PathBuf>,
    /// Record these phases of the exporter with `perf record --call-graph dwarf`.
    #[arg(long, value_enum, value_delimiter = ',')]
    perf: Vec<Phase>,
    /// Folder for perf data.
    #[arg(long, default_value = "perf-data")]
    perf_out: PathBuf,
    /// perf sampling frequency (Hz).
    #[arg(long, default_value_t = 499)]
    perf_freq: u32,
    /// Also append the tables to this Markdown file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Reports of the unpaged (reports-server mode) row (0 skips it).
    #[arg(long, default_value_t = 50_000)]
    unpaged_reports: usize,
    /// Reports of the real-server row: a real kube-apiserver and etcd
    /// (`scripts/cluster`, needs Go) loaded with them (0 skips it).
    #[arg(long, default_value_t = 50_000)]
    real_reports: usize,
    /// Run the soak instead of the sizes.
    #[arg(long)]
    soak: bool,
    /// Run only the memory rows instead of the sizes: steady RSS per report
    /// and per live admission Event, and the peak through a forced relist.
    #[arg(long, conflicts_with = "soak")]
    memory: bool,
    /// Memory rows: report counts.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [50_000usize, 200_000])]
    memory_reports: Vec<usize>,
    /// Memory rows: live per-occurrence admission Event counts.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [50_000usize, 200_000])]
    memory_events: Vec<usize>,
    /// Memory rows: one with the reports of this many Pods (and their
    /// controllers) and this many live admission Events together, as
    /// PODS:EVENTS ("none" skips it).
    #[arg(long, default_value = "150000:50000")]
    memory_cluster: String,
    /// Soak: events to write.
    #[arg(long, default_value_t = 1_000_000)]
    soak_events: u64,
    /// Soak: reports at the start.
    #[arg(long, default_value_t = 10_000)]
    soak_reports: usize,
    /// Soak: offered events per second (0 = as fast as possible).
    #[arg(long, default_value_t = 20_000.0)]
    soak_rate: f64,
    /// Soak: force a relist every this many events.
    #[arg(long, default_value_t = 100_000)]
    relist_every: u64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Gen(args) => generate(args),
        Cmd::Run(args) => run(args),
    }
}

fn generate(args: GenArgs) -> Result<()> {
    let mut spec = Spec::with_reports(args.reports, args.seed);
    if let Some(p) = args.pods {
        spec.pods = Some(p);
        spec.namespaces = (p / 150).clamp(4, 400);
    }
    if let Some(n) = args.namespaces {
        spec.namespaces = n;
    }
    spec.policies = args.policies;
    let set = reportgen::generate(&spec);
    let counts = set.expected();
    let mut by_outcome = std::collections::BTreeMap::<&str, u64>::new();
    for (k, n) in &counts {
        *by_outcome.entry(k[5].as_str()).or_default() += n;
    }
    eprintln!(
        "{} reports ({} Pods), {} results, {} series; {:?}",
        set.reports.len(),
        set.reports.iter().filter(|r| r.subject == "Pod").count(),
        set.total_results(),
        counts.len(),
        by_outcome
    );
    match args.format {
        Format::List => {
            let bytes = serde_json::to_vec_pretty(&set.to_list())?;
            if args.out.as_os_str() == "-" {
                std::io::stdout().write_all(&bytes)?;
            } else {
                std::fs::write(&args.out, bytes)?;
            }
        }
        Format::YamlDir => {
            if args.out.as_os_str() == "-" {
                bail!("--format yaml-dir needs --out FOLDER");
            }
            let (files, bytes) = run::write_yaml_dir(&set, &args.out, args.per_file)?;
            eprintln!(
                "wrote {files} files, {bytes} bytes to {}",
                args.out.display()
            );
        }
        Format::KubectlJsonDir | Format::KubectlYamlDir => {
            if args.out.as_os_str() == "-" {
                bail!("--format kubectl-json-dir and kubectl-yaml-dir need --out FOLDER");
            }
            let json = args.format == Format::KubectlJsonDir;
            let files = run::write_kubectl_dir(&set, &args.out, args.per_file, json)?;
            let bytes: usize = files.iter().map(Vec::len).sum();
            eprintln!(
                "wrote {} files, {bytes} bytes to {}",
                files.len(),
                args.out.display()
            );
        }
        Format::Cluster => {
            if args.out.as_os_str() == "-" {
                bail!("--format cluster needs --out DIR, the folder of scripts/cluster start DIR");
            }
            let cluster = RealCluster::attach(&args.out)?;
            let objects: Vec<_> = set.reports.into_iter().map(|r| r.value).collect();
            let count = objects.len();
            let start = std::time::Instant::now();
            cluster.load(objects, 32)?;
            eprintln!(
                "created {} reports in {:.1} s",
                count,
                start.elapsed().as_secs_f64()
            );
        }
        Format::Server => {
            let cluster = Cluster::start(1_000_000)?;
            cluster.load(&set.reports);
            std::fs::copy(cluster.kubeconfig(), &args.kubeconfig)
                .context("writing the kubeconfig")?;
            eprintln!(
                "fake API server at {} with the reports loaded; kubeconfig: {}\n\
                 try: KUBECONFIG={} policyreport-exporter serve\nCtrl-C stops it.",
                cluster.server.url(),
                args.kubeconfig.display(),
                args.kubeconfig.display()
            );
            cluster.rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
        }
    }
    Ok(())
}

fn join(numbers: &[usize]) -> String {
    numbers
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn run(args: RunArgs) -> Result<()> {
    let exporter = match args.exporter {
        Some(p) => p,
        None => exporter_binary(Build::Release)?,
    };
    let mut out = String::new();
    let mut emit = |text: &str| {
        println!("{text}");
        out.push_str(text);
        out.push('\n');
    };
    if args.soak {
        let opts = SoakOptions {
            events: args.soak_events,
            reports: args.soak_reports,
            rate: args.soak_rate,
            relist_every: args.relist_every,
            seed: args.seed,
            settle: Duration::from_secs_f64(args.settle_secs),
            ..SoakOptions::new(exporter.clone())
        };
        let o = Options::new(exporter);
        emit(&run::header(&o));
        emit(&format!(
            "command: run --soak --soak-events {} --soak-reports {} --soak-rate {} --relist-every {}\n",
            opts.events, opts.reports, opts.rate, opts.relist_every
        ));
        let r = soak::run_soak(&opts)?;
        emit(&r.table());
        emit(&format!("soak: {}", if r.pass() { "PASS" } else { "FAIL" }));
    } else if args.memory {
        let cluster = match args.memory_cluster.as_str() {
            "none" => None,
            pe => {
                let parsed = pe
                    .split_once(':')
                    .and_then(|(p, e)| Some((p.parse().ok()?, e.parse().ok()?)));
                Some(parsed.context("--memory-cluster: PODS:EVENTS, or none")?)
            }
        };
        let opts = MemoryOptions {
            reports: args.memory_reports,
            events: args.memory_events,
            cluster,
            settle: Duration::from_secs_f64(args.settle_secs),
            ..MemoryOptions::new(exporter.clone(), args.seed)
        };
        emit(&run::header(&Options::new(exporter)));
        emit(&format!(
            "command: run --memory --memory-reports {} --memory-events {} --memory-cluster {}\n",
            join(&opts.reports),
            join(&opts.events),
            args.memory_cluster
        ));
        emit(&memory::run(&opts)?.table());
    } else {
        let mut opts = Options::new(exporter);
        opts.sizes = args.sizes;
        opts.seed = args.seed;
        opts.scrapes = args.scrapes;
        opts.update_secs = args.update_secs;
        opts.paced_rate = args.paced_rate;
        opts.max_phase = !args.no_max_phase;
        opts.settle = Duration::from_secs_f64(args.settle_secs);
        opts.jq = !args.no_jq;
        opts.files_reports = args.files_reports;
        opts.per_file = args.per_file;
        opts.perf = (!args.perf.is_empty()).then(|| Perf {
            phases: args.perf.clone(),
            out: args.perf_out.clone(),
            freq: args.perf_freq,
        });
        emit(&run::header(&opts));
        let mut fake_rows = Vec::new();
        for &size in &opts.sizes {
            let r = run::run_size(&opts, size)?;
            emit(&run::table(&r));
            fake_rows.push(r);
        }
        if args.real_reports > 0 {
            let o = RealOptions {
                exporter: opts.exporter.clone(),
                reports: args.real_reports,
                seed: opts.seed,
                settle: opts.settle,
            };
            let fake = fake_rows.iter().find(|r| r.reports == args.real_reports);
            emit(&realrow::run(&o)?.table(fake));
        }
        if opts.files_reports > 0 {
            let r = run::run_files(&opts, opts.files_reports)?;
            emit(&run::files_table(&r));
        }
        if args.unpaged_reports > 0 {
            let o = UnpagedOptions::new(opts.exporter.clone(), args.unpaged_reports, opts.seed);
            emit(&unpaged::run(&o)?.table());
        }
        for (reports, yaml) in [
            (args.large_file_reports, false),
            (args.large_yaml_file_reports, true),
        ] {
            if reports > 0 {
                let r = run::run_large_file(&opts, reports, yaml)?;
                emit(&run::large_file_table(&r));
            }
        }
    }
    if let Some(path) = args.out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(out.as_bytes())?;
    }
    Ok(())
}
