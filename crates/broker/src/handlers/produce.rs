//! Produce (v0–v12). Batches are validated and appended in request order before the next
//! request is read; `acks=all` then waits for the group-commit fsync (the high watermark
//! passing the last offset), `acks=1` does not wait, `acks=0` gets no response. v0–v2 carry
//! message sets of magic 0/1, up-converted to one v2 batch per partition first (as Kafka 3.x
//! stores them with a v2 log format): see `klamm_protocol::legacy::message_set`.

use super::Reply;
use crate::broker::Broker;
use crate::state::{AdminError, Topic};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use klamm_config::TimestampType;
use klamm_log::producer_state::ProducerError;
use klamm_log::AppendError;
use klamm_protocol::batch::{self, ProduceLimits};
use klamm_protocol::legacy::message_set;
use klamm_protocol::rewrite;
use std::sync::Arc;
use std::time::Duration;

/// Produce v3 is the first to carry v2 record batches (KIP-98); older versions carry
/// message sets of magic 0 and 1.
const FIRST_BATCH_VERSION: i16 = 3;

/// `(partition response, last offset to wait for)` for one partition.
type Appended = (
    PartitionProduceResponse,
    Option<(Arc<crate::partition::Partition>, i64)>,
);

/// Whether the produce may auto-create a topic it names (a metadata-image fsync).
pub fn may_create_topics(broker: &Broker, request: &ProduceRequest) -> bool {
    request
        .topic_data
        .iter()
        .any(|t| broker.would_auto_create(t.name.0.as_str()))
}

pub fn handle(broker: &Arc<Broker>, request: ProduceRequest, version: i16) -> Reply {
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    let mut waits = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    for topic_data in request.topic_data {
        let name = topic_data.name.0.as_str().to_string();
        // Internal topics are the coordinators' own: refused before any auto-create.
        let topic = match crate::internal::refuse_append(&name) {
            Some(refused) => Err(refused),
            None => broker.get_or_auto_create(&name),
        };
        let partitions = topic_data
            .partition_data
            .into_iter()
            .map(|pd| {
                let (resp, wait) = if valid_acks {
                    append_one(
                        broker,
                        &topic,
                        pd.index,
                        pd.records,
                        version,
                        transactional_id.as_deref(),
                    )
                } else {
                    (
                        error(pd.index, ResponseError::InvalidRequiredAcks, None),
                        None,
                    )
                };
                waits.extend(wait);
                resp
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    let response = ProduceResponse::default().with_responses(responses);
    if acks == 0 {
        return Reply::Silent;
    }
    if acks == 1 || waits.is_empty() {
        return Reply::Now(ResponseKind::Produce(response));
    }
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    Reply::Later(Box::pin(async move {
        let durable = async {
            for (partition, last_offset) in &waits {
                partition.wait_visible(*last_offset).await;
            }
        };
        let timed_out = tokio::time::timeout(timeout, durable).await.is_err();
        let mut response = response;
        if timed_out {
            mark_timed_out(&mut response, &waits);
        }
        ResponseKind::Produce(response)
    }))
}

fn append_one(
    broker: &Broker,
    topic: &Result<Arc<Topic>, AdminError>,
    index: i32,
    records: Option<Bytes>,
    version: i16,
    transactional_id: Option<&str>,
) -> Appended {
    let topic = match topic {
        Ok(t) => t,
        Err(e) => return (error(index, e.error, Some(e.message.clone())), None),
    };
    let Some(partition) = topic.partition(index) else {
        return (
            error(index, ResponseError::UnknownTopicOrPartition, None),
            None,
        );
    };
    let mut records = records.unwrap_or_default();
    if version < FIRST_BATCH_VERSION {
        records = match message_set::up_convert(&records, topic.settings.max_decompressed_bytes) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::debug!(topic = %topic.name, partition = index, error = %e, "old-format produce refused");
                return (error(index, e.kafka_error(), Some(e.to_string())), None);
            }
        };
    }
    let limits = ProduceLimits {
        max_batch_bytes: topic.settings.max_message_bytes,
        produce_version: version.max(FIRST_BATCH_VERSION),
    };
    let batches = match batch::validate_produce(&records, limits) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(topic = %topic.name, partition = index, error = %e, "produce refused");
            return (error(index, e.kafka_error(), Some(e.to_string())), None);
        }
    };
    let log_append_time = topic.settings.message_timestamp_type == TimestampType::LogAppendTime;
    if let Some(refused) = check_records(
        topic,
        index,
        &records,
        &batches,
        log_append_time,
        broker.now_ms(),
    ) {
        return (refused, None);
    }
    let (records, batches) = match recompress(
        &topic.settings.compression_type,
        topic.settings.max_decompressed_bytes,
        records,
        batches,
    ) {
        Ok(r) => r,
        Err(e) => return (error(index, e.kafka_error(), Some(e.to_string())), None),
    };
    // Transactional data only into a partition of the producer's ongoing transaction; the
    // coordinator stays locked through the append so no marker can slip in between.
    let _txn = match batches.iter().find(|(h, _)| h.is_transactional()) {
        None => None,
        Some((h, _)) => match broker.txns.verify_produce(
            transactional_id,
            (h.producer_id, h.producer_epoch),
            (&topic.name, index),
        ) {
            Ok(guard) => Some(guard),
            Err(code) => {
                tracing::debug!(topic = %topic.name, partition = index, ?code, "transactional batch refused");
                let e = ResponseError::try_from_code(code.code())
                    .unwrap_or(ResponseError::InvalidTxnState);
                return (error(index, e, None), None);
            }
        },
    };
    match partition.append(&records, &batches, broker.now_ms(), log_append_time) {
        Ok(info) => {
            if broker.settings.metrics_enabled && !info.duplicate {
                let m = crate::metrics::metrics();
                let count: i64 = batches.iter().map(|(h, _)| h.records_count as i64).sum();
                m.produce_bytes
                    .with_label_values(&[&topic.name])
                    .inc_by(records.len() as u64);
                m.produce_records
                    .with_label_values(&[&topic.name])
                    .inc_by(count as u64);
            }
            let resp = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time_ms.unwrap_or(-1))
                .with_log_start_offset(partition.log().log_start_offset());
            (resp, Some((partition.clone(), info.last_offset)))
        }
        Err(AppendError::Producer(e)) => {
            tracing::debug!(topic = %topic.name, partition = index, error = %e, "idempotent batch refused");
            (error(index, producer_error(&e), Some(e.to_string())), None)
        }
        Err(AppendError::Io(_)) if partition.log().is_retired() => {
            // The topic was deleted while this request held the partition (Kafka answers a
            // partition it no longer hosts so, and clients refresh their metadata).
            (
                error(index, ResponseError::UnknownTopicOrPartition, None),
                None,
            )
        }
        Err(AppendError::Io(e)) => {
            tracing::error!(topic = %topic.name, partition = index, error = %e, "append failed");
            (
                error(index, ResponseError::KafkaStorageError, Some(e.to_string())),
                None,
            )
        }
    }
}

/// Kafka's per-record rules: every record's offset delta is its position in the batch (as
/// Kafka checks for compressed batches: a batch with deltas `[0, -5]` makes consumers drop
/// one record and see two at one offset), compacted topics refuse keyless records
/// (INVALID_RECORD), and CreateTime records must lie within
/// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` of now
/// (INVALID_TIMESTAMP). A violation refuses the partition's whole request, naming the
/// records (`record_errors`, by index within the request's records) as Kafka does.
fn check_records(
    topic: &Topic,
    index: i32,
    records: &[u8],
    batches: &[(batch::BatchHeader, std::ops::Range<usize>)],
    log_append_time: bool,
    now: i64,
) -> Option<PartitionProduceResponse> {
    let s = &topic.settings;
    let earliest = now.saturating_sub(s.message_timestamp_before_max_ms);
    let latest = now.saturating_add(s.message_timestamp_after_max_ms);
    let check_time = !log_append_time && (earliest > i64::MIN / 2 || latest < i64::MAX / 2);
    let mut errors: Vec<(i32, String)> = Vec::new();
    let mut kind = ResponseError::InvalidRecord;
    let mut first = 0i32;
    for (header, range) in batches {
        {
            let visited = rewrite::visit_records(
                header,
                &records[range.clone()],
                s.max_decompressed_bytes,
                |i, r, ts| {
                    let at = first + i as i32;
                    if i64::from(r.offset_delta) != i as i64 {
                        errors.push((at, format!("Inner record offset delta {} should be {i} in topic partition {}-{index}.", r.offset_delta, topic.name)));
                    } else if s.cleanup_policy_compact && r.key.is_none() {
                        errors.push((at, format!("Compacted topic cannot accept message without key in topic partition {}-{index}.", topic.name)));
                    } else if check_time && ts != NO_TIMESTAMP && !(earliest..=latest).contains(&ts)
                    {
                        kind = ResponseError::InvalidTimestamp;
                        errors.push((at, format!("Timestamp {ts} of message with offset {i} is out of range. The timestamp should be within [{earliest}, {latest}]")));
                    }
                },
            );
            if let Err(e) = visited {
                // TooLarge (a compression bomb) → MESSAGE_TOO_LARGE; garbage → CORRUPT_MESSAGE.
                return Some(error(index, e.kafka_error(), Some(e.to_string())));
            }
        }
        first += header.records_count;
    }
    if errors.is_empty() {
        return None;
    }
    if errors
        .iter()
        .any(|(_, m)| m.starts_with("Compacted") || m.starts_with("Inner"))
    {
        kind = ResponseError::InvalidRecord;
    }
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
        .collect();
    let message = format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    );
    tracing::debug!(topic = %topic.name, partition = index, %message, "produce refused");
    let record_errors = errors
        .into_iter()
        .map(|(i, m)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(Some(StrBytes::from_string(m)))
        })
        .collect();
    Some(error(index, kind, Some(message)).with_record_errors(record_errors))
}

/// The timestamp of a record up-converted from magic 0, which had none: never out of range.
const NO_TIMESTAMP: i64 = -1;

type Batches = Vec<(batch::BatchHeader, std::ops::Range<usize>)>;

/// Broker-side recompression: a topic whose `compression.type` names a codec stores every
/// batch with it, whatever the producer used (`producer` keeps the producer's bytes).
fn recompress(
    compression_type: &str,
    max_decompressed_bytes: usize,
    records: Bytes,
    batches: Batches,
) -> Result<(Bytes, Batches), batch::BatchError> {
    let codec = match compression_type {
        "uncompressed" => 0,
        "gzip" => 1,
        "snappy" => 2,
        "lz4" => 3,
        "zstd" => 4,
        _ => return Ok((records, batches)),
    };
    if batches.iter().all(|(h, _)| h.compression_codec() == codec) {
        return Ok((records, batches));
    }
    let mut out = Vec::with_capacity(records.len());
    let mut rebuilt = Vec::with_capacity(batches.len());
    for (header, range) in &batches {
        let bytes = &records[range.clone()];
        let section = rewrite::records_section(header, bytes, max_decompressed_bytes)?;
        let all = rewrite::raw_records(&section, header.records_count)?;
        let how = rewrite::Rebuild {
            codec,
            delete_horizon_ms: None,
        };
        let new = rewrite::rebuild_batch(header, &all, how)?;
        let start = out.len();
        out.extend_from_slice(&new);
        rebuilt.push((batch::check_batch(&new)?, start..out.len()));
    }
    Ok((Bytes::from(out), rebuilt))
}

fn producer_error(e: &ProducerError) -> ResponseError {
    match e {
        ProducerError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
        ProducerError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
        ProducerError::UnknownProducer { .. } => ResponseError::UnknownProducerId,
    }
}

fn error(index: i32, error: ResponseError, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

/// After a timeout, partitions not yet durable report REQUEST_TIMED_OUT: the producer
/// retries, and nothing it was told was stored can be lost.
fn mark_timed_out(
    response: &mut ProduceResponse,
    waits: &[(Arc<crate::partition::Partition>, i64)],
) {
    for t in &mut response.responses {
        for p in &mut t.partition_responses {
            let pending = waits.iter().any(|(part, last)| {
                part.topic == t.name.0.as_str()
                    && part.index == p.index
                    && part.high_watermark() <= *last
            });
            if pending {
                p.error_code = ResponseError::RequestTimedOut.code();
            }
        }
    }
}
