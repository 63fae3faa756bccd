"""confluent-kafka (librdkafka) against a live Klamm broker."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_END, TIMESTAMP_CREATE_TIME, TopicCollection, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, NewPartitions, ResourceType

from helpers import (
    ADMIN_TIMEOUT_S,
    DeliveryLog,
    admin,
    by_partition,
    consume_range,
    consumer,
    create_topic,
    high_watermarks,
    producer,
)
from conftest import unique_name

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
BASE_TS_MS = 1_700_000_000_000


def make_records(n: int, partitions: int, seed: int = 7):
    """Deterministic records covering the awkward cases: null/empty/binary keys and
    values, duplicate header keys, binary/empty/null header values, no headers."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        kind = i % 6
        key = {
            0: f"key-{i}".encode(),
            1: None,
            2: b"",
            3: bytes(rng.randrange(256) for _ in range(16)),
            4: f"key-{i}".encode() * 3,
            5: b"\x00\xff" + f"{i}".encode(),
        }[kind]
        value = {
            0: f"value-{i}".encode(),
            1: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))),
            2: b"",
            3: None,
            4: (f"compressible-{i}-".encode() * 200),
            5: bytes(range(256)),
        }[kind]
        headers = {
            0: [("h", b"first"), ("h", b"second"), ("other", b"x"), ("h", b"third")],
            1: [("bin", bytes(range(256))), ("empty", b""), ("null", None)],
            2: None,
            3: [("only", b"\x00")],
            4: [("dup", b"1"), ("dup", b"1"), ("z", b"z"), ("a", b"a")],
            5: [("utf8-\u00e9", "caf\u00e9".encode())],
        }[kind]
        records.append(
            {
                "partition": i % partitions,
                "key": key,
                "value": value,
                "headers": headers,
                "timestamp": BASE_TS_MS + i * 37,
            }
        )
    return records


def expected_headers(headers):
    if not headers:
        return None
    return tuple((k, v) for k, v in headers)


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_exact_per_codec(bootstrap, codec):
    topic = unique_name(f"codec-{codec}")
    create_topic(bootstrap, topic, partitions=3)
    records = make_records(120, partitions=3)

    dr = DeliveryLog()
    p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 20, "batch.num.messages": 50})
    for r in records:
        p.produce(
            topic,
            key=r["key"],
            value=r["value"],
            partition=r["partition"],
            headers=r["headers"],
            timestamp=r["timestamp"],
            on_delivery=dr,
        )
    assert p.flush(30) == 0, "producer still has undelivered messages"
    assert dr.failed == [], f"delivery failures: {dr.failed[:5]}"
    assert len(dr.acked) == len(records)

    # Acknowledged offsets: contiguous from 0 in each partition, in produce order.
    acked_by_part = {}
    for value, part, offset in dr.acked:
        acked_by_part.setdefault(part, []).append(offset)
    for part, offsets in acked_by_part.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {part} acked offsets {offsets}"

    per_part = {p_: sum(1 for r in records if r["partition"] == p_) for p_ in range(3)}
    recs = consume_range(bootstrap, topic, per_part)
    got = by_partition(recs)
    assert {k: len(v) for k, v in got.items()} == per_part

    for part in range(3):
        want = [r for r in records if r["partition"] == part]
        have = got[part]
        assert [r.offset for r in have] == list(range(len(want))), f"offsets of partition {part}"
        for w, h in zip(want, have):
            assert h.key == w["key"], f"p{part}@{h.offset} key"
            assert h.value == w["value"], f"p{part}@{h.offset} value"
            assert h.headers == expected_headers(w["headers"]), f"p{part}@{h.offset} headers"
            assert (h.timestamp_type, h.timestamp) == (TIMESTAMP_CREATE_TIME, w["timestamp"]), (
                f"p{part}@{h.offset} timestamp"
            )

    wm = high_watermarks(bootstrap, topic, range(3))
    assert wm == {part: (0, per_part[part]) for part in range(3)}


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_batches_are_stored_compressed(broker, codec):
    """Stored batches are the producer's bytes: highly compressible values must take
    far less room in the partition's .log files than their raw size."""
    topic = unique_name(f"stored-{codec}")
    create_topic(broker.bootstrap, topic, partitions=1)
    p = producer(broker.bootstrap, **{"compression.type": codec, "linger.ms": 50})
    value = b"A" * 4096
    for i in range(200):
        p.produce(topic, key=str(i).encode(), value=value, partition=0)
    assert p.flush(30) == 0
    raw = 200 * len(value)
    logs = [f for f in Path(broker.data_dir).rglob("*.log") if topic in str(f.parent)]
    assert logs, f"no .log segment files for {topic} under {broker.data_dir} (expected <topic>-<partition>/*.log)"
    stored = sum(f.stat().st_size for f in logs)
    assert 0 < stored < raw // 10, f"{stored} bytes stored for {raw} raw bytes with {codec}"


def test_offsets_for_times_and_seek(bootstrap):
    topic = unique_name("times")
    create_topic(bootstrap, topic, partitions=1)
    p = producer(bootstrap)
    for i in range(10):
        p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=BASE_TS_MS + 1000 * i)
    assert p.flush(30) == 0

    c = consumer(bootstrap)
    try:
        queries = {
            BASE_TS_MS - 5000: 0,  # before everything: first offset
            BASE_TS_MS: 0,  # exact match
            BASE_TS_MS + 1500: 2,  # first record with timestamp >= query
            BASE_TS_MS + 9000: 9,  # last record
            BASE_TS_MS + 9001: OFFSET_END,  # after everything: no such offset (-1)
        }
        for ts, want in queries.items():
            res = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=ADMIN_TIMEOUT_S)
            assert res[0].error is None, f"offsets_for_times({ts}): {res[0].error}"
            assert res[0].offset == want, f"offsets_for_times({ts - BASE_TS_MS:+d} ms) -> {res[0].offset}"

        # Seek to the offset found for a timestamp and read from there.
        res = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS_MS + 6500)], timeout=ADMIN_TIMEOUT_S)
        c.assign(res)
        msgs = []
        for _ in range(40):
            msgs.extend(m for m in c.consume(num_messages=10, timeout=0.5))
            if len(msgs) >= 3:
                break
        assert all(m.error() is None for m in msgs), [m.error() for m in msgs if m.error()]
        assert [(m.offset(), m.value(), m.timestamp()[1]) for m in msgs] == [
            (7, b"v7", BASE_TS_MS + 7000),
            (8, b"v8", BASE_TS_MS + 8000),
            (9, b"v9", BASE_TS_MS + 9000),
        ]
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=ADMIN_TIMEOUT_S, cached=False)
        assert (lo, hi) == (0, 10)
    finally:
        c.close()


def test_list_topics_metadata(broker):
    topic = unique_name("meta")
    create_topic(broker.bootstrap, topic, partitions=3)
    md = admin(broker.bootstrap).list_topics(timeout=ADMIN_TIMEOUT_S)

    assert len(md.brokers) == 1, md.brokers
    (node,) = md.brokers.values()
    assert (node.host, node.port) == ("127.0.0.1", broker.port), "advertised address"
    assert md.cluster_id, "cluster id should be set"
    assert md.controller_id == node.id

    assert topic in md.topics, sorted(md.topics)
    tmd = md.topics[topic]
    assert tmd.error is None
    assert sorted(tmd.partitions) == [0, 1, 2]
    for pid, pmd in tmd.partitions.items():
        assert pmd.error is None
        assert pmd.leader == node.id
        assert list(pmd.replicas) == [node.id]
        assert list(pmd.isrs) == [node.id]


def test_describe_cluster(broker):
    client = admin(broker.bootstrap)
    desc = client.describe_cluster(request_timeout=ADMIN_TIMEOUT_S).result(
        timeout=ADMIN_TIMEOUT_S
    )
    assert desc.cluster_id
    assert len(desc.nodes) == 1
    node = desc.nodes[0]
    assert (node.host, node.port) == ("127.0.0.1", broker.port)
    assert desc.controller is not None and desc.controller.id == node.id


def topic_partitions(bootstrap, topic):
    """Partition ids of an existing topic, via DescribeTopics (never auto-creates)."""
    client = admin(bootstrap)
    futures = client.describe_topics(TopicCollection([topic]), request_timeout=ADMIN_TIMEOUT_S)
    desc = futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    return sorted(p.id for p in desc.partitions)


def test_produce_to_unknown_topic_auto_creates(bootstrap):
    topic = unique_name("auto")
    dr = DeliveryLog()
    p = producer(bootstrap)
    p.produce(topic, key=b"k", value=b"hello", on_delivery=dr)
    assert p.flush(30) == 0
    assert dr.failed == []
    assert dr.acked == [(b"hello", 0, 0)]

    assert topic_partitions(bootstrap, topic) == [0], "num.partitions defaults to 1"
    recs = consume_range(bootstrap, topic, {0: 1})
    assert [(r.offset, r.key, r.value) for r in recs] == [(0, b"k", b"hello")]


def test_auto_create_uses_num_partitions_setting(broker_factory):
    broker = broker_factory("--set", "num.partitions=3")
    topic = unique_name("auto3")
    dr = DeliveryLog()
    p = producer(broker.bootstrap)
    for i in range(6):
        p.produce(topic, value=f"{i}".encode(), partition=i % 3, on_delivery=dr)
    assert p.flush(30) == 0
    assert dr.failed == []
    assert topic_partitions(broker.bootstrap, topic) == [0, 1, 2]
    assert sorted((part, off) for _, part, off in dr.acked) == [
        (0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)
    ]


def describe_topic_config(bootstrap, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(bootstrap)
    futures = client.describe_configs([res], request_timeout=ADMIN_TIMEOUT_S)
    (fut,) = futures.values()
    return fut.result(timeout=ADMIN_TIMEOUT_S)


def test_describe_configs_topic_defaults(bootstrap):
    topic = unique_name("cfg")
    create_topic(bootstrap, topic, partitions=1)
    entries = describe_topic_config(bootstrap, topic)
    assert "cleanup.policy" in entries, sorted(entries)
    assert entries["cleanup.policy"].value == "delete"
    assert "segment.bytes" in entries, sorted(entries)
    assert int(entries["segment.bytes"].value) == 1073741824  # Kafka's default, 1 GiB
    assert "retention.ms" in entries, sorted(entries)
    assert int(entries["retention.ms"].value) == 604800000  # 7 days


def test_create_topic_with_config_is_described(bootstrap):
    topic = unique_name("cfg-override")
    create_topic(bootstrap, topic, partitions=1, config={"retention.ms": "3600000"})
    entries = describe_topic_config(bootstrap, topic)
    assert entries["retention.ms"].value == "3600000"
    source = entries["retention.ms"].source
    assert getattr(source, "value", source) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, source
    assert entries["cleanup.policy"].value == "delete"


def test_create_partitions(bootstrap):
    topic = unique_name("grow")
    create_topic(bootstrap, topic, partitions=2)
    client = admin(bootstrap)
    futures = client.create_partitions(
        [NewPartitions(topic, 5)], operation_timeout=ADMIN_TIMEOUT_S
    )
    futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    md = admin(bootstrap).list_topics(topic=topic, timeout=ADMIN_TIMEOUT_S)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2, 3, 4]

    dr = DeliveryLog()
    p = producer(bootstrap)
    p.produce(topic, value=b"new partition", partition=4, on_delivery=dr)
    assert p.flush(30) == 0
    assert dr.acked == [(b"new partition", 4, 0)], dr.failed
