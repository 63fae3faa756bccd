"""Edges that real clients hit: limits, errors, acks modes, long polls, concurrency.

All through confluent-kafka (librdkafka), the client most users run.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import (
    OFFSET_END,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import NewTopic

from conftest import unique_name
from helpers import (
    ADMIN_TIMEOUT_S,
    DeliveryLog,
    admin,
    consume_range,
    consumer,
    create_topic,
    producer,
)


def create_topic_error(bootstrap, new_topic: NewTopic) -> int:
    """Create a topic that must be refused; returns the Kafka error code."""
    client = admin(bootstrap)
    fut = client.create_topics([new_topic], operation_timeout=ADMIN_TIMEOUT_S)[new_topic.topic]
    with pytest.raises(KafkaException) as info:
        fut.result(timeout=ADMIN_TIMEOUT_S)
    return info.value.args[0].code()


def test_create_topic_errors_are_kafka_errors(bootstrap):
    topic = unique_name("dup")
    create_topic(bootstrap, topic, partitions=1)
    assert create_topic_error(bootstrap, NewTopic(topic, 1, 1)) == KafkaError.TOPIC_ALREADY_EXISTS
    assert (
        create_topic_error(bootstrap, NewTopic(unique_name("rf3"), 1, 3))
        == KafkaError.INVALID_REPLICATION_FACTOR
    )
    assert (
        create_topic_error(bootstrap, NewTopic("bad/name" + unique_name(""), 1, 1))
        == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17)
    )
    # The refused topics do not exist afterwards.
    client = admin(bootstrap)
    futures = client.describe_topics(TopicCollection([topic]), request_timeout=ADMIN_TIMEOUT_S)
    assert [p.id for p in futures[topic].result(timeout=ADMIN_TIMEOUT_S).partitions] == [0]


def test_delete_then_recreate_starts_empty_with_new_id(bootstrap):
    topic = unique_name("recreate")
    create_topic(bootstrap, topic, partitions=1)
    p = producer(bootstrap)
    for i in range(5):
        p.produce(topic, value=f"old-{i}".encode(), partition=0)
    assert p.flush(30) == 0

    client = admin(bootstrap)
    first_id = client.describe_topics(TopicCollection([topic]))[topic].result(ADMIN_TIMEOUT_S).topic_id
    client.delete_topics([topic], operation_timeout=ADMIN_TIMEOUT_S)[topic].result(ADMIN_TIMEOUT_S)

    deadline = time.monotonic() + 10
    while True:
        try:
            create_topic(bootstrap, topic, partitions=1)
            break
        except KafkaException as exc:
            # Kafka may briefly answer TOPIC_ALREADY_EXISTS while a deletion completes.
            assert exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, exc
            assert time.monotonic() < deadline, "topic still exists 10 s after deletion"
            time.sleep(0.2)
    second_id = client.describe_topics(TopicCollection([topic]))[topic].result(ADMIN_TIMEOUT_S).topic_id
    assert (second_id.get_most_significant_bits(), second_id.get_least_significant_bits()) != (
        first_id.get_most_significant_bits(),
        first_id.get_least_significant_bits(),
    ), "a recreated topic must get a new topic id"

    dr = DeliveryLog()
    p.produce(topic, value=b"new-0", partition=0, on_delivery=dr)
    assert p.flush(30) == 0
    assert dr.acked == [(b"new-0", 0, 0)], dr.failed
    recs = consume_range(bootstrap, topic, {0: 1})
    assert [(r.offset, r.value) for r in recs] == [(0, b"new-0")]


def test_auto_create_disabled(broker_factory):
    broker = broker_factory("--set", "auto.create.topics.enable=false")
    topic = unique_name("noauto")
    dr = DeliveryLog()
    p = producer(broker.bootstrap, **{"message.timeout.ms": 3000})
    p.produce(topic, value=b"nowhere", on_delivery=dr)
    p.flush(15)
    assert dr.acked == []
    assert len(dr.failed) == 1
    assert dr.failed[0][1].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT), dr.failed

    client = admin(broker.bootstrap)
    fut = client.describe_topics(TopicCollection([topic]), request_timeout=ADMIN_TIMEOUT_S)[topic]
    with pytest.raises(KafkaException) as info:
        fut.result(timeout=ADMIN_TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_record_above_max_message_bytes_is_refused(bootstrap):
    topic = unique_name("toolarge")
    create_topic(bootstrap, topic, partitions=1)
    dr = DeliveryLog()
    p = producer(bootstrap, **{"message.max.bytes": 4_000_000, "retries": 0})
    p.produce(topic, value=b"x" * 2_000_000, partition=0, on_delivery=dr)  # > 1048588 default
    p.flush(30)
    assert dr.acked == []
    assert [err.code() for _, err in dr.failed] == [KafkaError.MSG_SIZE_TOO_LARGE], dr.failed

    # The broker is still fine and the refused record left no trace.
    p.produce(topic, value=b"small", partition=0, on_delivery=dr)
    assert p.flush(30) == 0
    assert dr.acked == [(b"small", 0, 0)]


def test_fetch_returns_a_batch_larger_than_fetch_max_bytes(bootstrap):
    """KIP-74: at least one whole batch even above the fetch limits, or consumers stall."""
    topic = unique_name("bigrec")
    create_topic(bootstrap, topic, partitions=1)
    p = producer(bootstrap, **{"linger.ms": 0})
    values = [bytes([i]) * 700_000 for i in range(3)]
    for v in values:
        p.produce(topic, value=v, partition=0)
        p.flush(30)
    recs = consume_range(
        bootstrap, topic, {0: 3},
        **{"fetch.max.bytes": 10_000, "max.partition.fetch.bytes": 10_000, "message.max.bytes": 10_000},
    )
    assert [(r.offset, r.value) for r in recs] == list(enumerate(values))


@pytest.mark.parametrize("acks", ["0", "1"])
def test_weaker_acks_modes(bootstrap, acks):
    topic = unique_name(f"acks{acks}")
    create_topic(bootstrap, topic, partitions=1)
    dr = DeliveryLog()
    p = producer(bootstrap, acks=acks)
    for i in range(200):
        p.produce(topic, value=f"r{i}".encode(), partition=0, on_delivery=dr)
    assert p.flush(30) == 0
    assert dr.failed == []
    assert len(dr.acked) == 200
    if acks == "1":
        assert [off for _, _, off in dr.acked] == list(range(200))
    recs = consume_range(bootstrap, topic, {0: 200})
    assert [(r.offset, r.value) for r in recs] == [(i, f"r{i}".encode()) for i in range(200)]


def test_offset_out_of_range_resets_or_errors(bootstrap):
    topic = unique_name("oor")
    create_topic(bootstrap, topic, partitions=1)
    p = producer(bootstrap)
    for i in range(10):
        p.produce(topic, value=f"v{i}".encode(), partition=0)
    assert p.flush(30) == 0

    # auto.offset.reset=earliest: a fetch beyond the end restarts at offset 0.
    c = consumer(bootstrap, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 50)])
        msgs = []
        deadline = time.monotonic() + 20
        while not msgs and time.monotonic() < deadline:
            msgs = [m for m in c.consume(num_messages=1, timeout=0.5)]
        assert msgs and msgs[0].error() is None, msgs and msgs[0].error()
        assert (msgs[0].offset(), msgs[0].value()) == (0, b"v0")
    finally:
        c.close()

    # auto.offset.reset=error: the consumer is told (OFFSET_OUT_OF_RANGE from the broker).
    c = consumer(bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 50)])
        errors = []
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            errors = [m.error() for m in c.consume(num_messages=1, timeout=0.5) if m.error()]
        assert errors, "no error for a fetch at offset 50 of a 10-record partition"
        assert errors[0].code() == KafkaError._AUTO_OFFSET_RESET, errors[0]
    finally:
        c.close()


def test_long_poll_delivers_new_records_promptly(bootstrap):
    topic = unique_name("longpoll")
    create_topic(bootstrap, topic, partitions=1)
    c = consumer(bootstrap, **{"fetch.wait.max.ms": 5000})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        assert c.consume(num_messages=1, timeout=1.0) == []  # fetch now parked at the end
        p = producer(bootstrap)
        sent_at = time.monotonic()
        p.produce(topic, value=b"wake up", partition=0)
        assert p.flush(30) == 0
        got = []
        while not got and time.monotonic() - sent_at < 10:
            got = c.consume(num_messages=1, timeout=0.2)
        latency = time.monotonic() - sent_at
    finally:
        c.close()
    assert [(m.error(), m.value()) for m in got] == [(None, b"wake up")]
    # Well under fetch.wait.max.ms: the parked fetch is woken by the append.
    assert latency < 2.5, f"record took {latency:.2f}s to reach a long-polling consumer"


def test_concurrent_producers_get_unique_contiguous_offsets(bootstrap):
    topic = unique_name("concurrent")
    create_topic(bootstrap, topic, partitions=1)
    n_producers, per_producer = 4, 500
    logs = [DeliveryLog() for _ in range(n_producers)]

    def run(idx: int) -> None:
        p = producer(bootstrap, **{"linger.ms": 1})
        for i in range(per_producer):
            p.produce(topic, value=f"p{idx}-{i}".encode(), partition=0, on_delivery=logs[idx])
            if i % 50 == 0:
                p.poll(0)
        p.flush(30)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    acked = [a for log in logs for a in log.acked]
    assert [f for log in logs for f in log.failed] == []
    assert sorted(off for _, _, off in acked) == list(range(n_producers * per_producer))
    # Each producer's records keep their order.
    for idx, log in enumerate(logs):
        assert [v for v, _, _ in sorted(log.acked, key=lambda a: a[2])] == [
            f"p{idx}-{i}".encode() for i in range(per_producer)
        ]
    recs = consume_range(bootstrap, topic, {0: n_producers * per_producer})
    by_offset = {off: v for v, _, off in acked}
    assert [(r.offset, r.value) for r in recs] == sorted(by_offset.items())


def test_sigterm_with_connected_clients_exits_cleanly(broker):
    topic = unique_name("busy")
    create_topic(broker.bootstrap, topic, partitions=1)
    p = producer(broker.bootstrap)
    p.produce(topic, value=b"x", partition=0)
    assert p.flush(30) == 0
    c = consumer(broker.bootstrap, **{"fetch.wait.max.ms": 5000})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        c.consume(num_messages=1, timeout=1.0)  # a long-poll fetch is now in flight
        broker.stop()  # SIGTERM: must exit 0 within 5 s despite open connections
    finally:
        c.close()
