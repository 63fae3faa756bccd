//! CreatePartitions (v0–v3): grow a topic to `count` partitions.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: CreatePartitionsRequest) -> Reply {
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let outcome = match crate::internal::refuse_new_partitions(t.name.0.as_str()) {
                Some(refused) => Err(refused),
                None => broker.add_partitions(t.name.0.as_str(), t.count, request.validate_only),
            };
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.error.code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    Reply::Now(ResponseKind::CreatePartitions(
        CreatePartitionsResponse::default().with_results(results),
    ))
}
