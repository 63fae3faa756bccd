"""The Apache Java client (kafka-clients 3.9.1) against a live Klamm broker.

The jars come from PyPI (`shigawire-apache-flink-libraries` in requirements.txt puts
`pyflink/lib/kafka-clients.jar`, `lz4-java.jar`, `snappy-java.jar`, `zstd-jni.jar` and
`slf4j-api.jar` into the venv); nothing is committed. The Java programs in `tests/java`
(plain .java files, no build tool) are compiled once per session with `javac`. Each test
starts its own broker and one JVM: `java Klamm<Area> BOOTSTRAP COMMAND [ARGS]`, which
exits 0, or 1 with `FAIL ...` and what the client saw on stderr.

The client's own log goes to stderr at WARN (a tiny slf4j binding in tests/java); set
KLAMM_JAVA_LOG=debug, or e.g. KLAMM_JAVA_LOG=warn,org.apache.kafka.clients.NetworkClient=debug,
for more, and RUST_LOG=debug for the broker's (attached to failures).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT

JAVA_SRC = REPO_ROOT / "tests" / "java"
KAFKA_CLIENTS_VERSION = "3.9.1"
JARS = ("kafka-clients.jar", "lz4-java.jar", "snappy-java.jar", "zstd-jni.jar", "slf4j-api.jar")
JAVA_TIMEOUT_S = 100

# Short group timings: rebalances in about a second, not the 3 s initial delay.
BROKER_ARGS = (
    "--set", "group.initial.rebalance.delay.ms=0",
    "--set", "group.min.session.timeout.ms=1000",
    "--set", "offsets.topic.num.partitions=3",
    "--set", "transaction.state.log.num.partitions=3",
)

JAVA = shutil.which("java")
JAVAC = shutil.which("javac")
if not (JAVA and JAVAC):
    pytest.skip("java/javac not on PATH: the Java client tests need a JDK (17+)", allow_module_level=True)


def jar_dir() -> Path:
    """`pyflink/lib` of the installed shigawire-apache-flink-libraries."""
    candidates = [Path(sysconfig.get_paths()["purelib"])] + [Path(p) for p in sys.path if p]
    for base in candidates:
        lib = base / "pyflink" / "lib"
        if (lib / "kafka-clients.jar").is_file():
            return lib
    pytest.fail(
        "kafka-clients.jar not found in pyflink/lib of this Python: install the test "
        "requirements (`.venv/bin/pip install -r tests/python/requirements.txt`; "
        "shigawire-apache-flink-libraries ships the Java client jars)",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def java_classpath(tmp_path_factory) -> str:
    """Compiles tests/java once per session; the classpath for `java -cp`."""
    lib = jar_dir()
    jars = [lib / j for j in JARS]
    missing = [str(j) for j in jars if not j.is_file()]
    assert not missing, f"jars missing from {lib}: {missing}"
    with zipfile.ZipFile(lib / "kafka-clients.jar") as z:
        props = z.read("kafka/kafka-version.properties").decode()
    assert f"version={KAFKA_CLIENTS_VERSION}" in props, (
        f"{lib / 'kafka-clients.jar'} is not kafka-clients {KAFKA_CLIENTS_VERSION}:\n{props}"
    )
    out = tmp_path_factory.mktemp("java-classes")
    sources = sorted(str(p) for p in JAVA_SRC.rglob("*.java"))
    jar_cp = os.pathsep.join(str(j) for j in jars)
    proc = subprocess.run(
        [JAVAC, "-nowarn", "-encoding", "UTF-8", "-d", str(out), "-cp", jar_cp, *sources],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"javac failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return os.pathsep.join([str(out), jar_cp])


@pytest.fixture
def jbroker(broker_factory):
    return broker_factory(*BROKER_ARGS)


def run_java(classpath: str, broker, program: str, *args: str, timeout_s: float = JAVA_TIMEOUT_S) -> str:
    """Runs one Java test program against `broker`; fails the test unless it exits 0."""
    cmd = [
        JAVA,
        # Quick start on small CI machines: client JVMs live seconds.
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xshare:auto",
        "-Xmx512m",
        "-Dfile.encoding=UTF-8",
        "-cp",
        classpath,
        program,
        broker.bootstrap,
        *args,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(
            f"{program} {' '.join(args)} did not finish within {timeout_s}s\n"
            f"--- stdout ---\n{out}\n--- stderr ---\n{err}",
            pytrace=False,
        )
    if proc.returncode != 0:
        fail_lines = [l for l in proc.stderr.splitlines() if l.startswith("FAIL ")]
        headline = fail_lines[0] if fail_lines else f"exit code {proc.returncode}"
        pytest.fail(
            f"{program} {' '.join(args)} failed: {headline}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    # Shown with -s or -rP.
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.stdout


def advertised_api_keys(bootstrap: str) -> dict:
    """{api_key: (min, max)} from an ApiVersions v0 request."""
    from kafka.protocol.api_versions import ApiVersionsRequest
    from kafka.protocol.parser import KafkaProtocol

    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        proto = KafkaProtocol(client_id="klamm-java-test")
        proto.send_request(ApiVersionsRequest[0]())
        sock.sendall(proto.send_bytes())
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed during ApiVersions")
            data += chunk
        ((_, response),) = proto.receive_bytes(data)
    return {k[0]: (k[1], k[2]) for k in response.api_versions}


# ---------------------------------------------------------------------------------------
# AdminClient
# ---------------------------------------------------------------------------------------


def test_admin_topics(java_classpath, jbroker):
    """createTopics (configs, validateOnly, errors), listTopics, describeTopics, deleteTopics."""
    run_java(java_classpath, jbroker, "KlammAdmin", "topics")


def test_admin_topics_by_id(java_classpath, jbroker):
    """describeTopics / deleteTopics by topic id (Metadata v10+, DeleteTopics v6)."""
    run_java(java_classpath, jbroker, "KlammAdmin", "topics-by-id")


def test_admin_cluster_and_features(java_classpath, jbroker):
    """describeCluster (id, node, controller, authorized ops) and describeFeatures."""
    run_java(java_classpath, jbroker, "KlammAdmin", "cluster")


def test_admin_configs(java_classpath, jbroker):
    """describeConfigs (topic, broker), incrementalAlterConfigs, legacy alterConfigs."""
    run_java(java_classpath, jbroker, "KlammAdmin", "configs")


def test_admin_create_partitions_and_delete_records(java_classpath, jbroker):
    run_java(java_classpath, jbroker, "KlammAdmin", "partitions-records")


def test_admin_list_offsets(java_classpath, jbroker):
    """listOffsets earliest / latest / maxTimestamp / forTimestamp / earliestLocal, read_committed."""
    run_java(java_classpath, jbroker, "KlammAdmin", "list-offsets")


def test_admin_consumer_groups(java_classpath, jbroker):
    """list/describe groups, list/alter/delete group offsets, deleteConsumerGroups."""
    run_java(java_classpath, jbroker, "KlammAdmin", "groups")


def test_admin_producers_and_transactions(java_classpath, jbroker):
    """describeProducers, listTransactions (filters), describeTransactions."""
    run_java(java_classpath, jbroker, "KlammAdmin", "producers-transactions")


def test_admin_log_dirs(java_classpath, jbroker):
    """describeLogDirs: the one dir, a written partition's size, total/usable bytes."""
    run_java(java_classpath, jbroker, "KlammAdmin", "log-dirs")


def test_admin_replica_log_dirs(java_classpath, jbroker):
    """describeReplicaLogDirs (current dir, no lag) and alterReplicaLogDirs (same dir ok,
    a dir the broker lacks: LogDirNotFoundException)."""
    run_java(java_classpath, jbroker, "KlammAdmin", "replica-log-dirs")


def test_admin_elect_leaders(java_classpath, jbroker):
    """electLeaders(PREFERRED): ElectionNotNeeded for named partitions, none for all,
    UnknownTopicOrPartition for a missing one."""
    run_java(java_classpath, jbroker, "KlammAdmin", "elect-leaders")


def test_admin_list_reassignments(java_classpath, jbroker):
    run_java(java_classpath, jbroker, "KlammAdmin", "list-reassignments")


def test_admin_alter_reassignments(java_classpath, jbroker):
    """To the current replica set: done at once; cancel with none in progress and an
    unknown broker: Kafka's exceptions."""
    run_java(java_classpath, jbroker, "KlammAdmin", "alter-reassignments")


def test_admin_metadata_quorum(java_classpath, jbroker):
    """describeMetadataQuorum: a one-voter quorum led by the broker."""
    run_java(java_classpath, jbroker, "KlammAdmin", "metadata-quorum")


def test_admin_describe_topics_paged(java_classpath, jbroker):
    """describeTopics with partitionSizeLimitPerResponse(2): DescribeTopicPartitions
    (KIP-966) pages through the cursor. The admin falls back to Metadata silently when the
    broker lacks the API, so the test also checks that api key 75 is advertised."""
    assert 75 in advertised_api_keys(jbroker.bootstrap), "DescribeTopicPartitions is not advertised"
    run_java(java_classpath, jbroker, "KlammAdmin", "describe-topics-paged")


def test_admin_abort_transaction_and_fence_producers(java_classpath, jbroker):
    """abortTransaction (WriteTxnMarkers) ends a hanging transaction in its partition, a
    stale epoch is refused; fenceProducers makes the old producer's commit fail."""
    run_java(java_classpath, jbroker, "KlammAdmin", "abort-fence")


def test_admin_remove_members_from_consumer_group(java_classpath, jbroker):
    """removeMembersFromConsumerGroup: a static member by instance id, then all."""
    run_java(java_classpath, jbroker, "KlammAdmin", "remove-members")


# ---------------------------------------------------------------------------------------
# Producer
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_producer_defaults_round_trip(java_classpath, jbroker, codec):
    """Idempotent acks=all producer, keys / null keys / null and empty values / headers
    (duplicates, null values) / timestamps, read back byte-exact by a consumer."""
    run_java(java_classpath, jbroker, "KlammProduce", "roundtrip", codec)


# ---------------------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------------------


def test_transactions_consume_transform_produce(java_classpath, jbroker):
    """sendOffsetsToTransaction with the group's metadata; commit then abort; read_committed
    sees only the committed output and the group's offsets are the committed ones."""
    run_java(java_classpath, jbroker, "KlammTxn", "ctp")


def test_transactions_fencing(java_classpath, jbroker):
    """A second producer with the same transactional.id fences the first (ProducerFencedException)."""
    run_java(java_classpath, jbroker, "KlammTxn", "fencing")


def test_consumer_read_committed_stops_at_lso(java_classpath, jbroker):
    """read_committed skips aborted records and markers and stops at the LSO of an open transaction."""
    run_java(java_classpath, jbroker, "KlammTxn", "read-committed")


# ---------------------------------------------------------------------------------------
# Consumer groups
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignor", ["RangeAssignor", "RoundRobinAssignor", "StickyAssignor", "CooperativeStickyAssignor"]
)
def test_consumer_group_assignor(java_classpath, jbroker, assignor):
    """Three consumers share six partitions exactly once; one leaves and the two others
    take its partitions (sticky assignors keep theirs; cooperative revokes nothing)."""
    run_java(java_classpath, jbroker, "KlammGroups", "assignor", assignor)


def test_consumer_static_membership(java_classpath, jbroker):
    """group.instance.id: restarts rejoin without a rebalance; a member gone past its session
    timeout loses its partitions."""
    run_java(java_classpath, jbroker, "KlammGroups", "static")


def test_consumer_commits(java_classpath, jbroker):
    """commitSync / commitAsync (explicit and positions), committed(), resume, auto-commit."""
    run_java(java_classpath, jbroker, "KlammGroups", "commits")


def test_consumer_seek_and_offsets_for_times(java_classpath, jbroker):
    """offsetsForTimes, beginning/endOffsets, seekToBeginning/End, out-of-range reset, reset policies."""
    run_java(java_classpath, jbroker, "KlammGroups", "seek")
