//! The documentation against the code: every metric family the exporter can
//! serve is in docs/metrics.md and every family named there is served; every
//! flag of `--help` (with its environment variable and default) is in
//! docs/configuration.md and every flag documented there exists; the README
//! stays short; and every relative link in README.md, CHANGELOG.md and
//! docs/*.md points to a file (and heading) that exists.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Exporter, repo};

/// The README is an introduction; the reference lives in docs/.
const README_MAX_BYTES: u64 = 12_288;

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

// ---- metric families ------------------------------------------------------

/// Every family the exporter serves, by the name its `# TYPE` line gives in
/// the Prometheus text format (`_total` for counters). The flags turn on the
/// families that are off by default: `--compat policy-reporter` (Policy
/// Reporter's two), `--namespace-labels` (`policyreport_namespace_info`);
/// `policyreport_reports_stale` is on at the default `--stale-after`.
fn served_families() -> BTreeSet<String> {
    let examples = repo().join("examples");
    let exporter = Exporter::serve(
        &[
            "--files",
            examples.to_str().expect("UTF-8 path"),
            "--compat",
            "policy-reporter",
            "--namespace-labels",
            "team",
        ],
        &[],
    );
    exporter.wait_ready(Duration::from_secs(60));
    let (status, body) = exporter.get("/metrics");
    assert_eq!(status, 200, "GET /metrics");
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Identifiers that look like metric names in `text`: starting with one of
/// the exporter's prefixes, not part of a recording rule (`a:b:c`) or a
/// longer word. A trailing `*` (`policyreport_exporter_*`) is kept.
fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIXES: [&str; 4] = [
        "policyreport_",
        "policy_report_",
        "cluster_policy_report_",
        "process_",
    ];
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let before = text[..i].chars().next_back();
        let starts = PREFIXES.iter().any(|p| rest.starts_with(p))
            && !before.is_some_and(|c| word(c) || c == ':' || c == '-' || c == '/' || c == '.');
        if !starts {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let len = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
        let mut name = rest[..len].to_owned();
        let after = bytes.get(i + len).copied();
        if after == Some(b'*') {
            name.push('*');
        }
        // Not metrics: a recording rule's middle (`a:name:b`), a bare
        // prefix (`grep '^policyreport_'`), the crate's name in a log filter.
        if after != Some(b':') && !name.ends_with('_') && name != "policyreport_exporter" {
            names.insert(name);
        }
        i += len.max(1);
    }
    names
}

/// The families in the first column of docs/metrics.md's "Families" table.
fn documented_families(metrics_md: &str) -> BTreeSet<String> {
    let table = metrics_md
        .split("\n## Families")
        .nth(1)
        .expect("docs/metrics.md has a \"## Families\" section");
    let table = table.split("\n## ").next().unwrap_or(table);
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap_or("");
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Does `name` (possibly `prefix*`) name a served family, or a sample of one?
fn names_a_family(name: &str, served: &BTreeSet<String>) -> bool {
    match name.strip_suffix('*') {
        Some(prefix) => served.iter().any(|f| f.starts_with(prefix)),
        None => served.contains(name),
    }
}

#[test]
fn metrics_md_lists_exactly_the_served_families() {
    let served = served_families();
    assert!(
        served.contains("policyreport_results") && served.len() > 20,
        "scraped too few families: {served:?}"
    );
    let doc = read("docs/metrics.md");
    let table = documented_families(&doc);
    let missing: Vec<_> = served.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&served).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/metrics.md's Families table and the exporter disagree.\n\
         Served but not in the table: {missing:?}\n\
         In the table but not served (with --compat policy-reporter --namespace-labels team): {unknown:?}"
    );
    // Every family name anywhere in the docs and the README exists.
    let mut stale = Vec::new();
    for rel in docs_files() {
        let text = read(&rel);
        for name in metric_names(&text) {
            if !names_a_family(&name, &served) {
                stale.push(format!("{rel}: {name}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "metric names in the docs that the exporter does not serve:\n{}",
        stale.join("\n")
    );
}

#[test]
fn metric_names_are_found_where_they_are_written() {
    let text = "a `policyreport_results{result=\"fail\"}` and policyreport_exporter_* \
                but not namespace:policyreport_violation_rate:ratio, '^policyreport_', \
                info,policyreport_exporter=debug, policyreport-exporter or label_team, \
                and process_threads.";
    let got: Vec<String> = metric_names(text).into_iter().collect();
    assert_eq!(
        got,
        [
            "policyreport_exporter_*",
            "policyreport_results",
            "process_threads"
        ]
    );
}

// ---- flags ----------------------------------------------------------------

/// One long flag as `--help` shows it.
#[derive(Debug, Default, Clone, PartialEq)]
struct HelpFlag {
    env: Option<String>,
    default: Option<String>,
}

/// `policyreport-exporter ARGS --help`, without any of the exporter's
/// environment variables set (clap prints their values).
fn help(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_policyreport-exporter"));
    cmd.args(args).arg("--help");
    for (k, _) in std::env::vars() {
        if k.starts_with("POLICYREPORT_EXPORTER_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run --help");
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// The long flags of a help text, with their `[env: …]` and `[default: …]`.
/// `--help` and `--version` are clap's own.
fn help_flags(text: &str) -> BTreeMap<String, HelpFlag> {
    let mut flags = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let t2 = t
            .strip_prefix("-h, ")
            .or_else(|| t.strip_prefix("-V, "))
            .unwrap_or(t);
        if (2..=6).contains(&indent) && t2.starts_with("--") {
            let name = t2[2..]
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_owned();
            flags.insert(name.clone(), HelpFlag::default());
            current = Some(name);
            continue;
        }
        let Some(name) = &current else { continue };
        let flag = flags.get_mut(name).expect("current flag");
        if let Some(v) = t.strip_prefix("[env: ") {
            flag.env = Some(v.split('=').next().unwrap_or("").to_owned());
        }
        if let Some(v) = t.strip_prefix("[default: ") {
            flag.default = Some(v.trim_end_matches(']').to_owned());
        }
    }
    flags.remove("help");
    flags.remove("version");
    flags
}

/// The subcommands `--help` lists (without `help`).
fn subcommands(top: &str) -> Vec<String> {
    let section = top
        .split("Commands:\n")
        .nth(1)
        .expect("--help lists commands");
    section
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// A row of a flag table in docs/configuration.md.
#[derive(Debug)]
struct DocFlag {
    env: Option<String>,
    default: String,
    /// `all`, or the commands that take it.
    commands: Vec<String>,
}

/// Rows `| \`--flag …\` | env | default | commands | meaning |`.
fn documented_flags(doc: &str) -> Result<BTreeMap<String, DocFlag>, String> {
    let mut flags = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<String> = line
            .replace("\\|", "\u{0}")
            .split('|')
            .map(|c| c.trim().replace('\u{0}', "|"))
            .collect();
        if cells.len() < 6 {
            return Err(format!("a flag row needs 5 columns: {line}"));
        }
        let name = cells[1]
            .trim_start_matches("`--")
            .split([' ', '`'])
            .next()
            .unwrap_or("")
            .to_owned();
        let env = cells[2]
            .split('`')
            .find(|s| s.starts_with("POLICYREPORT_EXPORTER_"))
            .map(str::to_owned);
        let commands = cells[4]
            .split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        let row = DocFlag {
            env,
            default: cells[3].clone(),
            commands,
        };
        if flags.insert(name.clone(), row).is_some() {
            return Err(format!("--{name} is documented twice"));
        }
    }
    Ok(flags)
}

#[test]
fn configuration_md_documents_exactly_the_flags_of_help() {
    let top = help(&[]);
    let mut by_command: BTreeMap<String, BTreeMap<String, HelpFlag>> = BTreeMap::new();
    by_command.insert("all".into(), help_flags(&top));
    let commands = subcommands(&top);
    assert!(commands.len() >= 2, "subcommands: {commands:?}");
    for c in &commands {
        by_command.insert(c.clone(), help_flags(&help(&[c])));
    }
    let doc = documented_flags(&read("docs/configuration.md")).unwrap_or_else(|e| panic!("{e}"));

    let mut problems = Vec::new();
    // Every flag of --help is documented, for its command, with its variable
    // and default.
    for (command, flags) in &by_command {
        for (name, h) in flags {
            let Some(d) = doc.get(name) else {
                problems.push(format!(
                    "--{name} ({command}) is not in docs/configuration.md"
                ));
                continue;
            };
            let listed = d.commands.iter().any(|c| c == command || c == "all");
            let global = by_command["all"].contains_key(name);
            if !listed || (global && d.commands != ["all"]) {
                problems.push(format!(
                    "--{name}: documented for {:?}, but --help shows it for {}",
                    d.commands,
                    if global { "all commands" } else { command }
                ));
            }
            if d.env != h.env {
                problems.push(format!(
                    "--{name}: environment variable {:?} in the docs, {:?} in --help",
                    d.env, h.env
                ));
            }
            if let Some(default) = &h.default
                && !d.default.contains(&format!("`{default}`"))
            {
                problems.push(format!(
                    "--{name}: default `{default}` in --help, {:?} in the docs",
                    d.default
                ));
            }
        }
    }
    // Every documented flag exists where the docs say.
    for (name, d) in &doc {
        for command in &d.commands {
            match by_command.get(command) {
                None => problems.push(format!("--{name}: unknown command {command:?}")),
                Some(flags) if !flags.contains_key(name) => problems.push(format!(
                    "--{name} is documented for {command} but `{} --help` has no such flag",
                    if command == "all" {
                        "policyreport-exporter"
                    } else {
                        command
                    }
                )),
                Some(_) => {}
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "docs/configuration.md and --help disagree:\n{}",
        problems.join("\n")
    );
}

// ---- README and links -----------------------------------------------------

#[test]
fn readme_fits_in_12_kib() {
    let len = std::fs::metadata(repo().join("README.md"))
        .expect("README.md")
        .len();
    assert!(
        len <= README_MAX_BYTES,
        "README.md is {len} bytes, more than {README_MAX_BYTES}: move reference material to docs/"
    );
}

/// README.md, CHANGELOG.md and docs/*.md, relative to the repository.
fn docs_files() -> Vec<String> {
    let mut files = vec!["README.md".to_owned(), "CHANGELOG.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The targets of inline links `[text](target)` outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code spans are not links.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// The anchors GitHub gives a Markdown file's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = (!fenced)
            .then(|| line.trim_start_matches('#'))
            .filter(|h| line.starts_with('#') && h.starts_with(' '))
        else {
            continue;
        };
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn anchors_follow_githubs_rules() {
    let a = anchors(
        "# A `b` c\n## Admissions: blocked, and (what) Enforce\n## x\n## x\n```\n# no\n```\n",
    );
    let want: BTreeSet<String> = ["a-b-c", "admissions-blocked-and-what-enforce", "x", "x-1"]
        .map(String::from)
        .into();
    assert_eq!(a, want);
}

#[test]
fn relative_links_resolve() {
    let mut broken = Vec::new();
    for rel in docs_files() {
        let text = read(&rel);
        let dir = Path::new(&rel).parent().unwrap_or(Path::new("")).to_owned();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let file: PathBuf = if path.is_empty() {
                PathBuf::from(&rel)
            } else {
                dir.join(path)
            };
            let full = repo().join(&file);
            if !full.exists() {
                broken.push(format!("{rel}: {target} (no {})", file.display()));
                continue;
            }
            if let Some(fragment) = fragment
                && full.extension().is_some_and(|e| e == "md")
            {
                let text = std::fs::read_to_string(&full).expect("linked file");
                if !anchors(&text).contains(fragment) {
                    broken.push(format!(
                        "{rel}: {target} (no heading #{fragment} in {})",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken relative links:\n{}",
        broken.join("\n")
    );
}
