"""kcat (Debian package, librdkafka) against a live Klamm broker."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import unique_name
from helpers import create_topic

KCAT_TIMEOUT_S = 30


def kcat(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    exe = shutil.which("kcat") or shutil.which("kafkacat")
    if exe is None:
        pytest.fail("kcat is not installed (scripts/test installs the Debian package `kcat`)")
    proc = subprocess.run(
        [exe, *args], input=stdin, capture_output=True, timeout=KCAT_TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, (
        f"kcat {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    )
    return proc


def test_kcat_lists_broker_and_topics(broker):
    topic = unique_name("kcat-meta")
    create_topic(broker.bootstrap, topic, partitions=2)
    md = json.loads(kcat("-L", "-J", "-b", broker.bootstrap).stdout)
    assert [b["name"] for b in md["brokers"]] == [f"127.0.0.1:{broker.port}"], md["brokers"]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, sorted(topics)
    assert [p["partition"] for p in topics[topic]["partitions"]] == [0, 1]
    assert all(p["leader"] == md["brokers"][0]["id"] for p in topics[topic]["partitions"])

    # The plain text listing names the broker and the topic as well.
    text = kcat("-L", "-b", broker.bootstrap).stdout.decode()
    assert f"at 127.0.0.1:{broker.port}" in text, text
    assert f'topic "{topic}" with 2 partitions' in text, text


def test_kcat_produce_and_consume_keyed_lines(bootstrap):
    topic = unique_name("kcat-rt")
    lines = [f"key{i}:value {i} with spaces" for i in range(50)]
    lines += ["empty-value:", "k:v:with:colons", ":no-key"]
    kcat("-P", "-b", bootstrap, "-t", topic, "-p", "0", "-K:", "-X", "acks=all",
         stdin=("\n".join(lines) + "\n").encode())

    out = kcat("-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%p|%o|%k|%s\\n").stdout.decode()
    got = out.splitlines()
    want = []
    for offset, line in enumerate(lines):
        key, _, value = line.partition(":")
        want.append(f"0|{offset}|{key}|{value}")
    assert got == want
