//! AlterPartitionReassignments (v0–v1): move a partition's replicas to other brokers, or
//! cancel a move (null replicas). Validated as Kafka's controller does, in its order: an
//! unknown topic or partition; a cancel with nothing in progress
//! (NO_REASSIGNMENT_IN_PROGRESS); an empty replica list, a broker that is not registered
//! or one named twice (INVALID_REPLICA_ASSIGNMENT); a changed replica count when v1's
//! `allow_replication_factor_change` is false (INVALID_REPLICATION_FACTOR). On one node the
//! only valid target is the current one, `[node.id]`, which succeeds with nothing to move.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// Replicas of every partition on one node.
const REPLICATION_FACTOR: usize = 1;

pub fn handle(broker: &Arc<Broker>, request: AlterPartitionReassignmentsRequest) -> Reply {
    let node = broker.settings.node_id;
    let allow_rf_change = request.allow_replication_factor_change;
    let responses = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let topic = broker.topic(&name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let index = p.partition_index;
                    let result = if topic.is_none() {
                        Err((
                            ResponseError::UnknownTopicOrPartition,
                            format!("no topic named {name}"),
                        ))
                    } else if topic.as_ref().and_then(|t| t.partition(index)).is_none() {
                        Err((
                            ResponseError::UnknownTopicOrPartition,
                            format!("no partition {name}-{index}"),
                        ))
                    } else {
                        match p.replicas {
                            None => Err((
                                ResponseError::NoReassignmentInProgress,
                                format!("no reassignment of {name}-{index} is in progress"),
                            )),
                            Some(replicas) => check_target(&replicas, node, allow_rf_change),
                        }
                    };
                    let (error, message) = match result {
                        Ok(()) => (0, None),
                        Err((e, m)) => (e.code(), Some(StrBytes::from_string(m))),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(index)
                        .with_error_code(error)
                        .with_error_message(message)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::AlterPartitionReassignments(
        AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow_rf_change)
            .with_responses(responses),
    ))
}

fn check_target(
    replicas: &[BrokerId],
    node: i32,
    allow_rf_change: bool,
) -> Result<(), (ResponseError, String)> {
    let invalid = |m: String| Err((ResponseError::InvalidReplicaAssignment, m));
    if replicas.is_empty() {
        return invalid("the replica list is empty".into());
    }
    let mut sorted: Vec<i32> = replicas.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    for (i, &id) in sorted.iter().enumerate() {
        if id != node {
            return invalid(format!(
                "broker {id} is not registered (the only broker is {node})"
            ));
        }
        if i > 0 && sorted[i - 1] == id {
            return invalid(format!("broker {id} is named more than once"));
        }
    }
    if !allow_rf_change && sorted.len() != REPLICATION_FACTOR {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "the replication factor would change from {REPLICATION_FACTOR} to {}",
                sorted.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(replicas: &[i32], allow_rf_change: bool) -> i16 {
        let replicas: Vec<BrokerId> = replicas.iter().map(|&b| BrokerId(b)).collect();
        match check_target(&replicas, 1, allow_rf_change) {
            Ok(()) => 0,
            Err((e, _)) => e.code(),
        }
    }

    #[test]
    fn only_the_current_replica_set_is_a_valid_target() {
        let invalid_assignment = ResponseError::InvalidReplicaAssignment.code();
        for (replicas, allow, expected) in [
            (&[1][..], true, 0),
            (&[1][..], false, 0),
            (&[][..], true, invalid_assignment),
            (&[2][..], true, invalid_assignment),
            (&[1, 2][..], true, invalid_assignment),
            (&[-1][..], true, invalid_assignment),
            (&[1, 1][..], true, invalid_assignment),
            // Duplicates are found before the replica count is compared.
            (&[1, 1][..], false, invalid_assignment),
        ] {
            assert_eq!(
                code(replicas, allow),
                expected,
                "{replicas:?} allow={allow}"
            );
        }
    }
}
