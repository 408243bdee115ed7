//! The consumer loop: receive records, hand them to the consumer actor as one batch, and only
//! once the actor answered, commit their offsets. `run` loops; `handle` is one batch's whole
//! life.
//!
//! The delivery guarantees (docs/DELIVERY.md): an offset is committed only after the actor applied
//! the record (or after the record is safely on the dead-letter topic), so a crash redelivers
//! rather than loses; a record that keeps failing is dead-lettered and committed, so it never
//! blocks its partition. A batch is applied in order and a transient failure is retried from
//! the failed record on, which keeps each partition's order.

use super::consumer::{ConsumerConfig, StopReason};
use super::dead_letter::DeadLetter;
use super::lag::{LagGauge, STATISTICS_INTERVAL_MS};
use super::{common_config, KafkaError, KafkaSink};
use actix::Recipient;
use actors::consumers::{ConsumeBatch, ConsumeError, ConsumedRecord};
use actors::metrics::Metrics;
use futures_util::FutureExt;
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

/// The most records handed to the consumer actor at once.
const MAX_BATCH: usize = 256;
/// How long a stop waits for a dead-letter send already in flight. Long enough for a healthy
/// broker's acknowledgement, so a stop mid-batch still commits the records after the letter;
/// short enough that a broken dead-letter topic does not hold the shutdown.
const DEAD_LETTER_STOP_GRACE: Duration = Duration::from_secs(3);

/// What handling one record led to.
enum Step {
    Continue,
    Stop(StopReason),
}

pub(super) struct ConsumerLoop {
    consumer: StreamConsumer<LoopContext>,
    handler: Recipient<ConsumeBatch>,
    dead_letters: KafkaSink,
    group_id: String,
    dead_letter_topic: String,
    max_attempts: u32,
    retry_backoff: Duration,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    /// The next offset to read, per partition, of every record handled: what a clean stop
    /// commits synchronously (the per-batch commits are asynchronous).
    handled: HashMap<(String, i32), i64>,
    /// The same, for the records handled since the last commit.
    settled: HashMap<(String, i32), i64>,
}

impl ConsumerLoop {
    /// Creates the consumer and the dead-letter producer and subscribes. Must be called inside
    /// the tokio runtime that will run the loop.
    pub(super) fn new(
        cfg: ConsumerConfig,
        handler: Recipient<ConsumeBatch>,
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
            settled: HashMap::new(),
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
                Ok(first) => {
                    let (batch, error) = self.ready_after(first);
                    let (started, records) = (Instant::now(), batch.len());
                    let step = self.handle(batch).await;
                    if let Step::Continue = step {
                        let took = started.elapsed();
                        for _ in 0..records {
                            self.metrics.consumer_processed(&self.group_id, took);
                        }
                    }
                    match (step, error) {
                        (Step::Continue, Some(e)) => self.on_error(e).await,
                        (step, _) => step,
                    }
                }
                Err(e) => self.on_error(e).await,
            };
            if let Step::Stop(reason) = step {
                break reason;
            }
        };
        self.commit_handled();
        reason
    }

    /// `first` and the records already waiting behind it, up to [`MAX_BATCH`], without waiting
    /// for more: a batch is what arrived while the previous one was being applied, so it adds
    /// no delay when records are few and saves a commit per record when they are many. An
    /// error met on the way is handed back, to be dealt with after the batch.
    fn ready_after(&self, first: OwnedMessage) -> (Vec<OwnedMessage>, Option<RdKafkaError>) {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(message.detach()),
                Some(Err(e)) => return (batch, Some(e)),
                None => break,
            }
        }
        (batch, None)
    }

    /// A receive error: a fatal one stops the loop; any other (brokers down, a topic not
    /// there yet, ...) librdkafka recovers from by itself, after a short pause here.
    async fn on_error(&mut self, error: RdKafkaError) -> Step {
        if let RdKafkaError::MessageConsumptionFatal(code) = error {
            return Step::Stop(StopReason::Failed(code.to_string()));
        }
        log::warn!("consumer {}: {error}", self.group_id);
        self.pause(Duration::from_millis(100)).await
    }

    /// One batch: hand it over, retry from a `Transient` failure on, dead-letter what cannot
    /// be applied, and commit what was settled.
    async fn handle(&mut self, messages: Vec<OwnedMessage>) -> Step {
        let records: Vec<ConsumedRecord> = messages.iter().map(consumed_record).collect();
        // `next` is the first record not settled yet; `attempt` counts the tries at it.
        let (mut next, mut attempt) = (0, 1);
        while next < records.len() {
            // Not raced against `stop`: a stop lets the actor finish and the answer be committed.
            let answers = self
                .handler
                .send(ConsumeBatch(records[next..].to_vec()))
                .await;
            let answers = match answers {
                Ok(answers) => answers,
                Err(e) => {
                    log::error!("consumer {}: handler gone: {e}", self.group_id);
                    self.commit_settled();
                    return Step::Stop(StopReason::HandlerGone(e.to_string()));
                }
            };
            let mut failure = None;
            let answered = answers.len().min(records.len() - next);
            for answer in answers.into_iter().take(answered) {
                let (message, record) = (&messages[next], &records[next]);
                let trace = Trace::of(record);
                match answer {
                    Ok(outcome) => {
                        log::info!(
                            target: "consumer",
                            group = self.group_id.as_str(),
                            event_id = trace.event_id.as_str(),
                            correlation_id = trace.correlation_id.as_str(),
                            record = at(record).as_str(),
                            outcome:? = outcome;
                            "record consumed"
                        );
                        self.settle(message);
                    }
                    Err(e @ ConsumeError::Invalid(_)) => {
                        self.commit_settled();
                        if let Step::Stop(reason) = self
                            .dead_letter(message, &trace, e.to_string(), attempt)
                            .await
                        {
                            return Step::Stop(reason);
                        }
                    }
                    Err(ConsumeError::Transient(e)) => {
                        failure = Some(e);
                        break;
                    }
                }
                (next, attempt) = (next + 1, 1);
            }
            if answered == 0 && failure.is_none() {
                failure = Some("the consumer answered no record".to_owned());
            }
            let Some(failure) = failure else { continue };
            self.commit_settled();
            let (message, record) = (&messages[next], &records[next]);
            let trace = Trace::of(record);
            let error = ConsumeError::Transient(failure).to_string();
            if attempt >= self.max_attempts {
                if let Step::Stop(reason) = self.dead_letter(message, &trace, error, attempt).await
                {
                    return Step::Stop(reason);
                }
                (next, attempt) = (next + 1, 1);
                continue;
            }
            log::warn!(
                target: "consumer",
                group = self.group_id.as_str(),
                event_id = trace.event_id.as_str(),
                correlation_id = trace.correlation_id.as_str(),
                record = at(record).as_str();
                "attempt {attempt}/{} failed: {error}",
                self.max_attempts
            );
            if let Step::Stop(reason) = self.pause(self.backoff(attempt)).await {
                return Step::Stop(reason);
            }
            attempt += 1;
        }
        self.commit_settled();
        Step::Continue
    }

    /// Puts the record on the dead-letter topic, waits for the acknowledgement, then commits.
    /// A failed dead-letter send is retried (never skipped: committing a record that is neither
    /// applied nor dead-lettered would lose it), so only a broken dead-letter topic blocks. A stop
    /// lets a send in flight finish for a moment, so the records after it still commit.
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
            let sent = {
                let send = self
                    .dead_letters
                    .dead_letter(&self.dead_letter_topic, &letter);
                tokio::pin!(send);
                tokio::select! {
                    biased;
                    sent = &mut send => sent,
                    _ = stop_requested(&mut self.stop) => {
                        match tokio::time::timeout(DEAD_LETTER_STOP_GRACE, &mut send).await {
                            Ok(sent) => sent,
                            Err(_) => return Step::Stop(StopReason::Requested),
                        }
                    }
                }
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
                    self.settle(message);
                    self.commit_settled();
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

    /// Notes "read up to and including `message`", to be committed by the next
    /// [`commit_settled`](ConsumerLoop::commit_settled).
    fn settle(&mut self, message: &OwnedMessage) {
        let next = message.offset() + 1;
        let key = (message.topic().to_owned(), message.partition());
        self.settled.insert(key.clone(), next);
        self.handled.insert(key, next);
    }

    /// Commits the settled records' offsets, one commit for the batch, without waiting:
    /// librdkafka sends commits in order, and a lost one only means a redelivery, which the
    /// actors absorb by `eventId`.
    fn commit_settled(&mut self) {
        if self.settled.is_empty() {
            return;
        }
        let mut offsets = TopicPartitionList::with_capacity(self.settled.len());
        let mut added = Ok(());
        for ((topic, partition), next) in self.settled.drain() {
            added =
                added.and(offsets.add_partition_offset(&topic, partition, Offset::Offset(next)));
        }
        if let Err(e) = added.and_then(|()| self.consumer.commit(&offsets, CommitMode::Async)) {
            log::warn!("consumer {}: commit failed: {e}", self.group_id);
        }
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
