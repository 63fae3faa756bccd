//! DeleteGroups (v0–v2): empty groups only; their offsets go with them.

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, ResponseKind};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: DeleteGroupsRequest) -> Reply {
    let results = request
        .groups_names
        .into_iter()
        .map(|g| {
            let (code, _) = broker.groups.with(broker, |c| c.delete_group(g.0.as_str()));
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code.code())
        })
        .collect();
    Reply::Now(ResponseKind::DeleteGroups(
        DeleteGroupsResponse::default().with_results(results),
    ))
}
