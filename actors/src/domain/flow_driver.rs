//! The flow driver: walks one stored flow through the chain calls, storing each step with the
//! events it causes, retrying idempotent steps and compensating a flow whose step keeps
//! failing (see [`flow_messages`](super::flow_messages) for the steps).

use super::nft_domain::{event, portfolio_key};
use super::{
    BurnRequest, Chain, ChainError, DomainRules, DomainState, FlowKind, FlowRecord, FlowStatus,
    FlowStep, MintRequest, MintedNft, StateChange,
};
use crate::consumers::Cache;
use crate::event::{BurnedNftRef, EventData, MintedNftRef, NftBurned, NftMinted, NftUnlockFailed};
use crate::event::{Envelope, NftUnlocked, NftUpgraded};
use crate::journal::{blocking, AppendChange, ChangeFailure, EventJournal};
use actix::Addr;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

/// How patiently a flow asks the chain and the database.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowPolicy {
    /// Tries of a forward chain step (mint, burn) before the flow is compensated.
    pub attempts: u32,
    /// Pause between tries; doubled after each, up to 16×.
    pub backoff: Duration,
}

impl Default for FlowPolicy {
    fn default() -> Self {
        FlowPolicy {
            attempts: 3,
            backoff: Duration::from_millis(50),
        }
    }
}

/// A compensating step (burning a minted NFT again) is tried this many times as often as a
/// forward step: giving up on it leaves the flow pending until the next start.
const UNDO_PATIENCE: u32 = 10;

/// Tries of a database write of a step whose chain call already happened.
const WRITE_ATTEMPTS: u32 = 10;

/// What a driver needs; cloned into each driver task.
#[derive(Clone)]
pub(super) struct FlowDriver {
    pub rules: Arc<DomainRules>,
    pub state: Arc<dyn DomainState>,
    pub journal: Addr<EventJournal>,
    pub chain: Arc<dyn Chain>,
    pub cache: Arc<dyn Cache>,
    pub policy: FlowPolicy,
}

/// Why a step did not move the flow on.
enum Halt {
    /// Another writer moved the stored flow; read it again.
    Moved,
    /// The database or chain stayed unreachable; the flow stays pending for the next start.
    Stalled(String),
}

impl FlowDriver {
    /// Walks `flow` to its end (or until it stalls), then drops the user's cached portfolio.
    pub async fn drive(self, mut flow: FlowRecord) {
        let (user, operation) = (flow.user_id.clone(), flow.operation_id.clone());
        let mut rereads = 0;
        loop {
            match self.step(&flow).await {
                Ok(Some(next)) => flow = next,
                Ok(None) => break,
                Err(Halt::Moved) if rereads < WRITE_ATTEMPTS => {
                    rereads += 1;
                    let state = self.state.clone();
                    let op = operation.clone();
                    match blocking(move || state.flow(&op)).await {
                        Ok(Some(stored)) if stored.status == FlowStatus::Pending => flow = stored,
                        Ok(_) => break,
                        Err(e) => {
                            log::warn!("flow {operation}: cannot read it back: {e}");
                            break;
                        }
                    }
                }
                Err(Halt::Moved) => break,
                Err(Halt::Stalled(reason)) => {
                    log::warn!("flow {operation} stays pending until the next start: {reason}");
                    break;
                }
            }
        }
        self.invalidate(&user).await;
    }

    pub async fn invalidate(&self, user_id: &str) {
        if let Err(e) = self.cache.remove(portfolio_key(user_id)).await {
            log::warn!("cannot drop the cached portfolio of {user_id}: {e}");
        }
    }

    /// One step: `Some(next)` when the flow moved on and continues, `None` when it ended.
    async fn step(&self, flow: &FlowRecord) -> Result<Option<FlowRecord>, Halt> {
        match (flow.kind, flow.step) {
            (_, FlowStep::Started) => {
                let request = MintRequest {
                    operation_id: flow.operation_id.clone(),
                    user_id: flow.user_id.clone(),
                    tier_id: flow.target_tier,
                };
                let minted = self
                    .call(self.policy.attempts, move |chain| chain.mint(&request))
                    .await;
                match minted {
                    Err(e) => self.fail(flow, format!("mint failed: {e}"), None).await,
                    Ok(m) => {
                        let mut next = flow.at(FlowStep::Minted);
                        next.new_nft = Some(MintedNft {
                            nft_id: m.nft_id.clone(),
                            tier_id: flow.target_tier,
                            mint_address: m.mint_address.clone(),
                            transaction_signature: m.transaction_signature.clone(),
                            metadata_uri: m.metadata_uri.clone(),
                            gas_used: m.gas_used,
                            minted_at: Utc::now(),
                        });
                        let minted_event = EventData::NftMinted(NftMinted {
                            nft_id: m.nft_id,
                            mint_address: m.mint_address,
                            transaction_signature: m.transaction_signature,
                            metadata_uri: m.metadata_uri,
                            gas_used: m.gas_used,
                        });
                        match flow.kind {
                            FlowKind::Unlock => {
                                let unlocked = self.unlocked(&next)?;
                                self.complete(&next, vec![minted_event, unlocked]).await
                            }
                            FlowKind::Upgrade => {
                                let events = vec![self.event(&next, minted_event)];
                                self.write(StateChange::AdvanceFlow { flow: next.clone() }, events)
                                    .await?;
                                Ok(Some(next))
                            }
                        }
                    }
                }
            }
            (FlowKind::Unlock, FlowStep::Minted) => {
                let unlocked = self.unlocked(flow)?;
                self.complete(flow, vec![unlocked]).await
            }
            (FlowKind::Upgrade, FlowStep::Minted) => self.burn_old(flow).await,
        }
    }

    /// The upgrade's second half: burn the old NFT, or undo the mint when that keeps failing.
    async fn burn_old(&self, flow: &FlowRecord) -> Result<Option<FlowRecord>, Halt> {
        let (Some(old), Some(new)) = (flow.old_nft.clone(), flow.new_nft.clone()) else {
            return self
                .fail(flow, "the flow record lacks its NFTs".into(), None)
                .await;
        };
        let request = BurnRequest {
            operation_id: flow.operation_id.clone(),
            user_id: flow.user_id.clone(),
            mint_address: old.mint_address.clone(),
        };
        let burned = self
            .call(self.policy.attempts, move |chain| chain.burn(&request))
            .await;
        let tier_name = |id: u32| {
            self.rules
                .tier(id)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        };
        match burned {
            Ok(b) => {
                let burned_at = Utc::now();
                let events = vec![
                    EventData::NftBurned(NftBurned {
                        nft_id: old.nft_id.clone(),
                        mint_address: old.mint_address.clone(),
                        transaction_signature: b.transaction_signature,
                        tier_id: old.tier_id,
                        burned_at,
                    }),
                    EventData::NftUpgraded(NftUpgraded {
                        old_nft: BurnedNftRef {
                            nft_id: old.nft_id.clone(),
                            tier_name: tier_name(old.tier_id),
                            burned_at,
                        },
                        new_nft: MintedNftRef {
                            nft_id: new.nft_id.clone(),
                            tier_name: tier_name(new.tier_id),
                            tier_id: new.tier_id,
                            mint_address: new.mint_address.clone(),
                            transaction_signature: new.transaction_signature.clone(),
                        },
                        consumed_badges: flow.consumed_badges.clone(),
                    }),
                ];
                self.complete(flow, events).await
            }
            Err(e) => {
                // The user holds both NFTs on the chain: burn the new one to go back to one.
                let undo = BurnRequest {
                    operation_id: format!("{}:undo", flow.operation_id),
                    user_id: flow.user_id.clone(),
                    mint_address: new.mint_address.clone(),
                };
                let attempts = self.policy.attempts.max(1).saturating_mul(UNDO_PATIENCE);
                let undone = self
                    .call(attempts, move |chain| chain.burn(&undo))
                    .await
                    .map_err(|u| Halt::Stalled(format!("burning the new NFT failed: {u}")))?;
                let burned = EventData::NftBurned(NftBurned {
                    nft_id: new.nft_id.clone(),
                    mint_address: new.mint_address.clone(),
                    transaction_signature: undone.transaction_signature,
                    tier_id: new.tier_id,
                    burned_at: Utc::now(),
                });
                self.fail(flow, format!("burn failed: {e}"), Some(burned))
                    .await
            }
        }
    }

    fn unlocked(&self, flow: &FlowRecord) -> Result<EventData, Halt> {
        let (Some(new), Some(tier)) = (flow.new_nft.as_ref(), self.rules.tier(flow.target_tier))
        else {
            return Err(Halt::Stalled(format!(
                "tier {} is no longer configured",
                flow.target_tier
            )));
        };
        Ok(EventData::NftUnlocked(NftUnlocked {
            nft_id: new.nft_id.clone(),
            tier_name: tier.name.clone(),
            tier_id: tier.id,
            mint_address: new.mint_address.clone(),
            image_url: tier.image_url.clone(),
            benefits: tier.benefits.clone(),
        }))
    }

    async fn complete(
        &self,
        flow: &FlowRecord,
        data: Vec<EventData>,
    ) -> Result<Option<FlowRecord>, Halt> {
        let done = flow.ended(FlowStatus::Completed, None);
        let events = data.into_iter().map(|d| self.event(flow, d)).collect();
        self.write(StateChange::CompleteFlow { flow: done }, events)
            .await?;
        Ok(None)
    }

    /// Ends the flow as failed: badges restored, `nft_unlock_failed` with the reason (after
    /// `undone`, the burn of an NFT minted for it, if any).
    async fn fail(
        &self,
        flow: &FlowRecord,
        reason: String,
        undone: Option<EventData>,
    ) -> Result<Option<FlowRecord>, Halt> {
        let failure = EventData::NftUnlockFailed(NftUnlockFailed {
            error: format!(
                "{} to tier {} failed: {reason}",
                flow.kind.as_str(),
                flow.target_tier
            ),
            nft_definition_id: flow.target_tier,
            operation_id: Some(flow.operation_id.clone()),
        });
        let events = undone
            .into_iter()
            .chain([failure])
            .map(|d| self.event(flow, d))
            .collect();
        let failed = flow.ended(FlowStatus::Failed, Some(reason));
        self.write(StateChange::FailFlow { flow: failed }, events)
            .await?;
        Ok(None)
    }

    fn event(&self, flow: &FlowRecord, data: EventData) -> Envelope {
        event(&flow.user_id, data, &flow.correlation_id)
    }

    /// Asks the chain up to `attempts` times while it is unavailable, with growing pauses.
    async fn call<T: Send + 'static>(
        &self,
        attempts: u32,
        f: impl Fn(&dyn Chain) -> Result<T, ChainError> + Send + Sync + 'static,
    ) -> Result<T, ChainError> {
        let f = Arc::new(f);
        let mut pause = self.policy.backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            let (chain, f) = (self.chain.clone(), f.clone());
            let result = tokio::task::spawn_blocking(move || f(chain.as_ref()))
                .await
                .unwrap_or_else(|e| Err(ChainError::Unavailable(format!("chain call: {e}"))));
            match result {
                Err(ChainError::Unavailable(_)) if tries < attempts.max(1) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.policy.backoff * 16);
                }
                other => return other,
            }
        }
    }

    /// Stores a step with its events; retried while the database is unreachable, because the
    /// chain call before it already happened.
    async fn write(&self, change: StateChange, envelopes: Vec<Envelope>) -> Result<(), Halt> {
        let mut pause = self.policy.backoff;
        for _ in 0..WRITE_ATTEMPTS {
            let sent = self
                .journal
                .send(AppendChange {
                    change: change.clone(),
                    envelopes: envelopes.clone(),
                    receipt: None,
                })
                .await;
            match sent {
                Ok(Ok(_)) => return Ok(()),
                // A flow step carries no receipt, so `Receipted` cannot come back; were it to,
                // nothing was written, as with a conflict.
                Ok(Err(ChangeFailure::Conflict | ChangeFailure::Receipted)) => {
                    return Err(Halt::Moved)
                }
                Ok(Err(ChangeFailure::Journal(e))) if e.is_unavailable() => {
                    log::warn!("flow step not stored yet: {e}");
                }
                Ok(Err(ChangeFailure::Journal(e))) => return Err(Halt::Stalled(e.to_string())),
                Err(_) => return Err(Halt::Stalled("journal stopped".into())),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.policy.backoff * 16);
        }
        Err(Halt::Stalled("the database stayed unreachable".into()))
    }
}
