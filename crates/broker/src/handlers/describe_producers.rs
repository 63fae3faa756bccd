//! DescribeProducers (v0): the idempotent and transactional producers each partition knows,
//! with their epoch, last sequence and the start of their open transaction (-1 if none).

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId, ResponseKind,
};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: DescribeProducersRequest) -> Reply {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.0.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let resp = PartitionResponse::default().with_partition_index(index);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(index)) else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let log = partition.log();
                    let producers = log
                        .producer_state()
                        .producers()
                        .map(|(pid, e)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(*pid))
                                .with_producer_epoch(e.epoch as i32)
                                .with_last_sequence(e.batches.back().map_or(-1, |b| b.last_seq))
                                .with_last_timestamp(e.last_timestamp_ms)
                                .with_coordinator_epoch(0)
                                .with_current_txn_start_offset(
                                    e.current_txn_first_offset.unwrap_or(-1),
                                )
                        })
                        .collect();
                    resp.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::DescribeProducers(
        DescribeProducersResponse::default().with_topics(topics),
    ))
}
