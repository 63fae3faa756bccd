//! LeaveGroup (v0–v5): one member (v0–v2) or a batch, by member id or instance id (v3+).

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

const BATCHED_MIN_VERSION: i16 = 3;

pub fn handle(broker: &Arc<Broker>, request: LeaveGroupRequest, version: i16) -> Reply {
    let members: Vec<(String, Option<String>)> = if version >= BATCHED_MIN_VERSION {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.as_str().to_string(),
                    m.group_instance_id.as_ref().map(|s| s.as_str().to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.as_str().to_string(), None)]
    };
    let group = request.group_id.0.as_str();
    let ((code, errs), _) = broker.groups.with(broker, |c| {
        let (code, errs, effects) = c.leave(group, &members, broker.now_ms());
        ((code, errs), effects)
    });
    let response = if version >= BATCHED_MIN_VERSION {
        let rows = members
            .into_iter()
            .zip(errs)
            .map(|((id, instance), e)| {
                MemberResponse::default()
                    .with_member_id(StrBytes::from_string(id))
                    .with_group_instance_id(instance.map(StrBytes::from_string))
                    .with_error_code(e.code())
            })
            .collect();
        LeaveGroupResponse::default()
            .with_error_code(code.code())
            .with_members(rows)
    } else {
        LeaveGroupResponse::default()
            .with_error_code(if code.is_ok() { errs[0] } else { code }.code())
    };
    Reply::Now(ResponseKind::LeaveGroup(response))
}
