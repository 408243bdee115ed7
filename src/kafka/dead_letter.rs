//! Records that cannot be applied go to the dead-letter topic, byte for byte as they were read,
//! with headers saying why and where they came from, so an operator can inspect or replay them.

use super::{KafkaError, KafkaSink};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

/// Why the record was dead-lettered (the consumer's error text).
pub const ERROR_HEADER: &str = "error";
pub const SOURCE_TOPIC_HEADER: &str = "sourceTopic";
pub const SOURCE_PARTITION_HEADER: &str = "sourcePartition";
pub const SOURCE_OFFSET_HEADER: &str = "sourceOffset";
pub const CONSUMER_GROUP_HEADER: &str = "consumerGroup";
/// How many times the consumer tried the record before giving up.
pub const ATTEMPTS_HEADER: &str = "attempts";

/// A record on its way to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The original record's headers, in order, values as raw bytes.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub error: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub consumer_group: String,
    pub attempts: u32,
}

impl DeadLetter {
    /// Takes key, payload, headers and position from the consumed `message`.
    pub fn from_message(
        message: &impl Message,
        consumer_group: &str,
        error: String,
        attempts: u32,
    ) -> DeadLetter {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        DeadLetter {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            error,
            source_topic: message.topic().to_owned(),
            source_partition: message.partition(),
            source_offset: message.offset(),
            consumer_group: consumer_group.to_owned(),
            attempts,
        }
    }

    /// The original headers followed by the dead-letter ones.
    fn kafka_headers(&self) -> OwnedHeaders {
        let original = self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len() + 6),
            |acc, (key, value)| {
                acc.insert(Header {
                    key,
                    value: value.as_deref(),
                })
            },
        );
        let partition = self.source_partition.to_string();
        let offset = self.source_offset.to_string();
        let attempts = self.attempts.to_string();
        [
            (ERROR_HEADER, self.error.as_str()),
            (SOURCE_TOPIC_HEADER, self.source_topic.as_str()),
            (SOURCE_PARTITION_HEADER, partition.as_str()),
            (SOURCE_OFFSET_HEADER, offset.as_str()),
            (CONSUMER_GROUP_HEADER, self.consumer_group.as_str()),
            (ATTEMPTS_HEADER, attempts.as_str()),
        ]
        .into_iter()
        .fold(original, |acc, (key, value)| {
            acc.insert(Header {
                key,
                value: Some(value),
            })
        })
    }
}

impl KafkaSink {
    /// Produces `letter` to `topic` and waits for the acknowledgement; returns where it landed
    /// (partition, offset). Keyed like the original, so one user's failures stay in order.
    pub async fn dead_letter(
        &self,
        topic: &str,
        letter: &DeadLetter,
    ) -> Result<(i32, i64), KafkaError> {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).headers(letter.kafka_headers());
        if let Some(key) = &letter.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &letter.payload {
            record = record.payload(payload.as_slice());
        }
        // Timeout::Never only concerns librdkafka's local queue being full.
        match self.producer().send(record, Timeout::Never).await {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((e, _)) => Err(e.into()),
        }
    }
}
