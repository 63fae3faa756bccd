//! FindCoordinator (v0–v6): this broker coordinates every group (key type 0) and every
//! transactional id (key type 1). The internal topic behind each is created on first ask.

use super::ConnectionInfo;
use super::Reply;
use crate::broker::Broker;
use crate::internal::{OFFSETS_TOPIC, TXN_TOPIC};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// v4 replaced the single key with a batch of keys.
const BATCHED_MIN_VERSION: i16 = 4;

pub fn handle(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
    info: &ConnectionInfo,
) -> Reply {
    let (host, port) = super::metadata::advertised(broker, info);
    let node = BrokerId(broker.settings.node_id);
    let error = if request.key_type == KEY_TYPE_GROUP {
        // Create __consumer_offsets now, as Kafka does, so the first commit does not pay for it.
        broker.internal_topic(OFFSETS_TOPIC).err().map(|e| {
            tracing::error!(error = %e.message, "cannot create __consumer_offsets");
            ResponseError::CoordinatorNotAvailable
        })
    } else if request.key_type == KEY_TYPE_TRANSACTION {
        broker.internal_topic(TXN_TOPIC).err().map(|e| {
            tracing::error!(error = %e.message, "cannot create __transaction_state");
            ResponseError::CoordinatorNotAvailable
        })
    } else {
        Some(ResponseError::InvalidRequest)
    };
    let code = error.map_or(0, |e| e.code());
    let (node, host, port) = if code == 0 {
        (node, host, port)
    } else {
        (BrokerId(-1), String::new(), -1)
    };
    let response = if version >= BATCHED_MIN_VERSION {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node)
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(port)
                    .with_error_code(code)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_node_id(node)
            .with_host(StrBytes::from_string(host))
            .with_port(port)
    };
    Reply::Now(ResponseKind::FindCoordinator(response))
}
