//! Raw Kafka protocol over a blocking `TcpStream`, encoded with the `kafka-protocol` crate.
//! Used for the cases real clients never send (hostile frames, old versions) and for fields
//! rdkafka does not expose (topic IDs).

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, FetchRequest,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, ProduceRequest, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Largest response frame the tests accept (a sanity cap, not the broker's limit).
const MAX_RESPONSE_BYTES: usize = 64 << 20;
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Encodes a full frame (4-byte size + header + body) for request `R` at `version`.
pub fn encode_frame<R: Request>(version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(str_bytes("klamm-it")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .expect("encode request header");
    req.encode(&mut body, version)
        .unwrap_or_else(|e| panic!("encode {} v{version}: {e}", R::KEY));
    frame(&body)
}

/// Prefixes `payload` with its 4-byte big-endian size.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A request header (any header version) as bytes, for hand-built requests.
pub fn header_bytes(
    api_key: i16,
    version: i16,
    header_version: i16,
    correlation_id: i32,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(str_bytes("klamm-it")));
    let mut b = BytesMut::new();
    header
        .encode(&mut b, header_version)
        .expect("encode header");
    b.to_vec()
}

/// How a connection ended when we expected the broker to close it.
#[derive(Debug)]
pub enum CloseOutcome {
    Closed(Duration),
    /// The broker sent bytes instead of (or before) closing.
    GotData(Vec<u8>),
    StillOpen(Duration),
}

pub struct RawConn {
    pub stream: TcpStream,
    next_correlation_id: i32,
    versions: Option<BTreeMap<i16, (i16, i16)>>,
}

impl RawConn {
    pub fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            next_correlation_id: 1,
            versions: None,
        }
    }

    pub fn next_correlation_id(&mut self) -> i32 {
        let c = self.next_correlation_id;
        self.next_correlation_id += 1;
        c
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends request `R` at `version`; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        let corr = self.next_correlation_id();
        let bytes = encode_frame(version, corr, req);
        self.stream
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("send {} v{version}: {e}", R::KEY));
        corr
    }

    /// Reads one response frame (without the size prefix).
    pub fn recv_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > MAX_RESPONSE_BYTES {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                format!("response frame size {size} out of range"),
            ));
        }
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// Reads the response to request `R` sent at `version` with correlation id `corr`.
    /// Panics on a wrong correlation id, a decode failure or leftover bytes.
    pub fn recv<R: Request>(&mut self, version: i16, corr: i32) -> R::Response {
        let mut buf = self.recv_frame().unwrap_or_else(|e| {
            panic!(
                "reading response to {} v{version} (correlation {corr}): {e}",
                R::KEY
            )
        });
        decode_response::<R>(&mut buf, version, corr)
    }

    /// Send + receive.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let corr = self.send(version, req);
        self.recv::<R>(version, corr)
    }

    /// Waits for the broker to close the connection (EOF or reset) within `within`.
    pub fn wait_closed(&mut self, within: Duration) -> CloseOutcome {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        loop {
            let left = within.saturating_sub(t0.elapsed());
            if left.is_zero() {
                return if got.is_empty() {
                    CloseOutcome::StillOpen(t0.elapsed())
                } else {
                    CloseOutcome::GotData(got)
                };
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return if got.is_empty() {
                        CloseOutcome::Closed(t0.elapsed())
                    } else {
                        CloseOutcome::GotData(got)
                    }
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::BrokenPipe
                    ) =>
                {
                    return if got.is_empty() {
                        CloseOutcome::Closed(t0.elapsed())
                    } else {
                        CloseOutcome::GotData(got)
                    }
                }
                Err(e) => panic!("unexpected read error while waiting for close: {e}"),
            }
        }
    }

    /// Panics unless the broker closes this connection within `within` without sending anything.
    pub fn assert_closed(&mut self, within: Duration, what: &str) -> Duration {
        match self.wait_closed(within) {
            CloseOutcome::Closed(d) => d,
            CloseOutcome::GotData(d) => panic!(
                "{what}: expected the broker to close the connection, but it sent {} bytes: {:02x?}",
                d.len(),
                &d[..d.len().min(64)]
            ),
            CloseOutcome::StillOpen(d) => {
                panic!("{what}: expected the broker to close the connection, still open after {d:?}")
            }
        }
    }

    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    // ---- typed helpers ----------------------------------------------------------------------

    pub fn api_versions(&mut self, version: i16) -> ApiVersionsResponse {
        let mut req = ApiVersionsRequest::default();
        if version >= 3 {
            req = req
                .with_client_software_name(str_bytes("klamm-it"))
                .with_client_software_version(str_bytes("0.1.0"));
        }
        self.call(version, &req)
    }

    /// The broker's advertised table, `api_key → (min, max)` (cached per connection).
    pub fn versions(&mut self) -> BTreeMap<i16, (i16, i16)> {
        if self.versions.is_none() {
            let resp = self.api_versions(3);
            assert_eq!(resp.error_code, 0, "ApiVersions v3 error");
            self.versions = Some(table(&resp.api_keys));
        }
        self.versions.clone().unwrap()
    }

    /// The highest version ≤ `preferred` that both the broker and the crate support.
    pub fn pick_version(&mut self, key: ApiKey, preferred: i16) -> i16 {
        let (min, max) = *self
            .versions()
            .get(&(key as i16))
            .unwrap_or_else(|| panic!("broker does not advertise {key:?}"));
        let crate_range = key.valid_versions();
        let v = preferred.min(max).min(crate_range.max);
        assert!(
            v >= min && v >= crate_range.min,
            "no common version for {key:?}: broker {min}..={max}, preferred {preferred}"
        );
        v
    }

    pub fn metadata(
        &mut self,
        version: i16,
        topics: Option<&[&str]>,
        auto_create: bool,
    ) -> MetadataResponse {
        let topics = topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect()
        });
        let req = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(auto_create);
        self.call(version, &req)
    }

    /// CreateTopics for one topic; returns (error_code, error_message).
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> (i16, Option<String>) {
        let v = self.pick_version(ApiKey::CreateTopics, 5);
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, val)| {
                        CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(val)))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000);
        let resp = self.call(v, &req);
        assert_eq!(resp.topics.len(), 1, "CreateTopics: one result expected");
        let t = &resp.topics[0];
        (
            t.error_code,
            t.error_message.as_ref().map(|m| m.as_str().to_string()),
        )
    }

    pub fn create_topic_ok(&mut self, name: &str, partitions: i32) {
        let (code, msg) = self.create_topic(name, partitions, &[]);
        assert_eq!(code, 0, "CreateTopics {name}: error {code} {msg:?}");
    }

    /// Produce one record set to one partition; returns the partition's response.
    pub fn produce(
        &mut self,
        version: i16,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
    ) -> PartitionProduceResponse {
        let req = produce_request(topic, partition, records, acks);
        let resp = self.call(version, &req);
        assert_eq!(
            resp.responses.len(),
            1,
            "Produce: one topic response expected: {resp:?}"
        );
        let t = &resp.responses[0];
        assert_eq!(
            t.partition_responses.len(),
            1,
            "Produce: one partition response expected: {resp:?}"
        );
        t.partition_responses[0].clone()
    }

    /// ListOffsets for one partition at `timestamp` (-1 latest, -2 earliest, -3 max timestamp).
    pub fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> ListOffsetsPartitionResponse {
        let v = self.pick_version(ApiKey::ListOffsets, 8);
        let req = Self::list_offsets_request(topic, partition, timestamp);
        let resp = self.call(v, &req);
        assert_eq!(
            resp.topics.len(),
            1,
            "ListOffsets: one topic expected: {resp:?}"
        );
        assert_eq!(
            resp.topics[0].partitions.len(),
            1,
            "ListOffsets: one partition expected: {resp:?}"
        );
        resp.topics[0].partitions[0].clone()
    }

    pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])])
    }

    /// One Fetch (v12 or the broker's max if lower) for one partition.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        min_bytes: i32,
    ) -> PartitionData {
        let v = self.pick_version(ApiKey::Fetch, 12);
        let req = fetch_request(topic, partition, offset, max_wait_ms, min_bytes);
        let resp = self.call(v, &req);
        assert_eq!(resp.error_code, 0, "Fetch top-level error: {resp:?}");
        assert_eq!(
            resp.responses.len(),
            1,
            "Fetch: one topic expected: {resp:?}"
        );
        assert_eq!(
            resp.responses[0].partitions.len(),
            1,
            "Fetch: one partition expected"
        );
        resp.responses[0].partitions[0].clone()
    }
}

pub fn decode_response<R: Request>(buf: &mut Bytes, version: i16, corr: i32) -> R::Response {
    let header = ResponseHeader::decode(buf, R::Response::header_version(version))
        .unwrap_or_else(|e| panic!("decode response header for {} v{version}: {e}", R::KEY));
    assert_eq!(
        header.correlation_id,
        corr,
        "response correlation id for {} v{version}",
        R::KEY
    );
    let body = R::Response::decode(buf, version)
        .unwrap_or_else(|e| panic!("decode {} v{version} response body: {e}", R::KEY));
    assert!(
        buf.is_empty(),
        "{} leftover bytes after decoding {} v{version} response (wrong header/body version?): {:02x?}",
        buf.len(),
        R::KEY,
        &buf[..buf.len().min(32)]
    );
    body
}

pub fn table(keys: &[ApiVersion]) -> BTreeMap<i16, (i16, i16)> {
    keys.iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect()
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(16 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(8 << 20)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_last_fetched_epoch(-1)])])
}

/// A simple record for `batch`.
pub struct Rec<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
}

/// Encodes one magic-2 record batch (base offset 0) with the crate's encoder.
pub fn batch(records: &[Rec<'_>], compression: Compression) -> Bytes {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: r.timestamp,
            key: r.key.map(Bytes::copy_from_slice),
            value: r.value.map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

/// Decodes every record in a fetched record set.
pub fn decode_records(records: Option<Bytes>) -> Vec<Record> {
    let Some(mut b) = records else {
        return Vec::new();
    };
    if b.is_empty() {
        return Vec::new();
    }
    let sets = RecordBatchDecoder::decode_all(&mut b).expect("decode fetched record batches");
    sets.into_iter().flat_map(|s| s.records).collect()
}
