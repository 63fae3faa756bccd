//! DescribeTopicPartitions (v0, KIP-966): topic metadata in pages. Topics are answered in
//! name order; a response holds at most `min(response_partition_limit,
//! max.request.partition.size.limit)` partitions and, when more remain, a cursor naming the
//! first partition it left out, from which the client asks again.
//!
//! As in Kafka: an empty topic list means every topic; a named topic that does not exist
//! gets UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION if its name could never be a
//! topic) without using up the limit; a cursor must name one of the requested topics
//! (else every requested topic gets INVALID_REQUEST); topics before the cursor's are
//! skipped, and only the cursor's topic starts at the cursor's partition.

use super::{Reply, AUTHORIZED_OPERATIONS_OMITTED, TOPIC_AUTHORIZED_OPERATIONS};
use crate::broker::Broker;
use crate::partition::LEADER_EPOCH;
use crate::state::Topic;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeSet;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: DescribeTopicPartitionsRequest) -> Reply {
    Reply::Now(ResponseKind::DescribeTopicPartitions(describe(
        broker, request,
    )))
}

fn describe(
    broker: &Broker,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let every_topic = request.topics.is_empty();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(c) => (c.topic_name.0.to_string(), c.partition_index),
        None => (String::new(), 0),
    };
    // A BTreeSet: sorted by name (byte order, as Java's String.compareTo for these
    // ASCII names) and without duplicates.
    let names: BTreeSet<String> = if every_topic {
        broker.topics().iter().map(|t| t.name.clone()).collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    if request.cursor.is_some() && !every_topic && !names.contains(&cursor_topic) {
        // Kafka's answer to a request it rejects whole: every requested topic, in the
        // order asked, with the error.
        let topics = request
            .topics
            .iter()
            .map(|t| {
                error_topic(t.name.0.to_string(), ResponseError::InvalidRequest)
                    .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
            })
            .collect();
        return DescribeTopicPartitionsResponse::default().with_topics(topics);
    }
    let names = names.into_iter().filter(|n| *n >= cursor_topic);
    let limit = request
        .response_partition_limit
        .min(broker.settings.max_request_partition_size_limit);
    let mut remaining = i64::from(limit);
    let mut response = DescribeTopicPartitionsResponse::default();
    let node = BrokerId(broker.settings.node_id);
    for name in names {
        if remaining <= 0 {
            // Every partition of the topics before this one fitted: resume at its start.
            response.next_cursor = Some(cursor(&name, 0));
            break;
        }
        let Some(topic) = broker.topic(&name) else {
            if !every_topic {
                let error = match crate::state::validate_topic_name(&name) {
                    Ok(()) => ResponseError::UnknownTopicOrPartition,
                    Err(_) => ResponseError::InvalidTopicException,
                };
                response.topics.push(error_topic(name, error));
            }
            continue;
        };
        let first = if name == cursor_topic {
            cursor_partition.max(0)
        } else {
            0
        };
        let count = topic.partitions.len() as i64;
        let end = count.min(i64::from(first) + remaining);
        let partitions: Vec<_> = (i64::from(first)..end)
            .map(|index| partition(index as i32, node))
            .collect();
        remaining -= partitions.len() as i64;
        response.topics.push(topic_entry(&topic, partitions));
        if end < count {
            response.next_cursor = Some(cursor(&name, end as i32));
            break;
        }
    }
    response
}

fn cursor(topic: &str, partition_index: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition_index)
}

fn partition(index: i32, node: BrokerId) -> DescribeTopicPartitionsResponsePartition {
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(node)
        .with_leader_epoch(LEADER_EPOCH)
        .with_replica_nodes(vec![node])
        .with_isr_nodes(vec![node])
        // KIP-966's eligible leader replicas: none beyond the ISR on one node.
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
}

fn topic_entry(
    topic: &Topic,
    partitions: Vec<DescribeTopicPartitionsResponsePartition>,
) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(crate::internal::is_internal(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS)
}

fn error_topic(name: String, error: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.code())
        .with_is_internal(crate::internal::is_internal(&name))
        .with_name(Some(TopicName(StrBytes::from_string(name))))
        .with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS)
}
