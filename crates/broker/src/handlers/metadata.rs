//! Metadata: brokers (as advertised on the connection's listener), topics with ids and
//! partitions, and auto-creation of requested topics when `auto.create.topics.enable`.

use super::ConnectionInfo;
use super::{
    Reply, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_AUTHORIZED_OPERATIONS,
    TOPIC_AUTHORIZED_OPERATIONS,
};
use crate::broker::Broker;
use crate::partition::LEADER_EPOCH;
use crate::state::Topic;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use uuid::Uuid;

/// `(host, port)` clients should use, for the listener this connection arrived on.
pub fn advertised(broker: &Broker, info: &ConnectionInfo) -> (String, i32) {
    let s = &broker.settings;
    let i = s
        .listeners
        .iter()
        .position(|l| l.name == info.listener)
        .unwrap_or(0);
    let a = &s.advertised_listeners[i];
    (a.host.clone(), a.port as i32)
}

/// Whether answering may auto-create a requested topic (a metadata-image fsync).
pub fn may_create_topics(broker: &Broker, request: &MetadataRequest) -> bool {
    request.allow_auto_topic_creation
        && request.topics.iter().flatten().any(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| broker.would_auto_create(n.0.as_str()))
        })
}

pub fn handle(
    broker: &Arc<Broker>,
    request: MetadataRequest,
    version: i16,
    info: &ConnectionInfo,
) -> Reply {
    let node = BrokerId(broker.settings.node_id);
    // v0–v3 have no flag: those versions always auto-create.
    let may_create = version < 4 || request.allow_auto_topic_creation;
    let topic_ops = if request.include_topic_authorized_operations {
        TOPIC_AUTHORIZED_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let cluster_ops = if request.include_cluster_authorized_operations {
        CLUSTER_AUTHORIZED_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let topics = match request.topics {
        // v1+: null means every topic. v0: an empty list means every topic.
        None => all_topics(broker, node),
        Some(list) if list.is_empty() && version == 0 => all_topics(broker, node),
        Some(list) => list
            .into_iter()
            // A topic named by id is looked up by id whatever its name says: the Java
            // client sends an empty name beside the id, not a null one.
            .map(|t| match t.name {
                Some(name) if t.topic_id.is_nil() => {
                    by_name(broker, name.0.as_str(), may_create, node)
                }
                _ => by_id(broker, t.topic_id, node),
            })
            .collect(),
    };
    let (host, port) = advertised(broker, info);
    let me = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(host))
        .with_port(port);
    Reply::Now(ResponseKind::Metadata(
        MetadataResponse::default()
            .with_brokers(vec![me])
            .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
            .with_controller_id(node)
            .with_cluster_authorized_operations(cluster_ops)
            .with_topics(
                topics
                    .into_iter()
                    .map(|t| {
                        if t.error_code == 0 {
                            t.with_topic_authorized_operations(topic_ops)
                        } else {
                            t
                        }
                    })
                    .collect(),
            ),
    ))
}

fn all_topics(broker: &Broker, node: BrokerId) -> Vec<MetadataResponseTopic> {
    broker.topics().iter().map(|t| describe(t, node)).collect()
}

fn by_name(broker: &Broker, name: &str, may_create: bool, node: BrokerId) -> MetadataResponseTopic {
    let found = if may_create {
        broker.get_or_auto_create(name)
    } else {
        broker.topic(name).ok_or_else(|| {
            crate::state::AdminError::new(ResponseError::UnknownTopicOrPartition, "")
        })
    };
    match found {
        Ok(t) => describe(&t, node),
        Err(e) => MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
            .with_error_code(e.error.code())
            .with_topic_authorized_operations(i32::MIN),
    }
}

fn by_id(broker: &Broker, id: Uuid, node: BrokerId) -> MetadataResponseTopic {
    match broker.topic_by_id(id) {
        Some(t) => describe(&t, node),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code())
            .with_topic_authorized_operations(i32::MIN),
    }
}

fn describe(topic: &Topic, node: BrokerId) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(crate::internal::is_internal(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
