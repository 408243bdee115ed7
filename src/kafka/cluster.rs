//! Which Kafka the router talks to: a real cluster named by its bootstrap list, or an embedded
//! one (librdkafka's mock cluster) that speaks the real wire protocol on loopback.
//!
//! # Why the mock cluster lives on its own thread
//!
//! `rdkafka::mocking::MockCluster` holds a raw pointer, so it is neither `Send` nor `Sync`, yet
//! the broker has to sit in shared application state. Rather than assert thread safety with an
//! `unsafe impl`, [`KafkaCluster`] starts one owner thread that creates the cluster, keeps it, and runs
//! closures sent to it ([`KafkaCluster::with_mock`]). The cluster never leaves that thread; dropping the
//! `KafkaCluster` closes the channel, and the thread destroys the cluster and ends.

use super::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The embedded cluster's type, as handed to [`KafkaCluster::with_mock`] closures.
pub type Mock = MockCluster<'static, DefaultProducerContext>;

/// The value of `kafka.brokers` that asks for the in-process cluster.
pub const EMBEDDED: &str = "embedded";

/// Which Kafka to use, as configured (`kafka.brokers`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Brokers {
    /// An in-process cluster of three brokers on loopback.
    Embedded,
    /// A real cluster's bootstrap list, `host:port` entries separated by commas.
    Bootstrap(String),
}

impl TryFrom<String> for Brokers {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.trim() {
            "" => Err("must be \"embedded\" or a bootstrap list like \"k1:9092,k2:9092\""),
            EMBEDDED => Ok(Brokers::Embedded),
            list => Ok(Brokers::Bootstrap(list.to_owned())),
        }
    }
}

/// How many brokers the embedded cluster has: enough for `acks=all` and leader spread to mean
/// something, few enough to start in milliseconds.
const EMBEDDED_BROKERS: i32 = 3;

type MockJob = Box<dyn FnOnce(&Mock) + Send>;

/// The Kafka cluster in use. Cheap to share behind an `Arc`; `Send + Sync`.
pub struct KafkaCluster {
    bootstrap: String,
    embedded: Option<EmbeddedCluster>,
}

/// The owner thread of the mock cluster and the channel that feeds it work.
struct EmbeddedCluster {
    jobs: Option<mpsc::Sender<MockJob>>,
    owner: Option<JoinHandle<()>>,
}

impl KafkaCluster {
    /// Starts the embedded cluster, or names a real one (nothing is contacted yet).
    pub fn start(brokers: &Brokers) -> Result<KafkaCluster, KafkaError> {
        if let Brokers::Bootstrap(list) = brokers {
            return Ok(KafkaCluster {
                bootstrap: list.clone(),
                embedded: None,
            });
        }
        let (embedded, bootstrap) = EmbeddedCluster::start()?;
        log::info!("embedded kafka cluster listening on {bootstrap}");
        Ok(KafkaCluster {
            bootstrap,
            embedded: Some(embedded),
        })
    }

    /// The bootstrap servers clients connect to (the mock's loopback listeners when embedded).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Runs `f` against the embedded cluster on its owner thread and returns its result: topic
    /// creation, and fault injection in tests (`request_errors`, `broker_down`, `broker_up`).
    /// Blocks the caller until `f` has run; mock operations take microseconds.
    pub fn with_mock<R, F>(&self, f: F) -> Result<R, KafkaError>
    where
        R: Send + 'static,
        F: FnOnce(&Mock) -> R + Send + 'static,
    {
        let embedded = self
            .embedded
            .as_ref()
            .ok_or_else(|| KafkaError::NotEmbedded(self.bootstrap.clone()))?;
        embedded.run(f)
    }
}

impl std::fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCluster")
            .field("bootstrap", &self.bootstrap)
            .field("embedded", &self.is_embedded())
            .finish()
    }
}

impl EmbeddedCluster {
    /// Starts the owner thread and waits until the cluster is up (or failed to start).
    fn start() -> Result<(EmbeddedCluster, String), KafkaError> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<MockJob>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, KafkaError>>();
        let owner = std::thread::Builder::new()
            .name("kafka-embedded".into())
            .spawn(move || {
                let cluster = match MockCluster::new(EMBEDDED_BROKERS) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Runs until every sender is gone, i.e. the KafkaCluster was dropped.
                for job in jobs_rx {
                    job(&cluster);
                }
                drop(cluster);
                log::debug!("embedded kafka cluster destroyed");
            })
            .map_err(|source| KafkaError::Spawn {
                what: "embedded kafka thread",
                source,
            })?;
        let bootstrap = ready_rx.recv().map_err(|_| KafkaError::EmbeddedStopped)??;
        let cluster = EmbeddedCluster {
            jobs: Some(jobs_tx),
            owner: Some(owner),
        };
        Ok((cluster, bootstrap))
    }

    fn run<R, F>(&self, f: F) -> Result<R, KafkaError>
    where
        R: Send + 'static,
        F: FnOnce(&Mock) -> R + Send + 'static,
    {
        let jobs = self.jobs.as_ref().ok_or(KafkaError::EmbeddedStopped)?;
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job: MockJob = Box::new(move |cluster| {
            let _ = reply_tx.send(f(cluster));
        });
        jobs.send(job).map_err(|_| KafkaError::EmbeddedStopped)?;
        reply_rx.recv().map_err(|_| KafkaError::EmbeddedStopped)
    }
}

impl Drop for EmbeddedCluster {
    /// Closes the job channel and waits for the owner thread, so the cluster's listeners are
    /// closed when the `KafkaCluster` is gone (tests start many clusters one after another).
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(owner) = self.owner.take() {
            if owner.join().is_err() {
                log::error!("embedded kafka thread panicked");
            }
        }
    }
}
