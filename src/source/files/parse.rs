//! One file into objects: read it (refusing it above `--max-file-size`),
//! tell JSON from YAML, skip `kubectl`'s warning lines, bound YAML nesting,
//! and hand on each object of a kind the exporter reads, or why it was
//! refused.

use std::path::Path;

use super::{json, yaml};
use crate::kind::Kind;
use crate::source::SourceObject;

/// Why a file could not be read as objects.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
    /// The JSON is malformed.
    #[error("parsing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The YAML is malformed.
    #[error("parsing YAML: {0}")]
    Yaml(#[from] serde_saphyr::Error),
    /// The YAML nests deeper than [`MAX_NESTING`].
    #[error("parsing YAML: nested deeper than {0} levels")]
    TooDeep(usize),
    /// The file is larger than `--max-file-size`.
    #[error(
        "the file has {len} bytes, more than --max-file-size ({max} bytes); raise --max-file-size \
         (POLICYREPORT_EXPORTER_MAX_FILE_SIZE) to read it"
    )]
    TooLarge {
        /// The file's size.
        len: u64,
        /// The limit.
        max: u64,
    },
}

/// Read and parse one file of `len` bytes, refusing it above `max`, and
/// hand what it holds to `out` (see [`parse_into`]). JSON when its
/// extension says so, else YAML.
pub fn read(
    path: &Path,
    len: u64,
    max: u64,
    keep_messages: bool,
    out: &mut dyn FnMut(Parsed),
) -> Result<(), FileError> {
    if len > max {
        return Err(FileError::TooLarge { len, max });
    }
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_into(&std::fs::read(path)?, json, keep_messages, out)
}

/// An object of a kind the exporter reads, but whose metadata is unusable.
#[derive(Debug)]
pub struct BadObject {
    /// Its kind.
    pub kind: Kind,
    /// Why it was refused.
    pub reason: String,
}

/// What parsing a file hands on, in file order.
// Nearly every value is an object: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// A report, Event or policy.
    Object(SourceObject),
    /// An object that could not be taken apart.
    Bad(BadObject),
    /// The objects handed on so far are void (the document turned out not
    /// to be a `List`); the file's objects start again.
    Restart,
}

impl Parsed {
    /// An object of `kind` taken apart, or why it could not be.
    pub(super) fn taken(kind: Kind, object: Result<SourceObject, impl std::fmt::Display>) -> Self {
        match object {
            Ok(object) => Parsed::Object(object),
            Err(e) => Parsed::Bad(BadObject {
                kind,
                reason: e.to_string(),
            }),
        }
    }
}

/// The objects of the kinds the exporter reads found in one file.
#[derive(Debug, Default)]
pub struct FileContents {
    /// Reports, Events and policies, in file order.
    pub objects: Vec<SourceObject>,
    /// Objects that could not be taken apart.
    pub bad: Vec<BadObject>,
}

impl FileContents {
    /// Keep what parsing handed on; a Restart voids the objects so far.
    pub(super) fn take(&mut self, parsed: Parsed) {
        match parsed {
            Parsed::Object(object) => self.objects.push(object),
            Parsed::Bad(bad) => self.bad.push(bad),
            Parsed::Restart => self.objects.clear(),
        }
    }
}

/// Deepest `[`/`{` nesting accepted in a file. serde_json refuses deeper
/// JSON by itself; YAML is checked before parsing, because the YAML parser
/// takes time quadratic in the depth to refuse it.
pub const MAX_NESTING: usize = 128;

/// Parse a file's bytes, all at once. JSON when `json` is set, else YAML
/// (one or more documents). Objects of other kinds are ignored, and so are
/// result messages.
pub fn parse(bytes: &[u8], json: bool) -> Result<FileContents, FileError> {
    let mut out = FileContents::default();
    parse_into(bytes, json, false, &mut |parsed| out.take(parsed))?;
    Ok(out)
}

/// Parse a file's bytes, handing each object to `out` as it is decoded.
/// Both formats stream the entries of a single `List` document as they are
/// decoded (see `json::stream` and `yaml::stream`). On an error,
/// what was handed on is void. Leading `kyverno apply` warning lines are
/// skipped (see `after_cli_warnings`). Reports keep each result's
/// message with `keep_messages`.
pub fn parse_into(
    bytes: &[u8],
    json: bool,
    keep_messages: bool,
    out: &mut dyn FnMut(Parsed),
) -> Result<(), FileError> {
    let bytes = after_cli_warnings(bytes);
    if json {
        return Ok(json::stream(bytes, keep_messages, out)?);
    }
    if flow_depth(bytes) > MAX_NESTING {
        return Err(FileError::TooDeep(MAX_NESTING));
    }
    Ok(yaml::stream(bytes, keep_messages, out)?)
}

/// How `kyverno apply` starts each warning it prints on stdout.
const CLI_WARNING: &[u8] = b"Warning: ";

/// `bytes` without the warning lines `kyverno apply --policy-report` prints
/// on stdout before its report: Kyverno 1.19.1 writes one line
/// `Warning: <policy file>: kyverno.io/v1 ClusterPolicy is deprecated …` per
/// ClusterPolicy it loads, in either output format, so the file a shell
/// redirect makes starts with them and parses as neither YAML (a second
/// `: ` in a plain scalar) nor JSON. No report, List or Kubernetes object
/// starts with such a line.
pub(super) fn after_cli_warnings(mut bytes: &[u8]) -> &[u8] {
    while bytes.starts_with(CLI_WARNING) {
        bytes = match memchr::memchr(b'\n', bytes) {
            Some(end) => &bytes[end + 1..],
            None => &[],
        };
    }
    bytes
}

/// The deepest nesting of `[` and `{` outside quoted strings and comments:
/// a cheap upper bound on what the YAML parser will have to descend into.
pub(super) fn flow_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    let mut line_start = true;
    let mut prev_space = true;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
            }
            b'#' if prev_space || line_start => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        line_start = b == b'\n';
        prev_space = b == b' ' || b == b'\t' || line_start;
        i += 1;
    }
    max
}
