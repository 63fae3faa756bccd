"""aiokafka (pure Python, asyncio) against a live Klamm broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from conftest import unique_name
from helpers import create_topic

# Kafka API keys whose negotiated versions we report on failure.
PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3


def run(coro, timeout_s: float = 90.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=20000,
    )


def new_consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=20000,
    )


async def read_exactly(consumer: AIOKafkaConsumer, count: int, timeout_s: float = 30.0):
    out = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(out) < count:
        remaining = deadline - loop.time()
        assert remaining > 0, f"timed out: consumed {len(out)} of {count}"
        batches = await consumer.getmany(timeout_ms=500, max_records=1000)
        for _, msgs in sorted(batches.items()):
            out.extend(msgs)
    # Nothing beyond the expected records.
    extra = await consumer.getmany(timeout_ms=300)
    out.extend(m for msgs in extra.values() for m in msgs)
    return out


def test_aiokafka_produce_and_consume_in_order(bootstrap):
    topic = unique_name("aio")
    n_sequential, n_pipelined = 100, 900

    async def scenario():
        producer = new_producer(bootstrap)
        await producer.start()
        sent = []
        try:
            # One at a time, each acknowledged (acks=all ⇒ fsync'd) before the next.
            for i in range(n_sequential):
                md = await producer.send_and_wait(
                    topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0,
                    headers=[("i", str(i).encode()), ("dup", b"a"), ("dup", b"b")],
                )
                sent.append((md.partition, md.offset))
            # Many in flight at once.
            futures = [
                await producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0,
                                    headers=[("i", str(i).encode()), ("dup", b"a"), ("dup", b"b")])
                for i in range(n_sequential, n_sequential + n_pipelined)
            ]
            for md in await asyncio.gather(*futures):
                sent.append((md.partition, md.offset))
        finally:
            await producer.stop()

        total = n_sequential + n_pipelined
        assert sent == [(0, i) for i in range(total)], "acknowledged offsets not contiguous from 0"

        consumer = new_consumer(bootstrap)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            msgs = await read_exactly(consumer, total)
            end = await consumer.end_offsets([tp])
            begin = await consumer.beginning_offsets([tp])
        finally:
            await consumer.stop()

        assert len(msgs) == total
        for i, m in enumerate(msgs):
            assert (m.partition, m.offset, m.key, m.value) == (0, i, f"k{i}".encode(), f"v{i}".encode())
            assert list(m.headers) == [("i", str(i).encode()), ("dup", b"a"), ("dup", b"b")], m.headers
        assert end == {tp: total}
        assert begin == {tp: 0}

    run(scenario())


def test_aiokafka_reads_records_from_librdkafka_across_partitions(bootstrap):
    """Records written by another client (librdkafka, lz4) read back by aiokafka."""
    from helpers import producer as rd_producer

    topic = unique_name("aio-mixed")
    create_topic(bootstrap, topic, partitions=3)
    p = rd_producer(bootstrap, **{"compression.type": "lz4", "linger.ms": 10})
    for i in range(300):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 3, timestamp=1_600_000_000_000 + i)
    assert p.flush(30) == 0

    async def scenario():
        consumer = new_consumer(bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, part) for part in range(3)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            return await read_exactly(consumer, 300)
        finally:
            await consumer.stop()

    msgs = run(scenario())
    assert len(msgs) == 300
    for part in range(3):
        mine = [m for m in msgs if m.partition == part]
        want = [i for i in range(300) if i % 3 == part]
        assert [m.offset for m in mine] == list(range(len(want)))
        assert [(m.key, m.value, m.timestamp) for m in mine] == [
            (f"k{i}".encode(), f"v{i}".encode(), 1_600_000_000_000 + i) for i in want
        ]


def test_aiokafka_metadata_and_version_negotiation(broker):
    topic = unique_name("aio-meta")
    create_topic(broker.bootstrap, topic, partitions=3)

    async def scenario():
        producer = new_producer(broker.bootstrap)
        await producer.start()
        try:
            client = producer.client
            await client.force_metadata_update()
            cluster = client.cluster
            brokers = [(b.nodeId, b.host, b.port) for b in cluster.brokers()]
            partitions = cluster.partitions_for_topic(topic)
            leaders = {p: cluster.leader_for_partition(TopicPartition(topic, p)) for p in partitions or ()}
            conn = await client._get_conn(brokers[0][0]) if brokers else None
            versions = dict(conn._versions) if conn is not None else {}
            return brokers, partitions, leaders, versions
        finally:
            await producer.stop()

    brokers, partitions, leaders, versions = run(scenario())
    assert len(brokers) == 1, brokers
    node_id, host, port = brokers[0]
    assert (host, port) == ("127.0.0.1", broker.port)
    assert partitions == {0, 1, 2}
    assert leaders == {0: node_id, 1: node_id, 2: node_id}
    # aiokafka picks the highest version it shares with the broker per API;
    # the ranges below are what the design promises to advertise.
    assert versions.get(METADATA, (99, -1))[0] == 0, f"Metadata range {versions.get(METADATA)}"
    assert versions.get(PRODUCE, (0, -1))[1] >= 8, f"Produce range {versions.get(PRODUCE)}"
    assert versions.get(FETCH, (0, -1))[1] >= 11, f"Fetch range {versions.get(FETCH)}"
    assert LIST_OFFSETS in versions
