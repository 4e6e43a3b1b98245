//! Binary entry point: parse flags, set up logging, run the command.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use policyreport_exporter::cli::{Cli, Command};
use policyreport_exporter::{app, logging, summary};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    logging::init(cli.log_format.into(), &cli.log_filter()).context("invalid --log-level")?;
    match cli.command {
        Command::Serve(args) => app::serve(args.into(), shutdown_signal()).await?,
        Command::Summary(args) => return Ok(ExitCode::from(summary::run(args.into()).await?)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
