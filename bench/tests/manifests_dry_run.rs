//! deploy/ and the Helm chart against a real API server: everything they
//! render is applied with server-side dry-run, so kube-apiserver itself
//! validates each object (its own schemas, the Prometheus Operator's CRD
//! schemas for the ServiceMonitor and the PrometheusRule, defaulting and
//! admission) without creating anything. A warning fails as an error does.
//! scripts/check-deploy.sh checks the same renders offline.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use policyreport_bench::exporter::workspace_root;
use policyreport_bench::real::{RealCluster, kubectl_binary};

/// The Prometheus Operator release whose CRDs the cluster gets, read from its
/// Go module (`example/prometheus-operator-crd`).
const PROMETHEUS_OPERATOR: &str = "github.com/prometheus-operator/prometheus-operator@v0.85.0";

/// Where Go keeps a module's files (downloading it when needed).
fn module_dir(module: &str) -> Result<PathBuf> {
    let outside = tempfile::tempdir()?;
    let out = Command::new("go")
        .args(["mod", "download", "-json", module])
        .current_dir(outside.path())
        .env("GOFLAGS", "-mod=mod")
        .output()
        .context("running go mod download (Go is needed, as for scripts/cluster)")?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "go mod download {module}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    match info["Dir"].as_str() {
        Some(dir) if out.status.success() => Ok(PathBuf::from(dir)),
        _ => bail!("go mod download {module}: {}", info["Error"]),
    }
}

/// Runs a command and returns its stdout; anything on stderr fails it.
fn quiet(cmd: &mut Command, input: Option<&str>) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("stdin"))?;
    if let Some(input) = input {
        std::io::Write::write_all(&mut stdin, input.as_bytes())?;
    }
    drop(stdin);
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        bail!("{cmd:?} ({}):\n{stderr}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Helm: `$HELM`, else target/test-tools/bin/helm.
fn helm() -> Result<PathBuf> {
    let helm = std::env::var_os("HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/test-tools/bin/helm"));
    if !helm.is_file() {
        bail!(
            "helm is not built at {}: scripts/test --install builds it from harness/helm/go.mod",
            helm.display()
        );
    }
    Ok(helm)
}

/// `helm template` of the chart, as release `release` in `namespace`.
fn chart(release: &str, namespace: &str, values: &[&Path]) -> Result<String> {
    let mut cmd = Command::new(helm()?);
    cmd.args(["template", release])
        .arg(workspace_root().join("charts/policyreport-exporter"))
        .args(["--namespace", namespace]);
    for v in values {
        cmd.arg("--values").arg(v);
    }
    let out = cmd.output().context("running helm template")?;
    if !out.status.success() {
        bail!("helm template: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kubectl kustomize` of a folder.
fn kustomize(dir: &Path) -> Result<String> {
    quiet(
        Command::new(kubectl_binary()).arg("kustomize").arg(dir),
        None,
    )
}

/// Applies `yaml` with server-side dry-run; returns the objects it names,
/// sorted (`kind/name`), after checking that the API server accepted each.
fn dry_run(c: &RealCluster, yaml: &str) -> Result<Vec<String>> {
    let out = quiet(
        Command::new(kubectl_binary())
            .arg("--kubeconfig")
            .arg(c.admin_kubeconfig())
            .args([
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=policyreport-exporter-tests",
                "-f",
                "-",
            ]),
        Some(yaml),
    )?;
    let mut applied = Vec::new();
    for line in out.lines() {
        // `deployment.apps/name serverside-applied (server dry run)`
        let object = line.strip_suffix(" serverside-applied (server dry run)");
        let Some((resource, name)) = object.and_then(|o| o.split_once('/')) else {
            bail!("kubectl apply said: {line}");
        };
        let kind = resource.split('.').next().unwrap_or(resource);
        applied.push(format!("{kind}/{name}"));
    }
    applied.sort();
    Ok(applied)
}

/// The `kind/name` of every object of a YAML stream, sorted.
fn objects(yaml: &str) -> Vec<String> {
    let mut out: Vec<String> = serde_yaml_ng::Deserializer::from_str(yaml)
        .filter_map(|doc| {
            let doc: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).ok()?;
            Some(format!(
                "{}/{}",
                doc["kind"].as_str()?.to_lowercase(),
                doc["metadata"]["name"].as_str()?
            ))
        })
        .collect();
    out.sort();
    out
}

#[test]
#[ignore = "needs Go and a real control plane: scripts/test runs it"]
fn deploy_and_the_chart_pass_server_side_dry_run_on_a_real_api_server() -> Result<()> {
    let root = workspace_root();
    let helm_values = root.join("charts/policyreport-exporter/ci/all-options-values.yaml");
    // Render first: a missing tool fails before the cluster starts.
    // Overlays with the optional components, as a user's: in target/, since
    // kustomize takes only relative paths. The web-config component mounts
    // the Secret policyreport-exporter-tls, which it does not create: a
    // Deployment that names a missing Secret is valid.
    let overlay = |components: &[&str]| -> Result<String> {
        let dir = tempfile::tempdir_in(root.join("target"))?;
        let mut text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                        resources:\n  - ../../deploy\ncomponents:\n"
            .to_owned();
        for c in components {
            text.push_str(&format!("  - ../../deploy/components/{c}\n"));
        }
        std::fs::write(dir.path().join("kustomization.yaml"), text)?;
        kustomize(dir.path())
    };
    let renders = [
        ("deploy/", kustomize(&root.join("deploy"))?),
        ("deploy/ + networkpolicy", overlay(&["networkpolicy"])?),
        (
            "deploy/ + web-config + metrics-auth",
            overlay(&["web-config", "metrics-auth"])?,
        ),
        (
            "chart, defaults",
            chart("policyreport-exporter", "policyreport-exporter", &[])?,
        ),
        (
            "chart, every option",
            chart("pre", "observability", &[&helm_values])?,
        ),
    ];
    let crds = module_dir(PROMETHEUS_OPERATOR)?.join("example/prometheus-operator-crd");

    let c = RealCluster::start(&[])?;
    for crd in ["servicemonitors", "prometheusrules"] {
        let file = crds.join(format!("monitoring.coreos.com_{crd}.yaml"));
        c.kubectl(&["apply", "--server-side", "-f", &file.display().to_string()])?;
    }
    c.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
    ])?;
    // The chart installs into existing namespaces (helm --create-namespace).
    c.kubectl(&["create", "namespace", "observability"])?;
    c.kubectl(&["create", "namespace", "grafana"])?;

    for (what, yaml) in &renders {
        let want = objects(yaml);
        let applied = dry_run(&c, yaml).with_context(|| what.to_string())?;
        assert_eq!(applied, want, "{what}: every object accepted");
        eprintln!(
            "{what}: {} objects accepted by kube-apiserver (server-side dry-run)",
            applied.len()
        );
    }
    // Nothing was created.
    let found = c.kubectl(&[
        "get",
        "deployments,servicemonitors,prometheusrules",
        "-A",
        "-o",
        "name",
    ])?;
    assert_eq!(found.trim(), "", "a dry run creates nothing");
    Ok(())
}
