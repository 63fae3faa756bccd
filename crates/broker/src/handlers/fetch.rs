//! Fetch (v0–v17; v0–v3 down-converted to magic 0/1 message sets, v13+ by topic id). Whole batches up to the high watermark (read_committed: the last stable
//! offset, with the aborted transactions in the returned range), within `max_bytes` and each
//! partition's `partition_max_bytes`, except that the first partition with data returns at
//! least one whole batch (KIP-74). A long poll waits up to `max_wait_ms` for `min_bytes`,
//! woken as soon as the high watermark of one of its own partitions moves. Fetch sessions are declined (session id 0),
//! which KIP-227 allows: clients then send full fetch requests.

use super::Reply;
use crate::broker::Broker;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use klamm_log::LogError;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// `isolation_level` of a read_committed consumer.
const READ_COMMITTED: i8 = 1;

pub fn handle(broker: &Arc<Broker>, mut request: FetchRequest, version: i16) -> Reply {
    let started = Instant::now();
    if version >= FIRST_TOPIC_ID_VERSION {
        resolve_topic_ids(broker, &mut request);
    }
    if version >= FIRST_REPLICA_STATE_VERSION {
        // KIP-903 moved the replica id into `replica_state`.
        request.replica_id = request.replica_state.replica_id;
    }
    let deadline = started + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let repeats = repeated_partitions(&request);
    let (response, done) = build(broker, &request, repeats.as_ref());
    if done {
        record(broker, &response, started.elapsed(), Duration::ZERO);
        let response = down_convert(broker, &request, response, version);
        return Reply::Now(ResponseKind::Fetch(response));
    }
    let broker = broker.clone();
    let mut draining = broker.draining();
    Reply::Later(Box::pin(async move {
        let mut waited = Duration::ZERO;
        let mut timed_out = false;
        loop {
            // Watched before each read (the first one again, now that it parks), so an
            // append between the read and the wait still wakes it; an answer that goes out
            // at once never subscribes.
            let mut watches = watch_partitions(&broker, &request);
            let (response, done) = build(&broker, &request, repeats.as_ref());
            if done || timed_out {
                record(
                    &broker,
                    &response,
                    started.elapsed().saturating_sub(waited),
                    waited,
                );
                return ResponseKind::Fetch(down_convert(&broker, &request, response, version));
            }
            let wait_started = Instant::now();
            // At shutdown a long poll answers with what it has, as at its deadline.
            timed_out = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => true,
                _ = draining.wait() => true,
                _ = any_moved(&mut watches) => false,
            };
            waited += wait_started.elapsed();
            if !timed_out && broker.settings.metrics_enabled {
                crate::metrics::metrics().fetch_wakeups.inc();
            }
        }
    }))
}

/// Fetch v13 names topics by id only (KIP-516).
const FIRST_TOPIC_ID_VERSION: i16 = 13;
/// Fetch v15 carries the replica id in `replica_state` (KIP-903).
const FIRST_REPLICA_STATE_VERSION: i16 = 15;

/// Fetch v13+: each topic's name from its id, resolved once per request (a topic deleted
/// meanwhile answers UNKNOWN_TOPIC_OR_PARTITION on the next pass, as by name). An unknown
/// id leaves the name empty, answered UNKNOWN_TOPIC_ID.
fn resolve_topic_ids(broker: &Broker, request: &mut FetchRequest) {
    for ft in &mut request.topics {
        if let Some(topic) = broker.topic_by_id(ft.topic_id) {
            ft.topic = TopicName(StrBytes::from_string(topic.name.clone()));
        }
    }
}

/// Fetch v4 is the first to carry v2 record batches; v0–v1 consumers read magic 0
/// messages, v2–v3 magic 1.
const FIRST_BATCH_VERSION: i16 = 4;

/// For Fetch v0–v3: every partition's records down-converted to the old format the version
/// reads, as Kafka 3.x does. Memory is bounded per partition by the client's
/// `partition_max_bytes` (at least one message, so a consumer still advances), on top of the
/// read that `fetch.max.bytes` already bounds; a batch is decompressed within the topic's
/// `message.max.decompressed.bytes`. A partition whose first batch cannot be converted
/// answers CORRUPT_MESSAGE.
fn down_convert(
    broker: &Broker,
    request: &FetchRequest,
    mut response: FetchResponse,
    version: i16,
) -> FetchResponse {
    if version >= FIRST_BATCH_VERSION {
        return response;
    }
    let magic = if version >= 2 { 1 } else { 0 };
    for (ft, rt) in request.topics.iter().zip(response.responses.iter_mut()) {
        let max_decompressed = broker
            .topic(ft.topic.0.as_str())
            .map_or(usize::MAX, |t| t.settings.max_decompressed_bytes);
        for (fp, p) in ft.partitions.iter().zip(rt.partitions.iter_mut()) {
            let Some(records) = p.records.take() else {
                continue;
            };
            match klamm_protocol::legacy::message_set::down_convert(
                &records,
                magic,
                fp.fetch_offset,
                fp.partition_max_bytes.max(0) as usize,
                max_decompressed,
            ) {
                Ok(set) => p.records = Some(set),
                Err(e) => {
                    tracing::warn!(topic = %ft.topic.0, partition = fp.partition, error = %e, "cannot down-convert for an old fetch version");
                    p.error_code = e.kafka_error().code();
                    p.records = Some(Bytes::new());
                }
            }
        }
    }
    response
}

/// The high watermarks of the request's partitions that exist now: a parked fetch wakes
/// only when one of its own partitions moves (appends to other partitions do not wake it).
fn watch_partitions(broker: &Broker, request: &FetchRequest) -> Vec<watch::Receiver<i64>> {
    let mut watches = Vec::new();
    for ft in &request.topics {
        if let Some(topic) = broker.topic(ft.topic.0.as_str()) {
            watches.extend(
                ft.partitions
                    .iter()
                    .filter_map(|fp| topic.partition(fp.partition))
                    .map(|p| p.watch_high_watermark()),
            );
        }
    }
    watches
}

/// Resolves when a watched high watermark moves or its partition goes away (deleted: the
/// next pass answers UNKNOWN_TOPIC_OR_PARTITION); never, with nothing to watch.
async fn any_moved(watches: &mut [watch::Receiver<i64>]) {
    if watches.is_empty() {
        return std::future::pending().await;
    }
    let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
    let _ = futures_util::future::select_all(changes).await;
}

/// Fetch metrics: processing time and long-poll wait apart, bytes and records per topic.
fn record(broker: &Broker, response: &FetchResponse, processing: Duration, waited: Duration) {
    crate::handlers::note_slow(broker, "Fetch", processing);
    if !broker.settings.metrics_enabled {
        return;
    }
    let m = crate::metrics::metrics();
    m.request_duration
        .with_label_values(&["Fetch"])
        .observe(processing.as_secs_f64());
    m.fetch_wait.observe(waited.as_secs_f64());
    for t in &response.responses {
        let (mut bytes, mut records) = (0u64, 0u64);
        for p in &t.partitions {
            if let Some(r) = &p.records {
                bytes += r.len() as u64;
                records += klamm_protocol::batch::headers(r)
                    .map(|(_, h)| h.records_count.max(0) as u64)
                    .sum::<u64>();
            }
        }
        if bytes > 0 {
            m.fetch_bytes
                .with_label_values(&[t.topic.0.as_str()])
                .inc_by(bytes);
            m.fetch_records
                .with_label_values(&[t.topic.0.as_str()])
                .inc_by(records);
        }
    }
}

/// The (topic, partition) positions in the request that name a partition listed earlier in
/// it, or `None` (the usual case). Found once per request, not once per long-poll pass.
fn repeated_partitions(request: &FetchRequest) -> Option<HashSet<(usize, usize)>> {
    let mut seen: HashSet<(&str, i32)> = HashSet::new();
    let mut repeats = HashSet::new();
    for (ti, ft) in request.topics.iter().enumerate() {
        for (pi, fp) in ft.partitions.iter().enumerate() {
            if !seen.insert((ft.topic.0.as_str(), fp.partition)) {
                repeats.insert((ti, pi));
            }
        }
    }
    (!repeats.is_empty()).then_some(repeats)
}

/// One pass over the requested partitions. `done` when the response should go out now:
/// `min_bytes` reached, or a partition reported an error.
fn build(
    broker: &Broker,
    request: &FetchRequest,
    repeats: Option<&HashSet<(usize, usize)>>,
) -> (FetchResponse, bool) {
    // The broker's cap bounds every response, whatever the request asks: a client asking
    // for INT_MAX bytes of many partitions gets `fetch.max.bytes` (KIP-74's first batch
    // aside, which `message.max.bytes` bounds).
    let cap = if request.replica_id.0 >= 0 {
        broker.settings.replica_fetch_response_max_bytes
    } else {
        broker.settings.fetch_max_bytes
    };
    let mut budget = (request.max_bytes.max(0) as u64).min(cap);
    let mut total_bytes = 0u64;
    let mut any_error = false;
    let read_committed = request.isolation_level == READ_COMMITTED;
    let mut topics = Vec::with_capacity(request.topics.len());
    for (ti, ft) in request.topics.iter().enumerate() {
        let topic = broker.topic(ft.topic.0.as_str());
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for (pi, fp) in ft.partitions.iter().enumerate() {
            let mut data = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_aborted_transactions(read_committed.then(Vec::new));
            if repeats.is_some_and(|r| r.contains(&(ti, pi))) {
                // Listed twice in one request: served once, the repeat refused (as Kafka
                // refuses duplicate partitions in ListOffsets), never read twice.
                any_error = true;
                partitions.push(data.with_error_code(ResponseError::InvalidRequest.code()));
                continue;
            }
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                any_error = true;
                let unknown = if ft.topic.0.is_empty() && !ft.topic_id.is_nil() {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                partitions.push(data.with_error_code(unknown.code()));
                continue;
            };
            let max_bytes = budget.min(fp.partition_max_bytes.max(0) as u64);
            match partition.read_isolated(
                fp.fetch_offset,
                max_bytes,
                total_bytes == 0,
                read_committed,
            ) {
                Ok(read) => {
                    let n = read.records.len() as u64;
                    total_bytes += n;
                    budget = budget.saturating_sub(n);
                    let aborted = read_committed.then(|| {
                        read.aborted_transactions
                            .iter()
                            .map(|&(pid, first)| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(pid))
                                    .with_first_offset(first)
                            })
                            .collect()
                    });
                    data = data
                        .with_high_watermark(read.high_watermark)
                        .with_last_stable_offset(read.last_stable_offset)
                        .with_log_start_offset(read.log_start_offset)
                        .with_aborted_transactions(aborted)
                        .with_records(Some(read.records));
                }
                Err(LogError::OffsetOutOfRange {
                    log_start_offset, ..
                }) => {
                    any_error = true;
                    data = data
                        .with_error_code(ResponseError::OffsetOutOfRange.code())
                        .with_high_watermark(partition.high_watermark())
                        .with_last_stable_offset(partition.last_stable_offset())
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
