//! A real client (librdkafka through the `rdkafka` crate) against a real broker process:
//! admin operations, byte-exact produce/consume for every codec, timestamps and offsets.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::raw::RawConn;
use common::{
    admin, admin_opts, assert_no_more, assign, consume_n, create_topic, metadata, partition_count,
    watermarks, Broker, CLIENT_TIMEOUT,
};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use rdkafka::admin::{NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Message, Offset, Timestamp, TopicPartitionList};

const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test exceeded its time limit");
}

async fn admin_call<T>(
    fut: impl std::future::Future<Output = rdkafka::error::KafkaResult<T>>,
    what: &str,
) -> T {
    tokio::time::timeout(CLIENT_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{what}: request failed: {e}"))
}

fn one<T: std::fmt::Debug>(mut v: Vec<T>, what: &str) -> T {
    assert_eq!(v.len(), 1, "{what}: expected one result, got {v:?}");
    v.pop().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Admin: topics
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_duplicate_validate_only_and_invalid_name() {
    bounded(async {
        let b = Broker::start();
        let a = admin(&b);
        let t = NewTopic::new("created", 3, TopicReplication::Fixed(1));
        let r = one(
            admin_call(a.create_topics([&t], &admin_opts()), "CreateTopics created").await,
            "create",
        );
        assert_eq!(
            r,
            Ok("created".to_string()),
            "CreateTopics created (3 partitions)"
        );
        assert_eq!(
            partition_count(&b, "created"),
            Some(3),
            "Metadata partition count of 'created'"
        );

        let md = metadata(&b, Some("created"));
        let topic = &md.topics()[0];
        assert_eq!(md.brokers().len(), 1, "one broker in Metadata");
        let broker = &md.brokers()[0];
        assert_eq!(
            (broker.host(), broker.port()),
            ("127.0.0.1", b.port() as i32),
            "advertised address"
        );
        for p in topic.partitions() {
            assert_eq!(p.leader(), broker.id(), "partition {} leader", p.id());
            assert_eq!(
                p.replicas(),
                &[broker.id()],
                "partition {} replicas",
                p.id()
            );
            assert_eq!(p.isr(), &[broker.id()], "partition {} isr", p.id());
        }

        let r = one(
            admin_call(
                a.create_topics([&t], &admin_opts()),
                "CreateTopics duplicate",
            )
            .await,
            "dup",
        );
        assert_eq!(
            r,
            Err(("created".to_string(), RDKafkaErrorCode::TopicAlreadyExists)),
            "CreateTopics for an existing name"
        );

        let v = NewTopic::new("validated-only", 2, TopicReplication::Fixed(1));
        let opts = admin_opts().validate_only(true);
        let r = one(
            admin_call(a.create_topics([&v], &opts), "CreateTopics validate_only").await,
            "vo",
        );
        assert_eq!(
            r,
            Ok("validated-only".to_string()),
            "validate_only CreateTopics"
        );
        assert_eq!(
            partition_count(&b, "validated-only"),
            None,
            "validate_only must not create the topic"
        );
        let r = one(
            admin_call(
                a.create_topics([&t], &opts),
                "CreateTopics validate_only dup",
            )
            .await,
            "vo dup",
        );
        assert_eq!(
            r,
            Err(("created".to_string(), RDKafkaErrorCode::TopicAlreadyExists)),
            "validate_only CreateTopics for an existing name"
        );

        for bad in ["bad/name", "..", "spaces are bad"] {
            let t = NewTopic::new(bad, 1, TopicReplication::Fixed(1));
            let r = one(
                admin_call(
                    a.create_topics([&t], &admin_opts()),
                    "CreateTopics bad name",
                )
                .await,
                bad,
            );
            assert_eq!(
                r,
                Err((bad.to_string(), RDKafkaErrorCode::InvalidTopic)),
                "CreateTopics {bad:?}"
            );
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_with_invalid_config_is_rejected() {
    bounded(async {
        let b = Broker::start();
        let a = admin(&b);
        let t = NewTopic::new("bad-config", 1, TopicReplication::Fixed(1))
            .set("retention.ms", "not-a-number");
        let r = one(
            admin_call(
                a.create_topics([&t], &admin_opts()),
                "CreateTopics bad config",
            )
            .await,
            "bad",
        );
        assert_eq!(
            r,
            Err(("bad-config".to_string(), RDKafkaErrorCode::InvalidConfig)),
            "CreateTopics with retention.ms=not-a-number"
        );
        assert_eq!(
            partition_count(&b, "bad-config"),
            None,
            "topic with invalid config was created"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics_removes_them_from_metadata() {
    bounded(async {
        let b = Broker::start();
        create_topic(&b, "doomed", 2, &[]).await;
        let p = common::producer(&b, &[]);
        for i in 0..5 {
            let v = format!("old-{i}");
            p.send(
                FutureRecord::<(), _>::to("doomed").payload(&v).partition(0),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to doomed: {e}"));
        }
        drop(p);
        let a = admin(&b);
        let r = one(
            admin_call(a.delete_topics(&["doomed"], &admin_opts()), "DeleteTopics").await,
            "delete",
        );
        assert_eq!(r, Ok("doomed".to_string()), "DeleteTopics doomed");
        let names = common::list_topics(&b);
        assert!(
            !names.contains_key("doomed"),
            "deleted topic still listed by Metadata: {names:?}"
        );
        let md = metadata(&b, Some("doomed"));
        assert_eq!(
            md.topics()[0].error(),
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
            "librdkafka Metadata for the deleted topic"
        );

        let r = one(
            admin_call(
                a.delete_topics(&["doomed"], &admin_opts()),
                "DeleteTopics again",
            )
            .await,
            "again",
        );
        assert_eq!(
            r,
            Err((
                "doomed".to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            )),
            "DeleteTopics of a deleted topic"
        );

        // The name can be reused and starts empty.
        create_topic(&b, "doomed", 1, &[]).await;
        assert_eq!(
            partition_count(&b, "doomed"),
            Some(1),
            "recreated topic partition count"
        );
        assert_eq!(
            watermarks(&b, "doomed", 0),
            (0, 0),
            "recreated topic must not see old data"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_a_topic() {
    bounded(async {
        let b = Broker::start();
        create_topic(&b, "grow", 1, &[]).await;
        let a = admin(&b);
        let np = NewPartitions::new("grow", 4);
        let r = one(
            admin_call(
                a.create_partitions([&np], &admin_opts()),
                "CreatePartitions 4",
            )
            .await,
            "grow",
        );
        assert_eq!(r, Ok("grow".to_string()), "CreatePartitions grow → 4");
        assert_eq!(
            partition_count(&b, "grow"),
            Some(4),
            "partition count after growth"
        );

        let p = common::producer(&b, &[]);
        let d = p
            .send(
                FutureRecord::<(), _>::to("grow")
                    .payload("in p3")
                    .partition(3),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to new partition 3: {e}"));
        assert_eq!(
            (d.partition, d.offset),
            (3, 0),
            "first record of new partition 3"
        );

        let opts = admin_opts().validate_only(true);
        let np = NewPartitions::new("grow", 6);
        let r = one(
            admin_call(
                a.create_partitions([&np], &opts),
                "CreatePartitions validate_only",
            )
            .await,
            "vo",
        );
        assert_eq!(
            r,
            Ok("grow".to_string()),
            "validate_only CreatePartitions → 6"
        );
        assert_eq!(
            partition_count(&b, "grow"),
            Some(4),
            "validate_only must not add partitions"
        );

        let np = NewPartitions::new("grow", 2);
        let r = one(
            admin_call(
                a.create_partitions([&np], &admin_opts()),
                "CreatePartitions shrink",
            )
            .await,
            "shrink",
        );
        assert_eq!(
            r,
            Err(("grow".to_string(), RDKafkaErrorCode::InvalidPartitions)),
            "CreatePartitions to fewer partitions"
        );
        let np = NewPartitions::new("no-such-topic", 3);
        let r = one(
            admin_call(
                a.create_partitions([&np], &admin_opts()),
                "CreatePartitions unknown",
            )
            .await,
            "unknown",
        );
        assert_eq!(
            r,
            Err((
                "no-such-topic".to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            )),
            "CreatePartitions of an unknown topic"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_on_produce_and_on_metadata() {
    bounded(async {
        let b = Broker::start_with(&[("num.partitions", "3")]);
        let p = common::producer(&b, &[]);
        let d = p
            .send(
                FutureRecord::<(), _>::to("auto-by-produce").payload("hello"),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to a new topic (auto-create on): {e}"));
        assert!(
            (0..3).contains(&d.partition),
            "delivered to partition {}",
            d.partition
        );
        assert_eq!(
            partition_count(&b, "auto-by-produce"),
            Some(3),
            "auto-created topic uses num.partitions"
        );

        // A Metadata request that allows auto-creation creates the topic.
        let mut c = RawConn::connect(b.port());
        let v = c.pick_version(ApiKey::Metadata, 12);
        let md = c.metadata(v, Some(&["auto-by-metadata"]), true);
        let code = md.topics[0].error_code;
        assert!(
            code == 0 || code == 5, // LEADER_NOT_AVAILABLE while the topic is being created
            "Metadata v{v} with allow_auto_topic_creation: error {code}"
        );
        let mut count = None;
        for _ in 0..50 {
            count = partition_count(&b, "auto-by-metadata");
            if count.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(count, Some(3), "topic auto-created by Metadata");

        // A Metadata request that does not allow it must not create it.
        let md = c.metadata(v, Some(&["not-auto"]), false);
        assert_eq!(
            md.topics[0].error_code, 3,
            "Metadata without auto-create for an unknown topic"
        );
        assert_eq!(
            partition_count(&b, "not-auto"),
            None,
            "topic created although not allowed"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_of_a_topic_and_the_broker() {
    bounded(async {
        let b = Broker::start_with(&[("num.partitions", "3")]);
        create_topic(&b, "configured", 1, &[("retention.ms", "12345")]).await;
        let a = admin(&b);
        let node_id = metadata(&b, Some("configured")).brokers()[0].id();

        let topic = ResourceSpecifier::Topic("configured");
        let broker = ResourceSpecifier::Broker(node_id);
        let res = admin_call(
            a.describe_configs([&topic, &broker], &admin_opts()),
            "DescribeConfigs",
        )
        .await;
        assert_eq!(res.len(), 2, "two resources described");
        let t = res[0]
            .as_ref()
            .unwrap_or_else(|e| panic!("DescribeConfigs topic: {e:?}"));
        let entries = t.entry_map();
        let retention = entries
            .get("retention.ms")
            .unwrap_or_else(|| panic!("topic config lacks retention.ms"));
        assert_eq!(
            retention.value.as_deref(),
            Some("12345"),
            "topic retention.ms"
        );
        assert!(
            !retention.is_default,
            "retention.ms was set at creation, is_default must be false"
        );
        let cleanup = entries
            .get("cleanup.policy")
            .unwrap_or_else(|| panic!("topic config lacks cleanup.policy"));
        assert_eq!(
            cleanup.value.as_deref(),
            Some("delete"),
            "default cleanup.policy"
        );
        assert!(
            entries.contains_key("segment.bytes"),
            "topic config lacks segment.bytes"
        );

        let br = res[1]
            .as_ref()
            .unwrap_or_else(|e| panic!("DescribeConfigs broker {node_id}: {e:?}"));
        let entries = br.entry_map();
        assert!(!entries.is_empty(), "broker config is empty");
        let np = entries
            .get("num.partitions")
            .unwrap_or_else(|| panic!("broker config lacks num.partitions"));
        assert_eq!(
            np.value.as_deref(),
            Some("3"),
            "broker num.partitions set with --set"
        );

        // The rdkafka crate drops per-resource errors (always Ok); the unknown-topic error is
        // checked in raw_protocol::describe_configs_of_an_unknown_topic_is_an_error.
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Produce/consume byte-exact, per codec
// ---------------------------------------------------------------------------------------------

type HeaderList = Vec<(String, Option<Vec<u8>>)>;

struct Sent {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: HeaderList,
    timestamp: i64,
}

fn make_records(n: usize, base_ts: i64) -> Vec<Sent> {
    (0..n)
        .map(|i| {
            let key = (i % 17 != 0).then(|| format!("key-{i}").into_bytes());
            let value = if i % 23 == 5 {
                None // tombstone
            } else if i % 50 == 7 {
                Some(
                    (0..100_000u32)
                        .map(|j| b"klamm-compressible-"[(j % 19) as usize] ^ (i as u8))
                        .collect(),
                )
            } else if i % 31 == 3 {
                Some((0..=255u8).cycle().take(300).collect()) // every byte value
            } else {
                Some(format!("value-{i}-").repeat(1 + i % 10).into_bytes())
            };
            let headers = if i % 3 == 0 {
                Vec::new()
            } else {
                vec![
                    ("trace".to_string(), Some(format!("t-{i}").into_bytes())),
                    ("dup".to_string(), Some(b"first".to_vec())),
                    ("dup".to_string(), Some(b"second".to_vec())),
                    ("null-header".to_string(), None),
                    ("dup".to_string(), Some(b"third".to_vec())),
                    ("bin".to_string(), Some(vec![0, 255, 1, 254])),
                ]
            };
            Sent {
                partition: (i % 2) as i32,
                key,
                value,
                headers,
                timestamp: base_ts + i as i64,
            }
        })
        .collect()
}

fn headers_of(m: &OwnedMessage) -> HeaderList {
    match m.headers() {
        None => Vec::new(),
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

async fn produce_all(p: &FutureProducer, topic: &str, recs: &[Sent]) -> Vec<(i32, i64)> {
    let mut futures = Vec::with_capacity(recs.len());
    for (i, r) in recs.iter().enumerate() {
        let mut hdrs = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            hdrs = hdrs.insert(Header {
                key: k,
                value: v.as_ref(),
            });
        }
        let mut rec: FutureRecord<'_, Vec<u8>, Vec<u8>> = FutureRecord::to(topic)
            .partition(r.partition)
            .timestamp(r.timestamp);
        if let Some(k) = &r.key {
            rec = rec.key(k);
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v);
        }
        if !r.headers.is_empty() {
            rec = rec.headers(hdrs);
        }
        let f = p
            .send_result(rec)
            .unwrap_or_else(|(e, _)| panic!("enqueue record {i}: {e}"));
        futures.push(f);
    }
    let mut out = Vec::with_capacity(futures.len());
    for (i, f) in futures.into_iter().enumerate() {
        let d = tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .unwrap_or_else(|_| panic!("delivery report for record {i} did not arrive"))
            .expect("delivery future canceled")
            .unwrap_or_else(|(e, _)| panic!("record {i} not delivered: {e}"));
        out.push((d.partition, d.offset));
    }
    out
}

fn codec_of(name: &str) -> Compression {
    match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => unreachable!(),
    }
}

async fn roundtrip(codec: &str) {
    let b = Broker::start();
    let topic = format!("codec-{codec}");
    create_topic(&b, &topic, 2, &[]).await;
    let n = 300;
    let base_ts = common::now_ms() - 600_000;
    let recs = make_records(n, base_ts);
    let p = common::producer(
        &b,
        &[
            ("compression.type", codec),
            ("linger.ms", "20"),
            ("batch.num.messages", "50"),
        ],
    );
    let acks = produce_all(&p, &topic, &recs).await;

    // Offsets are contiguous from 0 per partition, assigned in send order.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (i, (part, off)) in acks.iter().enumerate() {
        assert_eq!(
            *part, recs[i].partition,
            "record {i} delivered to the wrong partition"
        );
        let e = next.entry(*part).or_insert(0);
        assert_eq!(
            *off, *e,
            "record {i}: acknowledged offset in partition {part}"
        );
        *e += 1;
    }

    let c = common::consumer(&b, &[]);
    assign(&c, &topic, &[0, 1], Offset::Beginning);
    let got = consume_n(&c, n, Duration::from_secs(30)).await;
    assert_no_more(&c, Duration::from_millis(500)).await;

    let by_pos: HashMap<(i32, i64), usize> =
        acks.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for m in &got {
        let pos = (m.partition(), m.offset());
        if let Some(prev) = last.insert(m.partition(), m.offset()) {
            assert_eq!(
                m.offset(),
                prev + 1,
                "partition {} offsets not contiguous",
                m.partition()
            );
        } else {
            assert_eq!(
                m.offset(),
                0,
                "partition {} does not start at offset 0",
                m.partition()
            );
        }
        let i = *by_pos
            .get(&pos)
            .unwrap_or_else(|| panic!("consumed a record at {pos:?} that was never acknowledged"));
        let r = &recs[i];
        assert_eq!(m.key(), r.key.as_deref(), "[{codec}] record {i} key");
        assert_eq!(
            m.payload(),
            r.value.as_deref(),
            "[{codec}] record {i} value"
        );
        assert_eq!(headers_of(m), r.headers, "[{codec}] record {i} headers");
        assert_eq!(
            m.timestamp(),
            Timestamp::CreateTime(r.timestamp),
            "[{codec}] record {i} timestamp"
        );
    }
    for (part, count) in &next {
        assert_eq!(
            watermarks(&b, &topic, *part),
            (0, *count),
            "[{codec}] watermarks of partition {part}"
        );
    }

    // The stored batches are the producer's bytes: still compressed with the chosen codec.
    let mut raw = RawConn::connect(b.port());
    let data = raw.fetch(&topic, 0, 0, 0, 0);
    let mut bytes = data.records.clone().expect("records in fetch");
    let infos = RecordBatchDecoder::decode_batch_info(&mut bytes).expect("decode batch headers");
    assert!(!infos.is_empty(), "no batches fetched");
    let want = codec_of(codec);
    // librdkafka sends a batch uncompressed when compressing it would not make it smaller,
    // which happens to the batch of a record or two that linger.ms cuts off first.
    // Every batch of several records must carry the codec, and most do.
    let compressed = infos.iter().filter(|i| i.compression == want).count();
    assert!(
        infos.iter().all(|i| i.version == 2
            && (i.compression == want
                || (i.compression == Compression::None && i.record_count <= 2)))
            && compressed * 2 > infos.len(),
        "[{codec}] stored batch codecs/magic/records: {:?}",
        infos
            .iter()
            .map(|i| (i.compression, i.version, i.record_count))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "[{codec}] {n} records in {} batches on partition 0",
        infos.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_none() {
    bounded(roundtrip("none")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_gzip() {
    bounded(roundtrip("gzip")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_snappy() {
    bounded(roundtrip("snappy")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_lz4() {
    bounded(roundtrip("lz4")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_zstd() {
    bounded(roundtrip("zstd")).await
}

// ---------------------------------------------------------------------------------------------
// Timestamps, seeking, watermarks
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_seek_and_watermarks() {
    bounded(async {
        let b = Broker::start();
        let topic = "times";
        create_topic(&b, topic, 1, &[]).await;
        assert_eq!(
            watermarks(&b, topic, 0),
            (0, 0),
            "empty partition watermarks"
        );
        let base = common::now_ms() - 3_600_000;
        let p = common::producer(&b, &[("linger.ms", "0")]);
        for i in 0..20i64 {
            let v = format!("t{i}");
            let d = p
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .payload(&v)
                        .partition(0)
                        .timestamp(base + i * 1000),
                    Duration::from_secs(5),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
            assert_eq!(d.offset, i, "offset of record {i}");
        }
        assert_eq!(
            watermarks(&b, topic, 0),
            (0, 20),
            "watermarks after 20 records"
        );

        let c = common::consumer(&b, &[]);
        for (ts, want, what) in [
            (base, Offset::Offset(0), "first timestamp"),
            (base + 4500, Offset::Offset(5), "between t4 and t5"),
            (base + 19_000, Offset::Offset(19), "last timestamp"),
            (base + 19_001, Offset::End, "after the last timestamp"),
        ] {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
                .unwrap();
            let res = c
                .offsets_for_times(tpl, CLIENT_TIMEOUT)
                .unwrap_or_else(|e| panic!("offsets_for_times({what}): {e}"));
            let el = res.find_partition(topic, 0).expect("partition in result");
            assert!(
                el.error().is_ok(),
                "offsets_for_times({what}): {:?}",
                el.error()
            );
            assert_eq!(
                el.offset(),
                want,
                "offsets_for_times({what}) for timestamp {ts}"
            );
        }

        // Read from an offset found by timestamp, then seek backwards and forwards.
        assign(&c, topic, &[0], Offset::Offset(5));
        let m = consume_n(&c, 3, Duration::from_secs(15)).await;
        let got: Vec<(i64, Option<&[u8]>)> = m.iter().map(|m| (m.offset(), m.payload())).collect();
        assert_eq!(
            got,
            vec![
                (5, Some(&b"t5"[..])),
                (6, Some(&b"t6"[..])),
                (7, Some(&b"t7"[..]))
            ]
        );
        assert_eq!(
            m[0].timestamp(),
            Timestamp::CreateTime(base + 5000),
            "timestamp of offset 5"
        );

        c.seek(topic, 0, Offset::Offset(2), CLIENT_TIMEOUT)
            .expect("seek to 2");
        let m = consume_n(&c, 1, Duration::from_secs(15)).await;
        assert_eq!(
            (m[0].offset(), m[0].payload()),
            (2, Some(&b"t2"[..])),
            "after seek to 2"
        );
        c.seek(topic, 0, Offset::Offset(18), CLIENT_TIMEOUT)
            .expect("seek to 18");
        let m = consume_n(&c, 2, Duration::from_secs(15)).await;
        let got: Vec<i64> = m.iter().map(|m| m.offset()).collect();
        assert_eq!(got, vec![18, 19], "after seek to 18");
        assert_no_more(&c, Duration::from_millis(500)).await;
    })
    .await
}

/// librdkafka (rdkafka_feature.c) turns on its LZ4 feature only when the broker's ApiVersions
/// lists FindCoordinator; otherwise `compression.type=lz4` silently sends uncompressed batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_really_compresses_with_lz4() {
    bounded(async {
        let b = Broker::start();
        create_topic(&b, "lz4-used", 1, &[]).await;
        let p = common::producer(&b, &[("compression.type", "lz4"), ("linger.ms", "20")]);
        let value = "lz4 lz4 lz4 lz4 ".repeat(200);
        let mut fs = Vec::new();
        for _ in 0..20 {
            fs.push(
                p.send_result(
                    FutureRecord::<(), _>::to("lz4-used")
                        .payload(&value)
                        .partition(0),
                )
                .ok()
                .unwrap(),
            );
        }
        for f in fs {
            f.await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        }
        let mut raw = RawConn::connect(b.port());
        let data = raw.fetch("lz4-used", 0, 0, 0, 0);
        let mut bytes = data.records.clone().expect("records");
        let infos = RecordBatchDecoder::decode_batch_info(&mut bytes).expect("batch headers");
        let codecs: Vec<Compression> = infos.iter().map(|i| i.compression).collect();
        assert!(
            !codecs.is_empty() && codecs.iter().all(|c| *c == Compression::Lz4),
            "librdkafka with compression.type=lz4 stored batches with codecs {codecs:?}: it only \
             uses LZ4 when ApiVersions advertises FindCoordinator (rdkafka_feature.c)"
        );
    })
    .await
}

/// librdkafka's Metadata request for all topics (see raw_protocol's test of its exact bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_metadata_for_all_topics() {
    bounded(async {
        let b = Broker::start();
        create_topic(&b, "all-a", 2, &[]).await;
        create_topic(&b, "all-b", 1, &[]).await;
        let md = metadata(&b, None);
        let topics: BTreeMap<&str, usize> = md
            .topics()
            .iter()
            .map(|t| (t.name(), t.partitions().len()))
            .collect();
        assert_eq!(topics.get("all-a"), Some(&2), "all-a in {topics:?}");
        assert_eq!(topics.get("all-b"), Some(&1), "all-b in {topics:?}");
    })
    .await
}
