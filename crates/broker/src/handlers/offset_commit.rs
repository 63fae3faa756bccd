//! OffsetCommit (v2–v8): validated against the group's generation, stored in
//! `__consumer_offsets`, acknowledged once durable (like `acks=all`).

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use klamm_coordinator::CommitRequest;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: OffsetCommitRequest) -> Reply {
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
    let req = CommitRequest {
        group_id: request.group_id.0.as_str().to_string(),
        member_id: request.member_id.as_str().to_string(),
        group_instance_id: request
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str().to_string()),
        generation: request.generation_id_or_member_epoch,
        offsets,
    };
    let topic_exists =
        |name: &str, p: i32| broker.topic(name).is_some_and(|t| t.partition(p).is_some());
    let (errs, durable) = broker
        .groups
        .with(broker, |c| c.commit(req, topic_exists, broker.now_ms()));
    let mut errs = errs.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(errs.next().map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    let response = ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics));
    match durable {
        None => Reply::Now(response),
        Some((partition, last_offset)) => Reply::Later(Box::pin(async move {
            partition.wait_visible(last_offset).await;
            response
        })),
    }
}
