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
pub(super) const MAX_OPERATION_ID: usize = 64;
pub(super) const MAX_ADDRESS: usize = 64;
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

    /// The entry recorded for `(operation_id, kind)`, if any: how a resumed flow learns that
    /// its mint or burn already happened.
    pub fn find_ledger_entry(
        &self,
        operation_id: &str,
        kind: EntryKind,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        find(&mut *self.checkout()?, operation_id, kind.as_str())
    }

    /// Every entry recorded for the user, in the order recorded. Its mints minus its burns is
    /// how many NFTs the ledger says the user holds, which checks that no flow minted twice.
    pub fn ledger_entries_for_user(&self, user_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        ledger_entries::table
            .filter(ledger_entries::user_id.eq(user_id))
            .order(ledger_entries::id.asc())
            .select(Row::as_select())
            .load(&mut *self.checkout()?)?
            .into_iter()
            .map(LedgerEntry::try_from)
            .collect()
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
        self.record_ledger_entry(entry).map_err(chain_error)
    }

    fn find(&self, operation_id: &str, kind: EntryKind) -> Result<Option<LedgerEntry>, ChainError> {
        self.find_ledger_entry(operation_id, kind)
            .map_err(chain_error)
    }
}

/// An outage is the chain being unavailable (the flow retries later); anything else is a
/// definite refusal.
fn chain_error(e: StoreError) -> ChainError {
    if e.is_unavailable() {
        ChainError::Unavailable(e.to_string())
    } else {
        ChainError::Rejected(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    //! Looking entries up: by operation and kind (how a resumed flow learns what happened), and
    //! per user (how tests count a user's NFTs on the ledger).

    use super::super::tests::{backends, connect, unique_user};
    use actors::domain::{EntryKind, LedgerBook, LedgerEntry};

    fn entry(user: &str, operation_id: &str, kind: EntryKind) -> LedgerEntry {
        LedgerEntry {
            operation_id: operation_id.to_string(),
            kind,
            user_id: user.to_string(),
            tier_id: (kind == EntryKind::Mint).then_some(2),
            nft_id: format!("nft-{operation_id}"),
            mint_address: format!("mint-{operation_id}"),
            signature: format!("sig-{operation_id}-{}", kind.as_str()),
        }
    }

    #[test]
    fn an_entry_is_found_by_operation_and_kind_and_listed_for_its_user() {
        for backend in backends() {
            let store = connect(&backend, 1);
            let user = unique_user();
            let op = |n: u32| format!("op-{n}-{}", uuid::Uuid::new_v4().simple());
            let (first, second) = (op(1), op(2));
            assert_eq!(LedgerBook::find(&store, &first, EntryKind::Mint), Ok(None));

            let mint = entry(&user, &first, EntryKind::Mint);
            LedgerBook::record(&store, &mint).expect("mint");
            let burn = entry(&user, &first, EntryKind::Burn);
            LedgerBook::record(&store, &burn).expect("burn");
            let remint = entry(&user, &second, EntryKind::Mint);
            store.record_ledger_entry(&remint).expect("mint again");
            store
                .record_ledger_entry(&entry(&unique_user(), &op(3), EntryKind::Mint))
                .expect("someone else's mint");

            assert_eq!(
                LedgerBook::find(&store, &first, EntryKind::Mint),
                Ok(Some(mint.clone())),
                "{}",
                backend.name
            );
            assert_eq!(
                store
                    .find_ledger_entry(&first, EntryKind::Burn)
                    .expect("find"),
                Some(burn.clone())
            );
            assert_eq!(
                store
                    .find_ledger_entry(&second, EntryKind::Burn)
                    .expect("find"),
                None
            );

            let entries = store.ledger_entries_for_user(&user).expect("entries");
            assert_eq!(entries, vec![mint, burn, remint], "{}", backend.name);
            let held = entries.iter().fold(0i32, |n, e| match e.kind {
                EntryKind::Mint => n + 1,
                EntryKind::Burn => n - 1,
            });
            assert_eq!(held, 1);
        }
    }
}
