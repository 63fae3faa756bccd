"""Topic config changes (part of issue 5): AlterConfigs and IncrementalAlterConfigs from real
clients, validation with INVALID_CONFIG, persistence across restart, effect without restart."""

import time

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource
from confluent_kafka import KafkaException
from kafka.admin import ConfigResource as KPConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient

from conftest import unique_name
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
