"""Live protocol fuzzing: thousands of mutated real client frames against a running broker.

The frames are the seed corpus captured from real clients (tests/corpus/, written by
scripts/capture-corpus), mutated the way crates/broker/tests/fuzz_requests.rs does. The
broker may answer, return an error or close the connection; it must not crash, must not
grow without bound, and must keep serving a well-behaved client throughout.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from pathlib import Path

from conftest import unique_name
from helpers import consumer, create_topic, producer

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
FRAMES = int(os.environ.get("KLAMM_FUZZ_LIVE_FRAMES", "10000"))
EXTREMES = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x0FFFFFFF]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    f = bytearray(frame)
    for _ in range(rng.randint(1, 5)):
        if not f:
            break
        i = rng.randrange(len(f))
        kind = rng.randrange(5)
        if kind == 0:
            f[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            f[i] = rng.randrange(256)
        elif kind == 2:
            del f[i:]
        elif kind == 3:
            f[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            v = struct.pack(">I", rng.choice(EXTREMES))
            f[i : i + 4] = v[: max(0, min(4, len(f) - i))]
    return bytes(f)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def well_behaved_roundtrip(bootstrap: str, topic: str, n: int) -> None:
    p = producer(bootstrap)
    p.produce(topic, value=f"alive {n}".encode())
    assert p.flush(15) == 0, "a well-behaved producer could not deliver"


def test_mutated_frames_do_not_hurt_the_broker(broker):
    seed = int(os.environ.get("KLAMM_FUZZ_SEED", random.randrange(1 << 31)))
    print(f"live fuzz seed {seed} (rerun: KLAMM_FUZZ_SEED={seed}), {FRAMES} frames")
    rng = random.Random(seed)
    corpus = [p.read_bytes() for p in sorted(CORPUS.glob("*.bin"))]
    assert len(corpus) >= 40
    topic = unique_name("fuzz-live")
    create_topic(broker.bootstrap, topic, 1)
    well_behaved_roundtrip(broker.bootstrap, topic, 0)
    rss_start = rss_kib(broker.proc.pid)

    sock = None
    closed_by_broker = 0
    answered = 0
    for n in range(1, FRAMES + 1):
        frame = mutate(rng, rng.choice(corpus))
        if sock is None:
            sock = socket.create_connection((broker.host, broker.port), timeout=2)
        try:
            sock.sendall(struct.pack(">i", len(frame)) + frame)
            sock.settimeout(0.02)
            data = sock.recv(65536)
            if data:
                answered += 1
            else:
                closed_by_broker += 1
                sock.close()
                sock = None
        except socket.timeout:
            pass  # a frame the broker is still waiting on (a truncated one), or a slow answer
        except OSError:
            closed_by_broker += 1
            sock.close()
            sock = None
        if n % 1000 == 0:
            # Start over on a fresh connection now and then, so a half-read frame does not
            # swallow the rest of the run.
            if sock is not None:
                sock.close()
                sock = None
            assert broker.running, f"broker died after {n} frames (seed {seed})\n{broker.log_tail()}"
            well_behaved_roundtrip(broker.bootstrap, topic, n)
    if sock is not None:
        sock.close()

    assert broker.running, f"broker died (seed {seed})\n{broker.log_tail()}"
    rss_end = rss_kib(broker.proc.pid)
    print(
        f"live fuzz: {FRAMES} frames, {answered} answered, {closed_by_broker} connections "
        f"closed by the broker, RSS {rss_start} -> {rss_end} KiB"
    )
    assert closed_by_broker > FRAMES // 20, "mutations should be refused often; is the rig sending?"
    assert rss_end < rss_start + 64 * 1024, f"RSS grew from {rss_start} to {rss_end} KiB"
    # Everything the well-behaved producer sent is there, in order.
    c = consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    from confluent_kafka import TopicPartition

    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < FRAMES // 1000 + 1:
        m = c.poll(10)
        assert m is not None, f"only {got} read back"
        assert not m.error(), m.error()
        got.append(m.value().decode())
    c.close()
    assert got == [f"alive {n}" for n in [0] + list(range(1000, FRAMES + 1, 1000))]
    broker.stop()


def test_attack_shapes_from_hardening_round_two(broker_factory):
    """Issue 15's attacks, mixed at random with well-behaved traffic: Fetch requests naming
    a partition many times with max_bytes INT_MAX, frames declaring 100 MiB held open
    half-sent, Produce to the internal topics, JoinGroup with large metadata, SASL on a
    PLAINTEXT listener. The broker answers or closes, stays small, and keeps serving."""
    from kafka.protocol.fetch import FetchRequest
    from kafka.protocol.group import JoinGroupRequest
    from kafka.protocol.parser import KafkaProtocol
    from kafka.protocol.produce import ProduceRequest
    from kafka.protocol.sasl_handshake import SaslHandshakeRequest

    b = broker_factory("--set", "socket.request.timeout.ms=1000",
                       "--set", "queued.max.request.bytes=67108864",
                       "--set", "fetch.max.bytes=1048576",
                       "--set", "group.metadata.max.bytes=8388608")
    seed = int(os.environ.get("KLAMM_FUZZ_SEED", random.randrange(1 << 31)))
    print(f"attack-shape seed {seed} (rerun: KLAMM_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    topic = unique_name("shapes")
    create_topic(b.bootstrap, topic, 2)
    well_behaved_roundtrip(b.bootstrap, topic, 0)
    int_max = 2**31 - 1

    def fetch():
        return FetchRequest[4](
            replica_id=-1, max_wait_time=0, min_bytes=1, max_bytes=int_max, isolation_level=0,
            topics=[(topic, [(rng.randrange(3), 0, int_max)] * rng.randint(2, 50)),
                    ("__consumer_offsets", [(i, 0, int_max) for i in range(rng.randint(0, 60))])])

    def produce_internal():
        name = rng.choice(["__consumer_offsets", "__transaction_state"])
        return ProduceRequest[3](transactional_id=None, required_acks=1, timeout=1000,
                                 topics=[(name, [(rng.randrange(50), b"\0" * 61)])])

    def join():
        return JoinGroupRequest[5](
            group=unique_name("fat"), session_timeout=10000, rebalance_timeout=10000, member_id="",
            group_instance_id=None, protocol_type="consumer",
            group_protocols=[("range", b"\0" * rng.randint(0, 1 << 20))])

    def sasl():
        return SaslHandshakeRequest[1](mechanism=rng.choice(["PLAIN", "SCRAM-SHA-512", "x" * 300]))

    shapes = [fetch, produce_internal, join, sasl]
    rss_start = rss_kib(b.proc.pid)
    half_sent = []
    for n in range(1, 301):
        if rng.random() < 0.1:
            s = socket.create_connection((b.host, b.port), timeout=2)
            s.sendall(struct.pack(">i", rng.choice([100 << 20, 50 << 20, 1 << 20])) + b"\1" * rng.randrange(4096))
            half_sent.append(s)
            continue
        req = rng.choice(shapes)()
        proto = KafkaProtocol(client_id="klamm-attack")
        proto.send_request(req)
        with socket.create_connection((b.host, b.port), timeout=5) as s:
            s.sendall(proto.send_bytes())
            s.settimeout(5)
            try:
                data = s.recv(4)
            except socket.timeout:
                data = b""
            if len(data) == 4:
                (size,) = struct.unpack(">i", data)
                assert 0 <= size <= (2 << 20) + (1 << 20) * 2, f"{req.__class__.__name__}: {size}"
        if n % 50 == 0:
            assert b.running, f"broker died after {n} attacks (seed {seed})\n{b.log_tail()}"
            well_behaved_roundtrip(b.bootstrap, topic, n)
    rss_end = rss_kib(b.proc.pid)
    for s in half_sent:
        s.settimeout(10)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert b.running
    assert rss_end < rss_start + 384 * 1024, f"RSS grew from {rss_start} to {rss_end} KiB"
    b.stop()
    b.start()
    well_behaved_roundtrip(b.bootstrap, topic, 9999)
