//! DescribeCluster: this broker, as advertised on the connection's listener.

use super::ConnectionInfo;
use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
    info: &ConnectionInfo,
) -> Reply {
    let ops = if request.include_cluster_authorized_operations {
        super::CLUSTER_AUTHORIZED_OPERATIONS
    } else {
        super::AUTHORIZED_OPERATIONS_OMITTED
    };
    let (host, port) = super::metadata::advertised(broker, info);
    let me = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.settings.node_id))
        .with_host(StrBytes::from_string(host))
        .with_port(port);
    Reply::Now(ResponseKind::DescribeCluster(
        DescribeClusterResponse::default()
            .with_endpoint_type(1)
            .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
            .with_controller_id(BrokerId(broker.settings.node_id))
            .with_cluster_authorized_operations(ops)
            .with_brokers(vec![me]),
    ))
}
