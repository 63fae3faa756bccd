//! JoinGroup (v0–v9): parked until the rebalance completes (see `klamm-coordinator`).

use super::ConnectionInfo;
use super::Reply;
use crate::broker::Broker;
use crate::groups::Pending;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use klamm_coordinator::{ErrorCode, JoinOutcome, JoinRequest};
use std::sync::Arc;

/// KIP-394: from v4 a new member must rejoin with the id it is given.
const KNOWN_MEMBER_ID_MIN_VERSION: i16 = 4;

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: JoinGroupRequest,
    version: i16,
    info: &ConnectionInfo,
) -> Reply {
    let group = request.group_id.0.as_str().to_string();
    let req = JoinRequest {
        group_id: group.clone(),
        member_id: request.member_id.as_str().to_string(),
        group_instance_id: request
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str().to_string()),
        client_id: header
            .client_id
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", info.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.as_str().to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= KNOWN_MEMBER_ID_MIN_VERSION,
    };
    let member_id = req.member_id.clone();
    match broker
        .groups
        .join(broker, &group, |c| c.join(req, broker.now_ms()))
    {
        Pending::Now(o) => Reply::Now(response(o, version)),
        Pending::Wait(rx) => Reply::Later(Box::pin(async move {
            // A dropped sender means the member was replaced or removed meanwhile.
            let o = rx
                .await
                .unwrap_or_else(|_| JoinOutcome::error(ErrorCode::UnknownMemberId, &member_id));
            response(o, version)
        })),
    }
}

/// JoinGroup v9 is the first with SkipAssignment (KIP-814): before it, the field must stay
/// unset (the encoder refuses it) and a static leader runs the assignment again, as with Kafka.
const SKIP_ASSIGNMENT_MIN_VERSION: i16 = 9;

fn response(o: JoinOutcome, version: i16) -> ResponseKind {
    let members = o
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(id))
                .with_group_instance_id(instance.map(StrBytes::from_string))
                .with_metadata(metadata)
        })
        .collect();
    ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(o.error.code())
            .with_generation_id(o.generation)
            .with_protocol_type(o.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(Some(StrBytes::from_string(
                o.protocol_name.unwrap_or_default(),
            )))
            .with_leader(StrBytes::from_string(o.leader))
            .with_member_id(StrBytes::from_string(o.member_id))
            .with_skip_assignment(o.skip_assignment && version >= SKIP_ASSIGNMENT_MIN_VERSION)
            .with_members(members),
    )
}
