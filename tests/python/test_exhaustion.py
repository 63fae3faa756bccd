"""Issue 15 item 9 and the resource-exhaustion rig: the broker under a small open-file limit
(soft 200, hard 400). It raises the soft limit to the hard one, sizes max.partitions from it,
refuses creations past its limits with errors (never saving a topic whose files could not
be made), keeps serving existing clients, and restarts cleanly afterwards."""

from __future__ import annotations

import re
import socket

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewPartitions, NewTopic

from conftest import unique_name
from helpers import admin, create_topic, producer
from test_limits import answers, connect

SOFT_FDS, HARD_FDS = 200, 400


def limited(broker_factory, *args):
    b = broker_factory(*args, start=False)
    plain = b.command
    b.command = lambda: ["sh", "-c", f'ulimit -Sn {SOFT_FDS} && ulimit -Hn {HARD_FDS} && exec "$@"',
                         "sh", *plain()]
    return b.start()


def create_error(bootstrap: str, topic: str, partitions: int, a=None) -> KafkaException | None:
    a = a or admin(bootstrap)
    fut = a.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)[topic]
    try:
        fut.result(timeout=60)
        return None
    except KafkaException as e:
        return e


def produce_ok(bootstrap: str, topic: str, n: int = 10) -> None:
    p = producer(bootstrap, **{"linger.ms": 0, "message.timeout.ms": 10000})
    for i in range(n):
        p.produce(topic, b"v%d" % i, partition=0)
    assert p.flush(15) == 0


def test_fd_limit_is_raised_and_sizes_max_partitions(broker_factory):
    b = limited(broker_factory)
    log = b.log_tail()
    assert re.search(rf"raised the open-file limit to its hard limit from={SOFT_FDS} to={HARD_FDS}", log), log
    max_partitions = HARD_FDS * 3 // 4 // 3
    assert f"max_partitions={max_partitions}" in log
    existing = unique_name("keep")
    create_topic(b.bootstrap, existing, 1)
    # One CreateTopics past the limit: refused with a message naming it; nothing saved.
    big = unique_name("big")
    e = create_error(b.bootstrap, big, max_partitions + 50)
    assert e is not None and e.args[0].name() == "INVALID_PARTITIONS"
    assert "max.partitions" in e.args[0].str()
    # Many small ones (as auto-create would): up to the limit, then refused.
    made, refused = 0, None
    one = admin(b.bootstrap)  # one client: each holds connections, and so files
    for i in range(max_partitions + 10):
        e = create_error(b.bootstrap, unique_name(f"small{i}"), 1, one)
        if e is None:
            made += 1
        else:
            refused = e
            break
    assert refused is not None and refused.args[0].name() == "INVALID_PARTITIONS"
    assert made == max_partitions - 1  # `existing` holds one
    a = admin(b.bootstrap)
    fut = a.create_partitions([NewPartitions(existing, 2)])[existing]
    with pytest.raises(KafkaException) as e:
        fut.result(timeout=30)
    assert e.value.args[0].name() == "INVALID_PARTITIONS"
    # Existing clients keep being served, and the broker restarts cleanly at the limit.
    produce_ok(b.bootstrap, existing)
    assert answers(connect(b.host, b.port))
    b.stop()
    b.start()
    produce_ok(b.bootstrap, existing)
    assert big not in admin(b.bootstrap).list_topics(timeout=10).topics


def test_a_creation_that_runs_out_of_files_is_not_saved(broker_factory):
    """With max.partitions set above what the fds allow, creation fails for real
    (EMFILE): it gets KAFKA_STORAGE_ERROR, the topic is not in the image, and every restart
    comes up (the old behaviour: saved first, then a crash loop on 'Too many open files')."""
    b = limited(broker_factory, "--set", "max.partitions=5000")
    existing = unique_name("keep")
    create_topic(b.bootstrap, existing, 1)
    doomed = unique_name("too-many")
    e = create_error(b.bootstrap, doomed, 600)
    assert e is not None and e.args[0].name() == "KAFKA_STORAGE_ERROR", e
    produce_ok(b.bootstrap, existing)
    for _ in range(2):
        b.stop()
        b.start()
        topics = admin(b.bootstrap).list_topics(timeout=10).topics
        assert doomed not in topics and existing in topics
        produce_ok(b.bootstrap, existing)
    # The failed creation's directories were cleaned away.
    assert not any(d.name.startswith(doomed) for d in b.data_dir.iterdir())


def test_connections_past_the_fd_limit_do_not_stop_the_broker(broker_factory):
    b = limited(broker_factory)
    held = []
    try:
        for _ in range(HARD_FDS + 50):
            try:
                held.append(connect(b.host, b.port))
            except OSError:
                break
        # The last ones wait unaccepted (or were closed): the broker is out of descriptors.
        assert not any(answers(s) for s in held[-3:])
        assert b.running
    finally:
        for s in held:
            s.close()
    # Once they are gone, it serves again.
    import time

    deadline = time.monotonic() + 15
    while not answers(connect(b.host, b.port)):
        assert time.monotonic() < deadline, "the broker did not recover from fd exhaustion"
        time.sleep(0.2)
    assert b.running


def test_max_topics_refuses_one_more_with_policy_violation(broker_factory):
    b = broker_factory("--set", "max.topics=3", "--set", "offsets.topic.num.partitions=1")
    one = admin(b.bootstrap)
    names = [unique_name(f"t{i}") for i in range(3)]
    for name in names:
        assert create_error(b.bootstrap, name, 1, one) is None
    e = create_error(b.bootstrap, unique_name("t3"), 1, one)
    assert e is not None and e.args[0].name() == "POLICY_VIOLATION"
    assert "max.topics" in e.args[0].str()
    # Internal topics are the broker's own: committing offsets (which creates
    # __consumer_offsets) still works at the limit.
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique_name("g")})
    c.commit(offsets=[TopicPartition(names[0], 0, 0)], asynchronous=False)
    assert c.committed([TopicPartition(names[0], 0)], timeout=10)[0].offset == 0
    c.close()


CGROUP_ROOT = "/sys/fs/cgroup/memory"
MEMORY_CAP_BYTES = 768 << 20


def memory_capped(broker_factory, name: str):
    """A broker in its own cgroup (v1 memory controller) capped at MEMORY_CAP_BYTES."""
    import os

    group = os.path.join(CGROUP_ROOT, name)
    try:
        os.mkdir(group)
        with open(os.path.join(group, "memory.limit_in_bytes"), "w") as f:
            f.write(str(MEMORY_CAP_BYTES))
    except OSError as e:
        pytest.skip(f"no writable cgroup v1 memory controller here: {e}")
    # Half-sent frames hold the request budget for at most this long.
    b = broker_factory("--set", "socket.request.timeout.ms=2000",
                       "--set", "group.initial.rebalance.delay.ms=0", start=False)
    plain = b.command
    b.command = lambda: ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *plain()]
    return b.start(), group


def test_attacks_under_a_memory_cap_are_refused_not_fatal(broker_factory):
    """The broker in a 768 MiB memory cgroup, with its default limits: 40 connections
    declaring 100 MiB requests and sending 2 MiB of each, 160 members with 900 KB
    subscriptions, a Fetch asking for INT_MAX bytes of a partition listed 25 times. It must
    refuse (budget, GROUP_MAX_SIZE_REACHED, the fetch cap), never be OOM-killed, keep serving
    and restart cleanly."""
    import os

    from kafka.protocol.fetch import FetchRequest
    from kafka.protocol.group import JoinGroupRequest
    from test_raw_protocol import call

    b, group = memory_capped(broker_factory, unique_name("klamm-mem"))
    try:
        topic = unique_name("mem")
        create_topic(b.bootstrap, topic, 1)
        p = producer(b.bootstrap, **{"linger.ms": 20})
        for _ in range(8192):
            p.produce(topic, b"m" * 1024, partition=0)
        assert p.flush(30) == 0
        held = []
        for _ in range(40):
            s = socket.create_connection((b.host, b.port), timeout=5)
            s.sendall((100 << 20).to_bytes(4, "big"))
            held.append(s)
        for s in held:
            try:
                s.settimeout(0.2)
                s.sendall(b"\1" * (2 << 20))
            except OSError:
                pass  # not read: the budget holds it back
        refused = 0
        for i in range(160):
            name = unique_name(f"fat{i}")
            resp = call(b.bootstrap, JoinGroupRequest[5](
                group=name, session_timeout=60000, rebalance_timeout=60000,
                member_id="", group_instance_id=None, protocol_type="consumer",
                group_protocols=[("range", b"\0" * 900_000)]))
            if resp.error_code == 79:  # MEMBER_ID_REQUIRED: the real join
                resp = call(b.bootstrap, JoinGroupRequest[5](
                    group=name, session_timeout=60000, rebalance_timeout=60000,
                    member_id=resp.member_id, group_instance_id=None, protocol_type="consumer",
                    group_protocols=[("range", b"\0" * 900_000)]))
            assert resp.error_code in (0, 81), resp.error_code
            refused += resp.error_code == 81
        int_max = 2**31 - 1
        call(b.bootstrap, FetchRequest[4](
            replica_id=-1, max_wait_time=0, min_bytes=1, max_bytes=int_max, isolation_level=0,
            topics=[(topic, [(0, 0, int_max)] * 25)]))
        assert refused > 0, "group.metadata.max.bytes (128 MiB) never refused 160 x 900 KB"
        assert b.running, "the broker died under the memory cap"
        produce_ok(b.bootstrap, topic)
        with open(os.path.join(group, "memory.max_usage_in_bytes")) as f:
            peak = int(f.read())
        print(f"memory cap {MEMORY_CAP_BYTES >> 20} MiB, peak {peak >> 20} MiB, joins refused {refused}")
        for s in held:
            s.close()
        b.stop()
        b.start()
        produce_ok(b.bootstrap, topic)
        b.stop()
    finally:
        b.cleanup()
        try:
            os.rmdir(group)
        except OSError:
            pass
