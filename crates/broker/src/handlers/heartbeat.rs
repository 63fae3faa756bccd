//! Heartbeat (v0–v4): keeps a member's session alive and tells it of rebalances.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, ResponseKind};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: HeartbeatRequest) -> Reply {
    let instance = request.group_instance_id.as_ref().map(|s| s.as_str());
    let (code, _) = broker.groups.with(broker, |c| {
        let code = c.heartbeat(
            request.group_id.0.as_str(),
            request.member_id.as_str(),
            instance,
            request.generation_id,
            broker.now_ms(),
        );
        (code, Default::default())
    });
    Reply::Now(ResponseKind::Heartbeat(
        HeartbeatResponse::default().with_error_code(code.code()),
    ))
}
