//! In-process broker for tests that hold the clock: a real `Broker` on a temporary data
//! dir, requests encoded as a client would and sent through the real `handlers::dispatch`,
//! responses decoded from the bytes the connection would write.

#![allow(dead_code)] // each test file uses its own part of this

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ProduceRequest, RequestHeader, ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use klamm_broker::broker::Broker;
use klamm_broker::clock::ManualClock;
use klamm_broker::handlers::{self, ConnectionInfo, Outcome, Pending};
use klamm_config::{Config, LoadOptions};
use std::sync::Arc;

/// The manual clock starts here (2026-01-01T00:00:00Z): record timestamps are realistic.
pub const START_MS: i64 = 1_767_225_600_000;

pub struct TestBroker {
    pub broker: Arc<Broker>,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

/// A broker on a manual clock, with `flags` as `--set` pairs. The flush policy is `never`
/// unless set: the high watermark then moves at append, with no flusher task to drive.
pub fn open(flags: &[(&str, &str)]) -> TestBroker {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![
        ("log.dirs".to_string(), dir.path().display().to_string()),
        ("log.flush.policy".to_string(), "never".to_string()),
    ];
    all.extend(flags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (config, _) = Config::load(&LoadOptions {
        flags: all,
        ..LoadOptions::default()
    })
    .unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let (broker, _flush_queue) = Broker::open_with_clock(config, clock.clone()).unwrap();
    TestBroker {
        broker,
        clock,
        _dir: dir,
    }
}

fn info() -> ConnectionInfo {
    ConnectionInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        listener: "PLAINTEXT".into(),
    }
}

/// Dispatches `request` as API version `version` (as the connection task does, awaiting
/// any work its row runs on a blocking thread); the returned future is the answer.
pub async fn send<R: Request>(broker: &Arc<Broker>, version: i16, request: &R) -> Pending {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("in-process")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, R::header_version(version)).unwrap();
    request.encode(&mut buf, version).unwrap();
    handlers::dispatch(broker, buf.freeze(), &info())
        .await
        .unwrap_or_else(|_| panic!("dispatch refused api {} v{version}", R::KEY))
}

/// Decodes the framed response the connection would write.
pub fn decode<R: Request>(version: i16, outcome: Outcome) -> R::Response {
    let Outcome::Respond(chunks) = outcome else {
        panic!("no response")
    };
    let mut bytes = BytesMut::new();
    for c in chunks {
        bytes.extend_from_slice(&c);
    }
    let mut bytes: Bytes = bytes.freeze();
    let size = bytes.get_i32() as usize;
    assert_eq!(size, bytes.len(), "size prefix");
    ResponseHeader::decode(&mut bytes, R::Response::header_version(version)).unwrap();
    R::Response::decode(&mut bytes, version).unwrap()
}

/// Sends `request` and waits for its answer.
pub async fn call<R: Request>(broker: &Arc<Broker>, version: i16, request: &R) -> R::Response {
    let outcome = send(broker, version, request).await.await;
    decode::<R>(version, outcome)
}

/// One batch of `count` records at `timestamp_ms`, transactional when `producer` is given.
pub fn batch(count: i32, timestamp_ms: i64, producer: Option<(i64, i16)>) -> Bytes {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer.is_some() { i } else { -1 },
            timestamp: timestamp_ms,
            key: None,
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

pub fn produce_request(
    topic: &str,
    records: Bytes,
    transactional_id: Option<&str>,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))),
        )
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

pub async fn produce(t: &TestBroker, topic: &str, records: Bytes, transactional_id: Option<&str>) {
    let resp = call(
        &t.broker,
        9,
        &produce_request(topic, records, transactional_id),
    )
    .await;
    let code = resp.responses[0].partition_responses[0].error_code;
    assert_eq!(code, 0, "produce to {topic} refused");
}
