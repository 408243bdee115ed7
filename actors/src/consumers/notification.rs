//! `NotificationConsumer` (group `nft-notifications-group`): one notification per event for its
//! user, with a title, a message and a priority derived from the event.

use super::{
    answer_each_blocking, first_answer, parse_record, Answers, Consume, ConsumeBatch, ConsumeError,
    ConsumedRecord, NewNotification, NotificationStore, Outcome, Priority,
};
use crate::event::{Envelope, EventData};
use actix::prelude::*;
use std::sync::Arc;

pub struct NotificationConsumer {
    store: Arc<dyn NotificationStore>,
}

impl NotificationConsumer {
    pub fn new(store: Arc<dyn NotificationStore>) -> Self {
        NotificationConsumer { store }
    }
}

impl Actor for NotificationConsumer {
    type Context = Context<Self>;
}

impl NotificationConsumer {
    /// Inserts each record's notification, in order, on the blocking pool.
    fn apply(&self, records: Vec<ConsumedRecord>) -> impl std::future::Future<Output = Answers> {
        let store = self.store.clone();
        answer_each_blocking(records, move |record| {
            let notification = notification_for(&parse_record(record)?);
            Ok(Outcome::of(store.insert_notification(&notification)?))
        })
    }
}

impl Handler<Consume> for NotificationConsumer {
    type Result = ResponseFuture<Result<Outcome, ConsumeError>>;

    fn handle(&mut self, msg: Consume, _: &mut Self::Context) -> Self::Result {
        let answers = self.apply(vec![msg.0]);
        Box::pin(async move { first_answer(answers.await) })
    }
}

impl Handler<ConsumeBatch> for NotificationConsumer {
    type Result = ResponseFuture<Answers>;

    fn handle(&mut self, msg: ConsumeBatch, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.apply(msg.0))
    }
}

/// The notification a user sees for an event.
pub fn notification_for(event: &Envelope) -> NewNotification {
    let (title, message, priority) = match &event.data {
        EventData::NftUnlocked(d) => (
            "NFT unlocked".to_owned(),
            format!(
                "Your {} NFT is unlocked and its benefits are active.",
                d.tier_name
            ),
            Priority::High,
        ),
        EventData::NftUpgraded(d) => (
            "NFT upgraded".to_owned(),
            format!(
                "Your {} NFT was upgraded to {}.",
                d.old_nft.tier_name, d.new_nft.tier_name
            ),
            Priority::High,
        ),
        EventData::BadgeEarned(d) => (
            "Badge earned".to_owned(),
            format!("You earned the {} badge: {}", d.badge_name, d.description),
            Priority::Normal,
        ),
        EventData::NftMinted(d) => (
            "NFT minted".to_owned(),
            format!("NFT {} was minted at {}.", d.nft_id, d.mint_address),
            Priority::Low,
        ),
        EventData::NftBurned(d) => (
            "NFT burned".to_owned(),
            format!("NFT {} was burned.", d.nft_id),
            Priority::Low,
        ),
        EventData::VolumeMilestoneReached(d) => (
            "Trading milestone reached".to_owned(),
            format!("Your trading volume passed {}.", d.milestone),
            Priority::Normal,
        ),
        EventData::TierQualificationChanged(d) => (
            "Tier qualification changed".to_owned(),
            format!("You now qualify for tiers {:?}.", d.current_qualifications),
            Priority::Normal,
        ),
        EventData::NftUnlockFailed(d) => (
            "NFT unlock failed".to_owned(),
            format!("Unlocking your NFT failed: {}", d.error),
            Priority::High,
        ),
        // Operations events are routed to admins, not to the notification topics; should a
        // routing table send them here, they still read sensibly.
        EventData::SystemAlert(d) => (
            format!("Alert: {}", d.name),
            format!("{} is {} (threshold {}).", d.name, d.value, d.threshold),
            Priority::High,
        ),
        EventData::SystemAlertResolved(d) => (
            format!("Resolved: {}", d.name),
            format!(
                "{} is back to {} (threshold {}).",
                d.name, d.value, d.threshold
            ),
            Priority::Normal,
        ),
        EventData::MetricsReport(d) => (
            "Metrics report".to_owned(),
            format!(
                "{} connections, {} events accepted in {} s.",
                d.open_connections, d.events_accepted, d.interval_secs
            ),
            Priority::Low,
        ),
    };
    NewNotification {
        event_id: event.event_id.clone(),
        user_id: event.user_id.clone(),
        event_type: event.event_type.as_str().to_owned(),
        title,
        message,
        priority,
        data_json: serde_json::to_string(&event.data).unwrap_or_default(),
        created_at: event.timestamp,
    }
}
