//! IncrementalAlterConfigs (v0–1) for topics and dynamic broker configs: SET, DELETE, APPEND
//! and SUBTRACT on single keys, validated like AlterConfigs (`alter_configs.rs`, whose
//! helpers this uses).

use super::alter_configs::{apply_op, check_resource, result};
use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::{
    incremental_alter_configs_response, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ResponseKind,
};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: IncrementalAlterConfigsRequest) -> Reply {
    let responses = request
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.as_str();
            let change =
                check_resource(broker, r.resource_type, name).and_then(|(target, mut o)| {
                    for c in &r.configs {
                        apply_op(
                            &target,
                            &mut o,
                            c.name.as_str(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.as_str()),
                        )?;
                    }
                    Ok((target, o))
                });
            let (code, message) = result(broker, change, request.validate_only);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    Reply::Now(ResponseKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsResponse::default().with_responses(responses),
    ))
}
