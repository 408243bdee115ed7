//! Store behaviour against real databases: a fresh SQLite file always, and the MySQL/MariaDB
//! named by `DATABASE_URL` too when the crate is built with the `mysql` feature. Tests share
//! that server, so each one works on its own uuid-named users, events and event types.
//!
//! The outbox is the exception: its queue and backlog are table-wide, so any test appending
//! events on the shared database would disturb them. Tests about it use
//! [`isolated_backends`], which gives them a scratch MySQL database of their own.

mod analytics;
mod append;
mod audit;
mod concurrency;
mod conformance;
mod connect;
mod ledger;
mod notifications;
mod operations;
mod outbox;
mod prune;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{NewEvent, Store, StoredEvent};
use actors::EventType;

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

/// A MySQL database of one test's own, created empty and dropped when the test ends (also
/// when it panics). Needs the `CREATE` and `DROP` privileges on the `DATABASE_URL` server.
#[cfg(feature = "mysql")]
pub(super) struct ScratchDatabase {
    server_url: String,
    name: String,
}

#[cfg(feature = "mysql")]
impl ScratchDatabase {
    /// Creates the database on the server `server_url` names; returns it and its URL.
    fn create(server_url: &str) -> (Self, String) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;

        let name = format!("nft_store_test_{}", Uuid::new_v4().simple());
        diesel::MysqlConnection::establish(server_url)
            .and_then(|mut conn| {
                conn.batch_execute(&format!(
                    "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                ))
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
            })
            .unwrap_or_else(|e| panic!("cannot create scratch database {name}: {e}"));
        let url = with_database(server_url, &name);
        let scratch = ScratchDatabase {
            server_url: server_url.to_string(),
            name,
        };
        (scratch, url)
    }
}

#[cfg(feature = "mysql")]
impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;

        if let Ok(mut conn) = diesel::MysqlConnection::establish(&self.server_url) {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

/// `url` with its database name replaced by `name`, keeping credentials, host and options.
#[cfg(feature = "mysql")]
fn with_database(url: &str, name: &str) -> String {
    let (base, options) = match url.split_once('?') {
        Some((base, options)) => (base, Some(options)),
        None => (url, None),
    };
    let rest = base.strip_prefix("mysql://").unwrap_or(base);
    let authority = rest.split('/').next().unwrap_or(rest);
    match options {
        Some(options) => format!("mysql://{authority}/{name}?{options}"),
        None => format!("mysql://{authority}/{name}"),
    }
}

/// One database to run a test against; keeps a SQLite file (or a scratch MySQL database)
/// alive for the test's duration.
pub(super) struct Backend {
    pub(super) name: &'static str,
    pub(super) url: String,
    _sqlite: Option<TempDb>,
    #[cfg(feature = "mysql")]
    _scratch: Option<ScratchDatabase>,
}

/// SQLite always; MySQL/MariaDB as well when `DATABASE_URL` is set and the build has the
/// `mysql` feature (without the feature such a URL could not be opened anyway).
pub(super) fn backends() -> Vec<Backend> {
    let db = TempDb::new();
    let mut all = vec![Backend {
        name: "sqlite",
        url: db.url(),
        _sqlite: Some(db),
        #[cfg(feature = "mysql")]
        _scratch: None,
    }];
    if cfg!(feature = "mysql") {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            if url.starts_with("mysql://") {
                all.push(Backend {
                    name: "mysql",
                    url,
                    _sqlite: None,
                    #[cfg(feature = "mysql")]
                    _scratch: None,
                });
            }
        }
    }
    all
}

/// Like [`backends`], but the MySQL backend is a scratch database no other test writes to, for
/// tests that assert on table-wide state (the outbox queue, its backlog, what a prune deletes).
pub(super) fn isolated_backends() -> Vec<Backend> {
    backends().into_iter().map(isolate).collect()
}

/// SQLite backends are fresh files already; a MySQL one moves to a scratch database.
fn isolate(backend: Backend) -> Backend {
    #[cfg(feature = "mysql")]
    if backend.name == "mysql" {
        let (scratch, url) = ScratchDatabase::create(&backend.url);
        return Backend {
            url,
            _scratch: Some(scratch),
            ..backend
        };
    }
    backend
}

pub(super) fn connect(backend: &Backend, pool_size: u32) -> Store {
    Store::connect(&backend.url, pool_size)
        .unwrap_or_else(|e| panic!("{}: connect failed: {e}", backend.name))
}

pub(super) fn unique_user() -> String {
    format!("user-{}", Uuid::new_v4())
}

/// An event type no other test uses, so per-type counts and filters see only this test's rows.
pub(super) fn unique_type() -> String {
    format!("type-{}", Uuid::new_v4().simple())
}

pub(super) fn unique_id() -> String {
    Uuid::new_v4().to_string()
}

pub(super) fn event_at(user: &str, created_at: DateTime<Utc>) -> NewEvent {
    let event_id = Uuid::new_v4().to_string();
    let correlation_id = Some(format!("corr-{event_id}"));
    NewEvent {
        envelope_json: format!(r#"{{"eventId":"{event_id}","userId":"{user}"}}"#),
        event_id,
        user_id: user.to_string(),
        event_type: EventType::NftUnlocked,
        correlation_id,
        created_at,
    }
}

pub(super) fn event(user: &str) -> NewEvent {
    event_at(user, Utc::now())
}

pub(super) fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}
