//! ListOffsets (v1–v10): earliest (-2), latest (-1), max timestamp (-3), earliest local
//! (-4, same as earliest: no tiered storage), latest tiered (-5, none), or the first offset
//! whose timestamp is at or after T, found through the time index.

use super::Reply;
use crate::broker::Broker;
use crate::partition::{Partition, LEADER_EPOCH};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};
use std::sync::Arc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// ListOffsets v4 added `leader_epoch`; the encoder refuses it set on older versions.
const LEADER_EPOCH_MIN_VERSION: i16 = 4;

pub fn handle(broker: &Arc<Broker>, request: ListOffsetsRequest, version: i16) -> Reply {
    let epoch = if version >= LEADER_EPOCH_MIN_VERSION {
        LEADER_EPOCH
    } else {
        -1
    };
    // read_committed consumers see up to the last stable offset.
    let committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                        None => resp.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                        Some(partition) => lookup(partition, p.timestamp, epoch, committed, resp),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::ListOffsets(
        ListOffsetsResponse::default().with_topics(topics),
    ))
}

fn lookup(
    partition: &Partition,
    timestamp: i64,
    epoch: i32,
    read_committed: bool,
    resp: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    let hw = if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    let log = partition.log();
    let found: std::io::Result<Option<(i64, i64)>> = match timestamp {
        LATEST => Ok(Some((hw, -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
        LATEST_TIERED => Ok(None),
        MAX_TIMESTAMP => log.max_timestamp_record(hw),
        t if t >= 0 => log.offset_for_timestamp(t, hw),
        _ => {
            return resp.with_error_code(ResponseError::InvalidRequest.code());
        }
    };
    match found {
        Ok(Some((offset, ts))) => resp
            .with_offset(offset)
            .with_timestamp(ts)
            .with_leader_epoch(epoch),
        Ok(None) => resp,
        Err(e) => {
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "offset lookup failed");
            resp.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}
