//! Consumer lag: how many records each partition this group member owns trails the partition's
//! high watermark, published as the `nft_router_consumer_lag{group,topic,partition}` gauge.
//!
//! The figures come from librdkafka's own statistics, which it emits every
//! [`STATISTICS_INTERVAL_MS`] on the consumer's poll (so on the loop's thread, between two
//! records) with each partition's high watermark, the position of the application and the
//! group's committed offset. Querying the watermarks ourselves (`fetch_watermarks`) would put
//! a request per partition behind the consumer's pending long-poll fetch on the same broker
//! connection, holding the loop for up to `fetch.wait.max.ms` each time.

use actors::metrics::Metrics;
use rdkafka::statistics::{Partition, Statistics};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// `statistics.interval.ms` of the consumers: how often the lag is measured.
pub(super) const STATISTICS_INTERVAL_MS: &str = "5000";

type TopicPartition = (String, i32);

/// Publishes one member's lag and withdraws the partitions it no longer owns.
pub(super) struct LagGauge {
    group: String,
    reported: Mutex<HashSet<TopicPartition>>,
    metrics: Arc<Metrics>,
}

impl LagGauge {
    pub(super) fn new(group: &str, metrics: Arc<Metrics>) -> Self {
        LagGauge {
            group: group.to_owned(),
            reported: Mutex::new(HashSet::new()),
            metrics,
        }
    }

    /// Takes the lag of every partition assigned to this member from one statistics report.
    pub(super) fn update(&self, statistics: &Statistics) {
        let mut owned = HashSet::new();
        for (name, topic) in &statistics.topics {
            for partition in topic.partitions.values() {
                if let Some(lag) = partition_lag(partition) {
                    self.metrics
                        .set_consumer_lag(&self.group, name, partition.partition, lag);
                    owned.insert((name.clone(), partition.partition));
                }
            }
        }
        let Ok(mut reported) = self.reported.lock() else {
            return;
        };
        for (topic, partition) in reported.difference(&owned) {
            self.metrics
                .forget_consumer_lag(&self.group, topic, *partition);
        }
        *reported = owned;
    }
}

/// High watermark − the member's progress, for a partition assigned to it whose watermark is
/// known. Progress is the further of the committed offset and the position (the offset after
/// the last record received, which the loop handles before receiving the next); with neither
/// yet, the low watermark, where `auto.offset.reset = earliest` starts.
fn partition_lag(p: &Partition) -> Option<i64> {
    // Partition -1 is librdkafka's bucket for records not yet assigned a partition.
    if p.partition < 0 || !p.desired || p.hi_offset < 0 {
        return None;
    }
    let progress = p.committed_offset.max(p.app_offset);
    let progress = if progress >= 0 {
        progress
    } else {
        p.lo_offset.max(0)
    };
    Some((p.hi_offset - progress).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(id: i32, desired: bool, offsets: (i64, i64, i64, i64)) -> Partition {
        let (lo_offset, hi_offset, committed_offset, app_offset) = offsets;
        Partition {
            partition: id,
            desired,
            lo_offset,
            hi_offset,
            committed_offset,
            app_offset,
            ..Partition::default()
        }
    }

    #[test]
    fn lag_counts_from_the_furthest_of_commit_and_position() {
        assert_eq!(partition_lag(&partition(0, true, (0, 10, 4, 6))), Some(4));
        assert_eq!(
            partition_lag(&partition(0, true, (0, 10, 7, -1001))),
            Some(3)
        );
        assert_eq!(partition_lag(&partition(0, true, (0, 10, 10, 10))), Some(0));
        // Nothing read or committed yet: everything retained is behind.
        assert_eq!(
            partition_lag(&partition(0, true, (2, 10, -1001, -1001))),
            Some(8)
        );
    }

    #[test]
    fn partitions_not_owned_or_not_measured_have_no_lag() {
        assert_eq!(partition_lag(&partition(0, false, (0, 10, 4, 6))), None);
        assert_eq!(partition_lag(&partition(-1, true, (0, 10, 4, 6))), None);
        assert_eq!(partition_lag(&partition(0, true, (-1, -1, 4, 6))), None);
    }
}
