//! WriteTxnMarkers (v1): write COMMIT or ABORT markers for a producer's transaction in the
//! partitions named. Klamm's own transaction coordinator writes its markers in-process; a
//! client sends this to end a hanging transaction (the admin's `abortTransaction`, Kafka's
//! `kafka-transactions.sh abort`).
//!
//! As Kafka's leader does: an unknown partition gets UNKNOWN_TOPIC_OR_PARTITION; a marker
//! whose producer epoch is older than the partition's current one for that producer is
//! refused with INVALID_PRODUCER_EPOCH (the check and the append are one step); a marker
//! reaching `__consumer_offsets` also settles the producer's pending offset commits. The
//! answer waits until every marker written is durable, like `acks=all`. Kafka also fences
//! markers from an older coordinator epoch; Klamm's producer state keeps no coordinator
//! epoch (its coordinator's is always 0), so that check is not made.
//!
//! v0 (Kafka 3.9 still served it, to brokers of 2.x) is not served: the crate decodes v1
//! only, and every client that sends this API (Java admin 2.8+) sends v1.

use super::Reply;
use crate::broker::Broker;
use crate::partition::Partition;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::WritableTxnMarker;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ResponseKind, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use std::sync::Arc;

pub fn handle(broker: &Arc<Broker>, request: WriteTxnMarkersRequest) -> Reply {
    let now_ms = broker.now_ms();
    let mut written: Vec<(Arc<Partition>, i64)> = Vec::new();
    let mut markers = Vec::with_capacity(request.markers.len());
    for mut marker in request.markers {
        let mut topics = Vec::with_capacity(marker.topics.len());
        for t in std::mem::take(&mut marker.topics) {
            let topic = broker.topic(t.name.0.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let error = match topic.as_ref().and_then(|t| t.partition(index)) {
                        None => ResponseError::UnknownTopicOrPartition.code(),
                        Some(p) => write_one(broker, p, &marker, now_ms, &mut written),
                    };
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(error)
                })
                .collect();
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    let response =
        ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(markers));
    if written.is_empty() {
        return Reply::Now(response);
    }
    Reply::Later(Box::pin(async move {
        for (partition, offset) in written {
            partition.wait_visible(offset).await;
        }
        response
    }))
}

/// Writes `marker` to one partition; its error code (0 once written, noted in `written`).
fn write_one(
    broker: &Broker,
    partition: &Arc<Partition>,
    marker: &WritableTxnMarker,
    now_ms: i64,
    written: &mut Vec<(Arc<Partition>, i64)>,
) -> i16 {
    let producer = (marker.producer_id.0, marker.producer_epoch);
    let commit = marker.transaction_result;
    let (topic, index) = (partition.topic.as_str(), partition.index);
    match partition.append_client_marker(producer, commit, marker.coordinator_epoch, now_ms) {
        Ok(Ok(offset)) => {
            written.push((partition.clone(), offset));
            crate::txn::marker_written(broker, topic, producer.0, commit, now_ms);
            0
        }
        Ok(Err(current_epoch)) => {
            tracing::info!(
                topic,
                partition = index,
                producer_id = producer.0,
                epoch = producer.1,
                current_epoch,
                "stale transaction marker refused"
            );
            ResponseError::InvalidProducerEpoch.code()
        }
        Err(e) => {
            tracing::error!(topic, partition = index, error = %e, "cannot write a transaction marker");
            ResponseError::KafkaStorageError.code()
        }
    }
}
