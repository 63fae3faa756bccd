"""Resource limits, each named, configurable and tested against a real broker.

Covered here: max.connections and max.connections.per.ip, connections.max.idle.ms,
queued.max.requests.per.connection with a client that never reads its responses (the
broker's memory must stay bounded), message.max.decompressed.bytes (compression bombs),
and socket.request.max.bytes. Elsewhere: request-frame size and hostile counts
(crates/klamm/tests/raw_protocol.rs), group.max.size and group.member.metadata.max.bytes
(crates/coordinator tests and test_groups.py), fetch response size (test_edge_cases.py,
fetch.max.bytes / KIP-74).
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

from confluent_kafka import KafkaError, Producer

from conftest import unique_name
from helpers import create_topic, producer

API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 4) + b"test"


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def connect(host: str, port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(3)
    s.connect((host, port))
    return s


def answers(s: socket.socket) -> bool:
    """Whether the broker answers an ApiVersions request on this connection."""
    try:
        s.sendall(frame(API_VERSIONS_V0))
        size = s.recv(4)
        return len(size) == 4
    except OSError:
        return False


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_connection_limits_total_and_per_ip(broker_factory):
    b = broker_factory("--set", "max.connections=5", "--set", "max.connections.per.ip=3")
    # The fixture's readiness probe was a connection too: let the broker see it close.
    time.sleep(0.5)
    held = [connect(b.host, b.port) for _ in range(3)]
    assert all(answers(s) for s in held)
    # A fourth from the same address is refused: closed without an answer.
    assert not answers(connect(b.host, b.port)), "max.connections.per.ip not enforced"
    # Another loopback address has its own per-IP budget, but the total caps it.
    other = [connect(b.host, b.port, source="127.0.0.2") for _ in range(2)]
    assert all(answers(s) for s in other)
    assert not answers(connect(b.host, b.port, source="127.0.0.3")), "max.connections not enforced"
    # Closing one frees its slot.
    held.pop().close()
    time.sleep(0.3)
    assert answers(connect(b.host, b.port)), "a freed slot was not reusable"
    for s in held + other:
        s.close()


def test_idle_connections_are_closed(broker_factory):
    b = broker_factory("--set", "connections.max.idle.ms=500")
    s = connect(b.host, b.port)
    assert answers(s)
    s.recv(1 << 16)  # rest of the response
    s.settimeout(5)
    started = time.monotonic()
    assert s.recv(1) == b"", "the idle connection was not closed"
    took = time.monotonic() - started
    assert 0.3 < took < 4, f"closed after {took:.2f}s, not ~0.5s"


def test_request_above_socket_request_max_bytes_closes_the_connection(broker_factory):
    b = broker_factory("--set", "socket.request.max.bytes=1048576")
    s = connect(b.host, b.port)
    s.sendall(struct.pack(">i", 2 << 20) + b"\0" * 1024)
    assert s.recv(1) == b""
    assert answers(connect(b.host, b.port)), "the broker stopped serving others"


def test_a_client_that_never_reads_cannot_grow_broker_memory(broker_factory):
    """Pipelined Fetch requests for 4 MiB each, never read: the broker stops reading the
    connection once queued.max.requests.per.connection answers are pending and the socket
    buffers are full, so its memory stays bounded."""
    b = broker_factory("--set", "queued.max.requests.per.connection=16")
    topic = unique_name("slow-reader")
    create_topic(b.bootstrap, topic, 1)
    p = producer(b.bootstrap, **{"linger.ms": 50})
    for _ in range(4096):
        p.produce(topic, value=b"r" * 1024, partition=0)
    assert p.flush(30) == 0

    from kafka.protocol.fetch import FetchRequest

    req = FetchRequest[4](
        replica_id=-1, max_wait_time=0, min_bytes=1, max_bytes=4 << 20, isolation_level=0,
        topics=[(topic, [(0, 0, 4 << 20)])],
    )
    body = req.encode()
    s = connect(b.host, b.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    before = rss_kib(b.proc.pid)
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 10
    for corr in range(2000):
        header = struct.pack(">hhih", 1, 4, corr, 4) + b"slow"
        data = frame(header + body)
        try:
            while data and time.monotonic() < deadline:
                try:
                    n = s.send(data)
                    data = data[n:]
                except BlockingIOError:
                    time.sleep(0.01)
            if data:
                break  # the broker stopped reading us: back-pressure works
            sent += 1
        except OSError:
            break
    time.sleep(1)
    after = rss_kib(b.proc.pid)
    assert b.running
    # 2000 answers of 4 MiB would be 8 GiB; at most 16 queued ones may be held, and record
    # bytes are shared with the page cache, not copied.
    assert after - before < 128 * 1024, f"RSS grew {before} -> {after} KiB after {sent} requests"
    # Others are still served.
    assert answers(connect(b.host, b.port))
    s.close()


def test_compression_bombs_are_refused(broker_factory):
    """A 16 MiB record of zeros is ~16 KiB compressed: within max.message.bytes, but above
    message.max.decompressed.bytes once the broker must read the records (a compacted topic
    checks keys; a topic with its own compression.type recompresses)."""
    b = broker_factory("--set", "message.max.decompressed.bytes=4194304")
    compacted = unique_name("bomb-compacted")
    recompress = unique_name("bomb-lz4")
    create_topic(b.bootstrap, compacted, 1, {"cleanup.policy": "compact"})
    create_topic(b.bootstrap, recompress, 1, {"compression.type": "lz4"})
    for topic in (compacted, recompress):
        for codec in ("gzip", "zstd", "snappy", "lz4"):
            if topic == recompress and codec == "lz4":
                continue  # same codec: stored as sent, never decompressed
            results = []
            p = Producer({"bootstrap.servers": b.bootstrap, "compression.type": codec,
                          "message.max.bytes": 64 << 20, "retries": 0,
                          "enable.idempotence": False})
            p.produce(topic, key=b"k", value=bytes(16 << 20), partition=0,
                      on_delivery=lambda err, msg: results.append(err))
            p.produce(topic, key=b"k", value=b"small and fine", partition=0,
                      on_delivery=lambda err, msg: results.append(err))
            p.flush(30)
            assert len(results) == 2, results
            assert results[0] is not None and results[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, (
                f"{topic} {codec}: {results[0]}"
            )
            assert results[1] is None, f"{topic} {codec}: a normal record failed: {results[1]}"
            assert b.running


def test_group_count_limit_refuses_a_new_group(broker_factory):
    from confluent_kafka import Consumer

    b = broker_factory("--set", "group.max.count=2", "--set", "group.initial.rebalance.delay.ms=0")
    topic = unique_name("groups")
    create_topic(b.bootstrap, topic, 1)

    def first_event(group: str, timeout_s: float = 20.0):
        """The first error a consumer in `group` sees, or None once it is assigned."""
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                      "enable.partition.eof": True, "auto.offset.reset": "earliest"})
        try:
            c.subscribe([topic])
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error() and m.error().code() != KafkaError._PARTITION_EOF:
                    return m.error().code()
                return None  # a record or EOF: it joined and was assigned
            raise AssertionError(f"{group}: no assignment and no error")
        finally:
            c.close()

    assert first_event("g1") is None
    assert first_event("g2") is None
    assert first_event("g3") == KafkaError.GROUP_MAX_SIZE_REACHED
    assert first_event("g1") is None, "an existing group must keep working"


def test_half_sent_frames_are_closed_and_hold_no_memory(broker_factory):
    """Issue 15 item 11: 40 connections each declaring a 100 MiB request and sending 100
    bytes of it. The bodies wait for queued.max.request.bytes (nothing is allocated past
    it), every such connection is closed after socket.request.timeout.ms, and small
    requests from others are served meanwhile."""
    b = broker_factory("--set", "socket.request.timeout.ms=2000",
                       "--set", "queued.max.request.bytes=67108864")
    before = rss_kib(b.proc.pid)
    held = []
    for _ in range(40):
        s = connect(b.host, b.port)
        s.sendall(struct.pack(">i", 100 << 20) + b"\1" * 100)
        held.append(s)
    time.sleep(0.5)
    grown = rss_kib(b.proc.pid) - before
    # Without the budget: 40 x 100 MiB. With it: at most one body past the 64 MiB budget.
    assert grown < 256 * 1024, f"RSS grew {grown} KiB holding 40 half-sent frames"
    assert answers(connect(b.host, b.port)), "a small request waited behind the held budget"
    started = time.monotonic()
    for s in held:
        s.settimeout(15)
        assert s.recv(1) == b"", "a half-sent frame's connection was not closed"
    took = time.monotonic() - started
    assert took < 12, f"half-sent frames held for {took:.1f}s"
    log = b.log_tail(1_000_000)
    assert "request body not received within socket.request.timeout.ms" in log
    assert answers(connect(b.host, b.port))


def test_fetch_responses_are_capped_and_duplicates_refused(broker_factory):
    """Issue 15 item 13: one Fetch naming a partition 25 times (and 4,000 unknown ones) with
    max_bytes = INT_MAX gets at most fetch.max.bytes of records, the repeats INVALID_REQUEST,
    and a well-formed frame."""
    from kafka.protocol.fetch import FetchRequest
    from test_raw_protocol import call

    b = broker_factory("--set", "fetch.max.bytes=1048576")
    topic = unique_name("fetch-cap")
    create_topic(b.bootstrap, topic, 1)
    p = producer(b.bootstrap, **{"linger.ms": 20, "batch.size": 65536})
    for _ in range(4096):
        p.produce(topic, value=b"r" * 1024, partition=0)
    assert p.flush(30) == 0
    int_max = 2**31 - 1
    req = FetchRequest[4](
        replica_id=-1, max_wait_time=0, min_bytes=1, max_bytes=int_max, isolation_level=0,
        topics=[(topic, [(0, 0, int_max)] * 25),
                (unique_name("missing"), [(i, 0, int_max) for i in range(4000)])],
    )
    resp = call(b.bootstrap, req)
    (name, parts), (_, missing) = resp.topics
    assert name == topic and len(parts) == 25
    first, *repeats = parts
    assert first[1] == 0 and 0 < len(first[5]) <= (1 << 20) + 65536 + 100, len(first[5])
    INVALID_REQUEST = 42
    assert all(r[1] == INVALID_REQUEST and not r[5] for r in repeats), {r[1] for r in repeats}
    assert len(missing) == 4000 and all(m[1] == 3 for m in missing)
    # Without the cap, one partition alone would answer with all ~4 MiB.
    b2 = broker_factory()
    create_topic(b2.bootstrap, topic, 1)
    p = producer(b2.bootstrap, **{"linger.ms": 20, "batch.size": 65536})
    for _ in range(4096):
        p.produce(topic, value=b"r" * 1024, partition=0)
    assert p.flush(30) == 0
    (_, (whole,)), = call(b2.bootstrap, FetchRequest[4](
        replica_id=-1, max_wait_time=0, min_bytes=1, max_bytes=int_max, isolation_level=0,
        topics=[(topic, [(0, 0, int_max)])])).topics
    assert len(whole[5]) > 4 << 20


def test_group_metadata_bytes_are_capped_broker_wide(broker_factory):
    """Issue 15 item 15: members with ~900 KB subscriptions, one group each (so every join
    completes at once): four fit under a 4 MiB group.metadata.max.bytes, the fifth is
    refused with GROUP_MAX_SIZE_REACHED, and others still join once space is free."""
    from kafka.protocol.group import JoinGroupRequest
    from test_raw_protocol import call

    b = broker_factory("--set", "group.metadata.max.bytes=4194304",
                       "--set", "group.initial.rebalance.delay.ms=0")
    metadata = b"\0" * 900_000
    GROUP_MAX_SIZE_REACHED, MEMBER_ID_REQUIRED = 81, 79

    def join(group: str, member: str = ""):
        return call(b.bootstrap, JoinGroupRequest[5](
            group=group, session_timeout=60000, rebalance_timeout=60000, member_id=member,
            group_instance_id=None, protocol_type="consumer",
            group_protocols=[("range", metadata)]))

    def full_join(group: str) -> int:
        first = join(group)
        if first.error_code != MEMBER_ID_REQUIRED:
            return first.error_code
        return join(group, first.member_id).error_code

    groups = [unique_name("fat") for _ in range(5)]
    assert [full_join(g) for g in groups[:4]] == [0, 0, 0, 0]
    assert full_join(groups[4]) == GROUP_MAX_SIZE_REACHED
    # Small members still fit: the cap is on bytes, not on members.
    small = call(b.bootstrap, JoinGroupRequest[5](
        group=unique_name("thin"), session_timeout=60000, rebalance_timeout=60000, member_id="",
        group_instance_id=None, protocol_type="consumer", group_protocols=[("range", b"x")]))
    assert small.error_code == MEMBER_ID_REQUIRED
