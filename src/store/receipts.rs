//! Receipts of keyed domain commands (`domain_receipts`): the first answer of a trading-volume
//! report or a badge award sent with an `Idempotency-Key`, written in the transaction of the
//! change it answers, so a receipt exists exactly when its change does. Pruned with the events
//! (`store.retention_days`), which bounds how long a key is remembered.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::columns::{check_chars, db_now};
use super::connection::{write_transaction, StoreConnection};
use super::error::{is_unique_violation, StoreError};
use super::schema::domain_receipts;
use super::Store;
use actors::domain::{Receipt, StoredReceipt};
use actors::journal::StoredEvent;

/// Width of `domain_receipts.receipt_key` and `fingerprint` in `schema.sql`.
const MAX_KEY: usize = 64;

/// Stores `receipt` with the events its change appended; false when a receipt with its key is
/// stored already (the caller rolls the change back).
pub(super) fn insert_in_transaction(
    conn: &mut StoreConnection,
    receipt: &Receipt,
    events: &[StoredEvent],
) -> Result<bool, StoreError> {
    check_chars("receipt_key", &receipt.key, MAX_KEY)?;
    check_chars("fingerprint", &receipt.fingerprint, MAX_KEY)?;
    let events: Vec<(u64, &str)> = events
        .iter()
        .map(|e| (e.seq, e.event_id.as_str()))
        .collect();
    let events = serde_json::to_string(&events)
        .map_err(|e| StoreError::InvalidEvent(format!("receipt events: {e}")))?;
    let inserted = diesel::insert_into(domain_receipts::table)
        .values((
            domain_receipts::receipt_key.eq(&receipt.key),
            domain_receipts::fingerprint.eq(&receipt.fingerprint),
            domain_receipts::answer.eq(&receipt.answer),
            domain_receipts::events.eq(&events),
            domain_receipts::created_at.eq(db_now()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether a receipt with `key` is stored (read inside the change's transaction, so a retry is
/// refused before it writes anything).
pub(super) fn exists(conn: &mut StoreConnection, key: &str) -> Result<bool, StoreError> {
    Ok(domain_receipts::table
        .find(key)
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Deletes receipts stored before `cutoff`; returns how many.
pub(super) fn prune_older_than(
    conn: &mut StoreConnection,
    cutoff: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let cutoff = cutoff.naive_utc();
    write_transaction(conn, |conn| {
        Ok(
            diesel::delete(domain_receipts::table.filter(domain_receipts::created_at.lt(cutoff)))
                .execute(conn)?,
        )
    })
}

impl Store {
    /// The receipt stored under `key`, if any.
    pub fn receipt(&self, key: &str) -> Result<Option<StoredReceipt>, StoreError> {
        let row = domain_receipts::table
            .find(key)
            .select((
                domain_receipts::fingerprint,
                domain_receipts::answer,
                domain_receipts::events,
            ))
            .first::<(String, String, String)>(&mut *self.checkout()?)
            .optional()?;
        row.map(|(fingerprint, answer, events)| {
            let events: Vec<(u64, String)> = serde_json::from_str(&events)
                .map_err(|e| StoreError::Corrupt(format!("receipt events of {key}: {e}")))?;
            Ok(StoredReceipt {
                fingerprint,
                answer,
                events,
            })
        })
        .transpose()
    }
}
