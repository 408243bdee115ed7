//! The durable event store: every user event, numbered per user, in SQLite or MySQL/MariaDB,
//! and the tables the Kafka consumers write.
//!
//! It is what makes delivery exact (the delivery guarantees, docs/DELIVERY.md): each stored event
//! gets the next sequence number of its user's stream, and that number is the cursor an SSE client
//! resumes from (`Last-Event-ID`) or a poller passes as `since`. Rows also form the Kafka outbox
//! (`published_at` stays NULL until a relay has published them), so an accepted event is queued for
//! Kafka in the same transaction that stored it. The consumers' writes are idempotent by event id:
//! a redelivered record changes nothing and answers `false`.
//!
//! The store is blocking (diesel + r2d2). Call it from `web::block`, a `SyncArbiter` or another
//! blocking thread, never from an async task or an actor's context.
//!
//! # Layout
//!
//! * `connection`: parsing the store URL, the `MultiConnection` enum over SQLite and (with the
//!   `mysql` feature) MySQL, the r2d2 manager, and the write-transaction helper.
//! * `schema`: diesel's `table!` view of `schema.sql` / `sqlite.sql`.
//! * `migrate`: applies the DDL at start-up, idempotently; tests that the DDL files agree.
//! * `events`: append with per-user numbering, replay, bounds and pruning.
//! * `outbox`: the unpublished rows of `nft_events`, read and stamped by the outbox relay.
//! * `analytics`: per event type and minute counts, counted once per event id.
//! * `notifications`: one notification per event for its user; listing, read marks.
//! * `audit`: the append-only audit log and its filtered, paged query.
//! * `operations`: the admin operations feed, one stream numbered in commit order from one
//!   counter row; record, read by cursor, bounds and pruning.
//! * `domain`: the NFT domain's state (volumes, badges, NFTs, flows) and its guarded changes,
//!   written with their events in one transaction.
//! * `flows`: unlock and upgrade flow records and the NFT each user holds; their reads and the
//!   locked reads the flow changes check their preconditions with.
//! * `ledger`: the local ledger's book of mints and burns (the default chain adapter's).
//! * `port`: the store as the `actors` crate's ports (`EventLog`, `Outbox`, the consumers'
//!   stores; `OperationsLog`, the feed as an `EventLog`), thin wrappers over the methods here.
//! * `columns`: column widths, time precision and id conversions shared by the queries.
//! * `error`: [`StoreError`], split into "unavailable, retry later" and definite failures.
//!
//! The event log's methods are below; each later module adds its own `impl Store` block.

mod analytics;
mod audit;
mod columns;
mod connection;
mod domain;
mod error;
mod events;
mod flows;
mod ledger;
mod migrate;
mod notifications;
mod operations;
mod outbox;
mod port;
mod receipts;
pub mod schema;

#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};

pub use self::analytics::CountedEvent;
pub use self::audit::{AuditQuery, AuditRow};
pub use self::connection::SqliteSync;
use self::connection::{StoreConnectionManager, StoreTarget};
pub use self::error::StoreError;
pub use self::events::{NewEvent, StoredEvent};
pub use self::notifications::NotificationRow;
pub use self::outbox::OutboxEntry;
pub use self::port::OperationsLog;

/// How long a caller waits for a free pooled connection (or for a new one to open) before the
/// call fails as [`StoreError::Unavailable`]. Short, because the callers are HTTP requests and
/// actors that should answer "try again" promptly when the database is down, not hang.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the event store: a pool of connections to one database. Cheap to clone; clones
/// share the pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool<StoreConnectionManager>,
    backend: &'static str,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("pool_size", &self.pool.max_size())
            .finish()
    }
}

impl Store {
    /// Opens the store named by `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite://PATH`, `sqlite:PATH` or a bare path (SQLite; parent directories are
    /// created, the file is switched to WAL), or `mysql://user:pass@host:port/db` (only in
    /// builds with the `mysql` feature; otherwise a [`StoreError::Config`]). `pool_size` is the
    /// most connections held open at once and must be at least 1.
    ///
    /// One connection is opened directly first, to run the migrations: an unreachable server
    /// fails here at once as [`StoreError::Unavailable`] instead of after r2d2's retry loop.
    pub fn connect(url: &str, pool_size: u32) -> Result<Store, StoreError> {
        Store::connect_with(url, pool_size, SqliteSync::Full)
    }

    /// [`Store::connect`] with how SQLite flushes commits (`store.sqlite_synchronous`).
    pub fn connect_with(
        url: &str,
        pool_size: u32,
        sqlite_sync: SqliteSync,
    ) -> Result<Store, StoreError> {
        if pool_size == 0 {
            return Err(StoreError::Config(
                "the store pool size must be at least 1".into(),
            ));
        }
        let target = StoreTarget::parse(url)?.with_sqlite_sync(sqlite_sync);
        target.prepare()?;
        let backend = target.backend_name();
        let manager = StoreConnectionManager::new(target);

        let mut bootstrap = manager.connect()?;
        migrate::run(&mut bootstrap)?;
        drop(bootstrap);

        let pool = Pool::builder()
            .max_size(pool_size)
            .connection_timeout(CHECKOUT_TIMEOUT)
            // A ping before every checkout guards against a server that dropped an idle
            // connection. An SQLite connection is a file handle in this process and cannot go
            // away like that, and its ping (a statement prepared anew each time) is a cost paid
            // on every store call.
            .test_on_check_out(backend != "sqlite")
            .build(manager)?;
        Ok(Store { pool, backend })
    }

    /// `"sqlite"` or `"mysql"`, for logs and readiness output.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Appends a batch in one transaction and returns the stored events in input order.
    ///
    /// Each event gets the next sequence number of its user (1 for a user's first event; never
    /// reused, even after pruning). Numbers are assigned inside the same transaction as the
    /// insert, under a per-user lock, so concurrent appends from any number of threads or
    /// router processes never duplicate a number, and a reader never sees seq N+1 before N.
    /// A duplicate `event_id` fails the whole batch with [`StoreError::DuplicateEvent`].
    pub fn append(&self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, StoreError> {
        events::append(&mut *self.checkout()?, events)
    }

    /// The user's events with `seq > after_seq`, oldest first, at most `limit` of them.
    pub fn events_after(
        &self,
        user_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        events::events_after(&mut *self.checkout()?, user_id, after_seq, limit)
    }

    /// The retained event with this id (the unique key), if any.
    pub fn event_by_id(&self, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        events::event_by_id(&mut *self.checkout()?, event_id)
    }

    /// `(lowest retained seq, last assigned seq)` for the user: `(None, 0)` for a user never
    /// seen, `(None, n)` once everything up to `n` has been pruned. A cursor below the lowest
    /// retained seq minus one has lost events, which is when a client is told to resync.
    pub fn stream_bounds(&self, user_id: &str) -> Result<(Option<u64>, u64), StoreError> {
        events::stream_bounds(&mut *self.checkout()?, user_id)
    }

    /// Deletes events created before `cutoff` and returns how many. Users' counters stay, so
    /// numbering continues where it left off. Works in bounded chunks so appends keep flowing.
    ///
    /// Events not yet published to Kafka are kept whatever their age: the row is the outbox's
    /// only copy, so a long broker outage delays their publication instead of losing them.
    pub fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let conn = &mut *self.checkout()?;
        let events = events::prune_older_than(conn, cutoff)?;
        receipts::prune_older_than(conn, cutoff)?;
        Ok(events)
    }

    /// One round trip (`SELECT 1`), for readiness checks.
    pub fn ping(&self) -> Result<(), StoreError> {
        Ok(self.checkout()?.ping()?)
    }

    fn checkout(&self) -> Result<PooledConnection<StoreConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }
}
