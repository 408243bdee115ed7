//! `NftDomain`: the home of the NFT flows (docs/DOMAIN.md). This part covers trading volume and
//! badges; every command reads the user's state, decides with the rules, and hands the state change
//! and the events it causes to the journal as one [`AppendChange`], so state, streams and outbox
//! always agree. Commands run one at a time; a change whose precondition another router instance
//! invalidated meanwhile is decided again from fresh state.

use super::flow_driver::{FlowDriver, FlowPolicy};
use super::{BadgeStatus, Chain, DomainError, DomainRules, DomainState, StateChange, UserState};
use super::{CommandAnswer, Keyed, Receipt};
use crate::consumers::Cache;
use crate::event::{BadgeChanges, BadgeEarned, Envelope, EventData};
use crate::event::{TierQualificationChanged, VolumeMilestoneReached};
use crate::journal::{blocking, AppendChange, Appended, ChangeFailure, EventJournal, LogError};
use actix::prelude::*;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// The cache key of a user's rendered portfolio; dropped by every change to the user.
pub fn portfolio_key(user_id: &str) -> String {
    format!("nft:portfolio:{user_id}")
}

/// The `source` of events the domain emits.
pub const DOMAIN_SOURCE: &str = "nft-event-router";

/// How often a command is decided again after losing a race to another writer.
const CONFLICT_ATTEMPTS: usize = 3;

/// Why a domain command did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainFailure {
    /// The rules refuse it (not qualified, unknown badge, volume going down, …).
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// The store could not take it (unreachable, or a definite failure); nothing was written.
    #[error(transparent)]
    Store(#[from] LogError),
    /// The command's idempotency key (as given) answered a different request before.
    #[error("Idempotency-Key {0:?} was used for a different request")]
    KeyReused(String),
}

impl From<ChangeFailure> for DomainFailure {
    fn from(e: ChangeFailure) -> Self {
        match e {
            ChangeFailure::Conflict => DomainFailure::Store(LogError::failed(
                "the user's state kept changing; try again",
            )),
            ChangeFailure::Receipted => DomainFailure::Store(LogError::failed(
                "a command without an idempotency key met a receipt",
            )),
            ChangeFailure::Journal(e) => DomainFailure::Store(e),
        }
    }
}

/// Record a user's new cumulative trading volume.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<CommandAnswer, DomainFailure>")]
pub struct RecordVolume {
    pub user_id: String,
    pub volume: f64,
    pub correlation_id: Option<String>,
    /// With an idempotency key, a retry answers the first answer (see `receipt`).
    pub once: Option<Keyed>,
}

/// Award a badge from the catalogue.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<CommandAnswer, DomainFailure>")]
pub struct AwardBadge {
    pub user_id: String,
    pub badge_id: String,
    pub correlation_id: Option<String>,
    /// With an idempotency key, a retry answers the first answer (see `receipt`).
    pub once: Option<Keyed>,
}

/// Activate one of the user's earned badges.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<CommandAnswer, DomainFailure>")]
pub struct ActivateBadge {
    pub user_id: String,
    pub badge_id: String,
    pub correlation_id: Option<String>,
}

/// The user's state and qualifications.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Portfolio, DomainFailure>")]
pub struct GetPortfolio {
    pub user_id: String,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainOutcome {
    pub before: UserState,
    pub after: UserState,
    pub qualified_tiers: Vec<u32>,
    /// The change written.
    pub change: StateChange,
    /// The events stored (and delivered), with their cursors.
    pub events: Vec<(u64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Portfolio {
    pub state: UserState,
    pub qualified_tiers: Vec<u32>,
}

pub struct NftDomain {
    pub(super) rules: Arc<DomainRules>,
    pub(super) state: Arc<dyn DomainState>,
    journal: Addr<EventJournal>,
    chain: Arc<dyn Chain>,
    cache: Arc<dyn Cache>,
    policy: FlowPolicy,
    /// Flow drivers running now.
    pub(super) running: Arc<AtomicUsize>,
}

/// A decision: the change to write and the events it causes.
type Decision = (StateChange, Vec<Envelope>);

impl NftDomain {
    /// `cache` holds rendered portfolios; every change to a user drops theirs.
    pub fn new(
        rules: Arc<DomainRules>,
        state: Arc<dyn DomainState>,
        journal: Addr<EventJournal>,
        chain: Arc<dyn Chain>,
        cache: Arc<dyn Cache>,
        policy: FlowPolicy,
    ) -> Self {
        NftDomain {
            rules,
            state,
            journal,
            chain,
            cache,
            policy,
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(super) fn driver(&self) -> FlowDriver {
        FlowDriver {
            rules: self.rules.clone(),
            state: self.state.clone(),
            journal: self.journal.clone(),
            chain: self.chain.clone(),
            cache: self.cache.clone(),
            policy: self.policy,
        }
    }

    /// Reads, decides with `decide`, writes, drops the user's cached portfolio; decides again
    /// on a conflict.
    pub(super) fn run(
        &self,
        user_id: String,
        decide: impl Fn(&DomainRules, &UserState) -> Result<Decision, DomainError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<DomainOutcome, DomainFailure>> {
        let ran = self.execute(user_id, None, decide);
        async move {
            match ran.await? {
                Ran::Done(outcome) => Ok(*outcome),
                Ran::Answered(_) => Err(ChangeFailure::Receipted.into()),
            }
        }
    }

    /// [`run`](Self::run) for a command that answers a [`CommandAnswer`]: with a key, the
    /// stored answer of an earlier attempt, or the first answer stored with the change.
    fn command(
        &self,
        user_id: String,
        once: Option<Keyed>,
        decide: impl Fn(&DomainRules, &UserState) -> Result<Decision, DomainError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<CommandAnswer, DomainFailure>> {
        let ran = self.execute(user_id, once, decide);
        async move {
            Ok(match ran.await? {
                Ran::Done(outcome) => answer(&outcome),
                Ran::Answered(answer) => answer,
            })
        }
    }

    fn execute(
        &self,
        user_id: String,
        once: Option<Keyed>,
        decide: impl Fn(&DomainRules, &UserState) -> Result<Decision, DomainError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<Ran, DomainFailure>> {
        let (rules, state, journal) =
            (self.rules.clone(), self.state.clone(), self.journal.clone());
        let cache = self.cache.clone();
        async move {
            if let Some(keyed) = &once {
                if let Some(answer) = stored_answer(&state, keyed).await? {
                    return Ok(Ran::Answered(answer));
                }
            }
            for _ in 0..CONFLICT_ATTEMPTS {
                let before = {
                    let (state, user) = (state.clone(), user_id.clone());
                    blocking(move || state.user_state(&user)).await?
                };
                let (change, envelopes) = match (decide(&rules, &before), &once) {
                    (Ok(decision), _) => decision,
                    // The state read may hold a racing attempt's change (committed after the
                    // receipt was looked up): its receipt answers, not the rules.
                    (Err(refused), Some(keyed)) => {
                        return match stored_answer(&state, keyed).await? {
                            Some(answer) => Ok(Ran::Answered(answer)),
                            None => Err(refused.into()),
                        };
                    }
                    (Err(refused), None) => return Err(refused.into()),
                };
                let after = apply(&before, &change);
                let qualified_tiers = rules.qualified_tiers(after.volume, after.qualifying());
                let receipt = once.as_ref().map(|keyed| Receipt {
                    key: keyed.key.clone(),
                    fingerprint: keyed.fingerprint.clone(),
                    answer: CommandAnswer {
                        previous_volume: before.volume,
                        current_volume: after.volume,
                        qualified_tiers: qualified_tiers.clone(),
                        events: Vec::new(),
                        replayed: false,
                    }
                    .to_json(),
                });
                let written = journal
                    .send(AppendChange {
                        change: change.clone(),
                        envelopes,
                        receipt,
                    })
                    .await
                    .map_err(|_| LogError::unavailable("journal stopped"))?;
                match written {
                    Err(ChangeFailure::Conflict) => continue,
                    Err(ChangeFailure::Receipted) => {
                        // Another attempt with the key committed first: answer its receipt.
                        let keyed = once.as_ref().ok_or(ChangeFailure::Receipted)?;
                        return match stored_answer(&state, keyed).await? {
                            Some(answer) => Ok(Ran::Answered(answer)),
                            None => Err(LogError::failed("the receipt met was not found").into()),
                        };
                    }
                    Err(e) => return Err(e.into()),
                    Ok(appended) => {
                        if let Err(e) = cache.remove(portfolio_key(&user_id)).await {
                            log::warn!("cannot drop the cached portfolio of {user_id}: {e}");
                        }
                        return Ok(Ran::Done(Box::new(DomainOutcome {
                            before,
                            after,
                            qualified_tiers,
                            change,
                            events: appended.into_iter().map(cursor_and_id).collect(),
                        })));
                    }
                }
            }
            Err(ChangeFailure::Conflict.into())
        }
    }
}

/// What a command did: written now, or answered from an earlier attempt's receipt.
enum Ran {
    Done(Box<DomainOutcome>),
    Answered(CommandAnswer),
}

fn answer(outcome: &DomainOutcome) -> CommandAnswer {
    CommandAnswer {
        previous_volume: outcome.before.volume,
        current_volume: outcome.after.volume,
        qualified_tiers: outcome.qualified_tiers.clone(),
        events: outcome.events.clone(),
        replayed: false,
    }
}

/// The stored answer for `keyed`, if an earlier attempt left one; `KeyReused` when that attempt
/// was a different request.
async fn stored_answer(
    state: &Arc<dyn DomainState>,
    keyed: &Keyed,
) -> Result<Option<CommandAnswer>, DomainFailure> {
    let receipt = {
        let (state, key) = (state.clone(), keyed.key.clone());
        blocking(move || state.receipt(&key)).await?
    };
    let Some(receipt) = receipt else {
        return Ok(None);
    };
    if receipt.fingerprint != keyed.fingerprint {
        return Err(DomainFailure::KeyReused(keyed.given.clone()));
    }
    CommandAnswer::replayed(receipt)
        .map(Some)
        .ok_or_else(|| LogError::failed("a stored receipt does not parse").into())
}

fn cursor_and_id(a: Appended) -> (u64, String) {
    let id = serde_json::from_str::<serde_json::Value>(&a.envelope_json)
        .ok()
        .and_then(|v| v.get("eventId")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    (a.seq, id)
}

/// The state after `change` (its precondition already checked by the decision).
fn apply(state: &UserState, change: &StateChange) -> UserState {
    state
        .apply(None, change)
        .map(|(next, _)| next)
        .unwrap_or_else(|_| state.clone())
}

pub(super) fn event(user_id: &str, data: EventData, correlation_id: &Option<String>) -> Envelope {
    Envelope::new(user_id, data, DOMAIN_SOURCE, correlation_id.clone())
}

/// The qualification event, when the set of qualified tiers changes.
fn qualification_change(
    rules: &DomainRules,
    before: &UserState,
    after: &UserState,
    badge_changes: BadgeChanges,
) -> Option<EventData> {
    let previous = rules.qualified_tiers(before.volume, before.qualifying());
    let current = rules.qualified_tiers(after.volume, after.qualifying());
    if previous == current {
        return None;
    }
    Some(EventData::TierQualificationChanged(
        TierQualificationChanged {
            previous_qualifications: previous,
            current_qualifications: current,
            volume_change: after.volume - before.volume,
            badge_changes,
        },
    ))
}

impl Actor for NftDomain {
    type Context = Context<Self>;
}

impl Handler<RecordVolume> for NftDomain {
    type Result = AtomicResponse<Self, Result<CommandAnswer, DomainFailure>>;

    fn handle(&mut self, msg: RecordVolume, _: &mut Self::Context) -> Self::Result {
        let user = msg.user_id.clone();
        let once = msg.once.clone();
        let run = self.command(user.clone(), once, move |rules, before| {
            let (previous, current) = (before.volume, msg.volume);
            if current < previous {
                return Err(DomainError::VolumeDecreased {
                    previous,
                    requested: current,
                });
            }
            let after = UserState {
                volume: current,
                ..before.clone()
            };
            let mut data: Vec<EventData> = rules
                .milestones_crossed(previous, current)
                .into_iter()
                .map(|(milestone, tier)| {
                    EventData::VolumeMilestoneReached(VolumeMilestoneReached {
                        previous_volume: previous,
                        current_volume: current,
                        milestone,
                        tier_unlocked: tier,
                    })
                })
                .collect();
            data.extend(qualification_change(
                rules,
                before,
                &after,
                BadgeChanges::default(),
            ));
            let change = StateChange::SetVolume {
                user_id: user.clone(),
                expected: previous,
                volume: current,
            };
            let envelopes = data
                .into_iter()
                .map(|d| event(&user, d, &msg.correlation_id))
                .collect();
            Ok((change, envelopes))
        });
        AtomicResponse::new(Box::pin(run.into_actor(self)))
    }
}

impl Handler<AwardBadge> for NftDomain {
    type Result = AtomicResponse<Self, Result<CommandAnswer, DomainFailure>>;

    fn handle(&mut self, msg: AwardBadge, _: &mut Self::Context) -> Self::Result {
        let user = msg.user_id.clone();
        let once = msg.once.clone();
        let run = self.command(user.clone(), once, move |rules, before| {
            let badge = rules
                .badge(&msg.badge_id)
                .ok_or_else(|| DomainError::UnknownBadge(msg.badge_id.clone()))?;
            if before.badges.contains_key(&badge.id) {
                return Err(DomainError::BadgeAlreadyEarned(badge.id.clone()));
            }
            let earned = EventData::BadgeEarned(BadgeEarned {
                badge_id: badge.id.clone(),
                badge_name: badge.name.clone(),
                description: badge.description.clone(),
                image_url: badge.image_url.clone(),
                earned_at: chrono::Utc::now(),
                required_for_tier: badge.required_for_tier,
            });
            let change = StateChange::AwardBadge {
                user_id: user.clone(),
                badge_id: badge.id.clone(),
            };
            Ok((change, vec![event(&user, earned, &msg.correlation_id)]))
        });
        AtomicResponse::new(Box::pin(run.into_actor(self)))
    }
}

impl Handler<ActivateBadge> for NftDomain {
    type Result = AtomicResponse<Self, Result<CommandAnswer, DomainFailure>>;

    fn handle(&mut self, msg: ActivateBadge, _: &mut Self::Context) -> Self::Result {
        let user = msg.user_id.clone();
        let run = self.command(user.clone(), None, move |rules, before| {
            if rules.badge(&msg.badge_id).is_none() {
                return Err(DomainError::UnknownBadge(msg.badge_id.clone()));
            }
            if before.badges.get(&msg.badge_id) != Some(&BadgeStatus::Earned) {
                return Err(DomainError::BadgeNotActivatable(msg.badge_id.clone()));
            }
            let change = StateChange::ActivateBadge {
                user_id: user.clone(),
                badge_id: msg.badge_id.clone(),
            };
            let after = apply(before, &change);
            let changes = BadgeChanges {
                activated: vec![msg.badge_id.clone()],
                ..BadgeChanges::default()
            };
            let envelopes = qualification_change(rules, before, &after, changes)
                .into_iter()
                .map(|d| event(&user, d, &msg.correlation_id))
                .collect();
            Ok((change, envelopes))
        });
        AtomicResponse::new(Box::pin(run.into_actor(self)))
    }
}

impl Handler<GetPortfolio> for NftDomain {
    type Result = ResponseFuture<Result<Portfolio, DomainFailure>>;

    fn handle(&mut self, msg: GetPortfolio, _: &mut Self::Context) -> Self::Result {
        let (rules, state) = (self.rules.clone(), self.state.clone());
        Box::pin(async move {
            let user = msg.user_id;
            let state = blocking(move || state.user_state(&user)).await?;
            let qualified_tiers = rules.qualified_tiers(state.volume, state.qualifying());
            Ok(Portfolio {
                state,
                qualified_tiers,
            })
        })
    }
}
