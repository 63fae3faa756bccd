//! ListGroups (v0–v5): every group, filtered by state (v4+) and type (v5+; all are classic).

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

const GROUP_TYPE: &str = "classic";

pub fn handle(broker: &Arc<Broker>, request: ListGroupsRequest) -> Reply {
    let wanted = |filter: &[StrBytes], value: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(value))
    };
    let groups = broker
        .groups
        .read(|c| c.list())
        .into_iter()
        .filter(|(_, _, state)| wanted(&request.states_filter, state.kafka_name()))
        .filter(|_| wanted(&request.types_filter, GROUP_TYPE))
        .map(|(id, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(StrBytes::from_static_str(state.kafka_name()))
                .with_group_type(StrBytes::from_static_str(GROUP_TYPE))
        })
        .collect();
    Reply::Now(ResponseKind::ListGroups(
        ListGroupsResponse::default().with_groups(groups),
    ))
}
