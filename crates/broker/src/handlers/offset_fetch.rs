//! OffsetFetch (v1–v8): committed offsets of one group (v1–v7) or several (v8), for the
//! listed partitions or (topics null) all of them. With `require_stable` (v7+), a partition
//! whose offset waits on an open transaction answers UNSTABLE_OFFSET_COMMIT (the consumer
//! retries until the transaction ends).

use super::Reply;
use crate::broker::Broker;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use klamm_coordinator::CommittedOffset;
use std::collections::BTreeMap;
use std::sync::Arc;

const MULTI_GROUP_MIN_VERSION: i16 = 8;

/// Per topic: `(partition, committed offset, error code)`.
type Rows = BTreeMap<String, Vec<(i32, Option<CommittedOffset>, i16)>>;

const UNSTABLE_OFFSET_COMMIT: i16 = 88;

fn fetch(
    broker: &Broker,
    group: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> Rows {
    broker.groups.read(|c| {
        let mut rows: Rows = BTreeMap::new();
        for (topic, p, v) in c.fetch_offsets(group, wanted.as_deref()) {
            let unstable = require_stable && c.has_pending_txn_offset(group, &topic, p);
            let code = if unstable { UNSTABLE_OFFSET_COMMIT } else { 0 };
            rows.entry(topic).or_default().push((p, v, code));
        }
        rows
    })
}

fn metadata(v: &Option<CommittedOffset>) -> (i64, i32, Option<StrBytes>) {
    match v {
        Some(v) => (
            v.offset,
            v.leader_epoch,
            Some(StrBytes::from_string(v.metadata.clone())),
        ),
        None => (-1, -1, Some(StrBytes::from_static_str(""))),
    }
}

pub fn handle(broker: &Arc<Broker>, request: OffsetFetchRequest, version: i16) -> Reply {
    if version >= MULTI_GROUP_MIN_VERSION {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .flat_map(|t| {
                            t.partition_indexes
                                .iter()
                                .map(move |p| (t.name.0.as_str().to_string(), *p))
                        })
                        .collect()
                });
                let topics = fetch(
                    broker,
                    g.group_id.0.as_str(),
                    wanted,
                    request.require_stable,
                )
                .into_iter()
                .map(|(name, parts)| {
                    let partitions = parts
                        .iter()
                        .map(|(p, v, code)| {
                            let (offset, epoch, meta) = metadata(v);
                            OffsetFetchResponsePartitions::default()
                                .with_error_code(*code)
                                .with_partition_index(*p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(meta)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_partitions(partitions)
                })
                .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics)
            })
            .collect();
        return Reply::Now(ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_groups(groups),
        ));
    }
    let wanted = request.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.0.as_str().to_string(), *p))
            })
            .collect()
    });
    let topics = fetch(
        broker,
        request.group_id.0.as_str(),
        wanted,
        request.require_stable,
    )
    .into_iter()
    .map(|(name, parts)| {
        let partitions = parts
            .iter()
            .map(|(p, v, code)| {
                let (offset, epoch, meta) = metadata(v);
                OffsetFetchResponsePartition::default()
                    .with_error_code(*code)
                    .with_partition_index(*p)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(epoch)
                    .with_metadata(meta)
            })
            .collect();
        OffsetFetchResponseTopic::default()
            .with_name(TopicName(StrBytes::from_string(name)))
            .with_partitions(partitions)
    })
    .collect();
    Reply::Now(ResponseKind::OffsetFetch(
        OffsetFetchResponse::default().with_topics(topics),
    ))
}
