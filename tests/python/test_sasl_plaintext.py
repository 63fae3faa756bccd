"""Issue 15 item 16: on a PLAINTEXT listener, a client configured for SASL gets Kafka's
answers (UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE) and reports a configuration error,
instead of a connection that just closes."""

import time

from confluent_kafka.admin import AdminClient
from kafka.protocol.sasl_authenticate import SaslAuthenticateRequest
from kafka.protocol.sasl_handshake import SaslHandshakeRequest

from test_raw_protocol import call

UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34


def test_sasl_handshake_and_authenticate_answer_with_kafka_errors(broker):
    for version in (0, 1):
        resp = call(broker.bootstrap, SaslHandshakeRequest[version](mechanism="PLAIN"))
        assert resp.error_code == UNSUPPORTED_SASL_MECHANISM
        assert list(resp.enabled_mechanisms) == []
    for version in (0, 1):
        resp = call(broker.bootstrap, SaslAuthenticateRequest[version](auth_bytes=b"\0user\0secret"))
        assert resp.error_code == ILLEGAL_SASL_STATE
        assert "SASL" in resp.error_message
    # The broker is still serving plain clients afterwards.
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert md.cluster_id and 1 in md.brokers


def test_librdkafka_with_sasl_reports_the_mechanism_error(broker):
    errors = []
    a = AdminClient({
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        "sasl.password": "secret",
        "error_cb": lambda e: errors.append(e),
    })
    start = time.monotonic()
    while time.monotonic() - start < 30 and not any("mechanism" in e.str().lower() for e in errors):
        a.poll(0.2)
    assert any("mechanism" in e.str().lower() for e in errors), [e.str() for e in errors]
    assert "SASL handshake on a listener without SASL" in broker.log_tail()
