//! AlterConfigs (v0–2): replaces all overrides of a topic, or one layer of dynamic broker
//! configs (resource `""`: the cluster-wide default; resource `"<node.id>"`: this broker).
//! Every value is validated by the registry (INVALID_CONFIG naming the key; static broker
//! keys are refused the same way), `validate_only` is honoured, and changes are persisted
//! and applied without a restart. The helpers here also serve IncrementalAlterConfigs
//! (`incremental_alter_configs.rs`).

use super::Reply;
use crate::broker::Broker;
use crate::state::AdminError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use klamm_config::{ConfigType, DynamicScope};
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

/// What a config change is for.
#[derive(Debug, Clone)]
pub(super) enum Target {
    Topic(String),
    Broker(DynamicScope),
}

impl Target {
    /// Checks a value for a key of this target and returns its normalized form.
    fn validated(&self, key: &str, value: &str) -> Result<String, AdminError> {
        let checked = match self {
            Target::Topic(_) => klamm_config::validate_topic_config(key, value),
            Target::Broker(_) => klamm_config::validate_dynamic(key, value),
        };
        checked.map_err(|e| invalid(e.to_string()))
    }

    /// `Some(default)` for a list key (APPEND and SUBTRACT start from its default when
    /// there is no override yet), `None` for other known keys.
    fn list_default(&self, key: &str) -> Result<Option<&'static str>, AdminError> {
        let (ty, default) = match self {
            Target::Topic(_) => {
                let def = klamm_config::topic_def(key)
                    .ok_or_else(|| invalid(format!("unknown topic config {key}")))?;
                (def.ty, def.default)
            }
            Target::Broker(_) => {
                let def = klamm_config::broker_def(key)
                    .ok_or_else(|| invalid(format!("unknown broker config {key}")))?;
                (def.ty, def.default)
            }
        };
        Ok((ty == ConfigType::List).then_some(default))
    }
}

/// Resolves a resource to its target and its current overrides.
pub(super) fn check_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<(Target, BTreeMap<String, String>), AdminError> {
    match resource_type {
        RESOURCE_TOPIC => broker
            .topic(name)
            .map(|t| (Target::Topic(name.to_string()), t.configs.clone()))
            .ok_or_else(|| {
                AdminError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic '{name}' does not exist."),
                )
            }),
        RESOURCE_BROKER => {
            let scope = broker_scope(broker, name)?;
            Ok((Target::Broker(scope), broker.config().dynamic(scope)))
        }
        other => Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("resource type {other} is not supported"),
        )),
    }
}

/// Broker resource `""` is the cluster-wide default; otherwise it names a broker by id.
pub(super) fn broker_scope(broker: &Broker, name: &str) -> Result<DynamicScope, AdminError> {
    if name.is_empty() {
        return Ok(DynamicScope::ClusterDefault);
    }
    let node_id = broker.settings.node_id;
    match name.parse::<i32>() {
        Ok(id) if id == node_id => Ok(DynamicScope::Broker),
        Ok(id) => Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("unknown broker {id}: this cluster has broker {node_id}"),
        )),
        Err(_) => Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("broker resource name {name:?} is not a broker id (or \"\" for the cluster-wide default)"),
        )),
    }
}

/// One incremental operation on a target's overrides.
pub(super) fn apply_op(
    target: &Target,
    overrides: &mut BTreeMap<String, String>,
    key: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), AdminError> {
    let value_of = || value.ok_or_else(|| invalid(format!("a value is required to change {key}")));
    match op {
        OP_SET => {
            overrides.insert(key.to_string(), target.validated(key, value_of()?)?);
        }
        OP_DELETE => {
            target.list_default(key)?;
            overrides.remove(key);
        }
        OP_APPEND | OP_SUBTRACT => {
            let Some(default) = target.list_default(key)? else {
                return Err(invalid(format!(
                    "{key} is not a list: APPEND and SUBTRACT apply to list configs"
                )));
            };
            let current = overrides
                .get(key)
                .cloned()
                .unwrap_or_else(|| default.to_string());
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
            overrides.insert(key.to_string(), target.validated(key, &items.join(","))?);
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

/// Stores the new overrides (unless `validate_only`) and gives the response's error fields.
pub(super) fn result(
    broker: &Broker,
    change: Result<(Target, BTreeMap<String, String>), AdminError>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    let outcome = change.and_then(|(target, overrides)| {
        let keys = overrides.keys().map(String::as_str);
        if let (Target::Topic(_), Some(refused)) = (
            &target,
            crate::internal::refuse_test_keys(&broker.config(), keys),
        ) {
            return Err(refused);
        }
        match target {
            _ if validate_only => Ok(()),
            Target::Topic(name) => broker.set_topic_configs(&name, overrides),
            Target::Broker(scope) => broker.set_broker_configs(scope, &overrides),
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
            let change = check_resource(broker, r.resource_type, name).and_then(|(target, _)| {
                let mut o = BTreeMap::new();
                for c in &r.configs {
                    let key = c.name.as_str();
                    let value = c
                        .value
                        .as_ref()
                        .ok_or_else(|| invalid(format!("null value for {key}")))?;
                    o.insert(key.to_string(), target.validated(key, value.as_str())?);
                }
                Ok((target, o))
            });
            let (code, message) = result(broker, change, request.validate_only);
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
