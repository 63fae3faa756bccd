"""Single requests on a raw socket, encoded with kafka-python's protocol structs.

These pin down versions that no high-level client here uses by default (Metadata v0/v1,
which old aiokafka and many tools send) and what happens to bad input.
"""

from __future__ import annotations

import socket
import struct

from kafka.protocol.api_versions import ApiVersionsRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.parser import KafkaProtocol

from conftest import unique_name
from helpers import create_topic

IMPLEMENTED = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    18: "ApiVersions",
    19: "CreateTopics",
    20: "DeleteTopics",
    23: "OffsetForLeaderEpoch",
    32: "DescribeConfigs",
    37: "CreatePartitions",
    60: "DescribeCluster",
}


def recv_frame(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} bytes")
        data += chunk
    return data


def call(bootstrap: str, request):
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        proto = KafkaProtocol(client_id="klamm-raw-test")
        proto.send_request(request)
        sock.sendall(proto.send_bytes())
        ((_, response),) = proto.receive_bytes(recv_frame(sock))
        return response


def test_api_versions_v0_and_v3_advertise_the_implemented_apis(bootstrap):
    for version in (0, 3):
        if version == 0:
            req = ApiVersionsRequest[0]()
        else:
            req = ApiVersionsRequest[3](
                client_software_name="klamm-raw-test", client_software_version="1", _tagged_fields={}
            )
        resp = call(bootstrap, req)
        assert resp.error_code == 0
        ranges = {entry[0]: (entry[1], entry[2]) for entry in resp.api_versions}
        missing = {k: v for k, v in IMPLEMENTED.items() if k not in ranges}
        assert not missing, f"ApiVersions v{version} does not advertise {missing}"
        for key, (lo, hi) in ranges.items():
            assert 0 <= lo <= hi, f"api {key}: range {lo}..{hi}"


def test_metadata_v0_and_v1_topic_list_semantics(bootstrap):
    topic = unique_name("raw-meta")
    create_topic(bootstrap, topic, partitions=2)

    # v0: an empty list means all topics.
    v0 = call(bootstrap, MetadataRequest[0](topics=[]))
    host, port = bootstrap.rsplit(":", 1)
    assert [(b[1], b[2]) for b in v0.brokers] == [(host, int(port))]
    topics = {t[1]: t for t in v0.topics}
    assert topic in topics
    assert topics[topic][0] == 0
    assert sorted(p[1] for p in topics[topic][2]) == [0, 1]

    # v1: null means all topics, an empty list means none.
    v1_all = call(bootstrap, MetadataRequest[1](topics=None))
    assert topic in {t[1] for t in v1_all.topics}
    assert v1_all.controller_id == v1_all.brokers[0][0]
    v1_none = call(bootstrap, MetadataRequest[1](topics=[]))
    assert v1_none.topics == []
    assert len(v1_none.brokers) == 1

    # v1 naming an unknown topic auto-creates it (auto.create.topics.enable=true).
    fresh = unique_name("raw-auto")
    v1_named = call(bootstrap, MetadataRequest[1](topics=[fresh]))
    (entry,) = v1_named.topics
    assert entry[1] == fresh
    # Kafka answers LEADER_NOT_AVAILABLE (5) while creating, or 0 once created.
    assert entry[0] in (0, 5), entry


def test_unknown_api_key_closes_connection_and_broker_survives(bootstrap):
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # api_key 9999, version 0, correlation id 7, client id "x"
        body = struct.pack(">hhih", 9999, 0, 7, 1) + b"x"
        sock.sendall(struct.pack(">i", len(body)) + body)
        sock.settimeout(5)
        try:
            got = sock.recv(4096)
        except (ConnectionResetError, socket.timeout) as exc:
            got = exc
        assert got == b"" or isinstance(got, ConnectionResetError), f"expected a closed connection, got {got!r}"
    # The broker still answers other clients.
    assert call(bootstrap, ApiVersionsRequest[0]()).error_code == 0


def test_oversized_frame_is_refused_without_allocation(bootstrap):
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", 2_000_000_000) + b"\x00\x12\x00\x00")  # declares ~2 GB
        sock.settimeout(5)
        try:
            got = sock.recv(4096)
        except ConnectionResetError as exc:
            got = exc
        assert got == b"" or isinstance(got, ConnectionResetError), f"expected a closed connection, got {got!r}"
    assert call(bootstrap, ApiVersionsRequest[0]()).error_code == 0
