//! Starting and stopping a consumer loop: one consumer group member that feeds a consumer actor.
//! The loop itself (receive, hand over, retry, dead-letter, commit) is in `runner.rs`.
//!
//! Each loop runs on its own OS thread with a current-thread tokio runtime. The loop blocks on
//! purpose in a few places (a synchronous offset commit when it stops, librdkafka's consumer
//! close), and its own thread keeps those off the actors' and the HTTP server's threads.

use super::runner::ConsumerLoop;
use super::KafkaError;
use actix::Recipient;
use actors::consumers::ConsumeBatch;
use actors::metrics::Metrics;
use actors::routing::DEAD_LETTER_TOPIC;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What one consumer loop reads and where its failures go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub bootstrap: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub dead_letter_topic: String,
    /// Attempts at a record that keeps failing `Transient`ly (the first try included) before it
    /// is dead-lettered. At least 1.
    pub max_attempts: u32,
    /// The pause before the second attempt; it doubles per attempt, up to 30 s. Keep
    /// `max_attempts` and this small enough that all retries of one record fit well inside
    /// librdkafka's `max.poll.interval.ms` (5 min), or the group evicts the member.
    pub retry_backoff: Duration,
    pub client_id: String,
}

impl ConsumerConfig {
    /// A config with the shipped defaults (config.toml): the routed dead-letter topic, 3
    /// attempts, 200 ms first backoff, the group id as client id.
    pub fn new(bootstrap: &str, group_id: &str, topics: Vec<String>) -> ConsumerConfig {
        ConsumerConfig {
            bootstrap: bootstrap.to_owned(),
            group_id: group_id.to_owned(),
            topics,
            dead_letter_topic: DEAD_LETTER_TOPIC.to_owned(),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(200),
            client_id: group_id.to_owned(),
        }
    }

    fn validate(&self) -> Result<(), KafkaError> {
        let problem = if self.topics.is_empty() {
            "no topics to consume"
        } else if self.group_id.is_empty() {
            "empty group id"
        } else if self.dead_letter_topic.is_empty() {
            "empty dead-letter topic"
        } else if self.topics.contains(&self.dead_letter_topic) {
            "the dead-letter topic is one of the consumed topics (a poison record would loop)"
        } else if self.max_attempts == 0 {
            "max_attempts must be at least 1"
        } else {
            return Ok(());
        };
        Err(KafkaError::Config(format!("{}: {problem}", self.group_id)))
    }
}

/// Why a consumer loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// [`ConsumerHandle::stop`] was called or the handle was dropped.
    Requested,
    /// The consumer actor's mailbox is closed; the record in hand was not committed.
    HandlerGone(String),
    /// librdkafka reported a fatal error, or the loop's thread died.
    Failed(String),
}

/// Controls a running consumer loop. Dropping the handle stops the loop too.
pub struct ConsumerHandle {
    group_id: String,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<Option<StopReason>>,
}

impl ConsumerHandle {
    /// Asks the loop to stop. It finishes the record in hand (the actor's answer is awaited and
    /// committed), abandons retry pauses and dead-letter waits without committing, commits what
    /// it handled, and leaves the group. Returns at once; await [`ConsumerHandle::stopped`].
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether the loop has ended, for whatever reason.
    pub fn is_stopped(&self) -> bool {
        self.stopped.borrow().is_some() || self.stopped.has_changed().is_err()
    }

    /// Resolves when the loop has ended (its final commit done, the group left).
    pub async fn stopped(&self) -> StopReason {
        let mut stopped = self.stopped.clone();
        // An error means the thread ended without saying why: it panicked.
        let reason = stopped
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|reason| reason.clone());
        reason.unwrap_or_else(|| StopReason::Failed("the consumer thread died".to_owned()))
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("group_id", &self.group_id)
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// Joins `cfg.group_id`, subscribes to `cfg.topics` and hands every record to `handler`, on a
/// thread of its own, timing each record and counting dead letters and lag into `metrics`.
/// Configuration errors are returned here; no broker is contacted yet.
pub fn spawn_consumer(
    cfg: ConsumerConfig,
    handler: Recipient<ConsumeBatch>,
    metrics: Arc<Metrics>,
) -> Result<ConsumerHandle, KafkaError> {
    cfg.validate()?;
    let group_id = cfg.group_id.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|source| KafkaError::Spawn {
            what: "consumer runtime",
            source,
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (stopped_tx, stopped_rx) = watch::channel(None);
    let consumer_loop = {
        // rdkafka's StreamConsumer spawns a wake-up task on the current runtime when created.
        let _entered = runtime.enter();
        ConsumerLoop::new(cfg, handler, stop_rx, metrics)?
    };
    let thread_group = group_id.clone();
    std::thread::Builder::new()
        .name(format!("kafka-{group_id}"))
        .spawn(move || {
            let reason = runtime.block_on(consumer_loop.run());
            log::info!("consumer {thread_group} stopped: {reason:?}");
            stopped_tx.send_replace(Some(reason));
        })
        .map_err(|source| KafkaError::Spawn {
            what: "consumer thread",
            source,
        })?;
    Ok(ConsumerHandle {
        group_id,
        stop: stop_tx,
        stopped: stopped_rx,
    })
}
