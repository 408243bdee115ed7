//! KafkaSink: what lands where, with which key and headers, in which order.

use super::support::{cluster_with, header, read_topic, record, text};
use crate::kafka::KafkaSink;
use actors::outbox::{BrokerSink, Record};
use rdkafka::message::Message;
use std::collections::HashMap;

#[actix::test]
async fn records_land_on_exactly_their_topics_with_key_and_headers() {
    let broker = cluster_with(&[("user-events", 5), ("analytics", 2), ("untouched", 3)]).await;
    let sink = KafkaSink::new(broker.bootstrap(), "test-sink").expect("producer");
    let with_headers = |topic: &str, key: &str, payload: &str| Record {
        headers: vec![
            ("eventType".to_owned(), "nft_unlocked".to_owned()),
            ("correlationId".to_owned(), format!("corr-{payload}")),
        ],
        ..record(topic, key, payload)
    };
    let records = vec![
        with_headers("user-events", "u1", "e1"),
        with_headers("analytics", "u1", "e1"),
        with_headers("user-events", "u2", "e2"),
    ];

    sink.publish(records).await.expect("acknowledged");

    let user_events = read_topic(broker.bootstrap(), "user-events").await;
    let analytics = read_topic(broker.bootstrap(), "analytics").await;
    let untouched = read_topic(broker.bootstrap(), "untouched").await;
    let mut keyed: Vec<(&str, &str)> = user_events
        .iter()
        .map(|m| (text(m.key()), text(m.payload())))
        .collect();
    keyed.sort();
    assert_eq!(keyed, [("u1", "e1"), ("u2", "e2")]);
    assert_eq!(analytics.len(), 1);
    assert_eq!(text(analytics[0].key()), "u1");
    assert_eq!(text(analytics[0].payload()), "e1");
    assert!(untouched.is_empty());
    for message in user_events.iter().chain(&analytics) {
        assert_eq!(header(message, "eventType"), Some("nft_unlocked"));
        let payload = text(message.payload());
        assert_eq!(
            header(message, "correlationId"),
            Some(format!("corr-{payload}").as_str())
        );
    }
}

#[actix::test]
async fn per_key_order_holds_on_a_partition() {
    let broker = cluster_with(&[("user-events", 5)]).await;
    let keys = ["alice", "bob", "carol"];
    let records: Vec<Record> = (0..200)
        .map(|i| record("user-events", keys[i % 3], &i.to_string()))
        .collect();

    let sink = KafkaSink::new(broker.bootstrap(), "test-sink").expect("producer");

    // As the relay does it: batches, one after another.
    for batch in records.chunks(25) {
        sink.send_all(batch).await.expect("acknowledged");
    }

    let messages = read_topic(broker.bootstrap(), "user-events").await;
    assert_eq!(messages.len(), 200);
    let mut by_key: HashMap<&str, Vec<(i32, usize)>> = HashMap::new();
    for m in &messages {
        let sequence = text(m.payload()).parse().expect("number");
        by_key
            .entry(text(m.key()))
            .or_default()
            .push((m.partition(), sequence));
    }
    for key in keys {
        let received = &by_key[key];
        let partition = received[0].0;
        assert!(
            received.iter().all(|(p, _)| *p == partition),
            "{key} on one partition"
        );
        let sequence: Vec<usize> = received.iter().map(|(_, s)| *s).collect();
        let sent: Vec<usize> = (0..200).filter(|i| keys[i % 3] == key).collect();
        assert_eq!(sequence, sent, "{key} in send order");
    }
}
