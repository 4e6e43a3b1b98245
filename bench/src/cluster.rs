//! The fake Kubernetes API server, run in this process on its own runtime,
//! loaded with generated reports.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fake_apiserver::{FakeApiServer, ServerOptions};
use serde_json::Value;

use crate::reportgen::{GenKind, Generated, expected_counts};

/// A fake cluster serving the wgpolicyk8s.io report kinds.
pub struct Cluster {
    /// The runtime the server runs on (kept alive with it).
    pub rt: tokio::runtime::Runtime,
    /// The server.
    pub server: FakeApiServer,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a server on a 2-thread runtime with `history_limit` events of
    /// watch history.
    pub fn start(history_limit: usize) -> Result<Cluster> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-apiserver")
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let options = ServerOptions {
            history_limit,
            ..ServerOptions::default()
        };
        let server = rt
            .block_on(FakeApiServer::start_with(options))
            .context("starting the fake API server")?;
        for kind in [GenKind::PolicyReport, GenKind::ClusterPolicyReport] {
            server.serve(kind.resource_def());
        }
        let dir = tempfile::tempdir().context("tempdir")?;
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .context("kubeconfig")?;
        Ok(Cluster { rt, server, dir })
    }

    /// The kubeconfig pointing at the server.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Creates or replaces a generated report.
    pub fn apply(&self, report: &Generated) {
        self.server
            .apply(&report.kind.resource_def(), report.value.clone());
    }

    /// Deletes a generated report.
    pub fn delete(&self, report: &Generated) -> bool {
        let (ns, name) = report.id();
        let ns = (!ns.is_empty()).then_some(ns.as_str());
        self.server.delete(&report.kind.resource_def(), ns, &name)
    }

    /// Loads reports.
    pub fn load<'a>(&self, reports: impl IntoIterator<Item = &'a Generated>) {
        for r in reports {
            self.apply(r);
        }
    }

    /// Everything the server holds now, per kind.
    pub fn objects(&self) -> Vec<(GenKind, Value)> {
        let mut out = Vec::new();
        for kind in [GenKind::PolicyReport, GenKind::ClusterPolicyReport] {
            for v in self.server.objects(&kind.resource_def()) {
                out.push((kind, v));
            }
        }
        out
    }

    /// The server's objects as `kubectl get policyreports,clusterpolicyreports -A -o json` prints them.
    pub fn list_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"apiVersion\":\"v1\",\"items\":[");
        let mut first = true;
        for kind in [GenKind::PolicyReport, GenKind::ClusterPolicyReport] {
            for json in self.server.objects_json(&kind.resource_def()) {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&json);
            }
        }
        out.extend_from_slice(b"],\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"\"}}");
        out
    }

    /// A from-scratch count of what the server holds now.
    pub fn expected(&self) -> crate::reportgen::Counts {
        let objects = self.objects();
        expected_counts(objects.iter().map(|(k, v)| (*k, v)))
    }

    /// Number of objects per kind.
    pub fn object_counts(&self) -> (usize, usize) {
        (
            self.server
                .objects_json(&GenKind::PolicyReport.resource_def())
                .len(),
            self.server
                .objects_json(&GenKind::ClusterPolicyReport.resource_def())
                .len(),
        )
    }

    /// Non-watch list requests (first pages only) for report kinds since
    /// the request log was last cleared: how many (re)lists happened.
    pub fn list_requests(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| {
                r.method == "GET"
                    && (r.path.ends_with("/policyreports")
                        || r.path.ends_with("/clusterpolicyreports"))
                    && !r.is_watch()
                    && r.param("continue").is_none_or(|c| c.is_empty())
            })
            .count()
    }
}
