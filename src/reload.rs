//! Reloading files the router serves from (the TLS pair, the JWT public keys) without a
//! restart: on SIGHUP, and when a file's modification time changes. A reload that fails leaves
//! the loaded version in use and says why in the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Something loaded from files that can be loaded again.
pub trait Reloadable: Send + Sync + 'static {
    /// What the log lines call it, e.g. "TLS certificate data/tls/cert.pem".
    fn describe(&self) -> String;
    /// The files it was loaded from, watched for a change.
    fn stamps(&self) -> &FileStamps;
    /// Loads the files again and switches to them; on failure nothing changes.
    fn reload(&self) -> Result<(), String>;
}

/// The modification times of some files at their last load.
#[derive(Debug)]
pub struct FileStamps {
    paths: Vec<PathBuf>,
    seen: Mutex<Vec<Option<SystemTime>>>,
}

impl FileStamps {
    /// The files' times now, as of a load about to happen.
    pub fn new(paths: &[&Path]) -> Self {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        let seen = Mutex::new(read(&paths));
        FileStamps { paths, seen }
    }

    /// Whether any file changed since the last [`FileStamps::mark`] (or creation).
    pub fn changed(&self) -> bool {
        let now = read(&self.paths);
        self.seen.lock().map(|seen| *seen != now).unwrap_or(false)
    }

    /// Records the files' times now (call before reading them, so a write during the read is
    /// noticed next time).
    pub fn mark(&self) {
        let now = read(&self.paths);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = now;
        }
    }
}

fn read(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Reloads `item` on SIGHUP and whenever its files change (checked every `every`), logging
/// each reload and each failed one. Runs on the current actix runtime.
pub fn watch(item: Arc<dyn Reloadable>, every: Duration) {
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!(
                    "{}: no SIGHUP reload ({e}); file changes still reload",
                    item.describe()
                );
                None
            }
        };
        let mut tick = actix_web::rt::time::interval(every);
        tick.tick().await;
        loop {
            let why = tokio::select! {
                _ = tick.tick() => {
                    if !item.stamps().changed() {
                        continue;
                    }
                    "file change"
                }
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => "SIGHUP",
            };
            match item.reload() {
                Ok(()) => log::info!("reloaded {} ({why})", item.describe()),
                Err(e) => log::warn!(
                    "reloading {} ({why}) failed, the loaded version stays: {e}",
                    item.describe()
                ),
            }
        }
    });
}
