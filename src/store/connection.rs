//! Which database a store URL names, how one connection to it is opened, and the r2d2 manager
//! that pools them.
//!
//! The connection type is a diesel `MultiConnection` enum so every query in this module tree is
//! written once and runs on either backend. We do not let diesel's derived `establish` pick the
//! variant: it tries each backend in turn, and SQLite accepts any string as a file name, so a
//! `mysql://` URL whose server is down would quietly become a SQLite file called `mysql:`.
//! [`StoreTarget`] decides the backend from the URL's scheme once, up front.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::{Connection, SqliteConnection};

use super::error::StoreError;

/// One pooled connection, to whichever backend the store URL named.
///
/// SQLite stays the last variant, as diesel's docs advise, because it accepts any string as a
/// path; we never rely on that order (see [`StoreTarget`]), but it keeps the derive's own
/// `establish` safe for anyone who calls it.
#[derive(diesel::MultiConnection)]
pub enum StoreConnection {
    #[cfg(feature = "mysql")]
    Mysql(diesel::MysqlConnection),
    Sqlite(SqliteConnection),
}

/// How long SQLite waits for another connection's write lock before giving up with
/// `database is locked`. Writers hold it for one short append transaction, but each commit
/// is an fsync, and on a loaded machine a queue of them can take seconds: fifteen leaves room
/// for that while still answering 503 when something really holds the database.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// The database a store URL names.
#[derive(Clone)]
pub(crate) enum StoreTarget {
    Sqlite {
        path: PathBuf,
        synchronous: SqliteSync,
    },
    #[cfg(feature = "mysql")]
    Mysql { url: String },
}

/// How SQLite makes a commit durable (`PRAGMA synchronous`, in WAL mode); configured as
/// `store.sqlite_synchronous = "full" | "normal"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// Every commit reaches the disk before it returns: an accepted event survives a power
    /// loss. The default.
    #[default]
    Full,
    /// Commits survive the router being killed, but the last ones may be lost if the machine
    /// itself crashes; fewer disk flushes, higher sustained rates (see BENCHMARKS.md).
    Normal,
}

impl SqliteSync {
    fn pragma(self) -> &'static str {
        match self {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        }
    }
}

impl StoreTarget {
    /// Applies `sync` to a SQLite target; MySQL ignores it.
    pub(crate) fn with_sqlite_sync(self, sync: SqliteSync) -> Self {
        match self {
            StoreTarget::Sqlite { path, .. } => StoreTarget::Sqlite {
                path,
                synchronous: sync,
            },
            #[cfg(feature = "mysql")]
            other => other,
        }
    }

    /// Reads a store URL: `sqlite://PATH`, `sqlite:PATH` or a bare path for SQLite,
    /// `mysql://…` for MySQL/MariaDB. Any other scheme is refused rather than guessed at.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreError::Config("the store URL is empty".into()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            return Self::sqlite(path);
        }
        if url.starts_with("mysql://") {
            return Self::mysql(url);
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::Config(format!(
                "unsupported store URL scheme {scheme:?}; use sqlite://PATH or mysql://…"
            )));
        }
        Self::sqlite(url)
    }

    fn sqlite(path: &str) -> Result<Self, StoreError> {
        if path.is_empty() {
            return Err(StoreError::Config(
                "the SQLite store URL has no path".into(),
            ));
        }
        // Every pooled connection to `:memory:` would get its own empty database.
        if path == ":memory:" || path.starts_with("file::memory:") {
            return Err(StoreError::Config(
                "an in-memory SQLite database cannot be shared by a connection pool; use a file path"
                    .into(),
            ));
        }
        Ok(StoreTarget::Sqlite {
            path: PathBuf::from(path),
            synchronous: SqliteSync::Full,
        })
    }

    #[cfg(feature = "mysql")]
    fn mysql(url: &str) -> Result<Self, StoreError> {
        Ok(StoreTarget::Mysql { url: url.into() })
    }

    #[cfg(not(feature = "mysql"))]
    fn mysql(_url: &str) -> Result<Self, StoreError> {
        Err(StoreError::Config(
            "a mysql:// store URL needs a build with the `mysql` cargo feature \
             (cargo build --features mysql; needs the system libmysqlclient)"
                .into(),
        ))
    }

    /// A short name for logs and `Debug`, never the URL itself (it may hold a password).
    pub(crate) fn backend_name(&self) -> &'static str {
        match self {
            StoreTarget::Sqlite { .. } => "sqlite",
            #[cfg(feature = "mysql")]
            StoreTarget::Mysql { .. } => "mysql",
        }
    }

    /// Creates the SQLite file's parent directories, so `./data/router.db` works on a fresh
    /// checkout. Nothing to prepare for MySQL.
    pub(crate) fn prepare(&self) -> Result<(), StoreError> {
        match self {
            StoreTarget::Sqlite { path, .. } => match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
                    .map_err(|e| {
                        StoreError::Config(format!(
                            "cannot create the SQLite directory {}: {e}",
                            parent.display()
                        ))
                    }),
                _ => Ok(()),
            },
            #[cfg(feature = "mysql")]
            StoreTarget::Mysql { .. } => Ok(()),
        }
    }

    /// Opens one connection and applies the per-connection settings.
    pub(crate) fn establish(&self) -> Result<StoreConnection, diesel::r2d2::Error> {
        match self {
            StoreTarget::Sqlite { path, synchronous } => {
                let mut conn = SqliteConnection::establish(&sqlite_path_str(path)?)?;
                // busy_timeout is per connection: without it a second writer fails at once
                // instead of queueing behind the current append. So is `synchronous`.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = {};",
                    SQLITE_BUSY_TIMEOUT.as_millis(),
                    synchronous.pragma()
                ))?;
                Ok(StoreConnection::Sqlite(conn))
            }
            #[cfg(feature = "mysql")]
            StoreTarget::Mysql { url } => Ok(StoreConnection::Mysql(
                diesel::MysqlConnection::establish(url)?,
            )),
        }
    }
}

fn sqlite_path_str(path: &Path) -> Result<String, diesel::r2d2::Error> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        diesel::r2d2::Error::ConnectionError(diesel::ConnectionError::InvalidConnectionUrl(
            format!("SQLite path {} is not valid UTF-8", path.display()),
        ))
    })
}

/// The r2d2 manager: opens connections through [`StoreTarget::establish`] so pooled
/// connections get the same settings as the bootstrap one.
pub(crate) struct StoreConnectionManager {
    target: StoreTarget,
}

impl StoreConnectionManager {
    pub(crate) fn new(target: StoreTarget) -> Self {
        StoreConnectionManager { target }
    }
}

impl std::fmt::Debug for StoreConnectionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConnectionManager")
            .field("backend", &self.target.backend_name())
            .finish()
    }
}

impl ManageConnection for StoreConnectionManager {
    type Connection = StoreConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<StoreConnection, Self::Error> {
        self.target.establish()
    }

    fn is_valid(&self, conn: &mut StoreConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut StoreConnection) -> bool {
        conn.is_broken()
    }
}

/// Runs `body` in a transaction that holds the write lock from its first statement.
///
/// On SQLite this is `BEGIN IMMEDIATE`: the database-wide write lock is taken before anything
/// is read, so the transaction can never read a counter, lose the race for the lock and fail
/// with `SQLITE_BUSY_SNAPSHOT` half-way; it simply queues (busy_timeout) until the previous
/// writer commits. On MySQL a plain `BEGIN`: there the row locks taken by `body` itself (the
/// `user_streams` counter rows) do the serializing.
///
/// Commit and rollback mirror diesel's own `TransactionManager::transaction`; we cannot call
/// that directly because it always issues a plain `BEGIN`, and diesel's `immediate_transaction`
/// hands the closure the inner `SqliteConnection` rather than the backend-neutral enum.
/// The turn of this process's SQLite writers (see [`write_transaction`]). One for the whole
/// process: a router opens one SQLite database, and serializing writers of different files
/// (as tests do) costs only waiting.
static SQLITE_WRITERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn write_transaction<T>(
    conn: &mut StoreConnection,
    body: impl FnOnce(&mut StoreConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // SQLite admits one writer at a time. Left to itself, a writer that finds the database
    // locked sleeps in growing steps (up to 100 ms) before it looks again, which is what made
    // the journal's appends wait tens of milliseconds behind the consumers' writes. Writers of
    // this process queue on a mutex instead and start the moment the previous one commits;
    // `busy_timeout` still covers writers in other processes.
    let _turn = match conn {
        StoreConnection::Sqlite(_) => Some(
            SQLITE_WRITERS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ),
        #[cfg(feature = "mysql")]
        StoreConnection::Mysql(_) => None,
    };
    match conn {
        StoreConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?
        }
        #[cfg(feature = "mysql")]
        StoreConnection::Mysql(_) => {
            <StoreConnection as TransactionManager<StoreConnection>>::begin_transaction(conn)?
        }
    }
    match body(conn) {
        Ok(value) => {
            <StoreConnection as TransactionManager<StoreConnection>>::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            match <StoreConnection as TransactionManager<StoreConnection>>::rollback_transaction(
                conn,
            ) {
                // A broken transaction manager means the connection is already unusable (r2d2
                // will discard it); the body's error is the one worth reporting.
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(err),
                Err(rollback) => Err(rollback.into()),
            }
        }
    }
}

/// How often a write transaction is run in all after MySQL picks it as a deadlock victim.
const DEADLOCK_ATTEMPTS: u32 = 3;

/// [`write_transaction`], run again from the start when MySQL reports a deadlock.
///
/// InnoDB can deadlock even writers that take their row locks in one agreed order (two inserts
/// of the same new key through `ON DUPLICATE KEY UPDATE`, or a duplicate-key wait behind a
/// transaction that then rolls back). It has already rolled the victim back, so nothing of the
/// first attempt is applied twice. SQLite never deadlocks: `BEGIN IMMEDIATE` queues writers.
pub(crate) fn write_transaction_retrying<T>(
    conn: &mut StoreConnection,
    mut body: impl FnMut(&mut StoreConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut attempt = 1;
    loop {
        match write_transaction(conn, &mut body) {
            Err(err) if err.is_deadlock() && attempt < DEADLOCK_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

/// The SQL dialect of the connection, for the few statements that have no portable spelling.
pub(crate) enum Dialect {
    Sqlite,
    #[cfg(feature = "mysql")]
    Mysql,
}

impl StoreConnection {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            StoreConnection::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "mysql")]
            StoreConnection::Mysql(_) => Dialect::Mysql,
        }
    }
}
