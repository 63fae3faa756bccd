//! DescribeQuorum (v0–v2): the metadata quorum of `__cluster_metadata-0`. Until the
//! cluster's Raft quorum exists, one node is the whole quorum: its only voter and leader,
//! in epoch 1, with no observers. Its log end and high watermark are the metadata changes
//! saved so far (`MetadataImage::changes`), the offset a metadata log would be at; a leader
//! reports its own fetch and caught-up times as now, as Kafka's does.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use uuid::Uuid;

/// The metadata log's topic and partition, the one quorum there is.
const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;
/// The quorum's epoch: one election, of the only voter.
const QUORUM_EPOCH: i32 = 1;

pub fn handle(broker: &Arc<Broker>, request: DescribeQuorumRequest, version: i16) -> Reply {
    Reply::Now(ResponseKind::DescribeQuorum(describe(
        broker, &request, version,
    )))
}

fn describe(
    broker: &Broker,
    request: &DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    // Kafka answers anything but exactly the metadata partition with a top-level error.
    let asks_for_metadata = matches!(request.topics.as_slice(),
        [t] if t.topic_name.0.as_str() == METADATA_TOPIC
            && matches!(t.partitions.as_slice(), [p] if p.partition_index == METADATA_PARTITION));
    if !asks_for_metadata {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
    }
    let node = broker.settings.node_id;
    let offset = broker.metadata_changes();
    let now_ms = broker.now_ms();
    let voter = ReplicaState::default()
        .with_replica_id(BrokerId(node))
        // A static quorum's voters have no directory id (kraft.version 0).
        .with_replica_directory_id(Uuid::nil())
        .with_log_end_offset(offset)
        .with_last_fetch_timestamp(now_ms)
        .with_last_caught_up_timestamp(now_ms);
    let partition = PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_leader_id(BrokerId(node))
        .with_leader_epoch(QUORUM_EPOCH)
        .with_high_watermark(offset)
        .with_current_voters(vec![voter]);
    let topic = TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![partition]);
    let mut response = DescribeQuorumResponse::default().with_topics(vec![topic]);
    if version >= 2 {
        let s = &broker.settings;
        let listeners = s
            .listeners
            .iter()
            .zip(&s.advertised_listeners)
            .map(|(l, a)| {
                Listener::default()
                    .with_name(StrBytes::from_string(l.name.clone()))
                    .with_host(StrBytes::from_string(a.host.clone()))
                    .with_port(a.port)
            })
            .collect();
        response.nodes = vec![Node::default()
            .with_node_id(BrokerId(node))
            .with_listeners(listeners)];
    }
    response
}
