//! The composition root's steps, in the order they run: what each starts and what it hands to
//! the next. [`super::Application::with_listener`] reads as the list of these calls.

use super::kafka::KafkaPath;
use crate::cache;
use crate::cluster::{Cluster, Inbound};
use crate::config::Settings;
use crate::store::{OperationsLog, Store};
use actix::{Actor, Addr};
use actors::consumers::Cache;
use actors::domain::{DomainRules, LocalLedger, NftDomain, ResumeFlows};
use actors::journal::{EventJournal, EventLog, RetentionPruner};
use actors::metrics::Metrics;
use actors::monitoring::{AlertEvaluator, MonitoringReporter, SnapshotSource};
use actors::operations_feed::OperationsFeed;
use actors::registry::SessionRegistry;
use actors::sweeper::HeadSweeper;
use actors::StreamConfig;
use anyhow::Context as _;
use secrecy::ExposeSecret;
use std::sync::Arc;

/// What every later step stands on: the store, the counter cache, this instance's place in
/// the cluster, and its metrics.
pub struct Foundations {
    pub store: Store,
    pub cache: Arc<dyn Cache>,
    pub cache_backend: &'static str,
    pub cluster: Arc<Cluster>,
    pub metrics: Arc<Metrics>,
}

/// Opens the store (running its migrations), the cache and the live bus.
pub async fn open_foundations(settings: &Settings) -> anyhow::Result<Foundations> {
    // Connecting runs the migrations: blocking work, kept off the async thread.
    let (url, pool_size) = (settings.store.url.clone(), settings.store.pool_size.get());
    let sync = settings.store.sqlite_synchronous;
    let store = tokio::task::spawn_blocking(move || {
        Store::connect_with(url.expose_secret(), pool_size, sync)
    })
    .await
    .context("the store connection task failed")?
    .context("cannot open the event store (key `store.url`)")?;
    log::info!("event store: {}", store.backend());
    let cache_url = settings.redis.url();
    let cache = cache::open(cache_url, &settings.redis.key_prefix)
        .context("cannot set up the cache (key `redis.url`)")?;
    let cluster = Arc::new(Cluster::open(settings).await?);
    log::info!(
        "instance {} (live bus: {})",
        cluster.instance_id(),
        cluster.bus_status().backend
    );
    let metrics = Arc::new(
        Metrics::for_instance(cluster.instance_id()).context("cannot define the metrics")?,
    );
    Ok(Foundations {
        store,
        cache,
        cache_backend: cache::backend_name(cache_url),
        cluster,
        metrics,
    })
}

/// The two stream registries: users' own streams over the event log, and the admin
/// operations feed over its table, with the tailer that moves the feed on.
pub struct Registries {
    pub users: Addr<SessionRegistry>,
    pub operations: Addr<SessionRegistry>,
    pub feed: Addr<OperationsFeed>,
}

pub fn start_registries(settings: &Settings, base: &Foundations) -> Registries {
    let bus = base.cluster.bus();
    let users = SessionRegistry::new(settings.stream_config(), Arc::new(base.store.clone()))
        .with_bus(bus.clone())
        .with_metrics(base.metrics.clone())
        .start();
    // Admins see every event type on the feed.
    let feed_config = StreamConfig {
        hidden_types: Vec::new(),
        ..settings.stream_config()
    };
    let feed_log: Arc<dyn EventLog> = Arc::new(OperationsLog(base.store.clone()));
    let operations = SessionRegistry::new(feed_config, feed_log.clone())
        .with_metrics(base.metrics.clone())
        .start();
    // Nudged by the operations consumer (here, or on another instance over the bus).
    let feed = OperationsFeed::new(feed_log, operations.clone(), settings.monitoring.feed_poll)
        .with_bus(bus)
        .start();
    Registries {
        users,
        operations,
        feed,
    }
}

/// The two delivery paths of an accepted event: the journal that stores it and fans it out,
/// and the Kafka half (relay and consumers). In a cluster, the bus's inbound side too.
pub struct Delivery {
    pub journal: Addr<EventJournal>,
    pub kafka: KafkaPath,
}

pub async fn start_delivery(
    settings: &Settings,
    base: &Foundations,
    registries: &Registries,
) -> anyhow::Result<Delivery> {
    let bus = base.cluster.bus();
    let kafka = KafkaPath::start(
        settings,
        &base.store,
        base.cache.clone(),
        registries.feed.clone().recipient(),
        &base.cluster,
        &base.metrics,
    )
    .await?;
    let event_log: Arc<dyn EventLog> = Arc::new(base.store.clone());
    let journal = EventJournal::new(event_log.clone(), registries.users.clone().recipient())
        .notify_committed(kafka.relay.clone().recipient())
        .with_bus(bus.clone())
        .with_metrics(base.metrics.clone())
        .start();
    if bus.is_shared() {
        let sweeper =
            HeadSweeper::new(event_log, registries.users.clone(), settings.cluster.sweep).start();
        base.cluster.start(
            Inbound {
                events: registries.users.clone().recipient(),
                feed: registries.feed.clone().recipient(),
                outbox: kafka.relay.clone().recipient(),
                sweep: sweeper.recipient(),
            },
            registries.users.clone(),
        )?;
    }
    Ok(Delivery { journal, kafka })
}

/// The NFT domain over the local ledger, with the flows a previous run left pending resumed
/// or compensated before any request arrives.
pub struct Domain {
    pub rules: Arc<DomainRules>,
    pub actor: Addr<NftDomain>,
}

pub async fn start_domain(
    settings: &Settings,
    base: &Foundations,
    journal: &Addr<EventJournal>,
) -> anyhow::Result<Domain> {
    let rules = Arc::new(settings.domain_rules()?);
    let chain = Arc::new(LocalLedger::new(
        Arc::new(base.store.clone()),
        settings.ledger_faults(),
    ));
    let actor = NftDomain::new(
        rules.clone(),
        Arc::new(base.store.clone()),
        journal.clone(),
        chain,
        base.cache.clone(),
        settings.flow_policy(),
    )
    .start();
    match actor.send(ResumeFlows).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => log::info!("resuming {n} interrupted flow(s)"),
        Ok(Err(e)) => log::warn!("cannot read interrupted flows: {e}"),
        Err(_) => log::warn!("the NFT domain stopped before resuming flows"),
    }
    Ok(Domain { rules, actor })
}

/// Pruning of both logs, and the router watching itself: periodic summaries and alerts,
/// posted on the operations feed through the journal.
pub fn start_housekeeping(settings: &Settings, base: &Foundations, journal: &Addr<EventJournal>) {
    let store = &settings.store;
    let logs: [Arc<dyn EventLog>; 2] = [
        Arc::new(base.store.clone()),
        Arc::new(OperationsLog(base.store.clone())),
    ];
    for log in logs {
        RetentionPruner::new(log, store.retention, store.prune_interval).start();
    }
    let snapshots: SnapshotSource = {
        let metrics = base.metrics.clone();
        Arc::new(move || metrics.snapshot())
    };
    MonitoringReporter::new(
        snapshots.clone(),
        journal.clone(),
        settings.monitoring.report_interval,
    )
    .start();
    AlertEvaluator::new(settings.alert_rules(), snapshots, journal.clone()).start();
}
