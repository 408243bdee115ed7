//! Creates the routed topics at start-up if they are missing.
//!
//! The embedded cluster does not answer the CreateTopics admin request (librdkafka 2.12's mock
//! broker lets it time out), so there topics are made through the mock's own API. A bootstrap
//! list first gets a metadata request, and CreateTopics only for the topics it lacks: a mock
//! cluster shared through `kafka-cluster` already has them all and is never asked.
//!
//! Either way an existing topic counts as success, so start-up can run this every time and
//! several router instances can race on it.

use super::{common_config, off_thread, KafkaCluster, KafkaError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How long the metadata request, and the controller creating topics, may take before start-up
/// fails. A cluster that is still starting gets this long to answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Replication factor for new topics on a real cluster: -1 asks for the broker's
/// `default.replication.factor` (KIP-464, Kafka 2.4+), so a one-broker dev cluster and a
/// three-broker production cluster both work without configuration.
const BROKER_DEFAULT_REPLICATION: i32 = -1;

/// Makes sure every `(topic, partitions)` exists. Existing topics are left as they are (their
/// partition count is not changed).
pub async fn ensure_topics(
    broker: &KafkaCluster,
    topics: &[(String, i32)],
) -> Result<(), KafkaError> {
    if topics.is_empty() {
        return Ok(());
    }
    if broker.is_embedded() {
        let wanted = topics.to_vec();
        return broker.with_mock(move |mock| {
            wanted
                .iter()
                .try_for_each(|(topic, partitions)| create_mock_topic(mock, topic, *partitions))
        })?;
    }
    create_real_topics(broker.bootstrap(), topics).await
}

fn create_mock_topic(
    mock: &super::cluster::Mock,
    topic: &str,
    partitions: i32,
) -> Result<(), KafkaError> {
    // The mock cluster has three brokers, but one replica is all a loopback cluster needs.
    match mock.create_topic(topic, partitions, 1) {
        Ok(()) => {
            log::info!("created topic {topic} ({partitions} partitions) on the embedded cluster");
            Ok(())
        }
        Err(e) if is_already_exists(&e) => Ok(()),
        Err(e) => Err(KafkaError::Topic {
            topic: topic.to_owned(),
            reason: e.to_string(),
        }),
    }
}

async fn create_real_topics(bootstrap: &str, topics: &[(String, i32)]) -> Result<(), KafkaError> {
    let admin: Arc<AdminClient<DefaultClientContext>> =
        Arc::new(common_config(bootstrap, "nft-event-router-admin").create()?);
    let existing = existing_topics(admin.clone()).await?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|(name, _)| !existing.contains(name))
        .map(|(name, partitions)| {
            NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(BROKER_DEFAULT_REPLICATION),
            )
        })
        .collect();
    if new_topics.is_empty() {
        log::info!("all {} topics exist on {bootstrap}", topics.len());
        return Ok(());
    }
    let options = AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(topic) => log::info!("created topic {topic}"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Topic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// The names of the topics the cluster has, from one metadata request for all topics (asking
/// for named topics could auto-create them). The fetch blocks, so it runs off the async thread.
async fn existing_topics(
    admin: Arc<AdminClient<DefaultClientContext>>,
) -> Result<HashSet<String>, KafkaError> {
    let fetched = off_thread("kafka-admin", move || {
        Ok(admin
            .inner()
            .fetch_metadata(None, ADMIN_TIMEOUT)
            .map(|metadata| {
                metadata
                    .topics()
                    .iter()
                    .filter(|topic| topic.error().is_none())
                    .map(|topic| topic.name().to_owned())
                    .collect::<HashSet<String>>()
            }))
    })
    .await
    .map_err(KafkaError::Worker)?;
    Ok(fetched?)
}

fn is_already_exists(e: &RdKafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::TopicAlreadyExists)
}
