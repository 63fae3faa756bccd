//! OffsetCommit (v2–v8): validated against the group's generation, stored in
//! `__consumer_offsets`, acknowledged once durable (like `acks=all`).

use super::offsets_common::{commit_entries, per_partition_errors, when_durable};
use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use klamm_coordinator::CommitRequest;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: OffsetCommitRequest) -> Reply {
    let offsets = commit_entries!(request.topics);
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
    let topics = per_partition_errors!(
        request.topics,
        errs.into_iter(),
        OffsetCommitResponseTopic,
        OffsetCommitResponsePartition
    );
    let response = ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics));
    when_durable(response, durable)
}
