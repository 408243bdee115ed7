//! The event log's queries: append with per-user numbering, replay, bounds, pruning.
//! (The same rows are the Kafka outbox; its queries are in `outbox`.)
//!
//! Everything here takes a `&mut StoreConnection` and is written once for both backends; the
//! only dialect-specific text is the counter upsert, which has no portable spelling.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
#[cfg(feature = "mysql")]
use diesel::sql_types::{BigInt, Text};
use diesel::upsert::excluded;

use super::columns::{self, check_id, MAX_CORRELATION_ID, MAX_EVENT_ID, MAX_USER_ID};
use super::connection::{write_transaction, write_transaction_retrying, StoreConnection};
use super::error::StoreError;
use super::schema::{nft_events, user_streams};

/// The journal's record types: the store is the router's implementation of the actors'
/// `EventLog` port (see `port.rs`). `created_at` of a stored event is truncated to whole
/// microseconds, the precision both backends keep.
pub use actors::journal::{NewEvent, StoredEvent};

use actors::event::StoredType;

/// Rows deleted per pruning transaction: bounded so a large prune never holds SQLite's write
/// lock (or a long run of InnoDB row locks) long enough to stall appends.
const PRUNE_CHUNK: i64 = 1_000;

/// Bumps a user's counter by the second parameter, creating the row at that value if missing.
/// See [`claim_seqs`] for why this lock is taken first.
#[cfg(feature = "mysql")]
const MYSQL_BUMP_COUNTER: &str = "INSERT INTO user_streams (user_id, last_seq) VALUES (?, ?) \
     ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq)";

#[derive(Insertable)]
#[diesel(table_name = nft_events)]
struct EventInsert<'a> {
    user_id: &'a str,
    seq: i64,
    event_id: &'a str,
    event_type: &'a str,
    envelope_json: &'a str,
    correlation_id: Option<&'a str>,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = nft_events)]
struct EventRow {
    seq: i64,
    event_id: String,
    user_id: String,
    event_type: String,
    correlation_id: Option<String>,
    envelope_json: String,
    created_at: NaiveDateTime,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(StoredEvent {
            seq: seq_from_db(row.seq)?,
            event_id: row.event_id,
            user_id: row.user_id,
            event_type: StoredType::parse(&row.event_type),
            correlation_id: row.correlation_id,
            envelope_json: row.envelope_json,
            created_at: row.created_at.and_utc(),
        })
    }
}

fn seq_from_db(seq: i64) -> Result<u64, StoreError> {
    columns::u64_from_db(seq, "sequence number")
}

/// Appends `events` in one transaction, retrying only when MySQL reports a deadlock (the whole
/// transaction was rolled back by then, so nothing is applied twice).
pub(crate) fn append(
    conn: &mut StoreConnection,
    events: &[NewEvent],
) -> Result<Vec<StoredEvent>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    events.iter().try_for_each(validate)?;
    write_transaction_retrying(conn, |conn| append_in_transaction(conn, events))
}

fn validate(event: &NewEvent) -> Result<(), StoreError> {
    check_id("user_id", &event.user_id, MAX_USER_ID)?;
    check_id("event_id", &event.event_id, MAX_EVENT_ID)?;
    if let Some(id) = &event.correlation_id {
        check_id("correlation_id", id, MAX_CORRELATION_ID)?;
    }
    Ok(())
}

pub(crate) fn append_in_transaction(
    conn: &mut StoreConnection,
    events: &[NewEvent],
) -> Result<Vec<StoredEvent>, StoreError> {
    // Claim each user's block of numbers first, in user-id order: two batches touching the same
    // users then lock their counter rows in the same order and cannot deadlock each other.
    let mut per_user: BTreeMap<&str, i64> = BTreeMap::new();
    for event in events {
        *per_user.entry(event.user_id.as_str()).or_default() += 1;
    }
    let mut next_seq: BTreeMap<&str, i64> = BTreeMap::new();
    for (&user, &count) in &per_user {
        let last = claim_seqs(conn, user, count)?;
        next_seq.insert(user, last - count + 1);
    }

    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        let slot = next_seq.get_mut(event.user_id.as_str()).ok_or_else(|| {
            StoreError::Corrupt(format!("no sequence block for user {:?}", event.user_id))
        })?;
        let seq = *slot;
        *slot += 1;
        // Both backends keep microseconds; truncating here makes the returned event equal to
        // what a later read returns (MySQL would otherwise round, SQLite keep nanoseconds).
        let created_at = event.created_at.trunc_subsecs(6);
        insert_event(conn, event, seq, created_at.naive_utc())?;
        stored.push(StoredEvent {
            seq: seq_from_db(seq)?,
            event_id: event.event_id.clone(),
            user_id: event.user_id.clone(),
            event_type: event.event_type.into(),
            correlation_id: event.correlation_id.clone(),
            envelope_json: event.envelope_json.clone(),
            created_at,
        });
    }
    Ok(stored)
}

/// Advances `user`'s counter by `count` and returns the new last sequence number; the caller
/// owns `last - count + 1 ..= last`. Must be the append transaction's first access to the
/// user, because the lock it takes is what keeps the user's stream gap-free for readers:
///
/// * On MySQL the upsert takes an exclusive lock on the user's `user_streams` row (for a first
///   event, on the row it inserts) and holds it until commit. Another append for the same user
///   blocks on that lock and then reads the counter as this transaction left it. So a user's
///   appends run one at a time and each commits before the next even learns its number.
/// * On SQLite `BEGIN IMMEDIATE` already admits one writer at a time to the whole database,
///   with the same effect.
///
/// Either way, by the time seq N+1 can be committed, N is committed and visible: a reader that
/// sees N+1 also sees N, so a client resuming from a cursor never skips an event that was
/// merely still in flight, and numbers are never handed out twice.
fn claim_seqs(conn: &mut StoreConnection, user: &str, count: i64) -> Result<i64, StoreError> {
    match conn {
        // One statement that diesel prepares once per connection and caches (a `sql_query` is
        // prepared again on every call), answering the new counter itself: the journal claims
        // a block for nearly every user in a batch, so this runs once per event under load.
        StoreConnection::Sqlite(inner) => Ok(diesel::insert_into(user_streams::table)
            .values((
                user_streams::user_id.eq(user),
                user_streams::last_seq.eq(count),
            ))
            .on_conflict(user_streams::user_id)
            .do_update()
            .set(
                user_streams::last_seq
                    .eq(user_streams::last_seq + excluded(user_streams::last_seq)),
            )
            .returning(user_streams::last_seq)
            .get_result::<i64>(inner)?),
        #[cfg(feature = "mysql")]
        StoreConnection::Mysql(_) => {
            diesel::sql_query(MYSQL_BUMP_COUNTER)
                .bind::<Text, _>(user)
                .bind::<BigInt, _>(count)
                .execute(conn)?;
            // A transaction always sees its own writes, so this reads the value just written
            // even under REPEATABLE READ.
            Ok(user_streams::table
                .find(user)
                .select(user_streams::last_seq)
                .first::<i64>(conn)?)
        }
    }
}

fn insert_event(
    conn: &mut StoreConnection,
    event: &NewEvent,
    seq: i64,
    created_at: NaiveDateTime,
) -> Result<(), StoreError> {
    let row = EventInsert {
        user_id: &event.user_id,
        seq,
        event_id: &event.event_id,
        event_type: event.event_type.as_str(),
        envelope_json: &event.envelope_json,
        correlation_id: event.correlation_id.as_deref(),
        created_at,
    };
    match diesel::insert_into(nft_events::table)
        .values(&row)
        .execute(conn)
    {
        Ok(_) => Ok(()),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if names_event_id_key(info.message()) =>
        {
            Err(StoreError::DuplicateEvent {
                event_id: event.event_id.clone(),
            })
        }
        Err(err) => Err(err.into()),
    }
}

/// Whether a unique-violation message is about `event_id` (not `(user_id, seq)`). Neither
/// backend reports the constraint name through diesel, so we read the message: SQLite names
/// the column (`UNIQUE constraint failed: nft_events.event_id`), MySQL the key
/// (`Duplicate entry '…' for key 'uq_nft_events_event_id'`).
fn names_event_id_key(message: &str) -> bool {
    message.contains("nft_events.event_id") || message.contains("uq_nft_events_event_id")
}

pub(crate) fn events_after(
    conn: &mut StoreConnection,
    user_id: &str,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    nft_events::table
        .filter(nft_events::user_id.eq(user_id))
        .filter(nft_events::seq.gt(columns::i64_clamped(after_seq)))
        .order(nft_events::seq.asc())
        .limit(columns::sql_limit(limit))
        .select(EventRow::as_select())
        .load(conn)?
        .into_iter()
        .map(StoredEvent::try_from)
        .collect()
}

pub(crate) fn event_by_id(
    conn: &mut StoreConnection,
    event_id: &str,
) -> Result<Option<StoredEvent>, StoreError> {
    nft_events::table
        .filter(nft_events::event_id.eq(event_id))
        .select(EventRow::as_select())
        .first(conn)
        .optional()?
        .map(StoredEvent::try_from)
        .transpose()
}

pub(crate) fn stream_bounds(
    conn: &mut StoreConnection,
    user_id: &str,
) -> Result<(Option<u64>, u64), StoreError> {
    // One read transaction, so both numbers come from the same snapshot.
    let (first, last) = conn.transaction::<_, StoreError, _>(|conn| {
        let first = nft_events::table
            .filter(nft_events::user_id.eq(user_id))
            .select(diesel::dsl::min(nft_events::seq))
            .first::<Option<i64>>(conn)?;
        let last = user_streams::table
            .find(user_id)
            .select(user_streams::last_seq)
            .first::<i64>(conn)
            .optional()?;
        Ok((first, last))
    })?;
    Ok((
        first.map(seq_from_db).transpose()?,
        seq_from_db(last.unwrap_or(0))?,
    ))
}

/// Deletes published events created before `cutoff`, in chunks.
///
/// An unpublished event is kept whatever its age: it is still the outbox's only copy, and deleting
/// it would drop it from Kafka for good (the delivery guarantees, docs/DELIVERY.md: an outage
/// delays, never drops). The relay publishes in id order, which per user is seq order, so a user's
/// unpublished rows are the newest of its stream; keeping them does not open a hole in what a
/// reconnecting client replays (as long as `created_at` grows with seq, as it does for events
/// stamped at acceptance).
pub(crate) fn prune_older_than(
    conn: &mut StoreConnection,
    cutoff: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let cutoff = cutoff.naive_utc();
    let mut total = 0;
    loop {
        let (found, deleted) = write_transaction(conn, |conn| {
            let ids = nft_events::table
                .filter(nft_events::created_at.lt(cutoff))
                .filter(nft_events::published_at.is_not_null())
                .order(nft_events::id.asc())
                .limit(PRUNE_CHUNK)
                .select(nft_events::id)
                .load::<i64>(conn)?;
            if ids.is_empty() {
                return Ok((0, 0));
            }
            let deleted = diesel::delete(nft_events::table.filter(nft_events::id.eq_any(&ids)))
                .execute(conn)?;
            Ok((ids.len(), deleted))
        })?;
        total += deleted;
        if i64::try_from(found).map_or(true, |found| found < PRUNE_CHUNK) {
            return Ok(total);
        }
    }
}
