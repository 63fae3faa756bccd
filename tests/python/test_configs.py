"""Topic config changes (part of issue 5): AlterConfigs and IncrementalAlterConfigs from real
clients, validation with INVALID_CONFIG, persistence across restart, effect without restart."""

import subprocess
import time

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource
from confluent_kafka import KafkaException
from kafka.admin import ConfigResource as KPConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient

from conftest import SMALL_SEGMENTS, klamm_bin, unique_name
from helpers import create_topic, producer


def describe(bootstrap, topic):
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = a.describe_configs([res])[res].result(timeout=10)
    return {k: (v.value, v.source) for k, v in entries.items()}


def incremental(bootstrap, topic, ops, validate_only=False):
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=ops)
    return a.incremental_alter_configs([res], validate_only=validate_only)[res].result(timeout=10)


def test_incremental_set_delete_append_persist_across_restart(broker_factory):
    b = broker_factory()
    topic = unique_name("cfg")
    create_topic(b.bootstrap, topic, 1)
    incremental(b.bootstrap, topic, [
        ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    got = describe(b.bootstrap, topic)
    assert got["retention.ms"][0] == "86400000"
    assert got["retention.ms"][1] == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert got["cleanup.policy"][0] == "delete,compact"
    # validate_only changes nothing.
    incremental(b.bootstrap, topic, [ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)], validate_only=True)
    assert describe(b.bootstrap, topic)["retention.ms"][0] == "86400000"
    b.stop()
    b.start()
    got = describe(b.bootstrap, topic)
    assert got["retention.ms"][0] == "86400000" and got["cleanup.policy"][0] == "delete,compact"
    assert got["segment.bytes"][1] == ConfigSource.DEFAULT_CONFIG.value
    incremental(b.bootstrap, topic, [ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    assert describe(b.bootstrap, topic)["retention.ms"][0] == "604800000"  # back to the broker default


def test_invalid_values_are_refused_with_invalid_config(broker_factory):
    b = broker_factory()
    topic = unique_name("cfg-bad")
    create_topic(b.bootstrap, topic, 1)
    for name, value in [("retention.ms", "soon"), ("no.such.key", "1"), ("cleanup.policy", "sometimes")]:
        with pytest.raises(KafkaException) as e:
            incremental(b.bootstrap, topic, [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
        assert e.value.args[0].name() == "INVALID_CONFIG", name
        assert name in e.value.args[0].str()
    assert describe(b.bootstrap, topic)["retention.ms"][0] == "604800000"


def test_kafka_python_alter_configs_round_trip(broker_factory):
    b = broker_factory()
    topic = unique_name("kp-cfg")
    create_topic(b.bootstrap, topic, 1)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        admin.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.bytes": "1048576", "max.message.bytes": "2000000"})])
        got = admin.describe_configs([KPConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    text = repr(got)
    assert "1048576" in text and "2000000" in text
    d = describe(b.bootstrap, topic)
    assert d["segment.bytes"][0] == "1048576" and d["max.message.bytes"][0] == "2000000"


def test_a_change_takes_effect_without_restart(broker_factory):
    """Lowering max.message.bytes on a live topic refuses the next large record."""
    b = broker_factory()
    topic = unique_name("cfg-live")
    create_topic(b.bootstrap, topic, 1)
    p = producer(b.bootstrap)
    p.produce(topic, value=b"x" * 5000)
    assert p.flush(10) == 0
    incremental(b.bootstrap, topic, [ConfigEntry("max.message.bytes", "1000", incremental_operation=AlterConfigOpType.SET)])
    errors = []
    p2 = producer(b.bootstrap, **{"message.timeout.ms": 5000, "compression.type": "none"})
    p2.produce(topic, value=b"y" * 5000, on_delivery=lambda err, msg: errors.append(err))
    p2.flush(10)
    assert errors and errors[0] is not None and errors[0].name() == "MSG_SIZE_TOO_LARGE"


def test_switching_a_topic_to_compact_with_kafka_python_compacts_it(broker_factory):
    """kafka-python alters the compaction keys; they persist across a restart and the
    cleaner acts on them without one."""
    from test_compaction import read_from_start, produce_keyed, wait_for

    b = broker_factory("--set", "log.cleaner.backoff.ms=100", *SMALL_SEGMENTS)
    topic = unique_name("kp-compact")
    create_topic(b.bootstrap, topic, 1, {"internal.segment.bytes": "4096", "segment.ms": "300"})
    records = [(b"k%d" % (i % 10), b"v%d" % i) for i in range(300)]
    offsets = produce_keyed(b.bootstrap, topic, records)
    time.sleep(1.0)
    assert len(read_from_start(b.bootstrap, topic)) == 300  # delete policy: nothing compacted
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        admin.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, topic, configs={
            "cleanup.policy": "compact", "internal.segment.bytes": "4096", "segment.ms": "300",
            "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "5000",
            "min.compaction.lag.ms": "0", "max.compaction.lag.ms": "60000"})])
    finally:
        admin.close()
    expected = sorted({k: (o, k, v) for o, (k, v) in zip(offsets, records)}.values())
    wait_for(lambda: ((g := read_from_start(b.bootstrap, topic)) == expected, len(g)), what="compaction")
    b.restart()
    d = describe(b.bootstrap, topic)
    assert d["cleanup.policy"][0] == "compact"
    assert d["min.cleanable.dirty.ratio"][0] == "0.01"
    assert d["delete.retention.ms"][0] == "5000"
    assert d["max.compaction.lag.ms"][0] == "60000"
    assert read_from_start(b.bootstrap, topic) == expected


def test_cleaner_broker_keys_are_described(broker_factory):
    b = broker_factory("--set", "log.cleaner.dedupe.buffer.size=1048576")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    entries = a.describe_configs([res])[res].result(timeout=10)
    assert entries["log.cleaner.dedupe.buffer.size"].value == "1048576"
    assert entries["log.cleaner.backoff.ms"].value == "15000"
    assert entries["log.cleaner.enable"].value == "true"


def test_timestamp_bounds_refuse_records_with_invalid_timestamp(broker_factory):
    b = broker_factory()
    topic = unique_name("ts-bounds")
    create_topic(b.bootstrap, topic, 1, {
        "message.timestamp.before.max.ms": "3600000", "message.timestamp.after.max.ms": "60000"})
    now = int(time.time() * 1000)
    results = {}
    p = producer(b.bootstrap, **{"linger.ms": 0, "message.timeout.ms": 5000})
    for name, ts in [("now", now), ("old", now - 7_200_000), ("future", now + 600_000)]:
        p.produce(topic, value=name.encode(), timestamp=ts, on_delivery=lambda err, msg, n=name: results.__setitem__(n, err))
        p.flush(10)
    assert results["now"] is None
    assert results["old"] is not None and results["old"].name() == "INVALID_TIMESTAMP"
    assert results["future"] is not None and results["future"].name() == "INVALID_TIMESTAMP"


def test_topic_compression_type_recompresses_producer_batches(broker_factory):
    from test_compaction import read_from_start

    b = broker_factory()
    topic = unique_name("recompress")
    create_topic(b.bootstrap, topic, 1, {"compression.type": "zstd"})
    p = producer(b.bootstrap, **{"compression.codec": "gzip", "linger.ms": 20})
    for i in range(50):
        p.produce(topic, key=b"k%d" % i, value=b"value-%d" % i * 20)
    assert p.flush(10) == 0
    got = read_from_start(b.bootstrap, topic)
    assert [v for _, _, v in got] == [b"value-%d" % i * 20 for i in range(50)]
    # The stored batches carry codec 4 (zstd): attributes at byte 21-22 of each batch.
    data = (b.data_dir / f"{topic}-0" / "00000000000000000000.log").read_bytes()
    pos, codecs = 0, set()
    while pos + 61 <= len(data):
        length = int.from_bytes(data[pos + 8:pos + 12], "big")
        codecs.add(int.from_bytes(data[pos + 21:pos + 23], "big") & 7)
        pos += 12 + length
    assert codecs == {4}


# --- Dynamic broker configs: AlterConfigs on the BROKER resource ("" = cluster-wide, "1" =
# this broker), persisted in the metadata image and applied without a restart.

def describe_broker(bootstrap, broker_id="1"):
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.BROKER, broker_id)
    entries = a.describe_configs([res])[res].result(timeout=10)
    return {k: (v.value, v.source, v.is_read_only) for k, v in entries.items()}


def alter_broker(bootstrap, ops, broker_id="1", validate_only=False):
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.BROKER, broker_id, incremental_configs=ops)
    return a.incremental_alter_configs([res], validate_only=validate_only)[res].result(timeout=10)


def set_op(name, value):
    return ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)


def delivery_errors(bootstrap, topic, size):
    errors = []
    p = producer(bootstrap, **{"message.timeout.ms": 5000, "compression.type": "none"})
    p.produce(topic, value=b"z" * size, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1
    return errors[0]


DYNAMIC_BROKER = ConfigSource.DYNAMIC_BROKER_CONFIG.value
DYNAMIC_DEFAULT = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
STATIC = ConfigSource.STATIC_BROKER_CONFIG.value


def test_dynamic_broker_configs_reach_topics_at_once_and_persist(broker_factory):
    b = broker_factory("--set", "log.retention.hours=24")
    plain, own = unique_name("dyn-plain"), unique_name("dyn-own")
    create_topic(b.bootstrap, plain, 1)
    create_topic(b.bootstrap, own, 1, {"max.message.bytes": "100000"})
    assert describe(b.bootstrap, plain)["retention.ms"] == ("86400000", STATIC)
    assert delivery_errors(b.bootstrap, plain, 5000) is None

    alter_broker(b.bootstrap, [set_op("message.max.bytes", "2000"), set_op("log.retention.ms", "1h")])
    got = describe_broker(b.bootstrap)
    assert got["message.max.bytes"] == ("2000", DYNAMIC_BROKER, False)
    assert got["log.retention.ms"][:2] == ("3600000", DYNAMIC_BROKER)  # normalized
    assert got["log.dirs"][2] is True  # static keys are read-only
    topic = describe(b.bootstrap, plain)
    assert topic["max.message.bytes"] == ("2000", DYNAMIC_BROKER)
    assert topic["retention.ms"] == ("3600000", DYNAMIC_BROKER)
    # The new default applies to the live topic; a topic override still wins.
    assert delivery_errors(b.bootstrap, plain, 5000).name() == "MSG_SIZE_TOO_LARGE"
    assert delivery_errors(b.bootstrap, own, 5000) is None

    b.restart()
    assert describe_broker(b.bootstrap)["message.max.bytes"][:2] == ("2000", DYNAMIC_BROKER)
    assert describe(b.bootstrap, plain)["retention.ms"] == ("3600000", DYNAMIC_BROKER)
    assert delivery_errors(b.bootstrap, plain, 5000).name() == "MSG_SIZE_TOO_LARGE"

    alter_broker(b.bootstrap, [ConfigEntry("message.max.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    assert describe_broker(b.bootstrap)["message.max.bytes"][:2] == ("1048588", ConfigSource.DEFAULT_CONFIG.value)
    assert delivery_errors(b.bootstrap, plain, 5000) is None
    assert describe(b.bootstrap, plain)["retention.ms"] == ("3600000", DYNAMIC_BROKER)


def test_cluster_wide_defaults_with_kafka_python_and_refusals(broker_factory):
    from kafka.protocol.admin import DescribeConfigsRequest

    b = broker_factory()
    topic = unique_name("dyn-default")
    create_topic(b.bootstrap, topic, 1)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        # kafka-python sends broker resources to any broker; "" is the cluster-wide layer.
        response = admin.alter_configs([KPConfigResource(ConfigResourceType.BROKER, "", configs={
            "log.segment.bytes": "1048576", "log.cleaner.backoff.ms": "1000"})])
        assert [r[0] for r in response.resources] == [0], response
        # Describing resource "" shows only that layer, as Kafka does.
        request = DescribeConfigsRequest[1](resources=[(4, "", None)], include_synonyms=False)
        (described,) = admin.send_requests([(request, None)])
        (resource,) = described.resources
        assert resource[0] == 0, resource
        rows = {entry[0]: (entry[1], entry[3]) for entry in resource[4]}
        assert rows == {"log.segment.bytes": ("1048576", DYNAMIC_DEFAULT),
                        "log.cleaner.backoff.ms": ("1000", DYNAMIC_DEFAULT)}
    finally:
        admin.close()
    assert describe_broker(b.bootstrap)["log.segment.bytes"][:2] == ("1048576", DYNAMIC_DEFAULT)
    assert describe(b.bootstrap, topic)["segment.bytes"] == ("1048576", DYNAMIC_DEFAULT)
    # This broker's own layer beats the cluster-wide one.
    alter_broker(b.bootstrap, [set_op("log.segment.bytes", "2097152")])
    assert describe(b.bootstrap, topic)["segment.bytes"] == ("2097152", DYNAMIC_BROKER)

    # Static and unknown keys and bad values are refused, naming the key; nothing changes.
    for name, value in [("log.dirs", "/elsewhere"), ("node.id", "7"), ("no.such.key", "1"),
                        ("log.retention.ms", "soon"), ("log.cleanup.policy", "sometimes")]:
        with pytest.raises(KafkaException) as e:
            alter_broker(b.bootstrap, [set_op(name, value)])
        assert e.value.args[0].name() == "INVALID_CONFIG", name
        assert name in e.value.args[0].str(), e.value.args[0].str()
    # validate_only checks without changing.
    alter_broker(b.bootstrap, [set_op("log.segment.bytes", "4194304")], validate_only=True)
    assert describe(b.bootstrap, topic)["segment.bytes"] == ("2097152", DYNAMIC_BROKER)
    # APPEND works on the broker's list keys too.
    alter_broker(b.bootstrap, [ConfigEntry("log.cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
    assert describe(b.bootstrap, topic)["cleanup.policy"] == ("delete,compact", DYNAMIC_BROKER)


def test_connection_limit_changes_without_restart(broker_factory):
    from test_limits import answers, connect

    b = broker_factory()
    # Counted per source address: the admin client's own connections come from 127.0.0.1.
    alter_broker(b.bootstrap, [set_op("max.connections.per.ip", "3")])
    held = [connect(b.host, b.port, source="127.0.0.4") for _ in range(3)]
    assert all(answers(s) for s in held)
    assert not answers(connect(b.host, b.port, source="127.0.0.4")), "the new limit was not enforced"
    alter_broker(b.bootstrap, [ConfigEntry("max.connections.per.ip", None, incremental_operation=AlterConfigOpType.DELETE)])
    assert answers(connect(b.host, b.port, source="127.0.0.4")), "removing the limit did not lift it"
    for s in held:
        s.close()


def test_segment_bytes_below_one_mib_is_refused_from_every_path(broker_factory, tmp_path):
    """Issue 15 item 10: 14-byte segments cost fds and maps until the broker runs out, so
    segment.bytes has Kafka 4.0's 1 MiB floor; the internal test key is the operator's."""
    b = broker_factory()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    from confluent_kafka.admin import NewTopic

    for key in ("segment.bytes", "internal.segment.bytes"):
        topic = unique_name("seg-floor")
        fut = a.create_topics([NewTopic(topic, 1, 1, config={key: "14"})])[topic]
        with pytest.raises(KafkaException) as e:
            fut.result(timeout=10)
        assert e.value.args[0].name() == "INVALID_CONFIG", key
        assert key in e.value.args[0].str()
    topic = unique_name("seg-floor")
    create_topic(b.bootstrap, topic, 1)
    for key in ("segment.bytes", "internal.segment.bytes"):
        with pytest.raises(KafkaException) as e:
            incremental(b.bootstrap, topic, [ConfigEntry(key, "14", incremental_operation=AlterConfigOpType.SET)])
        assert e.value.args[0].name() == "INVALID_CONFIG", key
    incremental(b.bootstrap, topic, [ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET)])
    assert describe(b.bootstrap, topic)["segment.bytes"][0] == "1048576"
    # Broker-wide: the dynamic default has the same floor, and the test key is not dynamic.
    for key in ("log.segment.bytes", "internal.log.segment.bytes"):
        res = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
            ConfigEntry(key, "14", incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException) as e:
            a.incremental_alter_configs([res])[res].result(timeout=10)
        assert e.value.args[0].name() in ("INVALID_CONFIG", "INVALID_REQUEST"), key
    # At start-up, a clear message naming the key, and no broker.
    out = subprocess.run([klamm_bin(), "serve", "--data-dir", str(tmp_path / "d"), "--set", "log.segment.bytes=14"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "log.segment.bytes" in out.stderr and "1048576" in out.stderr, out.stderr
