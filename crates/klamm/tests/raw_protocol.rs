//! The Kafka wire protocol spoken byte by byte: version negotiation, ordering, and hostile or
//! malformed input that no well-behaved client sends. After every hostile case the broker must
//! still answer a normal ApiVersions on a fresh connection.

mod common;

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::raw::*;
use common::{Broker, Rng};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, MetadataRequest, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::records::Compression;

const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_RECORD: i16 = 87;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// A hostile frame must be answered by a close within this time.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// A fresh connection gets a well-formed ApiVersions v0 and v3 answer, and the process lives.
fn assert_healthy(b: &mut Broker, after: &str) {
    b.assert_alive(&format!("after {after}"));
    for v in [0i16, 3] {
        let mut c = RawConn::connect(b.port());
        let mut req = ApiVersionsRequest::default();
        if v >= 3 {
            req = req
                .with_client_software_name(str_bytes("klamm-it"))
                .with_client_software_version(str_bytes("0.1.0"));
        }
        let corr = c.send(v, &req);
        let mut frame = c.recv_frame().unwrap_or_else(|e| {
            panic!("after {after}: ApiVersions v{v} on a fresh connection got no answer: {e}")
        });
        let resp = decode_response::<ApiVersionsRequest>(&mut frame, v, corr);
        assert_eq!(
            resp.error_code, 0,
            "after {after}: ApiVersions v{v} on a fresh connection: error_code"
        );
        assert!(
            !resp.api_keys.is_empty(),
            "after {after}: empty ApiVersions table"
        );
    }
}

fn find(resp: &ApiVersionsResponse, key: ApiKey) -> Option<(i16, i16)> {
    resp.api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .map(|k| (k.min_version, k.max_version))
}

/// Checks the ranges the contract promises.
fn check_contract_table(resp: &ApiVersionsResponse, what: &str) {
    assert_eq!(
        find(resp, ApiKey::Produce),
        Some((0, 12)),
        "{what}: Produce range"
    );
    // Kafka 3.9's whole range: from the oldest (KIP-896 removed v0–v3 only in Kafka 4) to
    // the topic-id versions (v13+, KIP-516).
    assert_eq!(
        find(resp, ApiKey::Fetch),
        Some((0, 17)),
        "{what}: Fetch range"
    );
    assert_eq!(
        find(resp, ApiKey::Metadata),
        Some((0, 12)),
        "{what}: Metadata range"
    );
    assert_eq!(
        find(resp, ApiKey::ApiVersions),
        Some((0, 4)),
        "{what}: ApiVersions range"
    );
    for key in [
        ApiKey::ListOffsets,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::CreatePartitions,
        ApiKey::DescribeCluster,
        ApiKey::DescribeConfigs,
        ApiKey::OffsetForLeaderEpoch,
    ] {
        assert!(
            find(resp, key).is_some(),
            "{what}: {key:?} is implemented but not advertised"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for k in &resp.api_keys {
        assert!(
            seen.insert(k.api_key),
            "{what}: api key {} listed twice",
            k.api_key
        );
        assert!(
            k.min_version <= k.max_version,
            "{what}: api key {} has min {} > max {}",
            k.api_key,
            k.min_version,
            k.max_version
        );
        let key = ApiKey::try_from(k.api_key)
            .unwrap_or_else(|_| panic!("{what}: advertises unknown api key {}", k.api_key));
        assert!(
            k.max_version <= key.valid_versions().max,
            "{what}: {key:?} max {} beyond Kafka's {}",
            k.max_version,
            key.valid_versions().max
        );
    }
}

#[test]
fn api_versions_v0_to_v4_advertise_the_contract_table() {
    let mut b = Broker::start();
    let mut c = RawConn::connect(b.port());
    let mut tables = Vec::new();
    for v in 0..=4i16 {
        let resp = c.api_versions(v);
        assert_eq!(resp.error_code, 0, "ApiVersions v{v}: error_code");
        check_contract_table(&resp, &format!("ApiVersions v{v}"));
        tables.push(table(&resp.api_keys));
    }
    for (v, t) in tables.iter().enumerate() {
        assert_eq!(t, &tables[0], "ApiVersions v{v} table differs from v0's");
    }
    assert_healthy(&mut b, "ApiVersions v0..v4");
}

/// A `Default` request body of `key` at `version`, for the APIs this test knows (None if the
/// key is not listed or the crate cannot encode that version).
fn default_request_body(key: ApiKey, version: i16) -> Option<Vec<u8>> {
    use kafka_protocol::messages::*;
    macro_rules! body {
        ($($variant:ident => $ty:ty),* $(,)?) => {
            match key {
                $(ApiKey::$variant => {
                    let mut b = BytesMut::new();
                    <$ty>::default().encode(&mut b, version).ok().map(|_| b.to_vec())
                })*
                _ => None,
            }
        };
    }
    body! {
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        FindCoordinator => FindCoordinatorRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        DescribeGroups => DescribeGroupsRequest,
        ListGroups => ListGroupsRequest,
        SaslHandshake => SaslHandshakeRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        DeleteRecords => DeleteRecordsRequest,
        InitProducerId => InitProducerIdRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest,
        AddOffsetsToTxn => AddOffsetsToTxnRequest,
        EndTxn => EndTxnRequest,
        TxnOffsetCommit => TxnOffsetCommitRequest,
        DescribeAcls => DescribeAclsRequest,
        DescribeConfigs => DescribeConfigsRequest,
        AlterConfigs => AlterConfigsRequest,
        DescribeLogDirs => DescribeLogDirsRequest,
        CreatePartitions => CreatePartitionsRequest,
        DeleteGroups => DeleteGroupsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        OffsetDelete => OffsetDeleteRequest,
        DescribeCluster => DescribeClusterRequest,
        DescribeProducers => DescribeProducersRequest,
        DescribeTransactions => DescribeTransactionsRequest,
        ListTransactions => ListTransactionsRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
    }
}

/// Every advertised (api, version) answers a well-formed request with a well-formed response
/// of that version: advertising an API the broker cannot serve breaks clients.
/// (Fetch, JoinGroup and SyncGroup may legitimately park and are exercised elsewhere; Produce
/// is covered version by version above.)
#[test]
fn every_advertised_api_version_answers_a_default_request() {
    use kafka_protocol::messages::ResponseKind;
    let mut b = Broker::start();
    let mut c = RawConn::connect(b.port());
    c.create_topic_ok("any", 1);
    let advertised = c.api_versions(3);
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut not_covered = Vec::new();
    for k in &advertised.api_keys {
        let key = ApiKey::try_from(k.api_key).expect("known api key");
        if matches!(
            key,
            ApiKey::Fetch | ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::Produce
        ) {
            continue;
        }
        for version in k.min_version..=k.max_version {
            let Some(body) = default_request_body(key, version) else {
                not_covered.push(format!("{key:?} v{version}"));
                continue;
            };
            let corr = 1000 + version as i32;
            let mut payload = header_bytes(
                k.api_key,
                version,
                key.request_header_version(version),
                corr,
            );
            payload.extend_from_slice(&body);
            c.write_all(&frame(&payload)).unwrap();
            match c.recv_frame() {
                Err(e) => {
                    failures.push(format!("{key:?} v{version}: no response ({e})"));
                    c = RawConn::connect(b.port());
                }
                Ok(mut f) => {
                    let result =
                        ResponseHeader::decode(&mut f, key.response_header_version(version))
                            .map_err(|e| format!("header: {e}"))
                            .and_then(|h| {
                                if h.correlation_id != corr {
                                    return Err(format!(
                                        "correlation id {} != {corr}",
                                        h.correlation_id
                                    ));
                                }
                                ResponseKind::decode(key, &mut f, version)
                                    .map_err(|e| format!("body: {e}"))
                            })
                            .and_then(|_| {
                                if f.is_empty() {
                                    Ok(())
                                } else {
                                    Err(format!("{} bytes left after the body", f.len()))
                                }
                            });
                    if let Err(e) = result {
                        failures.push(format!("{key:?} v{version}: malformed response: {e}"));
                        c = RawConn::connect(b.port());
                    }
                }
            }
            checked += 1;
        }
    }
    eprintln!("checked {checked} advertised (api, version) pairs; not covered by this test: {not_covered:?}");
    assert!(
        failures.is_empty(),
        "advertised but not served:\n{}",
        failures.join("\n")
    );
    assert_healthy(&mut b, "default requests for every advertised version");
}

/// Builds an ApiVersions request frame for an arbitrary (possibly unsupported) version, with a
/// flexible (v2) header and a v3-format body, as a newer client would send.
fn api_versions_frame_for(version: i16, corr: i32) -> Vec<u8> {
    let mut payload = header_bytes(ApiKey::ApiVersions as i16, version, 2, corr);
    let body = ApiVersionsRequest::default()
        .with_client_software_name(str_bytes("future-client"))
        .with_client_software_version(str_bytes("9.9"));
    let mut b = BytesMut::new();
    body.encode(&mut b, 3).unwrap();
    payload.extend_from_slice(&b);
    frame(&payload)
}

#[test]
fn api_versions_unsupported_version_answers_v0_body_with_error_35() {
    let mut b = Broker::start();
    for version in [5i16, 127] {
        let mut c = RawConn::connect(b.port());
        c.write_all(&api_versions_frame_for(version, 4242)).unwrap();
        let mut buf = c.recv_frame().unwrap_or_else(|e| {
            panic!("ApiVersions v{version}: expected a v0 error response, got no frame: {e}")
        });
        let raw = buf.clone();
        let header = ResponseHeader::decode(&mut buf, 0).expect("response header v0");
        assert_eq!(
            header.correlation_id, 4242,
            "ApiVersions v{version}: correlation id"
        );
        let resp = ApiVersionsResponse::decode(&mut buf, 0).unwrap_or_else(|e| {
            panic!(
                "ApiVersions v{version}: body is not a v0 ApiVersions response ({e}): {raw:02x?}"
            )
        });
        assert!(
            buf.is_empty(),
            "ApiVersions v{version}: {} bytes left after the v0 body (not v0 format?): {raw:02x?}",
            buf.len()
        );
        assert_eq!(
            resp.error_code, UNSUPPORTED_VERSION,
            "ApiVersions v{version}: error_code"
        );
        check_contract_table(&resp, &format!("ApiVersions v{version} fallback"));
        // The client retries on the same connection with a version we share.
        let again = c.api_versions(3);
        assert_eq!(
            again.error_code, 0,
            "ApiVersions v3 after the v{version} fallback"
        );
    }
    assert_healthy(&mut b, "unsupported ApiVersions versions");
}

/// Hand-encodes Produce v0..v2 (the crate only encodes v3+).
fn old_produce_frame(version: i16, corr: i32, topic: &str, records: &[u8]) -> Vec<u8> {
    let mut p = header_bytes(ApiKey::Produce as i16, version, 1, corr);
    p.put_i16(-1); // acks
    p.put_i32(10_000); // timeout
    p.put_i32(1); // topics
    p.put_i16(topic.len() as i16);
    p.put_slice(topic.as_bytes());
    p.put_i32(1); // partitions
    p.put_i32(0); // index
    p.put_i32(records.len() as i32);
    p.put_slice(records);
    frame(&p)
}

/// Parses a Produce v0..v2 response; returns the partition error codes.
fn parse_old_produce_response(version: i16, mut b: Bytes) -> Result<Vec<i16>, String> {
    let need = |b: &Bytes, n: usize| {
        if b.remaining() < n {
            Err(format!(
                "truncated response ({} bytes left, {n} needed)",
                b.remaining()
            ))
        } else {
            Ok(())
        }
    };
    let mut codes = Vec::new();
    need(&b, 4)?;
    let topics = b.get_i32();
    for _ in 0..topics {
        need(&b, 2)?;
        let len = b.get_i16();
        need(&b, len.max(0) as usize)?;
        b.advance(len.max(0) as usize);
        need(&b, 4)?;
        let parts = b.get_i32();
        for _ in 0..parts {
            need(&b, 4 + 2 + 8)?;
            let _index = b.get_i32();
            codes.push(b.get_i16());
            let _base = b.get_i64();
            if version >= 2 {
                need(&b, 8)?;
                let _log_append_time = b.get_i64();
            }
        }
    }
    if version >= 1 {
        need(&b, 4)?;
        let _throttle = b.get_i32();
    }
    if b.has_remaining() {
        return Err(format!("{} trailing bytes", b.remaining()));
    }
    Ok(codes)
}

/// Produce v0–v2 carry message sets of magic 0/1 (Kafka 3.9 serves them): each is
/// up-converted and appended; a v2 batch in them is INVALID_RECORD and stores nothing.
#[test]
fn produce_v0_to_v2_store_old_message_sets_and_refuse_v2_batches() {
    let mut b = Broker::start();
    let mut c = RawConn::connect(b.port());
    let topic = "old-produce";
    c.create_topic_ok(topic, 1);
    let now = common::now_ms();
    let v2_batch = batch(
        &[Rec {
            key: Some(b"k"),
            value: Some(b"old"),
            timestamp: now,
        }],
        Compression::None,
    );
    let send = |version: i16, records: &[u8]| {
        let mut c = RawConn::connect(b.port());
        c.write_all(&old_produce_frame(version, 77, topic, records))
            .unwrap();
        let mut f = c
            .recv_frame()
            .unwrap_or_else(|e| panic!("Produce v{version}: no response: {e}"));
        let raw = f.clone();
        let header = ResponseHeader::decode(&mut f, 0).unwrap();
        assert_eq!(
            header.correlation_id, 77,
            "Produce v{version}: correlation id"
        );
        parse_old_produce_response(version, f).unwrap_or_else(|e| {
            panic!("Produce v{version}: response is not a v{version} Produce response: {e}: {raw:02x?}")
        })
    };
    for version in 0..=2i16 {
        assert_eq!(
            send(version, &v2_batch),
            vec![INVALID_RECORD],
            "Produce v{version} with a v2 batch"
        );
    }
    let latest = c.list_offset(topic, 0, -1);
    assert_eq!(
        (latest.error_code, latest.offset),
        (0, 0),
        "a v2 batch stored by Produce v0..v2"
    );
    let messages: &[klamm_protocol::legacy::message_set::KeyValueRef<'_>] = &[
        (Some(b"k0"), Some(b"a")),
        (None, Some(b"b")),
        (Some(b"k2"), None),
    ];
    for version in 0..=2i16 {
        let magic = if version == 2 { 1 } else { 0 };
        for codec in [0, 1] {
            let set =
                klamm_protocol::legacy::message_set::encode_for_test(magic, codec, now, messages);
            assert_eq!(
                send(version, &set),
                vec![0],
                "Produce v{version} codec {codec}"
            );
        }
    }
    let latest = c.list_offset(topic, 0, -1);
    assert_eq!(
        (latest.error_code, latest.offset),
        (0, 18),
        "3 versions × 2 codecs × 3 messages"
    );
    assert_healthy(&mut b, "Produce v0..v2");
}

#[test]
fn produce_v3_to_v12_append_and_fetch_back() {
    let b = Broker::start();
    let mut c = RawConn::connect(b.port());
    let topic = "raw-produce";
    c.create_topic_ok(topic, 1);
    let now = common::now_ms();
    let mut expected = Vec::new();
    for (i, version) in [3i16, 5, 7, 8, 9, 11, 12].into_iter().enumerate() {
        let v1 = format!("v{version}-a");
        let v2 = format!("v{version}-b");
        let records = batch(
            &[
                Rec {
                    key: Some(b"key"),
                    value: Some(v1.as_bytes()),
                    timestamp: now + i as i64,
                },
                Rec {
                    key: None,
                    value: Some(v2.as_bytes()),
                    timestamp: now + i as i64,
                },
            ],
            Compression::None,
        );
        let p = c.produce(version, topic, 0, records, -1);
        assert_eq!(p.error_code, 0, "Produce v{version}: error_code");
        assert_eq!(
            p.base_offset,
            2 * i as i64,
            "Produce v{version}: base_offset"
        );
        expected.push(v1);
        expected.push(v2);
    }
    let data = c.fetch(topic, 0, 0, 0, 0);
    assert_eq!(data.error_code, 0, "Fetch error");
    assert_eq!(data.high_watermark, expected.len() as i64, "high watermark");
    let recs = decode_records(data.records);
    let got: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(got, expected, "fetched values");
    let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (0..expected.len() as i64).collect::<Vec<_>>(),
        "fetched offsets"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut b = Broker::start();
    let mut c = RawConn::connect(b.port());
    let topic = "pipeline";
    c.create_topic_ok(topic, 1);
    let fetch_v = c.pick_version(ApiKey::Fetch, 12);
    // A long-polling Fetch first: the cheap requests behind it must still be answered after it.
    let mut bytes = Vec::new();
    bytes.extend(encode_frame(
        fetch_v,
        101,
        &fetch_request(topic, 0, 0, 500, 1),
    ));
    bytes.extend(encode_frame(0, 102, &ApiVersionsRequest::default()));
    bytes.extend(encode_frame(
        1,
        103,
        &MetadataRequest::default().with_topics(None),
    ));
    bytes.extend(encode_frame(
        3,
        104,
        &ApiVersionsRequest::default()
            .with_client_software_name(str_bytes("klamm-it"))
            .with_client_software_version(str_bytes("1")),
    ));
    bytes.extend(encode_frame(
        12,
        105,
        &MetadataRequest::default().with_topics(None),
    ));
    c.write_all(&bytes).unwrap();
    let mut frames = Vec::new();
    for _ in 0..5 {
        frames.push(c.recv_frame().expect("pipelined response"));
    }
    let order: Vec<i32> = frames
        .iter()
        .map(|f| i32::from_be_bytes(f[..4].try_into().unwrap()))
        .collect();
    assert_eq!(
        order,
        vec![101, 102, 103, 104, 105],
        "response order (correlation ids)"
    );
    let mut it = frames.into_iter();
    decode_response::<FetchRequest>(&mut it.next().unwrap(), fetch_v, 101);
    decode_response::<ApiVersionsRequest>(&mut it.next().unwrap(), 0, 102);
    decode_response::<MetadataRequest>(&mut it.next().unwrap(), 1, 103);
    decode_response::<ApiVersionsRequest>(&mut it.next().unwrap(), 3, 104);
    let md = decode_response::<MetadataRequest>(&mut it.next().unwrap(), 12, 105);
    assert!(
        md.topics
            .iter()
            .any(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic)),
        "Metadata v12 lists {topic}"
    );
    assert_healthy(&mut b, "pipelining");
}

#[test]
fn produce_with_acks_0_gets_no_response() {
    let b = Broker::start();
    let mut c = RawConn::connect(b.port());
    let topic = "acks0";
    c.create_topic_ok(topic, 1);
    let v = c.pick_version(ApiKey::Produce, 9);
    let records = batch(
        &[Rec {
            key: None,
            value: Some(b"fire-and-forget"),
            timestamp: common::now_ms(),
        }],
        Compression::None,
    );
    let mut bytes = encode_frame(v, 500, &produce_request(topic, 0, records, 0));
    bytes.extend(encode_frame(0, 501, &ApiVersionsRequest::default()));
    c.write_all(&bytes).unwrap();
    let f = c.recv_frame().expect("a response");
    let corr = i32::from_be_bytes(f[..4].try_into().unwrap());
    assert_eq!(
        corr, 501,
        "the first response must be ApiVersions' (acks=0 Produce gets none)"
    );
    // The record was still appended; it becomes visible once durable.
    let t0 = Instant::now();
    loop {
        let latest = c.list_offset(topic, 0, -1);
        if latest.offset == 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "acks=0 record never became visible: latest offset {} error {}",
            latest.offset,
            latest.error_code
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn unknown_api_key_closes_only_that_connection() {
    let mut b = Broker::start();
    let mut other = RawConn::connect(b.port());
    assert_eq!(other.api_versions(0).error_code, 0);
    for key in [999i16, -1, 32767] {
        let mut c = RawConn::connect(b.port());
        let mut payload = header_bytes(key, 0, 1, 7);
        payload.extend_from_slice(&[0u8; 16]);
        c.write_all(&frame(&payload)).unwrap();
        c.assert_closed(CLOSE_WITHIN, &format!("request with api key {key}"));
        // The connection opened before is unaffected.
        let r = other.api_versions(3);
        assert_eq!(r.error_code, 0, "other connection after api key {key}");
        assert_healthy(&mut b, &format!("api key {key}"));
    }
}

fn assert_rss_growth_below(b: &Broker, before: (u64, u64), what: &str) {
    let after = b.rss_kib();
    eprintln!(
        "{what}: VmRSS {} -> {} KiB, VmHWM {} -> {} KiB",
        before.0, after.0, before.1, after.1
    );
    let limit_kib = 50 * 1024;
    assert!(
        after.0.saturating_sub(before.0) < limit_kib,
        "{what}: broker RSS grew from {} KiB to {} KiB",
        before.0,
        after.0
    );
    assert!(
        after.1.saturating_sub(before.1) < limit_kib,
        "{what}: broker peak RSS (VmHWM) grew from {} KiB to {} KiB",
        before.1,
        after.1
    );
}

#[test]
fn negative_frame_size_closes_connection() {
    let mut b = Broker::start();
    let before = b.rss_kib();
    for size in [-1i32, i32::MIN, -100] {
        let mut c = RawConn::connect(b.port());
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(&header_bytes(18, 0, 1, 1));
        c.write_all(&bytes).unwrap();
        let took = c.assert_closed(CLOSE_WITHIN, &format!("frame size {size}"));
        eprintln!("frame size {size}: closed after {took:?}");
        assert_healthy(&mut b, &format!("frame size {size}"));
    }
    assert_rss_growth_below(&b, before, "negative frame sizes");
}

#[test]
fn huge_declared_frame_sizes_close_connection_without_allocating() {
    let mut b = Broker::start();
    let before = b.rss_kib();
    let over_limit = 100 * 1024 * 1024 + 1;
    for size in [i32::MAX, over_limit, 1 << 30] {
        // Several at once, so that allocating the declared size would show clearly.
        let mut conns: Vec<RawConn> = (0..8).map(|_| RawConn::connect(b.port())).collect();
        for c in &mut conns {
            let mut bytes = size.to_be_bytes().to_vec();
            bytes.extend_from_slice(&header_bytes(18, 0, 1, 1));
            c.write_all(&bytes).unwrap();
        }
        for c in &mut conns {
            let took = c.assert_closed(CLOSE_WITHIN, &format!("declared frame size {size}"));
            assert!(took < CLOSE_WITHIN);
        }
        assert_healthy(&mut b, &format!("declared frame size {size}"));
    }
    assert_rss_growth_below(&b, before, "huge declared frame sizes");
}

#[test]
fn truncated_bodies_close_connection() {
    let mut b = Broker::start();
    let mut c0 = RawConn::connect(b.port());
    c0.create_topic_ok("trunc", 1);
    drop(c0);

    let md = encode_frame(12, 9, &MetadataRequest::default().with_topics(None));
    let av = encode_frame(
        3,
        9,
        &ApiVersionsRequest::default()
            .with_client_software_name(str_bytes("klamm-it-long-client-name"))
            .with_client_software_version(str_bytes("1.2.3")),
    );
    let produce = encode_frame(
        9,
        9,
        &produce_request(
            "trunc",
            0,
            batch(
                &[Rec {
                    key: None,
                    value: Some(b"x"),
                    timestamp: common::now_ms(),
                }],
                Compression::None,
            ),
            -1,
        ),
    );
    // (name, payload without size prefix)
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, f) in [
        ("Metadata v12", &md),
        ("ApiVersions v3", &av),
        ("Produce v9", &produce),
    ] {
        let payload = &f[4..];
        for cut in [1usize, 3, 8] {
            if cut < payload.len() {
                cases.push((
                    format!("{name} body cut by {cut} bytes"),
                    payload[..payload.len() - cut].to_vec(),
                ));
            }
        }
    }
    cases.push(("frame shorter than a request header".into(), vec![0, 18, 0]));
    cases.push(("empty frame".into(), vec![]));
    cases.push(("header with client_id longer than the frame".into(), {
        let mut p = vec![0, 3, 0, 1, 0, 0, 0, 5];
        p.extend_from_slice(&0x7fffi16.to_be_bytes());
        p.extend_from_slice(b"abc");
        p
    }));
    for (name, payload) in cases {
        let mut c = RawConn::connect(b.port());
        c.write_all(&frame(&payload)).unwrap();
        c.assert_closed(CLOSE_WITHIN, &name);
        assert_healthy(&mut b, &name);
    }
    // A frame whose declared size is never delivered: the client gives up and closes its side.
    let mut c = RawConn::connect(b.port());
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&header_bytes(18, 0, 1, 1));
    c.write_all(&bytes).unwrap();
    c.shutdown_write();
    c.assert_closed(CLOSE_WITHIN, "frame cut short by client EOF");
    assert_healthy(&mut b, "frame cut short by client EOF");
    // Nothing was appended by the truncated produce requests.
    let mut c = RawConn::connect(b.port());
    let latest = c.list_offset("trunc", 0, -1);
    assert_eq!(
        latest.offset, 0,
        "truncated Produce requests stored records"
    );
}

#[test]
fn garbage_bytes_never_crash_the_broker() {
    let mut b = Broker::start();
    let (mut rng, seed) = Rng::from_env_or_time("garbage_bytes_never_crash_the_broker");
    RawConn::connect(b.port()).create_topic_ok("fuzz", 2);
    // Known APIs that answer without waiting (not Fetch, JoinGroup, SyncGroup: they may park).
    let keys: Vec<i16> = vec![
        0, 2, 3, 8, 9, 10, 12, 13, 15, 16, 18, 19, 20, 23, 32, 37, 60,
    ];
    let templates = mutation_templates();
    let iterations = 1000;
    let mut answered = 0;
    let t0 = Instant::now();
    for i in 0..iterations {
        let shape = rng.below(6);
        let bytes: Vec<u8> = match shape {
            // Raw noise, size prefix included.
            0 => {
                let n = 1 + rng.below(200) as usize;
                rng.bytes(n)
            }
            // A consistent size prefix, random payload.
            1 => {
                let n = rng.below(300) as usize;
                frame(&rng.bytes(n))
            }
            // A valid header of a known API, random body.
            2 | 3 => {
                let key = keys[rng.below(keys.len() as u64) as usize];
                let api = ApiKey::try_from(key).unwrap();
                let version = rng.below(14) as i16;
                let hv = api.request_header_version(version.min(api.valid_versions().max));
                let mut p = header_bytes(key, version, hv, i);
                let n = rng.below(if shape == 2 { 40 } else { 400 }) as usize;
                p.extend(rng.bytes(n));
                frame(&p)
            }
            // A valid request with a few bytes flipped, or cut short, or with a byte inserted.
            _ => {
                let t = &templates[rng.below(templates.len() as u64) as usize];
                let mut p = t[4..].to_vec();
                match rng.below(3) {
                    0 => {
                        for _ in 0..1 + rng.below(4) {
                            let at = rng.below(p.len() as u64) as usize;
                            p[at] ^= 1 << rng.below(8);
                        }
                    }
                    1 => p.truncate(rng.below(p.len() as u64) as usize),
                    _ => {
                        let at = rng.below(p.len() as u64) as usize;
                        p.insert(at, rng.next_u64() as u8);
                    }
                }
                frame(&p)
            }
        };
        let mut c = RawConn::connect(b.port());
        // The broker may close mid-write; that is fine.
        let _ = c.write_all(&bytes);
        c.shutdown_write();
        match c.wait_closed(Duration::from_secs(5)) {
            CloseOutcome::Closed(_) => {}
            CloseOutcome::GotData(_) => answered += 1,
            CloseOutcome::StillOpen(d) => panic!(
                "seed {seed} iteration {i}: connection still open {d:?} after garbage + EOF: {:02x?}",
                &bytes[..bytes.len().min(64)]
            ),
        }
        if i % 100 == 99 {
            assert_healthy(&mut b, &format!("garbage iteration {i} (seed {seed})"));
        }
    }
    eprintln!(
        "{iterations} garbage frames in {:?}; {answered} were answered, the rest closed",
        t0.elapsed()
    );
    assert_healthy(&mut b, &format!("garbage bytes (seed {seed})"));
}

/// Well-formed requests (frames) to mutate.
fn mutation_templates() -> Vec<Vec<u8>> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::DescribeConfigsRequest;
    let records = batch(
        &[
            Rec {
                key: Some(b"k"),
                value: Some(b"some value"),
                timestamp: common::now_ms(),
            },
            Rec {
                key: None,
                value: Some(b"another"),
                timestamp: common::now_ms(),
            },
        ],
        Compression::None,
    );
    let md = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(topic_name("fuzz"))),
    ]));
    let dc =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes("fuzz"))]);
    let av3 = ApiVersionsRequest::default()
        .with_client_software_name(str_bytes("klamm-it"))
        .with_client_software_version(str_bytes("1"));
    let mut lo = RawConn::list_offsets_request("fuzz", 0, -1);
    lo.timeout_ms = 1000;
    vec![
        encode_frame(0, 1, &md),
        encode_frame(1, 1, &md),
        encode_frame(12, 1, &md),
        encode_frame(0, 1, &ApiVersionsRequest::default()),
        encode_frame(3, 1, &av3),
        encode_frame(3, 1, &produce_request("fuzz", 0, records.clone(), -1)),
        encode_frame(9, 1, &produce_request("fuzz", 1, records, 1)),
        encode_frame(1, 1, &lo),
        encode_frame(8, 1, &lo),
        encode_frame(1, 1, &dc),
        encode_frame(4, 1, &dc),
    ]
}

#[test]
fn produce_with_corrupted_crc_is_rejected_and_stores_nothing() {
    let mut b = Broker::start();
    let mut c = RawConn::connect(b.port());
    let topic = "crc";
    c.create_topic_ok(topic, 1);
    let v = c.pick_version(ApiKey::Produce, 9);
    let now = common::now_ms();
    let good = batch(
        &[
            Rec {
                key: Some(b"a"),
                value: Some(b"first"),
                timestamp: now,
            },
            Rec {
                key: Some(b"b"),
                value: Some(b"second"),
                timestamp: now,
            },
            Rec {
                key: Some(b"c"),
                value: Some(b"third"),
                timestamp: now,
            },
        ],
        Compression::None,
    );
    // Flip a byte in the last record's value (covered by the CRC), then one in the CRC itself.
    let mut flipped_value = good.to_vec();
    *flipped_value.last_mut().unwrap() ^= 0xFF;
    let mut flipped_crc = good.to_vec();
    flipped_crc[17] ^= 0x01; // CRC occupies bytes 17..21 of a v2 batch
    for (name, bytes) in [
        ("flipped value byte", flipped_value),
        ("flipped CRC byte", flipped_crc),
    ] {
        let p = c.produce(v, topic, 0, Bytes::from(bytes), -1);
        assert_eq!(
            p.error_code, CORRUPT_MESSAGE,
            "Produce v{v} with {name}: expected CORRUPT_MESSAGE (2), got {} ({:?})",
            p.error_code, p.error_message
        );
        let latest = c.list_offset(topic, 0, -1);
        assert_eq!(
            latest.offset, 0,
            "{name}: a corrupt batch was stored (latest offset)"
        );
        let data = c.fetch(topic, 0, 0, 0, 0);
        assert!(
            decode_records(data.records.clone()).is_empty(),
            "{name}: Fetch returned records after a corrupt produce"
        );
        assert_eq!(
            data.high_watermark, 0,
            "{name}: high watermark after corrupt produce"
        );
    }
    let p = c.produce(v, topic, 0, good, -1);
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "the intact batch lands at offset 0"
    );
    assert_healthy(&mut b, "corrupt CRC");
}

#[test]
fn produce_to_unknown_topic_without_auto_create() {
    let mut b = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let mut c = RawConn::connect(b.port());
    let v = c.pick_version(ApiKey::Produce, 9);
    let records = batch(
        &[Rec {
            key: None,
            value: Some(b"nobody home"),
            timestamp: common::now_ms(),
        }],
        Compression::None,
    );
    let p = c.produce(v, "no-such-topic", 0, records, -1);
    assert_eq!(
        p.error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "Produce to an unknown topic with auto-create off: {:?}",
        p.error_message
    );
    // Metadata asking for auto-creation must not create it either.
    for _ in 0..2 {
        let md = c.metadata(12, Some(&["no-such-topic"]), true);
        assert_eq!(md.topics.len(), 1, "Metadata lists the requested topic");
        assert_eq!(
            md.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "Metadata for an unknown topic with auto-create off"
        );
    }
    let all = c.metadata(12, None, false);
    assert!(
        !all.topics
            .iter()
            .any(|t| t.name.as_ref().map(|n| n.as_str()) == Some("no-such-topic")),
        "topic was created although auto.create.topics.enable=false"
    );
    // An existing topic but a partition that does not exist.
    c.create_topic_ok("one-partition", 1);
    let records = batch(
        &[Rec {
            key: None,
            value: Some(b"x"),
            timestamp: common::now_ms(),
        }],
        Compression::None,
    );
    let p = c.produce(v, "one-partition", 5, records, -1);
    assert_eq!(
        p.error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "Produce to partition 5 of a 1-partition topic"
    );
    assert_healthy(&mut b, "unknown topic produce");
}

fn topic_ids(c: &mut RawConn, version: i16) -> Vec<(String, String, usize)> {
    let md = c.metadata(version, None, false);
    let mut v: Vec<(String, String, usize)> = md
        .topics
        .iter()
        .map(|t| {
            assert_eq!(
                t.error_code, 0,
                "Metadata v{version} topic error for {:?}",
                t.name
            );
            (
                t.name
                    .as_ref()
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                t.topic_id.to_string(),
                t.partitions.len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn metadata_v12_topic_ids_are_stable_across_restarts() {
    let mut b = Broker::start();
    let mut c = RawConn::connect(b.port());
    c.create_topic_ok("ids-a", 1);
    c.create_topic_ok("ids-b", 3);
    let ids = topic_ids(&mut c, 12);
    let names: Vec<&str> = ids.iter().map(|t| t.0.as_str()).collect();
    assert!(
        names.contains(&"ids-a") && names.contains(&"ids-b"),
        "topics listed: {names:?}"
    );
    for (name, id, _) in &ids {
        assert_ne!(
            id, "00000000-0000-0000-0000-000000000000",
            "{name}: nil topic_id in Metadata v12"
        );
    }
    assert_ne!(ids[0].1, ids[1].1, "two topics share a topic_id");
    assert_eq!(topic_ids(&mut c, 10), ids, "Metadata v10 and v12 disagree");
    drop(c);

    b.restart();
    let mut c = RawConn::connect(b.port());
    assert_eq!(
        topic_ids(&mut c, 12),
        ids,
        "topic ids/partitions after SIGTERM + restart"
    );
    drop(c);

    b.kill9();
    b.start_again();
    let mut c = RawConn::connect(b.port());
    assert_eq!(
        topic_ids(&mut c, 12),
        ids,
        "topic ids/partitions after SIGKILL + restart"
    );
}

#[test]
fn list_offsets_earliest_latest_by_timestamp_and_max_timestamp() {
    let b = Broker::start();
    let mut c = RawConn::connect(b.port());
    let topic = "list-offsets";
    c.create_topic_ok(topic, 1);
    let v = c.pick_version(ApiKey::Produce, 9);
    let t0 = common::now_ms() - 60_000;
    // offsets 0,1,2 then 3,4 with timestamps t0, t0+10, t0+50 | t0+20, t0+30
    let b1 = batch(
        &[
            Rec {
                key: None,
                value: Some(b"0"),
                timestamp: t0,
            },
            Rec {
                key: None,
                value: Some(b"1"),
                timestamp: t0 + 10,
            },
            Rec {
                key: None,
                value: Some(b"2"),
                timestamp: t0 + 50,
            },
        ],
        Compression::None,
    );
    let b2 = batch(
        &[
            Rec {
                key: None,
                value: Some(b"3"),
                timestamp: t0 + 20,
            },
            Rec {
                key: None,
                value: Some(b"4"),
                timestamp: t0 + 30,
            },
        ],
        Compression::None,
    );
    assert_eq!(c.produce(v, topic, 0, b1, -1).error_code, 0);
    assert_eq!(c.produce(v, topic, 0, b2, -1).base_offset, 3);

    let check = |c: &mut RawConn, ts: i64, offset: i64, found_ts: Option<i64>, what: &str| {
        let r = c.list_offset(topic, 0, ts);
        assert_eq!(r.error_code, 0, "ListOffsets {what}: error");
        assert_eq!(
            r.offset, offset,
            "ListOffsets {what} (timestamp {ts}): offset"
        );
        if let Some(t) = found_ts {
            assert_eq!(r.timestamp, t, "ListOffsets {what}: timestamp");
        }
    };
    check(&mut c, -2, 0, None, "earliest");
    check(&mut c, -1, 5, None, "latest");
    check(&mut c, t0, 0, Some(t0), "exact first timestamp");
    check(&mut c, t0 + 5, 1, Some(t0 + 10), "between records");
    check(
        &mut c,
        t0 + 15,
        2,
        Some(t0 + 50),
        "first offset with ts >= target",
    );
    check(&mut c, t0 + 51, -1, Some(-1), "after every timestamp");
    let lv = c.pick_version(ApiKey::ListOffsets, 8);
    assert!(lv >= 7, "ListOffsets v7 (max timestamp) not advertised");
    check(&mut c, -3, 2, Some(t0 + 50), "max timestamp");
}

/// librdkafka's Metadata v9+ request for *all* topics reserves 4 bytes for the topic array count
/// and writes a 1-byte null varint into them, leaving 3 zero bytes the schema does not account
/// for (rdkafka_request.c, `rd_kafka_MetadataRequest0`). Apache Kafka ignores them; a broker
/// that rejects trailing bytes breaks every librdkafka metadata refresh.
#[test]
fn metadata_v12_all_topics_as_librdkafka_encodes_it_is_answered() {
    let mut b = Broker::start();
    let mut c = RawConn::connect(b.port());
    c.create_topic_ok("listed", 2);
    let mut payload = header_bytes(ApiKey::Metadata as i16, 12, 2, 31);
    payload.extend_from_slice(&[0, 0, 0, 0]); // topics: null, in librdkafka's 4-byte slot
    payload.push(0); // allow_auto_topic_creation
    payload.push(0); // include_topic_authorized_operations
    payload.push(0); // tagged fields
    c.write_all(&frame(&payload)).unwrap();
    let mut f = c.recv_frame().unwrap_or_else(|e| {
        panic!("Metadata v12 (all topics, librdkafka encoding with 3 trailing zero bytes): connection closed / no answer: {e}")
    });
    let md = decode_response::<MetadataRequest>(&mut f, 12, 31);
    let names: Vec<String> = md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.as_str().to_string()))
        .collect();
    assert!(
        names.contains(&"listed".to_string()),
        "all-topics Metadata lists 'listed': {names:?}"
    );
    assert_healthy(&mut b, "librdkafka-style Metadata v12");
}

/// Arbitrary bytes after a complete body: answered or closed, never a crash or a hang.
#[test]
fn trailing_bytes_after_a_complete_body_do_not_hurt_the_broker() {
    let mut b = Broker::start();
    let requests = [
        (
            "Metadata v12",
            encode_frame(12, 9, &MetadataRequest::default().with_topics(None)),
        ),
        (
            "Metadata v1",
            encode_frame(1, 9, &MetadataRequest::default().with_topics(None)),
        ),
        (
            "ApiVersions v3",
            encode_frame(
                3,
                9,
                &ApiVersionsRequest::default()
                    .with_client_software_name(str_bytes("klamm-it"))
                    .with_client_software_version(str_bytes("1")),
            ),
        ),
    ];
    for (name, f) in requests {
        let mut longer = f[4..].to_vec();
        longer.extend_from_slice(&[0xAB; 7]);
        let mut c = RawConn::connect(b.port());
        c.write_all(&frame(&longer)).unwrap();
        c.shutdown_write();
        let outcome = c.wait_closed(CLOSE_WITHIN);
        eprintln!("{name} + 7 trailing bytes: {outcome:?}");
        assert!(
            !matches!(outcome, CloseOutcome::StillOpen(_)),
            "{name} + 7 trailing bytes: neither answered nor closed"
        );
        assert_healthy(&mut b, &format!("{name} with trailing bytes"));
    }
}

#[test]
fn describe_configs_of_an_unknown_topic_is_an_error() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::DescribeConfigsRequest;
    let b = Broker::start();
    let mut c = RawConn::connect(b.port());
    c.create_topic_ok("known", 1);
    let v = c.pick_version(ApiKey::DescribeConfigs, 4);
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes("no-such-topic")),
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes("known"))
            .with_configuration_keys(None), // null = all configs (the crate defaults to [])
    ]);
    let resp = c.call(v, &req);
    assert_eq!(resp.results.len(), 2, "one result per resource");
    let unknown = &resp.results[0];
    assert_eq!(
        unknown.error_code,
        UNKNOWN_TOPIC_OR_PARTITION,
        "DescribeConfigs v{v} topic 'no-such-topic': error_code (message {:?}, {} configs)",
        unknown.error_message,
        unknown.configs.len()
    );
    let known = &resp.results[1];
    assert_eq!(known.error_code, 0, "DescribeConfigs v{v} topic 'known'");
    assert!(
        !known.configs.is_empty(),
        "DescribeConfigs v{v} topic 'known' has no configs"
    );
}

/// Fetch v13+ names topics by id (KIP-516): records come back under the topic's id, an
/// unknown id is UNKNOWN_TOPIC_ID. Metadata by id works with the empty name the Java client
/// sends beside the id.
#[test]
fn fetch_v13_to_v17_and_metadata_by_topic_id() {
    let b = Broker::start();
    let mut c = RawConn::connect(b.port());
    let topic = "by-id";
    c.create_topic_ok(topic, 1);
    let records = batch(
        &[Rec {
            key: Some(b"k"),
            value: Some(b"by id"),
            timestamp: common::now_ms(),
        }],
        Compression::None,
    );
    assert_eq!(c.produce(9, topic, 0, records, -1).error_code, 0);
    let id = c.metadata(12, Some(&[topic]), false).topics[0].topic_id;
    assert!(!id.is_nil(), "Metadata v12 gives the topic id");
    let by_id = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(Some(topic_name(""))),
    ]));
    let meta = c.call(12, &by_id);
    assert_eq!(
        (meta.topics[0].error_code, meta.topics[0].topic_id),
        (0, id),
        "Metadata by id with an empty name: {meta:?}"
    );
    assert_eq!(
        meta.topics[0].name.as_ref().map(|n| n.0.as_str()),
        Some(topic)
    );
    for version in 13..=17i16 {
        let mut req = fetch_request("", 0, 0, 0, 0);
        req.topics[0].topic_id = id;
        let resp = c.call(version, &req);
        let t = &resp.responses[0];
        assert_eq!(t.topic_id, id, "Fetch v{version}: topic id echoed");
        assert_eq!(t.partitions[0].error_code, 0, "Fetch v{version}: {resp:?}");
        let got = t.partitions[0].records.clone().unwrap_or_default();
        assert!(
            got.windows(5).any(|w| w == b"by id"),
            "Fetch v{version}: the record is returned"
        );
        // Any id but the topic's: its bits reversed.
        req.topics[0].topic_id = uuid::Uuid::from_u128(id.as_u128().reverse_bits());
        let unknown = c.call(version, &req);
        assert_eq!(
            unknown.responses[0].partitions[0].error_code, 100,
            "Fetch v{version}: an unknown topic id is UNKNOWN_TOPIC_ID"
        );
    }
}
