//! DescribeLogDirs (v0–v4): the one log dir, every partition in it with its size on disk,
//! and (v4, KIP-827) the filesystem's total and usable bytes.
//!
//! A null topic list asks for every partition; named topics or partitions that do not
//! exist are left out, as Kafka leaves out what it does not host. The offset lag of a
//! current replica is `max(high watermark - log end, 0)`, always 0 on a leader.

use super::Reply;
use crate::broker::Broker;
use crate::disk_space;
use crate::partition::Partition;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What Kafka reports for space it could not read (`DescribeLogDirsResponse.UNKNOWN_VOLUME_BYTES`).
const UNKNOWN_VOLUME_BYTES: i64 = -1;

pub fn handle(broker: &Arc<Broker>, request: DescribeLogDirsRequest) -> Reply {
    let mut by_topic: BTreeMap<String, Vec<Arc<Partition>>> = BTreeMap::new();
    match request.topics {
        None => {
            for topic in broker.topics() {
                by_topic.insert(topic.name.clone(), topic.partitions.clone());
            }
        }
        Some(wanted) => {
            for t in wanted {
                let Some(topic) = broker.topic(t.topic.0.as_str()) else {
                    continue;
                };
                let found = by_topic.entry(topic.name.clone()).or_default();
                for index in t.partitions {
                    if let Some(p) = topic.partition(index) {
                        if !found.iter().any(|f| f.index == index) {
                            found.push(p.clone());
                        }
                    }
                }
            }
        }
    }
    let topics = by_topic
        .into_iter()
        .filter(|(_, partitions)| !partitions.is_empty())
        .map(|(name, partitions)| {
            let partitions = partitions
                .iter()
                .map(|p| {
                    let (log_end, size_bytes) = {
                        let log = p.log();
                        (log.log_end_offset(), log.size_bytes())
                    };
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(i64::try_from(size_bytes).unwrap_or(i64::MAX))
                        .with_offset_lag((p.high_watermark() - log_end).max(0))
                        .with_is_future_key(false)
                })
                .collect();
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = broker.log_dir_absolute();
    let (error, total, usable) = match disk_space::of(&dir) {
        Ok(space) => (
            0,
            i64::try_from(space.total_bytes).unwrap_or(i64::MAX),
            i64::try_from(space.usable_bytes).unwrap_or(i64::MAX),
        ),
        // The dir is unreadable: Kafka reports such a dir as offline.
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the log dir's space");
            (
                ResponseError::KafkaStorageError.code(),
                UNKNOWN_VOLUME_BYTES,
                UNKNOWN_VOLUME_BYTES,
            )
        }
    };
    let result = DescribeLogDirsResult::default()
        .with_error_code(error)
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(if error == 0 { topics } else { Vec::new() })
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    Reply::Now(ResponseKind::DescribeLogDirs(
        DescribeLogDirsResponse::default().with_results(vec![result]),
    ))
}
