//! The admin operations feed: every record of the operations topic once, numbered in commit
//! order, read by cursor (the feed's tailer on every router instance, and admin sessions
//! resuming with `Last-Event-ID`).
//!
//! The feed is one stream written by several processes (the operations consumer group spans the
//! router instances), and its readers advance a cursor past the highest seq they have read. That
//! is only safe if seq N+1 can never become visible before N, so numbers are handed out exactly
//! as `events` does per user: from a counter row locked for the rest of the writing
//! transaction. Here it is the one `feed_counters` row named [`FEED`].

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;

use super::columns::{
    self, check_bytes, check_id, db_now, MAX_EVENT_ID, MAX_EVENT_TYPE, MAX_MEDIUMTEXT_BYTES,
    MAX_USER_ID,
};
use super::connection::{write_transaction_retrying, Dialect, StoreConnection};
use super::error::StoreError;
use super::events::StoredEvent;
use super::schema::{feed_counters, operations_feed};
use super::Store;
use actors::event::StoredType;

/// The `feed_counters` row that numbers `operations_feed`.
const FEED: &str = "operations";

/// Rows deleted per pruning transaction, bounded for the same reason as the event log's.
const PRUNE_CHUNK: i64 = 1_000;

/// Bumps a feed's counter by one, creating it at 1. See [`claim_seq`] for why this comes first.
#[cfg(feature = "mysql")]
const MYSQL_BUMP_FEED: &str = "INSERT INTO feed_counters (name, last_seq) VALUES (?, 1) \
     ON DUPLICATE KEY UPDATE last_seq = last_seq + 1";

/// SQLite spelling of the same upsert.
const SQLITE_BUMP_FEED: &str = "INSERT INTO feed_counters (name, last_seq) VALUES (?, 1) \
     ON CONFLICT (name) DO UPDATE SET last_seq = feed_counters.last_seq + 1";

#[derive(Insertable)]
#[diesel(table_name = operations_feed)]
struct FeedInsert<'a> {
    seq: i64,
    event_id: &'a str,
    event_type: &'a str,
    user_id: &'a str,
    envelope_json: &'a str,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = operations_feed)]
struct FeedRow {
    seq: i64,
    event_id: String,
    event_type: String,
    user_id: String,
    envelope_json: String,
    created_at: NaiveDateTime,
}

impl TryFrom<FeedRow> for StoredEvent {
    type Error = StoreError;

    fn try_from(row: FeedRow) -> Result<Self, StoreError> {
        Ok(StoredEvent {
            seq: seq_from_db(row.seq)?,
            event_id: row.event_id,
            user_id: row.user_id,
            event_type: StoredType::parse(&row.event_type),
            // The feed keeps the envelope only; its own lines name the feed cursor.
            correlation_id: None,
            envelope_json: row.envelope_json,
            created_at: row.created_at.and_utc(),
        })
    }
}

fn seq_from_db(seq: i64) -> Result<u64, StoreError> {
    columns::u64_from_db(seq, "operations feed sequence number")
}

impl Store {
    /// Stores an operations-topic record with the feed's next sequence number, unless its
    /// `event_id` is stored already (a redelivered record); answers whether it stored it.
    ///
    /// Numbers are taken under the feed counter's lock, held until commit, so concurrent
    /// writers from any number of router instances commit in seq order: a reader that sees
    /// seq N+1 also sees N. A redelivery consumes no number (its transaction is rolled back),
    /// so the feed has no gaps except those pruning leaves at its start.
    pub fn record_operation(
        &self,
        event_id: &str,
        event_type: &str,
        user_id: &str,
        envelope_json: &str,
    ) -> Result<bool, StoreError> {
        record(
            &mut *self.checkout()?,
            event_id,
            event_type,
            user_id,
            envelope_json,
        )
    }

    /// The feed's entries with `seq > after_seq`, oldest first, at most `limit` of them, as
    /// [`StoredEvent`]s (`user_id` is the user the operation was about).
    pub fn operations_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        after(&mut *self.checkout()?, after_seq, limit)
    }

    /// `(lowest retained seq, last assigned seq)` of the feed, as
    /// [`stream_bounds`](Store::stream_bounds) answers for a user: `(None, 0)` before the
    /// first record, `(None, n)` once everything up to `n` has been pruned.
    pub fn operations_bounds(&self) -> Result<(Option<u64>, u64), StoreError> {
        bounds(&mut *self.checkout()?)
    }

    /// Deletes the feed's oldest entries, those created before `cutoff`, in chunks; returns how
    /// many. The counter stays, so numbering continues where it left off.
    ///
    /// Deletes in seq order and stops at the first entry at or after `cutoff`, even if a later
    /// one is older (its instance's clock lagged): what remains is one unbroken run of numbers,
    /// which is what a resuming reader's cursor check assumes.
    pub fn prune_operations_older_than(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        prune(&mut *self.checkout()?, cutoff)
    }
}

fn record(
    conn: &mut StoreConnection,
    event_id: &str,
    event_type: &str,
    user_id: &str,
    envelope_json: &str,
) -> Result<bool, StoreError> {
    check_id("event_id", event_id, MAX_EVENT_ID)?;
    check_id("event_type", event_type, MAX_EVENT_TYPE)?;
    check_id("user_id", user_id, MAX_USER_ID)?;
    check_bytes("envelope_json", envelope_json, MAX_MEDIUMTEXT_BYTES)?;
    let stored = write_transaction_retrying(conn, |conn| {
        let seq = claim_seq(conn)?;
        // Stamped under the lock, so on one instance created_at grows with seq.
        let row = FeedInsert {
            seq,
            event_id,
            event_type,
            user_id,
            envelope_json,
            created_at: db_now(),
        };
        match diesel::insert_into(operations_feed::table)
            .values(&row)
            .execute(conn)
        {
            Ok(_) => Ok(()),
            // Returned as an error so the transaction rolls back and gives the number back.
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
                if names_event_id_key(info.message()) =>
            {
                Err(StoreError::DuplicateEvent {
                    event_id: event_id.to_string(),
                })
            }
            Err(err) => Err(err.into()),
        }
    });
    match stored {
        Ok(()) => Ok(true),
        Err(StoreError::DuplicateEvent { .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Advances the feed's counter and returns the number it now holds, which the caller owns.
/// Must be the transaction's first statement: the lock it takes is what orders commits.
///
/// * On MySQL the upsert takes an exclusive lock on the counter row (on the first record, on
///   the row it inserts) until commit; every other writer blocks on it, then reads the counter
///   as this transaction left it.
/// * On SQLite `BEGIN IMMEDIATE` already admits one writer at a time.
///
/// So seq N is committed (or rolled back, number and all) before N+1 is even handed out.
fn claim_seq(conn: &mut StoreConnection) -> Result<i64, StoreError> {
    let upsert = match conn.dialect() {
        Dialect::Sqlite => SQLITE_BUMP_FEED,
        #[cfg(feature = "mysql")]
        Dialect::Mysql => MYSQL_BUMP_FEED,
    };
    diesel::sql_query(upsert)
        .bind::<Text, _>(FEED)
        .execute(conn)?;
    // The transaction's own write, so this is the value just written on either backend.
    Ok(feed_counters::table
        .find(FEED)
        .select(feed_counters::last_seq)
        .first::<i64>(conn)?)
}

/// Whether a unique-violation message is about `event_id` (a redelivery) rather than `seq`
/// (a counter behind the table: a bug, reported, never taken for a redelivery). SQLite names
/// the column, MySQL the key, as for `nft_events`.
fn names_event_id_key(message: &str) -> bool {
    message.contains("operations_feed.event_id") || message.contains("uq_operations_feed_event_id")
}

fn after(
    conn: &mut StoreConnection,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    operations_feed::table
        .filter(operations_feed::seq.gt(columns::i64_clamped(after_seq)))
        .order(operations_feed::seq.asc())
        .limit(columns::sql_limit(limit))
        .select(FeedRow::as_select())
        .load(conn)?
        .into_iter()
        .map(StoredEvent::try_from)
        .collect()
}

fn bounds(conn: &mut StoreConnection) -> Result<(Option<u64>, u64), StoreError> {
    // One read transaction, so both numbers come from the same snapshot.
    let (first, last) = conn.transaction::<_, StoreError, _>(|conn| {
        let first = operations_feed::table
            .select(diesel::dsl::min(operations_feed::seq))
            .first::<Option<i64>>(conn)?;
        let last = feed_counters::table
            .find(FEED)
            .select(feed_counters::last_seq)
            .first::<i64>(conn)
            .optional()?;
        Ok((first, last))
    })?;
    Ok((
        first.map(seq_from_db).transpose()?,
        seq_from_db(last.unwrap_or(0))?,
    ))
}

fn prune(conn: &mut StoreConnection, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
    let cutoff = cutoff.naive_utc();
    let mut total = 0;
    loop {
        let (whole_chunk, deleted) = write_transaction_retrying(conn, |conn| {
            let oldest = operations_feed::table
                .order(operations_feed::seq.asc())
                .limit(PRUNE_CHUNK)
                .select((operations_feed::seq, operations_feed::created_at))
                .load::<(i64, NaiveDateTime)>(conn)?;
            // Only the leading run of expired entries: deleting past a newer one would open a
            // hole below the entries kept.
            let expired: Vec<i64> = oldest
                .iter()
                .take_while(|(_, created_at)| *created_at < cutoff)
                .map(|(seq, _)| *seq)
                .collect();
            if expired.is_empty() {
                return Ok((false, 0));
            }
            let deleted = diesel::delete(
                operations_feed::table.filter(operations_feed::seq.eq_any(&expired)),
            )
            .execute(conn)?;
            let whole_chunk = i64::try_from(expired.len()) == Ok(PRUNE_CHUNK);
            Ok((whole_chunk, deleted))
        })?;
        total += deleted;
        if !whole_chunk {
            return Ok(total);
        }
    }
}
