//! What the Kafka consumer loops do in production, in-process: each consumer group reads the
//! in-memory broker's records of its topics in order and hands them to its consumer actor; a
//! record that fails transiently is retried, one that can never be applied is dead-lettered.

use crate::consumers::{Consume, ConsumeError, ConsumedRecord};
use crate::outbox::{MemoryBroker, Record};
use actix::Recipient;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One consumer group: its topics, its actor, and how far it has read.
pub struct Group {
    pub name: &'static str,
    pub topics: Vec<&'static str>,
    pub consumer: Recipient<Consume>,
    next: usize,
}

impl Group {
    pub fn new(
        name: &'static str,
        topics: Vec<&'static str>,
        consumer: Recipient<Consume>,
    ) -> Self {
        Group {
            name,
            topics,
            consumer,
            next: 0,
        }
    }
}

/// A record a group gave up on, with why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub group: &'static str,
    pub record: Record,
    pub reason: String,
}

/// Pause between looks at the broker when nothing is new (or a record failed transiently).
const IDLE: Duration = Duration::from_millis(5);

/// Runs until the task is aborted (the harness does on drop).
pub async fn run(broker: MemoryBroker, mut groups: Vec<Group>, dead: Arc<Mutex<Vec<DeadLetter>>>) {
    loop {
        let records = broker.records();
        let mut progressed = false;
        for group in &mut groups {
            progressed |= drain(group, &records, &dead).await;
        }
        if !progressed {
            tokio::time::sleep(IDLE).await;
        }
    }
}

/// Feeds `group` what it has not read yet; stops at a transient failure (retried next round).
async fn drain(group: &mut Group, records: &[Record], dead: &Mutex<Vec<DeadLetter>>) -> bool {
    let mut progressed = false;
    while let Some(record) = records.get(group.next) {
        if !group.topics.contains(&record.topic.as_str()) {
            group.next += 1;
            continue;
        }
        let consumed = ConsumedRecord {
            topic: record.topic.clone(),
            partition: 0,
            offset: group.next as i64,
            key: Some(record.key.clone()),
            headers: record.headers.clone(),
            payload: record.payload.clone().into_bytes(),
        };
        match group.consumer.send(Consume(consumed)).await {
            Ok(Ok(_)) => {}
            Ok(Err(ConsumeError::Invalid(reason))) => {
                if let Ok(mut dead) = dead.lock() {
                    dead.push(DeadLetter {
                        group: group.name,
                        record: record.clone(),
                        reason,
                    });
                }
            }
            Ok(Err(ConsumeError::Transient(_))) | Err(_) => return progressed,
        }
        group.next += 1;
        progressed = true;
    }
    progressed
}
