//! An in-process harness that wires the whole actor system as the router does, over the
//! in-memory adapters: no sockets, no database, no broker. The journal stores and fans out,
//! the relay publishes to an in-memory broker, the four consumer groups read it, the
//! operations feed serves admins, and the NFT domain runs its flows against an in-memory
//! ledger.
//!
//! ```
//! use actors::testkit::{sample_event, Harness};
//! use actors::routing::ANALYTICS_TOPIC;
//! use actors::EventType;
//!
//! # actix::System::new().block_on(async {
//! let harness = Harness::builder().start();
//! let mut phone = harness.attach("u1").await.expect("slot free");
//! let mut admin = harness.attach_admin().await.expect("slot free");
//!
//! let event = sample_event("u1", EventType::NftUnlocked);
//! let cursor = harness.publish(&event).await.expect("stored");
//!
//! let got = phone.expect_event().await.expect("delivered live");
//! assert_eq!((got.cursor, got.event_id.as_str()), (cursor, event.event_id.as_str()));
//! let records = harness.expect_records(ANALYTICS_TOPIC, 1).await.expect("relayed");
//! assert_eq!(records[0].key, "u1");
//! assert!(harness.expect_notifications(1).await.is_ok(), "the notification consumer ran");
//! # let _ = &mut admin;
//! # });
//! ```
//!
//! Start it inside a running actix `System` (`#[actix::test]`, `#[actix_web::test]`, or
//! `System::new().block_on`). Waits answer typed results; one that runs out says what it
//! waited for and what it saw last ([`Timeout`]).

mod client;
pub mod conformance;
mod pump;

pub use crate::event::sample_data;
pub use client::{ReceivedEvent, TestClient, Timeout};
pub use pump::DeadLetter;

use crate::bus::{LiveBus, NoBus};
use crate::consumers::{
    AnalyticsConsumer, AuditConsumer, MemoryCache, MemoryConsumerStore, MemoryFeedLog,
    NewNotification, NotificationConsumer, OperationsConsumer, ANALYTICS_GROUP, AUDIT_GROUP,
    NOTIFICATIONS_GROUP, OPERATIONS_GROUP,
};
use crate::domain::{
    BadgeRule, DomainRules, FlowPolicy, LedgerFaults, LocalLedger, MemoryLedgerBook, NftDomain,
    TierRule,
};
use crate::event::{Benefits, Envelope, EventData, EventType};
use crate::journal::{Append, EventJournal, LogError, MemoryLog};
use crate::metrics::Metrics;
use crate::operations_feed::OperationsFeed;
use crate::outbox::{MemoryBroker, OutboxRelay, Record};
use crate::registry::{CloseAll, Connect, GetStats, SessionRegistry, SseStats};
use crate::routing::{
    RoutingTable, ANALYTICS_TOPIC, NOTIFICATIONS_TOPIC, OPERATIONS_TOPIC, USER_EVENTS_TOPIC,
};
use crate::session::Resume;
use crate::stream_config::StreamConfig;
use crate::supervisor::ConnectError;
use actix::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the waits wait unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// How often the operations feed looks for entries it was not told about.
const FEED_POLL: Duration = Duration::from_millis(50);

/// What [`Harness::builder`] starts; every part has a default.
pub struct HarnessBuilder {
    streams: StreamConfig,
    log: Arc<MemoryLog>,
    bus: Arc<dyn LiveBus>,
    rules: DomainRules,
    faults: LedgerFaults,
    policy: FlowPolicy,
    routing: RoutingTable,
}

impl HarnessBuilder {
    /// The stream tunables (default: [`StreamConfig::default`]).
    pub fn streams(mut self, config: StreamConfig) -> Self {
        self.streams = config;
        self
    }

    /// One "instance" of several over the same `log`, telling the others over `bus`: what
    /// several router processes on one database are, in-process.
    pub fn shared(mut self, log: Arc<MemoryLog>, bus: Arc<dyn LiveBus>) -> Self {
        self.log = log;
        self.bus = bus;
        self
    }

    /// The tier and badge rules of the domain (default: [`sample_rules`]).
    pub fn rules(mut self, rules: DomainRules) -> Self {
        self.rules = rules;
        self
    }

    /// Faults of the in-memory ledger and the flows' patience with it.
    pub fn ledger(mut self, faults: LedgerFaults, policy: FlowPolicy) -> Self {
        self.faults = faults;
        self.policy = policy;
        self
    }

    /// Starts every actor. Must run inside an actix `System`.
    pub fn start(self) -> Harness {
        let metrics = Metrics::standalone();
        let log = self.log;
        let registry = SessionRegistry::new(self.streams.clone(), log.clone())
            .with_bus(self.bus.clone())
            .with_metrics(metrics.clone())
            .start();

        let consumer_store = Arc::new(MemoryConsumerStore::new());
        let feed_log = Arc::new(MemoryFeedLog(consumer_store.clone()));
        // Admins see every event type on the feed.
        let feed_config = StreamConfig {
            hidden_types: Vec::new(),
            ..self.streams
        };
        let operations = SessionRegistry::new(feed_config, feed_log.clone())
            .with_metrics(metrics.clone())
            .start();
        let feed = OperationsFeed::new(feed_log, operations.clone(), FEED_POLL)
            .with_bus(self.bus.clone())
            .start();

        let broker = MemoryBroker::new();
        let relay = OutboxRelay::new(log.clone(), Arc::new(broker.clone()), self.routing)
            .with_metrics(metrics.clone())
            .start();
        let journal = EventJournal::new(log.clone(), registry.clone().recipient())
            .notify_committed(relay.clone().recipient())
            .with_bus(self.bus)
            .with_metrics(metrics.clone())
            .start();

        let cache = Arc::new(MemoryCache::new());
        let groups = vec![
            pump::Group::new(
                ANALYTICS_GROUP,
                vec![ANALYTICS_TOPIC, OPERATIONS_TOPIC],
                AnalyticsConsumer::new(consumer_store.clone(), cache.clone())
                    .start()
                    .recipient(),
            ),
            pump::Group::new(
                NOTIFICATIONS_GROUP,
                vec![USER_EVENTS_TOPIC, NOTIFICATIONS_TOPIC],
                NotificationConsumer::new(consumer_store.clone())
                    .start()
                    .recipient(),
            ),
            pump::Group::new(
                AUDIT_GROUP,
                vec![OPERATIONS_TOPIC],
                AuditConsumer::new(consumer_store.clone())
                    .start()
                    .recipient(),
            ),
            pump::Group::new(
                OPERATIONS_GROUP,
                vec![OPERATIONS_TOPIC],
                OperationsConsumer::new(consumer_store.clone())
                    .notify(feed.recipient())
                    .start()
                    .recipient(),
            ),
        ];
        let dead_letters = Arc::new(Mutex::new(Vec::new()));
        let pump = actix::spawn(pump::run(broker.clone(), groups, dead_letters.clone()));

        let mut harness = Harness {
            registry,
            operations,
            journal,
            relay,
            log,
            broker,
            consumer_store,
            cache,
            book: Arc::new(MemoryLedgerBook::new()),
            rules: Arc::new(self.rules),
            faults: self.faults,
            policy: self.policy,
            domain: None,
            metrics,
            dead_letters,
            pump,
        };
        harness.domain = Some(harness.start_domain(harness.faults, harness.policy));
        harness
    }
}

/// The whole actor system, running, with helpers to attach clients, publish, and wait for
/// what each consumer did.
pub struct Harness {
    registry: Addr<SessionRegistry>,
    operations: Addr<SessionRegistry>,
    journal: Addr<EventJournal>,
    relay: Addr<OutboxRelay>,
    log: Arc<MemoryLog>,
    broker: MemoryBroker,
    consumer_store: Arc<MemoryConsumerStore>,
    cache: Arc<MemoryCache>,
    book: Arc<MemoryLedgerBook>,
    rules: Arc<DomainRules>,
    faults: LedgerFaults,
    policy: FlowPolicy,
    domain: Option<Addr<NftDomain>>,
    metrics: Arc<Metrics>,
    dead_letters: Arc<Mutex<Vec<DeadLetter>>>,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl Harness {
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            streams: StreamConfig::default(),
            log: Arc::new(MemoryLog::new()),
            bus: Arc::new(NoBus),
            rules: sample_rules(),
            faults: LedgerFaults::default(),
            policy: FlowPolicy::default(),
            routing: RoutingTable::default(),
        }
    }

    /// Everything with defaults but the stream tunables.
    pub fn start(config: StreamConfig) -> Self {
        Harness::builder().streams(config).start()
    }

    /// One "instance" of several over the same `log`, telling the others over `bus`.
    pub fn start_shared(config: StreamConfig, log: Arc<MemoryLog>, bus: Arc<dyn LiveBus>) -> Self {
        Harness::builder().streams(config).shared(log, bus).start()
    }

    /// The in-memory log, e.g. to switch it off (`set_down(true)`) like a failed database.
    pub fn log(&self) -> Arc<MemoryLog> {
        self.log.clone()
    }

    pub fn journal(&self) -> Addr<EventJournal> {
        self.journal.clone()
    }

    /// The registry, to send it messages directly.
    pub fn registry(&self) -> Addr<SessionRegistry> {
        self.registry.clone()
    }

    pub fn relay(&self) -> Addr<OutboxRelay> {
        self.relay.clone()
    }

    /// The in-memory broker: every record the relay published, and a switch for outages.
    pub fn broker(&self) -> &MemoryBroker {
        &self.broker
    }

    /// What the analytics, notification, audit and operations consumers wrote.
    pub fn consumer_store(&self) -> Arc<MemoryConsumerStore> {
        self.consumer_store.clone()
    }

    pub fn cache(&self) -> Arc<MemoryCache> {
        self.cache.clone()
    }

    /// The in-memory ledger the domain mints on and burns from.
    pub fn ledger_book(&self) -> Arc<MemoryLedgerBook> {
        self.book.clone()
    }

    pub fn rules(&self) -> Arc<DomainRules> {
        self.rules.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The NFT domain started with the harness.
    pub fn domain(&self) -> Addr<NftDomain> {
        match &self.domain {
            Some(domain) => domain.clone(),
            None => self.start_domain(self.faults, self.policy),
        }
    }

    /// Another NFT domain actor over the same log, ledger and cache, e.g. with other faults,
    /// or as a router restarted after a crash would start it.
    pub fn start_domain(&self, faults: LedgerFaults, policy: FlowPolicy) -> Addr<NftDomain> {
        let chain = Arc::new(LocalLedger::new(self.book.clone(), faults));
        NftDomain::new(
            self.rules.clone(),
            self.log.clone(),
            self.journal.clone(),
            chain,
            self.cache.clone(),
            policy,
        )
        .start()
    }

    /// Opens a live session for `user_id`, as a stream request without a cursor would.
    pub async fn attach(&self, user_id: &str) -> Result<TestClient, ConnectError> {
        self.attach_from(user_id, Resume::Live).await
    }

    /// Opens a session that starts at `resume`, as a reconnect with `Last-Event-ID` would.
    pub async fn attach_from(
        &self,
        user_id: &str,
        resume: Resume,
    ) -> Result<TestClient, ConnectError> {
        connect(&self.registry, user_id, resume).await
    }

    /// Opens a live session on the admin operations feed.
    pub async fn attach_admin(&self) -> Result<TestClient, ConnectError> {
        connect(&self.operations, "admin", Resume::Live).await
    }

    /// Stores an envelope in the journal, which then delivers it; answers its cursor.
    pub async fn publish(&self, envelope: &Envelope) -> Result<u64, LogError> {
        let appended = self
            .journal
            .send(Append {
                envelope: envelope.clone(),
            })
            .await
            .map_err(|_| LogError::unavailable("journal stopped"))??;
        Ok(appended.seq)
    }

    pub async fn stats(&self) -> SseStats {
        self.registry.send(GetStats).await.unwrap_or_default()
    }

    /// Polls the statistics until `pred` holds; false if it never did within `wait`.
    pub async fn wait_for_stats(&self, wait: Duration, pred: impl Fn(&SseStats) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if pred(&self.stats().await) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the broker holds at least `n` records of `topic`; answers them, in order.
    pub async fn expect_records(&self, topic: &str, n: usize) -> Result<Vec<Record>, Timeout> {
        wait_until(
            &format!("{n} records on {topic}"),
            || {
                let records = self.broker.topic(topic);
                (records.len() >= n).then_some(records)
            },
            || describe_records(&self.broker.topic(topic)),
        )
        .await
    }

    /// Waits until the notification consumer has stored at least `n` notifications.
    pub async fn expect_notifications(&self, n: usize) -> Result<Vec<NewNotification>, Timeout> {
        wait_until(
            &format!("{n} notifications"),
            || {
                let stored = self.consumer_store.notifications();
                (stored.len() >= n).then_some(stored)
            },
            || {
                format!(
                    "{} notifications",
                    self.consumer_store.notifications().len()
                )
            },
        )
        .await
    }

    /// The records a consumer group gave up on (they could never be applied).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Closes every session, as a graceful shutdown does.
    pub fn close_all(&self) {
        self.registry.do_send(CloseAll);
        self.operations.do_send(CloseAll);
    }
}

async fn connect(
    registry: &Addr<SessionRegistry>,
    user_id: &str,
    resume: Resume,
) -> Result<TestClient, ConnectError> {
    let handle = registry
        .send(Connect {
            home: None,
            lease: None,
            user_id: user_id.to_owned(),
            resume,
            client_gone: None,
            expires_at: None,
        })
        .await
        .map_err(|_| ConnectError::Unavailable)??;
    Ok(TestClient::new(handle.id, handle.frames))
}

/// Polls `probe` until it answers, for at most [`DEFAULT_WAIT`].
pub async fn wait_until<T>(
    what: &str,
    probe: impl Fn() -> Option<T>,
    last_seen: impl Fn() -> String,
) -> Result<T, Timeout> {
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    loop {
        if let Some(found) = probe() {
            return Ok(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Timeout {
                what: what.to_owned(),
                waited: DEFAULT_WAIT,
                last_seen: last_seen(),
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn describe_records(records: &[Record]) -> String {
    match records.last() {
        None => "no record".to_owned(),
        Some(last) => format!(
            "{} records, the last keyed {} with headers {:?}",
            records.len(),
            last.key,
            last.headers
        ),
    }
}

/// Three tiers at 100k, 250k and 500k of volume; tier 2 needs one badge, tier 3 two.
pub fn sample_rules() -> DomainRules {
    let tier = |id: u32, milestone: f64, badges_required: u32| TierRule {
        id,
        name: format!("Tier {id}"),
        milestone,
        image_url: format!("https://example.invalid/t{id}.png"),
        benefits: Benefits {
            trading_fee_reduction: format!("{id}%"),
            ai_agent_weekly_uses: id * 10,
            priority_support: id > 2,
        },
        badges_required,
    };
    let badge = |id: &str, tier: u32| BadgeRule {
        id: id.into(),
        name: format!("Badge {id}"),
        description: format!("the {id} badge"),
        image_url: format!("https://example.invalid/{id}.png"),
        required_for_tier: tier,
    };
    DomainRules::new(
        vec![
            tier(1, 100_000.0, 0),
            tier(2, 250_000.0, 1),
            tier(3, 500_000.0, 2),
        ],
        vec![badge("a", 2), badge("b", 3), badge("c", 3)],
    )
    .unwrap_or_else(|e| panic!("the sample rules are invalid: {e:?}"))
}

/// A valid envelope of `event_type` for `user_id`, with a fresh id.
pub fn sample_event(user_id: &str, event_type: EventType) -> Envelope {
    // The samples above are valid by construction; a failure here is a bug in this module.
    let data = EventData::parse(event_type, sample_data(event_type))
        .unwrap_or_else(|e| panic!("sample for {event_type} is invalid: {e}"));
    Envelope::new(user_id, data, "testkit", None)
}
