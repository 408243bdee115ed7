//! Events: the envelope every path carries, the closed set of event types, and their typed
//! payloads. An event that does not fit these types never enters the router.

mod envelope;
mod payload;
mod samples;
mod validate;

pub use envelope::{keyed_event_id, Envelope, EVENT_VERSION};
pub use payload::{
    BadgeChanges, BadgeEarned, Benefits, BurnedNftRef, EventData, MetricsReport, MintedNftRef,
    NftBurned, NftMinted, NftUnlockFailed, NftUnlocked, NftUpgraded, SystemAlert,
    TierQualificationChanged, TypedData, VolumeMilestoneReached,
};
pub use samples::sample_data;
pub use validate::{
    check_id, id_pattern, is_invisible, whole_numbers, EventError, PublishBody, PublishRequest,
    MAX_ID_LEN,
};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The event types the router knows. Anything else is rejected at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    NftUnlocked,
    NftUpgraded,
    BadgeEarned,
    NftMinted,
    NftBurned,
    VolumeMilestoneReached,
    TierQualificationChanged,
    NftUnlockFailed,
    /// A monitored figure crossed its threshold (operations feed).
    SystemAlert,
    /// A raised alert's figure is back within its threshold.
    SystemAlertResolved,
    /// The periodic one-line metrics summary (operations feed).
    MetricsReport,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        EventType::NftUnlocked,
        EventType::NftUpgraded,
        EventType::BadgeEarned,
        EventType::NftMinted,
        EventType::NftBurned,
        EventType::VolumeMilestoneReached,
        EventType::TierQualificationChanged,
        EventType::NftUnlockFailed,
        EventType::SystemAlert,
        EventType::SystemAlertResolved,
        EventType::MetricsReport,
    ];

    /// The wire name, as in the event schemas (docs/API.md).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::NftUnlocked => "nft_unlocked",
            EventType::NftUpgraded => "nft_upgraded",
            EventType::BadgeEarned => "badge_earned",
            EventType::NftMinted => "nft_minted",
            EventType::NftBurned => "nft_burned",
            EventType::VolumeMilestoneReached => "volume_milestone_reached",
            EventType::TierQualificationChanged => "tier_qualification_changed",
            EventType::NftUnlockFailed => "nft_unlock_failed",
            EventType::SystemAlert => "system_alert",
            EventType::SystemAlertResolved => "system_alert_resolved",
            EventType::MetricsReport => "metrics_report",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`EventType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// An event type as read back from the store: one this build knows, or the name a newer build
/// wrote. Parsed once where the row is read, so no path after the store parses it again; an
/// unknown name is carried through rather than failing the read (the event is still the
/// user's, and still goes to Kafka on the routing table's fallback row).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoredType {
    Known(EventType),
    Unknown(Box<str>),
}

impl StoredType {
    /// Parses a stored type name.
    pub fn parse(name: &str) -> Self {
        name.parse::<EventType>()
            .map_or_else(|_| StoredType::Unknown(name.into()), StoredType::Known)
    }

    /// The type, when this build knows it.
    pub fn known(&self) -> Option<EventType> {
        match self {
            StoredType::Known(t) => Some(*t),
            StoredType::Unknown(_) => None,
        }
    }

    /// The wire name, as stored.
    pub fn as_str(&self) -> &str {
        match self {
            StoredType::Known(t) => t.as_str(),
            StoredType::Unknown(name) => name,
        }
    }
}

impl From<EventType> for StoredType {
    fn from(t: EventType) -> Self {
        StoredType::Known(t)
    }
}

impl fmt::Display for StoredType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
