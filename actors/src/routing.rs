//! The routing table (docs/KAFKA.md): which Kafka topics an event type goes to. It is
//! configuration; [`RoutingTable::default`] holds the rows of `[routing]` in `config.toml`.

use crate::event::EventType;
use std::collections::HashMap;

pub const OPERATIONS_TOPIC: &str = "nft-operations-topic";
pub const USER_EVENTS_TOPIC: &str = "user-nft-events-topic";
pub const NOTIFICATIONS_TOPIC: &str = "nft-notifications-topic";
pub const ANALYTICS_TOPIC: &str = "nft-analytics-topic";
pub const DEAD_LETTER_TOPIC: &str = "nft-dead-letter-topic";

/// Event type → topics; types without a row go to `fallback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    routes: HashMap<EventType, Vec<String>>,
    fallback: Vec<String>,
}

impl RoutingTable {
    pub fn new(routes: HashMap<EventType, Vec<String>>, fallback: Vec<String>) -> Self {
        RoutingTable { routes, fallback }
    }

    /// The topics `event_type` is published to, in table order.
    pub fn topics(&self, event_type: EventType) -> &[String] {
        self.routes
            .get(&event_type)
            .map_or(self.fallback.as_slice(), Vec::as_slice)
    }

    /// Where types without a row go.
    pub fn fallback(&self) -> &[String] {
        &self.fallback
    }

    /// Every topic the table names, without duplicates.
    pub fn all_topics(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for topic in self.routes.values().flatten().chain(&self.fallback) {
            if !all.contains(topic) {
                all.push(topic.clone());
            }
        }
        all.sort();
        all
    }
}

impl Default for RoutingTable {
    fn default() -> Self {
        use EventType as T;
        let row = |topics: &[&str]| topics.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        let routes = HashMap::from([
            (T::NftUnlocked, row(&[USER_EVENTS_TOPIC, ANALYTICS_TOPIC])),
            (T::NftUpgraded, row(&[USER_EVENTS_TOPIC, OPERATIONS_TOPIC])),
            (
                T::BadgeEarned,
                row(&[USER_EVENTS_TOPIC, NOTIFICATIONS_TOPIC]),
            ),
            (T::NftMinted, row(&[OPERATIONS_TOPIC, ANALYTICS_TOPIC])),
            (T::NftBurned, row(&[OPERATIONS_TOPIC, ANALYTICS_TOPIC])),
            (T::VolumeMilestoneReached, row(&[ANALYTICS_TOPIC])),
            (
                T::TierQualificationChanged,
                row(&[ANALYTICS_TOPIC, USER_EVENTS_TOPIC]),
            ),
        ]);
        RoutingTable::new(routes, row(&[OPERATIONS_TOPIC]))
    }
}
