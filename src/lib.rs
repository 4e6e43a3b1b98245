//! policyreport-exporter: a Prometheus exporter for Kyverno's PolicyReports.
//!
//! Data flows one way: [`source`]s emit apply, delete and relist events; the
//! [`aggregate`] owns the state; [`metrics`] renders it; [`server`] serves
//! the rendering. [`app`] wires them together for the `serve` command;
//! [`summary`] prints a one-shot rollout report.

#![deny(unsafe_code, missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod aggregate;
pub mod app;
pub mod cli;
pub mod controls;
pub mod decode;
pub mod event;
pub mod exposition;
pub mod glob;
pub mod gzip;
pub mod kind;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod namespace;
pub mod namespace_filter;
pub mod object;
pub mod policy;
pub mod process;
pub mod report;
pub mod server;
pub mod source;
pub mod summary;
pub mod web;
// The only unsafe code: the calls into the C library.
#[allow(unsafe_code)]
mod sys;
