//! Request dispatch: one file per Kafka API, routed from one table.
//!
//! [`dispatch`] peeks the header, checks `(api, version)` against
//! [`klamm_protocol::versions`], decodes, and calls the API's `handle`. A handler does its
//! synchronous work (validation, appends) at once and returns a [`Reply`]; anything that
//! must wait (an fsync, a long-poll) is a future, so the connection keeps request order
//! without blocking its reader.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_producers;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod txn_offset_commit;

use crate::state::Broker;
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::decode_request_header_from_buffer;
use klamm_protocol::frame::{self, HeaderPeek};
use klamm_protocol::versions;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// What a handler produces. Built once per request and moved straight into the pending
/// response, so the size difference between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// The response, ready now.
    Now(ResponseKind),
    /// The response once something has happened (fsync, data arrived, timeout).
    Later(Pin<Box<dyn Future<Output = ResponseKind> + Send>>),
    /// No response at all (Produce with acks=0).
    Silent,
}

/// Who is on the other end, for handlers that answer per listener.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: std::net::SocketAddr,
    /// Name of the listener the connection arrived on (e.g. `PLAINTEXT`).
    pub listener: String,
}

/// What the connection writer gets for each request, in order.
pub enum Outcome {
    /// The framed response as chunks (record bytes may be passed through uncopied).
    Respond(Vec<Bytes>),
    Silent,
    /// Encoding failed (a bug): close rather than leave the client waiting.
    Close,
}

pub type Pending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

#[derive(Debug)]
pub enum DispatchError {
    /// Close the connection, logging why: unknown api, unsupported version, malformed body.
    Close(String),
}

fn close(why: impl Into<String>) -> DispatchError {
    DispatchError::Close(why.into())
}

pub fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    info: &ConnectionInfo,
) -> Result<Pending, DispatchError> {
    // Started before anything else, so the histogram and the slow-request log see the
    // decoding and the handler's synchronous part (an append under the partition lock,
    // a topic creation) as well as any wait.
    let started = Instant::now();
    let peek = frame::peek_header(&frame).ok_or_else(|| close("request header too short"))?;
    let api = peek
        .api()
        .ok_or_else(|| close(format!("unknown api key {}", peek.api_key)))?;
    if api == ApiKey::ApiVersions && !versions::is_served(peek.api_key, peek.api_version) {
        // A newer client: answer in v0 with UNSUPPORTED_VERSION and our table, so it retries
        // with a version we share. The body is not decoded (its format is unknown to us).
        let body = ResponseKind::ApiVersions(versions::api_versions_response(35));
        return Ok(ready(encode(peek.correlation_id, api, 0, &body)));
    }
    if api == ApiKey::Produce && (0..=2).contains(&peek.api_version) {
        return produce::legacy(frame, peek);
    }
    if !versions::is_served(peek.api_key, peek.api_version) {
        return Err(close(format!(
            "{api:?} v{} is not supported",
            peek.api_version
        )));
    }
    let mut buf = frame;
    let header = decode_request_header_from_buffer(&mut buf)
        .map_err(|e| close(format!("malformed {api:?} request header: {e}")))?;
    let request = RequestKind::decode(api, &mut buf, peek.api_version).map_err(|e| {
        close(format!(
            "malformed {api:?} v{} request: {e:#}",
            peek.api_version
        ))
    })?;
    if buf.has_remaining() {
        // Kafka ignores trailing bytes, and librdkafka relies on it: its "all topics"
        // Metadata v9+ request keeps a 4-byte array-count placeholder where a 1-byte varint
        // belongs, leaving 3 bytes over. Refusing them would break every librdkafka client.
        tracing::debug!(
            ?api,
            version = peek.api_version,
            trailing_bytes = buf.remaining(),
            "ignoring trailing bytes"
        );
    }
    if broker.settings.metrics_enabled {
        crate::metrics::metrics()
            .requests
            .with_label_values(&[api_name(api)])
            .inc();
    }
    let reply = route(broker, &header, request, info)?;
    Ok(finish(broker, reply, peek, api, started))
}

/// Kafka's name of an API, as used in metric labels (`Produce`, `Fetch`, …).
pub fn api_name(api: ApiKey) -> &'static str {
    // The crate's Debug names are Kafka's API names.
    static NAMES: std::sync::OnceLock<std::collections::HashMap<i16, &'static str>> =
        std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            ApiKey::iter()
                .map(|k| (k as i16, &*Box::leak(format!("{k:?}").into_boxed_str())))
                .collect()
        })
        .get(&(api as i16))
        .copied()
        .unwrap_or("Unknown")
}

/// Logs (and counts) a request slower than `request.slow.log.ms`.
pub fn note_slow(broker: &Broker, api: &'static str, took: std::time::Duration) {
    if took.as_millis() as u64 >= broker.settings.request_slow_log_ms {
        tracing::warn!(api, took_ms = took.as_millis() as u64, "slow request");
        if broker.settings.metrics_enabled {
            crate::metrics::metrics()
                .slow_requests
                .with_label_values(&[api])
                .inc();
        }
    }
}

/// Error codes in a response, one per failed item, for `klamm_request_errors_total`.
fn error_codes(body: &ResponseKind) -> Vec<i16> {
    match body {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::Fetch(r) => r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .chain([r.error_code])
            .collect(),
        ResponseKind::Metadata(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::CreateTopics(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::DeleteTopics(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::JoinGroup(r) => vec![r.error_code],
        ResponseKind::SyncGroup(r) => vec![r.error_code],
        ResponseKind::Heartbeat(r) => vec![r.error_code],
        ResponseKind::LeaveGroup(r) => vec![r.error_code],
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::InitProducerId(r) => vec![r.error_code],
        ResponseKind::EndTxn(r) => vec![r.error_code],
        ResponseKind::AddOffsetsToTxn(r) => vec![r.error_code],
        ResponseKind::AddPartitionsToTxn(r) => r
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect(),
        ResponseKind::TxnOffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::SaslHandshake(r) => vec![r.error_code],
        ResponseKind::SaslAuthenticate(r) => vec![r.error_code],
        ResponseKind::FindCoordinator(r) => r
            .coordinators
            .iter()
            .map(|c| c.error_code)
            .chain([r.error_code])
            .collect(),
        _ => Vec::new(),
    }
}

fn observe(broker: &Broker, api: ApiKey, body: &ResponseKind, started: Instant) {
    let name = api_name(api);
    if api != ApiKey::Fetch {
        // Fetch records its own time, without the long-poll wait.
        note_slow(broker, name, started.elapsed());
    }
    if !broker.settings.metrics_enabled {
        return;
    }
    let m = crate::metrics::metrics();
    if api != ApiKey::Fetch {
        m.request_duration
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
    }
    for code in error_codes(body).into_iter().filter(|c| *c != 0) {
        m.request_errors
            .with_label_values(&[name, &klamm_protocol::errors::error_name(code)])
            .inc();
    }
}

fn route(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: RequestKind,
    info: &ConnectionInfo,
) -> Result<Reply, DispatchError> {
    let v = header.request_api_version;
    Ok(match request {
        RequestKind::ApiVersions(r) => api_versions::handle(r, v, info),
        RequestKind::Metadata(r) => metadata::handle(broker, r, v, info),
        RequestKind::Produce(r) => produce::handle(broker, r, v),
        RequestKind::Fetch(r) => fetch::handle(broker, r, v),
        RequestKind::ListOffsets(r) => list_offsets::handle(broker, r, v),
        RequestKind::CreateTopics(r) => create_topics::handle(broker, r, v),
        RequestKind::DeleteTopics(r) => delete_topics::handle(broker, r, v),
        RequestKind::CreatePartitions(r) => create_partitions::handle(broker, r),
        RequestKind::DescribeCluster(r) => describe_cluster::handle(broker, r, info),
        RequestKind::DescribeConfigs(r) => describe_configs::handle(broker, r, v),
        RequestKind::OffsetForLeaderEpoch(r) => offset_for_leader_epoch::handle(broker, r),
        RequestKind::InitProducerId(r) => init_producer_id::handle(broker, r, v),
        RequestKind::AlterConfigs(r) => alter_configs::handle(broker, r),
        RequestKind::DeleteRecords(r) => delete_records::handle(broker, r),
        RequestKind::IncrementalAlterConfigs(r) => incremental_alter_configs::handle(broker, r),
        RequestKind::FindCoordinator(r) => find_coordinator::handle(broker, r, v, info),
        RequestKind::JoinGroup(r) => join_group::handle(broker, header, r, v, info),
        RequestKind::SyncGroup(r) => sync_group::handle(broker, r),
        RequestKind::Heartbeat(r) => heartbeat::handle(broker, r),
        RequestKind::LeaveGroup(r) => leave_group::handle(broker, r, v),
        RequestKind::OffsetCommit(r) => offset_commit::handle(broker, r),
        RequestKind::OffsetFetch(r) => offset_fetch::handle(broker, r, v),
        RequestKind::DescribeGroups(r) => describe_groups::handle(broker, r),
        RequestKind::ListGroups(r) => list_groups::handle(broker, r),
        RequestKind::DeleteGroups(r) => delete_groups::handle(broker, r),
        RequestKind::OffsetDelete(r) => offset_delete::handle(broker, r),
        RequestKind::AddPartitionsToTxn(r) => add_partitions_to_txn::handle(broker, r, v),
        RequestKind::AddOffsetsToTxn(r) => add_offsets_to_txn::handle(broker, r, v),
        RequestKind::EndTxn(r) => end_txn::handle(broker, r, v),
        RequestKind::TxnOffsetCommit(r) => txn_offset_commit::handle(broker, r),
        RequestKind::DescribeProducers(r) => describe_producers::handle(broker, r),
        RequestKind::ListTransactions(r) => list_transactions::handle(broker, r),
        RequestKind::DescribeTransactions(r) => describe_transactions::handle(broker, r),
        RequestKind::SaslHandshake(r) => sasl_handshake::handle(r, info),
        RequestKind::SaslAuthenticate(_) => sasl_authenticate::handle(info),
        other => {
            // The version table admitted an API with no handler: a bug in the table.
            return Err(close(format!("no handler for {:?}", api_key_of(&other))));
        }
    })
}

fn api_key_of(request: &RequestKind) -> &'static str {
    match request {
        RequestKind::Produce(_) => "Produce",
        _ => "an API outside the version table",
    }
}

fn ready(outcome: Outcome) -> Pending {
    Box::pin(std::future::ready(outcome))
}

fn finish(
    broker: &Arc<Broker>,
    reply: Reply,
    peek: HeaderPeek,
    api: ApiKey,
    started: Instant,
) -> Pending {
    let (id, version) = (peek.correlation_id, peek.api_version);
    match reply {
        Reply::Now(body) => {
            observe(broker, api, &body, started);
            ready(encode(id, api, version, &body))
        }
        Reply::Later(fut) => Box::pin({
            let broker = broker.clone();
            async move {
                let body = fut.await;
                observe(&broker, api, &body, started);
                encode(id, api, version, &body)
            }
        }),
        Reply::Silent => ready(Outcome::Silent),
    }
}

/// Frames a response (see [`crate::response`]), passing fetched record bytes through.
pub fn encode(correlation_id: i32, api: ApiKey, version: i16, body: &ResponseKind) -> Outcome {
    let records = match body {
        ResponseKind::Fetch(f) => f
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().filter_map(|p| p.records.clone()))
            .collect(),
        _ => Vec::new(),
    };
    match crate::response::encode(correlation_id, api, version, body, records) {
        Ok(chunks) => Outcome::Respond(chunks),
        Err(e) => {
            tracing::error!(?api, version, error = %e, "cannot encode response");
            Outcome::Close
        }
    }
}

/// Authorized-operation bitfields for clients that ask for them. Without an authorizer
/// Kafka allows everything that applies to the resource: for topics READ, WRITE, CREATE,
/// DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS (bits 3–8, 10, 11); for the
/// cluster CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE (bits 5, 7–12); for groups READ, DELETE, DESCRIBE (bits 3, 6, 8).
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 = 3576;
pub const CLUSTER_AUTHORIZED_OPERATIONS: i32 = 8096;
pub const GROUP_AUTHORIZED_OPERATIONS: i32 = 328;
/// The value meaning "not requested".
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Kafka's error code for an error, or 0.
pub fn code(error: Option<kafka_protocol::error::ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}
