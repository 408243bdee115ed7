//! The unlock and upgrade flows of [`NftDomain`]. A flow starts with one guarded change (the
//! user's active flow is set, an upgrade's badges are reserved) and answers at once with its
//! operation id; a driver task then walks it through the chain calls, storing each step with
//! the events it causes:
//!
//! * unlock: mint → complete (`nft_minted`, `nft_unlocked`);
//! * upgrade: mint the next tier → stored as `minted` (`nft_minted`) → burn the old NFT →
//!   complete (`nft_burned`, `nft_upgraded`).
//!
//! Chain calls are idempotent by operation, so a step is simply asked again after a transient
//! failure or a restart. When a step keeps failing, the flow is compensated: an upgrade whose
//! new NFT is minted burns it again (`nft_burned`), the reserved badges are restored, and
//! `nft_unlock_failed` says why. The old NFT is only burned after the new one exists, so a user
//! never ends a flow with zero NFTs, nor (once it has ended) with two. A router stopped
//! mid-flow finds the pending record at its next start ([`ResumeFlows`]) and carries on from
//! the stored step.

use super::nft_domain::{DomainFailure, NftDomain};
use super::{DomainError, DomainRules, FlowKind, FlowRecord, FlowStatus, FlowStep, StateChange};
use crate::journal::{blocking, LogError};
use actix::prelude::*;
use chrono::Utc;
use std::time::Duration;

/// Start an unlock: mint the first NFT of `tier_id`. Answers the operation id.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<String, DomainFailure>")]
pub struct StartUnlock {
    pub user_id: String,
    pub tier_id: u32,
    pub correlation_id: Option<String>,
}

/// Start an upgrade of the user's NFT into `target_tier_id`. Answers the operation id.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<String, DomainFailure>")]
pub struct StartUpgrade {
    pub user_id: String,
    pub target_tier_id: u32,
    pub correlation_id: Option<String>,
}

/// One of the user's flows; `None` when unknown or another user's.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<FlowRecord>, DomainFailure>")]
pub struct GetOperation {
    pub user_id: String,
    pub operation_id: String,
}

/// Drive every pending flow (sent once at start-up). Answers how many were found.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<usize, DomainFailure>")]
pub struct ResumeFlows;

/// Wait until the flows this actor drives have ended or stalled (tests, shutdown).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct FlowsIdle;

fn new_operation_id() -> String {
    format!("op_{}", uuid::Uuid::now_v7().simple())
}

impl NftDomain {
    /// Decides a flow's start, writes it, and spawns its driver.
    fn start_flow(
        &mut self,
        user_id: String,
        correlation_id: Option<String>,
        decide: impl Fn(&DomainRules, &super::UserState) -> Result<FlowRecord, DomainError>
            + Send
            + 'static,
    ) -> AtomicResponse<Self, Result<String, DomainFailure>> {
        let operation_id = new_operation_id();
        let run = self.run(user_id.clone(), move |rules, before| {
            if let Some(active) = &before.active_flow {
                return Err(DomainError::FlowInProgress(active.clone()));
            }
            let mut flow = decide(rules, before)?;
            flow.operation_id = operation_id.clone();
            flow.correlation_id = correlation_id.clone();
            Ok((StateChange::StartFlow { flow }, Vec::new()))
        });
        AtomicResponse::new(Box::pin(run.into_actor(self).map(|outcome, actor, _| {
            let outcome = outcome?;
            let StateChange::StartFlow { flow } = outcome.change else {
                return Err(DomainFailure::Store(LogError::failed(
                    "a flow start wrote something else",
                )));
            };
            let operation_id = flow.operation_id.clone();
            actor.spawn_driver(flow);
            Ok(operation_id)
        })))
    }

    /// Drives `flow` on its own task, so a slow chain holds up neither this actor nor
    /// other users' flows.
    fn spawn_driver(&self, flow: FlowRecord) {
        let driver = self.driver();
        let running = self.running.clone();
        running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        actix::spawn(async move {
            driver.drive(flow).await;
            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

/// A new flow record, before its operation id is set.
fn new_flow(user_id: &str, kind: FlowKind, target_tier: u32) -> FlowRecord {
    let now = Utc::now();
    FlowRecord {
        operation_id: String::new(),
        user_id: user_id.to_owned(),
        kind,
        target_tier,
        status: FlowStatus::Pending,
        step: FlowStep::Started,
        reason: None,
        old_nft: None,
        new_nft: None,
        consumed_badges: Vec::new(),
        correlation_id: None,
        created_at: now,
        updated_at: now,
    }
}

impl Handler<StartUnlock> for NftDomain {
    type Result = AtomicResponse<Self, Result<String, DomainFailure>>;

    fn handle(&mut self, msg: StartUnlock, _: &mut Self::Context) -> Self::Result {
        let user = msg.user_id.clone();
        self.start_flow(msg.user_id, msg.correlation_id, move |rules, before| {
            rules.check_unlock(
                msg.tier_id,
                before.volume,
                before.qualifying(),
                before.nft.as_ref().map(|n| n.tier_id),
            )?;
            Ok(new_flow(&user, FlowKind::Unlock, msg.tier_id))
        })
    }
}

impl Handler<StartUpgrade> for NftDomain {
    type Result = AtomicResponse<Self, Result<String, DomainFailure>>;

    fn handle(&mut self, msg: StartUpgrade, _: &mut Self::Context) -> Self::Result {
        let user = msg.user_id.clone();
        self.start_flow(msg.user_id, msg.correlation_id, move |rules, before| {
            let (_, consumed) = rules.check_upgrade(
                msg.target_tier_id,
                before.volume,
                before.qualifying(),
                before.activated(),
                before.nft.as_ref().map(|n| n.tier_id),
            )?;
            let mut flow = new_flow(&user, FlowKind::Upgrade, msg.target_tier_id);
            flow.old_nft = before.nft.clone();
            flow.consumed_badges = consumed;
            Ok(flow)
        })
    }
}

impl Handler<GetOperation> for NftDomain {
    type Result = ResponseFuture<Result<Option<FlowRecord>, DomainFailure>>;

    fn handle(&mut self, msg: GetOperation, _: &mut Self::Context) -> Self::Result {
        let state = self.state.clone();
        Box::pin(async move {
            let op = msg.operation_id;
            let flow = blocking(move || state.flow(&op)).await?;
            Ok(flow.filter(|f| f.user_id == msg.user_id))
        })
    }
}

impl Handler<ResumeFlows> for NftDomain {
    type Result = AtomicResponse<Self, Result<usize, DomainFailure>>;

    fn handle(&mut self, _: ResumeFlows, _: &mut Self::Context) -> Self::Result {
        let state = self.state.clone();
        let read = async move { blocking(move || state.pending_flows()).await };
        AtomicResponse::new(Box::pin(read.into_actor(self).map(|pending, actor, _| {
            let pending = pending?;
            let found = pending.len();
            for flow in pending {
                log::info!(
                    "resuming {} flow {} of {} at step {:?}",
                    flow.kind.as_str(),
                    flow.operation_id,
                    flow.user_id,
                    flow.step
                );
                actor.spawn_driver(flow);
            }
            Ok(found)
        })))
    }
}

impl Handler<FlowsIdle> for NftDomain {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: FlowsIdle, _: &mut Self::Context) -> Self::Result {
        let running = self.running.clone();
        Box::pin(async move {
            while running.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }
}
