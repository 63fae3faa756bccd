"""Durability across restarts: clean (SIGTERM) and crash (SIGKILL)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from confluent_kafka import TopicCollection

from conftest import unique_name
from helpers import (
    ADMIN_TIMEOUT_S,
    DeliveryLog,
    admin,
    by_partition,
    consume_range,
    create_topic,
    high_watermarks,
    producer,
)

PARTITIONS = 3


def describe_topics(bootstrap, topics):
    """{topic: ((uuid msb, lsb), sorted partition ids)} via DescribeTopics (Metadata v10+)."""
    client = admin(bootstrap)
    futures = client.describe_topics(
        TopicCollection(list(topics)), request_timeout=ADMIN_TIMEOUT_S
    )
    out = {}
    for name, fut in futures.items():
        desc = fut.result(timeout=ADMIN_TIMEOUT_S)
        tid = desc.topic_id
        out[name] = (
            (tid.get_most_significant_bits(), tid.get_least_significant_bits()),
            sorted(p.id for p in desc.partitions),
        )
    return out


def read_everything(bootstrap, topic, partitions):
    wm = high_watermarks(bootstrap, topic, range(partitions))
    for part, (lo, _) in wm.items():
        assert lo == 0, f"log start offset of partition {part} is {lo}, expected 0"
    recs = consume_range(bootstrap, topic, {p: hi for p, (_, hi) in wm.items()}, timeout_s=60)
    return wm, recs


def test_crash_keeps_every_acknowledged_record(broker):
    topic = unique_name("crash")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)

    # Phase 1: 2000 records, all acknowledged with acks=all before the crash.
    dr = DeliveryLog()
    p = producer(broker.bootstrap, **{"linger.ms": 5})
    for i in range(2000):
        p.produce(topic, key=f"k{i}".encode(), value=f"a-{i}".encode(), partition=i % PARTITIONS, on_delivery=dr)
        if i % 200 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert dr.failed == [] and len(dr.acked) == 2000

    # Phase 2: a stream of production, SIGKILL in the middle of it.
    p2 = producer(
        broker.bootstrap,
        **{"linger.ms": 2, "message.timeout.ms": 8000, "reconnect.backoff.max.ms": 200},
    )
    dr2 = DeliveryLog()
    killed_at = None
    i = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for _ in range(25):
            p2.produce(topic, key=f"k{i}".encode(), value=f"b-{i}".encode(), partition=i % PARTITIONS, on_delivery=dr2)
            i += 1
        p2.poll(0.005)
        if killed_at is None and len(dr2.acked) >= 500:
            broker.kill()
            killed_at = time.monotonic()
        if killed_at is not None and time.monotonic() - killed_at > 0.5:
            break
    assert killed_at is not None, f"only {len(dr2.acked)} phase-2 acks within 60 s"
    # Whatever was not acknowledged by now will never be: drop it.
    p2.purge()
    p2.flush(10)
    acked_before_restart = list(dr2.acked)
    assert len(acked_before_restart) >= 500

    broker.start()

    wm, recs = read_everything(broker.bootstrap, topic, PARTITIONS)
    parts = by_partition(recs)
    for part in range(PARTITIONS):
        offsets = [r.offset for r in parts.get(part, [])]
        assert offsets == list(range(wm[part][1])), f"partition {part}: offsets not 0..{wm[part][1]} without gaps"

    print(
        f"crash test: phase-2 produced {i}, acked before kill {len(acked_before_restart)}, "
        f"not acked {len(dr2.failed)}; after restart high watermarks {wm}"
    )
    at = {(r.partition, r.offset): r.value for r in recs}
    copies = Counter(r.value for r in recs)
    lost, misplaced, duplicated = [], [], []
    for value, part, offset in dr.acked + acked_before_restart:
        if copies[value] == 0:
            lost.append((value, part, offset))
        elif at.get((part, offset)) != value:
            misplaced.append((value, part, offset, at.get((part, offset))))
        if copies[value] > 1:
            duplicated.append((value, copies[value]))
    assert lost == [], f"{len(lost)} acknowledged records lost, e.g. {lost[:5]}"
    assert misplaced == [], f"{len(misplaced)} acknowledged records at another offset, e.g. {misplaced[:5]}"
    assert duplicated == [], f"{len(duplicated)} acknowledged records duplicated, e.g. {duplicated[:5]}"

    # Offsets are never reused: new records go after everything that survived.
    dr3 = DeliveryLog()
    p3 = producer(broker.bootstrap)
    for part in range(PARTITIONS):
        p3.produce(topic, value=f"after-{part}".encode(), partition=part, on_delivery=dr3)
    assert p3.flush(30) == 0
    assert sorted((part, off) for _, part, off in dr3.acked) == [
        (part, wm[part][1]) for part in range(PARTITIONS)
    ], dr3.failed


def test_clean_restart_keeps_topics_offsets_and_ids(broker):
    t_many = unique_name("keep3")
    t_one = unique_name("keep1")
    create_topic(broker.bootstrap, t_many, partitions=3)
    create_topic(broker.bootstrap, t_one, partitions=1)

    p = producer(broker.bootstrap, **{"compression.type": "zstd"})
    for i in range(300):
        p.produce(t_many, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 3,
                  headers=[("n", str(i).encode())], timestamp=1_650_000_000_000 + i)
    for i in range(7):
        p.produce(t_one, value=f"one-{i}".encode(), partition=0)
    assert p.flush(30) == 0

    before_ids = describe_topics(broker.bootstrap, [t_many, t_one])
    assert before_ids[t_many][1] == [0, 1, 2] and before_ids[t_one][1] == [0]
    for name, (topic_id, _) in before_ids.items():
        assert topic_id != (0, 0), f"{name} has the zero topic id"
    assert before_ids[t_many][0] != before_ids[t_one][0]
    wm_many, recs_many = read_everything(broker.bootstrap, t_many, 3)
    wm_one, recs_one = read_everything(broker.bootstrap, t_one, 1)
    assert wm_many == {0: (0, 100), 1: (0, 100), 2: (0, 100)}
    assert wm_one == {0: (0, 7)}

    broker.restart()  # SIGTERM, must exit 0 within 5 s, then start on the same data dir

    # Same topics, same partitions, same topic ids.
    assert describe_topics(broker.bootstrap, [t_many, t_one]) == before_ids
    assert read_everything(broker.bootstrap, t_many, 3) == (wm_many, recs_many)
    assert read_everything(broker.bootstrap, t_one, 1) == (wm_one, recs_one)

    # Appends continue at the old log end offset.
    dr = DeliveryLog()
    p = producer(broker.bootstrap)
    p.produce(t_one, value=b"after-restart", partition=0, on_delivery=dr)
    assert p.flush(30) == 0
    assert dr.acked == [(b"after-restart", 0, 7)], dr.failed


def produce_single_record_batches(bootstrap, topic, count):
    """`count` records, each its own batch (flushed one by one, acks=all)."""
    dr = DeliveryLog()
    p = producer(bootstrap, **{"linger.ms": 0})
    for i in range(count):
        p.produce(topic, key=f"k{i}".encode(), value=f"record-{i}".encode() * 5, partition=0, on_delivery=dr)
        assert p.flush(30) == 0
    assert [off for _, _, off in dr.acked] == list(range(count)), dr.failed


def only_segment(broker, topic):
    segments = sorted((broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(segments) == 1, f"expected one segment in {broker.data_dir / f'{topic}-0'}: {segments}"
    return segments[0]


@pytest.mark.parametrize("damage", ["torn-last-batch", "garbage-after-last-batch"])
def test_damaged_tail_is_truncated_on_recovery(broker, damage):
    """A crash that tore the last write (or left junk after it): recovery truncates at the
    first bad batch, serves everything before it, and appends continue from there."""
    topic = unique_name("tail")
    create_topic(broker.bootstrap, topic, partitions=1)
    produce_single_record_batches(broker.bootstrap, topic, 20)
    broker.kill()

    segment = only_segment(broker, topic)
    size = segment.stat().st_size
    if damage == "torn-last-batch":
        with open(segment, "r+b") as f:
            f.truncate(size - 7)
        survivors = 19
    else:
        with open(segment, "ab") as f:
            f.write(bytes(range(97, 123)) * 4)  # not a batch header
        survivors = 20

    broker.start()
    wm, recs = read_everything(broker.bootstrap, topic, 1)
    assert wm == {0: (0, survivors)}
    assert [(r.offset, r.value) for r in recs] == [
        (i, f"record-{i}".encode() * 5) for i in range(survivors)
    ]
    dr = DeliveryLog()
    p = producer(broker.bootstrap)
    p.produce(topic, value=b"after-recovery", partition=0, on_delivery=dr)
    assert p.flush(30) == 0
    assert dr.acked == [(b"after-recovery", 0, survivors)], dr.failed
