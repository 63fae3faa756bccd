//! ListPartitionReassignments (v0): the reassignments in progress. A partition's replicas
//! can only move once there are brokers to move them to, so on one node there are none,
//! whatever topics are asked about (Kafka, too, leaves out topics it does not know).

use super::Reply;
use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind,
};

pub fn handle(request: ListPartitionReassignmentsRequest) -> Reply {
    let _ = request;
    Reply::Now(ResponseKind::ListPartitionReassignments(
        ListPartitionReassignmentsResponse::default(),
    ))
}
