//! An in-memory broker for tests: it keeps every acknowledged record, and can be switched off
//! like a broker outage. (The memory outbox is [`MemoryLog`](crate::journal::MemoryLog), which
//! implements [`Outbox`](super::Outbox) too.)

pub use crate::journal::MemoryLog as MemoryOutbox;

use super::{BrokerSink, Record, SinkError, SinkFuture};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default, Clone)]
pub struct MemoryBroker {
    records: Arc<Mutex<Vec<Record>>>,
    down: Arc<AtomicBool>,
}

impl MemoryBroker {
    pub fn new() -> Self {
        MemoryBroker::default()
    }

    /// While down, every publish fails and nothing is kept.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every acknowledged record, in acknowledgement order.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The acknowledged records of one topic.
    pub fn topic(&self, topic: &str) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.topic == topic)
            .collect()
    }
}

impl BrokerSink for MemoryBroker {
    fn publish(&self, records: Vec<Record>) -> SinkFuture {
        let result = if self.down.load(Ordering::SeqCst) {
            Err(SinkError("memory broker is switched off".into()))
        } else {
            match self.records.lock() {
                Ok(mut kept) => {
                    kept.extend(records);
                    Ok(())
                }
                Err(_) => Err(SinkError("memory broker lock poisoned".into())),
            }
        };
        Box::pin(std::future::ready(result))
    }
}
