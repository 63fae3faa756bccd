"""confluent-kafka helpers shared by the tests (no test logic here)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ADMIN_TIMEOUT_S = 30.0

# confluent-kafka refuses to build a Consumer without group.id, but with assign() and
# explicit offsets librdkafka never needs the group coordinator (not implemented yet).
UNUSED_GROUP = "klamm-tests-manual-assignment"


@dataclass(frozen=True)
class Rec:
    """One record as a client saw it, comparable byte for byte."""

    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: Optional[Tuple[Tuple[str, Optional[bytes]], ...]]
    timestamp_type: int
    timestamp: int


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(
    bootstrap: str, name: str, partitions: int, config: Optional[Dict[str, str]] = None
) -> None:
    client = admin(bootstrap)  # must outlive the futures, or they fail with _DESTROY
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=ADMIN_TIMEOUT_S,
    )
    futures[name].result(timeout=ADMIN_TIMEOUT_S)


def producer(bootstrap: str, **overrides) -> Producer:
    conf = {"bootstrap.servers": bootstrap, "acks": "all"}
    conf.update(overrides)
    return Producer(conf)


def consumer(bootstrap: str, **overrides) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": UNUSED_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
    }
    conf.update(overrides)
    return Consumer(conf)


class DeliveryLog:
    """Collects delivery reports: what the broker acknowledged and what failed."""

    def __init__(self) -> None:
        self.acked: List[Tuple[Optional[bytes], int, int]] = []  # (value, partition, offset)
        self.failed: List[Tuple[Optional[bytes], KafkaError]] = []

    def __call__(self, err, msg) -> None:
        if err is None:
            self.acked.append((msg.value(), msg.partition(), msg.offset()))
        else:
            self.failed.append((msg.value(), err))


def to_rec(msg) -> Rec:
    headers = msg.headers()
    ts_type, ts = msg.timestamp()
    return Rec(
        partition=msg.partition(),
        offset=msg.offset(),
        key=msg.key(),
        value=msg.value(),
        headers=None if headers is None else tuple((k, v) for k, v in headers),
        timestamp_type=ts_type,
        timestamp=ts,
    )


def high_watermarks(bootstrap: str, topic: str, partitions: Iterable[int]) -> Dict[int, Tuple[int, int]]:
    c = consumer(bootstrap)
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=ADMIN_TIMEOUT_S, cached=False)
            for p in partitions
        }
    finally:
        c.close()


def consume_range(
    bootstrap: str,
    topic: str,
    expected: Dict[int, int],
    start: Optional[Dict[int, int]] = None,
    timeout_s: float = 30.0,
    **consumer_overrides,
) -> List[Rec]:
    """Read `expected[p]` records from each partition p, starting at `start[p]`
    (default: the beginning), by manual assignment. Returns them in arrival order.

    Fails (AssertionError) on a consumer error or when the records don't all arrive
    in time; reads a little past the expected count to catch surplus records.
    """
    start = start or {}
    c = consumer(bootstrap, **consumer_overrides)
    got: Dict[int, List[Rec]] = {p: [] for p in expected}
    try:
        c.assign(
            [TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in expected if expected[p] > 0]
        )
        deadline = time.monotonic() + timeout_s
        while any(len(got[p]) < expected[p] for p in expected):
            if time.monotonic() > deadline:
                counts = {p: len(v) for p, v in got.items()}
                raise AssertionError(f"timed out consuming {topic}: got {counts}, expected {expected}")
            for msg in c.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    raise AssertionError(f"consumer error on {topic}: {msg.error()}")
                got.setdefault(msg.partition(), []).append(to_rec(msg))
        # Anything beyond the expected count would be a surplus record.
        for msg in c.consume(num_messages=1000, timeout=0.3):
            if msg.error():
                raise AssertionError(f"consumer error on {topic}: {msg.error()}")
            got.setdefault(msg.partition(), []).append(to_rec(msg))
    finally:
        c.close()
    out: List[Rec] = []
    for p in sorted(got):
        out.extend(got[p])
    return out


def by_partition(recs: Sequence[Rec]) -> Dict[int, List[Rec]]:
    out: Dict[int, List[Rec]] = {}
    for r in recs:
        out.setdefault(r.partition, []).append(r)
    return out
