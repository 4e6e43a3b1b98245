//! Where code lives: every file of the exporter's source is short enough to
//! read whole, its comments give reasons and figures, not the history of who
//! changed it when (that is git's and CHANGELOG.md's), and its top-level
//! modules import each other one way, the command line read only by the
//! entry point and `cli`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p, text)
        })
        .collect()
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(p, text)| format!("{} ({} lines)", p.display(), text.lines().count()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:#?}");
}

/// Whether a comment tells history: "session 3", "issue 14", "item 8 (…)".
fn tells_history(comment: &str) -> bool {
    let lower = comment.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '#')
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|w| {
        matches!(w[0], "session" | "issue" | "item")
            && w[1].trim_start_matches('#').parse::<u32>().is_ok()
    })
}

#[test]
fn comments_tell_no_history() {
    assert!(tells_history("// as in session 4"));
    assert!(tells_history("/// see issue #14"));
    assert!(!tells_history("/// one item per report"));
    let mut found = Vec::new();
    for (path, text) in sources() {
        for (i, line) in text.lines().enumerate() {
            if let Some(at) = line.find("//")
                && tells_history(&line[at..])
            {
                found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "comments telling history: {found:#?}");
}

/// A file's path under `src/`, with `/` separators.
fn relative(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = path.strip_prefix(&src).expect("under src/");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// The module path of a file under `src/`: `source/files/mod.rs` is
/// `["source", "files"]`, `kind.rs` is `["kind"]`.
fn module_path(rel: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    if parts.last() == Some(&"mod.rs") {
        parts.pop();
    } else if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs");
    }
    parts
}

/// The top-level modules allowed to name the command line (`crate::cli`,
/// clap): the entry point and the flags themselves. Every other module
/// takes a configuration type of its own, which `cli` maps the flags onto.
const READ_THE_COMMAND_LINE: [&str; 2] = ["main", "cli"];

#[test]
fn only_the_entry_point_and_cli_name_the_command_line() {
    let mut found = Vec::new();
    for (path, text) in sources() {
        let rel = relative(&path);
        if READ_THE_COMMAND_LINE.contains(&module_path(&rel)[0]) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            if ["crate::cli", "super::cli", "clap::", "use clap"]
                .iter()
                .any(|p| line.contains(p))
            {
                found.push(format!("src/{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "only {READ_THE_COMMAND_LINE:?} may name the command line or clap; \
         give the module a configuration type and map the flags onto it in cli.rs: {found:#?}"
    );
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The names a path continues with after `crate::` (or enough `super::` to
/// reach the crate) at the start of `rest`: one name, or the first name of
/// each item of a `{…}` group.
fn names_after(rest: &str) -> Vec<&str> {
    let ident = |s: &str| -> usize { s.find(|c: char| !is_ident(c)).unwrap_or(s.len()) };
    if !rest.starts_with('{') {
        return vec![&rest[..ident(rest)]];
    }
    let mut names = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => {
                depth += 1;
                item_start = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => item_start = true,
            c if item_start && is_ident(c) => {
                names.push(&rest[i..i + ident(&rest[i..])]);
                item_start = false;
            }
            _ => {}
        }
    }
    names
}

/// The crate-level names the file at module path `module` refers to, with
/// their line numbers: `crate::x`, `use crate::{x, y::z}`, and `super::x`
/// with as many `super::` as the file is deep. Inline modules are not
/// tracked: a `super::` inside one is read as if at the file's level.
fn crate_references<'t>(text: &'t str, module: &[&str]) -> Vec<(&'t str, usize)> {
    let mut refs = Vec::new();
    for (at, _) in text
        .match_indices("crate::")
        .chain(text.match_indices("super::"))
    {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == '$' || c == ':') {
            continue;
        }
        let mut rest = &text[at..];
        if let Some(r) = rest.strip_prefix("crate::") {
            rest = r;
        } else {
            let mut supers = 0;
            while let Some(r) = rest.strip_prefix("super::") {
                rest = r;
                supers += 1;
            }
            if supers != module.len() {
                continue;
            }
        }
        let line = text[..at].matches('\n').count() + 1;
        refs.extend(names_after(rest).into_iter().map(|n| (n, line)));
    }
    refs
}

/// A cycle in `graph`, if there is one, as the modules along it (the first
/// repeated at the end).
fn find_cycle(graph: &BTreeMap<&str, BTreeMap<&str, String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeMap<&'a str, String>>,
        done: &mut BTreeSet<&'a str>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn top_level_modules_import_each_other_one_way() {
    assert_eq!(
        names_after("{a, b::{c, d}, e as f};"),
        ["a", "b", "e"],
        "a group's first names"
    );
    assert_eq!(
        crate_references(
            "use crate::x::Y;\nuse super::super::z;\nuse super::w;\n$crate::v; a::crate::u",
            &["m", "n"]
        ),
        [("x", 1), ("z", 2)]
    );
    let files = sources();
    // lib.rs declares the modules and main.rs is the binary, which reaches
    // the library by its crate name: neither is a node of the graph.
    let roots = ["lib", "main"];
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(p, _)| module_path(&relative(p))[0].to_owned())
        .filter(|m| !roots.contains(&m.as_str()))
        .collect();
    let rels: Vec<String> = files.iter().map(|(p, _)| relative(p)).collect();
    let mut graph: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for (rel, (_, text)) in rels.iter().zip(&files) {
        let module = module_path(rel);
        let from = module[0];
        if roots.contains(&from) {
            continue;
        }
        for (to, line) in crate_references(text, &module) {
            if to != from && modules.contains(to) {
                graph
                    .entry(from)
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("src/{rel}:{line}"));
            }
        }
    }
    assert!(
        graph.contains_key("app") && graph.contains_key("aggregate"),
        "found no references: {graph:#?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        let edges: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                format!(
                    "{} -> {} ({})",
                    w[0],
                    w[1],
                    graph[w[0].as_str()][w[1].as_str()]
                )
            })
            .collect();
        panic!(
            "top-level modules import each other in a cycle: {}\n{}",
            cycle.join(" -> "),
            edges.join("\n")
        );
    }
}
