"""Retention (part of issue 5): old segments vanish by time and by size, the log start
moves, recent data stays, and consumers below the log start follow auto.offset.reset."""

import time

from confluent_kafka import Consumer, TopicPartition

from conftest import SMALL_SEGMENTS, unique_name
from helpers import create_topic, producer


def watermarks(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("wm")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def produce(bootstrap, topic, values):
    p = producer(bootstrap)
    for v in values:
        p.produce(topic, value=v)
    assert p.flush(10) == 0


def read_all(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("ret"), "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(100, 1.0)
            got += [(m.offset(), m.value()) for m in msgs if not m.error()]
            if not msgs and got:
                break
    finally:
        c.close()
    return got


def test_retention_ms_deletes_expired_segments(broker_factory):
    b = broker_factory("--set", "log.retention.check.interval.ms=100", "--set", "group.initial.rebalance.delay.ms=0")
    topic = unique_name("ret-ms")
    create_topic(b.bootstrap, topic, 1, {"segment.ms": "200", "retention.ms": "1500"})
    produce(b.bootstrap, topic, [f"old{i}".encode() for i in range(10)])
    assert watermarks(b.bootstrap, topic) == (0, 10)
    time.sleep(2.0)  # the old records' 1.5 s retention has passed
    produce(b.bootstrap, topic, [f"new{i}".encode() for i in range(10)])
    deadline = time.monotonic() + 10
    while watermarks(b.bootstrap, topic)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    low, high = watermarks(b.bootstrap, topic)
    assert (low, high) == (10, 20)
    part = b.data_dir / f"{topic}-0"
    assert not (part / "00000000000000000000.log").exists()
    got = read_all(b.bootstrap, topic)
    assert [v for _, v in got] == [f"new{i}".encode() for i in range(10)]
    assert got[0][0] == 10


def log_bytes(partition_dir):
    total = 0
    for f in partition_dir.glob("*.log"):
        try:
            total += f.stat().st_size
        except FileNotFoundError:  # deleted by retention between glob and stat
            pass
    return total


def test_retention_bytes_bounds_the_log(broker_factory):
    b = broker_factory("--set", "log.retention.check.interval.ms=100", *SMALL_SEGMENTS)
    topic = unique_name("ret-bytes")
    create_topic(b.bootstrap, topic, 1, {"internal.segment.bytes": "2000", "retention.bytes": "6000"})
    p = producer(b.bootstrap, **{"linger.ms": 0})
    for i in range(200):
        p.produce(topic, value=b"x" * 100 + str(i).encode())
        p.flush(5)  # one batch per record, so segments roll every few records
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        size = log_bytes(b.data_dir / f"{topic}-0")
        if size <= 6000:  # retention stops deleting once the log is within retention.bytes
            break
        time.sleep(0.1)
    assert size <= 6000, f"log is {size} bytes"
    low, high = watermarks(b.bootstrap, topic)
    assert high == 200 and low > 0
    got = read_all(b.bootstrap, topic)
    assert got and got[-1] == (199, b"x" * 100 + b"199")
    assert got[0][0] == low


def test_delete_records_moves_the_log_start_for_every_reader_and_persists(broker_factory):
    from confluent_kafka.admin import AdminClient

    b = broker_factory("--set", "group.initial.rebalance.delay.ms=0")
    topic = unique_name("delrec")
    create_topic(b.bootstrap, topic, 1)
    produce(b.bootstrap, topic, [f"r{i}".encode() for i in range(20)])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    result = a.delete_records([TopicPartition(topic, 0, 12)])
    deleted = list(result.values())[0].result(timeout=10)
    assert deleted.low_watermark == 12
    assert watermarks(b.bootstrap, topic) == (12, 20)
    got = read_all(b.bootstrap, topic)
    assert [o for o, _ in got] == list(range(12, 20))
    # Past the high watermark is refused.
    bad = a.delete_records([TopicPartition(topic, 0, 99)])
    err = list(bad.values())[0].exception(timeout=10)
    assert err is not None and "OFFSET_OUT_OF_RANGE" in str(err)
    b.kill()
    b.start()
    assert watermarks(b.bootstrap, topic) == (12, 20)
