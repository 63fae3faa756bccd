"""Issue 16 item 7: a draining shutdown. On SIGTERM the broker stops accepting connections,
answers the requests it has already read — a parked long poll with what it has, a parked
JoinGroup with NOT_COORDINATOR (as a Kafka coordinator that unloads) — then closes each
connection, stops its tasks and writes the clean-shutdown marker. Before, connections were
aborted: a request in flight got no answer at all."""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.request

from kafka.protocol.fetch import FetchRequest
from kafka.protocol.group import JoinGroupRequest
from kafka.protocol.parser import KafkaProtocol

from conftest import unique_name
from helpers import create_topic
from test_raw_protocol import recv_frame

NOT_COORDINATOR = 16


def requests_seen(b, api: str) -> int:
    """`klamm_requests_total` of one API: counted when the broker has read the request."""
    with urllib.request.urlopen(f"http://127.0.0.1:{b.admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r'^klamm_requests_total\{api="%s"\} (\d+)' % api, text, re.M)
    return int(m.group(1)) if m else 0


def wait_until_read(b, api: str) -> None:
    deadline = time.monotonic() + 10
    while requests_seen(b, api) < 1:
        assert time.monotonic() < deadline, f"the broker never read the {api} request"
        time.sleep(0.02)


def sigterm_and_answer(b, sock: socket.socket, proto: KafkaProtocol):
    """SIGTERM while the request is parked; returns its answer and how long it took."""
    started = time.monotonic()
    b.proc.send_signal(signal.SIGTERM)
    ((_, response),) = proto.receive_bytes(recv_frame(sock))
    took = time.monotonic() - started
    # Answered first, then closed by the broker.
    assert sock.recv(1) == b""
    assert b.wait_exit(10) == 0, b.log_tail()
    assert (b.data_dir / ".klamm_cleanshutdown").exists()
    return response, took


def test_a_parked_long_poll_is_answered_at_sigterm(broker_factory):
    b = broker_factory("--set", "admin.listener=127.0.0.1:0")
    topic = unique_name("drain-fetch")
    create_topic(b.bootstrap, topic, 1)
    with socket.create_connection((b.host, b.port), timeout=10) as sock:
        proto = KafkaProtocol(client_id="klamm-drain")
        # 30 s long poll on an empty partition: it is parked when SIGTERM comes.
        proto.send_request(FetchRequest[4](
            replica_id=-1, max_wait_time=30000, min_bytes=1, max_bytes=1 << 20,
            isolation_level=0, topics=[(topic, [(0, 0, 1 << 20)])]))
        sock.sendall(proto.send_bytes())
        wait_until_read(b, "Fetch")
        response, took = sigterm_and_answer(b, sock, proto)
    ((name, ((partition, error, high_watermark, *_),)),) = response.topics
    assert (name, partition, error, high_watermark) == (topic, 0, 0, 0)
    assert took < 5, f"the long poll was answered {took:.1f} s after SIGTERM"


def test_a_parked_join_is_answered_not_coordinator_at_sigterm(broker_factory):
    # The first join of a new group waits group.initial.rebalance.delay.ms: a minute here.
    b = broker_factory("--set", "admin.listener=127.0.0.1:0",
                       "--set", "group.initial.rebalance.delay.ms=60000")
    with socket.create_connection((b.host, b.port), timeout=10) as sock:
        proto = KafkaProtocol(client_id="klamm-drain")
        proto.send_request(JoinGroupRequest[2](
            group=unique_name("drain-group"), session_timeout=10000, rebalance_timeout=60000,
            member_id="", protocol_type="consumer",
            group_protocols=[("range", b"\x00\x00\x00\x00\x00\x00")]))
        sock.sendall(proto.send_bytes())
        wait_until_read(b, "JoinGroup")
        response, took = sigterm_and_answer(b, sock, proto)
    assert response.error_code == NOT_COORDINATOR
    assert took < 5, f"the join was answered {took:.1f} s after SIGTERM"
