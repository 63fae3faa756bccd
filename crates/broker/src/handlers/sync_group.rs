//! SyncGroup (v0–v5): the leader's assignment, handed to every member.

use super::Reply;
use crate::broker::Broker;
use crate::groups::Pending;
use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use klamm_coordinator::{ErrorCode, SyncOutcome, SyncRequest};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: SyncGroupRequest) -> Reply {
    let group = request.group_id.0.as_str().to_string();
    let req = SyncRequest {
        group_id: group.clone(),
        member_id: request.member_id.as_str().to_string(),
        group_instance_id: request
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str().to_string()),
        generation: request.generation_id,
        protocol_type: request
            .protocol_type
            .as_ref()
            .map(|s| s.as_str().to_string()),
        protocol_name: request
            .protocol_name
            .as_ref()
            .map(|s| s.as_str().to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.as_str().to_string(), a.assignment.clone()))
            .collect(),
    };
    match broker
        .groups
        .sync(broker, &group, |c| c.sync(req, broker.now_ms()))
    {
        Pending::Now(o) => Reply::Now(response(o)),
        Pending::Wait(rx) => Reply::Later(Box::pin(async move {
            response(
                rx.await
                    .unwrap_or_else(|_| SyncOutcome::error(ErrorCode::RebalanceInProgress)),
            )
        })),
    }
}

fn response(o: SyncOutcome) -> ResponseKind {
    ResponseKind::SyncGroup(
        SyncGroupResponse::default()
            .with_error_code(o.error.code())
            .with_protocol_type(o.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(o.protocol_name.map(StrBytes::from_string))
            .with_assignment(o.assignment),
    )
}
