//! `--metrics-auth kubernetes` against a real kube-apiserver
//! (`scripts/cluster`): the exporter runs as its own ServiceAccount with the
//! RBAC of `deploy/` plus `deploy/components/metrics-auth`, nothing more,
//! and reviews each scraper's token with a TokenReview and a
//! SubjectAccessReview. The ServiceAccount that component binds to the
//! metrics-reader ClusterRole reads /metrics; any other gets 403, no token
//! or a garbage one 401; the probes answer without a token; verdicts are
//! cached, so repeated scrapes cost the API server nothing more (counted in
//! its audit log). `#[ignore]`d in a plain `cargo test`; `scripts/test` runs
//! it.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use policyreport_bench::exporter::{Build, exporter_binary, workspace_root};
use policyreport_bench::real::{RealCluster, eventually, kubectl_binary};
use policyreport_test_support::exporter::Exporter;

/// The ClusterRoles and ClusterRoleBindings `deploy/components/metrics-auth`
/// adds, rendered through an overlay as a user's would be.
fn component_rbac() -> Result<String> {
    // Two levels under the workspace, as manifests_dry_run.rs writes its
    // overlays: kustomize wants relative paths.
    let overlay = tempfile::tempdir_in(workspace_root().join("target"))?;
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../deploy\n\
         components:\n  - ../../deploy/components/metrics-auth\n",
    )?;
    let out = Command::new(kubectl_binary())
        .arg("kustomize")
        .arg(overlay.path())
        .output()
        .context("kubectl kustomize")?;
    if !out.status.success() {
        bail!(
            "kubectl kustomize: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let docs: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| {
            (d.contains("kind: ClusterRole\n") || d.contains("kind: ClusterRoleBinding\n"))
                && d.contains("name: policyreport-exporter-metrics-")
        })
        .collect();
    if docs.len() != 4 {
        bail!(
            "expected 2 ClusterRoles and 2 bindings from the component, got {}",
            docs.len()
        );
    }
    Ok(docs.join("\n---\n"))
}

/// The HTTP status of GET `path` with this bearer token, if any.
fn status(e: &Exporter, path: &str, token: Option<&str>) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    let out = cmd
        .arg(format!("http://{}{path}", e.addr))
        .output()
        .expect("run curl (apt-get install curl; scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// TokenReviews and SubjectAccessReviews the exporter created so far.
fn reviews(c: &RealCluster) -> (usize, usize) {
    let audit = c.audit().expect("audit log");
    let count = |resource: &str| {
        audit
            .iter()
            .filter(|a| {
                a.verb == "create" && a.resource == resource && a.stage == "ResponseComplete"
            })
            .count()
    };
    (count("tokenreviews"), count("subjectaccessreviews"))
}

#[test]
#[ignore = "a real kube-apiserver: scripts/test runs it"]
fn only_the_bound_scraper_reads_metrics() -> Result<()> {
    let c = RealCluster::start(&[])?;
    c.kubectl_stdin(&["apply", "-f", "-"], &component_rbac()?)?;
    c.kubectl(&["create", "namespace", "monitoring"])?;
    c.kubectl(&["-n", "monitoring", "create", "serviceaccount", "prometheus"])?;
    c.kubectl(&["-n", "monitoring", "create", "serviceaccount", "grafana"])?;
    let token = |sa: &str| -> Result<String> {
        Ok(c.kubectl(&["-n", "monitoring", "create", "token", sa])?
            .trim()
            .to_owned())
    };
    let (scraper, other) = (token("prometheus")?, token("grafana")?);

    let bin = exporter_binary(Build::Reuse)?;
    let kc = c.exporter_kubeconfig().display().to_string();
    let e = Exporter::spawn(
        &bin,
        &["--metrics-auth", "kubernetes"],
        &[("KUBECONFIG", kc.as_str())],
    )?;
    // The probes need no token.
    e.wait_ready(Duration::from_secs(120), Duration::from_millis(200))?;
    assert_eq!(status(&e, "/healthz", None), 200);
    assert_eq!(status(&e, "/readyz", None), 200);

    assert_eq!(status(&e, "/metrics", None), 401, "no token");
    assert_eq!(
        status(&e, "/metrics", Some("garbage")),
        401,
        "a token the server does not know"
    );
    assert_eq!(
        status(&e, "/metrics", Some(&other)),
        403,
        "a ServiceAccount not bound"
    );
    assert_eq!(
        status(&e, "/", Some(&scraper)),
        403,
        "the reader role grants /metrics only"
    );
    let before = reviews(&c);
    for _ in 0..5 {
        assert_eq!(
            status(&e, "/metrics", Some(&scraper)),
            200,
            "the bound ServiceAccount"
        );
    }
    let after = reviews(&c);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "five scrapes within the cache time: one TokenReview and one SubjectAccessReview"
    );
    eprintln!(
        "reviews by the exporter: {after:?} (TokenReviews, SubjectAccessReviews) for 9 requests"
    );

    // Without the component's review permissions the exporter cannot tell
    // who a new token belongs to, and says so rather than letting it in.
    c.kubectl(&[
        "delete",
        "clusterrolebinding",
        "policyreport-exporter-metrics-auth",
    ])?;
    let fresh = token("prometheus")?;
    eventually(
        "a new token refused",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || match status(&e, "/metrics", Some(&fresh)) {
            503 => Ok(()),
            s => Err(format!("status {s}")),
        },
    )?;
    assert_eq!(
        status(&e, "/metrics", Some(&scraper)),
        200,
        "a cached verdict still holds"
    );
    Ok(())
}
