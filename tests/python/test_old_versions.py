"""The oldest protocol versions Kafka 3.9 serves: magic 0/1 message sets in and out.

- ApiVersions v0 advertises min_version 0 for every API whose old versions Klamm serves.
- kafka-python pinned to api_version 0.8.2 / 0.9 / 0.10.0 / 0.10.1 produces magic 0 or 1
  message sets (uncompressed, gzip, snappy, lz4; Produce v0–v2) that Klamm up-converts to v2
  batches: a confluent-kafka consumer (v2 fetches) reads them byte-exact, then a group
  consumer at the same old api_version reads them back (Fetch v0–v3, down-converted) and
  commits (OffsetCommit v1/v2, OffsetFetch v1).
- The reverse: confluent-kafka v2 batches (headers, none/gzip/zstd) read by kafka-python at
  api_version 0.9 (magic 0) and 0.10.0 (magic 1), also with a tiny partition fetch size so
  every down-converted set is cut.
- Transactions: an old consumer (no isolation level = read_uncommitted) sees committed and
  aborted records and never a control record.
- Raw requests built with kafka-python's protocol structs: Produce v0/v1/v2 and
  Fetch v0/v2/v3 message by message (CRC, magic, attributes, offsets, timestamps); bad input
  (wrong CRC, nested compression, a v2 batch in Produce v2, zstd in magic 0/1); Fetch
  v0/v2/v3 with partition max_bytes=1; ListOffsets v0; OffsetCommit v0/v1 + OffsetFetch
  v0/v1; CreateTopics v0/v1 (validate_only); DeleteTopics v0; DescribeConfigs v0;
  OffsetForLeaderEpoch v0/v1; magic 0 lz4 with old Kafka's frame header checksum; magic 0
  appends (timestamp -1) sharing one segment.

kafka-python 2.3.3 compresses snappy and lz4 only through the python-snappy / lz4 / xxhash
modules, which the venv does not have (its codec module never uses cramjam). The
`kp_codecs` fixture plugs cramjam's raw snappy block codec and lz4 block codec (in the frame
python-lz4 writes, plus a pure-Python xxh32) in behind kafka-python's own framing code
(xerial snappy blocks, the magic-0 lz4 header quirk), so the bytes on the wire are what
kafka-python with those modules would send.
"""

from __future__ import annotations

import gzip
import socket
import struct
import time
import uuid
import zlib
from typing import Dict, List, Optional, Tuple

import cramjam
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.protocol.admin import CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest
from kafka.protocol.api_versions import ApiVersionsRequest
from kafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
from kafka.protocol.fetch import FetchRequest
from kafka.protocol.list_offsets import ListOffsetsRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.offset_for_leader_epoch import OffsetForLeaderEpochRequest
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.produce import ProduceRequest
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from conftest import unique_name
from helpers import consume_range, create_topic, high_watermarks, producer

GROUP_ARGS = (
    "--set", "group.initial.rebalance.delay.ms=0",
    "--set", "group.min.session.timeout.ms=1000",
)
SESSION_MS = 6000

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4

# Record timestamps an hour old: recent enough that neither segment.ms nor retention.ms
# (7 days) looks at them.
BASE_TS = (int(time.time()) - 3600) * 1000

# Kafka error codes used below.
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87


@pytest.fixture
def obroker(broker_factory):
    return broker_factory(*GROUP_ARGS)


# ---------------------------------------------------------------------------------------
# Raw socket plumbing (as in test_raw_protocol.py)
# ---------------------------------------------------------------------------------------


def recv_frame(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} bytes")
        data += chunk
    return data


def call(bootstrap: str, request):
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        proto = KafkaProtocol(client_id="klamm-old-versions-test")
        proto.send_request(request)
        sock.sendall(proto.send_bytes())
        ((_, response),) = proto.receive_bytes(recv_frame(sock))
        return response


# ---------------------------------------------------------------------------------------
# Legacy message sets: an encoder for what LegacyRecordBatchBuilder can't build (broken
# input), and a strict parser for what the broker sends back.
# ---------------------------------------------------------------------------------------


def encode_message(offset: int, magic: int, attributes: int, key: Optional[bytes],
                   value: Optional[bytes], timestamp: int = -1, crc_delta: int = 0) -> bytes:
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    for field in (key, value):
        body += struct.pack(">i", -1) if field is None else struct.pack(">i", len(field)) + field
    crc = (zlib.crc32(body) + crc_delta) & 0xFFFFFFFF
    msg = struct.pack(">I", crc) + body
    return struct.pack(">qi", offset, len(msg)) + msg


def build_set(magic: int, codec: int, records, base_ts: Optional[int] = None) -> bytes:
    """A message set from LegacyRecordBatchBuilder: `records` is [(key, value)], timestamps
    base_ts + i for magic 1."""
    base_ts = BASE_TS if base_ts is None else base_ts
    builder = LegacyRecordBatchBuilder(magic=magic, compression_type=codec, batch_size=1 << 20)
    for i, (key, value) in enumerate(records):
        assert builder.append(i, timestamp=base_ts + i, key=key, value=value) is not None
    return bytes(builder.build())


class Msg:
    def __init__(self, offset, magic, attributes, timestamp, key, value):
        self.offset, self.magic, self.attributes = offset, magic, attributes
        self.timestamp, self.key, self.value = timestamp, key, value

    def __repr__(self):
        return (f"Msg(offset={self.offset}, magic={self.magic}, attr={self.attributes}, "
                f"ts={self.timestamp}, key={self.key!r}, value={self.value!r:.40})")


def parse_set(data: bytes) -> Tuple[List[Msg], int]:
    """Every whole message in a legacy message set (CRC checked), and the count of trailing
    bytes that don't make a whole message."""
    out, pos = [], 0
    while len(data) - pos >= 12:
        offset, size = struct.unpack_from(">qi", data, pos)
        if len(data) - pos - 12 < size:
            break
        msg = data[pos + 12: pos + 12 + size]
        (crc,) = struct.unpack_from(">I", msg, 0)
        assert zlib.crc32(msg[4:]) & 0xFFFFFFFF == crc, f"bad CRC on message at offset {offset}"
        magic, attributes = struct.unpack_from(">bb", msg, 4)
        assert magic in (0, 1), f"message at {offset} has magic {magic}"
        p = 6
        ts = None
        if magic == 1:
            (ts,) = struct.unpack_from(">q", msg, p)
            p += 8
        fields = []
        for _ in range(2):
            (n,) = struct.unpack_from(">i", msg, p)
            p += 4
            if n < 0:
                fields.append(None)
            else:
                fields.append(bytes(msg[p: p + n]))
                p += n
        assert p == len(msg), f"message at {offset}: {len(msg) - p} bytes after the value"
        out.append(Msg(offset, magic, attributes, ts, fields[0], fields[1]))
        pos += 12 + size
    return out, len(data) - pos


def produce_raw(bootstrap: str, version: int, topic: str, partition: int, records: bytes):
    resp = call(bootstrap, ProduceRequest[version](
        required_acks=-1, timeout=10000, topics=[(topic, [(partition, records)])]))
    ((name, parts),) = resp.topics
    assert name == topic
    ((p, error, offset, *rest),) = parts
    assert p == partition
    return error, offset, rest


def fetch_raw(bootstrap: str, version: int, topic: str, partition: int, offset: int,
              max_bytes: int = 1 << 20, max_wait: int = 100) -> Tuple[int, int, bytes]:
    parts = [(topic, [(partition, offset, max_bytes)])]
    if version >= 3:
        req = FetchRequest[version](replica_id=-1, max_wait_time=max_wait, min_bytes=1,
                                    max_bytes=1 << 24, topics=parts)
    else:
        req = FetchRequest[version](replica_id=-1, max_wait_time=max_wait, min_bytes=1, topics=parts)
    resp = call(bootstrap, req)
    ((name, ps),) = resp.topics
    assert name == topic
    ((p, error, hw, records),) = ps
    assert p == partition
    return error, hw, records or b""


def fetch_all(bootstrap: str, version: int, topic: str, partition: int, start: int, end: int) -> List[Msg]:
    """Messages from `start` up to `end`, fetching on from the last one received (as a
    client does; Kafka answers a fetch from one segment only)."""
    out: List[Msg] = []
    offset = start
    for _ in range(end - start + 1):
        if offset >= end:
            break
        err, _, records = fetch_raw(bootstrap, version, topic, partition, offset)
        assert err == 0, f"Fetch v{version} at {offset}: error {err}"
        msgs, partial = parse_set(records)
        assert msgs and partial == 0, f"Fetch v{version} at {offset}: {msgs}, {partial} trailing bytes"
        out.extend(msgs)
        offset = msgs[-1].offset + 1
    return out


def hw_of(bootstrap: str, topic: str, partition: int = 0) -> int:
    return high_watermarks(bootstrap, topic, [partition])[partition][1]


def topics_listed(bootstrap: str) -> Dict[str, int]:
    """{topic: partition count} from Metadata v0 with an empty list (all topics, never creates)."""
    resp = call(bootstrap, MetadataRequest[0](topics=[]))
    return {t[1]: len(t[2]) for t in resp.topics if t[0] == 0}


# ---------------------------------------------------------------------------------------
# kafka-python codecs through cramjam (see the module docstring)
# ---------------------------------------------------------------------------------------


def _xxh32(data: bytes, seed: int = 0) -> int:
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    m = 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & m

    n, i = len(data), 0
    if n >= 16:
        v = [(seed + p1 + p2) & m, (seed + p2) & m, seed & m, (seed - p1) & m]
        while i <= n - 16:
            for lane in range(4):
                word = int.from_bytes(data[i + 4 * lane: i + 4 * lane + 4], "little")
                v[lane] = (rotl((v[lane] + word * p2) & m, 13) * p1) & m
            i += 16
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & m
    else:
        h = (seed + p5) & m
    h = (h + n) & m
    while i + 4 <= n:
        h = (h + int.from_bytes(data[i: i + 4], "little") * p3) & m
        h = (rotl(h, 17) * p4) & m
        i += 4
    while i < n:
        h = (h + data[i] * p5) & m
        h = (rotl(h, 11) * p1) & m
        i += 1
    h ^= h >> 15
    h = (h * p2) & m
    h ^= h >> 13
    h = (h * p3) & m
    h ^= h >> 16
    return h


class _SnappyViaCramjam:
    @staticmethod
    def compress(data):
        return bytes(cramjam.snappy.compress_raw(bytes(data)))

    @staticmethod
    def decompress(data):
        return bytes(cramjam.snappy.decompress_raw(bytes(data)))


class _XxhashModule:
    class xxh32:  # noqa: N801 (mimics the xxhash module)
        def __init__(self, data):
            self._h = _xxh32(bytes(data))

        def digest(self):
            return self._h.to_bytes(4, "big")


def _lz4_frame_encode(payload):
    """The frame python-lz4's `lz4.frame.compress(payload, block_linked=False)` writes, as
    kafka-python calls it: independent 64 KiB blocks, content size stored, no block or
    content checksums (FLG 0x68, BD 0x40), blocks compressed by cramjam."""
    payload = bytes(payload)
    descriptor = bytes([0x68, 0x40]) + struct.pack("<Q", len(payload))
    out = [b"\x04\x22\x4d\x18", descriptor, bytes([(_xxh32(descriptor) >> 8) & 0xFF])]
    for i in range(0, len(payload), 64 * 1024):
        chunk = payload[i: i + 64 * 1024]
        block = bytes(cramjam.lz4.compress_block(chunk, store_size=False))
        if len(block) >= len(chunk):
            out += [struct.pack("<I", len(chunk) | 0x80000000), chunk]
        else:
            out += [struct.pack("<I", len(block)), block]
    out.append(b"\x00\x00\x00\x00")
    return b"".join(out)


def _lz4_frame_decode(payload):
    return bytes(cramjam.lz4.decompress(bytes(payload)))


@pytest.fixture
def kp_codecs(monkeypatch):
    import kafka.codec as codec
    import kafka.record.legacy_records as legacy

    # xxh32 checked against a known digest and the header checksum of a real lz4 frame
    # (cramjam's own encoder); our frames decode with cramjam's decoder.
    assert _xxh32(b"") == 0x02CC5D05
    enc = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    enc.compress(b"y" * 100)
    real = bytes(enc.finish())
    assert real[6] == (_xxh32(real[4:6]) >> 8) & 0xFF
    data = bytes(range(256)) * 700 + b"z" * 70000
    assert _lz4_frame_decode(_lz4_frame_encode(data)) == data
    if not codec.has_snappy():
        monkeypatch.setattr(codec, "snappy", _SnappyViaCramjam)
    if not codec.has_lz4():
        monkeypatch.setattr(codec, "lz4", object())
        monkeypatch.setattr(codec, "lz4_encode", _lz4_frame_encode)
        monkeypatch.setattr(codec, "lz4_decode", _lz4_frame_decode)
        monkeypatch.setattr(legacy, "lz4_encode", _lz4_frame_encode)
        monkeypatch.setattr(legacy, "lz4_decode", _lz4_frame_decode)
    if codec.xxhash is None:
        monkeypatch.setattr(codec, "xxhash", _XxhashModule)
    # The magic-0 lz4 framing must carry the header checksum old Kafka computed (over the
    # magic number too), not the correct one.
    frame = codec.lz4_encode_old_kafka(b"x" * 100)
    assert frame[6] == (_xxh32(frame[0:6]) >> 8) & 0xFF
    assert codec.snappy_decode(codec.snappy_encode(b"abc" * 50)) == b"abc" * 50


# ---------------------------------------------------------------------------------------
# 1. ApiVersions v0
# ---------------------------------------------------------------------------------------


def test_api_versions_v0_advertises_min_version_0(bootstrap):
    resp = call(bootstrap, ApiVersionsRequest[0]())
    assert resp.error_code == 0
    ranges = {k: (lo, hi) for k, lo, hi in resp.api_versions}
    # Produce, Fetch, ListOffsets, OffsetCommit, OffsetFetch, CreateTopics, DeleteTopics,
    # OffsetForLeaderEpoch, DescribeConfigs: Kafka 3.9's oldest versions are all 0.
    for key in (0, 1, 2, 8, 9, 19, 20, 23, 32):
        assert key in ranges, f"api {key} not advertised"
        assert ranges[key][0] == 0, f"api {key} advertises {ranges[key]}"
    # And at least the versions the tests below use.
    for key, need in {0: 2, 1: 3, 8: 2, 9: 1, 19: 1, 23: 1}.items():
        assert ranges[key][1] >= need, f"api {key} advertises {ranges[key]}"


# ---------------------------------------------------------------------------------------
# 2. kafka-python at old api_versions produces; v2 and old consumers read
# ---------------------------------------------------------------------------------------

OLD_APIS = [(0, 8, 2), (0, 9), (0, 10, 0), (0, 10, 1)]
KP_CODECS = [None, "gzip", "snappy", "lz4"]


def old_payloads() -> List[Tuple[int, Optional[bytes], Optional[bytes]]]:
    """(partition, key, value): a null key, an empty value, a null value, binary bytes."""
    fixed = [
        (0, None, b"null-key"),
        (0, b"empty-value", b""),
        (1, b"null-value", None),
        (1, b"\x00\xff\x01 binary", bytes(range(256))),
        (0, b"", b"empty-key"),
        (1, b"big", b"0123456789abcdef" * 300),
    ]
    rest = [(i % 2, f"key-{i}".encode(), (f"value-{i}-" * (i % 7 + 1)).encode()) for i in range(60)]
    return fixed + rest


def magic_for(api) -> int:
    return 1 if api >= (0, 10, 0) else 0


@pytest.mark.parametrize("codec", KP_CODECS, ids=lambda c: c or "none")
@pytest.mark.parametrize("api", OLD_APIS, ids=lambda a: ".".join(map(str, a)))
def test_kafka_python_old_producer_read_by_v2_and_old_group_consumer(obroker, kp_codecs, api, codec):
    bootstrap = obroker.bootstrap
    topic, group = unique_name("kp-old"), unique_name("g-old")
    create_topic(bootstrap, topic, partitions=2)
    sent = old_payloads()
    magic = magic_for(api)

    prod = KafkaProducer(bootstrap_servers=bootstrap, api_version=api, compression_type=codec,
                         acks="all", linger_ms=20, request_timeout_ms=20000, retries=0)
    try:
        futures = [prod.send(topic, key=k, value=v, partition=p, timestamp_ms=BASE_TS + i)
                   for i, (p, k, v) in enumerate(sent)]
        prod.flush(timeout=30)
        acked = [f.get(timeout=30) for f in futures]
    finally:
        prod.close(timeout=10)

    expected: Dict[int, List[Tuple[int, Optional[bytes], Optional[bytes], int]]] = {0: [], 1: []}
    for i, ((p, k, v), md) in enumerate(zip(sent, acked)):
        assert md.partition == p
        expected[p].append((len(expected[p]), k, v, BASE_TS + i))
    for p in (0, 1):
        assert [md.offset for md in acked if md.partition == p] == list(range(len(expected[p]))), \
            f"partition {p}: acknowledged offsets"

    # (a) librdkafka fetches v2 batches (Fetch v4+): the up-converted records.
    recs = consume_range(bootstrap, topic, {p: len(expected[p]) for p in (0, 1)})
    for p in (0, 1):
        got = [r for r in recs if r.partition == p]
        assert [(r.offset, r.key, r.value) for r in got] == [(o, k, v) for o, k, v, _ in expected[p]], \
            f"partition {p}: records read by confluent-kafka"
        assert all(r.headers is None for r in got), [r.headers for r in got if r.headers]
        if magic == 0:
            # A magic 0 message has no timestamp. Kafka up-converts it into a CreateTime v2
            # batch with timestamp -1 (LogValidator keeps record.timestamp() = NO_TIMESTAMP),
            # which librdkafka reports as create time -1 (it reports NOT_AVAILABLE only for
            # messages without a fetched timestamp at all).
            bad = [(r.offset, r.timestamp_type, r.timestamp) for r in got
                   if (r.timestamp_type, r.timestamp) != (TIMESTAMP_CREATE_TIME, -1)]
            assert not bad, f"partition {p}: magic 0 records with a timestamp: {bad[:5]}"
        else:
            assert [(r.timestamp_type, r.timestamp) for r in got] == \
                [(TIMESTAMP_CREATE_TIME, ts) for *_, ts in expected[p]], f"partition {p}: timestamps"

    # (b) the same old client as a group consumer: down-converted fetches, then commit.
    extra = {"max_poll_interval_ms": SESSION_MS} if api < (0, 10, 1) else {}
    cons = KafkaConsumer(topic, bootstrap_servers=bootstrap, api_version=api, group_id=group,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         session_timeout_ms=SESSION_MS, heartbeat_interval_ms=1000,
                         request_timeout_ms=20000, fetch_max_wait_ms=100, **extra)
    got: Dict[int, list] = {0: [], 1: []}
    try:
        total = sum(len(v) for v in expected.values())
        deadline = time.monotonic() + 30
        while sum(len(v) for v in got.values()) < total:
            assert time.monotonic() < deadline, {p: len(v) for p, v in got.items()}
            for tp, msgs in cons.poll(timeout_ms=200).items():
                got[tp.partition].extend(msgs)
        for tp, msgs in cons.poll(timeout_ms=300).items():
            got[tp.partition].extend(msgs)
        cons.commit()
        committed = {p: cons.committed(KTP(topic, p)) for p in (0, 1)}
    finally:
        cons.close(autocommit=False)

    for p in (0, 1):
        assert [(m.offset, m.key, m.value) for m in got[p]] == [(o, k, v) for o, k, v, _ in expected[p]], \
            f"partition {p}: records read by kafka-python {api}"
        assert all(not m.headers for m in got[p])
        if api >= (0, 10, 0):  # Fetch v2/v3: magic 1 messages with the create time
            assert [(m.timestamp_type, m.timestamp) for m in got[p]] == \
                [(0, ts) for *_, ts in expected[p]], f"partition {p}: timestamps"
        else:  # Fetch v0/v1: magic 0 messages, no timestamp
            assert {(m.timestamp_type, m.timestamp) for m in got[p]} == {(None, None)}, \
                {(m.timestamp_type, m.timestamp) for m in got[p]}
    assert committed == {p: len(expected[p]) for p in (0, 1)}

    # The commit is the group's offset for a modern client too (OffsetFetch v8+).
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=20)
    finally:
        c.close()
    assert {tp.partition: tp.offset for tp in tps} == committed


# ---------------------------------------------------------------------------------------
# 3. confluent-kafka v2 batches read by old kafka-python consumers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_v2_batches_read_by_old_kafka_python_consumers(bootstrap, codec):
    topic = unique_name("v2-old")
    create_topic(bootstrap, topic, partitions=2)
    sent = []  # (partition, key, value, headers, ts)
    for i in range(200):
        p = i % 2
        key = None if i % 17 == 0 else f"k-{i}".encode()
        value = b"" if i % 23 == 0 else (None if i % 29 == 0 else (f"v{i}-".encode() * (i % 40 + 1)))
        headers = [("h", f"{i}".encode()), ("h", None), ("dup", b"x")] if i % 3 else []
        sent.append((p, key, value, headers, BASE_TS + 1000 + i))

    prod = producer(bootstrap, **{"compression.type": codec, "linger.ms": 20})
    failed = []
    for p, key, value, headers, ts in sent:
        prod.produce(topic, key=key, value=value, partition=p, headers=headers or None, timestamp=ts,
                     on_delivery=lambda err, msg: err and failed.append(err))
    assert prod.flush(30) == 0 and not failed, failed

    expected = {0: [], 1: []}
    for p, key, value, _, ts in sent:
        expected[p].append((len(expected[p]), key, value, ts))

    for api, fetch_bytes in (((0, 9), 1 << 20), ((0, 10, 0), 1 << 20), ((0, 10, 0), 700)):
        cons = KafkaConsumer(bootstrap_servers=bootstrap, api_version=api, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             request_timeout_ms=20000, fetch_max_wait_ms=100,
                             max_partition_fetch_bytes=fetch_bytes)
        got = {0: [], 1: []}
        try:
            tps = [KTP(topic, 0), KTP(topic, 1)]
            cons.assign(tps)
            cons.seek_to_beginning(*tps)
            deadline = time.monotonic() + 30
            while sum(len(v) for v in got.values()) < len(sent):
                assert time.monotonic() < deadline, (api, fetch_bytes, {p: len(v) for p, v in got.items()})
                for tp, msgs in cons.poll(timeout_ms=200).items():
                    got[tp.partition].extend(msgs)
            for tp, msgs in cons.poll(timeout_ms=300).items():
                got[tp.partition].extend(msgs)
        finally:
            cons.close()
        for p in (0, 1):
            what = f"kafka-python {api}, max_partition_fetch_bytes={fetch_bytes}, partition {p}"
            assert [(m.offset, m.key, m.value) for m in got[p]] == [(o, k, v) for o, k, v, _ in expected[p]], what
            assert all(not m.headers for m in got[p]), what  # headers dropped on down-conversion
            if api >= (0, 10, 0):
                assert [(m.timestamp_type, m.timestamp) for m in got[p]] == \
                    [(0, ts) for *_, ts in expected[p]], what
            else:
                assert {(m.timestamp_type, m.timestamp) for m in got[p]} == {(None, None)}, what


# ---------------------------------------------------------------------------------------
# 4. Transactions seen by an old consumer (read_uncommitted, no control records)
# ---------------------------------------------------------------------------------------


def test_old_consumer_sees_committed_and_aborted_records_but_no_markers(bootstrap):
    from confluent_kafka import Producer

    topic = unique_name("txn-old")
    create_topic(bootstrap, topic, partitions=1)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"old-{uuid.uuid4().hex[:6]}",
                  "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, key=f"c{i}".encode(), value=f"committed-{i}".encode(), partition=0)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(2):
        p.produce(topic, key=f"a{i}".encode(), value=f"aborted-{i}".encode(), partition=0)
    # Written before the abort (librdkafka purges what it hasn't sent when aborting).
    assert p.flush(30) == 0
    p.abort_transaction(30)
    # A third transaction after the abort: the old reader must get past the abort marker.
    p.begin_transaction()
    p.produce(topic, key=b"c3", value=b"committed-3", partition=0)
    p.commit_transaction(30)

    # Offsets: data 0-2, commit marker 3, aborted data 4-5, abort marker 6, data 7, marker 8.
    assert hw_of(bootstrap, topic) == 9
    want = [(0, b"c0", b"committed-0"), (1, b"c1", b"committed-1"), (2, b"c2", b"committed-2"),
            (4, b"a0", b"aborted-0"), (5, b"a1", b"aborted-1"), (7, b"c3", b"committed-3")]

    cons = KafkaConsumer(bootstrap_servers=bootstrap, api_version=(0, 10, 0), group_id=None,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         request_timeout_ms=20000, fetch_max_wait_ms=100)
    got = []
    try:
        tp = KTP(topic, 0)
        cons.assign([tp])
        cons.seek_to_beginning(tp)
        deadline = time.monotonic() + 20
        while len(got) < len(want) and time.monotonic() < deadline:
            for msgs in cons.poll(timeout_ms=200).values():
                got.extend(msgs)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            for msgs in cons.poll(timeout_ms=200).values():
                got.extend(msgs)
    finally:
        cons.close()
    assert [(m.offset, m.key, m.value) for m in got] == want

    # Raw: a fetch at a marker's offset starts at the next data record; at the last marker
    # it is empty (but answers the high watermark).
    for version in (0, 2, 3):
        err, hw, records = fetch_raw(bootstrap, version, topic, 0, 3)
        msgs, partial = parse_set(records)
        assert (err, hw) == (0, 9)
        assert [(m.offset, m.key) for m in msgs] == [(4, b"a0"), (5, b"a1"), (7, b"c3")], (version, msgs)
        assert partial == 0
        err, hw, records = fetch_raw(bootstrap, version, topic, 0, 8)
        assert (err, hw, parse_set(records)[0]) == (0, 9, []), (version, records)


# ---------------------------------------------------------------------------------------
# 5. Raw requests
# ---------------------------------------------------------------------------------------


def test_raw_produce_v0_v1_v2_then_fetch_v0_v2_v3(bootstrap):
    topic = unique_name("raw-old")
    create_topic(bootstrap, topic, partitions=1)

    # (produce version, magic, codec, records)
    plan = [
        (0, 0, NONE, [(b"a", b"one"), (None, b"null-key"), (b"e", b"")]),
        (0, 0, GZIP, [(b"g0", b"gz-0"), (b"g1", None), (b"g2", b"gz-2" * 50)]),
        (1, 0, NONE, [(b"v1", b"produce-v1")]),
        (2, 1, NONE, [(b"m1-0", b"magic-1"), (None, b"magic-1-null-key")]),
        (2, 1, GZIP, [(b"m1g-%d" % i, b"gz-magic-1-%d" % i) for i in range(4)]),
    ]
    expected = []  # (offset, key, value, magic-1 timestamp or -1)
    next_offset = 0
    for version, magic, codec, records in plan:
        ts0 = BASE_TS + next_offset * 10
        err, base, rest = produce_raw(bootstrap, version, topic, 0, build_set(magic, codec, records, ts0))
        assert (err, base) == (0, next_offset), (version, magic, codec)
        if version == 2:
            assert rest == [-1], "Produce v2 answers log_append_time -1 under CreateTime"
        for i, (k, v) in enumerate(records):
            expected.append((next_offset + i, k, v, ts0 + i if magic == 1 else -1))
        next_offset += len(records)
    assert hw_of(bootstrap, topic) == next_offset

    for version, magic in ((0, 0), (1, 0), (2, 1), (3, 1)):
        err, hw, _ = fetch_raw(bootstrap, version, topic, 0, 0)
        assert (err, hw) == (0, next_offset), version
        msgs = fetch_all(bootstrap, version, topic, 0, 0, next_offset)
        assert [(m.offset, m.key, m.value) for m in msgs] == [(o, k, v) for o, k, v, _ in expected], version
        assert {m.magic for m in msgs} == {magic}, f"Fetch v{version}: magics {[m.magic for m in msgs]}"
        assert {m.attributes for m in msgs} == {0}, f"Fetch v{version}: down-converted sets are uncompressed"
        if magic == 1:
            assert [m.timestamp for m in msgs] == [ts for *_, ts in expected], version
        # From an offset inside a compressed wrapper: earlier records are skipped.
        err, hw, records = fetch_raw(bootstrap, version, topic, 0, 4)
        msgs, _ = parse_set(records)
        assert [m.offset for m in msgs][:2] == [4, 5], version
        # Past the end: nothing, no error.
        err, hw, records = fetch_raw(bootstrap, version, topic, 0, next_offset)
        assert (err, hw, parse_set(records)[0]) == (0, next_offset, []), version


def test_raw_bad_message_sets_are_refused_and_nothing_appended(bootstrap):
    topic = unique_name("raw-bad")
    create_topic(bootstrap, topic, partitions=1)
    good = build_set(1, NONE, [(b"k", b"good")])
    assert produce_raw(bootstrap, 2, topic, 0, good)[:2] == (0, 0)

    # Wrong CRC on the second message: CORRUPT_MESSAGE, and not even the first is kept.
    for version, magic in ((0, 0), (2, 1)):
        bad = encode_message(0, magic, 0, b"k", b"fine", 1) + encode_message(1, magic, 0, b"k", b"broken", 2, crc_delta=1)
        err, _, _ = produce_raw(bootstrap, version, topic, 0, bad)
        assert err == CORRUPT_MESSAGE, f"Produce v{version} magic {magic} with a bad CRC: error {err}"
    # ... also on a compressed wrapper.
    wrapped = build_set(1, GZIP, [(b"k", b"gz")])
    wrapped = wrapped[:12] + bytes([wrapped[12] ^ 0xFF]) + wrapped[13:]
    assert produce_raw(bootstrap, 2, topic, 0, wrapped)[0] == CORRUPT_MESSAGE

    # A compressed message inside a compressed message: INVALID_RECORD.
    for magic in (0, 1):
        inner = build_set(magic, GZIP, [(b"in", b"nested-%d" % i) for i in range(3)])
        outer = encode_message(0, magic, GZIP, None, gzip.compress(inner), 0)
        err, _, _ = produce_raw(bootstrap, 2 if magic else 0, topic, 0, outer)
        assert err == INVALID_RECORD, f"nested compression (magic {magic}): error {err}"

    # A v2 record batch in Produce v2: INVALID_RECORD.
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    b.append(0, timestamp=BASE_TS, key=b"k", value=b"v2-batch", headers=[])
    err, _, _ = produce_raw(bootstrap, 2, topic, 0, bytes(b.build()))
    assert err == INVALID_RECORD, f"v2 batch in Produce v2: error {err}"

    # zstd (attribute 4) in a magic 0/1 wrapper: UNSUPPORTED_COMPRESSION_TYPE (Kafka's
    # ProduceRequest.validateRecords: zstd needs Produce v7).
    for version, magic in ((0, 0), (2, 1)):
        zstd_value = bytes(cramjam.zstd.compress(encode_message(0, magic, 0, b"k", b"z", BASE_TS)))
        err, _, _ = produce_raw(bootstrap, version, topic, 0, encode_message(0, magic, ZSTD, None, zstd_value, BASE_TS))
        assert err == UNSUPPORTED_COMPRESSION_TYPE, f"zstd in magic {magic}: error {err}"

    assert hw_of(bootstrap, topic) == 1, "a refused message set was (partly) appended"
    err, hw, records = fetch_raw(bootstrap, 0, topic, 0, 0)
    assert [(m.offset, m.value) for m in parse_set(records)[0]] == [(0, b"good")]


def test_raw_fetch_v2_max_bytes_1_returns_one_whole_message(bootstrap):
    topic = unique_name("raw-1b")
    create_topic(bootstrap, topic, partitions=1)
    # One compressed v2 batch of 10 records (confluent-kafka), then magic 1 singles.
    prod = producer(bootstrap, **{"compression.type": "gzip", "linger.ms": 50})
    for i in range(10):
        prod.produce(topic, key=b"k%d" % i, value=b"value-%d-" % i * 20, partition=0)
    assert prod.flush(20) == 0
    assert produce_raw(bootstrap, 2, topic, 0, build_set(1, NONE, [(b"s", b"single-%d" % i) for i in range(3)]))[:2] == (0, 10)

    # v0–v2 have no "at least one message" rule in Kafka (hard max_bytes: Kafka answers an
    # empty set there); Klamm sends exactly one whole message so old consumers progress.
    # v3 (KIP-74) may exceed the limit by one batch in Kafka: at least one whole message.
    for version in (0, 2, 3):
        for offset in (0, 5, 10, 12):
            err, hw, records = fetch_raw(bootstrap, version, topic, 0, offset, max_bytes=1)
            msgs, partial = parse_set(records)
            assert (err, hw) == (0, 13)
            what = f"Fetch v{version} at {offset} with max_bytes=1: {msgs}, {partial} trailing bytes"
            assert msgs and partial == 0, what
            assert msgs[0].offset == offset, what
            assert [m.offset for m in msgs] == list(range(offset, offset + len(msgs))), what
            if version < 3:
                assert len(msgs) == 1, what
    # A limit between one and two messages still gives exactly one whole message.
    _, _, records = fetch_raw(bootstrap, 2, topic, 0, 0, max_bytes=1)
    one = len(records)
    _, _, records = fetch_raw(bootstrap, 2, topic, 0, 0, max_bytes=one + 10)
    msgs, partial = parse_set(records)
    assert [m.offset for m in msgs] == [0] and partial == 0
    _, _, records = fetch_raw(bootstrap, 2, topic, 0, 0, max_bytes=3 * one + 5)
    msgs, partial = parse_set(records)
    assert len(records) <= 3 * one + 5 and partial == 0
    assert [m.offset for m in msgs] == [0, 1, 2], msgs


def test_raw_list_offsets_v0(bootstrap):
    topic = unique_name("raw-lo")
    create_topic(bootstrap, topic, partitions=2)
    assert produce_raw(bootstrap, 0, topic, 0, build_set(0, NONE, [(None, b"x%d" % i) for i in range(5)]))[:2] == (0, 0)
    resp = call(bootstrap, ListOffsetsRequest[0](replica_id=-1, topics=[
        (topic, [(0, -1, 1), (1, -1, 1)])]))
    ((name, parts),) = resp.topics
    assert name == topic
    assert sorted((p, e, list(o)) for p, e, o in parts) == [(0, 0, [5]), (1, 0, [0])]
    resp = call(bootstrap, ListOffsetsRequest[0](replica_id=-1, topics=[(topic, [(0, -2, 1)])]))
    assert [(p, e, list(o)) for p, e, o in resp.topics[0][1]] == [(0, 0, [0])]
    resp = call(bootstrap, ListOffsetsRequest[0](replica_id=-1, topics=[(topic, [(7, -1, 1)])]))
    assert [(p, e) for p, e, _ in resp.topics[0][1]] == [(7, UNKNOWN_TOPIC_OR_PARTITION)]


def test_raw_offset_commit_v0_v1_and_offset_fetch_v0_v1(bootstrap):
    topic = unique_name("raw-oc")
    create_topic(bootstrap, topic, partitions=3)
    group = unique_name("g-raw")

    r = call(bootstrap, OffsetCommitRequest[0](consumer_group=group, topics=[(topic, [(0, 5, "meta-v0")])]))
    assert [(t, [tuple(p) for p in ps]) for t, ps in r.topics] == [(topic, [(0, 0)])]
    r = call(bootstrap, OffsetCommitRequest[1](
        consumer_group=group, consumer_group_generation_id=-1, consumer_id="",
        topics=[(topic, [(1, 7, -1, "meta-v1"), (2, 0, -1, "")])]))
    assert [(t, sorted(tuple(p) for p in ps)) for t, ps in r.topics] == [(topic, [(1, 0), (2, 0)])]

    want = [(0, 5, "meta-v0", 0), (1, 7, "meta-v1", 0), (2, 0, "", 0)]
    for version in (0, 1):
        r = call(bootstrap, OffsetFetchRequest[version](consumer_group=group, topics=[(topic, [0, 1, 2])]))
        ((name, parts),) = r.topics
        assert name == topic
        assert sorted(tuple(p) for p in parts) == want, f"OffsetFetch v{version}"
    # Nothing committed: offset -1, empty metadata, no error (Kafka's answer).
    r = call(bootstrap, OffsetFetchRequest[0](consumer_group=unique_name("g-none"), topics=[(topic, [0])]))
    assert [tuple(p) for p in r.topics[0][1]] == [(0, -1, "", 0)]

    # Overwrite with v1, read with v0.
    call(bootstrap, OffsetCommitRequest[1](consumer_group=group, consumer_group_generation_id=-1,
                                           consumer_id="", topics=[(topic, [(0, 11, -1, "again")])]))
    r = call(bootstrap, OffsetFetchRequest[0](consumer_group=group, topics=[(topic, [0])]))
    assert [tuple(p) for p in r.topics[0][1]] == [(0, 11, "again", 0)]


def test_raw_create_topics_v0_v1_and_delete_topics_v0(bootstrap):
    t0, t1, tv = unique_name("ct-v0"), unique_name("ct-v1"), unique_name("ct-validate")
    r = call(bootstrap, CreateTopicsRequest[0](
        create_topic_requests=[(t0, 3, 1, [], [("retention.ms", "123456")])], timeout=10000))
    assert [tuple(e) for e in r.topic_errors] == [(t0, 0)]
    r = call(bootstrap, CreateTopicsRequest[0](create_topic_requests=[(t0, 3, 1, [], [])], timeout=10000))
    assert [tuple(e) for e in r.topic_errors] == [(t0, TOPIC_ALREADY_EXISTS)]

    r = call(bootstrap, CreateTopicsRequest[1](
        create_topic_requests=[(tv, 2, 1, [], [])], timeout=10000, validate_only=True))
    assert [tuple(e[:2]) for e in r.topic_errors] == [(tv, 0)], r.topic_errors
    r = call(bootstrap, CreateTopicsRequest[1](
        create_topic_requests=[(t1, 2, 1, [], []), (unique_name("ct-bad"), 0, 1, [], [])],
        timeout=10000, validate_only=False))
    errs = {e[0]: (e[1], e[2]) for e in r.topic_errors}
    # Success: error 0 and no message (Kafka's generated default is "", its controller sets
    # null; clients treat both alike).
    assert errs[t1][0] == 0 and not errs[t1][1], errs[t1]
    ((bad_err, bad_msg),) = [v for k, v in errs.items() if k != t1]
    assert bad_err == INVALID_PARTITIONS and bad_msg, (bad_err, bad_msg)

    listed = topics_listed(bootstrap)
    assert listed.get(t0) == 3 and listed.get(t1) == 2
    assert tv not in listed, "validate_only created the topic"

    r = call(bootstrap, DeleteTopicsRequest[0](topics=[t0, unique_name("ct-missing")], timeout=10000))
    errs = dict(tuple(e) for e in r.topic_error_codes)
    assert errs.pop(t0) == 0
    assert list(errs.values()) == [UNKNOWN_TOPIC_OR_PARTITION]
    deadline = time.monotonic() + 10
    while t0 in topics_listed(bootstrap):
        assert time.monotonic() < deadline, "deleted topic still listed after 10 s"
        time.sleep(0.1)
    assert t1 in topics_listed(bootstrap)


def test_raw_describe_configs_v0(bootstrap):
    topic = unique_name("dc-v0")
    create_topic(bootstrap, topic, partitions=1, config={"retention.ms": "123456", "cleanup.policy": "compact"})
    r = call(bootstrap, DescribeConfigsRequest[0](resources=[(2, topic, None)]))
    ((err, msg, rtype, name, entries),) = r.resources
    assert (err, rtype, name) == (0, 2, topic), msg
    configs = {e[0]: tuple(e[1:]) for e in entries}  # name -> (value, read_only, is_default, is_sensitive)
    assert configs["retention.ms"] == ("123456", False, False, False)
    assert configs["cleanup.policy"] == ("compact", False, False, False)
    assert configs["compression.type"] == ("producer", False, True, False)
    assert configs["max.message.bytes"] == ("1048588", False, True, False)
    assert configs["min.insync.replicas"] == ("1", False, True, False)
    assert len(configs) >= 20, sorted(configs)
    assert all(not v[3] for v in configs.values())

    r = call(bootstrap, DescribeConfigsRequest[0](resources=[(2, topic, ["retention.ms", "segment.bytes"])]))
    ((err, _, _, _, entries),) = r.resources
    assert err == 0
    assert sorted((e[0], e[3]) for e in entries) == [("retention.ms", False), ("segment.bytes", True)]

    r = call(bootstrap, DescribeConfigsRequest[0](resources=[(2, unique_name("dc-missing"), None)]))
    assert r.resources[0][0] == UNKNOWN_TOPIC_OR_PARTITION


def test_raw_offset_for_leader_epoch_v0_v1(bootstrap):
    topic = unique_name("ofle")
    create_topic(bootstrap, topic, partitions=2)
    assert produce_raw(bootstrap, 2, topic, 0, build_set(1, NONE, [(None, b"e%d" % i) for i in range(4)]))[:2] == (0, 0)
    meta = call(bootstrap, MetadataRequest[7](topics=[topic], allow_auto_topic_creation=False))
    ((err, name, _, parts),) = meta.topics
    assert (err, name) == (0, topic)
    epochs = {p[1]: p[3] for p in parts}  # partition -> leader_epoch

    r = call(bootstrap, OffsetForLeaderEpochRequest[0](topics=[(topic, [(0, epochs[0]), (1, epochs[1])])]))
    ((name, ps),) = r.topics
    assert name == topic
    assert sorted((p, e, o) for e, p, o in ps) == [(0, 0, 4), (1, 0, 0)]
    r = call(bootstrap, OffsetForLeaderEpochRequest[1](topics=[(topic, [(0, epochs[0])])]))
    assert [tuple(p) for p in r.topics[0][1]] == [(0, 0, epochs[0], 4)]
    r = call(bootstrap, OffsetForLeaderEpochRequest[0](topics=[(topic, [(9, 0)])]))
    assert r.topics[0][1][0][0] == UNKNOWN_TOPIC_OR_PARTITION


def test_magic_0_appends_share_one_segment(broker):
    """Magic 0 messages have no timestamp, so their up-converted batches carry -1. Kafka
    measures `segment.ms` from the first batch's max timestamp only when it is >= 0, and
    from the segment's creation otherwise (LogSegment.timeWaitedForRoll): a few Produce v0
    requests land in one segment, and one Fetch (which reads a single segment) returns
    them all."""
    bootstrap = broker.bootstrap
    topic = unique_name("seg-v0")
    create_topic(bootstrap, topic, partitions=1)
    for i in range(5):
        assert produce_raw(bootstrap, 0, topic, 0, build_set(0, NONE, [(b"k", b"m%d" % i)]))[:2] == (0, i)
    segments = sorted(p.name for p in (broker.data_dir / f"{topic}-0").glob("*.log"))
    err, hw, records = fetch_raw(bootstrap, 0, topic, 0, 0)
    msgs, _ = parse_set(records)
    assert (err, hw) == (0, 5)
    assert [m.offset for m in msgs] == [0, 1, 2, 3, 4] and len(segments) == 1, \
        f"one Fetch v0 returned offsets {[m.offset for m in msgs]}; segments on disk: {segments}"


def test_raw_magic_0_lz4_with_old_kafka_header_checksum(bootstrap, kp_codecs):
    """Kafka before 0.10 computed the lz4 frame's header checksum over the magic number too;
    clients still write that for magic 0 (kafka-python's lz4_encode_old_kafka, librdkafka's
    and sarama's magic 0 lz4) and Kafka 3.9 skips the check for magic 0 wrappers
    (KafkaLZ4BlockInputStream with ignoreFlagDescriptorChecksum = magic == 0)."""
    import kafka.codec as codec

    topic = unique_name("lz4-v0")
    create_topic(bootstrap, topic, partitions=1)
    inner = build_set(0, NONE, [(b"k%d" % i, b"lz4-magic-0-%d" % i) for i in range(3)])
    correct = codec.lz4_encode(inner)
    old_kafka = codec.lz4_encode_old_kafka(inner)
    assert correct[6] != old_kafka[6] or correct[4] != old_kafka[4]
    err, base, _ = produce_raw(bootstrap, 0, topic, 0, encode_message(0, 0, LZ4, None, correct))
    assert (err, base) == (0, 0), "magic 0 lz4 with a correct frame header checksum"
    err, base, _ = produce_raw(bootstrap, 0, topic, 0, encode_message(0, 0, LZ4, None, old_kafka))
    assert (err, base) == (0, 3), f"magic 0 lz4 with old Kafka's header checksum: error {err}"
    msgs = fetch_all(bootstrap, 0, topic, 0, 0, 6)
    assert [(m.offset, m.value) for m in msgs] == [(i, b"lz4-magic-0-%d" % (i % 3)) for i in range(6)]


def test_raw_describe_log_dirs_v0(bootstrap):
    """DescribeLogDirs v0 (Kafka 1.0's layout, served through the v1 decoder): the one log
    dir, with a written partition's size and the rest left out when not asked for."""
    from kafka.protocol.admin import DescribeLogDirsResponse_v0
    from kafka.protocol.api import Request
    from kafka.protocol.types import Array, Int32, Schema, String

    class DescribeLogDirsV0(Request):
        # kafka-python 2.3.3's own v0 class encodes `partitions` as one INT32, not an
        # array: this is Kafka's layout.
        API_KEY = 35
        API_VERSION = 0
        RESPONSE_TYPE = DescribeLogDirsResponse_v0
        SCHEMA = Schema(("topics", Array(("topic", String("utf-8")), ("partitions", Array(Int32)))))

    topic = unique_name("ld-v0")
    create_topic(bootstrap, topic, partitions=2)
    p = producer(bootstrap)
    for _ in range(10):
        p.produce(topic, value=b"v" * 100, partition=0)
    assert p.flush(15) == 0
    r = call(bootstrap, DescribeLogDirsV0(topics=[(topic, [0, 1])]))
    assert len(r.log_dirs) == 1, r.log_dirs
    error, log_dir, topics = r.log_dirs[0]
    assert error == 0 and log_dir.startswith("/"), (error, log_dir)
    assert [t[0] for t in topics] == [topic], topics
    sizes = {part: (size, lag, future) for part, size, lag, future in topics[0][1]}
    assert sizes[0][0] > 1000 and sizes[1][0] == 0, sizes
    assert all(lag == 0 and not future for _, lag, future in sizes.values()), sizes
    # A null list is every partition; a missing topic is left out.
    r = call(bootstrap, DescribeLogDirsV0(topics=None))
    assert topic in [t[0] for t in r.log_dirs[0][2]]
    r = call(bootstrap, DescribeLogDirsV0(topics=[(unique_name("ld-missing"), [0])]))
    assert r.log_dirs[0][2] == [], r.log_dirs
