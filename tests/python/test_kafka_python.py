"""kafka-python against a live Klamm broker."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from conftest import unique_name


def new_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)


def test_kafka_python_admin_create_describe_delete(bootstrap):
    topic = unique_name("kp-admin")
    admin = new_admin(bootstrap)
    try:
        resp = admin.create_topics([NewTopic(name=topic, num_partitions=4, replication_factor=1)])
        errors = [tuple(e[:2]) for e in resp.topic_errors]
        assert errors == [(topic, 0)], resp

        assert topic in admin.list_topics()
        (desc,) = admin.describe_topics([topic])
        assert desc["topic"] == topic
        assert desc["error_code"] == 0
        parts = sorted(desc["partitions"], key=lambda p: p["partition"])
        assert [p["partition"] for p in parts] == [0, 1, 2, 3]
        assert all(p["error_code"] == 0 for p in parts), parts
        leaders = {p["leader"] for p in parts}
        assert len(leaders) == 1 and leaders != {-1}, parts

        cluster = admin.describe_cluster()
        assert len(cluster["brokers"]) == 1, cluster
        assert cluster["brokers"][0]["node_id"] in leaders

        # Creating it again is an error (TOPIC_ALREADY_EXISTS = 36), answered not obeyed.
        try:
            admin.create_topics([NewTopic(name=topic, num_partitions=4, replication_factor=1)])
        except Exception as exc:  # kafka-python raises TopicAlreadyExistsError
            assert "TopicAlreadyExists" in type(exc).__name__ or "36" in str(exc), repr(exc)
        else:
            raise AssertionError("creating an existing topic succeeded")

        resp = admin.delete_topics([topic])
        assert [tuple(e[:2]) for e in resp.topic_error_codes] == [(topic, 0)], resp
        deadline = time.monotonic() + 10
        while topic in admin.list_topics():
            assert time.monotonic() < deadline, "deleted topic still listed after 10 s"
            time.sleep(0.2)
    finally:
        admin.close()


def test_kafka_python_produce_consume_round_trip(bootstrap):
    topic = unique_name("kp-rt")
    admin = new_admin(bootstrap)
    try:
        admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=20000)
    acked = []
    try:
        futures = [
            producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode() * (i % 5),
                          partition=i % 2, headers=[("n", str(i).encode())])
            for i in range(400)
        ]
        producer.flush(timeout=30)
        for f in futures:
            md = f.get(timeout=30)
            acked.append((md.partition, md.offset))
    finally:
        producer.close(timeout=10)
    for part in range(2):
        assert [o for p, o in acked if p == part] == list(range(200)), f"acked offsets of partition {part}"

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=20000,
    )
    got = {0: [], 1: []}
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 30
        while sum(len(v) for v in got.values()) < 400:
            assert time.monotonic() < deadline, {p: len(v) for p, v in got.items()}
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                got[tp.partition].extend(msgs)
        for tp, msgs in consumer.poll(timeout_ms=300).items():
            got[tp.partition].extend(msgs)
        ends = consumer.end_offsets(tps)
    finally:
        consumer.close()

    assert ends == {TopicPartition(topic, 0): 200, TopicPartition(topic, 1): 200}
    for part in range(2):
        want = [i for i in range(400) if i % 2 == part]
        assert [m.offset for m in got[part]] == list(range(200))
        assert [(m.key, m.value, list(m.headers)) for m in got[part]] == [
            (f"k{i}".encode(), f"v{i}".encode() * (i % 5), [("n", str(i).encode())]) for i in want
        ]
