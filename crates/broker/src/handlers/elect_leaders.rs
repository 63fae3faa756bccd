//! ElectLeaders (v0–v2): elect the preferred (or, unclean, any live) replica as leader. On
//! one node every partition's leader is its only replica, its preferred one, and alive, so
//! a named partition gets ELECTION_NOT_NEEDED and an unknown one UNKNOWN_TOPIC_OR_PARTITION.
//! A null partition list means every partition, and (as in Kafka) the answer then lists
//! only the partitions where an election took place: none.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// `election_type` values (v1+; v0 is always preferred).
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub fn handle(broker: &Arc<Broker>, request: ElectLeadersRequest) -> Reply {
    let known_type = matches!(request.election_type, PREFERRED | UNCLEAN);
    let results = request
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let topic = broker.topic(&name);
            let partition_result = t
                .partitions
                .iter()
                .map(|&index| {
                    let (error, message) = if !known_type {
                        (
                            ResponseError::InvalidRequest,
                            format!("unknown election type {}", request.election_type),
                        )
                    } else if topic.as_ref().and_then(|t| t.partition(index)).is_none() {
                        (
                            ResponseError::UnknownTopicOrPartition,
                            format!("no partition {name}-{index}"),
                        )
                    } else {
                        (
                            ResponseError::ElectionNotNeeded,
                            format!("{name}-{index} already has its preferred leader"),
                        )
                    };
                    PartitionResult::default()
                        .with_partition_id(index)
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_string(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    Reply::Now(ResponseKind::ElectLeaders(
        ElectLeadersResponse::default().with_replica_election_results(results),
    ))
}
