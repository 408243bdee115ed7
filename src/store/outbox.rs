//! The Kafka outbox: the rows of `nft_events` whose `published_at` is still NULL.
//!
//! There is no separate outbox table. An event row is written once, in the append transaction,
//! so an accepted event is queued for Kafka by construction (the delivery guarantees,
//! docs/DELIVERY.md) and there is nothing to keep in step. The relay reads the oldest
//! unpublished rows in id order and stamps them once the broker has acknowledged every topic
//! they route to; `idx_nft_events_unpublished (published_at, id)` serves both the read and the
//! backlog count.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::columns::{self, db_now};
use super::connection::{write_transaction_retrying, StoreConnection};
use super::error::StoreError;
use super::schema::nft_events;
use super::Store;

/// The relay's record type: the store implements the actors' `Outbox` port (see `port.rs`).
pub use actors::outbox::OutboxEntry;

use actors::event::StoredType;

/// Ids per UPDATE: keeps each statement far below SQLite's and MySQL's bound-parameter limits,
/// whatever batch size the relay settles on.
const MARK_CHUNK: usize = 1_000;

#[derive(Queryable, Selectable)]
#[diesel(table_name = nft_events)]
struct PendingRow {
    id: i64,
    event_id: String,
    user_id: String,
    event_type: String,
    correlation_id: Option<String>,
    envelope_json: String,
    created_at: NaiveDateTime,
}

impl TryFrom<PendingRow> for OutboxEntry {
    type Error = StoreError;

    fn try_from(row: PendingRow) -> Result<Self, StoreError> {
        Ok(OutboxEntry {
            id: columns::u64_from_db(row.id, "event row id")?,
            event_id: row.event_id,
            user_id: row.user_id,
            event_type: StoredType::parse(&row.event_type),
            correlation_id: row.correlation_id,
            envelope_json: row.envelope_json,
            created_at: row.created_at.and_utc(),
        })
    }
}

impl Store {
    /// The oldest events not yet published to Kafka, in id order, at most `limit`.
    ///
    /// Id order is commit order for each user (a user's appends are serialized, see
    /// [`Store::append`]), so publishing in this order keeps every user's Kafka partition in
    /// stream order. Across users a lower id may commit after a higher one on MySQL; it is
    /// simply picked up by a later call, since selection is by `published_at IS NULL`, not by a
    /// position.
    pub fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        pending(&mut *self.checkout()?, limit)
    }

    /// Records that these events are on every topic they route to, in one transaction.
    ///
    /// Ids already published keep their first `published_at` (a relay retrying a batch after
    /// a lost answer changes nothing); unknown ids are ignored.
    pub fn mark_published(&self, ids: &[u64]) -> Result<(), StoreError> {
        mark_published(&mut *self.checkout()?, ids)
    }

    /// How many events wait to be published: the relay's lag, for metrics and readiness.
    pub fn outbox_backlog(&self) -> Result<u64, StoreError> {
        backlog(&mut *self.checkout()?)
    }
}

fn pending(conn: &mut StoreConnection, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    nft_events::table
        .filter(nft_events::published_at.is_null())
        .order(nft_events::id.asc())
        .limit(columns::sql_limit(limit))
        .select(PendingRow::as_select())
        .load(conn)?
        .into_iter()
        .map(OutboxEntry::try_from)
        .collect()
}

fn mark_published(conn: &mut StoreConnection, ids: &[u64]) -> Result<(), StoreError> {
    // An id past i64::MAX names no row; dropping it is the same as matching nothing.
    let ids: Vec<i64> = ids
        .iter()
        .filter_map(|&id| i64::try_from(id).ok())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let now = db_now();
    write_transaction_retrying(conn, |conn| {
        for chunk in ids.chunks(MARK_CHUNK) {
            diesel::update(
                nft_events::table
                    .filter(nft_events::id.eq_any(chunk))
                    .filter(nft_events::published_at.is_null()),
            )
            .set(nft_events::published_at.eq(now))
            .execute(conn)?;
        }
        Ok(())
    })
}

fn backlog(conn: &mut StoreConnection) -> Result<u64, StoreError> {
    let count = nft_events::table
        .filter(nft_events::published_at.is_null())
        .count()
        .get_result::<i64>(conn)?;
    columns::u64_from_db(count, "outbox backlog")
}
