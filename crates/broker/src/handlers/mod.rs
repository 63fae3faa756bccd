//! Request dispatch: one file per Kafka API, routed from one table.
//!
//! [`dispatch`] peeks the header, checks `(api, version)` against the API's row in
//! [`registry`], decodes, and calls the row's handler. A handler does its
//! synchronous work (validation, appends) at once and returns a [`Reply`]; anything that
//! must wait (an fsync, a long-poll) is a future, so the connection keeps request order
//! without blocking its reader. A handler whose synchronous part writes to disk and waits
//! for it (a topic creation, a config change: the metadata image is fsync'd) runs on a
//! blocking thread instead, as its row's `on_blocking_thread` decides per request, so no
//! connection task ever waits on an fsync. The connection awaits it before it reads the
//! next request, so requests still take effect in the order sent.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_replica_log_dirs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod elect_leaders;
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
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod offsets_common;
mod produce;
pub mod registry;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod txn_offset_commit;
mod write_txn_markers;

use crate::broker::Broker;
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::decode_request_header_from_buffer;
use klamm_protocol::frame::{self, HeaderPeek};
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

/// Decodes and handles one request. Ready at its first poll unless the request's row runs
/// it on a blocking thread; the returned future is its answer.
pub async fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    info: &ConnectionInfo,
) -> Result<Pending, DispatchError> {
    // Started before anything else, so the histogram and the slow-request log see the
    // decoding and the handler's synchronous part (an append under the partition lock,
    // a topic creation) as well as any wait.
    let started = Instant::now();
    let (peek, header, request, row) = match decode(frame)? {
        Decoded::NewerApiVersions(peek) => {
            // A newer client: answer in v0 with UNSUPPORTED_VERSION and our table, so it
            // retries with a version we share.
            let body = ResponseKind::ApiVersions(registry::api_versions_response(35));
            return Ok(ready(encode(
                peek.correlation_id,
                ApiKey::ApiVersions,
                0,
                &body,
            )));
        }
        Decoded::Request {
            peek,
            header,
            request,
            row,
        } => (peek, header, request, row),
    };
    let api = row.support.api;
    if broker.settings.metrics_enabled {
        crate::metrics::metrics()
            .requests
            .with_label_values(&[api_name(api)])
            .inc();
    }
    if (row.on_blocking_thread)(broker, &request) {
        let reply = on_blocking_thread(broker, header, request, row, peek, info).await?;
        return Ok(finish(broker, reply, peek, row, started));
    }
    let ctx = registry::Context {
        broker,
        header: &header,
        version: peek.api_version,
        info,
    };
    let reply = (row.handle)(&ctx, request)?;
    Ok(finish(broker, reply, peek, row, started))
}

/// Runs the row's handler on a blocking thread (see the module docs).
async fn on_blocking_thread(
    broker: &Arc<Broker>,
    header: RequestHeader,
    request: RequestKind,
    row: &'static registry::Row,
    peek: HeaderPeek,
    info: &ConnectionInfo,
) -> Result<Reply, DispatchError> {
    let (broker, info) = (broker.clone(), info.clone());
    let handled = tokio::task::spawn_blocking(move || {
        let ctx = registry::Context {
            broker: &broker,
            header: &header,
            version: peek.api_version,
            info: &info,
        };
        (row.handle)(&ctx, request)
    })
    .await;
    match handled {
        Ok(result) => result,
        // A panic in the handler is the connection's, as it would be on its own task.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// What a frame is, decided before any handler runs (and all the fuzzer may reach without
/// a broker): the header is peeked, `(api, version)` checked against the API's row, and
/// header and body decoded. Moved once from decoding to its handler, as [`Reply`] is.
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// ApiVersions in a version newer than ours; its body is not decoded (its format is
    /// unknown to us).
    NewerApiVersions(HeaderPeek),
    Request {
        peek: HeaderPeek,
        header: RequestHeader,
        request: RequestKind,
        /// The API's row in the registry: its handler and error extraction.
        row: &'static registry::Row,
    },
}

pub fn decode(frame: Bytes) -> Result<Decoded, DispatchError> {
    let peek = frame::peek_header(&frame).ok_or_else(|| close("request header too short"))?;
    let api = peek
        .api()
        .ok_or_else(|| close(format!("unknown api key {}", peek.api_key)))?;
    if api == ApiKey::ApiVersions && !registry::is_served(peek.api_key, peek.api_version) {
        return Ok(Decoded::NewerApiVersions(peek));
    }
    let Some(row) = registry::row(peek.api_key).filter(|r| r.serves(peek.api_version)) else {
        return Err(close(format!(
            "{api:?} v{} is not supported",
            peek.api_version
        )));
    };
    let mut buf = frame;
    let header = decode_request_header_from_buffer(&mut buf)
        .map_err(|e| close(format!("malformed {api:?} request header: {e}")))?;
    let malformed = |e: String| {
        close(format!(
            "malformed {api:?} v{} request: {e}",
            peek.api_version
        ))
    };
    // A version older than the crate decodes (Kafka 3.9's range, KIP-896) is rewritten into
    // the crate's oldest first; the handler still sees the version the client sent.
    let (mut buf, decode_version) = if klamm_protocol::legacy::is_legacy(api, peek.api_version) {
        klamm_protocol::legacy::upgrade_request(api, peek.api_version, &buf).map_err(malformed)?
    } else {
        (buf, peek.api_version)
    };
    let request = RequestKind::decode(api, &mut buf, decode_version)
        .map_err(|e| malformed(format!("{e:#}")))?;
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
    Ok(Decoded::Request {
        peek,
        header,
        request,
        row,
    })
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

fn observe(broker: &Broker, row: &registry::Row, body: &ResponseKind, started: Instant) {
    let api = row.support.api;
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
    for code in (row.errors)(body).into_iter().filter(|c| *c != 0) {
        m.request_errors
            .with_label_values(&[name, &klamm_protocol::errors::error_name(code)])
            .inc();
    }
}

fn ready(outcome: Outcome) -> Pending {
    Box::pin(std::future::ready(outcome))
}

fn finish(
    broker: &Arc<Broker>,
    reply: Reply,
    peek: HeaderPeek,
    row: &'static registry::Row,
    started: Instant,
) -> Pending {
    let (id, version, api) = (peek.correlation_id, peek.api_version, row.support.api);
    match reply {
        Reply::Now(body) => {
            observe(broker, row, &body, started);
            ready(encode(id, api, version, &body))
        }
        Reply::Later(fut) => Box::pin({
            let broker = broker.clone();
            async move {
                let body = fut.await;
                observe(&broker, row, &body, started);
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
