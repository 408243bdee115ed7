//! Unlock and upgrade flows, and the NFT each user holds: the rows of `nft_flows` and
//! `user_nfts`, the reads over them (`Store::flow`, `Store::pending_flows`, the NFT half of
//! `Store::user_state`), and the locked reads with which the guarded flow changes in `domain`
//! check their preconditions before writing anything.
//!
//! A flow row keeps the whole [`FlowRecord`] as JSON (`detail`) beside the few columns the
//! queries filter on, so a router that stops mid-flow reads back exactly the step it reached
//! and what the chain had answered, and resumes or compensates from there.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::columns::{check_bytes, check_id, MAX_TEXT_BYTES};
use super::connection::StoreConnection;
use super::domain::MAX_BADGE_ID;
use super::error::StoreError;
use super::ledger::{MAX_ADDRESS, MAX_OPERATION_ID};
use super::schema::{nft_flows, user_badges, user_nfts};
use super::Store;
use actors::domain::{BadgeStatus, FlowKind, FlowRecord, FlowStatus, FlowStep, HeldNft};

/// Width of `user_nfts.nft_id` in `schema.sql`.
const MAX_NFT_ID: usize = 64;

/// Loads `$query`'s rows on `$conn` and, on MySQL, locks them until the transaction ends, so
/// a precondition read here still holds when the transaction writes: a second router instance's
/// change for the same rows waits, then reads (a locking read reads the latest commit) what
/// this one committed. SQLite needs no row lock: its `BEGIN IMMEDIATE` already holds the
/// database's write lock.
///
/// Only rows found by a first, plain read are locked. A locking read that finds no row locks
/// the gap where it would go instead, and two users' first flows then deadlock on their inserts
/// into that one gap; a row that is missing is instead guarded by the primary key of the
/// insert that creates it. The MultiConnection has no `FOR UPDATE`, hence the backend's own
/// connection.
macro_rules! load_locked {
    ($conn:expr, $query:expr) => {
        match $conn {
            StoreConnection::Sqlite(inner) => $query.load(inner),
            #[cfg(feature = "mysql")]
            StoreConnection::Mysql(inner) => {
                let found = $query.load(inner)?;
                if found.is_empty() {
                    Ok(found)
                } else {
                    $query.for_update().load(inner)
                }
            }
        }
    };
}

/// `user_nfts.status`: the row's other columns restated for readers of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NftStatus {
    None,
    Active,
    Unlocking,
    Upgrading,
}

impl NftStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            NftStatus::None => "none",
            NftStatus::Active => "active",
            NftStatus::Unlocking => "unlocking",
            NftStatus::Upgrading => "upgrading",
        }
    }

    /// While a flow of `kind` is the user's active flow.
    pub(super) fn running(kind: FlowKind) -> NftStatus {
        match kind {
            FlowKind::Unlock => NftStatus::Unlocking,
            FlowKind::Upgrade => NftStatus::Upgrading,
        }
    }

    /// With no flow running.
    pub(super) fn settled(holds_nft: bool) -> NftStatus {
        if holds_nft {
            NftStatus::Active
        } else {
            NftStatus::None
        }
    }
}

/// A user's `user_nfts` row, as the reads and the flow changes need it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = user_nfts)]
pub(super) struct NftRow {
    nft_id: Option<String>,
    tier_id: Option<i32>,
    mint_address: Option<String>,
    acquired_at: Option<NaiveDateTime>,
    pub(super) active_operation: Option<String>,
}

impl NftRow {
    /// An NFT is held exactly when `nft_id` is set; the other NFT columns come with it.
    pub(super) fn holds_nft(&self) -> bool {
        self.nft_id.is_some()
    }

    /// The held NFT's mint address: what a starting flow's `old_nft` must name.
    pub(super) fn held_mint(&self) -> Option<&str> {
        if self.holds_nft() {
            self.mint_address.as_deref()
        } else {
            None
        }
    }

    fn held(&self) -> Result<Option<HeldNft>, StoreError> {
        let Some(nft_id) = &self.nft_id else {
            return Ok(None);
        };
        let corrupt = |what: &str| StoreError::Corrupt(format!("user NFT {nft_id}: {what}"));
        let tier_id = self.tier_id.ok_or_else(|| corrupt("no tier"))?;
        Ok(Some(HeldNft {
            nft_id: nft_id.clone(),
            tier_id: u32::try_from(tier_id).map_err(|_| corrupt("negative tier"))?,
            mint_address: self
                .mint_address
                .clone()
                .ok_or_else(|| corrupt("no mint address"))?,
            acquired_at: self
                .acquired_at
                .ok_or_else(|| corrupt("no acquisition time"))?
                .and_utc(),
        }))
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = nft_flows)]
struct FlowRow {
    operation_id: String,
    status: String,
    detail: String,
}

impl TryFrom<FlowRow> for FlowRecord {
    type Error = StoreError;

    /// The record is the detail; the status column is a copy the queries filter on, so a row
    /// where the two disagree was written by something other than this store.
    fn try_from(row: FlowRow) -> Result<Self, StoreError> {
        let record: FlowRecord = serde_json::from_str(&row.detail).map_err(|e| {
            StoreError::Corrupt(format!(
                "flow {}: detail is not a flow record: {e}",
                row.operation_id
            ))
        })?;
        if FlowStatus::parse(&row.status) != Some(record.status) {
            return Err(StoreError::Corrupt(format!(
                "flow {}: status `{}` disagrees with its detail",
                row.operation_id, row.status
            )));
        }
        Ok(record)
    }
}

/// `flow` as a row's detail, with `status` (the status its change gives the row, so the column
/// and the detail never disagree). Refused when it does not fit the `TEXT` column.
pub(super) fn detail_json(flow: &FlowRecord, status: FlowStatus) -> Result<String, StoreError> {
    let record = FlowRecord {
        status,
        ..flow.clone()
    };
    let json = serde_json::to_string(&record)
        .map_err(|e| StoreError::InvalidEvent(format!("flow record does not serialize: {e}")))?;
    check_bytes("flow detail", &json, MAX_TEXT_BYTES)?;
    Ok(json)
}

/// The order of a pending flow's steps: a flow only ever advances.
pub(super) fn step_rank(step: FlowStep) -> u8 {
    match step {
        FlowStep::Started => 0,
        FlowStep::Minted => 1,
    }
}

/// The user's NFT row, if any, locked until the transaction ends (see [`load_locked`]).
pub(super) fn lock_nft_row(
    conn: &mut StoreConnection,
    user_id: &str,
) -> Result<Option<NftRow>, StoreError> {
    let rows: Vec<NftRow> = load_locked!(
        conn,
        user_nfts::table
            .filter(user_nfts::user_id.eq(user_id))
            .select(NftRow::as_select())
    )?;
    Ok(rows.into_iter().next())
}

/// The stored flow, if any, locked until the transaction ends.
pub(super) fn lock_flow(
    conn: &mut StoreConnection,
    operation_id: &str,
) -> Result<Option<FlowRecord>, StoreError> {
    let rows: Vec<FlowRow> = load_locked!(
        conn,
        nft_flows::table
            .filter(nft_flows::operation_id.eq(operation_id))
            .select(FlowRow::as_select())
    )?;
    rows.into_iter()
        .next()
        .map(FlowRecord::try_from)
        .transpose()
}

/// The statuses of the user's badges among `badge_ids` (absent ones left out), locked until
/// the transaction ends.
pub(super) fn lock_badges(
    conn: &mut StoreConnection,
    user_id: &str,
    badge_ids: &BTreeSet<&str>,
) -> Result<BTreeMap<String, BadgeStatus>, StoreError> {
    if badge_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<&str> = badge_ids.iter().copied().collect();
    let rows: Vec<(String, String)> = load_locked!(
        conn,
        user_badges::table
            .filter(user_badges::user_id.eq(user_id))
            .filter(user_badges::badge_id.eq_any(&ids))
            .select((user_badges::badge_id, user_badges::status))
    )?;
    rows.into_iter()
        .map(|(badge, status)| {
            let status = BadgeStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("badge status `{status}`")))?;
            Ok((badge, status))
        })
        .collect()
}

/// Both ends' precondition, read under the locks (user row first, as `start_flow` takes them):
/// the user's active flow is this one and its stored row is pending. Answers the user's row
/// when it holds.
pub(super) fn lock_pending_and_active(
    conn: &mut StoreConnection,
    flow: &FlowRecord,
) -> Result<Option<NftRow>, StoreError> {
    let Some(nft) = lock_nft_row(conn, &flow.user_id)? else {
        return Ok(None);
    };
    if nft.active_operation.as_deref() != Some(flow.operation_id.as_str()) {
        return Ok(None);
    }
    let pending = lock_flow(conn, &flow.operation_id)?
        .is_some_and(|stored| stored.status == FlowStatus::Pending);
    Ok(pending.then_some(nft))
}

/// Checks a flow change's ids against their columns' widths, before its transaction.
pub(super) fn validate(flow: &FlowRecord) -> Result<(), StoreError> {
    check_id("operation_id", &flow.operation_id, MAX_OPERATION_ID)?;
    for badge_id in &flow.consumed_badges {
        check_id("badge_id", badge_id, MAX_BADGE_ID)?;
    }
    if let Some(old) = &flow.old_nft {
        check_id("old_nft.mint_address", &old.mint_address, MAX_ADDRESS)?;
    }
    if let Some(new) = &flow.new_nft {
        check_id("new_nft.nft_id", &new.nft_id, MAX_NFT_ID)?;
        check_id("new_nft.mint_address", &new.mint_address, MAX_ADDRESS)?;
        tier_column(new.tier_id)?;
    }
    Ok(())
}

/// A tier as `user_nfts.tier_id` (a signed INT) stores it.
pub(super) fn tier_column(tier_id: u32) -> Result<i32, StoreError> {
    i32::try_from(tier_id)
        .map_err(|_| StoreError::InvalidEvent(format!("tier_id {tier_id} is out of range")))
}

impl Store {
    /// The flow with this operation id, pending or ended.
    pub fn flow(&self, operation_id: &str) -> Result<Option<FlowRecord>, StoreError> {
        nft_flows::table
            .find(operation_id)
            .select(FlowRow::as_select())
            .first(&mut *self.checkout()?)
            .optional()?
            .map(FlowRecord::try_from)
            .transpose()
    }

    /// Every pending flow, oldest first: what a starting router resumes or compensates.
    pub fn pending_flows(&self) -> Result<Vec<FlowRecord>, StoreError> {
        nft_flows::table
            .filter(nft_flows::status.eq(FlowStatus::Pending.as_str()))
            .order((nft_flows::created_at.asc(), nft_flows::operation_id.asc()))
            .select(FlowRow::as_select())
            .load(&mut *self.checkout()?)?
            .into_iter()
            .map(FlowRecord::try_from)
            .collect()
    }
}

/// The NFT the user holds and the flow running for them, read in the caller's transaction.
pub(super) fn nft_state(
    conn: &mut StoreConnection,
    user_id: &str,
) -> Result<(Option<HeldNft>, Option<String>), StoreError> {
    let row = user_nfts::table
        .find(user_id)
        .select(NftRow::as_select())
        .first(conn)
        .optional()?;
    match row {
        Some(row) => Ok((row.held()?, row.active_operation)),
        None => Ok((None, None)),
    }
}

#[cfg(test)]
mod tests {
    //! The flow changes against real databases: each precondition refuses, a refused change
    //! writes nothing, and racing starts for one user let exactly one through. Each test has a
    //! database of its own (a scratch one on MySQL): the flows they leave pending, or corrupt
    //! on purpose, would otherwise wait in the shared one for any router started against it.

    use chrono::{SubsecRound, Utc};
    use diesel::prelude::*;

    use super::super::schema::{nft_flows, user_nfts};
    use super::super::tests::{connect, event, isolated_backends, unique_user};
    use super::super::{Store, StoreError};
    use actors::domain::{
        BadgeStatus, ChangeError, FlowKind, FlowRecord, FlowStatus, FlowStep, HeldNft, MintedNft,
        StateChange,
    };
    use actors::journal::{EventLog, StoredEvent};

    fn new_flow(user: &str, kind: FlowKind, old_nft: Option<HeldNft>) -> FlowRecord {
        let now = Utc::now();
        FlowRecord {
            operation_id: format!("op-{}", uuid::Uuid::new_v4().simple()),
            user_id: user.to_string(),
            kind,
            target_tier: 1,
            status: FlowStatus::Pending,
            step: FlowStep::Started,
            reason: None,
            old_nft,
            new_nft: None,
            consumed_badges: Vec::new(),
            correlation_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// `flow` at `Minted`, with a mint for `tier` (times as the store keeps them).
    fn minted(flow: &FlowRecord, tier: u32) -> FlowRecord {
        let mut next = flow.at(FlowStep::Minted);
        next.new_nft = Some(MintedNft {
            nft_id: format!("nft-{}", &flow.operation_id[3..15]),
            tier_id: tier,
            mint_address: format!("mint-{}", &flow.operation_id[3..]),
            transaction_signature: "sig".into(),
            metadata_uri: "ledger://nft".into(),
            gas_used: 0,
            minted_at: Utc::now().trunc_subsecs(6),
        });
        next
    }

    /// Applies `change` with one event for its user.
    fn apply(store: &Store, change: StateChange) -> Result<Vec<StoredEvent>, ChangeError> {
        let events = [event(change.user_id())];
        EventLog::apply_change(store, &change, &events, None)
    }

    fn start(store: &Store, flow: &FlowRecord) -> Result<Vec<StoredEvent>, ChangeError> {
        apply(store, StateChange::StartFlow { flow: flow.clone() })
    }

    fn nft_status(store: &Store, user: &str) -> Option<String> {
        let conn = &mut *store.checkout().expect("checkout");
        user_nfts::table
            .find(user)
            .select(user_nfts::status)
            .first(conn)
            .optional()
            .expect("user_nfts status")
    }

    /// A user holding the NFT of a completed unlock; answers it.
    fn holder(store: &Store, user: &str) -> HeldNft {
        let flow = new_flow(user, FlowKind::Unlock, None);
        start(store, &flow).expect("start");
        let done = minted(&flow, 1).ended(FlowStatus::Completed, None);
        apply(store, StateChange::CompleteFlow { flow: done.clone() }).expect("complete");
        done.new_nft.expect("minted").held()
    }

    fn activated_badges(store: &Store, user: &str, badges: &[&str]) {
        for badge in badges {
            let (user_id, badge_id) = (user.to_string(), badge.to_string());
            let award = StateChange::AwardBadge {
                user_id: user_id.clone(),
                badge_id: badge_id.clone(),
            };
            EventLog::apply_change(store, &award, &[], None).expect("award");
            let activate = StateChange::ActivateBadge { user_id, badge_id };
            EventLog::apply_change(store, &activate, &[], None).expect("activate");
        }
    }

    #[test]
    fn an_unlock_runs_from_start_to_completion_once() {
        for backend in isolated_backends() {
            let store = connect(&backend, 2);
            let user = unique_user();
            let flow = new_flow(&user, FlowKind::Unlock, None);

            let stored = start(&store, &flow).expect("start");
            assert_eq!(stored.len(), 1, "{}", backend.name);
            let state = store.user_state(&user).expect("state");
            assert_eq!(
                state.active_flow.as_deref(),
                Some(flow.operation_id.as_str())
            );
            assert_eq!(state.nft, None);
            assert_eq!(nft_status(&store, &user).as_deref(), Some("unlocking"));
            assert_eq!(
                store.flow(&flow.operation_id).expect("flow"),
                Some(flow.clone())
            );

            // One flow per user at a time.
            let second = new_flow(&user, FlowKind::Unlock, None);
            assert_eq!(start(&store, &second), Err(ChangeError::Conflict));
            assert_eq!(store.flow(&second.operation_id).expect("flow"), None);

            let at_mint = minted(&flow, 1);
            apply(
                &store,
                StateChange::AdvanceFlow {
                    flow: at_mint.clone(),
                },
            )
            .expect("advance");
            assert_eq!(
                apply(
                    &store,
                    StateChange::AdvanceFlow {
                        flow: at_mint.clone()
                    }
                ),
                Err(ChangeError::Conflict),
                "{}: a flow never advances to the step it is at",
                backend.name
            );
            let stored = store
                .flow(&flow.operation_id)
                .expect("flow")
                .expect("stored");
            assert_eq!(
                (stored.step, stored.new_nft),
                (FlowStep::Minted, at_mint.new_nft.clone())
            );

            let done = at_mint.ended(FlowStatus::Completed, None);
            apply(&store, StateChange::CompleteFlow { flow: done.clone() }).expect("complete");
            let state = store.user_state(&user).expect("state");
            assert_eq!(state.nft, at_mint.new_nft.as_ref().map(MintedNft::held));
            assert_eq!(state.active_flow, None);
            assert_eq!(nft_status(&store, &user).as_deref(), Some("active"));
            assert_eq!(
                store.flow(&flow.operation_id).expect("flow"),
                Some(done.clone())
            );

            for change in [
                StateChange::CompleteFlow { flow: done.clone() },
                StateChange::FailFlow { flow: done.clone() },
                StateChange::AdvanceFlow { flow: done.clone() },
            ] {
                assert_eq!(
                    apply(&store, change),
                    Err(ChangeError::Conflict),
                    "{}",
                    backend.name
                );
            }
        }
    }

    #[test]
    fn an_upgrade_consumes_its_badges_and_a_failure_restores_them_and_the_old_nft() {
        for backend in isolated_backends() {
            let store = connect(&backend, 2);
            let user = unique_user();
            let old = holder(&store, &user);
            activated_badges(&store, &user, &["b1", "b2", "b3"]);

            let mut flow = new_flow(&user, FlowKind::Upgrade, Some(old.clone()));
            flow.consumed_badges = vec!["b1".into(), "b2".into()];
            start(&store, &flow).expect("start");
            let state = store.user_state(&user).expect("state");
            let statuses: Vec<_> = state.badges.values().copied().collect();
            use BadgeStatus::{Activated, Consumed};
            assert_eq!(
                statuses,
                [Consumed, Consumed, Activated],
                "{}",
                backend.name
            );
            assert_eq!(state.nft.as_ref(), Some(&old));
            assert_eq!(nft_status(&store, &user).as_deref(), Some("upgrading"));

            let failed = minted(&flow, 2).ended(FlowStatus::Failed, Some("burn refused".into()));
            apply(
                &store,
                StateChange::FailFlow {
                    flow: failed.clone(),
                },
            )
            .expect("fail");
            let state = store.user_state(&user).expect("state");
            let statuses: Vec<_> = state.badges.values().copied().collect();
            assert_eq!(
                statuses,
                [Activated, Activated, Activated],
                "{}",
                backend.name
            );
            assert_eq!(state.nft, Some(old.clone()), "the old NFT is kept");
            assert_eq!(state.active_flow, None);
            assert_eq!(nft_status(&store, &user).as_deref(), Some("active"));
            assert_eq!(store.flow(&flow.operation_id).expect("flow"), Some(failed));
        }
    }

    #[test]
    fn a_failed_unlock_leaves_the_user_without_an_nft() {
        for backend in isolated_backends() {
            let store = connect(&backend, 2);
            let user = unique_user();
            let flow = new_flow(&user, FlowKind::Unlock, None);
            start(&store, &flow).expect("start");
            let failed = flow.ended(FlowStatus::Failed, Some("mint refused".into()));
            apply(&store, StateChange::FailFlow { flow: failed }).expect("fail");
            assert_eq!(
                nft_status(&store, &user).as_deref(),
                Some("none"),
                "{}",
                backend.name
            );
            let state = store.user_state(&user).expect("state");
            assert_eq!((state.nft, state.active_flow), (None, None));
            // With the flow ended, the user may start again.
            start(&store, &new_flow(&user, FlowKind::Unlock, None)).expect("restart");
        }
    }

    #[test]
    fn a_refused_start_writes_nothing() {
        for backend in isolated_backends() {
            let store = connect(&backend, 2);
            let user = unique_user();
            let old = holder(&store, &user);
            activated_badges(&store, &user, &["b1"]);
            let earned = StateChange::AwardBadge {
                user_id: user.clone(),
                badge_id: "b2".into(),
            };
            EventLog::apply_change(&store, &earned, &[], None).expect("award");
            let before = (
                store.user_state(&user).expect("state"),
                store.stream_bounds(&user).expect("bounds"),
                nft_status(&store, &user),
            );

            let mut not_activated = new_flow(&user, FlowKind::Upgrade, Some(old.clone()));
            not_activated.consumed_badges = vec!["b1".into(), "b2".into()];
            let mut missing_badge = new_flow(&user, FlowKind::Upgrade, Some(old.clone()));
            missing_badge.consumed_badges = vec!["b1".into(), "b9".into()];
            let mut stale_nft = old.clone();
            stale_nft.mint_address = "another-mint".into();
            let wrong_nft = new_flow(&user, FlowKind::Upgrade, Some(stale_nft));
            let holds_already = new_flow(&user, FlowKind::Unlock, None);
            for flow in [not_activated, missing_badge, wrong_nft, holds_already] {
                assert_eq!(
                    start(&store, &flow),
                    Err(ChangeError::Conflict),
                    "{}",
                    backend.name
                );
                assert_eq!(store.flow(&flow.operation_id).expect("flow"), None);
            }
            let after = (
                store.user_state(&user).expect("state"),
                store.stream_bounds(&user).expect("bounds"),
                nft_status(&store, &user),
            );
            assert_eq!(
                after, before,
                "{}: a refused start changed something",
                backend.name
            );

            // A user never seen gets no row from a refused start either.
            let stranger = unique_user();
            let mut flow = new_flow(&stranger, FlowKind::Upgrade, None);
            flow.consumed_badges = vec!["b1".into()];
            assert_eq!(start(&store, &flow), Err(ChangeError::Conflict));
            assert_eq!(nft_status(&store, &stranger), None);
            assert_eq!(store.stream_bounds(&stranger).expect("bounds"), (None, 0));
        }
    }

    #[test]
    fn racing_starts_let_exactly_one_flow_per_user_through() {
        const USERS: usize = 4;
        const RACERS: usize = 4;
        for backend in isolated_backends() {
            let store = connect(&backend, (USERS * RACERS) as u32);
            let users: Vec<String> = (0..USERS).map(|_| unique_user()).collect();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(USERS * RACERS));
            let racers: Vec<_> = users
                .iter()
                .flat_map(|user| std::iter::repeat_n(user.clone(), RACERS))
                .map(|user| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let flow = new_flow(&user, FlowKind::Unlock, None);
                        barrier.wait();
                        start(&store, &flow)
                    })
                })
                .collect();
            let results: Vec<_> = racers
                .into_iter()
                .map(|t| t.join().expect("racer"))
                .collect();
            let started = results.iter().filter(|r| r.is_ok()).count();
            let refused = results
                .iter()
                .filter(|r| **r == Err(ChangeError::Conflict))
                .count();
            assert_eq!(
                (started, refused),
                (USERS, USERS * (RACERS - 1)),
                "{}",
                backend.name
            );
            for user in &users {
                let state = store.user_state(user).expect("state");
                let active = state.active_flow.expect("one flow started");
                let flow = store.flow(&active).expect("flow").expect("stored");
                assert_eq!(&flow.user_id, user);
                assert_eq!(store.stream_bounds(user).expect("bounds"), (Some(1), 1));
            }
        }
    }

    #[test]
    fn racing_upgrades_of_one_holder_consume_the_badges_once() {
        const RACERS: usize = 6;
        for backend in isolated_backends() {
            let store = connect(&backend, RACERS as u32);
            let user = unique_user();
            let old = holder(&store, &user);
            activated_badges(&store, &user, &["b1", "b2"]);
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(RACERS));
            let racers: Vec<_> = (0..RACERS)
                .map(|_| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    let mut flow = new_flow(&user, FlowKind::Upgrade, Some(old.clone()));
                    flow.consumed_badges = vec!["b1".into(), "b2".into()];
                    std::thread::spawn(move || {
                        barrier.wait();
                        start(&store, &flow).map(|_| flow.operation_id)
                    })
                })
                .collect();
            let started: Vec<String> = racers
                .into_iter()
                .filter_map(|t| match t.join().expect("racer") {
                    Ok(operation_id) => Some(operation_id),
                    Err(e) => {
                        assert_eq!(e, ChangeError::Conflict, "{}", backend.name);
                        None
                    }
                })
                .collect();
            assert_eq!(started.len(), 1, "{}", backend.name);
            let state = store.user_state(&user).expect("state");
            assert_eq!(state.active_flow.as_ref(), started.first());
            assert!(state.badges.values().all(|s| *s == BadgeStatus::Consumed));
        }
    }

    #[test]
    fn pending_flows_lists_the_pending_ones_oldest_first() {
        for backend in isolated_backends() {
            let store = connect(&backend, 2);
            let mut flows = Vec::new();
            for age in [3, 1, 2] {
                let mut flow = new_flow(&unique_user(), FlowKind::Unlock, None);
                flow.created_at -= chrono::TimeDelta::minutes(age);
                start(&store, &flow).expect("start");
                flows.push(flow);
            }
            let done = minted(&flows[2], 1).ended(FlowStatus::Completed, None);
            apply(&store, StateChange::CompleteFlow { flow: done }).expect("complete");
            let failed = flows[1].ended(FlowStatus::Failed, None);
            apply(&store, StateChange::FailFlow { flow: failed }).expect("fail");
            let advanced = minted(&flows[0], 1);
            apply(
                &store,
                StateChange::AdvanceFlow {
                    flow: advanced.clone(),
                },
            )
            .expect("advance");
            let mut late = new_flow(&unique_user(), FlowKind::Unlock, None);
            late.created_at += chrono::TimeDelta::minutes(1);
            start(&store, &late).expect("start");

            assert_eq!(
                store.pending_flows().expect("pending"),
                vec![advanced, late],
                "{}",
                backend.name
            );
        }
    }

    #[test]
    fn a_flow_with_an_operation_id_past_its_column_is_refused_before_writing() {
        for backend in isolated_backends() {
            let store = connect(&backend, 1);
            let mut flow = new_flow(&unique_user(), FlowKind::Unlock, None);
            flow.operation_id = "o".repeat(65);
            let change = StateChange::StartFlow { flow: flow.clone() };
            assert!(matches!(
                store.apply_change(&change, &[], None),
                Err(StoreError::InvalidEvent(_))
            ));
            let mut flow = new_flow(&unique_user(), FlowKind::Upgrade, None);
            flow.consumed_badges = vec!["b".repeat(65)];
            let change = StateChange::StartFlow { flow };
            assert!(matches!(
                store.apply_change(&change, &[], None),
                Err(StoreError::InvalidEvent(_))
            ));
        }
    }

    #[test]
    fn a_corrupt_detail_is_reported_not_guessed() {
        for backend in isolated_backends() {
            let store = connect(&backend, 1);
            let flow = new_flow(&unique_user(), FlowKind::Unlock, None);
            start(&store, &flow).expect("start");
            diesel::update(nft_flows::table.find(&flow.operation_id))
                .set(nft_flows::detail.eq("{not json"))
                .execute(&mut *store.checkout().expect("checkout"))
                .expect("corrupt it");
            assert!(matches!(
                store.flow(&flow.operation_id),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
