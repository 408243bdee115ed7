//! A valid `data` object per event type: what the publish form of the pages starts from, and
//! what tests build their events of.

use super::EventType;
use serde_json::{json, Value};

/// A valid `data` object for each event type, as a producer would send it.
pub fn sample_data(event_type: EventType) -> Value {
    match event_type {
        EventType::NftUnlocked => json!({
            "nftId": "nft-1", "tierName": "Bronze", "tierId": 1,
            "mintAddress": "LedgerMint1111", "imageUrl": "https://example.invalid/t1.png",
            "benefits": {"tradingFeeReduction": "5%", "aiAgentWeeklyUses": 10, "prioritySupport": false}
        }),
        EventType::NftUpgraded => json!({
            "oldNft": {"nftId": "nft-1", "tierName": "Bronze", "burnedAt": "2026-01-01T00:00:00Z"},
            "newNft": {"nftId": "nft-2", "tierName": "Silver", "tierId": 2,
                        "mintAddress": "LedgerMint2222", "transactionSignature": "LedgerSig2222"},
            "consumedBadges": ["b1", "b2"]
        }),
        EventType::BadgeEarned => json!({
            "badgeId": "b1", "badgeName": "First Trade", "description": "Made a first trade",
            "imageUrl": "https://example.invalid/b1.png", "earnedAt": "2026-01-01T00:00:00Z",
            "requiredForTier": 2
        }),
        EventType::NftMinted => json!({
            "nftId": "nft-1", "mintAddress": "LedgerMint1111",
            "transactionSignature": "LedgerSig1111", "metadataUri": "ledger://nft-1", "gasUsed": 5000
        }),
        EventType::NftBurned => json!({
            "nftId": "nft-1", "mintAddress": "LedgerMint1111",
            "transactionSignature": "LedgerSig3333", "tierId": 1, "burnedAt": "2026-01-01T00:00:00Z"
        }),
        EventType::VolumeMilestoneReached => json!({
            "previousVolume": 90000.0, "currentVolume": 260000.0, "milestone": 100000.0, "tierUnlocked": 1
        }),
        EventType::TierQualificationChanged => json!({
            "previousQualifications": [], "currentQualifications": [1, 2], "volumeChange": 170000.0,
            "badgeChanges": {"earned": [], "activated": [], "consumed": []}
        }),
        EventType::NftUnlockFailed => json!({"error": "ledger unavailable", "nftDefinitionId": 1}),
        EventType::SystemAlert | EventType::SystemAlertResolved => json!({
            "name": "activeConnections", "severity": "info", "threshold": 8000.0, "value": 8123.0
        }),
        EventType::MetricsReport => json!({
            "intervalSecs": 60, "openConnections": 3, "connectedUsers": 2, "eventsAccepted": 10,
            "eventsDelivered": 20, "sseErrors": 0, "deadLettered": 0, "avgProcessingMs": 1.5,
            "maxConsumerLag": 0, "outboxBacklog": 0
        }),
    }
}
