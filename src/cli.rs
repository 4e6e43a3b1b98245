//! Command-line flags, and their mapping onto the configuration each module
//! owns ([`app::ServeConfig`], [`summary::Options`], [`logging::Format`]).
//! Every flag can also be set through an environment variable named
//! `POLICYREPORT_EXPORTER_<FLAG>`. Only the entry point reads this module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aggregate::{self, LabelOptions, Outputs};
use crate::{app, logging, source, summary};

/// Prometheus exporter for Kyverno PolicyReports: pass/fail counts per
/// namespace, policy and category, bounded by policies × namespaces.
#[derive(Debug, Parser)]
#[command(name = "policyreport-exporter", version, about, long_about = None)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "POLICYREPORT_EXPORTER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (for example `info` or
    /// `info,policyreport_exporter=debug`). Defaults to `info` for `serve`
    /// and `warn` for `summary`. kube_client is shown from `error` up unless
    /// the filter names it.
    #[arg(long, global = true, env = "POLICYREPORT_EXPORTER_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log filter: the flag, else the command's default (`info` for
    /// `serve`, `warn` for `summary`). kube_client warns once per cut watch
    /// connection, which the watcher resumes by itself, and the exporter
    /// reports failures itself; so unless the filter names `kube_client`,
    /// its messages are shown from `error` up.
    pub fn log_filter(&self) -> String {
        let base = match (&self.log_level, &self.command) {
            (Some(level), _) => level.as_str(),
            (None, Command::Serve(_)) => "info",
            (None, Command::Summary(_)) => "warn",
        };
        if base.contains("kube_client") {
            base.to_owned()
        } else {
            format!("{base},kube_client=error")
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch reports and serve metrics over HTTP.
    Serve(ServeArgs),
    /// Print a one-shot rollout summary (per-namespace counts, violation
    /// rates, control compliance against targets, blocked admissions,
    /// policies by mode, a verdict per policy, report freshness per source,
    /// and with --failing the work list of failing resources) and exit.
    ///
    /// Exit status: 0 when every input was read and every target is met (or
    /// --fail-on-targets is off); 3 with --fail-on-targets when a target is
    /// missed or not measurable, or no report was read at all; 4 when a file could not be read,
    /// was too large or did not parse, or an object was invalid (unless
    /// --allow-invalid); 4 wins over 3. 1 for other errors (unknown --target
    /// or --control, bad controls file, --timeout reached); 2 for unusable
    /// flags.
    Summary(SummaryArgs),
}

/// Where objects come from: shared by `serve` and `summary`.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Read reports, Events and policies from this file or folder (searched
    /// recursively for .yaml, .yml and .json) instead of a cluster. Repeat
    /// the flag for several paths; the environment variable takes a
    /// comma-separated list.
    #[arg(
        long = "files",
        value_name = "PATH",
        env = "POLICYREPORT_EXPORTER_FILES",
        value_delimiter = ','
    )]
    pub files: Vec<PathBuf>,
    /// Kubeconfig context to use (default: the current context, or the
    /// in-cluster configuration).
    #[arg(long, env = "POLICYREPORT_EXPORTER_CONTEXT")]
    pub context: Option<String>,
    /// Page size of the initial list requests.
    #[arg(long, default_value_t = 500, env = "POLICYREPORT_EXPORTER_PAGE_SIZE")]
    pub page_size: u32,
    /// YAML file of compliance controls, replacing the built-in ones
    /// (resource-limits, approved-registries, secure-context). See
    /// docs/metrics.md, "Controls", for the format.
    #[arg(long, value_name = "FILE", env = "POLICYREPORT_EXPORTER_CONTROLS")]
    pub controls: Option<PathBuf>,
    /// A request to the API server that receives nothing for this many
    /// seconds fails and is retried. Keep it above the watch timeout (290 s).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 300,
        env = "POLICYREPORT_EXPORTER_REQUEST_TIMEOUT"
    )]
    pub request_timeout: u64,
    /// How often API discovery runs again, in seconds, so that kinds
    /// installed later are watched and removed ones dropped.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        env = "POLICYREPORT_EXPORTER_DISCOVERY_INTERVAL"
    )]
    pub discovery_interval: u64,
    /// How often each watch restarts with a full list (such as 10m, 90s,
    /// 1h; 0 disables), replacing the resource's objects atomically. Bounds
    /// how long a deletion the server never sent (Kyverno's reports-server
    /// after a watch gap) stays counted.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10m",
        value_parser = parse_duration,
        env = "POLICYREPORT_EXPORTER_RELIST_INTERVAL"
    )]
    pub relist_interval: Duration,
    /// After a failed request, how long a watch must stay quiet (no new
    /// error) to count as recovered when no object arrives to prove it.
    /// Hidden: the default suits real clusters; the tests shorten it.
    #[arg(
        long,
        hide = true,
        value_name = "DURATION",
        default_value = "45s",
        value_parser = parse_duration,
        env = "POLICYREPORT_EXPORTER_QUIET_RECOVERY"
    )]
    pub quiet_recovery: Duration,
    /// Files larger than this are skipped with an error (bytes, or with a
    /// suffix: 64Mi, 1Gi, 500M). The default reads the `kubectl get -o json`
    /// export of a large cluster; lower it to bound memory on small nodes.
    #[arg(long, value_name = "SIZE", default_value = "1Gi", value_parser = parse_size, env = "POLICYREPORT_EXPORTER_MAX_FILE_SIZE")]
    pub max_file_size: u64,
    /// Count only namespaces matching one of these globs (comma-separated,
    /// such as `team-*,prod`). Cluster-scoped reports count regardless.
    #[arg(
        long,
        value_name = "GLOB,...",
        value_delimiter = ',',
        env = "POLICYREPORT_EXPORTER_NAMESPACE_INCLUDE"
    )]
    pub namespace_include: Vec<String>,
    /// Leave out namespaces matching any of these globs (comma-separated,
    /// such as `kube-*,cert-manager`): their results, controls, blocked
    /// admissions and modes are not counted. An empty item (`,kube-*`) also
    /// leaves out cluster-scoped reports.
    #[arg(
        long,
        value_name = "GLOB,...",
        value_delimiter = ',',
        env = "POLICYREPORT_EXPORTER_NAMESPACE_EXCLUDE"
    )]
    pub namespace_exclude: Vec<String>,
    /// A report whose newest result timestamp is older than this (such as
    /// 3h, 90m; 0 turns staleness off) counts in policyreport_reports_stale.
    /// Kyverno's background scan rewrites every timestamp each
    /// --backgroundScanInterval (1h by default): the default is two
    /// intervals plus margin.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = STALE_AFTER_DEFAULT.as_str(),
        value_parser = parse_duration,
        env = "POLICYREPORT_EXPORTER_STALE_AFTER"
    )]
    pub stale_after: Duration,
}

/// `--stale-after`'s default ([`aggregate::DEFAULT_STALE_AFTER`]) as
/// `--help` shows it.
static STALE_AFTER_DEFAULT: LazyLock<String> =
    LazyLock::new(|| duration_text(aggregate::DEFAULT_STALE_AFTER));

/// A duration in jiff's friendly format, which [`parse_duration`] reads.
fn duration_text(d: Duration) -> String {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    format!("{d:#}")
}

/// Parse a duration such as `10m`, `90s`, `1h30m` or `0`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s}: expected a duration such as 10m or 90s ({e})"))?;
    Duration::try_from(d).map_err(|_| format!("{s}: must not be negative"))
}

/// Parse a size such as `1048576`, `64Mi`, `1Gi`, `500M` or `10k`.
fn parse_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s}: expected a number of bytes"))?;
    let factor: u64 = match unit {
        "" | "B" => 1,
        "k" | "K" | "KB" => 1_000,
        "Ki" | "KiB" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "Mi" | "MiB" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "Gi" | "GiB" => 1 << 30,
        _ => return Err(format!("{s}: unknown unit {unit:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{s}: too large"))
}

impl From<SourceArgs> for app::StartConfig {
    fn from(args: SourceArgs) -> Self {
        Self {
            source: source::Config {
                files: args.files,
                context: args.context,
                page_size: args.page_size,
                request_timeout: Duration::from_secs(args.request_timeout),
                discovery_interval: Duration::from_secs(args.discovery_interval),
                relist_interval: args.relist_interval,
                quiet_recovery: args.quiet_recovery,
                max_file_size: args.max_file_size,
            },
            controls: args.controls,
            namespace_include: args.namespace_include,
            namespace_exclude: args.namespace_exclude,
            stale_after: args.stale_after,
        }
    }
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where objects come from. With --files, changes to the files are
    /// followed.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Address to serve /metrics, /healthz and /readyz on.
    #[arg(
        long,
        default_value = "0.0.0.0:8080",
        env = "POLICYREPORT_EXPORTER_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Extra labels for policyreport_results, comma-separated. `rule` adds
    /// the rule name; `kind` adds the subject's kind. Each multiplies the
    /// number of series.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        env = "POLICYREPORT_EXPORTER_EXTRA_LABELS"
    )]
    pub extra_labels: Vec<ExtraLabel>,
    /// Also serve another exporter's metric families, so that its alerts,
    /// recording rules and dashboards keep working during a migration.
    /// `policy-reporter`: Policy Reporter's simple-mode
    /// policy_report_result and cluster_policy_report_result.
    #[arg(long, value_enum, env = "POLICYREPORT_EXPORTER_COMPAT")]
    pub compat: Option<Compat>,
    /// Namespace label keys to serve, comma-separated (such as
    /// `team,owner`): policyreport_namespace_info{namespace, label_team,
    /// label_owner} is 1 for every Namespace, named as kube-state-metrics'
    /// kube_namespace_labels, for joining teams onto alerts.
    #[arg(
        long,
        value_name = "KEY,...",
        value_delimiter = ',',
        env = "POLICYREPORT_EXPORTER_NAMESPACE_LABELS"
    )]
    pub namespace_labels: Vec<String>,
    /// TLS, basic auth and response headers of the HTTP server, from a web
    /// configuration file in the format of the Prometheus exporter-toolkit
    /// (tls_server_config, basic_auth_users, http_server_config.headers,
    /// rate_limit). The file and the certificates it names are re-read when
    /// they change; a change that does not load keeps the last good
    /// configuration serving. See docs/security.md.
    #[arg(
        long,
        value_name = "FILE",
        env = "POLICYREPORT_EXPORTER_WEB_CONFIG_FILE"
    )]
    pub web_config_file: Option<PathBuf>,
    /// Who may read /metrics. `kubernetes`: a bearer token that a
    /// TokenReview authenticates and a SubjectAccessReview authorizes for
    /// `get` on the path (as kube-rbac-proxy does), decisions cached for
    /// 60 s (refusals 10 s); /healthz and /readyz stay open.
    #[arg(
        long,
        value_enum,
        default_value_t = MetricsAuth::None,
        env = "POLICYREPORT_EXPORTER_METRICS_AUTH"
    )]
    pub metrics_auth: MetricsAuth,
}

/// Values of `--metrics-auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MetricsAuth {
    /// Anyone who can connect may read /metrics.
    None,
    /// Kubernetes TokenReview and SubjectAccessReview of the scraper's token.
    Kubernetes,
}

impl From<MetricsAuth> for app::MetricsAuth {
    fn from(auth: MetricsAuth) -> Self {
        match auth {
            MetricsAuth::None => Self::None,
            MetricsAuth::Kubernetes => Self::Kubernetes,
        }
    }
}

/// Values of `--extra-labels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExtraLabel {
    /// The rule name.
    Rule,
    /// The kind of the result's subject.
    Kind,
}

impl From<ExtraLabel> for aggregate::ExtraLabel {
    fn from(label: ExtraLabel) -> Self {
        match label {
            ExtraLabel::Rule => Self::Rule,
            ExtraLabel::Kind => Self::Kind,
        }
    }
}

impl ServeArgs {
    /// What these flags add to the aggregate.
    pub fn outputs(&self) -> Outputs {
        let extra: Vec<aggregate::ExtraLabel> =
            self.extra_labels.iter().map(|&l| l.into()).collect();
        Outputs {
            labels: LabelOptions::of(&extra),
            policy_reporter: self.compat == Some(Compat::PolicyReporter),
            namespace_labels: self.namespace_labels.clone(),
        }
    }
}

impl From<ServeArgs> for app::ServeConfig {
    fn from(args: ServeArgs) -> Self {
        Self {
            outputs: args.outputs(),
            start: args.source.into(),
            listen: args.listen,
            web_config_file: args.web_config_file,
            metrics_auth: args.metrics_auth.into(),
        }
    }
}

/// Other exporters whose metric families `--compat` serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compat {
    /// Kyverno's Policy Reporter (v3, `metrics.mode: simple`).
    PolicyReporter,
}

/// Flags of `summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Where objects come from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table, env = "POLICYREPORT_EXPORTER_OUTPUT")]
    pub output: Output,
    /// Exit with status 3 when a target is missed or not measurable (a
    /// source with fail results and not a single pass), or when no report
    /// was read at all (nothing to judge is not a pass).
    #[arg(long, env = "POLICYREPORT_EXPORTER_FAIL_ON_TARGETS")]
    pub fail_on_targets: bool,
    /// Accept partial input: files that cannot be read or parsed and invalid
    /// objects are still named on stderr and counted under `input`, but do
    /// not make the exit status 4.
    #[arg(long, env = "POLICYREPORT_EXPORTER_ALLOW_INVALID")]
    pub allow_invalid: bool,
    /// Override a control's target compliance, as CONTROL=PERCENT
    /// (repeatable). Targets default to the controls' own (100%).
    #[arg(long = "target", value_name = "CONTROL=PERCENT", value_parser = parse_target)]
    pub targets: Vec<(String, f64)>,
    /// The highest acceptable overall violation rate, fail ÷ (pass + fail),
    /// in percent; the rate must stay below it.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 1.0,
        env = "POLICYREPORT_EXPORTER_TARGET_VIOLATION_RATE"
    )]
    pub target_violation_rate: f64,
    /// The work list (`--failing` and its filters).
    #[command(flatten)]
    pub failing: FailingFilter,
    /// Give up when the cluster has not been listed completely after this
    /// many seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 300,
        env = "POLICYREPORT_EXPORTER_TIMEOUT"
    )]
    pub timeout: u64,
}

/// `summary --failing`: the work list of failing resources, and its filters.
/// Each filter flag is repeatable (any value matches); different flags must
/// all match.
#[derive(Debug, Default, Args)]
pub struct FailingFilter {
    /// List every failing subject once per result (fail, warn or error) with
    /// its namespace, kind, name, policy, rule, message and controls,
    /// grouped by policy, then namespace.
    #[arg(long, env = "POLICYREPORT_EXPORTER_FAILING")]
    pub failing: bool,
    /// Only entries whose policy matches this glob (`*` matches `/` too).
    #[arg(long = "policy", value_name = "GLOB", requires = "failing")]
    pub policies: Vec<String>,
    /// Only entries whose namespace matches this glob.
    #[arg(long = "namespace", value_name = "GLOB", requires = "failing")]
    pub namespaces: Vec<String>,
    /// Only entries whose result belongs to this control.
    #[arg(long = "control", value_name = "NAME", requires = "failing")]
    pub control_names: Vec<String>,
    /// Only entries about subjects of this kind (case-insensitive).
    #[arg(long = "kind", value_name = "KIND", requires = "failing")]
    pub kinds: Vec<String>,
    /// List at most this many entries (after sorting).
    #[arg(long, value_name = "N", requires = "failing")]
    pub limit: Option<usize>,
}

impl From<SummaryArgs> for summary::Options {
    fn from(args: SummaryArgs) -> Self {
        Self {
            start: args.source.into(),
            output: args.output.into(),
            fail_on_targets: args.fail_on_targets,
            allow_invalid: args.allow_invalid,
            targets: args.targets,
            target_violation_rate: args.target_violation_rate,
            failing: args.failing.into(),
            timeout: Duration::from_secs(args.timeout),
        }
    }
}

impl From<FailingFilter> for summary::FailingFilter {
    fn from(f: FailingFilter) -> Self {
        Self {
            failing: f.failing,
            policies: f.policies,
            namespaces: f.namespaces,
            control_names: f.control_names,
            kinds: f.kinds,
            limit: f.limit,
        }
    }
}

fn parse_target(s: &str) -> Result<(String, f64), String> {
    let (name, pct) = s.split_once('=').ok_or("expected CONTROL=PERCENT")?;
    let pct: f64 = pct
        .trim_end_matches('%')
        .parse()
        .map_err(|e| format!("{pct}: {e}"))?;
    if !(0.0..=100.0).contains(&pct) || name.is_empty() {
        return Err(format!(
            "{s}: expected a control name and a percentage from 0 to 100"
        ));
    }
    Ok((name.to_owned(), pct))
}

/// Output formats of `summary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned text tables.
    Table,
    /// One JSON document.
    Json,
    /// Markdown for CI pages (GitHub job summaries, GitLab merge request
    /// notes): the targets with verdict marks, the verdict per policy, and
    /// the first entries of the work list with a count of the rest.
    Markdown,
}

impl From<Output> for summary::Output {
    fn from(output: Output) -> Self {
        match output {
            Output::Table => Self::Table,
            Output::Json => Self::Json,
            Output::Markdown => Self::Markdown,
        }
    }
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormat> for logging::Format {
    fn from(format: LogFormat) -> Self {
        match format {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
    }
}

#[cfg(test)]
mod tests;
