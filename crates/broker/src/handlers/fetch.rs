//! Fetch (v4–v12). Whole batches up to the high watermark, within `max_bytes` and each
//! partition's `partition_max_bytes`, except that the first partition with data returns at
//! least one whole batch (KIP-74). A long poll waits up to `max_wait_ms` for `min_bytes`,
//! woken as soon as any high watermark moves. Fetch sessions are declined (session id 0),
//! which KIP-227 allows: clients then send full fetch requests.

use super::Reply;
use crate::state::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ResponseKind};
use klamm_log::LogError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// `isolation_level` of a read_committed consumer.
const READ_COMMITTED: i8 = 1;

pub fn handle(broker: &Arc<Broker>, request: FetchRequest, _version: i16) -> Reply {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let mut changed = broker.data_changed.subscribe();
    let (response, done) = build(broker, &request);
    if done {
        return Reply::Now(ResponseKind::Fetch(response));
    }
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                r = changed.changed() => if r.is_err() { break },
            }
            let (response, done) = build(&broker, &request);
            if done {
                return ResponseKind::Fetch(response);
            }
        }
        ResponseKind::Fetch(build(&broker, &request).0)
    }))
}

/// One pass over the requested partitions. `done` when the response should go out now:
/// `min_bytes` reached, or a partition reported an error.
fn build(broker: &Broker, request: &FetchRequest) -> (FetchResponse, bool) {
    let mut budget = request.max_bytes.max(0) as u64;
    let mut total_bytes = 0u64;
    let mut any_error = false;
    let read_committed = request.isolation_level == READ_COMMITTED;
    let mut topics = Vec::with_capacity(request.topics.len());
    for ft in &request.topics {
        let topic = broker.topic(ft.topic.0.as_str());
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_aborted_transactions(read_committed.then(Vec::new));
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                any_error = true;
                partitions
                    .push(data.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let max_bytes = budget.min(fp.partition_max_bytes.max(0) as u64);
            match partition.read(fp.fetch_offset, max_bytes, total_bytes == 0) {
                Ok(read) => {
                    let n = read.records.len() as u64;
                    total_bytes += n;
                    budget = budget.saturating_sub(n);
                    data = data
                        .with_high_watermark(read.high_watermark)
                        .with_last_stable_offset(read.high_watermark)
                        .with_log_start_offset(read.log_start_offset)
                        .with_records(Some(read.records));
                }
                Err(LogError::OffsetOutOfRange {
                    log_start_offset, ..
                }) => {
                    any_error = true;
                    let hw = partition.high_watermark();
                    data = data
                        .with_error_code(ResponseError::OffsetOutOfRange.code())
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(log_start_offset);
                }
                Err(LogError::Io(e)) => {
                    any_error = true;
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "read failed");
                    data = data.with_error_code(ResponseError::KafkaStorageError.code());
                }
            }
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(partitions),
        );
    }
    let done = any_error || total_bytes >= request.min_bytes.max(0) as u64;
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        done,
    )
}
