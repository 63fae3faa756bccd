"""Transactions and idempotence (KIP-98) with real clients.

- confluent-kafka transactions: commit and abort seen through read_committed and
  read_uncommitted consumers; a consume-transform-produce loop with
  send_offsets_to_transaction and a broker kill -9 in the middle; zombie fencing; a
  transaction that outlives its timeout is aborted by the broker.
- Idempotence under injected retries: a TCP proxy written here drops Produce responses
  (it forwards the request, then closes the client's connection), with aiokafka and
  confluent-kafka, and a broker kill -9 during the run: every acknowledged record is in the
  topic exactly once, in order.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
import uuid
from typing import Dict, List, Optional

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from helpers import create_topic

TXN_TIMEOUT_S = 30


def txn_producer(bootstrap: str, txn_id: str, **overrides) -> Producer:
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
    }
    conf.update(overrides)
    p = Producer(conf)
    p.init_transactions(TXN_TIMEOUT_S)
    return p


def read_all(
    bootstrap: str,
    topic: str,
    partitions: int,
    isolation: str,
    idle_s: float = 3.0,
    timeout_s: float = 30.0,
) -> List:
    """Every record of `topic` from the beginning, stopping once idle for `idle_s`."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = []
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            out.append(m)
            last = time.monotonic()
    finally:
        c.close()
    return out


def values(msgs) -> List[bytes]:
    return [m.value() for m in msgs]


def test_commit_and_abort_visibility(broker):
    topic = f"txn-vis-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, 2)
    p = txn_producer(broker.bootstrap, f"tx-{uuid.uuid4().hex[:6]}")
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=b"c1-%d" % i, partition=i % 2)
    p.commit_transaction(TXN_TIMEOUT_S)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=b"a-%d" % i, partition=i % 2)
    p.flush()
    p.abort_transaction(TXN_TIMEOUT_S)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=b"c2-%d" % i, partition=i % 2)
    p.commit_transaction(TXN_TIMEOUT_S)

    committed = sorted(values(read_all(broker.bootstrap, topic, 2, "read_committed")))
    expected = sorted([b"c1-%d" % i for i in range(10)] + [b"c2-%d" % i for i in range(5)])
    assert committed == expected
    everything = sorted(values(read_all(broker.bootstrap, topic, 2, "read_uncommitted")))
    assert everything == sorted(expected + [b"a-%d" % i for i in range(10)])


def test_open_transaction_holds_back_read_committed(broker):
    topic = f"txn-lso-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p = txn_producer(broker.bootstrap, f"tx-{uuid.uuid4().hex[:6]}")
    p.begin_transaction()
    p.produce(topic, value=b"in-txn", partition=0)
    p.flush()
    plain.produce(topic, value=b"after", partition=0)
    plain.flush()
    # The open transaction holds the LSO at its first offset: nothing visible yet.
    assert values(read_all(broker.bootstrap, topic, 1, "read_committed", idle_s=2)) == []
    assert values(read_all(broker.bootstrap, topic, 1, "read_uncommitted", idle_s=2)) == [
        b"in-txn",
        b"after",
    ]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lso", "isolation.level": "read_committed"})
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.close()
    assert high == 0  # ListOffsets(read_committed, latest) answers the LSO
    p.commit_transaction(TXN_TIMEOUT_S)
    assert values(read_all(broker.bootstrap, topic, 1, "read_committed", idle_s=2)) == [
        b"in-txn",
        b"after",
    ]


def test_zombie_producer_is_fenced(broker):
    topic = f"txn-zombie-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, 1)
    txn_id = f"tx-{uuid.uuid4().hex[:6]}"
    zombie = txn_producer(broker.bootstrap, txn_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie", partition=0)
    zombie.flush()
    # A new instance with the same transactional.id fences the old one and aborts its txn.
    fresh = txn_producer(broker.bootstrap, txn_id)
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh", partition=0)
    fresh.commit_transaction(TXN_TIMEOUT_S)
    with pytest.raises(KafkaException) as err:
        zombie.produce(topic, value=b"zombie-2", partition=0)
        zombie.commit_transaction(10)
    assert err.value.args[0].code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    ) or err.value.args[0].fatal()
    assert values(read_all(broker.bootstrap, topic, 1, "read_committed")) == [b"fresh"]


def test_transaction_timeout_aborts(broker_factory):
    b = broker_factory(
        "--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=200"
    )
    topic = f"txn-timeout-{uuid.uuid4().hex[:6]}"
    create_topic(b.bootstrap, topic, 1)
    p = txn_producer(b.bootstrap, f"tx-{uuid.uuid4().hex[:6]}", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    p.produce(topic, value=b"too-slow", partition=0)
    p.flush()
    time.sleep(4)
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    # The broker aborted it: read_committed moves past it and sees nothing.
    plain = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    plain.produce(topic, value=b"later", partition=0)
    plain.flush()
    assert values(read_all(b.bootstrap, topic, 1, "read_committed")) == [b"later"]


def test_transaction_timeout_above_maximum_is_refused(broker_factory):
    b = broker_factory("--set", "transaction.max.timeout.ms=5000")
    p = Producer(
        {
            "bootstrap.servers": b.bootstrap,
            "transactional.id": "too-long",
            "transaction.timeout.ms": 10000,
        }
    )
    with pytest.raises(KafkaException) as err:
        p.init_transactions(10)
    assert err.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT


def _consume_transform_produce(bootstrap, src, dst, group, txn_id, stop_after: Optional[int]):
    """Copies src to dst in transactions of up to 20 records, committing the consumer's
    offsets in each. Returns how many transactions it committed; stops after `stop_after`."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # The crashed instance cannot leave the group: keep its eviction short.
            "session.timeout.ms": 6000,
        }
    )
    c.subscribe([src])
    p = txn_producer(bootstrap, txn_id)
    commits = 0
    deadline = time.monotonic() + 90
    try:
        while (stop_after is None or commits < stop_after) and time.monotonic() < deadline:
            msgs = c.consume(20, 0.5)
            msgs = [m for m in msgs if not m.error()]
            if not msgs:
                if stop_after is None and _caught_up(c, src):
                    break
                continue
            p.begin_transaction()
            for m in msgs:
                p.produce(dst, key=m.key(), value=m.value(), partition=m.partition())
            p.send_offsets_to_transaction(
                c.position(c.assignment()), c.consumer_group_metadata(), TXN_TIMEOUT_S
            )
            p.commit_transaction(TXN_TIMEOUT_S)
            commits += 1
    finally:
        c.close()
    return commits


def _caught_up(c: Consumer, src: str) -> bool:
    """Whether the consumer owns every partition of `src` and has read all of each."""
    assignment = c.assignment()
    if len(assignment) < 2:
        return False
    for tp in c.position(assignment):
        _, high = c.get_watermark_offsets(TopicPartition(src, tp.partition), timeout=10)
        if tp.offset < high:
            return False
    return True


def test_consume_transform_produce_exactly_once_across_kill(broker):
    src = f"ctp-in-{uuid.uuid4().hex[:6]}"
    dst = f"ctp-out-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, src, 2)
    create_topic(broker.bootstrap, dst, 2)
    n = 400
    plain = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(n):
        plain.produce(src, value=b"%05d" % i, partition=i % 2)
    plain.flush()
    group = f"ctp-{uuid.uuid4().hex[:6]}"
    txn_id = f"ctp-tx-{uuid.uuid4().hex[:6]}"
    # Phase 1: a few committed transactions, then a transaction left open by a crash.
    assert _consume_transform_produce(broker.bootstrap, src, dst, group, txn_id, 3) == 3
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # The crashed instance cannot leave the group: keep its eviction short.
            "session.timeout.ms": 6000,
        }
    )
    c.subscribe([src])
    p = txn_producer(broker.bootstrap, txn_id)
    msgs = []
    deadline = time.monotonic() + 20
    while not msgs and time.monotonic() < deadline:
        msgs = [m for m in c.consume(20, 0.5) if not m.error()]
    assert msgs
    p.begin_transaction()
    for m in msgs:
        p.produce(dst, value=m.value(), partition=m.partition())
    p.flush()
    p.send_offsets_to_transaction(
        c.position(c.assignment()), c.consumer_group_metadata(), TXN_TIMEOUT_S
    )
    broker.kill()  # before the commit: this transaction must never become visible
    c.close()
    del p
    broker.start()
    # Phase 2: a new instance with the same transactional.id fences the open transaction
    # (aborting it) and copies the rest.
    _consume_transform_produce(broker.bootstrap, src, dst, group, txn_id, None)
    out = values(read_all(broker.bootstrap, dst, 2, "read_committed"))
    assert sorted(out) == sorted(b"%05d" % i for i in range(n))


# ---------------------------------------------------------------------------------------
# Idempotence under injected retries


class DroppingProxy:
    """A TCP proxy that forwards Kafka requests and, for every `drop_every`-th Produce
    request, forwards it and then closes the client connection instead of relaying the
    response: the broker wrote the batch, the client never heard, and it must retry."""

    def __init__(self, upstream_port: int, drop_every: int = 7):
        self.upstream_port = upstream_port
        self.drop_every = drop_every
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.produces = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _read_exact(sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError
            buf += chunk
        return buf

    def _serve(self, client):
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        # Responses flow back on their own thread unless a drop was decided.
        drop_flag = threading.Event()

        def pump_back():
            try:
                while True:
                    size = self._read_exact(upstream, 4)
                    body = self._read_exact(upstream, struct.unpack(">i", size)[0])
                    if drop_flag.is_set():
                        break
                    client.sendall(size + body)
            except (OSError, ConnectionError):
                pass
            finally:
                client.close()
                upstream.close()

        threading.Thread(target=pump_back, daemon=True).start()
        try:
            while True:
                size = self._read_exact(client, 4)
                body = self._read_exact(client, struct.unpack(">i", size)[0])
                api_key = struct.unpack(">h", body[:2])[0]
                drop = False
                if api_key == 0:
                    with self.lock:
                        self.produces += 1
                        drop = self.produces % self.drop_every == 0
                        if drop:
                            self.dropped += 1
                if drop:
                    drop_flag.set()
                upstream.sendall(size + body)
                if drop:
                    time.sleep(0.2)  # let the broker append, then vanish
                    client.close()
                    upstream.close()
                    return
        except (OSError, ConnectionError):
            client.close()
            upstream.close()

    def close(self):
        self.closed = True
        self.listener.close()


def _check_exactly_once_in_order(bootstrap, topic, acked: List[bytes]):
    got = values(read_all(bootstrap, topic, 1, "read_uncommitted"))
    assert len(got) == len(set(got)), "duplicates in the log"
    assert set(acked) <= set(got), "an acknowledged record is missing"
    # In order: the records' sequence numbers only go up.
    nums = [int(v) for v in got]
    assert nums == sorted(nums)


def proxied_broker(broker_factory, drop_every: int):
    """A broker that advertises a dropping proxy in front of it, so that every client
    connection (not only the bootstrap one) goes through the proxy."""
    b = broker_factory(start=False)
    # The broker binds a port of its own at start; the proxy learns it then.
    proxy = DroppingProxy(0, drop_every=drop_every)
    b.extra_args += ["--set", f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}"]
    b.start()
    proxy.upstream_port = b.port
    return b, proxy


def test_confluent_idempotent_producer_under_dropped_responses(broker_factory):
    broker, proxy = proxied_broker(broker_factory, drop_every=5)
    topic = f"idem-ck-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, 1)
    try:
        p = Producer(
            {
                "bootstrap.servers": f"127.0.0.1:{proxy.port}",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "batch.num.messages": 20,
                "message.timeout.ms": 60000,
            }
        )
        acked: List[bytes] = []

        def on_delivery(err, msg):
            if err is None:
                acked.append(msg.value())

        for i in range(2000):
            p.produce(topic, value=b"%06d" % i, partition=0, on_delivery=on_delivery)
            if i % 100 == 0:
                p.poll(0)
        assert p.flush(60) == 0
        assert proxy.dropped > 0
        assert len(acked) == 2000
        # Read back through the proxy too: the broker advertises it.
        _check_exactly_once_in_order(broker.bootstrap, topic, acked)
    finally:
        proxy.close()


def test_aiokafka_idempotent_producer_under_dropped_responses(broker_factory):
    from aiokafka import AIOKafkaProducer

    broker, proxy = proxied_broker(broker_factory, drop_every=5)
    topic = f"idem-aio-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, 1)

    async def run():
        p = AIOKafkaProducer(
            bootstrap_servers=f"127.0.0.1:{proxy.port}",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=10000,
            retry_backoff_ms=50,
        )
        await p.start()
        acked = []
        try:
            for chunk in range(20):
                futs = [
                    await p.send(topic, value=b"%06d" % (chunk * 50 + i), partition=0)
                    for i in range(50)
                ]
                for i, f in enumerate(futs):
                    await f
                    acked.append(b"%06d" % (chunk * 50 + i))
        finally:
            await p.stop()
        return acked

    try:
        acked = asyncio.run(asyncio.wait_for(run(), 120))
        assert proxy.dropped > 0
        assert len(acked) == 1000
        _check_exactly_once_in_order(broker.bootstrap, topic, acked)
    finally:
        proxy.close()


def test_idempotent_producer_across_kill(broker):
    topic = f"idem-kill-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, 1)
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 60000,
            "reconnect.backoff.max.ms": 200,
        }
    )
    acked: List[bytes] = []
    failed: List[bytes] = []

    def on_delivery(err, msg):
        (failed if err else acked).append(msg.value())

    for i in range(3000):
        p.produce(topic, value=b"%06d" % i, partition=0, on_delivery=on_delivery)
        if i == 1500:
            p.poll(0)
            broker.kill()
            broker.start()
        if i % 100 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not failed
    _check_exactly_once_in_order(broker.bootstrap, topic, acked)


def test_aiokafka_idempotent_producer_across_kill(broker):
    from aiokafka import AIOKafkaProducer

    topic = f"idem-aio-kill-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, 1)

    async def run():
        p = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=10000,
            retry_backoff_ms=100,
        )
        await p.start()
        acked = []
        try:
            for chunk in range(20):
                futs = [
                    await p.send(topic, value=b"%06d" % (chunk * 50 + i), partition=0)
                    for i in range(50)
                ]
                if chunk == 10:
                    # Crash with batches in flight; the producer retries them.
                    broker.kill()
                    broker.start()
                for i, f in enumerate(futs):
                    await f
                    acked.append(b"%06d" % (chunk * 50 + i))
        finally:
            await p.stop()
        return acked

    acked = asyncio.run(asyncio.wait_for(run(), 120))
    assert len(acked) == 1000
    _check_exactly_once_in_order(broker.bootstrap, topic, acked)
