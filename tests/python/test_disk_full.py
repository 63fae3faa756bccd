"""Disk full: ENOSPC on append → KAFKA_STORAGE_ERROR, reads go on, nothing acknowledged is
lost, and producing resumes once space returns.

The broker's data dir is a small tmpfs mounted for the test (needs root, as CI has; the
test skips with the reason otherwise). A filler file takes part of it, so freeing space is
one unlink.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

from conftest import Broker, unique_name
from helpers import consume_range, create_topic, producer

DISK_BYTES = 12 * 1024 * 1024
FILLER_BYTES = 4 * 1024 * 1024
VALUE = b"v" * 1000


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def produce_until_full(bootstrap, topic):
    """Sends single-record requests (retries=0, so each error is reported as the broker
    gave it) until the broker refuses one. Returns (acked values, first error)."""
    p = producer(bootstrap, retries=0, **{"linger.ms": 0, "enable.idempotence": False})
    acked, errors = [], []

    def cb(err, msg):
        if err is None:
            acked.append(msg.value())
        else:
            errors.append(err)

    n = 0
    while not errors and n < 20_000:
        p.produce(topic, value=b"%08d" % n + VALUE, partition=0, on_delivery=cb)
        n += 1
        if n % 20 == 0:
            p.flush(10)
    p.flush(10)
    return acked, errors


def test_disk_full_refuses_writes_serves_reads_and_recovers(small_disk, tmp_path):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * FILLER_BYTES)
    broker = Broker(small_disk / "data", tmp_path / "broker.log")
    broker.start()
    try:
        topic = unique_name("full")
        create_topic(broker.bootstrap, topic, 1)
        acked, errors = produce_until_full(broker.bootstrap, topic)
        assert errors, "the disk never filled up"
        assert len(acked) > 1000, f"only {len(acked)} records fitted before the disk filled"
        assert errors[0].code() == KafkaError.KAFKA_STORAGE_ERROR, errors[0]
        assert broker.running, "broker died on a full disk\n" + broker.log_tail()

        # Reads go on while the disk is full: every acknowledged record, once, in order.
        recs = consume_range(broker.bootstrap, topic, {0: len(acked)})
        assert [r.value for r in recs] == acked

        # Still full: still refused, still alive.
        more, errors = produce_until_full(broker.bootstrap, topic)
        assert errors and errors[0].code() == KafkaError.KAFKA_STORAGE_ERROR
        acked += more

        # Space returns: producing resumes without a restart.
        filler.unlink()
        p = producer(broker.bootstrap, **{"message.timeout.ms": 20000})
        for i in range(100):
            p.produce(topic, value=b"after %d" % i, partition=0)
        assert p.flush(30) == 0, "producing did not resume after space returned"
        assert broker.running

        # Nothing acknowledged was lost, and it survives a restart.
        broker.stop()
        broker.start()
        expected = acked + [b"after %d" % i for i in range(100)]
        recs = consume_range(broker.bootstrap, topic, {0: len(expected)})
        assert [r.value for r in recs] == expected
        broker.stop()
    finally:
        broker.cleanup()
