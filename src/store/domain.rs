//! The NFT domain's state: users' volumes and badges. Changes arrive as the actors'
//! [`StateChange`]s and are written in the same transaction as the events they cause; each is
//! a conditional statement (compare-and-set), so a change decided on stale state is refused as
//! a conflict instead of overwriting another router instance's write.

use diesel::prelude::*;

use super::columns::{check_id, db_now, MAX_USER_ID};
use super::connection::{write_transaction_retrying, StoreConnection};
use super::error::{is_unique_violation, StoreError};
use super::events::append_in_transaction;
use super::schema::{user_badges, user_volumes};
use super::Store;
use actors::domain::{BadgeStatus, StateChange, UserState};
use actors::journal::{NewEvent, StoredEvent};

/// Width of `user_badges.badge_id` in `schema.sql`.
const MAX_BADGE_ID: usize = 64;

/// The change could not be applied: its precondition no longer holds.
pub(crate) struct Conflict;

impl Store {
    /// The user's volume (0 when never recorded) and badges.
    pub fn user_state(&self, user_id: &str) -> Result<UserState, StoreError> {
        let conn = &mut *self.checkout()?;
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
        Ok(UserState { volume, badges })
    }

    /// Applies `change` and appends `events` in one transaction; `Ok(None)` when the change's
    /// precondition failed (nothing written).
    pub(crate) fn apply_change(
        &self,
        change: &StateChange,
        events: &[NewEvent],
    ) -> Result<Result<Vec<StoredEvent>, Conflict>, StoreError> {
        check_id("user_id", change.user_id(), MAX_USER_ID)?;
        if let StateChange::AwardBadge { badge_id, .. }
        | StateChange::ActivateBadge { badge_id, .. } = change
        {
            check_id("badge_id", badge_id, MAX_BADGE_ID)?;
        }
        write_transaction_retrying(&mut *self.checkout()?, |conn| {
            if !apply(conn, change)? {
                return Ok(Err(Conflict));
            }
            Ok(Ok(append_in_transaction(conn, events)?))
        })
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
    }
}

/// An insert whose unique key may already be taken: that is a failed precondition.
fn insert_unless_present(result: QueryResult<usize>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
