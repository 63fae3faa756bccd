"""Go Kafka clients from Debian's packages against a live Klamm broker.

The clients are the Go programs in tests/go/<client>/main.go, built at the start of the
session in GOPATH mode from Debian's -dev packages (sources under /usr/share/gocode/src;
scripts/test installs them): nothing is downloaded.

| program | Debian package | version | what it speaks |
|---|---|---|---|
| tests/go/sarama | golang-github-shopify-sarama-dev | 1.22.1 | versions picked by its Config.Version: 0.9 → Produce v0 / magic 0, Fetch v1, ListOffsets v0; 0.10.2 → Produce v2 / magic 1, Fetch v3, CreateTopics v0; 2.1 → Produce v3 / v2 batches, Fetch v4, Metadata v5, CreateTopics v2. Groups (≥ 0.10.2): JoinGroup v1, SyncGroup/Heartbeat/LeaveGroup v0, FindCoordinator v0, OffsetFetch v1, OffsetCommit v1 (v2 with Offsets.Retention set) |
| tests/go/kafkago | golang-github-segmentio-kafka-go-dev | 0.2.1 | fixed: CreateTopics v0, Produce v2 / magic 1, Fetch v2, ListOffsets v1, Metadata v1, FindCoordinator v0, JoinGroup v1, SyncGroup/Heartbeat/LeaveGroup v0, OffsetCommit v2, OffsetFetch v1 |
| tests/go/optiopay | golang-github-optiopay-kafka-dev | 2.1.1 | ApiVersions v0, then min(its max, the broker's): Produce v2 (always magic 0), Fetch v5, ListOffsets v2, Metadata v5; CreateTopics v0; no groups: the test commits (OffsetCommit v3, generation -1) and reads back (OffsetFetch v3) with its protocol structs |
| tests/go/confluent | golang-github-confluentinc-confluent-kafka-go-dev | 0.11.6 | librdkafka (Debian's 2.0.2): negotiated, v2 batches |

Every test starts its own broker and puts a recording TCP proxy in front of it (the
broker advertises the proxy's address, so every client connection goes through it). The
proxy notes each request's API key and version and which were never answered; a failed
test names them, and every test adds what its client sent to
/tmp/klamm_go_client_versions.json.

Each program takes `create | produce | consume | group`, prints "RESULT {json}" lines and
exits 1 with "FAIL: ..." on any error. Tests:
  * create: the client's own CreateTopics, then the topic checked with confluent-kafka;
  * round trip: produce keyed messages, consume them in a consumer group, commit, read
    the committed offsets back (in the Go program, and again with confluent-kafka);
  * cross-format, byte for byte (keys incl. null and empty, values, offsets, order,
    timestamps where the format has them): what magic-0/1 producers wrote read by a v2
    consumer (confluent-kafka), and v2 batches read by old-format consumers.
They are plain tests: against Apache Kafka 3.9 every one passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
from confluent_kafka import TopicPartition

from conftest import REPO_ROOT, unique_name
from helpers import ADMIN_TIMEOUT_S, DeliveryLog, admin, consume_range, consumer, create_topic, producer

GO_SRC = REPO_ROOT / "tests" / "go"
GOCODE = Path("/usr/share/gocode")
PROGRAMS = ("sarama", "kafkago", "optiopay", "confluent")
GO_RUN_TIMEOUT_S = 60
VERSIONS_PATH = Path("/tmp/klamm_go_client_versions.json")
BASE_TS = 1_700_000_000_000
GROUP_BROKER_ARGS = (
    "--set", "group.initial.rebalance.delay.ms=0",
    "--set", "group.min.session.timeout.ms=1000",
)

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    22: "InitProducerId", 32: "DescribeConfigs", 36: "SaslAuthenticate", 60: "DescribeCluster",
}


# ---------------------------------------------------------------------------------------
# Building the Go programs
# ---------------------------------------------------------------------------------------


def _go_env(cache: Path, gopath: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",
        GOFLAGS="",
        GOPATH=f"{GOCODE}:{gopath}",
        GOCACHE=str(cache),
        GOPROXY="off",
        HOME=env.get("HOME") or str(gopath),
    )
    return env


@pytest.fixture(scope="session")
def go_bins(tmp_path_factory) -> Dict[str, Path]:
    """Builds every tests/go program once per session; the go build cache lives in .venv
    (or a temp dir without one), so later sessions relink in a second or two."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("`go` is not installed (scripts/test installs Debian's golang-go and the Go Kafka clients)")
    for pkg in ("Shopify/sarama", "segmentio/kafka-go", "optiopay/kafka/v2", "confluentinc/confluent-kafka-go"):
        if not (GOCODE / "src" / "github.com" / pkg).is_dir():
            pytest.fail(f"{GOCODE}/src/github.com/{pkg} is missing (scripts/test installs the Debian -dev package)")
    venv = REPO_ROOT / ".venv"
    cache = (venv if venv.is_dir() else Path(tempfile.gettempdir())) / "klamm-go-build-cache"
    out = tmp_path_factory.mktemp("go-bin")
    env = _go_env(cache, out / "gopath")
    bins = {}
    for name in PROGRAMS:
        target = out / name
        proc = subprocess.run(
            [go, "build", "-o", str(target), "."],
            cwd=GO_SRC / name, env=env, capture_output=True, text=True, timeout=600,
        )
        if proc.returncode != 0:
            pytest.fail(f"go build tests/go/{name} failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
        bins[name] = target
    return bins


# ---------------------------------------------------------------------------------------
# Recording proxy: which API versions each client sends, which the broker never answered
# ---------------------------------------------------------------------------------------


GO_CLIENT_ID_PREFIX = "klamm-go-"  # every Go program's client.id starts so


@dataclass
class ConnLog:
    # (correlation id, api key, api version, client id)
    requests: List[Tuple[int, int, int, str]] = field(default_factory=list)
    answered: set = field(default_factory=set)
    client_closed: bool = False
    broker_closed: bool = False  # the broker closed the connection first


class ApiRecorder:
    """A TCP proxy in front of the broker that reads the request and response headers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.target: Optional[Tuple[str, int]] = None
        self.conns: List[ConnLog] = []
        self.lock = threading.Lock()
        self.closed = False
        self.sockets: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                assert self.target is not None
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except (OSError, AssertionError):
                client.close()
                continue
            log = ConnLog()
            with self.lock:
                self.conns.append(log)
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, log, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, log, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, log: ConnLog, requests: bool) -> None:
        """Copies src to dst, noting each frame's header first (so a request is on record
        even when the broker closes the connection on it)."""
        pending = b""  # start of a frame whose header is not complete yet
        skip = 0  # bytes of the current frame still to pass through
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                view = data
                while view:
                    if skip:
                        n = min(skip, len(view))
                        skip -= n
                        view = view[n:]
                        continue
                    pending += view
                    view = b""
                    while len(pending) >= 4:
                        size = struct.unpack(">i", pending[:4])[0]
                        if not self._note(pending, size, log, requests):
                            break  # header incomplete: wait for more bytes
                        if len(pending) >= 4 + size:
                            pending = pending[4 + size:]
                        else:
                            skip = 4 + size - len(pending)
                            pending = b""
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self.lock:
                if requests:
                    log.client_closed = True
                elif not log.client_closed:
                    log.broker_closed = True
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _note(self, frame: bytes, size: int, log: ConnLog, requests: bool) -> bool:
        """Records a frame's header: requests are int32 size, int16 key, int16 version,
        int32 correlation id, int16-length client id; responses int32 size, int32
        correlation id. False when the header is not all there yet."""
        if not requests:
            if len(frame) < 8:
                return len(frame) >= 4 + size  # (a frame too short for a header: skip it)
            with self.lock:
                log.answered.add(struct.unpack(">i", frame[4:8])[0])
            return True
        if len(frame) < 14:
            return len(frame) >= 4 + size
        key, version, corr, id_len = struct.unpack(">hhih", frame[4:14])
        id_len = max(id_len, 0)
        if len(frame) < 14 + id_len and size >= 10 + id_len:
            return False
        client_id = frame[14:14 + id_len].decode("utf-8", "replace")
        with self.lock:
            log.requests.append((corr, key, version, client_id))
        return True

    def versions(self, prefix: str = GO_CLIENT_ID_PREFIX) -> List[str]:
        """Every (API, version) the Go programs sent (client id `prefix`...), as sorted
        "Name vN" strings; the confluent-kafka helpers of the tests are left out."""
        with self.lock:
            pairs = {
                (k, v) for c in self.conns for _, k, v, cid in c.requests
                # optiopay leaves the client id empty in its ApiVersions and CreateTopics.
                if cid.startswith(prefix) or cid == ""
            }
        return [f"{API_NAMES.get(k, f'api{k}')} v{v}" for k, v in sorted(pairs)]

    def unanswered(self) -> List[str]:
        """Requests left unanswered on connections the broker closed, any client."""
        with self.lock:
            pairs = {
                (cid, k, v) for c in self.conns if c.broker_closed
                for corr, k, v, cid in c.requests if corr not in c.answered
            }
        return [f"{API_NAMES.get(k, f'api{k}')} v{v} (from {cid or 'no client id'})" for cid, k, v in sorted(pairs)]

    def summary(self) -> str:
        return (
            f"API versions the Go client sent: {', '.join(self.versions())}\n"
            f"never answered (broker closed the connection): {', '.join(self.unanswered()) or 'none'}"
        )

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass


def _record_versions(label: str, recorder: ApiRecorder) -> None:
    """Merges what `label` sent into VERSIONS_PATH (one JSON object for the whole run)."""
    try:
        data = json.loads(VERSIONS_PATH.read_text())
    except (OSError, ValueError):
        data = {}
    merged = sorted(set(data.get(label, [])) | set(recorder.versions()), key=lambda s: (s.split(" v")[0], int(s.split(" v")[1])))
    data[label] = merged
    try:
        VERSIONS_PATH.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass


@dataclass
class Env:
    bootstrap: str  # the proxy: what every client connects to
    recorder: ApiRecorder
    bins: Dict[str, Path]
    tmp: Path

    def run(self, client: "Client", cmd: str, *args: str, timeout_s: float = GO_RUN_TIMEOUT_S) -> List[dict]:
        """Runs one Go program step; returns its RESULT lines, fails with all it printed."""
        argv = [str(self.bins[client.program]), cmd, "-bootstrap", self.bootstrap, *client.args, *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=self.tmp)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"{client.label} {cmd} timed out after {timeout_s}s\n$ {' '.join(argv)}\n"
                f"stdout:\n{exc.stdout}\nstderr:\n{exc.stderr}\n{self.recorder.summary()}",
                pytrace=False,
            )
        if proc.returncode != 0:
            pytest.fail(
                f"{client.label} {cmd} exited {proc.returncode}\n$ {' '.join(argv)}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}\n{self.recorder.summary()}",
                pytrace=False,
            )
        return [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]

    def write_input(self, msgs: Sequence["Msg"]) -> Path:
        path = self.tmp / f"input-{uuid_hex()}.json"
        path.write_text(json.dumps([m.to_json() for m in msgs]))
        return path


def uuid_hex() -> str:
    return hashlib.sha1(f"{time.monotonic_ns()}".encode()).hexdigest()[:8]


@pytest.fixture
def go_env(request, broker_factory, go_bins, tmp_path) -> Env:
    recorder = ApiRecorder()
    broker = broker_factory(
        "--set", f"advertised.listeners=PLAINTEXT://127.0.0.1:{recorder.port}", *GROUP_BROKER_ARGS
    )
    recorder.target = (broker.host, broker.port)
    env = Env(bootstrap=recorder.bootstrap, recorder=recorder, bins=go_bins, tmp=tmp_path)
    yield env
    labels = getattr(request.node, "go_clients", [])
    for label in labels:
        _record_versions(label, recorder)
    recorder.close()


# ---------------------------------------------------------------------------------------
# Clients and messages
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    label: str
    program: str
    args: Tuple[str, ...] = ()
    # Reads a null and an empty key or value alike (kafka-go, optiopay).
    nil_is_empty: bool = False
    # Message format it writes: 0, 1 or 2 (timestamps only from 1 on).
    magic: int = 2
    # Exposes message timestamps when reading.
    reads_timestamps: bool = True


SARAMA_09 = Client("sarama-0.9", "sarama", ("-version", "0.9.0.0"), magic=0, reads_timestamps=False)
SARAMA_0102 = Client("sarama-0.10.2", "sarama", ("-version", "0.10.2.0"), magic=1)
SARAMA_21 = Client("sarama-2.1", "sarama", ("-version", "2.1.0"), magic=2)
SARAMA_21_RETENTION = Client("sarama-2.1-retention", "sarama", ("-version", "2.1.0", "-retention", "24h"), magic=2)
KAFKA_GO = Client("kafka-go", "kafkago", nil_is_empty=True, magic=1)
OPTIOPAY = Client("optiopay", "optiopay", nil_is_empty=True, magic=0, reads_timestamps=False)
CONFLUENT_GO = Client("confluent-kafka-go", "confluent", magic=2)


@dataclass(frozen=True)
class Msg:
    key: Optional[bytes]
    value: Optional[bytes]
    ts: int

    def to_json(self) -> dict:
        return {
            "key": None if self.key is None else self.key.hex(),
            "value": None if self.value is None else self.value.hex(),
            "ts": self.ts,
        }


def _blob(n: int, seed: str) -> bytes:
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{i}".encode()).digest()
        i += 1
    return out[:n]


def tricky_messages() -> List[Msg]:
    """Keys and values a format conversion could get wrong: null vs empty, every byte
    value, multi-byte UTF-8, a 100 kB value; timestamps 1 s apart."""
    kv: List[Tuple[Optional[bytes], Optional[bytes]]] = [
        (None, b"null key"),
        (b"", b""),
        (b"tombstone", None),
        (None, None),
        (bytes([0, 255, 1, 254, 0]), bytes(range(256))),
        ("ключ-ü-🔑".encode(), "значение-✓".encode()),
        (b"big", _blob(100_000, "big")),
        (b"\x00", b"\x00"),
    ]
    kv += [(f"key-{i}".encode(), (f"value-{i}-" * i).encode()) for i in range(8, 24)]
    return [Msg(k, v, BASE_TS + i * 1000) for i, (k, v) in enumerate(kv)]


def plain_messages(n: int) -> List[Msg]:
    return [Msg(f"key-{i}".encode(), f"value-{i}".encode(), BASE_TS + i) for i in range(n)]


def _norm(b: Optional[bytes], nil_is_empty: bool) -> Optional[bytes]:
    if nil_is_empty and b == b"":
        return None
    return b


def _from_hex(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else bytes.fromhex(s)


def assert_same_records(
    got: List[Tuple[int, Optional[bytes], Optional[bytes], Optional[int]]],
    sent: Sequence[Msg],
    nil_is_empty: bool,
    check_ts: bool,
    what: str,
) -> None:
    """`got` = (offset, key, value, ts) in the order read; `sent` in produce order, at
    offsets 0.. of a fresh partition."""
    assert len(got) == len(sent), f"{what}: read {len(got)} records, produced {len(sent)}"
    problems = []
    for i, ((offset, key, value, ts), m) in enumerate(zip(got, sent)):
        if offset != i:
            problems.append(f"record {i}: offset {offset}, want {i}")
        if _norm(key, nil_is_empty) != _norm(m.key, nil_is_empty):
            problems.append(f"record {i}: key {key!r:.80}, want {m.key!r:.80}")
        if _norm(value, nil_is_empty) != _norm(m.value, nil_is_empty):
            problems.append(
                f"record {i}: value {None if value is None else len(value)} bytes {value!r:.60}, "
                f"want {None if m.value is None else len(m.value)} bytes {m.value!r:.60}"
            )
        if check_ts and ts != m.ts:
            problems.append(f"record {i}: timestamp {ts}, want {m.ts}")
    assert not problems, f"{what}: {len(problems)} mismatches:\n" + "\n".join(problems[:20])


def _ids(clients):
    return [c.label for c in clients]


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------

CREATORS = [SARAMA_0102, SARAMA_21, KAFKA_GO, OPTIOPAY, CONFLUENT_GO]


@pytest.mark.parametrize("client", CREATORS, ids=_ids(CREATORS))
def test_create_topic_with_the_clients_own_create_topics(request, go_env, client):
    request.node.go_clients = [client.label]
    topic = unique_name(f"go-create-{client.program}")
    out = go_env.run(client, "create", "-topic", topic, "-partitions", "3")
    assert out and out[-1]["partitions"] == 3, out
    md = admin(go_env.bootstrap).list_topics(topic, timeout=ADMIN_TIMEOUT_S)
    assert topic in md.topics and md.topics[topic].error is None, md.topics
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]


ROUND_TRIPPERS = [SARAMA_0102, SARAMA_21, SARAMA_21_RETENTION, KAFKA_GO, OPTIOPAY, CONFLUENT_GO]


@pytest.mark.parametrize("client", ROUND_TRIPPERS, ids=_ids(ROUND_TRIPPERS))
def test_round_trip_with_consumer_group_and_committed_offsets(request, go_env, client):
    """Keyed messages over 3 partitions, consumed by the client's group consumer with
    commits, committed offsets read back by the client and by confluent-kafka."""
    request.node.go_clients = [client.label]
    topic = unique_name(f"go-rt-{client.program}")
    group = unique_name(f"go-group-{client.program}")
    create_topic(go_env.bootstrap, topic, 3)
    sent = plain_messages(30)
    go_env.run(client, "produce", "-topic", topic, "-input", str(go_env.write_input(sent)))
    out = go_env.run(client, "group", "-topic", topic, "-group", group, "-expect", str(len(sent)))
    records = [r for r in out if "offset" in r]
    committed = [r["committed"] for r in out if "committed" in r]
    assert committed, f"no committed offsets reported: {out}"

    got = sorted((_from_hex(r["key"]), _from_hex(r["value"])) for r in records)
    assert got == sorted((m.key, m.value) for m in sent), "consumed messages differ from those produced"
    per_partition: Dict[int, int] = {}
    for r in records:
        per_partition[r["partition"]] = max(per_partition.get(r["partition"], 0), r["offset"] + 1)
    want = {p: per_partition.get(p, -1) for p in range(3)}
    assert {int(p): o for p, o in committed[-1].items()} == want, (committed[-1], want)

    # The same commits, seen by another client.
    c = consumer(go_env.bootstrap, **{"group.id": group})
    try:
        seen = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=ADMIN_TIMEOUT_S)
    finally:
        c.close()
    assert {tp.partition: (tp.offset if tp.offset >= 0 else -1) for tp in seen} == want


OLD_PRODUCERS = [
    (SARAMA_09, "none"),
    (SARAMA_0102, "none"),
    (SARAMA_0102, "gzip"),
    (KAFKA_GO, "none"),
    (KAFKA_GO, "gzip"),
    (OPTIOPAY, "none"),
    (OPTIOPAY, "gzip"),
]


@pytest.mark.parametrize(
    "client,codec", OLD_PRODUCERS, ids=[f"{c.label}-magic{c.magic}-{z}" for c, z in OLD_PRODUCERS]
)
def test_old_format_producer_read_byte_exact_by_v2_consumer(request, go_env, client, codec):
    """Message sets in magic 0 or 1 (plain and gzip-wrapped), read back by confluent-kafka
    (Fetch v4+, v2 batches): the same bytes at the same offsets, in order."""
    request.node.go_clients = [client.label]
    topic = unique_name(f"go-old-{client.program}")
    create_topic(go_env.bootstrap, topic, 1)
    sent = tricky_messages()
    go_env.run(client, "produce", "-topic", topic, "-partition", "0", "-compression", codec,
               "-input", str(go_env.write_input(sent)))
    recs = consume_range(go_env.bootstrap, topic, {0: len(sent)})
    assert_same_records(
        [(r.offset, r.key, r.value, r.timestamp) for r in recs], sent,
        nil_is_empty=False, check_ts=client.magic >= 1,
        what=f"{client.label} (magic {client.magic}, {codec}) → confluent-kafka",
    )


OLD_CONSUMERS = [
    (SARAMA_09, "none"),
    (SARAMA_0102, "none"),
    (SARAMA_0102, "gzip"),
    (KAFKA_GO, "none"),
    (KAFKA_GO, "gzip"),
    (OPTIOPAY, "none"),
    (SARAMA_21, "gzip"),
]


@pytest.mark.parametrize(
    "client,codec", OLD_CONSUMERS, ids=[f"{c.label}-{z}" for c, z in OLD_CONSUMERS]
)
def test_v2_batches_read_byte_exact_by_old_format_consumer(request, go_env, client, codec):
    """v2 record batches from librdkafka, read by clients that fetch old message formats
    (sarama 0.9: Fetch v1, magic 0; sarama 0.10.2: Fetch v3, magic 1; kafka-go: Fetch v2,
    magic 1) or decode v2 batches themselves (optiopay Fetch v5, sarama 2.1)."""
    request.node.go_clients = [client.label]
    topic = unique_name(f"go-v2-{client.program}")
    create_topic(go_env.bootstrap, topic, 1)
    sent = tricky_messages()
    log = DeliveryLog()
    p = producer(go_env.bootstrap, **{"compression.codec": codec, "linger.ms": 20})
    for m in sent:
        p.produce(topic, key=m.key, value=m.value, partition=0, timestamp=m.ts, on_delivery=log)
    assert p.flush(30) == 0 and not log.failed, log.failed
    assert [o for _, _, o in log.acked] == list(range(len(sent)))
    out = go_env.run(client, "consume", "-topic", topic, "-partition", "0", "-expect", str(len(sent)))
    assert_same_records(
        [(r["offset"], _from_hex(r["key"]), _from_hex(r["value"]), r["ts"]) for r in out], sent,
        nil_is_empty=client.nil_is_empty, check_ts=client.reads_timestamps and client.magic >= 1,
        what=f"confluent-kafka v2 ({codec}) → {client.label}",
    )
