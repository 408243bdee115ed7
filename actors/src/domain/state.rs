//! A user's domain state as the NFT domain reads it, and the changes it writes. A change is
//! stored in the same transaction as the events it causes (through the journal), so the
//! streams and the outbox see exactly what happened; each change carries the precondition it
//! was computed from and is refused as a [`Conflict`](ChangeError::Conflict) when another
//! writer got there first.

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
}

impl UserState {
    /// Ids of the user's activated badges.
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
}

impl StateChange {
    pub fn user_id(&self) -> &str {
        match self {
            StateChange::SetVolume { user_id, .. }
            | StateChange::AwardBadge { user_id, .. }
            | StateChange::ActivateBadge { user_id, .. } => user_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The precondition no longer holds; nothing was written.
    #[error("the state changed meanwhile")]
    Conflict,
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Reads users' domain state. Blocking; called on the blocking pool.
pub trait DomainState: Send + Sync + 'static {
    fn user_state(&self, user_id: &str) -> Result<UserState, LogError>;
}
