//! CreateTopics (v2–v7): name, partition count (`-1` = `num.partitions`), replication
//! factor (`-1` = default; only 1 on a single broker), manual assignments to this broker,
//! and config overrides validated by the registry. `validate_only` checks without creating.

use super::Reply;
use crate::broker::Broker;
use crate::state::AdminError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: CreateTopicsRequest, version: i16) -> Reply {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *seen.entry(t.name.0.as_str().to_string()).or_default() += 1;
    }
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.as_str().to_string();
            let outcome = if seen[&name] > 1 {
                Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Create topics request contains {name} more than once."),
                ))
            } else {
                create_one(broker, &t, request.validate_only)
            };
            result(broker, t, outcome, version)
        })
        .collect();
    Reply::Now(ResponseKind::CreateTopics(
        CreateTopicsResponse::default().with_topics(results),
    ))
}

fn create_one(
    broker: &Broker,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<(i32, uuid::Uuid), AdminError> {
    let name = t.name.0.as_str();
    if let Some(refused) = crate::internal::refuse_create(name) {
        return Err(refused);
    }
    let (mut partitions, mut replication) = (t.num_partitions, t.replication_factor);
    if !t.assignments.is_empty() {
        if partitions != -1 || replication != -1 {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set.",
            ));
        }
        let me = broker.settings.node_id;
        if let Some(a) = t
            .assignments
            .iter()
            .find(|a| a.broker_ids.iter().any(|b| b.0 != me) || a.broker_ids.len() != 1)
        {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "partition {} must be assigned to broker {me} alone",
                    a.partition_index
                ),
            ));
        }
        partitions = t.assignments.len() as i32;
        replication = 1;
    }
    let configs: Vec<(String, Option<String>)> = t
        .configs
        .iter()
        .map(|c| {
            (
                c.name.as_str().to_string(),
                c.value.as_ref().map(|v| v.as_str().to_string()),
            )
        })
        .collect();
    if let Some(refused) =
        crate::internal::refuse_test_keys(&broker.config(), configs.iter().map(|c| c.0.as_str()))
    {
        return Err(refused);
    }
    if validate_only {
        let (n, _) = broker.check_new_topic(name, partitions, replication, &configs)?;
        return Ok((n, uuid::Uuid::nil()));
    }
    let topic = broker.create_topic(name, partitions, replication, &configs)?;
    Ok((topic.partitions.len() as i32, topic.id))
}

fn result(
    broker: &Broker,
    t: CreatableTopic,
    outcome: Result<(i32, uuid::Uuid), AdminError>,
    version: i16,
) -> CreatableTopicResult {
    let base = CreatableTopicResult::default().with_name(t.name.clone());
    match outcome {
        Ok((partitions, id)) => {
            let overrides = t
                .configs
                .iter()
                .filter_map(|c| {
                    Some((
                        c.name.as_str().to_string(),
                        klamm_config::validate_topic_config(
                            c.name.as_str(),
                            c.value.as_ref()?.as_str(),
                        )
                        .ok()?,
                    ))
                })
                .collect();
            let configs = (version >= 5).then(|| {
                broker
                    .config()
                    .describe_topic(&overrides)
                    .into_iter()
                    .map(|d| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_string(d.name.clone()))
                            .with_value(d.value.clone().map(StrBytes::from_string))
                            .with_read_only(d.read_only)
                            .with_config_source(d.source.kafka_code())
                            .with_is_sensitive(d.sensitive)
                    })
                    .collect()
            });
            base.with_topic_id(id)
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(configs)
        }
        Err(e) => base
            .with_error_code(e.error.code())
            .with_error_message(Some(StrBytes::from_string(e.message)))
            .with_num_partitions(-1)
            .with_replication_factor(-1),
    }
}
