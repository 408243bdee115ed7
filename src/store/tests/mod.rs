//! Store behaviour against real databases: a fresh SQLite file always, and the MySQL/MariaDB
//! named by `DATABASE_URL` too when the crate is built with the `mysql` feature. Tests share
//! that server, so each one works on its own uuid-named users and events.

mod append;
mod concurrency;
mod connect;
mod prune;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{NewEvent, Store, StoredEvent};

/// A SQLite database file under the temp dir, removed (with its WAL files) on drop.
pub(super) struct TempDb {
    pub(super) path: PathBuf,
}

impl TempDb {
    pub(super) fn new() -> Self {
        let path = std::env::temp_dir()
            .join(format!("nft-store-test-{}", Uuid::new_v4()))
            .join("router.db");
        TempDb { path }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One database to run a test against; keeps a SQLite file alive for the test's duration.
pub(super) struct Backend {
    pub(super) name: &'static str,
    pub(super) url: String,
    _sqlite: Option<TempDb>,
}

/// SQLite always; MySQL/MariaDB as well when `DATABASE_URL` is set and the build has the
/// `mysql` feature (without the feature such a URL could not be opened anyway).
pub(super) fn backends() -> Vec<Backend> {
    let db = TempDb::new();
    let mut all = vec![Backend {
        name: "sqlite",
        url: db.url(),
        _sqlite: Some(db),
    }];
    if cfg!(feature = "mysql") {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            if url.starts_with("mysql://") {
                all.push(Backend {
                    name: "mysql",
                    url,
                    _sqlite: None,
                });
            }
        }
    }
    all
}

pub(super) fn connect(backend: &Backend, pool_size: u32) -> Store {
    Store::connect(&backend.url, pool_size)
        .unwrap_or_else(|e| panic!("{}: connect failed: {e}", backend.name))
}

pub(super) fn unique_user() -> String {
    format!("user-{}", Uuid::new_v4())
}

pub(super) fn event_at(user: &str, created_at: DateTime<Utc>) -> NewEvent {
    let event_id = Uuid::new_v4().to_string();
    NewEvent {
        envelope_json: format!(r#"{{"eventId":"{event_id}","userId":"{user}"}}"#),
        event_id,
        user_id: user.to_string(),
        event_type: "nft_unlocked".to_string(),
        created_at,
    }
}

pub(super) fn event(user: &str) -> NewEvent {
    event_at(user, Utc::now())
}

pub(super) fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}
