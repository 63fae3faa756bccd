//! DescribeConfigs (v1–v4): topic (resource type 2) and broker (4) configs with their
//! sources, synonyms (when asked) and documentation (v3+, when asked), from the registry.
//! Broker resource `""` shows only the cluster-wide dynamic defaults, as in Kafka.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use klamm_config::{DescribedConfig, DynamicScope};
use std::sync::Arc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub fn handle(broker: &Arc<Broker>, request: DescribeConfigsRequest, version: i16) -> Reply {
    let results = request
        .resources
        .iter()
        .map(|r| {
            describe(
                broker,
                r,
                request.include_synonyms,
                version >= 3 && request.include_documentation,
            )
        })
        .collect();
    Reply::Now(ResponseKind::DescribeConfigs(
        DescribeConfigsResponse::default().with_results(results),
    ))
}

fn describe(
    broker: &Broker,
    r: &DescribeConfigsResource,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name.clone());
    let name = r.resource_name.as_str();
    let rows = match r.resource_type {
        RESOURCE_TOPIC => match broker.topic(name) {
            Some(t) => broker.config().describe_topic(&t.configs),
            None => {
                return error(
                    result,
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist"),
                )
            }
        },
        RESOURCE_BROKER => match super::alter_configs::broker_scope(broker, name) {
            Ok(DynamicScope::ClusterDefault) => broker.config().describe_cluster_defaults(),
            Ok(DynamicScope::Broker) => broker.config().describe_broker(),
            Err(e) => return error(result, e.error, e.message),
        },
        other => {
            return error(
                result,
                ResponseError::InvalidRequest,
                format!("resource type {other} is not supported"),
            );
        }
    };
    let wanted = r.configuration_keys.as_ref();
    let configs = rows
        .into_iter()
        .filter(|d| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == d.name)))
        .map(|d| row(d, synonyms, docs))
        .collect();
    result.with_configs(configs)
}

fn row(d: DescribedConfig, synonyms: bool, docs: bool) -> DescribeConfigsResourceResult {
    let synonyms = if synonyms {
        d.synonyms
            .iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_value(Some(StrBytes::from_string(value.clone())))
                    .with_source(source.kafka_code())
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(d.name))
        .with_value(d.value.map(StrBytes::from_string))
        .with_read_only(d.read_only)
        .with_config_source(d.source.kafka_code())
        .with_is_sensitive(d.sensitive)
        .with_config_type(d.ty.kafka_code())
        .with_documentation(docs.then(|| StrBytes::from_static_str(d.doc)))
        .with_synonyms(synonyms)
}

fn error(
    result: DescribeConfigsResult,
    e: ResponseError,
    message: String,
) -> DescribeConfigsResult {
    result
        .with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}
