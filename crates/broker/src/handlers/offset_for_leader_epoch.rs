//! OffsetForLeaderEpoch (v2–v4). A single broker has had one leader epoch (0), so the end
//! offset of epoch 0 is the log end; a later epoch is unknown to us.

use super::Reply;
use crate::broker::Broker;
use crate::partition::LEADER_EPOCH;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind,
};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: OffsetForLeaderEpochRequest) -> Reply {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition))
                    else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if p.current_leader_epoch > LEADER_EPOCH {
                        return resp.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    if p.leader_epoch > LEADER_EPOCH || p.leader_epoch < 0 {
                        return resp;
                    }
                    resp.with_leader_epoch(LEADER_EPOCH)
                        .with_end_offset(partition.log().log_end_offset())
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::OffsetForLeaderEpoch(
        OffsetForLeaderEpochResponse::default().with_topics(topics),
    ))
}
