//! The outbox relay and the consumer actors, in-process over the memory outbox, broker, stores
//! and cache: through the whole-system harness, and each consumer on its own.

use actix::Actor;
use actors::consumers::{
    counter_key, AnalyticsConsumer, AuditConsumer, Cache, Consume, ConsumeError, ConsumedRecord,
    MemoryCache, MemoryConsumerStore, NotificationConsumer, Outcome, Priority, SyncCounters,
};
use actors::journal::{EventJournal, MemoryLog};
use actors::outbox::{MemoryBroker, OutboxRelay, RelayNow};
use actors::registry::SessionRegistry;
use actors::routing::{RoutingTable, ANALYTICS_TOPIC, OPERATIONS_TOPIC, USER_EVENTS_TOPIC};
use actors::testkit::{sample_event, Harness};
use actors::{EventType, StreamConfig};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn pipeline() -> Harness {
    Harness::builder().start()
}

async fn wait_until(pred: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pred() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

#[actix::test]
async fn each_event_type_lands_on_exactly_its_routed_topics_with_key_and_headers() {
    let p = pipeline();
    let table = RoutingTable::default();
    let mut expected = 0;
    for event_type in EventType::ALL {
        let mut event = sample_event("u1", event_type);
        event.correlation_id = Some(format!("corr-{event_type}"));
        p.publish(&event).await.expect("stored");
        expected += table.topics(event_type).len();
    }
    p.relay().do_send(RelayNow::Committed);
    assert!(wait_until(|| p.broker().records().len() == expected).await);

    for event_type in EventType::ALL {
        let records: Vec<_> = p
            .broker()
            .records()
            .into_iter()
            .filter(|r| {
                r.headers
                    .contains(&("eventType".into(), event_type.as_str().into()))
            })
            .collect();
        let topics: Vec<_> = records.iter().map(|r| r.topic.clone()).collect();
        assert_eq!(topics, table.topics(event_type), "{event_type}");
        for r in &records {
            assert_eq!(r.key, "u1");
            assert!(r
                .headers
                .contains(&("correlationId".into(), format!("corr-{event_type}"))));
            let envelope: serde_json::Value = serde_json::from_str(&r.payload).expect("json");
            let event_id = envelope["eventId"].as_str().expect("id").to_owned();
            assert!(r.headers.contains(&("eventId".into(), event_id)));
        }
    }
    assert_eq!(
        table.topics(EventType::NftUnlockFailed),
        [OPERATIONS_TOPIC.to_owned()],
        "anything else goes to operations"
    );
}

/// The `eventId` of each record's envelope, in record order.
fn event_ids(records: &[actors::outbox::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.payload).expect("json");
            v["eventId"].as_str().expect("id").to_owned()
        })
        .collect()
}

#[actix::test]
async fn a_broker_outage_delays_events_and_loses_none() {
    let p = pipeline();
    p.broker().set_down(true);
    let mut ids = Vec::new();
    for _ in 0..50 {
        let event = sample_event("u1", EventType::VolumeMilestoneReached);
        ids.push(event.event_id.clone());
        p.publish(&event)
            .await
            .expect("stored while the broker is down");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(p.broker().records().is_empty());

    p.broker().set_down(false);
    let records = p
        .expect_records(ANALYTICS_TOPIC, 50)
        .await
        .expect("every event once the broker is back");
    assert_eq!(event_ids(&records), ids, "every event once, in order");
}

#[actix::test]
async fn a_failed_mark_is_retried_without_publishing_again_and_order_holds() {
    use actors::outbox::Outbox;
    let p = pipeline();
    let log = p.log();
    log.set_marks_down(true);
    let mut ids = Vec::new();
    for _ in 0..30 {
        let event = sample_event("u1", EventType::VolumeMilestoneReached);
        ids.push(event.event_id.clone());
        p.publish(&event).await.expect("stored");
    }
    p.expect_records(ANALYTICS_TOPIC, 30)
        .await
        .expect("published while marks fail");
    // Several idle polls and mark retries later: still once each, and still unmarked.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        p.broker().topic(ANALYTICS_TOPIC).len(),
        30,
        "not republished"
    );
    assert_eq!(log.backlog().expect("backlog"), 30);

    log.set_marks_down(false);
    let later = sample_event("u1", EventType::VolumeMilestoneReached);
    ids.push(later.event_id.clone());
    p.publish(&later).await.expect("stored");
    assert!(
        wait_until(|| log.backlog().ok() == Some(0)).await,
        "every row marked once marks work"
    );
    let records = p.expect_records(ANALYTICS_TOPIC, 31).await.expect("all");
    assert_eq!(event_ids(&records), ids, "every event once, in order");
}

fn record(topic: &str, event: &actors::Envelope, offset: i64) -> ConsumedRecord {
    ConsumedRecord {
        topic: topic.to_owned(),
        partition: 0,
        offset,
        key: Some(event.user_id.clone()),
        headers: vec![],
        payload: event.to_json().into_bytes(),
    }
}

#[actix::test]
async fn analytics_counts_each_event_once_and_the_cache_catches_up() {
    let store = Arc::new(MemoryConsumerStore::new());
    let cache = Arc::new(MemoryCache::new());
    let consumer = AnalyticsConsumer::new(store.clone(), cache.clone()).start();

    let minted = sample_event("u1", EventType::NftMinted);
    // The same event arrives on two topics and is redelivered once more.
    for (topic, offset) in [
        (ANALYTICS_TOPIC, 0),
        (OPERATIONS_TOPIC, 0),
        (ANALYTICS_TOPIC, 0),
    ] {
        consumer
            .send(Consume(record(topic, &minted, offset)))
            .await
            .expect("mailbox")
            .expect("applied");
    }
    let key = counter_key("nft_minted");
    assert_eq!(cache.get_counter(key.clone()).await, Ok(Some(1)));

    cache.set_down(true);
    for i in 0..3 {
        let e = sample_event("u1", EventType::NftMinted);
        let outcome = consumer
            .send(Consume(record(ANALYTICS_TOPIC, &e, i + 1)))
            .await;
        assert_eq!(
            outcome.expect("mailbox"),
            Ok(Outcome::Applied),
            "the database is the truth"
        );
    }
    cache.set_down(false);
    assert!(consumer.send(SyncCounters).await.expect("mailbox"));
    assert_eq!(cache.get_counter(key).await, Ok(Some(4)));
    let minutes: u64 = store.minute_counts().iter().map(|m| m.2).sum();
    assert_eq!(minutes, 4);
}

#[actix::test]
async fn notifications_and_audit_are_idempotent_and_poison_is_invalid() {
    let store = Arc::new(MemoryConsumerStore::new());
    let notifications = NotificationConsumer::new(store.clone()).start();
    let audit = AuditConsumer::new(store.clone()).start();

    let badge = sample_event("u7", EventType::BadgeEarned);
    for topic in [USER_EVENTS_TOPIC, "nft-notifications-topic"] {
        notifications
            .send(Consume(record(topic, &badge, 3)))
            .await
            .expect("mailbox")
            .expect("ok");
    }
    let stored = store.notifications();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].user_id, "u7");
    assert_eq!(stored[0].priority, Priority::Normal);
    assert!(stored[0].message.contains("First Trade"));

    let upgraded = sample_event("u7", EventType::NftUpgraded);
    for _ in 0..2 {
        audit
            .send(Consume(record(OPERATIONS_TOPIC, &upgraded, 9)))
            .await
            .expect("mailbox")
            .expect("ok");
    }
    assert_eq!(store.audit().len(), 1);
    assert_eq!(store.audit()[0].envelope_json, upgraded.to_json());

    let mut poison = record(OPERATIONS_TOPIC, &upgraded, 10);
    poison.payload = b"{\"not\": \"an envelope\"}".to_vec();
    let refused = audit.send(Consume(poison)).await.expect("mailbox");
    assert!(matches!(refused, Err(ConsumeError::Invalid(_))));

    store.set_down(true);
    let down = audit
        .send(Consume(record(
            OPERATIONS_TOPIC,
            &sample_event("u7", EventType::NftBurned),
            11,
        )))
        .await
        .expect("mailbox");
    assert!(matches!(down, Err(ConsumeError::Transient(_))));
}

/// A bus that only remembers what was published.
#[derive(Default)]
struct RecordingBus(std::sync::Mutex<Vec<actors::bus::BusMessage>>);

impl actors::bus::LiveBus for RecordingBus {
    fn publish(&self, message: actors::bus::BusMessage) {
        if let Ok(mut sent) = self.0.lock() {
            sent.push(message);
        }
    }
    fn watch(&self, _: &str) {}
    fn unwatch(&self, _: &str) {}
    fn is_shared(&self) -> bool {
        true
    }
    fn status(&self) -> actors::bus::BusStatus {
        actors::bus::NoBus.status()
    }
}

#[actix::test]
async fn a_standby_relay_publishes_nothing_and_tells_the_holder_once_per_burst() {
    let log = Arc::new(MemoryLog::new());
    let registry = SessionRegistry::new(StreamConfig::default(), log.clone()).start();
    let broker = MemoryBroker::new();
    let bus = Arc::new(RecordingBus::default());
    let turn = actors::outbox::RelayTurn::contested();
    let relay = OutboxRelay::new(
        log.clone(),
        Arc::new(broker.clone()),
        RoutingTable::default(),
    )
    .shared(turn.clone(), bus.clone())
    .start();
    let journal = EventJournal::new(log, registry.recipient())
        .notify_committed(relay.clone().recipient())
        .start();
    for _ in 0..20 {
        journal
            .send(actors::journal::Append {
                envelope: sample_event("u1", EventType::VolumeMilestoneReached),
            })
            .await
            .expect("mailbox")
            .expect("stored");
    }
    let told = || {
        bus.0
            .lock()
            .map(|sent| {
                sent.iter()
                    .filter(|m| **m == actors::bus::BusMessage::OutboxMoved)
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(wait_until(|| told() >= 1).await, "the holder is told");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        broker.records().is_empty(),
        "a standby relay publishes nothing"
    );
    assert!(
        told() < 20,
        "nudges are gathered, not one per event: {}",
        told()
    );

    // Winning the turn: the backlog goes out.
    assert!(turn.set(true));
    relay.do_send(RelayNow::Elsewhere);
    assert!(wait_until(|| broker.records().len() == 20).await);
}

#[actix::test]
async fn through_the_whole_system_each_event_reaches_its_stream_topics_consumers_and_feed_once() {
    let system = Harness::builder().start();
    let mut phone = system.attach("u1").await.expect("slot free");
    let mut admin = system.attach_admin().await.expect("slot free");

    let badge = sample_event("u1", EventType::BadgeEarned);
    let minted = sample_event("u1", EventType::NftMinted);
    let first = system.publish(&badge).await.expect("stored");
    let second = system.publish(&minted).await.expect("stored");
    assert_eq!((first, second), (1, 2), "cursors in publish order");

    let live = phone
        .expect_events(2)
        .await
        .expect("both on the user's stream");
    let got: Vec<(u64, &str)> = live
        .iter()
        .map(|e| (e.cursor, e.event_id.as_str()))
        .collect();
    assert_eq!(
        got,
        [(1, badge.event_id.as_str()), (2, minted.event_id.as_str())]
    );
    assert_eq!(live[0].event_type, Some(EventType::BadgeEarned));

    // The operations topic carries the mint to the feed (operations consumer), the audit log
    // and analytics; the badge goes to the notification consumer.
    let fed = admin
        .expect_event()
        .await
        .expect("the mint on the admin feed");
    assert_eq!(fed.event_id, minted.event_id);
    assert_eq!(fed.event_type, Some(EventType::NftMinted));
    let notified = system.expect_notifications(1).await.expect("notified");
    assert_eq!(notified[0].event_id, badge.event_id);
    let store = system.consumer_store();
    assert!(wait_until(|| store.audit().len() == 1).await, "audited");
    assert_eq!(store.audit()[0].event_id, minted.event_id);
    let key = counter_key("nft_minted");
    let cache = system.cache();
    let mut counted = None;
    for _ in 0..200 {
        counted = cache.get_counter(key.clone()).await.ok().flatten();
        if counted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        counted,
        Some(1),
        "counted once, though on two of its topics"
    );

    assert!(
        phone.no_event_within(Duration::from_millis(100)).await,
        "nothing twice"
    );
    assert!(
        admin.no_event_within(Duration::from_millis(100)).await,
        "nothing twice"
    );
    assert_eq!(notified.len(), 1);
    assert!(system.dead_letters().is_empty());
}

#[actix::test]
async fn a_batch_is_answered_in_order_past_an_invalid_record_and_moves_the_cache_once() {
    use actors::consumers::ConsumeBatch;

    let store = Arc::new(MemoryConsumerStore::new());
    let cache = Arc::new(MemoryCache::new());
    let consumer = AnalyticsConsumer::new(store.clone(), cache.clone()).start();
    let first = sample_event("u1", EventType::NftMinted);
    let second = sample_event("u2", EventType::NftMinted);
    let burned = sample_event("u1", EventType::NftBurned);
    let mut poison = record(ANALYTICS_TOPIC, &first, 1);
    poison.payload = b"not json".to_vec();

    let answers = consumer
        .send(ConsumeBatch(vec![
            record(ANALYTICS_TOPIC, &first, 0),
            poison,
            record(ANALYTICS_TOPIC, &second, 2),
            record(ANALYTICS_TOPIC, &first, 3),
            record(ANALYTICS_TOPIC, &burned, 4),
        ]))
        .await
        .expect("mailbox");

    assert_eq!(answers.len(), 5, "{answers:?}");
    assert_eq!(answers[0], Ok(Outcome::Applied));
    assert!(matches!(answers[1], Err(ConsumeError::Invalid(_))));
    assert_eq!(
        answers[2..],
        [
            Ok(Outcome::Applied),
            Ok(Outcome::Duplicate),
            Ok(Outcome::Applied)
        ]
    );
    let counter = |t: EventType| cache.get_counter(counter_key(t.as_str()));
    assert_eq!(counter(EventType::NftMinted).await, Ok(Some(2)));
    assert_eq!(counter(EventType::NftBurned).await, Ok(Some(1)));
}
