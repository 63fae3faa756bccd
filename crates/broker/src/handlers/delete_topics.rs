//! DeleteTopics (v1–v6): by name, or (v6) by topic id.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use uuid::Uuid;

pub fn handle(broker: &Arc<Broker>, request: DeleteTopicsRequest, version: i16) -> Reply {
    // v6 names topics in `topics` (name or id); earlier versions in `topic_names`.
    let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.as_str().to_string()),
                    t.topic_id,
                )
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.as_str().to_string()), Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| delete_one(broker, name, id))
        .collect();
    Reply::Now(ResponseKind::DeleteTopics(
        DeleteTopicsResponse::default().with_responses(responses),
    ))
}

fn delete_one(broker: &Broker, name: Option<String>, id: Uuid) -> DeletableTopicResult {
    let name = match name {
        Some(n) => n,
        None => match broker.topic_by_id(id) {
            Some(t) => t.name.clone(),
            None => {
                return DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(ResponseError::UnknownTopicId.code());
            }
        },
    };
    let result = DeletableTopicResult::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
    match broker.delete_topic(&name) {
        Ok(id) => result.with_topic_id(id),
        Err(e) => result
            .with_topic_id(id)
            .with_error_code(e.error.code())
            .with_error_message(Some(StrBytes::from_string(e.message))),
    }
}
