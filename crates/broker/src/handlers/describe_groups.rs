//! DescribeGroups (v0–v5): state, protocol and members with their metadata and assignment.
//! An unknown group is described as `Dead` with no error, as Kafka does before v6.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: DescribeGroupsRequest) -> Reply {
    let ops = if request.include_authorized_operations {
        super::GROUP_AUTHORIZED_OPERATIONS
    } else {
        super::AUTHORIZED_OPERATIONS_OMITTED
    };
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(ops);
            match broker.groups.read(|c| c.describe(id.0.as_str())) {
                None => base.with_group_state(StrBytes::from_static_str("Dead")),
                Some(d) => {
                    let members = d
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(
                                    m.group_instance_id.map(StrBytes::from_string),
                                )
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect();
                    base.with_group_state(StrBytes::from_static_str(d.state.kafka_name()))
                        .with_protocol_type(StrBytes::from_string(d.protocol_type))
                        .with_protocol_data(StrBytes::from_string(d.protocol))
                        .with_members(members)
                }
            }
        })
        .collect();
    Reply::Now(ResponseKind::DescribeGroups(
        DescribeGroupsResponse::default().with_groups(groups),
    ))
}
