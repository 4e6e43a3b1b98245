//! Reproducible benchmark of policyreport-exporter, and the harness of the
//! tests against a real API server.
//!
//! - [`reportgen`]: a deterministic generator of report sets shaped like Kyverno's.
//! - [`admission`]: a deterministic generator of Kyverno's per-occurrence admission Events.
//! - [`run`]: the end-to-end benchmark of the real exporter binary against the
//!   fake API server, with the floor and jq baselines on the same bytes.
//! - [`soak`]: a long churn of creates, updates and deletes with forced relists.
//! - [`floor`]: the floor baseline, plain serde decoding into structs that borrow every string.
//! - [`kubectl`]: objects written as `kubectl get -o json` and `-o yaml` print them.
//! - [`compressed`]: gzip-compressed scrapes against plain ones.
//! - [`glue`]: the only place that touches the exporter's library API.
//! - [`memory`]: steady RSS per report and per live admission Event, for sizing.
//! - [`unpaged`]: the unpaged sync, replay and relist row (reports-server mode).
//! - [`real`]: a real etcd and kube-apiserver (`scripts/cluster`), for the
//!   tests of `tests/real_apiserver.rs`, and with real Kyverno (`--kyverno`)
//!   for `tests/kyverno_walk.rs`; [`realrow`], the real-server row.
//! - [`prometheus`]: a real Prometheus that scrapes exporters and evaluates
//!   the rules of `deploy/`.
//!
//! `cargo run --release -p policyreport-bench -- run` prints the tables;
//! `docs/benchmarks.md` explains them.

pub mod admission;
pub mod cluster;
pub mod compressed;
pub mod exporter;
pub mod floor;
pub mod glue;
pub mod kubectl;
pub mod memory;
pub mod prometheus;
pub mod real;
pub mod realrow;
pub mod reportgen;
pub mod run;
pub mod soak;
pub mod stats;
pub mod unpaged;
