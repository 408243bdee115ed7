//! A user's domain state as the NFT domain reads it, and the changes it writes. A change is
//! stored in the same transaction as the events it causes (through the journal), so the
//! streams and the outbox see exactly what happened; each change carries the precondition it
//! was computed from and is refused as a [`Conflict`](ChangeError::Conflict) when another
//! writer got there first.

use super::{FlowRecord, FlowStatus, HeldNft, StoredReceipt};
use crate::journal::LogError;
use std::collections::BTreeMap;

/// Where a badge is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadgeStatus {
    Earned,
    Activated,
    Consumed,
}

impl BadgeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BadgeStatus::Earned => "earned",
            BadgeStatus::Activated => "activated",
            BadgeStatus::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> Option<BadgeStatus> {
        match s {
            "earned" => Some(BadgeStatus::Earned),
            "activated" => Some(BadgeStatus::Activated),
            "consumed" => Some(BadgeStatus::Consumed),
            _ => None,
        }
    }
}

/// What the domain knows about one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserState {
    /// Cumulative trading volume; 0 for a user never seen.
    pub volume: f64,
    pub badges: BTreeMap<String, BadgeStatus>,
    /// The NFT the user holds, if any: at most one, always.
    pub nft: Option<HeldNft>,
    /// The operation id of the flow running for the user; flows for one user are serialized.
    pub active_flow: Option<String>,
}

impl UserState {
    /// Ids of the badges that count toward qualification: activated ones, and those an
    /// upgrade consumed (the user holds the tier they paid for, so it stays qualified).
    pub fn qualifying(&self) -> Vec<&str> {
        self.badges
            .iter()
            .filter(|(_, s)| **s != BadgeStatus::Earned)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// Ids of the user's activated badges (those an upgrade can consume).
    pub fn activated(&self) -> Vec<&str> {
        self.badges
            .iter()
            .filter(|(_, s)| **s == BadgeStatus::Activated)
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// One guarded state change.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    /// Set the volume, if it still is `expected`.
    SetVolume {
        user_id: String,
        expected: f64,
        volume: f64,
    },
    /// Record a newly earned badge, if the user does not hold it yet.
    AwardBadge { user_id: String, badge_id: String },
    /// Activate an earned badge, if it is still only earned.
    ActivateBadge { user_id: String, badge_id: String },
    /// Store a new pending flow (status `Pending`, step `Started`) and mark it the user's active
    /// flow, consuming `flow.consumed_badges`; if the user has no active flow, still holds
    /// `flow.old_nft` (none for an unlock) and every badge to consume is activated.
    StartFlow { flow: FlowRecord },
    /// Store the flow's next step (and what the chain answered), if the stored flow is pending
    /// at an earlier step.
    AdvanceFlow { flow: FlowRecord },
    /// End the flow as completed: the user now holds `flow.new_nft` and no active flow; if the
    /// stored flow is pending and the user's active flow.
    CompleteFlow { flow: FlowRecord },
    /// End the flow as failed: the user keeps the NFT they had, the consumed badges are
    /// activated again and the active flow is cleared; if the stored flow is pending and the
    /// user's active flow.
    FailFlow { flow: FlowRecord },
}

impl StateChange {
    pub fn user_id(&self) -> &str {
        match self {
            StateChange::SetVolume { user_id, .. }
            | StateChange::AwardBadge { user_id, .. }
            | StateChange::ActivateBadge { user_id, .. } => user_id,
            StateChange::StartFlow { flow }
            | StateChange::AdvanceFlow { flow }
            | StateChange::CompleteFlow { flow }
            | StateChange::FailFlow { flow } => &flow.user_id,
        }
    }
}

impl UserState {
    /// Checks `change`'s precondition against this state (and the stored flow the change
    /// names) and answers the state after it, with the flow record to store. The database
    /// adapters implement the same rules as conditional statements; this is the reference.
    pub fn apply(
        &self,
        stored_flow: Option<&FlowRecord>,
        change: &StateChange,
    ) -> Result<(UserState, Option<FlowRecord>), ChangeError> {
        let state = self;
        let mut next = state.clone();
        let mut flow = None;
        let pending_active = |f: &FlowRecord| {
            stored_flow.is_some_and(|s| s.status == FlowStatus::Pending)
                && state.active_flow.as_deref() == Some(f.operation_id.as_str())
        };
        match change {
            StateChange::SetVolume {
                expected, volume, ..
            } => {
                if state.volume != *expected {
                    return Err(ChangeError::Conflict);
                }
                next.volume = *volume;
            }
            StateChange::AwardBadge { badge_id, .. } => {
                if state.badges.contains_key(badge_id) {
                    return Err(ChangeError::Conflict);
                }
                next.badges.insert(badge_id.clone(), BadgeStatus::Earned);
            }
            StateChange::ActivateBadge { badge_id, .. } => {
                if state.badges.get(badge_id) != Some(&BadgeStatus::Earned) {
                    return Err(ChangeError::Conflict);
                }
                next.badges.insert(badge_id.clone(), BadgeStatus::Activated);
            }
            StateChange::StartFlow { flow: f } => {
                let held = state.nft.as_ref().map(|n| n.mint_address.as_str());
                let expected = f.old_nft.as_ref().map(|n| n.mint_address.as_str());
                let reserved = f
                    .consumed_badges
                    .iter()
                    .all(|b| state.badges.get(b) == Some(&BadgeStatus::Activated));
                if state.active_flow.is_some()
                    || stored_flow.is_some()
                    || held != expected
                    || !reserved
                {
                    return Err(ChangeError::Conflict);
                }
                for b in &f.consumed_badges {
                    next.badges.insert(b.clone(), BadgeStatus::Consumed);
                }
                next.active_flow = Some(f.operation_id.clone());
                flow = Some(f.clone());
            }
            StateChange::AdvanceFlow { flow: f } => {
                match stored_flow {
                    Some(s) if s.status == FlowStatus::Pending && s.step < f.step => {}
                    _ => return Err(ChangeError::Conflict),
                }
                flow = Some(f.clone());
            }
            StateChange::CompleteFlow { flow: f } => {
                if !pending_active(f) {
                    return Err(ChangeError::Conflict);
                }
                next.nft = f.new_nft.as_ref().map(|m| m.held());
                next.active_flow = None;
                flow = Some(f.clone());
            }
            StateChange::FailFlow { flow: f } => {
                if !pending_active(f) {
                    return Err(ChangeError::Conflict);
                }
                for b in &f.consumed_badges {
                    if state.badges.get(b) == Some(&BadgeStatus::Consumed) {
                        next.badges.insert(b.clone(), BadgeStatus::Activated);
                    }
                }
                next.active_flow = None;
                flow = Some(f.clone());
            }
        }
        Ok((next, flow))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The precondition no longer holds; nothing was written.
    #[error("the state changed meanwhile")]
    Conflict,
    /// The change carried a receipt whose key is stored already (a retry committed first);
    /// nothing was written.
    #[error("the idempotency key was answered meanwhile")]
    Receipted,
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Reads users' domain state. Blocking; called on the blocking pool.
pub trait DomainState: Send + Sync + 'static {
    fn user_state(&self, user_id: &str) -> Result<UserState, LogError>;
    /// One flow by operation id.
    fn flow(&self, operation_id: &str) -> Result<Option<FlowRecord>, LogError>;
    /// Every flow still pending (a router stopped mid-flow), oldest first.
    fn pending_flows(&self) -> Result<Vec<FlowRecord>, LogError>;
    /// The stored receipt of a keyed command, if there is one (see [`super::receipt`]).
    fn receipt(&self, key: &str) -> Result<Option<StoredReceipt>, LogError>;
}
