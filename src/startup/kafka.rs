//! Starting the Kafka half of delivery (the routing table, docs/KAFKA.md, and the delivery
//! guarantees, docs/DELIVERY.md): the broker (embedded or real), its topics, the outbox relay
//! that publishes the journal, and the four consumer groups that feed the analytics,
//! notification, audit and operations-feed actors.

use crate::cluster::Cluster;
use crate::config::Settings;
use crate::kafka::{
    ensure_topics, spawn_consumer, ConsumerConfig, ConsumerHandle, KafkaCluster, KafkaSink,
};
use crate::store::Store;
use actix::{Actor, Addr};
use actors::consumers::{
    AnalyticsConsumer, AuditConsumer, Cache, NotificationConsumer, OperationsConsumer,
    ANALYTICS_GROUP, AUDIT_GROUP, NOTIFICATIONS_GROUP, OPERATIONS_GROUP,
};
use actors::metrics::Metrics;
use actors::operations_feed::FeedMoved;
use actors::outbox::OutboxRelay;
use anyhow::Context as _;
use std::sync::Arc;

/// The running Kafka half. Dropping it stops the consumer loops.
pub struct KafkaPath {
    pub broker: Arc<KafkaCluster>,
    pub relay: Addr<OutboxRelay>,
    consumers: Vec<ConsumerHandle>,
}

impl KafkaPath {
    /// Connects (or starts the embedded cluster), makes sure every topic exists, and starts the
    /// relay and the consumers.
    pub async fn start(
        settings: &Settings,
        store: &Store,
        cache: Arc<dyn Cache>,
        feed: actix::Recipient<FeedMoved>,
        cluster: &Cluster,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<KafkaPath> {
        let kafka = &settings.kafka;
        let broker = Arc::new(
            KafkaCluster::start(&kafka.brokers)
                .context("cannot start Kafka (key `kafka.brokers`)")?,
        );
        log::info!("kafka bootstrap servers: {}", broker.bootstrap());
        ensure_topics(&broker, &kafka.topics.partitions())
            .await
            .context("cannot create the Kafka topics")?;

        let sink = KafkaSink::new(broker.bootstrap(), &kafka.client_id)
            .context("cannot create the Kafka producer")?;
        let routing = settings.routing_table()?;
        // In a cluster only the holder of the relay turn publishes the shared outbox.
        let relay = OutboxRelay::new(Arc::new(store.clone()), Arc::new(sink), routing)
            .shared(cluster.relay_turn(), cluster.bus())
            .with_metrics(metrics.clone())
            .start();

        let names = &kafka.topics;
        let store = Arc::new(store.clone());
        let groups = [
            (
                ANALYTICS_GROUP,
                vec![names.analytics.name.clone(), names.operations.name.clone()],
                AnalyticsConsumer::new(store.clone(), cache)
                    .start()
                    .recipient(),
            ),
            (
                NOTIFICATIONS_GROUP,
                vec![
                    names.user_events.name.clone(),
                    names.notifications.name.clone(),
                ],
                NotificationConsumer::new(store.clone()).start().recipient(),
            ),
            (
                AUDIT_GROUP,
                vec![names.operations.name.clone()],
                AuditConsumer::new(store.clone()).start().recipient(),
            ),
            (
                OPERATIONS_GROUP,
                vec![names.operations.name.clone()],
                OperationsConsumer::new(store.clone())
                    .notify(feed)
                    .start()
                    .recipient(),
            ),
        ];
        let mut consumers = Vec::new();
        for (group, topics, handler) in groups {
            let mut config = ConsumerConfig::new(broker.bootstrap(), group, topics);
            config.dead_letter_topic = names.dead_letter.name.clone();
            config.max_attempts = kafka.consumer_max_attempts.get();
            config.retry_backoff = kafka.consumer_retry_backoff;
            config.client_id = format!("{}-{group}", kafka.client_id);
            consumers.push(
                spawn_consumer(config, handler, metrics.clone())
                    .with_context(|| format!("cannot start consumer group {group}"))?,
            );
        }
        Ok(KafkaPath {
            broker,
            relay,
            consumers,
        })
    }

    /// Stops the consumer loops (offsets of finished records are already committed).
    pub fn stop(&self) {
        for consumer in &self.consumers {
            consumer.stop();
        }
    }
}
