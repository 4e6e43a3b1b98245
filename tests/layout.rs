//! Where code lives: every file of the exporter's source is short enough to
//! read whole, and its comments give reasons and figures, not the history
//! of who changed it when (that is git's and CHANGELOG.md's).

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
