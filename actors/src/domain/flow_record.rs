//! Flow records: the durable state of an unlock or an upgrade while it runs and after it
//! ends. A flow is started, advanced and ended by guarded [`StateChange`](super::StateChange)s
//! written with its events, so a router that stops mid-flow finds at its next start exactly
//! which step was reached, and resumes or compensates from there.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// Mint a user's first NFT.
    Unlock,
    /// Mint the next tier, burn the current NFT, consume the badges.
    Upgrade,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Unlock => "unlock",
            FlowKind::Upgrade => "upgrade",
        }
    }

    pub fn parse(s: &str) -> Option<FlowKind> {
        match s {
            "unlock" => Some(FlowKind::Unlock),
            "upgrade" => Some(FlowKind::Upgrade),
            _ => None,
        }
    }
}

/// Where a flow is, as `GET /api/v1/user/operations/{id}` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    Pending,
    Completed,
    Failed,
}

impl FlowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Pending => "pending",
            FlowStatus::Completed => "completed",
            FlowStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<FlowStatus> {
        match s {
            "pending" => Some(FlowStatus::Pending),
            "completed" => Some(FlowStatus::Completed),
            "failed" => Some(FlowStatus::Failed),
            _ => None,
        }
    }
}

/// The last step of a pending flow that is stored; steps only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStep {
    /// Started: badges reserved, nothing asked of the chain that is known to have happened.
    Started,
    /// The new NFT is minted (an upgrade has yet to burn the old one).
    Minted,
}

/// An NFT a user holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldNft {
    pub nft_id: String,
    pub tier_id: u32,
    pub mint_address: String,
    pub acquired_at: DateTime<Utc>,
}

/// What the chain answered to a flow's mint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintedNft {
    pub nft_id: String,
    pub tier_id: u32,
    pub mint_address: String,
    pub transaction_signature: String,
    pub metadata_uri: String,
    pub gas_used: u64,
    pub minted_at: DateTime<Utc>,
}

impl MintedNft {
    pub fn held(&self) -> HeldNft {
        HeldNft {
            nft_id: self.nft_id.clone(),
            tier_id: self.tier_id,
            mint_address: self.mint_address.clone(),
            acquired_at: self.minted_at,
        }
    }
}

/// One flow, as stored (serialized as the row's detail) and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRecord {
    pub operation_id: String,
    pub user_id: String,
    pub kind: FlowKind,
    pub target_tier: u32,
    pub status: FlowStatus,
    pub step: FlowStep,
    /// Why a failed flow failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The NFT an upgrade replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_nft: Option<HeldNft>,
    /// The NFT minted for this flow, once minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_nft: Option<MintedNft>,
    /// Badges an upgrade consumes; reserved (consumed) at start, restored if it fails.
    #[serde(default)]
    pub consumed_badges: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FlowRecord {
    /// This record one step on: a copy with `step`, `updated_at` now.
    pub fn at(&self, step: FlowStep) -> FlowRecord {
        FlowRecord {
            step,
            updated_at: Utc::now(),
            ..self.clone()
        }
    }

    /// This record ended: a copy with `status` and, for a failure, the reason.
    pub fn ended(&self, status: FlowStatus, reason: Option<String>) -> FlowRecord {
        FlowRecord {
            status,
            reason,
            updated_at: Utc::now(),
            ..self.clone()
        }
    }
}
