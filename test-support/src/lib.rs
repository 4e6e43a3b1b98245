//! Helpers shared by the integration tests of `tests/` and the benchmark of
//! `bench/`, so that both start, read and measure the exporter the same way.
//!
//! - [`exporter`]: the real exporter binary as a child process, ready when
//!   `/readyz` says so.
//! - [`http`]: minimal HTTP/1.1 clients for the exporter's and Prometheus's
//!   answers.
//! - [`metrics`]: parsing the Prometheus text the exporter serves.
//! - [`procfs`]: CPU and memory of processes and of the machine, from `/proc`.
//! - [`rng`]: a small seeded random generator.

#![warn(missing_docs)]

pub mod exporter;
pub mod http;
pub mod metrics;
pub mod procfs;
pub mod rng;
