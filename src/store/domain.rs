//! The NFT domain's state: users' volumes, badges, NFTs and flows. Changes arrive as the
//! actors' [`StateChange`]s and are written in the same transaction as the events they cause;
//! each is guarded (compare-and-set), so a change decided on stale state is refused as a
//! conflict instead of overwriting another router instance's write.
//!
//! A refused change writes nothing. The single-statement changes simply match no row; a flow
//! change, which writes several tables, first reads its whole precondition under the rows'
//! locks (see `flows`) and only then writes, each statement guarded once more. Should one of
//! those still match nothing, the transaction is rolled back before the conflict is reported,
//! so no half of a flow change (a flow row without its badges consumed) is ever committed.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::result::Error as DieselError;

use super::columns::{check_id, db_now, db_time, MAX_USER_ID};
use super::connection::{write_transaction_retrying, StoreConnection};
use super::error::{is_unique_violation, StoreError};
use super::events::append_in_transaction;
use super::flows::{self, NftStatus};
use super::receipts;
use super::schema::{nft_flows, user_badges, user_nfts, user_volumes};
use super::Store;
use actors::domain::{BadgeStatus, FlowRecord, FlowStatus, Receipt, StateChange, UserState};
use actors::journal::{NewEvent, StoredEvent};

/// Width of `user_badges.badge_id` in `schema.sql`.
pub(super) const MAX_BADGE_ID: usize = 64;

/// Why a change was not applied (nothing was written).
pub(crate) enum Refused {
    /// Its precondition no longer holds.
    Conflict,
    /// Its receipt's key is stored already: another attempt with the key committed first.
    Receipted,
}

impl Store {
    /// The user's volume (0 when never recorded), badges, NFT and active flow, read in one
    /// transaction so they come from one snapshot (never a flow's badges consumed but the flow
    /// not yet active, say).
    pub fn user_state(&self, user_id: &str) -> Result<UserState, StoreError> {
        self.checkout()?.transaction::<_, StoreError, _>(|conn| {
            let volume = user_volumes::table
                .find(user_id)
                .select(user_volumes::volume)
                .first::<f64>(conn)
                .optional()?
                .unwrap_or(0.0);
            let rows: Vec<(String, String)> = user_badges::table
                .filter(user_badges::user_id.eq(user_id))
                .select((user_badges::badge_id, user_badges::status))
                .load(conn)?;
            let mut badges = std::collections::BTreeMap::new();
            for (badge, status) in rows {
                let status = BadgeStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("badge status `{status}`")))?;
                badges.insert(badge, status);
            }
            let (nft, active_flow) = flows::nft_state(conn, user_id)?;
            Ok(UserState {
                volume,
                badges,
                nft,
                active_flow,
            })
        })
    }

    /// Applies `change`, appends `events` and stores `receipt` in one transaction;
    /// `Ok(Err(refused))` when the change's precondition failed or the receipt's key is stored
    /// already (nothing written, no event appended).
    pub(crate) fn apply_change(
        &self,
        change: &StateChange,
        events: &[NewEvent],
        receipt: Option<&Receipt>,
    ) -> Result<Result<Vec<StoredEvent>, Refused>, StoreError> {
        validate(change)?;
        let mut refused = Refused::Conflict;
        let outcome = write_transaction_retrying(&mut *self.checkout()?, |conn| {
            refused = Refused::Conflict;
            if let Some(receipt) = receipt {
                if receipts::exists(conn, &receipt.key)? {
                    refused = Refused::Receipted;
                    return Err(refusal());
                }
            }
            if !apply(conn, change)? {
                return Err(refusal());
            }
            let stored = append_in_transaction(conn, events)?;
            if let Some(receipt) = receipt {
                if !receipts::insert_in_transaction(conn, receipt, &stored)? {
                    refused = Refused::Receipted;
                    return Err(refusal());
                }
            }
            Ok(stored)
        });
        match outcome {
            Ok(stored) => Ok(Ok(stored)),
            Err(e) if is_refusal(&e) => Ok(Err(refused)),
            Err(e) => Err(e),
        }
    }
}

/// The error a refused change leaves its transaction with: `write_transaction` commits
/// whatever its body answers `Ok`, so a conflict must travel as an error to be rolled back.
/// Diesel's own "roll back, please" error is one nothing else here produces.
fn refusal() -> StoreError {
    StoreError::Database(DieselError::RollbackTransaction)
}

fn is_refusal(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(DieselError::RollbackTransaction))
}

/// Checks every id against its column's width before the transaction, so both backends refuse
/// the same changes (and name the field).
fn validate(change: &StateChange) -> Result<(), StoreError> {
    check_id("user_id", change.user_id(), MAX_USER_ID)?;
    match change {
        StateChange::SetVolume { .. } => Ok(()),
        StateChange::AwardBadge { badge_id, .. } | StateChange::ActivateBadge { badge_id, .. } => {
            check_id("badge_id", badge_id, MAX_BADGE_ID)
        }
        StateChange::StartFlow { flow }
        | StateChange::AdvanceFlow { flow }
        | StateChange::CompleteFlow { flow }
        | StateChange::FailFlow { flow } => flows::validate(flow),
    }
}

/// Runs the change's conditional statement; false when its precondition failed.
fn apply(conn: &mut StoreConnection, change: &StateChange) -> Result<bool, StoreError> {
    let now = db_now();
    match change {
        StateChange::SetVolume {
            user_id,
            expected,
            volume,
        } => {
            let updated = diesel::update(
                user_volumes::table
                    .filter(user_volumes::user_id.eq(user_id))
                    .filter(user_volumes::volume.eq(expected)),
            )
            .set((
                user_volumes::volume.eq(volume),
                user_volumes::updated_at.eq(now),
            ))
            .execute(conn)?;
            if updated == 1 {
                return Ok(true);
            }
            let exists = user_volumes::table
                .find(user_id)
                .count()
                .get_result::<i64>(conn)?
                > 0;
            if exists || *expected != 0.0 {
                return Ok(false);
            }
            insert_unless_present(
                diesel::insert_into(user_volumes::table)
                    .values((
                        user_volumes::user_id.eq(user_id),
                        user_volumes::volume.eq(volume),
                        user_volumes::updated_at.eq(now),
                    ))
                    .execute(conn),
            )
        }
        StateChange::AwardBadge { user_id, badge_id } => insert_unless_present(
            diesel::insert_into(user_badges::table)
                .values((
                    user_badges::user_id.eq(user_id),
                    user_badges::badge_id.eq(badge_id),
                    user_badges::status.eq(BadgeStatus::Earned.as_str()),
                    user_badges::updated_at.eq(now),
                ))
                .execute(conn),
        ),
        StateChange::ActivateBadge { user_id, badge_id } => {
            let updated = diesel::update(
                user_badges::table
                    .filter(user_badges::user_id.eq(user_id))
                    .filter(user_badges::badge_id.eq(badge_id))
                    .filter(user_badges::status.eq(BadgeStatus::Earned.as_str())),
            )
            .set((
                user_badges::status.eq(BadgeStatus::Activated.as_str()),
                user_badges::updated_at.eq(now),
            ))
            .execute(conn)?;
            Ok(updated == 1)
        }
        StateChange::StartFlow { flow } => start_flow(conn, flow),
        StateChange::AdvanceFlow { flow } => advance_flow(conn, flow),
        StateChange::CompleteFlow { flow } => complete_flow(conn, flow),
        StateChange::FailFlow { flow } => fail_flow(conn, flow),
    }
}

/// Stores a new pending flow as the user's active flow and consumes its badges; if the user
/// has no active flow, still holds `flow.old_nft` (none for an unlock), the operation id is
/// new, and every badge to consume is activated.
///
/// Rows are locked in the order every flow change takes them (`user_nfts`, `nft_flows`,
/// `user_badges`), so two changes racing on one user queue rather than deadlock. Rows that do
/// not exist yet (the user's first flow; the new flow itself) cannot be locked; the inserts
/// that create them are the guard instead: a racing start for the same user or operation
/// waits on the primary key, then fails on it and is refused.
fn start_flow(conn: &mut StoreConnection, flow: &FlowRecord) -> Result<bool, StoreError> {
    let detail = flows::detail_json(flow, flow.status)?;
    let badges: BTreeSet<&str> = flow.consumed_badges.iter().map(String::as_str).collect();

    let nft = flows::lock_nft_row(conn, &flow.user_id)?;
    let expected_mint = flow.old_nft.as_ref().map(|n| n.mint_address.as_str());
    if nft.as_ref().is_some_and(|n| n.active_operation.is_some())
        || nft.as_ref().and_then(|n| n.held_mint()) != expected_mint
        || flows::lock_flow(conn, &flow.operation_id)?.is_some()
    {
        return Ok(false);
    }
    let statuses = flows::lock_badges(conn, &flow.user_id, &badges)?;
    if badges
        .iter()
        .any(|b| statuses.get(*b) != Some(&BadgeStatus::Activated))
    {
        return Ok(false);
    }

    let now = db_now();
    let inserted = insert_unless_present(
        diesel::insert_into(nft_flows::table)
            .values((
                nft_flows::operation_id.eq(&flow.operation_id),
                nft_flows::user_id.eq(&flow.user_id),
                nft_flows::kind.eq(flow.kind.as_str()),
                nft_flows::status.eq(flow.status.as_str()),
                nft_flows::detail.eq(&detail),
                nft_flows::created_at.eq(db_time(flow.created_at)),
                nft_flows::updated_at.eq(now),
            ))
            .execute(conn),
    )?;
    if !inserted || !mark_running(conn, flow, nft.is_some(), expected_mint)? {
        return Ok(false);
    }
    if badges.is_empty() {
        return Ok(true);
    }
    let consumed = diesel::update(
        user_badges::table
            .filter(user_badges::user_id.eq(&flow.user_id))
            .filter(user_badges::badge_id.eq_any(&badges))
            .filter(user_badges::status.eq(BadgeStatus::Activated.as_str())),
    )
    .set((
        user_badges::status.eq(BadgeStatus::Consumed.as_str()),
        user_badges::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(consumed == badges.len())
}

/// Makes `flow` the user's active flow, keeping the NFT columns: an insert where the user has
/// no row yet (a row inserted meanwhile is a conflict), else an update that still requires no
/// active flow and the NFT the flow replaces.
fn mark_running(
    conn: &mut StoreConnection,
    flow: &FlowRecord,
    has_row: bool,
    expected_mint: Option<&str>,
) -> Result<bool, StoreError> {
    let now = db_now();
    let status = NftStatus::running(flow.kind).as_str();
    if !has_row {
        return insert_unless_present(
            diesel::insert_into(user_nfts::table)
                .values((
                    user_nfts::user_id.eq(&flow.user_id),
                    user_nfts::status.eq(status),
                    user_nfts::active_operation.eq(&flow.operation_id),
                    user_nfts::updated_at.eq(now),
                ))
                .execute(conn),
        );
    }
    let idle = user_nfts::table
        .filter(user_nfts::user_id.eq(&flow.user_id))
        .filter(user_nfts::active_operation.is_null());
    let changes = (
        user_nfts::status.eq(status),
        user_nfts::active_operation.eq(&flow.operation_id),
        user_nfts::updated_at.eq(now),
    );
    let updated = match expected_mint {
        Some(mint) => diesel::update(idle.filter(user_nfts::mint_address.eq(mint)))
            .set(changes)
            .execute(conn)?,
        None => diesel::update(idle.filter(user_nfts::nft_id.is_null()))
            .set(changes)
            .execute(conn)?,
    };
    Ok(updated == 1)
}

/// Stores the flow's next step, if the stored flow is the user's, pending, and at an earlier
/// step: a repeated or late advance (another instance got further) is refused, so a flow never
/// moves backwards.
fn advance_flow(conn: &mut StoreConnection, flow: &FlowRecord) -> Result<bool, StoreError> {
    let detail = flows::detail_json(flow, FlowStatus::Pending)?;
    let Some(stored) = flows::lock_flow(conn, &flow.operation_id)? else {
        return Ok(false);
    };
    if stored.user_id != flow.user_id
        || stored.status != FlowStatus::Pending
        || flows::step_rank(stored.step) >= flows::step_rank(flow.step)
    {
        return Ok(false);
    }
    let updated = diesel::update(
        nft_flows::table
            .filter(nft_flows::operation_id.eq(&flow.operation_id))
            .filter(nft_flows::status.eq(FlowStatus::Pending.as_str())),
    )
    .set((
        nft_flows::detail.eq(&detail),
        nft_flows::updated_at.eq(db_now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Ends the flow as completed: the user holds `flow.new_nft` (none if the flow minted none)
/// and has no active flow; if the stored flow is pending and the user's active flow.
fn complete_flow(conn: &mut StoreConnection, flow: &FlowRecord) -> Result<bool, StoreError> {
    let detail = flows::detail_json(flow, FlowStatus::Completed)?;
    if flows::lock_pending_and_active(conn, flow)?.is_none() {
        return Ok(false);
    }
    let held = flow.new_nft.as_ref();
    let tier_id = held.map(|m| flows::tier_column(m.tier_id)).transpose()?;
    let updated = diesel::update(
        user_nfts::table
            .filter(user_nfts::user_id.eq(&flow.user_id))
            .filter(user_nfts::active_operation.eq(&flow.operation_id)),
    )
    .set((
        user_nfts::nft_id.eq(held.map(|m| m.nft_id.as_str())),
        user_nfts::tier_id.eq(tier_id),
        user_nfts::mint_address.eq(held.map(|m| m.mint_address.as_str())),
        user_nfts::acquired_at.eq(held.map(|m| db_time(m.minted_at))),
        user_nfts::status.eq(NftStatus::settled(held.is_some()).as_str()),
        user_nfts::active_operation.eq(None::<&str>),
        user_nfts::updated_at.eq(db_now()),
    ))
    .execute(conn)?;
    Ok(updated == 1 && end_flow_row(conn, flow, FlowStatus::Completed, &detail)?)
}

/// Ends the flow as failed: the user keeps the NFT they had (its columns are not touched),
/// those of `flow.consumed_badges` still consumed are activated again, and the active flow is
/// cleared; if the stored flow is pending and the user's active flow.
fn fail_flow(conn: &mut StoreConnection, flow: &FlowRecord) -> Result<bool, StoreError> {
    let detail = flows::detail_json(flow, FlowStatus::Failed)?;
    let Some(nft) = flows::lock_pending_and_active(conn, flow)? else {
        return Ok(false);
    };
    let now = db_now();
    let released = diesel::update(
        user_nfts::table
            .filter(user_nfts::user_id.eq(&flow.user_id))
            .filter(user_nfts::active_operation.eq(&flow.operation_id)),
    )
    .set((
        user_nfts::status.eq(NftStatus::settled(nft.holds_nft()).as_str()),
        user_nfts::active_operation.eq(None::<&str>),
        user_nfts::updated_at.eq(now),
    ))
    .execute(conn)?;
    if released != 1 {
        return Ok(false);
    }
    let badges: BTreeSet<&str> = flow.consumed_badges.iter().map(String::as_str).collect();
    if !badges.is_empty() {
        diesel::update(
            user_badges::table
                .filter(user_badges::user_id.eq(&flow.user_id))
                .filter(user_badges::badge_id.eq_any(&badges))
                .filter(user_badges::status.eq(BadgeStatus::Consumed.as_str())),
        )
        .set((
            user_badges::status.eq(BadgeStatus::Activated.as_str()),
            user_badges::updated_at.eq(now),
        ))
        .execute(conn)?;
    }
    end_flow_row(conn, flow, FlowStatus::Failed, &detail)
}

/// Gives a pending flow row its final status and detail; false if it is no longer pending.
fn end_flow_row(
    conn: &mut StoreConnection,
    flow: &FlowRecord,
    status: FlowStatus,
    detail: &str,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        nft_flows::table
            .filter(nft_flows::operation_id.eq(&flow.operation_id))
            .filter(nft_flows::status.eq(FlowStatus::Pending.as_str())),
    )
    .set((
        nft_flows::status.eq(status.as_str()),
        nft_flows::detail.eq(detail),
        nft_flows::updated_at.eq(db_now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// An insert whose unique key may already be taken: that is a failed precondition.
fn insert_unless_present(result: QueryResult<usize>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use super::super::connection::write_transaction_retrying;
    use super::super::schema::user_volumes;
    use super::super::tests::{backends, connect, unique_user};
    use super::{is_refusal, refusal};
    use crate::store::columns::db_now;

    /// What makes a flow change refused half-way write nothing: the refusal travels as an error,
    /// so the transaction is rolled back, and arrives intact to be reported as a conflict.
    #[test]
    fn a_refusal_rolls_back_what_the_change_had_written() {
        for backend in backends() {
            let store = connect(&backend, 1);
            let user = unique_user();
            let mut conn = store.checkout().expect("checkout");
            let outcome = write_transaction_retrying(&mut conn, |conn| {
                diesel::insert_into(user_volumes::table)
                    .values((
                        user_volumes::user_id.eq(&user),
                        user_volumes::volume.eq(5.0),
                        user_volumes::updated_at.eq(db_now()),
                    ))
                    .execute(conn)?;
                Err::<(), _>(refusal())
            });
            drop(conn);
            assert!(
                matches!(outcome, Err(e) if is_refusal(&e)),
                "{}",
                backend.name
            );
            assert_eq!(store.user_state(&user).expect("state").volume, 0.0);
        }
    }
}
