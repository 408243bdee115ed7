//! The Kafka path of a run: one consumer reads the topics the published event type is routed
//! to, and for every record of the run notes when it was seen on the broker, so the report
//! puts "accepted → record on the broker" beside "accepted → first SSE frame" for the same
//! events.
//!
//! The router writes each event to its journal and, in the same commit, hands it to the
//! user's streams; the outbox relay publishes it to Kafka after that, independently. The SSE
//! frame does not wait for the broker, so "record → frame" is usually negative: it is reported
//! signed, as measured, not folded into the one-way histograms.
//!
//! The consumer is assigned every partition of its topics at the high watermark read before
//! publishing starts: it sees every record the run produces and none from before. Its group id
//! is unique and it commits nothing, so it joins no group and disturbs none of the router's.

use crate::probe::Clock;
use crate::report::{KafkaFigures, LatencyFigures, SignedFigures};
use crate::subscriber::{latency_histogram, number_after, EVENT_INDEX, SENT_AT};
use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where the router routes `volume_milestone_reached`, the type the publisher sends
/// (`[routing]` in `config.toml`; the routing table, docs/KAFKA.md).
pub const DEFAULT_TOPICS: &[&str] = &["nft-analytics-topic"];

/// `--kafka-brokers` value that asks the router's `/readyz` for its bootstrap servers (the
/// embedded cluster listens on ports chosen at start-up).
pub const BROKERS_FROM_READYZ: &str = "readyz";

/// How long the consumer's fetch may wait on the broker for data. librdkafka's mock cluster
/// (the router's embedded Kafka) answers an empty fetch only after this whole wait, even if a
/// record arrives meanwhile, so the default 500 ms would be measured as broker latency. A real
/// broker answers as soon as data arrives; there a short wait only costs requests.
const FETCH_WAIT_MS: &str = "1";
/// Metadata and watermark requests made before publishing starts.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one poll blocks before the consumer checks whether it should stop.
const POLL: Duration = Duration::from_millis(50);
/// Runs longer than this many events are refused: the consumer keeps a slot per event.
pub const MAX_EVENTS: u64 = 20_000_000;

/// Which brokers and topics to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPlan {
    /// `HOST:PORT[,HOST:PORT…]`, or [`BROKERS_FROM_READYZ`].
    pub brokers: String,
    pub topics: Vec<String>,
}

impl KafkaPlan {
    /// The default topics on `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaPlan {
            brokers: brokers.into(),
            topics: DEFAULT_TOPICS.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

/// The bootstrap servers `brokers` names: itself, or with [`BROKERS_FROM_READYZ`] those the
/// router at `base_url` reports in `/readyz` (`checks.kafka.bootstrapServers`).
pub async fn resolve_brokers(brokers: &str, base_url: &str) -> anyhow::Result<String> {
    if brokers != BROKERS_FROM_READYZ {
        return Ok(brokers.to_owned());
    }
    let url = format!("{base_url}/readyz");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(SETUP_TIMEOUT)
        .build()
        .context("building the readiness HTTP client")?;
    let body = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("asking {url} for the Kafka bootstrap servers"))?
        .bytes()
        .await
        .with_context(|| format!("reading {url}"))?;
    let ready: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("{url} did not answer JSON"))?;
    match ready["checks"]["kafka"]["bootstrapServers"].as_str() {
        Some(bootstrap) if !bootstrap.is_empty() => Ok(bootstrap.to_owned()),
        _ => bail!("{url} names no checks.kafka.bootstrapServers: {ready}"),
    }
}

/// What the consumer thread gathered.
struct Observed {
    /// When the watch started: a record sent before it is an earlier run's, still being
    /// relayed, whose index would otherwise pass for one of this run's.
    since_us: u64,
    /// Per topic, per event index: when its record was first seen (0: not seen).
    seen_us: Vec<Vec<u64>>,
    /// Per event index: the send time its record carried (0: no record seen).
    sent_us: Vec<u64>,
    /// Send → record seen, one value per distinct record.
    latency: Histogram<u64>,
    duplicates: u64,
    foreign: u64,
    errors: u64,
    first_error: Option<String>,
}

/// A consumer reading the run's topics on its own thread.
pub struct KafkaWatch {
    brokers: String,
    topics: Vec<String>,
    group_id: String,
    /// Distinct records of the run seen so far (the drain waits on it).
    records: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Taken by [`KafkaWatch::finish`].
    thread: Option<JoinHandle<Observed>>,
}

/// A run that fails half-way drops its watch: the consumer thread must not poll on forever.
impl Drop for KafkaWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl KafkaWatch {
    /// Assigns the consumer at the current end of every partition of `topics` and starts
    /// reading; `events` is the most events the run can publish. Blocks on the broker: call it
    /// off the runtime's worker threads.
    pub fn start(
        brokers: &str,
        topics: &[String],
        events: usize,
        clock: Clock,
    ) -> anyhow::Result<KafkaWatch> {
        let group_id = format!(
            "loadgen-{}-{}",
            std::process::id(),
            clock.now_us() % 1_000_000_000_000
        );
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", &group_id)
            .set("client.id", &group_id)
            .set("auto.offset.reset", "latest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", FETCH_WAIT_MS)
            .create()
            .with_context(|| format!("creating a Kafka consumer for {brokers}"))?;
        let assignment = assignment_at_end(&consumer, topics)
            .with_context(|| format!("reading the partitions of {topics:?} on {brokers}"))?;
        consumer
            .assign(&assignment)
            .context("assigning the Kafka partitions")?;
        let observed = Observed {
            since_us: clock.now_us(),
            seen_us: vec![vec![0; events]; topics.len()],
            sent_us: vec![0; events],
            latency: latency_histogram()?,
            duplicates: 0,
            foreign: 0,
            errors: 0,
            first_error: None,
        };
        let records = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (records, stop, topics) = (records.clone(), stop.clone(), topics.to_vec());
            std::thread::Builder::new()
                .name("loadgen-kafka".into())
                .spawn(move || consume(consumer, &topics, observed, clock, &records, &stop))
                .context("starting the Kafka consumer thread")?
        };
        Ok(KafkaWatch {
            brokers: brokers.to_owned(),
            topics: topics.to_vec(),
            group_id,
            records,
            stop,
            thread: Some(thread),
        })
    }

    /// Distinct records of the run seen so far.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Records the accepted events call for: one per event and topic.
    pub fn expected(&self, accepted: u64) -> u64 {
        accepted * self.topics.len() as u64
    }

    /// Stops the consumer and sets what it saw against the accepted events and the first SSE
    /// frame of each (`first_frame_us`, `u64::MAX` where none came). Blocks until the consumer
    /// thread ends (within one poll).
    pub fn finish(
        mut self,
        accepted_indexes: &[u64],
        first_frame_us: &[AtomicU64],
    ) -> anyhow::Result<(Option<LatencyFigures>, KafkaFigures)> {
        self.stop.store(true, Ordering::Relaxed);
        let observed = self
            .thread
            .take()
            .context("the Kafka consumer was already stopped")?
            .join()
            .map_err(|_| anyhow::anyhow!("the Kafka consumer thread panicked"))?;
        let mut accepted = vec![false; observed.sent_us.len()];
        let mut figures = KafkaFigures {
            brokers: std::mem::take(&mut self.brokers),
            topics: std::mem::take(&mut self.topics),
            group_id: std::mem::take(&mut self.group_id),
            expected: 0,
            records: 0,
            missing: 0,
            duplicates: observed.duplicates,
            unexpected: 0,
            foreign: observed.foreign,
            consumer_errors: observed.errors,
            first_consumer_error: observed.first_error,
            events_on_both: 0,
            sse_latency_us: None,
            record_to_frame_us: None,
        };
        for &index in accepted_indexes {
            match accepted.get_mut(index as usize) {
                Some(slot) => *slot = true,
                // Beyond the slots: planned wrongly; count every topic's record as missing.
                None => figures.missing += figures.topics.len() as u64,
            }
        }
        figures.expected = accepted_indexes.len() as u64 * figures.topics.len() as u64;
        let mut sse_latency = latency_histogram()?;
        let mut record_to_frame = Vec::new();
        for (index, &was_accepted) in accepted.iter().enumerate() {
            let mut first_record = u64::MAX;
            for seen in &observed.seen_us {
                match (seen[index], was_accepted) {
                    (0, true) => figures.missing += 1,
                    (0, false) => {}
                    (at, true) => {
                        figures.records += 1;
                        first_record = first_record.min(at);
                    }
                    (_, false) => figures.unexpected += 1,
                }
            }
            let frame = first_frame_us
                .get(index)
                .map_or(u64::MAX, |f| f.load(Ordering::Relaxed));
            if first_record == u64::MAX || frame == u64::MAX {
                continue;
            }
            figures.events_on_both += 1;
            let sent = observed.sent_us[index];
            sse_latency.saturating_record(frame.saturating_sub(sent).max(1));
            record_to_frame.push(frame as i64 - first_record as i64);
        }
        figures.sse_latency_us = LatencyFigures::from_histogram(&sse_latency);
        figures.record_to_frame_us = SignedFigures::from_values(record_to_frame);
        Ok((LatencyFigures::from_histogram(&observed.latency), figures))
    }
}

/// Every partition of `topics`, each at its high watermark (where the next record will go).
fn assignment_at_end(
    consumer: &BaseConsumer,
    topics: &[String],
) -> anyhow::Result<TopicPartitionList> {
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), SETUP_TIMEOUT)
            .with_context(|| format!("metadata of {topic}"))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            bail!("the broker does not know topic {topic}");
        };
        if let Some(e) = found.error() {
            bail!(
                "topic {topic}: {}",
                rdkafka::types::RDKafkaErrorCode::from(e)
            );
        }
        if found.partitions().is_empty() {
            bail!("topic {topic} has no partitions");
        }
        for partition in found.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), SETUP_TIMEOUT)
                .with_context(|| format!("watermarks of {topic} [{}]", partition.id()))?;
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Offset(high))
                .with_context(|| format!("assigning {topic} [{}]", partition.id()))?;
        }
    }
    Ok(assignment)
}

/// The consumer thread: polls until told to stop, noting each record of the run once.
fn consume(
    consumer: BaseConsumer,
    topics: &[String],
    mut observed: Observed,
    clock: Clock,
    records: &AtomicU64,
    stop: &AtomicBool,
) -> Observed {
    while !stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(POLL) {
            None => continue,
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                observed.errors += 1;
                observed.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        let seen_at = clock.now_us();
        let topic = topics.iter().position(|t| t == message.topic());
        let payload = message.payload().unwrap_or_default();
        if observed.note(topic, payload, seen_at) {
            records.fetch_add(1, Ordering::Relaxed);
        }
    }
    observed
}

impl Observed {
    /// Notes one record seen at `seen_at`; true if it is the first of its event on its topic.
    fn note(&mut self, topic: Option<usize>, payload: &[u8], seen_at: u64) -> bool {
        let sent = number_after(&SENT_AT, payload);
        let index = number_after(&EVENT_INDEX, payload);
        let (Some(topic), Some(sent), Some(index)) = (topic, sent, index) else {
            self.foreign += 1;
            return false;
        };
        let (sent, index) = (sent as u64, index as usize);
        if sent < self.since_us {
            self.foreign += 1;
            return false;
        }
        let Some(slot) = self.seen_us[topic].get_mut(index) else {
            self.foreign += 1;
            return false;
        };
        if *slot != 0 {
            self.duplicates += 1;
            return false;
        }
        *slot = seen_at.max(1);
        self.sent_us[index] = sent;
        self.latency
            .saturating_record(seen_at.saturating_sub(sent).max(1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(topics: usize, events: usize) -> Observed {
        Observed {
            since_us: 500,
            seen_us: vec![vec![0; events]; topics],
            sent_us: vec![0; events],
            latency: latency_histogram().expect("histogram"),
            duplicates: 0,
            foreign: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn record(sent: u64, index: u64) -> String {
        format!(
            r#"{{"eventId":"e","eventType":"volume_milestone_reached","userId":"lg-1","data":{{"previousVolume":{sent}.0,"currentVolume":{index}.0,"milestone":100000.0,"tierUnlocked":1}}}}"#
        )
    }

    #[test]
    fn each_record_of_the_run_is_noted_once_and_strangers_are_foreign() {
        let mut o = observed(1, 4);
        assert!(o.note(Some(0), record(1_000, 2).as_bytes(), 1_700));
        assert!(!o.note(Some(0), record(1_000, 2).as_bytes(), 1_900));
        assert!(!o.note(Some(0), br#"{"eventType":"badge_earned"}"#, 2_000));
        assert!(!o.note(Some(0), record(1_000, 9).as_bytes(), 2_000));
        assert!(!o.note(None, record(1_000, 1).as_bytes(), 2_000));
        assert!(
            !o.note(Some(0), record(400, 1).as_bytes(), 2_000),
            "an earlier run's"
        );
        assert_eq!(o.seen_us[0], vec![0, 0, 1_700, 0]);
        assert_eq!(o.sent_us[2], 1_000);
        assert_eq!(o.duplicates, 1);
        assert_eq!(o.foreign, 4);
        assert_eq!(o.latency.len(), 1);
        assert_eq!(o.latency.max(), 700);
    }
}
