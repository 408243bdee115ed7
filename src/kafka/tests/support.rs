//! Test helpers: an embedded cluster with topics, a scripted consumer actor, and plain rdkafka
//! readers that check what is on a topic and what a group committed, independently of the code
//! under test.

use crate::kafka::{
    ensure_topics, Brokers, ConsumerConfig, ConsumerHandle, KafkaCluster, KafkaSink, StopReason,
};
use actix::{Actor, ActorContext, Addr, Context, Handler};
use actors::consumers::{Answers, ConsumeBatch, ConsumeError, ConsumedRecord, Outcome};
use actors::outbox::Record;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a second member of a group may wait for its partitions: the embedded cluster's
/// coordinator reassigns a departed member's partitions only after its session timeout (10 s).
pub const REJOIN_PATIENCE: Duration = Duration::from_secs(15);

/// How long a helper waits for something that should happen in milliseconds before failing the
/// test (a bound against hanging, not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A fresh embedded cluster with `topics` created.
pub async fn cluster_with(topics: &[(&str, i32)]) -> KafkaCluster {
    let broker = KafkaCluster::start(&Brokers::Embedded).expect("embedded cluster starts");
    let topics: Vec<(String, i32)> = topics.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
    ensure_topics(&broker, &topics)
        .await
        .expect("topics created");
    broker
}

pub fn record(topic: &str, key: &str, payload: &str) -> Record {
    Record {
        topic: topic.to_owned(),
        key: key.to_owned(),
        headers: vec![],
        payload: payload.to_owned(),
    }
}

/// Publishes `records` through a fresh [`KafkaSink`] and waits for the acknowledgements.
pub async fn publish(broker: &KafkaCluster, records: Vec<Record>) {
    let sink = KafkaSink::new(broker.bootstrap(), "test-publisher").expect("producer");
    sink.send_all(&records).await.expect("published");
}

/// A consumer config for tests: quick retries.
pub fn consumer_config(
    broker: &KafkaCluster,
    group: &str,
    topic: &str,
    dlq: &str,
) -> ConsumerConfig {
    let mut cfg = ConsumerConfig::new(broker.bootstrap(), group, vec![topic.to_owned()]);
    cfg.dead_letter_topic = dlq.to_owned();
    cfg.retry_backoff = Duration::from_millis(20);
    cfg
}

/// Stops the loop and waits until it has ended.
pub async fn stop(consumer: &ConsumerHandle) -> StopReason {
    consumer.stop();
    tokio::time::timeout(PATIENCE, consumer.stopped())
        .await
        .expect("the loop stops")
}

/// Everything on `topic`, partition by partition in offset order. Reads up to the high
/// watermarks taken first, so the count is exactly what the topic holds.
pub async fn read_topic(bootstrap: &str, topic: &str) -> Vec<OwnedMessage> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_topic_blocking(&bootstrap, &topic))
        .await
        .expect("reader thread")
}

fn read_topic_blocking(bootstrap: &str, topic: &str) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), PATIENCE)
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0;
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, PATIENCE)
            .expect("watermarks");
        expected += (high - low) as usize;
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + PATIENCE;
    let mut messages = Vec::with_capacity(expected);
    while messages.len() < expected {
        assert!(Instant::now() < deadline, "read {messages:?} of {expected}");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            messages.push(message.expect("message").detach());
        }
    }
    messages.sort_by_key(|m| (m.partition(), m.offset()));
    messages
}

/// The offset `group` committed for `topic`/`partition`, if any.
pub async fn committed(bootstrap: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let (bootstrap, group, topic) = (bootstrap.to_owned(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .create()
            .expect("offset reader");
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(&topic, partition);
        let offsets = consumer
            .committed_offsets(wanted, PATIENCE)
            .expect("committed offsets");
        let elements = offsets.elements_for_topic(&topic);
        elements.first().and_then(|e| e.offset().to_raw())
    })
    .await
    .expect("offset reader thread")
    .filter(|offset| *offset >= 0)
}

pub fn header<'a>(message: &'a OwnedMessage, key: &str) -> Option<&'a str> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| std::str::from_utf8(v).expect("utf-8 header"))
}

pub fn text(bytes: Option<&[u8]>) -> &str {
    std::str::from_utf8(bytes.unwrap_or_default()).expect("utf-8")
}

/// What the scripted actor answers.
pub enum Reply {
    Applied,
    Invalid(&'static str),
    Transient(&'static str),
    /// Stops the actor (its mailbox closes) and answers `Transient`, so the loop's retry finds
    /// the handler gone.
    Die,
}

/// Decides the answer from the record and how many times this record was seen (1 = first).
pub type Script = Box<dyn FnMut(&ConsumedRecord, usize) -> Reply>;

/// Every record the scripted actor was handed, in order, retries included.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<ConsumedRecord>>>, Arc<Mutex<Vec<usize>>>);

impl Seen {
    /// How many records each batch handed over held, in order.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.1.lock().expect("batches lock").clone()
    }

    pub fn all(&self) -> Vec<ConsumedRecord> {
        self.0.lock().expect("seen lock").clone()
    }

    pub fn payloads(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect()
    }

    /// Waits until `done` holds for the records seen so far.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[ConsumedRecord]) -> bool) {
        self.wait_until_within(PATIENCE, what, done).await
    }

    pub async fn wait_until_within(
        &self,
        patience: Duration,
        what: &str,
        done: impl Fn(&[ConsumedRecord]) -> bool,
    ) {
        let deadline = Instant::now() + patience;
        loop {
            if done(&self.all()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what}; saw {:?}",
                self.payloads()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn push(&self, record: ConsumedRecord) -> usize {
        let mut seen = self.0.lock().expect("seen lock");
        seen.push(record.clone());
        seen.iter()
            .filter(|r| {
                (&r.topic, r.partition, r.offset)
                    == (&record.topic, record.partition, record.offset)
            })
            .count()
    }
}

/// A consumer actor whose answers a test scripts.
pub struct ScriptedHandler {
    script: Script,
    seen: Seen,
}

impl ScriptedHandler {
    /// Starts the actor; returns its recipient and the log of what it saw.
    pub fn start(
        script: impl FnMut(&ConsumedRecord, usize) -> Reply + 'static,
    ) -> (Addr<Self>, Seen) {
        let seen = Seen::default();
        let addr = ScriptedHandler {
            script: Box::new(script),
            seen: seen.clone(),
        }
        .start();
        (addr, seen)
    }
}

/// Always applies.
pub fn apply_all(_: &ConsumedRecord, _: usize) -> Reply {
    Reply::Applied
}

impl Actor for ScriptedHandler {
    type Context = Context<Self>;
}

/// Answers record by record, as the script says, up to the first transient failure (the
/// batch contract: the loop sends the rest again).
impl Handler<ConsumeBatch> for ScriptedHandler {
    type Result = Answers;

    fn handle(
        &mut self,
        ConsumeBatch(records): ConsumeBatch,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        self.seen
            .1
            .lock()
            .expect("batches lock")
            .push(records.len());
        let mut answers = Vec::new();
        for record in records {
            let answer = self.answer(record, ctx);
            let transient = matches!(answer, Err(ConsumeError::Transient(_)));
            answers.push(answer);
            if transient {
                break;
            }
        }
        answers
    }
}

impl ScriptedHandler {
    fn answer(
        &mut self,
        record: ConsumedRecord,
        ctx: &mut Context<Self>,
    ) -> Result<Outcome, ConsumeError> {
        let tries = self.seen.push(record.clone());
        match (self.script)(&record, tries) {
            Reply::Applied => Ok(Outcome::Applied),
            Reply::Invalid(why) => Err(ConsumeError::Invalid(why.to_owned())),
            Reply::Transient(why) => Err(ConsumeError::Transient(why.to_owned())),
            Reply::Die => {
                ctx.stop();
                Err(ConsumeError::Transient("handler stopping".to_owned()))
            }
        }
    }
}
