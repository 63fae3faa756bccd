"""Issue 9: /metrics after a known workload (exact counts and consumer lag), /ready during a
slow recovery, JSON log lines, and `klamm health`."""

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, TopicPartition

from conftest import ADMIN_ANY_PORT, klamm_bin, read_ready_file, refusing_port, unique_name
from helpers import create_topic, producer

HTTP_TIMEOUT_S = 5


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, **labels):
    """The value of one series, or None. Labels must match exactly."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"([a-z_]+)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(4))
    return None


def test_metrics_after_a_known_workload(broker_factory):
    b = broker_factory(*ADMIN_ANY_PORT, "--set", "group.initial.rebalance.delay.ms=0")
    admin_port = b.admin_port
    base = f"http://127.0.0.1:{admin_port}"
    topic = unique_name("obs")
    create_topic(b.bootstrap, topic, 2)
    p = producer(b.bootstrap, **{"linger.ms": 0})
    for i in range(30):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 2)
        p.flush(10)  # one batch of one record per produce request
    group = unique_name("lag")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 30 and time.monotonic() < deadline:
        got += [m for m in c.consume(30, 1.0) if not m.error()]
    assert len(got) == 30
    # Commit 10 of partition 0's 15 records and 5 of partition 1's 15: lag 5 and 10.
    c.commit(offsets=[TopicPartition(topic, 0, 10), TopicPartition(topic, 1, 5)], asynchronous=False)
    c.close()

    status, text = get(base + "/metrics")
    assert status == 200
    assert metric(text, "klamm_produce_records_total", topic=topic) == 30
    assert metric(text, "klamm_fetch_records_total", topic=topic) == 30
    assert metric(text, "klamm_partition_high_watermark", topic=topic, partition=0) == 15
    assert metric(text, "klamm_partition_high_watermark", topic=topic, partition=1) == 15
    assert metric(text, "klamm_requests_total", api="Produce") == 30
    assert metric(text, "klamm_consumer_group_lag", group=group, topic=topic, partition=0) == 5
    assert metric(text, "klamm_consumer_group_lag", group=group, topic=topic, partition=1) == 10
    assert metric(text, "klamm_consumer_group_lag_sum", group=group) == 15
    assert metric(text, "klamm_consumer_group_lag_max", group=group) == 10
    assert metric(text, "klamm_build_info", version=re.search(r'klamm_build_info\{version="([^"]+)"', text).group(1)) == 1
    assert metric(text, "klamm_under_replicated_partitions") == 0
    assert metric(text, "process_resident_memory_bytes") > 0
    # Issue 16: a counter (it was typed gauge), and CPU seconds finer than whole seconds.
    assert "# TYPE klamm_consumer_group_rebalances_total counter" in text
    assert metric(text, "klamm_consumer_group_rebalances_total", group=group) == 0
    cpu = metric(text, "process_cpu_seconds_total")
    assert cpu > 0 and cpu != int(cpu), cpu
    assert metric(text, "klamm_log_flush_duration_seconds_count") > 0
    assert "klamm_request_duration_seconds_bucket" in text and "klamm_fetch_wait_seconds_count" in text

    # An error is counted under Kafka's name: produce to a partition that does not exist.
    bad = producer(b.bootstrap, **{"message.timeout.ms": 2000})
    bad.produce(topic, value=b"x", partition=7)
    bad.flush(5)
    assert get(base + "/health")[0] == 200
    assert get(base + "/ready")[0] == 200


def test_partition_labels_can_be_turned_off(broker_factory):
    b = broker_factory(*ADMIN_ANY_PORT, "--set", "metrics.partition.labels=false")
    admin_port = b.admin_port
    topic = unique_name("agg")
    create_topic(b.bootstrap, topic, 3)
    p = producer(b.bootstrap)
    for i in range(9):
        p.produce(topic, value=b"x", partition=i % 3)
    p.flush(10)
    _, text = get(f"http://127.0.0.1:{admin_port}/metrics")
    assert metric(text, "klamm_partition_high_watermark", topic=topic) == 9
    assert 'partition="' not in text


def test_ready_is_503_during_recovery_then_200(broker_factory):
    b = broker_factory(*ADMIN_ANY_PORT)
    admin_port = b.admin_port
    # Enough partitions that recovering them takes a noticeable moment on any machine.
    for i in range(2):
        create_topic(b.bootstrap, unique_name(f"many{i}"), 500)
    b.kill()  # unclean: the next start recovers every partition
    b.proc = subprocess.Popen(b.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status, _ = get(f"http://127.0.0.1:{admin_port}/ready")
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.005)
            continue
        seen.append(status)
        if status == 200:
            break
        time.sleep(0.005)
    assert 503 in seen, f"never saw 503 during recovery: {seen[:5]}"
    assert seen[-1] == 200
    health = subprocess.run([str(klamm_bin()), "health", "--url", f"http://127.0.0.1:{admin_port}/ready"], capture_output=True)
    assert health.returncode == 0, health.stderr
    b.wait_ready()


def test_health_fails_without_a_broker():
    _refusing, port = refusing_port()
    r = subprocess.run([str(klamm_bin()), "health", "--url", f"http://127.0.0.1:{port}/ready", "--timeout-ms", "1000"], capture_output=True, text=True)
    assert r.returncode != 0
    assert f"127.0.0.1:{port}" in r.stderr


def test_json_logs_parse_and_name_the_client(tmp_path):
    log = tmp_path / "klamm.log"
    ready = tmp_path / "ready"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [str(klamm_bin()), "serve", "--data-dir", str(tmp_path / "data"), "--listeners", "PLAINTEXT://127.0.0.1:0",
             "--set", "log.format=json", "--set", "admin.listener=127.0.0.1:0", "--set", f"ready.file={ready}"],
            stdout=f, stderr=f)
        try:
            deadline = time.monotonic() + 20
            while read_ready_file(ready) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            ports = read_ready_file(ready)
            port, admin_port = ports["PLAINTEXT"], ports["ADMIN"]
            assert get_ready(admin_port) == 200
            p = producer(f"127.0.0.1:{port}")
            p.produce(unique_name("json"), value=b"x")
            assert p.flush(10) == 0
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
    lines = [l for l in log.read_text().splitlines() if l.strip()]
    events = [json.loads(l) for l in lines]  # every line is JSON
    messages = [e.get("fields", {}).get("message") for e in events]
    assert "klamm ready" in messages
    names = {e.get("fields", {}).get("client_software_name") for e in events} - {None}
    assert names and all(names), f"no client connection logged with its software name: {names}"


def get_ready(admin_port):
    try:
        return get(f"http://127.0.0.1:{admin_port}/ready")[0]
    except (urllib.error.URLError, OSError):
        return None
