//! Typed `data` of each event type (the event schemas, docs/API.md). Every struct denies
//! unknown fields: a producer that misspells a field hears about it instead of having the
//! field silently dropped.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Benefits a tier grants, as carried in `nft_unlocked.benefits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Benefits {
    pub trading_fee_reduction: String,
    pub ai_agent_weekly_uses: u32,
    pub priority_support: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NftUnlocked {
    pub nft_id: String,
    pub tier_name: String,
    pub tier_id: u32,
    pub mint_address: String,
    pub image_url: String,
    pub benefits: Benefits,
}

/// The NFT an upgrade burned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BurnedNftRef {
    pub nft_id: String,
    pub tier_name: String,
    pub burned_at: DateTime<Utc>,
}

/// The NFT an upgrade minted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MintedNftRef {
    pub nft_id: String,
    pub tier_name: String,
    pub tier_id: u32,
    pub mint_address: String,
    pub transaction_signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NftUpgraded {
    pub old_nft: BurnedNftRef,
    pub new_nft: MintedNftRef,
    pub consumed_badges: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BadgeEarned {
    pub badge_id: String,
    pub badge_name: String,
    pub description: String,
    pub image_url: String,
    pub earned_at: DateTime<Utc>,
    pub required_for_tier: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NftMinted {
    pub nft_id: String,
    pub mint_address: String,
    pub transaction_signature: String,
    pub metadata_uri: String,
    pub gas_used: u64,
}

/// Mirrors `nft_minted` for the burn half of an upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NftBurned {
    pub nft_id: String,
    pub mint_address: String,
    pub transaction_signature: String,
    pub tier_id: u32,
    pub burned_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMilestoneReached {
    /// Volumes are never negative (checked on publish).
    #[schema(minimum = 0)]
    pub previous_volume: f64,
    #[schema(minimum = 0)]
    pub current_volume: f64,
    #[schema(minimum = 0)]
    pub milestone: f64,
    pub tier_unlocked: u32,
}

/// Badge ids that changed state alongside a qualification change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BadgeChanges {
    pub earned: Vec<String>,
    pub activated: Vec<String>,
    pub consumed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierQualificationChanged {
    pub previous_qualifications: Vec<u32>,
    pub current_qualifications: Vec<u32>,
    pub volume_change: f64,
    pub badge_changes: BadgeChanges,
}

/// Published as `{ error, nftDefinitionId }` when an unlock fails; `operationId` ties the
/// failure to the flow that reported it, when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NftUnlockFailed {
    pub error: String,
    pub nft_definition_id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
}

/// `system_alert` and `system_alert_resolved`: a monitored figure, its threshold and the value
/// that crossed it (or came back within it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemAlert {
    pub name: String,
    /// `info`, `warning` or `critical`: the severity of the alert rule.
    pub severity: String,
    pub threshold: f64,
    pub value: f64,
}

/// `metrics_report`: the monitoring reporter's summary of one interval. Counts are over the
/// interval; gauges are now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsReport {
    pub interval_secs: u64,
    pub open_connections: u64,
    pub connected_users: u64,
    pub events_accepted: u64,
    pub events_delivered: u64,
    pub sse_errors: u64,
    pub dead_lettered: u64,
    pub avg_processing_ms: f64,
    pub max_consumer_lag: i64,
    pub outbox_backlog: u64,
}

/// The typed payload of an event. Serialized without a tag: the envelope's `eventType` says
/// which variant it is.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventData {
    NftUnlocked(NftUnlocked),
    NftUpgraded(NftUpgraded),
    BadgeEarned(BadgeEarned),
    NftMinted(NftMinted),
    NftBurned(NftBurned),
    VolumeMilestoneReached(VolumeMilestoneReached),
    TierQualificationChanged(TierQualificationChanged),
    NftUnlockFailed(NftUnlockFailed),
    SystemAlert(SystemAlert),
    SystemAlertResolved(SystemAlert),
    MetricsReport(MetricsReport),
}

impl EventData {
    /// The event type this payload belongs to.
    pub fn event_type(&self) -> super::EventType {
        use super::EventType as T;
        match self {
            EventData::NftUnlocked(_) => T::NftUnlocked,
            EventData::NftUpgraded(_) => T::NftUpgraded,
            EventData::BadgeEarned(_) => T::BadgeEarned,
            EventData::NftMinted(_) => T::NftMinted,
            EventData::NftBurned(_) => T::NftBurned,
            EventData::VolumeMilestoneReached(_) => T::VolumeMilestoneReached,
            EventData::TierQualificationChanged(_) => T::TierQualificationChanged,
            EventData::NftUnlockFailed(_) => T::NftUnlockFailed,
            EventData::SystemAlert(_) => T::SystemAlert,
            EventData::SystemAlertResolved(_) => T::SystemAlertResolved,
            EventData::MetricsReport(_) => T::MetricsReport,
        }
    }
}

/// `eventType` beside the `data` of that type, as a publisher sends them: the shape the API
/// document gives the publish body, where each type's `data` has its own schema. The router
/// reads the body through [`super::PublishRequest`]; [`From<EventData>`] keeps the variants
/// of the two in step (a type added to one and not the other does not compile).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "eventType", content = "data", rename_all = "snake_case")]
pub enum TypedData {
    NftUnlocked(NftUnlocked),
    NftUpgraded(NftUpgraded),
    BadgeEarned(BadgeEarned),
    NftMinted(NftMinted),
    NftBurned(NftBurned),
    VolumeMilestoneReached(VolumeMilestoneReached),
    TierQualificationChanged(TierQualificationChanged),
    NftUnlockFailed(NftUnlockFailed),
    SystemAlert(SystemAlert),
    SystemAlertResolved(SystemAlert),
    MetricsReport(MetricsReport),
}

impl From<EventData> for TypedData {
    fn from(data: EventData) -> Self {
        match data {
            EventData::NftUnlocked(d) => TypedData::NftUnlocked(d),
            EventData::NftUpgraded(d) => TypedData::NftUpgraded(d),
            EventData::BadgeEarned(d) => TypedData::BadgeEarned(d),
            EventData::NftMinted(d) => TypedData::NftMinted(d),
            EventData::NftBurned(d) => TypedData::NftBurned(d),
            EventData::VolumeMilestoneReached(d) => TypedData::VolumeMilestoneReached(d),
            EventData::TierQualificationChanged(d) => TypedData::TierQualificationChanged(d),
            EventData::NftUnlockFailed(d) => TypedData::NftUnlockFailed(d),
            EventData::SystemAlert(d) => TypedData::SystemAlert(d),
            EventData::SystemAlertResolved(d) => TypedData::SystemAlertResolved(d),
            EventData::MetricsReport(d) => TypedData::MetricsReport(d),
        }
    }
}
