//! Two in-process "instances" over one journal, joined by a bus that loses messages: every
//! event still reaches the other instance's sessions, once and in order.

use ::actors::bus::{BusMessage, BusStatus, LiveBus, NoBus};
use ::actors::journal::MemoryLog;
use ::actors::registry::{Publish, SessionRegistry};
use ::actors::sweeper::HeadSweeper;
use ::actors::testkit::{sample_event, Harness};
use ::actors::{EventType, Frame, StreamConfig};
use actix::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Forwards user events to another instance's registry, dropping every `drop_every`-th.
struct LossyBus {
    to: OnceLock<Addr<SessionRegistry>>,
    drop_every: u64,
    sent: AtomicU64,
}

impl LiveBus for LossyBus {
    fn publish(&self, message: BusMessage) {
        let BusMessage::UserEvent {
            user_id,
            seq,
            event_type,
            envelope_json,
        } = message
        else {
            return;
        };
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if n % self.drop_every == 0 {
            return;
        }
        if let Some(to) = self.to.get() {
            to.do_send(Publish {
                user_id: user_id.to_string(),
                frame: Frame::stored(seq, &event_type.into(), &envelope_json),
            });
        }
    }
    fn watch(&self, _: &str) {}
    fn unwatch(&self, _: &str) {}
    fn is_shared(&self) -> bool {
        true
    }
    fn status(&self) -> BusStatus {
        NoBus.status()
    }
}

#[actix::test]
async fn a_lossy_bus_delays_events_but_the_other_instance_sees_each_once_in_order() {
    let log = Arc::new(MemoryLog::new());
    let b = Harness::start_shared(StreamConfig::default(), log.clone(), Arc::new(NoBus));
    HeadSweeper::new(log.clone(), b.registry(), Duration::from_millis(100)).start();
    let bus = Arc::new(LossyBus {
        to: OnceLock::new(),
        drop_every: 3,
        sent: AtomicU64::new(0),
    });
    let _ = bus.to.set(b.registry());
    let a = Harness::start_shared(StreamConfig::default(), log, bus);

    let mut on_a = a.attach("u1").await.expect("slot");
    let mut on_b = b.attach("u1").await.expect("slot");
    // Published on A; every third message to B is lost, the last one among them (9).
    for _ in 0..9 {
        a.publish(&sample_event("u1", EventType::BadgeEarned))
            .await
            .expect("stored");
    }
    for client in [&mut on_a, &mut on_b] {
        for expected in 1..=9u64 {
            let (cursor, _) = client.next_event_with_cursor().await.expect("delivered");
            assert_eq!(cursor, expected);
        }
        assert!(client.no_event_within(Duration::from_millis(300)).await);
    }
}

#[actix::test]
async fn hidden_types_move_the_cursor_without_a_gap_fill() {
    let config = StreamConfig {
        hidden_types: vec![EventType::NftMinted],
        ..StreamConfig::default()
    };
    let harness = Harness::start(config);
    let mut client = harness.attach("u2").await.expect("slot");
    harness
        .publish(&sample_event("u2", EventType::NftMinted))
        .await
        .expect("stored");
    harness
        .publish(&sample_event("u2", EventType::BadgeEarned))
        .await
        .expect("stored");
    let (cursor, event) = client.next_event_with_cursor().await.expect("delivered");
    assert_eq!(cursor, 2);
    assert_eq!(event["eventType"], "badge_earned");
}
