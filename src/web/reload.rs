//! The web configuration in force, re-read when the file or any certificate
//! it names changes: a poll every [`POLL`] compares each file's SHA-256
//! with what was loaded (Secrets mounted by kubelet change by a symlink
//! swap, which inotify on the file itself misses). A change that loads
//! replaces the configuration for the next connection and request; one that
//! does not keeps the last good configuration serving and says why, once
//! per distinct content.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tracing::{error, info, warn};

use super::config::{self, Loaded, WebConfig, WebConfigError};

/// How often the files are compared with what was loaded.
pub const POLL: Duration = Duration::from_secs(1);

/// A check every loaded configuration must pass besides its own: the
/// exporter's other options can rule out part of the file.
pub type Rule = fn(&WebConfig) -> Result<(), String>;

/// The configuration in force and what it was loaded from.
#[derive(Debug)]
pub struct Live {
    path: PathBuf,
    rule: Rule,
    current: RwLock<Arc<WebConfig>>,
    state: Mutex<State>,
    /// Whether the files on disk are what is in force: false from a change
    /// that did not load until one that does.
    in_force: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// The files of the configuration in force and their digests.
    loaded: Vec<(PathBuf, [u8; 32])>,
    /// The files' digests when loading last failed, so a broken file is
    /// reported once rather than every poll.
    failed: Option<Vec<Option<[u8; 32]>>>,
}

impl Live {
    /// Load the configuration at `path`; an error here stops the exporter.
    pub fn load(path: &Path, rule: Rule) -> Result<Self, WebConfigError> {
        let loaded = load_checked(path, rule)?;
        log_loaded(path, &loaded.config, "web configuration loaded");
        Ok(Self {
            path: path.to_owned(),
            rule,
            current: RwLock::new(Arc::new(loaded.config)),
            state: Mutex::new(State {
                loaded: loaded.inputs,
                failed: None,
            }),
            in_force: AtomicBool::new(true),
        })
    }

    /// Whether the last change to the files loaded (true until one fails).
    pub fn in_force(&self) -> bool {
        self.in_force.load(Ordering::Relaxed)
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<WebConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Compare the files with what was loaded and reload on a change.
    /// Returns whether the configuration in force was replaced.
    pub fn check(&self) -> bool {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now: Vec<Option<[u8; 32]>> = state
            .loaded
            .iter()
            .map(|(p, _)| std::fs::read(p).ok().map(|b| config::digest(&b)))
            .collect();
        let unchanged = now
            .iter()
            .zip(&state.loaded)
            .all(|(now, (_, then))| now.as_ref() == Some(then));
        if unchanged || state.failed.as_ref() == Some(&now) {
            return false;
        }
        match load_checked(&self.path, self.rule) {
            Ok(loaded) => {
                log_loaded(&self.path, &loaded.config, "web configuration reloaded");
                state.loaded = loaded.inputs;
                state.failed = None;
                self.in_force.store(true, Ordering::Relaxed);
                let mut current = match self.current.write() {
                    Ok(c) => c,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = Arc::new(loaded.config);
                true
            }
            Err(e) => {
                error!(
                    path = %self.path.display(),
                    error = %e,
                    "the web configuration changed but cannot be loaded; the last good one keeps serving"
                );
                state.failed = Some(now);
                self.in_force.store(false, Ordering::Relaxed);
                false
            }
        }
    }

    /// Check for changes every [`POLL`], forever.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let live = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || live.check()).await {
                warn!(error = %e, "checking the web configuration failed");
            }
        }
    }
}

fn load_checked(path: &Path, rule: Rule) -> Result<Loaded, WebConfigError> {
    let loaded = config::load(path)?;
    rule(&loaded.config).map_err(|reason| WebConfigError::Invalid {
        path: path.to_owned(),
        reason,
    })?;
    Ok(loaded)
}

fn log_loaded(path: &Path, config: &WebConfig, what: &str) {
    info!(
        path = %path.display(),
        tls = config.tls.is_some(),
        basic_auth_users = config.users.len(),
        headers = config.headers.len(),
        rate_limit = config.rate_limit.is_some(),
        "{what}"
    );
    for note in &config.notes {
        warn!(path = %path.display(), "web configuration: {note}");
    }
}
