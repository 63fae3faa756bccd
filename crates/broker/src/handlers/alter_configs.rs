//! AlterConfigs (v0–2) for topics: replaces a topic's overrides. Every value is validated by
//! the registry (INVALID_CONFIG naming the key), `validate_only` is honoured, and changes are
//! persisted and applied without a restart. Broker-level dynamic configs are not supported
//! yet: the broker's configuration is static (file, env, flags). The helpers here also serve
//! IncrementalAlterConfigs (`incremental_alter_configs.rs`).

use super::Reply;
use crate::state::{AdminError, Broker};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub(super) fn invalid(message: String) -> AdminError {
    AdminError::new(ResponseError::InvalidConfig, message)
}

pub(super) fn check_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<BTreeMap<String, String>, AdminError> {
    match resource_type {
        RESOURCE_TOPIC => broker
            .topic(name)
            .map(|t| t.configs.clone())
            .ok_or_else(|| AdminError::new(ResponseError::UnknownTopicOrPartition, format!("Topic '{name}' does not exist."))),
        RESOURCE_BROKER => Err(AdminError::new(
            ResponseError::InvalidRequest,
            "dynamic broker configs are not supported yet: set broker keys in the config file, KLAMM_* env or --set",
        )),
        other => Err(AdminError::new(ResponseError::InvalidRequest, format!("resource type {other} is not supported"))),
    }
}

pub(super) fn validated(key: &str, value: &str) -> Result<String, AdminError> {
    klamm_config::validate_topic_config(key, value).map_err(|e| invalid(e.to_string()))
}

/// One incremental operation on a topic's overrides.
pub(super) fn apply_op(
    overrides: &mut BTreeMap<String, String>,
    key: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), AdminError> {
    let value_of = || value.ok_or_else(|| invalid(format!("a value is required to change {key}")));
    match op {
        OP_SET => {
            overrides.insert(key.to_string(), validated(key, value_of()?)?);
        }
        OP_DELETE => {
            if klamm_config::topic_def(key).is_none() {
                return Err(invalid(format!("unknown topic config {key}")));
            }
            overrides.remove(key);
        }
        OP_APPEND | OP_SUBTRACT => {
            if key != "cleanup.policy" {
                return Err(invalid(format!(
                    "{key} is not a list: APPEND and SUBTRACT apply to list configs"
                )));
            }
            let current = overrides
                .get(key)
                .cloned()
                .unwrap_or_else(|| "delete".to_string());
            let mut items: Vec<String> = current
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            for item in value_of()?
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if op == OP_APPEND && !items.iter().any(|i| i == item) {
                    items.push(item.to_string());
                } else if op == OP_SUBTRACT {
                    items.retain(|i| i != item);
                }
            }
            overrides.insert(key.to_string(), validated(key, &items.join(","))?);
        }
        other => {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}

pub(super) fn result(
    broker: &Broker,
    name: &str,
    overrides: Result<BTreeMap<String, String>, AdminError>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    let outcome = overrides.and_then(|o| {
        if validate_only {
            Ok(())
        } else {
            broker.set_topic_configs(name, o)
        }
    });
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.error.code(), Some(StrBytes::from_string(e.message))),
    }
}

/// AlterConfigs replaces the whole set of overrides: keys not listed return to defaults.
pub fn handle(broker: &Arc<Broker>, request: AlterConfigsRequest) -> Reply {
    let responses = request
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.as_str();
            let overrides = check_resource(broker, r.resource_type, name).and_then(|_| {
                let mut o = BTreeMap::new();
                for c in &r.configs {
                    let value = c
                        .value
                        .as_ref()
                        .ok_or_else(|| invalid(format!("null value for {}", c.name.as_str())))?;
                    o.insert(
                        c.name.as_str().to_string(),
                        validated(c.name.as_str(), value.as_str())?,
                    );
                }
                Ok(o)
            });
            let (code, message) = result(broker, name, overrides, request.validate_only);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    Reply::Now(ResponseKind::AlterConfigs(
        AlterConfigsResponse::default().with_responses(responses),
    ))
}
