//! The analytics consumer's tables: per event type and minute counts, totals per type, and
//! the processed-event markers that make counting idempotent.
//!
//! Counting a batch of events is one transaction: the marker inserts, then the minute buckets,
//! then the totals. A redelivered record fails on the marker's primary key and adds nothing to
//! the counts, so Kafka's at-least-once delivery still counts each event exactly once.

use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use std::collections::{BTreeMap, HashMap};

pub use actors::consumers::CountedEvent;

use super::columns::{self, check_id, db_now, MAX_EVENT_ID, MAX_EVENT_TYPE};
use super::connection::{write_transaction_retrying, Dialect, StoreConnection};
use super::error::{is_unique_violation, StoreError};
use super::schema::{analytics_minute_counts, analytics_processed, analytics_totals};
use super::Store;

/// Adds `n` to an `(event_type, minute)` bucket, creating it at `n`. Upserts have no portable
/// spelling, hence one constant per dialect (as for the user counters in `events`).
#[cfg(feature = "mysql")]
const MYSQL_BUMP_MINUTE: &str = "INSERT INTO analytics_minute_counts (event_type, minute, count) \
     VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE count = count + VALUES(count)";

const SQLITE_BUMP_MINUTE: &str = "INSERT INTO analytics_minute_counts (event_type, minute, count) \
     VALUES (?, ?, ?) ON CONFLICT (event_type, minute) \
     DO UPDATE SET count = analytics_minute_counts.count + excluded.count";

/// Adds `n` to an event type's total, creating it at `n`.
#[cfg(feature = "mysql")]
const MYSQL_BUMP_TOTAL: &str = "INSERT INTO analytics_totals (event_type, total) VALUES (?, ?) \
     ON DUPLICATE KEY UPDATE total = total + VALUES(total)";

const SQLITE_BUMP_TOTAL: &str = "INSERT INTO analytics_totals (event_type, total) VALUES (?, ?) \
     ON CONFLICT (event_type) DO UPDATE SET total = analytics_totals.total + excluded.total";

impl Store {
    /// Counts an event in its `(event_type, UTC minute of occurred_at)` bucket and in its
    /// type's total, unless this `event_id` was counted before. Answers whether it counted now.
    ///
    /// One transaction, so a crash or an outage part-way leaves neither the marker nor the
    /// counts: the consumer's retry then counts the event exactly once. Concurrent calls with
    /// the same id (two consumers after a rebalance) serialize on the marker's key; one counts,
    /// the others answer `false`.
    pub fn count_event(
        &self,
        event_id: &str,
        event_type: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .count_event_total(event_id, event_type, occurred_at)?
            .is_some())
    }

    /// [`Store::count_event`], answering the event type's new total when it counted the event
    /// (read in the same transaction), `None` for an event counted before.
    pub fn count_event_total(
        &self,
        event_id: &str,
        event_type: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let event = CountedEvent {
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            occurred_at,
        };
        let mut counted = self.count_events(std::slice::from_ref(&event))?;
        counted.pop().unwrap_or(Ok(None))
    }

    /// Counts `events` in order as [`Store::count_event_total`] counts one, all in one
    /// transaction, so a batch costs one commit rather than one per event. Answers, per event,
    /// its type's total after the batch (`None` for one counted before); the answers end at
    /// the first event that is refused (an id too long), and nothing after it is counted. A
    /// failed transaction is the error: nothing of the batch is counted then.
    pub fn count_events(
        &self,
        events: &[CountedEvent],
    ) -> Result<Vec<Result<Option<u64>, StoreError>>, StoreError> {
        let mut checked = Vec::with_capacity(events.len());
        let mut refused = None;
        for event in events {
            match check(event) {
                Ok(minute) => checked.push((event, minute)),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let mut answers: Vec<Result<Option<u64>, StoreError>> = if checked.is_empty() {
            Vec::new()
        } else {
            count_checked(&mut *self.checkout()?, &checked)?
                .into_iter()
                .map(Ok)
                .collect()
        };
        answers.extend(refused.map(Err));
        Ok(answers)
    }

    /// Total count per event type, over all minutes, ordered by event type.
    pub fn totals(&self) -> Result<Vec<(String, u64)>, StoreError> {
        totals(&mut *self.checkout()?)
    }

    /// The minute buckets `(event_type, minute, count)`, of one event type or of all, ordered
    /// by type then minute. For inspection and tests; nothing on a hot path reads them.
    pub fn minute_counts(
        &self,
        event_type: Option<&str>,
    ) -> Result<Vec<(String, DateTime<Utc>, u64)>, StoreError> {
        minute_counts(&mut *self.checkout()?, event_type)
    }
}

/// The bucket an occurrence falls in: its UTC minute, seconds and fraction dropped, so every
/// occurrence in that minute writes the same key on both backends.
fn minute_of(occurred_at: DateTime<Utc>) -> Result<NaiveDateTime, StoreError> {
    occurred_at
        .duration_trunc(TimeDelta::minutes(1))
        .map(|minute| minute.naive_utc())
        .map_err(|e| StoreError::InvalidEvent(format!("occurred_at {occurred_at}: {e}")))
}

/// What is wrong with an event before anything is written, else its minute bucket.
fn check(event: &CountedEvent) -> Result<NaiveDateTime, StoreError> {
    check_id("event_id", &event.event_id, MAX_EVENT_ID)?;
    check_id("event_type", &event.event_type, MAX_EVENT_TYPE)?;
    minute_of(event.occurred_at)
}

fn count_checked(
    conn: &mut StoreConnection,
    events: &[(&CountedEvent, NaiveDateTime)],
) -> Result<Vec<Option<u64>>, StoreError> {
    let (bump_minute, bump_total) = match conn.dialect() {
        Dialect::Sqlite => (SQLITE_BUMP_MINUTE, SQLITE_BUMP_TOTAL),
        #[cfg(feature = "mysql")]
        Dialect::Mysql => (MYSQL_BUMP_MINUTE, MYSQL_BUMP_TOTAL),
    };
    let processed_at = db_now();
    // Every batch locks markers, then buckets, then totals, each in key order (BTreeMap), so
    // two batches cannot wait on each other in a cycle; InnoDB's own insert-lock deadlocks are
    // retried from the start.
    write_transaction_retrying(conn, |conn| {
        let mut fresh = Vec::with_capacity(events.len());
        let mut minutes: BTreeMap<(&str, NaiveDateTime), i64> = BTreeMap::new();
        let mut types: BTreeMap<&str, i64> = BTreeMap::new();
        for (event, minute) in events {
            let marked = diesel::insert_into(analytics_processed::table)
                .values((
                    analytics_processed::event_id.eq(&event.event_id),
                    analytics_processed::processed_at.eq(processed_at),
                ))
                .execute(conn);
            match marked {
                Ok(_) => {}
                // Counted before (or earlier in this batch): the failed insert wrote
                // nothing, and the transaction goes on.
                Err(err) if is_unique_violation(&err) => {
                    fresh.push(false);
                    continue;
                }
                Err(err) => return Err(err.into()),
            }
            fresh.push(true);
            *minutes.entry((&event.event_type, *minute)).or_default() += 1;
            *types.entry(&event.event_type).or_default() += 1;
        }
        for ((event_type, minute), n) in &minutes {
            diesel::sql_query(bump_minute)
                .bind::<Text, _>(*event_type)
                .bind::<Timestamp, _>(*minute)
                .bind::<BigInt, _>(*n)
                .execute(conn)?;
        }
        let mut totals = HashMap::with_capacity(types.len());
        for (event_type, n) in &types {
            diesel::sql_query(bump_total)
                .bind::<Text, _>(*event_type)
                .bind::<BigInt, _>(*n)
                .execute(conn)?;
            let total = analytics_totals::table
                .filter(analytics_totals::event_type.eq(*event_type))
                .select(analytics_totals::total)
                .first::<i64>(conn)?;
            totals.insert(*event_type, columns::u64_from_db(total, "total")?);
        }
        Ok(events
            .iter()
            .zip(fresh)
            .map(|((event, _), fresh)| {
                fresh
                    .then(|| totals.get(event.event_type.as_str()).copied())
                    .flatten()
            })
            .collect())
    })
}

fn totals(conn: &mut StoreConnection) -> Result<Vec<(String, u64)>, StoreError> {
    analytics_totals::table
        .order(analytics_totals::event_type.asc())
        .select((analytics_totals::event_type, analytics_totals::total))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .map(|(event_type, total)| Ok((event_type, columns::u64_from_db(total, "total")?)))
        .collect()
}

fn minute_counts(
    conn: &mut StoreConnection,
    event_type: Option<&str>,
) -> Result<Vec<(String, DateTime<Utc>, u64)>, StoreError> {
    let mut query = analytics_minute_counts::table
        .select((
            analytics_minute_counts::event_type,
            analytics_minute_counts::minute,
            analytics_minute_counts::count,
        ))
        .order((
            analytics_minute_counts::event_type.asc(),
            analytics_minute_counts::minute.asc(),
        ))
        .into_boxed();
    if let Some(event_type) = event_type {
        query = query.filter(analytics_minute_counts::event_type.eq(event_type));
    }
    query
        .load::<(String, NaiveDateTime, i64)>(conn)?
        .into_iter()
        .map(|(event_type, minute, count)| {
            Ok((
                event_type,
                minute.and_utc(),
                columns::u64_from_db(count, "minute count")?,
            ))
        })
        .collect()
}
