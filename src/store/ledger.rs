//! The local ledger's book: the [`LedgerBook`] the default chain adapter
//! ([`actors::domain::LocalLedger`]) records mints and burns in.

use diesel::prelude::*;

use super::columns::{check_id, db_now, MAX_USER_ID};
use super::connection::{write_transaction_retrying, StoreConnection};
use super::error::StoreError;
use super::schema::ledger_entries;
use super::Store;
use actors::domain::{ChainError, EntryKind, LedgerBook, LedgerEntry};

/// Widths from `schema.sql`.
const MAX_OPERATION_ID: usize = 64;
const MAX_ADDRESS: usize = 64;
const MAX_SIGNATURE: usize = 128;

#[derive(Queryable, Selectable)]
#[diesel(table_name = ledger_entries)]
struct Row {
    operation_id: String,
    kind: String,
    user_id: String,
    tier_id: Option<i32>,
    nft_id: String,
    mint_address: String,
    signature: String,
}

impl TryFrom<Row> for LedgerEntry {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let kind = match row.kind.as_str() {
            "mint" => EntryKind::Mint,
            "burn" => EntryKind::Burn,
            other => return Err(StoreError::Corrupt(format!("ledger entry kind `{other}`"))),
        };
        Ok(LedgerEntry {
            operation_id: row.operation_id,
            kind,
            user_id: row.user_id,
            tier_id: row.tier_id.and_then(|t| u32::try_from(t).ok()),
            nft_id: row.nft_id,
            mint_address: row.mint_address,
            signature: row.signature,
        })
    }
}

impl Store {
    /// Records `entry` unless its `(operation_id, kind)` is recorded already; returns the
    /// recorded entry either way, in one transaction (so two racing callers agree).
    pub fn record_ledger_entry(&self, entry: &LedgerEntry) -> Result<LedgerEntry, StoreError> {
        check_id("operation_id", &entry.operation_id, MAX_OPERATION_ID)?;
        check_id("user_id", &entry.user_id, MAX_USER_ID)?;
        check_id("mint_address", &entry.mint_address, MAX_ADDRESS)?;
        check_id("signature", &entry.signature, MAX_SIGNATURE)?;
        write_transaction_retrying(&mut *self.checkout()?, |conn| record(conn, entry))
    }
}

fn find(
    conn: &mut StoreConnection,
    operation_id: &str,
    kind: &str,
) -> Result<Option<LedgerEntry>, StoreError> {
    ledger_entries::table
        .filter(ledger_entries::operation_id.eq(operation_id))
        .filter(ledger_entries::kind.eq(kind))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(LedgerEntry::try_from)
        .transpose()
}

fn record(conn: &mut StoreConnection, entry: &LedgerEntry) -> Result<LedgerEntry, StoreError> {
    let kind = entry.kind.as_str();
    if let Some(existing) = find(conn, &entry.operation_id, kind)? {
        return Ok(existing);
    }
    diesel::insert_into(ledger_entries::table)
        .values((
            ledger_entries::operation_id.eq(&entry.operation_id),
            ledger_entries::kind.eq(kind),
            ledger_entries::user_id.eq(&entry.user_id),
            ledger_entries::tier_id.eq(entry.tier_id.and_then(|t| i32::try_from(t).ok())),
            ledger_entries::nft_id.eq(&entry.nft_id),
            ledger_entries::mint_address.eq(&entry.mint_address),
            ledger_entries::signature.eq(&entry.signature),
            ledger_entries::created_at.eq(db_now()),
        ))
        .execute(conn)?;
    Ok(entry.clone())
}

impl LedgerBook for Store {
    fn record(&self, entry: &LedgerEntry) -> Result<LedgerEntry, ChainError> {
        self.record_ledger_entry(entry).map_err(|e| {
            if e.is_unavailable() {
                ChainError::Unavailable(e.to_string())
            } else {
                ChainError::Rejected(e.to_string())
            }
        })
    }
}
