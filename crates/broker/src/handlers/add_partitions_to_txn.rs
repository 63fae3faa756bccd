//! AddPartitionsToTxn (v0–v3, the client form): partitions join the producer's ongoing
//! transaction, which starts with the first of them. A partition that does not exist gets
//! UNKNOWN_TOPIC_OR_PARTITION and nothing is added (the others get OPERATION_NOT_ATTEMPTED).
//! The answer waits for the `__transaction_state` record to be durable.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ResponseKind,
};
use klamm_coordinator::ErrorCode;
use std::sync::Arc;

/// AddPartitionsToTxn v2 introduced PRODUCER_FENCED.
const FENCED_SINCE_VERSION: i16 = 2;

pub fn handle(broker: &Arc<Broker>, request: AddPartitionsToTxnRequest, version: i16) -> Reply {
    let id = request.v3_and_below_transactional_id.0.as_str().to_string();
    let pid = request.v3_and_below_producer_id.0;
    let epoch = request.v3_and_below_producer_epoch;
    let requested: Vec<(String, i32)> = request
        .v3_and_below_topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.as_str().to_string();
            t.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();
    let unknown: Vec<(String, i32)> = requested
        .iter()
        .filter(|(t, p)| {
            broker
                .topic(t)
                .and_then(|t| t.partition(*p).cloned())
                .is_none()
        })
        .cloned()
        .collect();
    let (code, waits, complete) = if unknown.is_empty() {
        broker.txns.with(broker, |c| {
            c.add_partitions(&id, pid, epoch, &requested, broker.now_ms())
        })
    } else {
        (ErrorCode::None, Vec::new(), Vec::new())
    };
    let code = crate::txn::for_version(code, version, FENCED_SINCE_VERSION);
    let code_of = |t: &str, p: i32| {
        if unknown.is_empty() {
            code
        } else if unknown.iter().any(|(ut, up)| ut == t && *up == p) {
            ResponseError::UnknownTopicOrPartition.code()
        } else {
            ResponseError::OperationNotAttempted.code()
        }
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code_of(t.name.0.as_str(), *p))
                        })
                        .collect(),
                )
        })
        .collect();
    let response =
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        crate::txn::finish(broker, waits, complete).await;
        ResponseKind::AddPartitionsToTxn(response)
    }))
}
