//! TxnOffsetCommit (v0–v3): offsets committed inside a transaction. The producer's
//! transaction must be ongoing and hold the group's `__consumer_offsets` partition
//! (AddOffsetsToTxn); the offsets are appended there as a transactional batch of the producer
//! and stay pending in the group coordinator until the transaction's marker commits or
//! aborts them. Acknowledged once durable.

use super::offsets_common::{commit_entries, per_partition_errors, when_durable};
use super::Reply;
use crate::broker::Broker;
use crate::internal::OFFSETS_TOPIC;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use klamm_coordinator::ErrorCode;
use klamm_coordinator::TxnCommitRequest;
use klamm_protocol::group_records::partition_for_group;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: TxnOffsetCommitRequest) -> Reply {
    let offsets = commit_entries!(request.topics);
    let group_id = request.group_id.0.as_str().to_string();
    let count = offsets.len();
    let (errs, durable) = match broker.internal_topic(OFFSETS_TOPIC) {
        Err(e) => {
            tracing::error!(error = %e.message, "cannot create __consumer_offsets");
            (vec![ErrorCode::CoordinatorNotAvailable; count], None)
        }
        Ok(topic) => {
            let offsets_partition = (
                OFFSETS_TOPIC,
                partition_for_group(&group_id, topic.partitions.len() as i32),
            );
            // Held while the offsets are written, so the transaction cannot end in between.
            let txns = broker.txns.lock();
            match txns.verify(
                request.transactional_id.0.as_str(),
                request.producer_id.0,
                request.producer_epoch,
                offsets_partition,
            ) {
                Err(code) => {
                    let code = if code == ErrorCode::InvalidProducerIdMapping {
                        ErrorCode::InvalidProducerEpoch
                    } else {
                        code
                    };
                    (vec![code; count], None)
                }
                Ok(()) => {
                    let req = TxnCommitRequest {
                        group_id,
                        producer_id: request.producer_id.0,
                        producer_epoch: request.producer_epoch,
                        member_id: request.member_id.as_str().to_string(),
                        group_instance_id: request
                            .group_instance_id
                            .as_ref()
                            .map(|s| s.as_str().to_string()),
                        generation: request.generation_id,
                        offsets,
                    };
                    let topic_exists = |name: &str, p: i32| {
                        broker.topic(name).is_some_and(|t| t.partition(p).is_some())
                    };
                    let r = broker
                        .groups
                        .with(broker, |c| c.txn_commit(req, topic_exists, broker.now_ms()));
                    drop(txns);
                    r
                }
            }
        }
    };
    let topics = per_partition_errors!(
        request.topics,
        errs.into_iter(),
        TxnOffsetCommitResponseTopic,
        TxnOffsetCommitResponsePartition
    );
    let response =
        ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(topics));
    when_durable(response, durable)
}
