"""Internal topics are the broker's own, and other hostile-input regressions of issue 15.

Each test replays an attack that used to work against a real broker process:
- a plain Produce to `__consumer_offsets` forged another group's committed offset (item 4);
- DeleteRecords on `__consumer_offsets` erased every group's offsets (item 5);
- CreatePartitions 50 -> 60 on `__consumer_offsets` made committed offsets go backwards,
  and a cleanup.policy change would let retention delete live state (item 6);
- a Metadata or Produce naming a missing internal topic auto-created it with 1 partition
  and no compaction (item 7);
- `a.b` and `a_b` could both exist (item 8);
- a compressed batch whose records' offset deltas are not 0, 1, 2, ... was stored (item 14);
- a dynamic `max.connections=0` locked every client out for good (item 12).
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.produce import ProduceRequest
from kafka.record.util import calc_crc32c

from conftest import klamm_bin, unique_name
from helpers import admin, create_topic, high_watermarks, producer
from test_raw_protocol import call

OFFSETS = "__consumer_offsets"
TXN = "__transaction_state"
INVALID_TOPIC_EXCEPTION = 17
INVALID_RECORD = 87
INVALID_REQUEST = 42
INVALID_CONFIG = 40


def java_hash(s: str) -> int:
    h = 0
    for ch in s.encode("utf-8"):  # ASCII group names: bytes are chars
        h = (31 * h + ch) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group: str, partitions: int = 50) -> int:
    """Kafka's partitionFor(group): abs(hashCode) mod the partition count."""
    h = java_hash(group)
    return (h & 0x7FFFFFFF if h == -(1 << 31) else abs(h)) % partitions


def kstring(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def forged_commit(group: str, topic: str, partition: int, offset: int):
    """An OffsetCommit record as the group coordinator writes it (key v1, value v1)."""
    key = struct.pack(">h", 1) + kstring(group) + kstring(topic) + struct.pack(">i", partition)
    now = int(time.time() * 1000)
    value = struct.pack(">hq", 1, offset) + kstring("") + struct.pack(">qq", now, -1)
    return key, value


def committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=15)
        return tp.offset
    finally:
        c.close()


def commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def test_produce_to_internal_topics_is_refused_and_offsets_survive(broker_factory):
    b = broker_factory()
    topic = unique_name("victim")
    create_topic(b.bootstrap, topic, 1)
    p = producer(b.bootstrap)
    for i in range(10):
        p.produce(topic, value=b"v%d" % i, partition=0)
    p.flush(10)
    commit(b.bootstrap, "victim-group", topic, 5)
    assert committed(b.bootstrap, "victim-group", topic) == 5

    part = offsets_partition("victim-group")
    before = high_watermarks(b.bootstrap, OFFSETS, [part])[part]
    key, value = forged_commit("victim-group", topic, 0, 999)
    results = []
    attacker = producer(b.bootstrap, **{"retries": 0, "enable.idempotence": False})
    attacker.produce(OFFSETS, key=key, value=value, partition=part,
                     on_delivery=lambda err, msg: results.append(err))
    attacker.produce(TXN, key=b"k", value=b"v", partition=0,
                     on_delivery=lambda err, msg: results.append(err))
    attacker.flush(15)
    assert len(results) == 2
    for err in results:
        assert err is not None and err.code() == KafkaError.TOPIC_EXCEPTION, err
    assert high_watermarks(b.bootstrap, OFFSETS, [part])[part] == before, "forged record stored"

    b.stop()
    b.start()
    assert committed(b.bootstrap, "victim-group", topic) == 5


def test_delete_records_and_new_partitions_on_internal_topics_are_refused(broker_factory):
    b = broker_factory()
    topic = unique_name("offsets")
    create_topic(b.bootstrap, topic, 1)
    commit(b.bootstrap, "g1", topic, 90)
    a = admin(b.bootstrap)

    part = offsets_partition("g1")
    fut = a.delete_records([TopicPartition(OFFSETS, part, -1)])
    with pytest.raises(KafkaException) as refused:
        for f in fut.values():
            f.result(15)
    assert refused.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, refused.value

    fut = a.create_partitions([NewPartitions(OFFSETS, 60)])
    with pytest.raises(KafkaException) as refused:
        fut[OFFSETS].result(15)
    assert refused.value.args[0].code() == KafkaError.INVALID_REQUEST
    assert len(a.list_topics(OFFSETS, timeout=10).topics[OFFSETS].partitions) == 50

    # cleanup.policy is fixed; retention may change (as in Kafka).
    res = ConfigResource("topic", OFFSETS, set_config={"cleanup.policy": "delete"})
    with pytest.raises(KafkaException) as refused:
        a.alter_configs([res])[res].result(15)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    res = ConfigResource("topic", OFFSETS, set_config={"cleanup.policy": "compact",
                                                       "retention.ms": "86400000"})
    a.alter_configs([res])[res].result(15)

    commit(b.bootstrap, "g1", topic, 10)
    b.stop()
    b.start()
    assert committed(b.bootstrap, "g1", topic) == 10


def test_internal_topics_are_never_auto_created_as_plain_topics(broker_factory):
    b = broker_factory()
    # A Metadata request naming the missing internal topics, auto-create allowed.
    call(b.bootstrap, MetadataRequest[4](topics=[OFFSETS, TXN], allow_auto_topic_creation=True))
    # A Produce naming a missing internal topic is refused and creates nothing more.
    a = admin(b.bootstrap)
    md = a.list_topics(timeout=10).topics
    for name, key in ((OFFSETS, "offsets.topic.num.partitions"),
                      (TXN, "transaction.state.log.num.partitions")):
        assert name in md, f"{name} not created by the broker"
        assert len(md[name].partitions) == 50, f"{name}: {len(md[name].partitions)} partitions"
        res = ConfigResource("topic", name)
        configs = a.describe_configs([res])[res].result(15)
        assert configs["cleanup.policy"].value == "compact", name
    # Clients may not create them either.
    fut = a.create_topics([NewTopic(OFFSETS, 1, 1)])
    with pytest.raises(KafkaException):
        fut[OFFSETS].result(15)


def test_produce_naming_a_missing_internal_topic_is_refused(broker_factory):
    b = broker_factory()
    results = []
    p = producer(b.bootstrap, **{"retries": 0, "enable.idempotence": False,
                                 "message.timeout.ms": 10000})
    p.produce(TXN, key=b"k", value=b"v", partition=0,
              on_delivery=lambda err, msg: results.append(err))
    p.flush(15)
    assert results and results[0] is not None
    assert results[0].code() == KafkaError.TOPIC_EXCEPTION, results[0]
    # librdkafka's Metadata request (auto-create allowed) may have had the broker create
    # it, as Kafka does: then with its own settings, never as a 1-partition plain topic.
    a = admin(b.bootstrap)
    topics = a.list_topics(timeout=10).topics
    if TXN in topics:
        assert len(topics[TXN].partitions) == 50
        res = ConfigResource("topic", TXN)
        assert a.describe_configs([res])[res].result(15)["cleanup.policy"].value == "compact"


def test_colliding_topic_names_are_refused(broker_factory):
    b = broker_factory()
    base = unique_name("a").replace("-", "_")
    create_topic(b.bootstrap, base + ".b", 1)
    a = admin(b.bootstrap)
    fut = a.create_topics([NewTopic(base + "_b", 1, 1)])
    with pytest.raises(KafkaException) as refused:
        fut[base + "_b"].result(15)
    assert refused.value.args[0].code() == KafkaError.TOPIC_EXCEPTION
    assert "collides" in refused.value.args[0].str()
    # Auto-create refuses the same way.
    results = []
    p = producer(b.bootstrap, **{"retries": 0, "enable.idempotence": False,
                                 "message.timeout.ms": 10000})
    p.produce(base + "_b", value=b"v", on_delivery=lambda err, msg: results.append(err))
    p.flush(15)
    assert results and results[0] is not None, results
    assert base + "_b" not in a.list_topics(timeout=10).topics


def varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def record(offset_delta: int, value: bytes) -> bytes:
    body = (b"\x00" + varint(0) + varint(offset_delta) + varint(-1)
            + varint(len(value)) + value + varint(0))
    return varint(len(body)) + body


def batch(offset_deltas, codec: int) -> bytes:
    """A v2 record batch with the given inner offset deltas (gzip when codec == 1)."""
    records = b"".join(record(d, b"value-%d" % i) for i, d in enumerate(offset_deltas))
    if codec == 1:
        records = gzip.compress(records)
    now = int(time.time() * 1000)
    count = len(offset_deltas)
    after_crc = (struct.pack(">hiqqqhii", codec, count - 1, now, now, -1, -1, -1, count)
                 + records)
    crc = calc_crc32c(after_crc)
    after_length = struct.pack(">ibI", 0, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


@pytest.mark.parametrize("codec", [0, 1], ids=["uncompressed", "gzip"])
def test_inner_offset_deltas_must_count_from_zero(broker_factory, codec):
    b = broker_factory()
    topic = unique_name("deltas")
    create_topic(b.bootstrap, topic, 1)
    for deltas in ([0, -5], [1, 2], [0, 0, 1]):
        req = ProduceRequest[3](transactional_id=None, required_acks=-1, timeout=5000,
                                topics=[(topic, [(0, batch(deltas, codec))])])
        resp = call(b.bootstrap, req)
        ((_, ((_, code, *_),)),) = resp.topics
        assert code == INVALID_RECORD, f"deltas {deltas}: error code {code}"
    good = ProduceRequest[3](transactional_id=None, required_acks=-1, timeout=5000,
                             topics=[(topic, [(0, batch([0, 1, 2], codec))])])
    ((_, ((_, code, *_),)),) = call(b.bootstrap, good).topics
    assert code == 0
    assert high_watermarks(b.bootstrap, topic, [0])[0] == (0, 3)


def test_dynamic_config_that_locks_clients_out_is_refused_and_can_be_cleared(broker_factory):
    b = broker_factory()
    a = admin(b.bootstrap)
    res = ConfigResource("broker", "1", set_config={"max.connections": "0"})
    with pytest.raises(KafkaException) as refused:
        a.alter_configs([res])[res].result(15)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    # A value stored by an older version (or by hand) is cleared offline with the CLI.
    res = ConfigResource("broker", "1", set_config={"max.connections": "7"})
    a.alter_configs([res])[res].result(15)
    b.stop()
    listed = subprocess.run([str(klamm_bin()), "debug", "dynamic-config", "list", str(b.data_dir)],
                            capture_output=True, text=True, check=True)
    assert "max.connections" in listed.stdout and "7" in listed.stdout, listed.stdout
    meta = b.data_dir / "klamm-metadata.json"
    image = json.loads(meta.read_text())
    image["broker_configs"]["1"]["max.connections"] = "0"  # what an old version accepted
    meta.write_text(json.dumps(image))
    deleted = subprocess.run([str(klamm_bin()), "debug", "dynamic-config", "delete",
                              str(b.data_dir), "max.connections"], capture_output=True, text=True)
    assert deleted.returncode == 0, deleted.stderr
    assert "max.connections" not in json.loads(meta.read_text()).get("broker_configs", {}).get("1", {})
    again = subprocess.run([str(klamm_bin()), "debug", "dynamic-config", "delete",
                            str(b.data_dir), "max.connections"], capture_output=True, text=True)
    assert again.returncode == 1, "deleting a key that is not stored must say so"
    b.start()
    assert admin(b.bootstrap).list_topics(timeout=10) is not None
