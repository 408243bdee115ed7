//! The consumer loop: receive a record, hand it to the consumer actor, and only once the actor
//! answered, commit its offset. `run` loops; `handle` is one record's whole life.
//!
//! The delivery guarantees (docs/DELIVERY.md): an offset is committed only after the actor applied
//! the record (or after the record is safely on the dead-letter topic), so a crash redelivers
//! rather than loses; a record that keeps failing is dead-lettered and committed, so it never
//! blocks its partition. Records are handled one at a time, which keeps each partition's order.

use super::consumer::{ConsumerConfig, StopReason};
use super::dead_letter::DeadLetter;
use super::lag::{LagGauge, STATISTICS_INTERVAL_MS};
use super::{common_config, KafkaError, KafkaSink};
use actix::Recipient;
use actors::consumers::{Consume, ConsumeError, ConsumedRecord};
use actors::metrics::Metrics;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError as RdKafkaError, KafkaResult};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The longest pause between two attempts at one record (or one dead-letter send).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What handling one record led to.
enum Step {
    Continue,
    Stop(StopReason),
}

pub(super) struct ConsumerLoop {
    consumer: StreamConsumer<LoopContext>,
    handler: Recipient<Consume>,
    dead_letters: KafkaSink,
    group_id: String,
    dead_letter_topic: String,
    max_attempts: u32,
    retry_backoff: Duration,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    /// The next offset to read, per partition, of every record handled: what a clean stop
    /// commits synchronously (the per-record commits are asynchronous).
    handled: HashMap<(String, i32), i64>,
}

impl ConsumerLoop {
    /// Creates the consumer and the dead-letter producer and subscribes. Must be called inside
    /// the tokio runtime that will run the loop.
    pub(super) fn new(
        cfg: ConsumerConfig,
        handler: Recipient<Consume>,
        stop: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> Result<ConsumerLoop, KafkaError> {
        let context = LoopContext {
            group_id: cfg.group_id.clone(),
            lag: LagGauge::new(&cfg.group_id, metrics.clone()),
        };
        let consumer: StreamConsumer<LoopContext> =
            consumer_config(&cfg).create_with_context(context)?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let dead_letters = KafkaSink::new(&cfg.bootstrap, &format!("{}-dlq", cfg.client_id))?;
        Ok(ConsumerLoop {
            consumer,
            handler,
            dead_letters,
            group_id: cfg.group_id,
            dead_letter_topic: cfg.dead_letter_topic,
            max_attempts: cfg.max_attempts,
            retry_backoff: cfg.retry_backoff,
            stop,
            metrics,
            handled: HashMap::new(),
        })
    }

    /// Runs until stopped, the actor is gone, or librdkafka reports a fatal error.
    pub(super) async fn run(mut self) -> StopReason {
        log::info!("consumer {} started", self.group_id);
        let reason = loop {
            let received = tokio::select! {
                biased;
                _ = stop_requested(&mut self.stop) => break StopReason::Requested,
                received = self.consumer.recv() => received.map(|m| m.detach()),
            };
            let step = match received {
                Ok(message) => {
                    let started = Instant::now();
                    let step = self.handle(message).await;
                    if let Step::Continue = step {
                        self.metrics
                            .consumer_processed(&self.group_id, started.elapsed());
                    }
                    step
                }
                Err(RdKafkaError::MessageConsumptionFatal(code)) => {
                    Step::Stop(StopReason::Failed(code.to_string()))
                }
                Err(e) => {
                    // Brokers down, topic not there yet, ...: librdkafka recovers by itself.
                    log::warn!("consumer {}: {e}", self.group_id);
                    self.pause(Duration::from_millis(100)).await
                }
            };
            if let Step::Stop(reason) = step {
                break reason;
            }
        };
        self.commit_handled();
        reason
    }

    /// One record: hand it over, retry `Transient` failures, dead-letter what cannot be applied.
    async fn handle(&mut self, message: OwnedMessage) -> Step {
        let record = consumed_record(&message);
        let trace = Trace::of(&record);
        let mut attempt = 1;
        loop {
            // Not raced against `stop`: a stop lets the actor finish and the answer be committed.
            let answer = self.handler.send(Consume(record.clone())).await;
            match answer {
                Err(e) => {
                    log::error!("consumer {}: handler gone: {e}", self.group_id);
                    return Step::Stop(StopReason::HandlerGone(e.to_string()));
                }
                Ok(Ok(outcome)) => {
                    log::info!(
                        target: "consumer",
                        group = self.group_id.as_str(),
                        event_id = trace.event_id.as_str(),
                        correlation_id = trace.correlation_id.as_str(),
                        record = at(&record).as_str(),
                        outcome:? = outcome;
                        "record consumed"
                    );
                    self.commit(&message);
                    return Step::Continue;
                }
                Ok(Err(e @ ConsumeError::Invalid(_))) => {
                    return self
                        .dead_letter(&message, &trace, e.to_string(), attempt)
                        .await;
                }
                Ok(Err(e @ ConsumeError::Transient(_))) => {
                    if attempt >= self.max_attempts {
                        return self
                            .dead_letter(&message, &trace, e.to_string(), attempt)
                            .await;
                    }
                    log::warn!(
                        target: "consumer",
                        group = self.group_id.as_str(),
                        event_id = trace.event_id.as_str(),
                        correlation_id = trace.correlation_id.as_str(),
                        record = at(&record).as_str();
                        "attempt {attempt}/{} failed: {e}",
                        self.max_attempts
                    );
                    if let Step::Stop(reason) = self.pause(self.backoff(attempt)).await {
                        return Step::Stop(reason);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Puts the record on the dead-letter topic, waits for the acknowledgement, then commits.
    /// A failed dead-letter send is retried (never skipped: committing a record that is neither
    /// applied nor dead-lettered would lose it), so only a broken dead-letter topic blocks.
    async fn dead_letter(
        &mut self,
        message: &OwnedMessage,
        trace: &Trace,
        error: String,
        attempts: u32,
    ) -> Step {
        let letter = DeadLetter::from_message(message, &self.group_id, error, attempts);
        let mut failures = 0;
        loop {
            let sent = tokio::select! {
                biased;
                _ = stop_requested(&mut self.stop) => return Step::Stop(StopReason::Requested),
                sent = self.dead_letters.dead_letter(&self.dead_letter_topic, &letter) => sent,
            };
            match sent {
                Ok((partition, offset)) => {
                    log::warn!(
                        target: "consumer",
                        group = self.group_id.as_str(),
                        event_id = trace.event_id.as_str(),
                        correlation_id = trace.correlation_id.as_str();
                        "{}/{}@{} dead-lettered to {}/{partition}@{offset}: {}",
                        letter.source_topic,
                        letter.source_partition,
                        letter.source_offset,
                        self.dead_letter_topic,
                        letter.error
                    );
                    self.metrics.dead_lettered(&self.group_id);
                    self.commit(message);
                    return Step::Continue;
                }
                Err(e) => {
                    failures += 1;
                    log::error!("consumer {}: dead-letter send failed: {e}", self.group_id);
                    if let Step::Stop(reason) = self.pause(self.backoff(failures)).await {
                        return Step::Stop(reason);
                    }
                }
            }
        }
    }

    /// Commits "read up to and including `message`", without waiting: librdkafka sends commits
    /// in order, and a lost one only means a redelivery, which the actors absorb by `eventId`.
    fn commit(&mut self, message: &OwnedMessage) {
        let next = message.offset() + 1;
        let mut offsets = TopicPartitionList::with_capacity(1);
        let committed = offsets
            .add_partition_offset(message.topic(), message.partition(), Offset::Offset(next))
            .and_then(|()| self.consumer.commit(&offsets, CommitMode::Async));
        if let Err(e) = committed {
            log::warn!("consumer {}: commit failed: {e}", self.group_id);
        }
        self.handled
            .insert((message.topic().to_owned(), message.partition()), next);
    }

    /// On the way out: commits, and waits for, the handled offsets of partitions still assigned
    /// (a revoked partition may already be another member's; its commit is not ours to make).
    fn commit_handled(&self) {
        let assignment = match self.consumer.assignment() {
            Ok(assignment) => assignment,
            Err(e) => {
                log::warn!("consumer {}: no assignment to commit: {e}", self.group_id);
                return;
            }
        };
        let mut offsets = TopicPartitionList::new();
        for owned in assignment.elements() {
            let key = (owned.topic().to_owned(), owned.partition());
            if let Some(next) = self.handled.get(&key) {
                if let Err(e) = offsets.add_partition_offset(&key.0, key.1, Offset::Offset(*next)) {
                    log::warn!("consumer {}: {e}", self.group_id);
                }
            }
        }
        if offsets.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Sync) {
            log::warn!("consumer {}: final commit failed: {e}", self.group_id);
        }
    }

    /// Sleeps `pause` unless a stop is requested first.
    async fn pause(&mut self, pause: Duration) -> Step {
        tokio::select! {
            biased;
            _ = stop_requested(&mut self.stop) => Step::Stop(StopReason::Requested),
            _ = tokio::time::sleep(pause) => Step::Continue,
        }
    }

    /// `retry_backoff`, doubled for each failure after the first, at most [`MAX_BACKOFF`].
    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.retry_backoff
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF)
    }
}

/// Resolves once a stop is asked for, or the handle (the sender) is gone.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Manual commits only, from the start of the topic for a new group (a new consumer group must
/// see the events already published, not just those after it joined).
///
/// `session.timeout.ms` is 10 s rather than librdkafka's 45 s: a router instance that dies
/// hands its partitions to the survivors within seconds, and the embedded cluster (whose group
/// coordinator waits one session timeout before reassigning the partitions of a member that
/// left) lets a restarted consumer resume within seconds. Heartbeats come from librdkafka's
/// own thread every 3 s, so a slow handler does not count against the session.
///
/// Statistics every 5 s are what the lag gauge is made of (`lag.rs`).
fn consumer_config(cfg: &ConsumerConfig) -> ClientConfig {
    let mut config = common_config(&cfg.bootstrap, &cfg.client_id);
    config
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    config
}

/// The record as the actors see it. Key and header values that are not UTF-8 are converted
/// lossily; the dead-letter path keeps the original bytes.
fn consumed_record(message: &OwnedMessage) -> ConsumedRecord {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                    (h.key.to_owned(), value.into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    ConsumedRecord {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        headers,
        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

/// The ids a record's log lines carry, from the relay's headers (`-` when absent).
struct Trace {
    event_id: String,
    correlation_id: String,
}

impl Trace {
    fn of(record: &ConsumedRecord) -> Trace {
        let id = |name| {
            record
                .header(name)
                .filter(|v| !v.is_empty())
                .unwrap_or("-")
                .to_owned()
        };
        Trace {
            event_id: id("eventId"),
            correlation_id: id("correlationId"),
        }
    }
}

fn at(record: &ConsumedRecord) -> String {
    format!("{}/{}@{}", record.topic, record.partition, record.offset)
}

/// Logs what librdkafka does to the group from its callbacks, and turns its statistics into
/// the lag gauge.
struct LoopContext {
    group_id: String,
    lag: LagGauge,
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: Statistics) {
        self.lag.update(&statistics);
    }
}

impl ConsumerContext for LoopContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        log::info!("consumer {}: rebalance: {rebalance:?}", self.group_id);
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            log::warn!(
                "consumer {}: commit of {offsets:?} failed: {e}",
                self.group_id
            );
        }
    }
}
