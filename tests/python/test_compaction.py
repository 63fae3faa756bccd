"""Log compaction (issue 5) with real clients: the latest value per key survives in offset
order, tombstones go after delete.retention.ms, erased values leave no bytes on disk,
kill -9 during compaction leaves a correct log, offsets_for_times stays exact, and keyless
records are refused on compacted topics.

Compaction is made quick: small segments, `log.cleaner.backoff.ms` of 100 ms, a dirty ratio
near 0, and `segment.ms` small so the cleaner rolls the idle active segment."""

import os
import random
import struct
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from conftest import SMALL_SEGMENTS, unique_name
from helpers import DeliveryLog, create_topic, producer

FAST_CLEANER = ("--set", "log.cleaner.backoff.ms=100", *SMALL_SEGMENTS)
COMPACT = {
    "cleanup.policy": "compact",
    "internal.segment.bytes": "4096",
    "segment.ms": "300",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1500",
}


def read_from_start(bootstrap, topic, timeout_s=20.0):
    """Every record of partition 0 from the log start to the end: [(offset, key, value)]."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("cmp"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    got = []
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return got
                raise AssertionError(f"consumer error: {msg.error()}")
            got.append((msg.offset(), msg.key(), msg.value()))
        raise AssertionError(f"no end of partition within {timeout_s}s, got {len(got)}")
    finally:
        c.close()


def produce_keyed(bootstrap, topic, records, **conf):
    """records: [(key, value or None)]; returns their offsets in order."""
    log = DeliveryLog()
    p = producer(bootstrap, **{"linger.ms": 5, **conf})
    offsets = []

    def on_delivery(err, msg):
        log(err, msg)
        if err is None:
            offsets.append(msg.offset())

    for key, value in records:
        p.produce(topic, key=key, value=value, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(30) == 0
    assert not log.failed, log.failed[:3]
    return offsets


def latest_per_key(records_with_offsets, keep_tombstones=True):
    latest = {}
    for offset, key, value in records_with_offsets:
        latest[key] = (offset, key, value)
    out = sorted(latest.values())
    return [r for r in out if keep_tombstones or r[2] is not None]


def wait_for(predicate, timeout_s=30.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        ok, last = predicate()
        if ok:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}"[:2000])


def updates(keys, rounds, tombstoned, tag=b""):
    records = []
    for r in range(rounds):
        for k in range(keys):
            records.append((f"key-{k}".encode(), b"value-%d-%d" % (r, k) + tag))
    records += [(f"key-{k}".encode(), None) for k in range(tombstoned)]
    return records


def test_latest_value_per_key_then_tombstones_vanish(broker_factory):
    b = broker_factory(*FAST_CLEANER)
    topic = unique_name("compact")
    create_topic(b.bootstrap, topic, 1, COMPACT)
    records = updates(keys=40, rounds=25, tombstoned=8)
    offsets = produce_keyed(b.bootstrap, topic, records)
    produced = [(o, k, v) for o, (k, v) in zip(offsets, records)]
    with_tombstones = latest_per_key(produced)
    live = latest_per_key(produced, keep_tombstones=False)
    assert len(live) == 32

    # First the superseded values go (tombstones stay for delete.retention.ms)...
    def compacted():
        got = read_from_start(b.bootstrap, topic)
        return got in (with_tombstones, live), got

    got = wait_for(compacted, what="compaction")
    offs = [o for o, _, _ in got]
    assert offs == sorted(offs)
    # ...then the tombstones.
    wait_for(lambda: ((g := read_from_start(b.bootstrap, topic)) == live, g), what="tombstone removal")
    # Kafka offsets are kept: the end does not move, and a restart changes nothing.
    b.restart()
    assert read_from_start(b.bootstrap, topic) == live
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique_name("wm")})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1] == offsets[-1] + 1
    c.close()


def test_compressed_batches_are_compacted_with_their_codec(broker_factory):
    b = broker_factory(*FAST_CLEANER)
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        topic = unique_name(f"compact-{codec}")
        create_topic(b.bootstrap, topic, 1, COMPACT)
        records = updates(keys=20, rounds=10, tombstoned=0)
        offsets = produce_keyed(b.bootstrap, topic, records, **{"compression.codec": codec, "linger.ms": 20})
        expected = latest_per_key([(o, k, v) for o, (k, v) in zip(offsets, records)])
        wait_for(lambda: ((g := read_from_start(b.bootstrap, topic)) == expected, len(g)), what=codec)


def test_keyless_records_are_refused_on_compacted_topics(broker_factory):
    b = broker_factory()
    topic = unique_name("compact-nokey")
    create_topic(b.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    log = DeliveryLog()
    p = producer(b.bootstrap, **{"linger.ms": 50})
    p.produce(topic, key=b"k", value=b"with key", on_delivery=log)
    p.flush(10)
    p.produce(topic, value=b"no key", on_delivery=log)
    p.produce(topic, key=b"k2", value=b"same batch", on_delivery=log)
    p.flush(10)
    assert [v for v, _, _ in log.acked] == [b"with key"]
    assert len(log.failed) == 2
    assert all(e.code() == KafkaError.INVALID_RECORD for _, e in log.failed)
    # Keyless records stay welcome on delete-policy topics.
    plain = unique_name("plain")
    create_topic(b.bootstrap, plain, 1)
    log = DeliveryLog()
    p.produce(plain, value=b"fine", on_delivery=log)
    p.flush(10)
    assert log.acked and not log.failed


def segment_bytes_on_disk(partition_dir):
    data = b""
    for f in sorted(partition_dir.iterdir()):
        try:
            data += f.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            pass
    return data


def test_right_to_erasure_leaves_no_bytes_on_disk(broker_factory):
    b = broker_factory(*FAST_CLEANER)
    topic = unique_name("erasure")
    create_topic(b.bootstrap, topic, 1, {**COMPACT, "delete.retention.ms": "0"})
    records = []
    for i in range(60):
        records.append((b"customer-4711", b"PII-address-%03d" % i))
        records.append((b"customer-%d" % i, b"other-%d" % i))
    records.append((b"customer-4711", None))
    produce_keyed(b.bootstrap, topic, records, **{"compression.codec": "lz4"})
    part = b.data_dir / f"{topic}-0"

    def erased():
        data = segment_bytes_on_disk(part)
        return (b"PII-address" not in data and b"customer-4711" not in data), len(data)

    # lz4 hides plain bytes inside compressed batches, so check what a reader sees too.
    wait_for(erased, what="erasure on disk")
    got = read_from_start(b.bootstrap, topic)
    assert all(k != b"customer-4711" for _, k, _ in got)
    assert len(got) == 60
    b.kill()
    b.start()
    assert b"PII-address" not in segment_bytes_on_disk(part)
    assert len(read_from_start(b.bootstrap, topic)) == 60


def test_right_to_erasure_uncompressed_bytes(broker_factory):
    """Without compression the values are plain in the files: grep them."""
    b = broker_factory(*FAST_CLEANER)
    topic = unique_name("erasure-plain")
    create_topic(b.bootstrap, topic, 1, {**COMPACT, "delete.retention.ms": "0"})
    records = [(b"customer-99", b"SECRET-%03d" % i) for i in range(50)]
    records += [(b"customer-%d" % i, b"x") for i in range(50)]
    produce_keyed(b.bootstrap, topic, records)
    part = b.data_dir / f"{topic}-0"
    assert b"SECRET-000" in segment_bytes_on_disk(part)
    produce_keyed(b.bootstrap, topic, [(b"customer-99", None)])
    wait_for(lambda: (b"SECRET-" not in (d := segment_bytes_on_disk(part)), len(d)), what="erasure")


def test_kill_9_during_compaction_leaves_a_correct_log(broker_factory):
    seed = int(os.environ.get("KLAMM_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    # The cleaner's I/O limit stretches each round over a second or so, so kills land inside.
    b = broker_factory(*FAST_CLEANER, "--set", "log.cleaner.io.max.bytes.per.second=1500000")
    topic = unique_name("compact-crash")
    create_topic(b.bootstrap, topic, 1, {**COMPACT, "internal.segment.bytes": "65536", "delete.retention.ms": "600000"})
    produced = []
    value = b"v" * 200
    for round_ in range(6):
        records = [(b"key-%d" % rng.randrange(500), value + b"-%d-%d" % (round_, i)) for i in range(2000)]
        offsets = produce_keyed(b.bootstrap, topic, records)
        produced += [(o, k, v) for o, (k, v) in zip(offsets, records)]
        time.sleep(rng.uniform(0.3, 1.5))
        b.kill()
        leftovers = [f.name for f in (b.data_dir / f"{topic}-0").iterdir() if f.name.endswith((".cleaned", ".swap"))]
        print(f"round {round_}: killed with leftovers {leftovers}")
        b.start()
        got = read_from_start(b.bootstrap, topic)
        originals = set(produced)
        assert all(r in originals for r in got), "a record changed or moved"
        assert [o for o, _, _ in got] == sorted(o for o, _, _ in got)
        assert all(r in set(got) for r in latest_per_key(produced)), f"seed={seed}: a latest value is missing"
    expected = latest_per_key(produced)
    wait_for(lambda: ((g := read_from_start(b.bootstrap, topic)) == expected, len(g)), timeout_s=60, what="final compaction")


def test_offsets_for_times_before_and_after_compaction(broker_factory):
    b = broker_factory(*FAST_CLEANER)
    topic = unique_name("compact-times")
    # Compaction starts only once the "before" lookups are done (the policy is switched).
    create_topic(b.bootstrap, topic, 1, {**COMPACT, "cleanup.policy": "delete"})
    base = int(time.time() * 1000) - 100_000
    p = producer(b.bootstrap, **{"linger.ms": 0})
    produced = []
    for i in range(300):
        key = b"key-%d" % (i % 30)
        ts = base + i * 10
        p.produce(topic, key=key, value=b"v%d" % i, timestamp=ts)
        produced.append((i, key, b"v%d" % i, ts))
        if i % 10 == 9:
            p.flush(10)
    assert p.flush(10) == 0

    def lookup(ts_list):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique_name("oft")})
        try:
            # One partition per request: librdkafka does not take the same partition twice.
            return [c.offsets_for_times([TopicPartition(topic, 0, t)], timeout=10)[0].offset for t in ts_list]
        finally:
            c.close()

    probes = [base - 5, base, base + 1, base + 1_234, base + 2_000, base + 2_995, base + 5_000]

    def expected(records):
        return [next((o for o, _, _, ts in records if ts >= t), -1) for t in probes]

    assert lookup(probes) == expected(produced)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(timeout=10)
    survivors_latest = latest_per_key([(o, k, v) for o, k, v, _ in produced])
    kept = {o for o, _, _ in survivors_latest}
    wait_for(lambda: ((g := read_from_start(b.bootstrap, topic)) == survivors_latest, len(g)), what="compaction")
    after = [r for r in produced if r[0] in kept]
    assert lookup(probes) == expected(after)


def test_consumer_offsets_is_compacted_and_commits_survive(broker_factory):
    b = broker_factory(*FAST_CLEANER, "--set", "offsets.topic.num.partitions=1",
                       "--set", "offsets.topic.segment.bytes=4096",
                       "--set", "group.initial.rebalance.delay.ms=0")
    topic = unique_name("commits")
    create_topic(b.bootstrap, topic, 1)
    group = unique_name("g")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        for i in range(1, 301):
            c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
    finally:
        c.close()
    part = b.data_dir / "__consumer_offsets-0"

    def log_bytes():
        return sum(f.stat().st_size for f in part.glob("*.log"))

    # 300 commits of ~100 bytes each: compaction keeps about one per key.
    wait_for(lambda: (log_bytes() < 8_000, log_bytes()), what="__consumer_offsets compaction")
    b.restart()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed[0].offset == 300
    finally:
        c.close()


def control_batches_on_disk(partition_dir):
    """Transaction markers in the partition's .log files (attribute bit 5: control). A
    compaction's `.log.swap` files count too, so a count taken mid-swap is never short."""
    count = 0
    for f in sorted([*partition_dir.glob("*.log"), *partition_dir.glob("*.log.swap")]):
        try:
            data = f.read_bytes()
        except FileNotFoundError:  # renamed or removed by the cleaner meanwhile
            continue
        pos = 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            if length <= 0:
                break
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            count += bool(attributes & 0x20)
            pos += 12 + length
    return count


def test_transaction_markers_go_once_their_data_is_compacted_away(broker_factory):
    from test_transactions import read_all, txn_producer

    b = broker_factory(*FAST_CLEANER)
    topic = unique_name("compact-txn")
    create_topic(b.bootstrap, topic, 1, COMPACT)
    p = txn_producer(b.bootstrap, unique_name("txn"))
    committed = {}
    for i in range(30):
        key, value = b"k%d" % (i % 3), b"v%d" % i
        p.begin_transaction()
        p.produce(topic, key=key, value=value)
        if i % 5 == 3:  # the last one (29) commits: see below
            p.abort_transaction(10)
        else:
            p.commit_transaction(10)
            committed[key] = value
    partition_dir = b.data_dir / f"{topic}-0"
    # Markers are written just after each commit returns (the last few may still be on
    # their way); none can go before delete.retention.ms has passed.
    assert control_batches_on_disk(partition_dir) >= 20
    # Left: the COMMIT markers of the three transactions holding each key's latest value.
    # (Had the last transaction aborted, its marker would stay too: the producer's last
    # batch is kept, emptied, and so is the marker after it.)
    def settled_count():
        # A count racing the cleaner's renames can be off: take one two reads agree on.
        while True:
            first = control_batches_on_disk(partition_dir)
            time.sleep(0.05)
            if control_batches_on_disk(partition_dir) == first:
                return first

    wait_for(lambda: ((n := settled_count()) <= 3, n), what="marker removal")
    # And at rest.
    b.stop()
    assert control_batches_on_disk(partition_dir) == 3
    b.start()
    for isolation in ("read_committed", "read_uncommitted"):
        got = read_all(b.bootstrap, topic, 1, isolation, idle_s=1.0)
        assert sorted((m.key(), m.value()) for m in got) == sorted(committed.items()), isolation
        offsets = [m.offset() for m in got]
        assert offsets == sorted(offsets)
    b.restart()
    got = read_all(b.bootstrap, topic, 1, "read_committed", idle_s=1.0)
    assert sorted((m.key(), m.value()) for m in got) == sorted(committed.items())
