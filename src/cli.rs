//! Command-line flags. Every flag can also be set through an environment
//! variable named `POLICYREPORT_EXPORTER_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Prometheus exporter for Kyverno PolicyReports: pass/fail counts per
/// namespace, policy and category, bounded by policies × namespaces.
#[derive(Debug, Parser)]
#[command(name = "policyreport-exporter", version, about, long_about = None)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "POLICYREPORT_EXPORTER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (for example `info` or
    /// `info,policyreport_exporter=debug`).
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "POLICYREPORT_EXPORTER_LOG_LEVEL"
    )]
    pub log_level: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch reports and serve metrics over HTTP.
    Serve(ServeArgs),
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Read reports from this file or folder (searched recursively for
    /// .yaml, .yml and .json) instead of a cluster, and follow its changes.
    /// Repeat the flag for several paths; the environment variable takes a
    /// comma-separated list.
    #[arg(
        long = "files",
        value_name = "PATH",
        env = "POLICYREPORT_EXPORTER_FILES",
        value_delimiter = ','
    )]
    pub files: Vec<PathBuf>,
    /// Address to serve /metrics, /healthz and /readyz on.
    #[arg(
        long,
        default_value = "0.0.0.0:8080",
        env = "POLICYREPORT_EXPORTER_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Kubeconfig context to use (default: the current context, or the
    /// in-cluster configuration).
    #[arg(long, env = "POLICYREPORT_EXPORTER_CONTEXT")]
    pub context: Option<String>,
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
    /// Page size of the initial list requests.
    #[arg(long, default_value_t = 500, env = "POLICYREPORT_EXPORTER_PAGE_SIZE")]
    pub page_size: u32,
    /// YAML file of compliance controls, replacing the built-in ones
    /// (resource-limits, approved-registries, secure-context). See the
    /// README for the format.
    #[arg(long, value_name = "FILE", env = "POLICYREPORT_EXPORTER_CONTROLS")]
    pub controls: Option<PathBuf>,
}

/// Optional labels of policyreport_results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExtraLabel {
    /// The rule name.
    Rule,
    /// The kind of the result's subject.
    Kind,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_serve_flags() {
        let cli = Cli::try_parse_from([
            "x",
            "serve",
            "--files",
            "a",
            "--files",
            "b",
            "--extra-labels",
            "rule,kind",
            "--listen",
            "127.0.0.1:9",
        ])
        .expect("valid flags");
        let Command::Serve(s) = cli.command;
        assert_eq!(s.files, vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(s.extra_labels, vec![ExtraLabel::Rule, ExtraLabel::Kind]);
        assert_eq!(s.listen.port(), 9);
    }
}
