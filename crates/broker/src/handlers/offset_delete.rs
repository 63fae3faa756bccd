//! OffsetDelete (v0): drops committed offsets of partitions the group does not consume.

use super::offsets_common::per_partition_errors;
use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: OffsetDeleteRequest) -> Reply {
    let wanted: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.as_str().to_string(), p.partition_index))
        })
        .collect();
    let ((code, errs), _) = broker.groups.with(broker, |c| {
        let (code, errs, effects) = c.delete_offsets(request.group_id.0.as_str(), &wanted);
        ((code, errs), effects)
    });
    let topics = if !code.is_ok() {
        Vec::new()
    } else {
        per_partition_errors!(
            request.topics,
            errs.into_iter(),
            OffsetDeleteResponseTopic,
            OffsetDeleteResponsePartition
        )
    };
    Reply::Now(ResponseKind::OffsetDelete(
        OffsetDeleteResponse::default()
            .with_error_code(code.code())
            .with_topics(topics),
    ))
}
