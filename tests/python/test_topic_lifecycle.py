"""Issue 15 items 1-3: a deleted topic's data is never served again. A partition's files
belong to a topic id; a directory of another id (or of no live topic) is a stray, moved
aside and removed, never opened; a handle to a deleted partition can write nowhere; and a
deletion survives a crash at any step (the saved metadata image is its intent, start-up
finishes it)."""

from __future__ import annotations

import random
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from kafka.protocol.admin import DeleteTopicsRequest
from kafka.protocol.list_offsets import ListOffsetsRequest
from kafka.protocol.parser import KafkaProtocol

from conftest import SMALL_SEGMENTS, unique_name
from helpers import admin, create_topic, producer
from test_raw_protocol import call


def latest_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Every partition's log end offset in one ListOffsets request (-1 = latest)."""
    req = ListOffsetsRequest[1](replica_id=-1, topics=[(topic, [(p, -1) for p in range(partitions)])])
    resp = call(bootstrap, req)
    out = {}
    for _, parts in resp.topics:
        for p, err, _ts, offset in parts:
            assert err == 0, (topic, p, err)
            out[p] = offset
    return out


def produce(bootstrap: str, topic: str, count: int, partitions: int = 1, value: bytes = b"old") -> None:
    p = producer(bootstrap, **{"linger.ms": 5})
    for i in range(count):
        p.produce(topic, value + b"-%d" % i, partition=i % partitions)
    assert p.flush(30) == 0


def delete_topic(bootstrap: str, topic: str) -> None:
    a = admin(bootstrap)
    a.delete_topics([topic], operation_timeout=30)[topic].result(timeout=60)


def partition_dirs(data_dir: Path, topic: str) -> list[Path]:
    return [d for d in data_dir.iterdir() if d.is_dir() and d.name.rsplit("-", 1)[0] == topic]


def wait_for(cond, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def no_doomed_dirs(data_dir: Path) -> bool:
    return not any(d.name.endswith("-delete") for d in data_dir.iterdir())


def test_longest_topic_names_are_deleted_and_recreated_empty(broker):
    """Item 1: `<249 chars>-0.<uuid>-delete` is over NAME_MAX; the doomed name is cut."""
    for length in (214, 230, 249):
        topic = (unique_name("long") + "x" * 249)[:length]
        create_topic(broker.bootstrap, topic, 2)
        produce(broker.bootstrap, topic, 20, partitions=2)
        assert latest_offsets(broker.bootstrap, topic, 2) == {0: 10, 1: 10}
        delete_topic(broker.bootstrap, topic)
        assert partition_dirs(broker.data_dir, topic) == [], length
        create_topic(broker.bootstrap, topic, 2)
        assert latest_offsets(broker.bootstrap, topic, 2) == {0: 0, 1: 0}, length
    wait_for(lambda: no_doomed_dirs(broker.data_dir), "deleted directories to be removed")
    assert "cannot move" not in broker.log_tail()
    broker.restart()
    assert latest_offsets(broker.bootstrap, topic, 2) == {0: 0, 1: 0}


def test_a_directory_of_another_topic_id_is_never_opened(broker_factory, tmp_path):
    """Item 2: the on-disk states a crash mid-delete leaves (image saved, directories not yet
    moved) — a stray of a topic the image no longer has, and one under a recreated name."""
    b = broker_factory()
    topic = unique_name("stray")
    create_topic(b.bootstrap, topic, 2)
    produce(b.bootstrap, topic, 40, partitions=2)
    b.stop()
    saved = tmp_path / "saved"
    saved.mkdir()
    for d in partition_dirs(b.data_dir, topic):
        shutil.copytree(d, saved / d.name)
    b.start()
    delete_topic(b.bootstrap, topic)
    b.stop()
    # Image saved without the topic, directories still in place.
    for d in saved.iterdir():
        shutil.copytree(d, b.data_dir / d.name)
    b.start()
    assert "partition directories of no live topic" in b.log_tail()
    assert partition_dirs(b.data_dir, topic) == []
    create_topic(b.bootstrap, topic, 2)
    assert latest_offsets(b.bootstrap, topic, 2) == {0: 0, 1: 0}
    produce(b.bootstrap, topic, 2, partitions=2, value=b"new")
    b.stop()
    # A recreated topic's directory replaced by the deleted topic's files (another id).
    shutil.rmtree(b.data_dir / f"{topic}-1")
    shutil.copytree(saved / f"{topic}-1", b.data_dir / f"{topic}-1")
    b.start()
    assert latest_offsets(b.bootstrap, topic, 2) == {0: 1, 1: 0}
    wait_for(lambda: no_doomed_dirs(b.data_dir), "strays to be removed")


def test_kill_9_during_a_large_delete_never_brings_data_back(broker_factory):
    """Item 2: kill -9 at different moments of a 2,000-partition DeleteTopics; after each
    restart the topic is either whole (deletion not yet decided) or gone, and a recreated
    topic is empty."""
    partitions = 2000
    b = broker_factory()
    rng = random.Random(15)
    for round_ in range(4):
        topic = unique_name(f"bigdel{round_}")
        create_topic(b.bootstrap, topic, partitions)
        produce(b.bootstrap, topic, 200, partitions=partitions)
        # A raw request on its own socket: an admin client would retry it after the restart.
        with socket.create_connection((b.host, b.port)) as sock:
            proto = KafkaProtocol(client_id="klamm-delete-crash")
            proto.send_request(DeleteTopicsRequest[1](topics=[topic], timeout=30000))
            sock.sendall(proto.send_bytes())
            time.sleep(rng.choice([0.0, 0.01, 0.05, 0.2]))
            b.kill()
        b.start()
        md = admin(b.bootstrap).list_topics(timeout=10)
        if topic in md.topics:
            # Not decided before the crash: all of it is still there.
            assert sum(latest_offsets(b.bootstrap, topic, partitions).values()) == 200
            delete_topic(b.bootstrap, topic)
        create_topic(b.bootstrap, topic, partitions)
        ends = latest_offsets(b.bootstrap, topic, partitions)
        assert sum(ends.values()) == 0, {p: o for p, o in ends.items() if o}
        delete_topic(b.bootstrap, topic)
    wait_for(lambda: no_doomed_dirs(b.data_dir), "deleted directories to be removed", 120)


def test_delete_and_recreate_while_producers_write(broker_factory):
    """Item 3: requests still holding a deleted partition must not write into the
    recreated topic's directory; after a restart the high watermarks are the ones served
    before it."""
    # 4 KiB segments: the writers roll often, and a roll by a deleted partition's handle is
    # what used to create segment files by path inside the recreated topic's directory.
    b = broker_factory("--set", "auto.create.topics.enable=false", *SMALL_SEGMENTS)
    topic = unique_name("race")
    small = {"internal.segment.bytes": "4096"}
    create_topic(b.bootstrap, topic, 4, small)
    stop = threading.Event()

    def write():
        p = producer(b.bootstrap, **{"linger.ms": 0, "message.timeout.ms": 5000,
                                     "topic.metadata.refresh.interval.ms": 100})
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, b"v-%d" % i, partition=i % 4)
            except BufferError:
                p.poll(0.05)
            except KafkaException:
                pass  # unknown topic between the delete and the create
            i += 1
            p.poll(0)
        p.flush(10)

    writers = [threading.Thread(target=write) for _ in range(3)]
    for w in writers:
        w.start()
    try:
        for _ in range(15):
            time.sleep(0.2)
            delete_topic(b.bootstrap, topic)
            create_topic(b.bootstrap, topic, 4, small)
        # The writers reach the last incarnation once their metadata and retry backoffs
        # catch up: wait for that rather than a fixed time.
        wait_for(lambda: sum(latest_offsets(b.bootstrap, topic, 4).values()) > 0,
                 "the writers to reach the last incarnation")
    finally:
        stop.set()
        for w in writers:
            w.join()
    before = latest_offsets(b.bootstrap, topic, 4)
    assert sum(before.values()) > 0  # the writers reached the last incarnation
    log = b.log_tail(10_000_000)
    assert "File exists" not in log and "append failed" not in log
    b.stop()
    b.start()
    assert latest_offsets(b.bootstrap, topic, 4) == before
    assert "partition directories of no live topic" not in b.log_tail()


# Every step of a DeleteTopics, in order, as `crash_point.rs` names them (`@N`: the N-th
# time). Up to `klamm-metadata.json.tmp_written` the deletion is not decided: the old image is whole
# on disk. From `klamm-metadata.json.renamed` on it is, and the next start must finish it.
CRASH_EXIT_CODE = 86
DELETE_STEPS_UNDECIDED = ["delete.before_save", "klamm-metadata.json.tmp_written"]
DELETE_STEPS_DECIDED = ["klamm-metadata.json.renamed", "delete.saved", "delete.moved@1", "delete.moved@5",
                        "delete.retired", "delete.removed@1", "delete.removed@7"]


@pytest.mark.parametrize("step", DELETE_STEPS_UNDECIDED + DELETE_STEPS_DECIDED)
def test_a_crash_at_every_step_of_a_delete(broker_factory, step):
    """Item 2: the broker crashes at one step of an 8-partition DeleteTopics (it exits at
    the step named by KLAMM_TEST_CRASH_AT, leaving what kill -9 there would). After the
    restart the topic is whole if the new image was not yet in place, else gone for good:
    a recreated topic is empty, no directory of the old one is left, and a neighbour
    topic keeps all its records."""
    partitions = 8
    b = broker_factory("--set", "auto.create.topics.enable=false")
    topic, neighbour = unique_name("crashdel"), unique_name("neighbour")
    create_topic(b.bootstrap, topic, partitions)
    create_topic(b.bootstrap, neighbour, partitions)
    produce(b.bootstrap, topic, 80, partitions=partitions)
    produce(b.bootstrap, neighbour, 80, partitions=partitions)
    b.stop()
    b.env = {"KLAMM_TEST_CRASH_AT": step}
    b.start()
    # A raw request: an admin client would retry it after the restart.
    with socket.create_connection((b.host, b.port)) as sock:
        proto = KafkaProtocol(client_id="klamm-delete-crash")
        proto.send_request(DeleteTopicsRequest[1](topics=[topic], timeout=30000))
        sock.sendall(proto.send_bytes())
        # The exit code proves the crash happened at the named step, not elsewhere.
        assert b.wait_exit(60) == CRASH_EXIT_CODE, b.log_tail()
    b.env = {}
    b.start()
    md = admin(b.bootstrap).list_topics(timeout=10)
    if step in DELETE_STEPS_UNDECIDED:
        assert topic in md.topics
        assert sum(latest_offsets(b.bootstrap, topic, partitions).values()) == 80
        delete_topic(b.bootstrap, topic)
    else:
        assert topic not in md.topics
    wait_for(lambda: not partition_dirs(b.data_dir, topic) and no_doomed_dirs(b.data_dir),
             "the deleted topic's directories to be removed", 60)
    create_topic(b.bootstrap, topic, partitions)
    assert sum(latest_offsets(b.bootstrap, topic, partitions).values()) == 0
    assert sum(latest_offsets(b.bootstrap, neighbour, partitions).values()) == 80
    b.restart()
    assert sum(latest_offsets(b.bootstrap, topic, partitions).values()) == 0
    assert sum(latest_offsets(b.bootstrap, neighbour, partitions).values()) == 80
