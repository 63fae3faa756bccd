//! TxnOffsetCommit (v0–v3): offsets committed inside a transaction. The producer's
//! transaction must be ongoing and hold the group's `__consumer_offsets` partition
//! (AddOffsetsToTxn); the offsets are appended there as a transactional batch of the producer
//! and stay pending in the group coordinator until the transaction's marker commits or
//! aborts them. Acknowledged once durable.

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
    let offsets: Vec<(String, i32, i64, i32, Option<String>)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.as_str().to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata
                        .as_ref()
                        .map(|m| m.as_str().to_string()),
                )
            })
        })
        .collect();
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
    let mut errs = errs.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(errs.next().map_or(0, |e| e.code()))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    let response =
        ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(topics));
    match durable {
        None => Reply::Now(response),
        Some((partition, last_offset)) => Reply::Later(Box::pin(async move {
            partition.wait_visible(last_offset).await;
            response
        })),
    }
}
