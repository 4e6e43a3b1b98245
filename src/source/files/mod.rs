//! The files source: reads reports from YAML and JSON files (single objects,
//! multi-document YAML, and `List` wrappers as kubectl writes them), then
//! watches the paths and re-reads what changed.
//!
//! Each file is its own [`Origin`]: a changed file is re-sent as a relist of
//! that file, and a removed file as an empty relist. Change detection
//! compares size, mtime and inode, so a missed notification is caught by the
//! next scan; a periodic scan runs as a fallback.

mod items;
mod json;
mod parse;
mod yaml;

pub use parse::{BadObject, FileContents, FileError, MAX_NESTING, Parsed, parse, parse_into, read};

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime};

use notify::RecursiveMode;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Closed, Config, Origin, Source, SourceError, SourceEvent};
use crate::kind::FILE_RESOURCE;

/// The sync target name of the files source.
pub const SYNC_TARGET: &str = "files";

/// How long file events are debounced before a rescan.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A full rescan runs at least this often, in case notifications were lost.
const RESCAN: Duration = Duration::from_secs(30);

/// Objects of one file a parse worker hands on before it waits for the
/// scan to take them: the bound on decoded reports held per file being
/// parsed, so a large file is streamed rather than held (see
/// docs/benchmarks.md, "One large file"). Large enough that files of 1,000
/// reports (the benchmark's) are parsed ahead whole.
const AHEAD: usize = 1024;

/// A step of reading one file, as [`read_in_order`] hands it on.
// Nearly every step is an object: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// What the parser found, in file order.
    Parsed(Parsed),
    /// The file is done: read whole, or refused (what was handed on of it
    /// is then void).
    End(Result<(), FileError>),
}

/// Read and parse `files` on up to `workers` threads, and hand what each
/// holds to `take` in path order (each file ending with [`Step::End`]),
/// until it returns false; reports keep their messages with
/// `keep_messages`. Up to twice `workers` files are parsed at once; each
/// worker hands its objects on through a channel of [`AHEAD`] objects and
/// waits when it is full, so memory stays bounded however large a file.
fn read_in_order(
    files: &[(PathBuf, Fingerprint)],
    workers: usize,
    max: u64,
    keep_messages: bool,
    mut take: impl FnMut(usize, Step) -> bool,
) {
    let one = |i: usize, out: &mut dyn FnMut(Parsed)| {
        // A parser bug must cost one file, never the source.
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            read(&files[i].0, files[i].1.len, max, keep_messages, out)
        }))
        .unwrap_or_else(|_| Err(panicked()))
    };
    if workers < 2 || files.len() < 2 {
        for i in 0..files.len() {
            let mut proceed = true;
            let end = one(i, &mut |p| proceed = proceed && take(i, Step::Parsed(p)));
            if !proceed || !take(i, Step::End(end)) {
                return;
            }
        }
        return;
    }
    std::thread::scope(|s| {
        let spawn = |i: usize| {
            let (tx, rx) = std_mpsc::sync_channel(AHEAD);
            // A send fails only when the scan stopped taking: nothing to do.
            let parsing = s.spawn(move || one(i, &mut |p| drop(tx.send(p))));
            (i, rx, parsing)
        };
        let mut parsing: VecDeque<_> = (0..(2 * workers).min(files.len())).map(spawn).collect();
        let mut next = parsing.len();
        while let Some((i, rx, worker)) = parsing.pop_front() {
            for parsed in rx.iter() {
                if !take(i, Step::Parsed(parsed)) {
                    return;
                }
            }
            let end = worker.join().unwrap_or_else(|_| Err(panicked()));
            if !take(i, Step::End(end)) {
                return;
            }
            if next < files.len() {
                parsing.push_back(spawn(next));
                next += 1;
            }
        }
    });
}

fn panicked() -> FileError {
    FileError::Io(std::io::Error::other("the parser panicked"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    /// Status change time: catches `chmod`, which changes nothing else.
    changed: (i64, i64),
}

struct Known {
    fingerprint: Fingerprint,
    origin: Origin,
}

/// The files of `--files` as a [`Source`]: [`FilesSource`] on a thread.
#[derive(Clone, Debug)]
pub struct Files {
    roots: Vec<PathBuf>,
    follow: bool,
    max_file_size: u64,
    keep_messages: bool,
}

impl Files {
    /// These files and folders, followed after the first read, any size.
    #[cfg(test)]
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots,
            follow: true,
            max_file_size: u64::MAX,
            keep_messages: false,
        }
    }

    /// The files `config` names; with `follow`, changes are followed after
    /// the first read, and with `keep_messages`, reports keep each result's
    /// message.
    pub fn of(config: &Config, follow: bool, keep_messages: bool) -> Self {
        Self {
            roots: config.files.clone(),
            follow,
            max_file_size: config.max_file_size,
            keep_messages,
        }
    }
}

impl Source for Files {
    fn sync_target(&self) -> &'static str {
        SYNC_TARGET
    }

    fn start(self: Box<Self>, tx: mpsc::Sender<SourceEvent>) -> Result<(), SourceError> {
        info!(paths = ?self.roots, follow = self.follow, "reading files");
        FilesSource::new(*self, tx)
            .spawn()
            .map(drop)
            .map_err(SourceError::Thread)
    }
}

/// Reads the configured paths and sends their reports to the aggregator.
pub struct FilesSource {
    files: Files,
    known: HashMap<PathBuf, Known>,
    reported: HashSet<String>,
    tx: mpsc::Sender<SourceEvent>,
}

impl FilesSource {
    /// A source over these files.
    pub fn new(files: Files, tx: mpsc::Sender<SourceEvent>) -> Self {
        Self {
            files,
            known: HashMap::new(),
            reported: HashSet::new(),
            tx,
        }
    }

    /// Start on a thread of its own: scan, report synced, then follow
    /// changes until the aggregator goes away.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("files-source".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let (signal_tx, signal_rx) = std_mpsc::channel::<()>();
        // Start watching before the first scan so no change is missed.
        let _debouncer = self
            .files
            .follow
            .then(|| Self::watch(&self.files.roots, signal_tx));
        let files = self.scan();
        info!(files, "read report files");
        let synced = self.send(SourceEvent::Synced {
            target: SYNC_TARGET.into(),
        });
        if synced.is_err() || !self.files.follow {
            return;
        }
        loop {
            match signal_rx.recv_timeout(RESCAN) {
                Ok(()) => while signal_rx.try_recv().is_ok() {},
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(RESCAN);
                }
            }
            if self.tx.is_closed() {
                return;
            }
            self.scan();
        }
    }

    fn watch(roots: &[PathBuf], signal: std_mpsc::Sender<()>) -> Option<impl Drop + use<>> {
        let debouncer = notify_debouncer_full::new_debouncer(DEBOUNCE, None, move |res| {
            if let Err(errors) = &res {
                debug!(?errors, "file watch error");
            }
            let _ = signal.send(());
        });
        let mut debouncer = match debouncer {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot watch files for changes; rescanning every {}s", RESCAN.as_secs());
                return None;
            }
        };
        for root in roots {
            // Watch a file's folder, so editors that replace the file are seen.
            let (target, mode) = if root.is_dir() {
                (root.clone(), RecursiveMode::Recursive)
            } else {
                let parent = root.parent().filter(|p| !p.as_os_str().is_empty());
                (
                    parent.unwrap_or(Path::new(".")).to_path_buf(),
                    RecursiveMode::NonRecursive,
                )
            };
            if let Err(e) = debouncer.watch(&target, mode) {
                warn!(path = %target.display(), error = %e, "cannot watch path for changes");
            }
        }
        Some(debouncer)
    }

    /// Compare the files on disk with what was sent; send what changed.
    /// Returns the number of files found.
    pub(crate) fn scan(&mut self) -> usize {
        let seen = self.walk();
        self.forget_gone(&seen);
        let count = seen.len();
        let mut changed: Vec<(PathBuf, Fingerprint)> = seen
            .into_iter()
            .filter(|(p, fp)| self.known.get(p).is_none_or(|k| k.fingerprint != *fp))
            .collect();
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        self.send_changed(&changed);
        count
    }

    /// The report files under the roots (any file named explicitly), with
    /// their fingerprints; what cannot be read is reported once.
    fn walk(&mut self) -> HashMap<PathBuf, Fingerprint> {
        let mut seen: HashMap<PathBuf, Fingerprint> = HashMap::new();
        let roots = std::mem::take(&mut self.files.roots);
        for root in &roots {
            let explicit_file = root.is_file();
            for entry in walkdir::WalkDir::new(root).follow_links(true) {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        let location = e.path().unwrap_or(root).display().to_string();
                        self.report_once(location, e.to_string());
                        continue;
                    }
                };
                if !entry.file_type().is_file()
                    || !(explicit_file || has_report_extension(entry.path()))
                {
                    continue;
                }
                match entry.metadata() {
                    Ok(m) => {
                        seen.insert(
                            entry.path().to_path_buf(),
                            Fingerprint {
                                len: m.len(),
                                modified: m.modified().ok(),
                                inode: m.ino(),
                                changed: (m.ctime(), m.ctime_nsec()),
                            },
                        );
                    }
                    Err(e) => self.report_once(entry.path().display().to_string(), e.to_string()),
                }
            }
        }
        self.files.roots = roots;
        seen
    }

    /// Drop the files sent before and no longer found: each one's relist
    /// ends empty.
    fn forget_gone(&mut self, seen: &HashMap<PathBuf, Fingerprint>) {
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|p| !seen.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(known) = self.known.remove(&path) {
                debug!(path = %path.display(), "file removed");
                let _ = self.relist_start(&known.origin).and_then(|()| {
                    self.send(SourceEvent::RelistEnd {
                        origin: known.origin,
                    })
                });
            }
        }
    }

    /// Send the changed files, sorted by path.
    fn send_changed(&mut self, changed: &[(PathBuf, Fingerprint)]) {
        // Files are parsed in parallel and sent in path order, each as a
        // relist of its origin streamed as it is decoded.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut current: Option<Origin> = None;
        let (max, keep_messages) = (self.files.max_file_size, self.files.keep_messages);
        read_in_order(changed, workers, max, keep_messages, |i, step| {
            let (path, fingerprint) = &changed[i];
            let origin = match &current {
                Some(origin) => origin.clone(),
                None => {
                    let origin = match self.known.get(path) {
                        Some(k) => k.origin.clone(),
                        None => Origin::File(Arc::from(path.as_path())),
                    };
                    current = Some(origin.clone());
                    if self.relist_start(&origin).is_err() {
                        return false;
                    }
                    origin
                }
            };
            let sent = match step {
                Step::Parsed(Parsed::Object(object)) => {
                    self.send(SourceEvent::RelistApply { origin, object })
                }
                Step::Parsed(Parsed::Bad(bad)) => self.send(SourceEvent::Invalid {
                    resource: bad.kind.resource(),
                    location: path.display().to_string(),
                    reason: bad.reason,
                }),
                Step::Parsed(Parsed::Restart) => self.relist_start(&origin),
                Step::End(result) => {
                    current = None;
                    self.known.insert(
                        path.clone(),
                        Known {
                            fingerprint: *fingerprint,
                            origin: origin.clone(),
                        },
                    );
                    self.end(path, origin, result)
                }
            };
            sent.is_ok()
        });
    }

    /// End the relist of a file. A file that could not be read is reported,
    /// and what was sent of it is dropped: its relist ends empty.
    fn end(
        &mut self,
        path: &Path,
        origin: Origin,
        result: Result<(), FileError>,
    ) -> Result<(), Closed> {
        if let Err(e) = result {
            self.send(SourceEvent::Invalid {
                resource: FILE_RESOURCE,
                location: path.display().to_string(),
                reason: e.to_string(),
            })?;
            self.relist_start(&origin)?;
        }
        self.send(SourceEvent::RelistEnd { origin })
    }

    /// Begin a relist of `origin`; a relist already begun is dropped.
    fn relist_start(&self, origin: &Origin) -> Result<(), Closed> {
        self.send(SourceEvent::RelistStart {
            origin: origin.clone(),
        })
    }

    /// Report a path problem the first time it is seen.
    fn report_once(&mut self, location: String, reason: String) {
        if self.reported.insert(format!("{location}: {reason}")) {
            let _ = self.send(SourceEvent::Invalid {
                resource: FILE_RESOURCE,
                location,
                reason,
            });
        }
    }

    fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        self.tx.blocking_send(event).map_err(|_| Closed)
    }
}

fn has_report_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["yaml", "yml", "json"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

#[cfg(test)]
pub(crate) mod tests;
