#!/usr/bin/env python3
"""Crash-recovery soak: kill -9 the broker at random moments under load, then check.

An acks=all idempotent producer (confluent-kafka / librdkafka) and a consumer group that
commits as it reads run against one `klamm serve`. Each cycle lets them work for a random
time, SIGKILLs the broker, waits a random moment and restarts it on the same data dir.
At the end it checks, and exits non-zero on any violation:

- every acknowledged record is in the topic exactly once, at the offset it was
  acknowledged with; no record (acknowledged or not) appears twice;
- offsets are contiguous from the log start (no transactions here, so no control batches);
- per partition the records of the single producer are in the order they were sent;
- the group's committed offsets never moved backwards across restarts.

Seeded and reproducible in its choices (the broker's and librdkafka's timing is not): the
seed is printed first; rerun with `--seed`.

    .venv/bin/python tests/python/soak.py --cycles 500          # the long version
    .venv/bin/python tests/python/soak.py --cycles 20 --seed 7  # what CI runs (test_soak.py)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

from conftest import Broker  # noqa: E402
from helpers import create_topic  # noqa: E402

TOPIC = "soak"
GROUP = "soak-group"
PARTITIONS = 3
COMMIT_EVERY_RECORDS = 200


def _debug_conf(var: str = "KLAMM_SOAK_DEBUG") -> Dict[str, object]:
    """`KLAMM_SOAK_DEBUG=eos,msg` turns on librdkafka's debug contexts for the producer,
    `KLAMM_SOAK_CONSUMER_DEBUG=cgrp` for the consumer."""
    contexts = os.environ.get(var)
    return {"debug": contexts, "log_level": 7} if contexts else {}


class Soak:
    def __init__(self, broker: Broker, seed: int, record_bytes: int, rate: int, log=print):
        self.broker = broker
        self.rate = rate
        self.rng = random.Random(seed)
        self.record_bytes = record_bytes
        self.log = log
        self.next_seq = 0
        # seq -> (partition, offset) for every acknowledged record
        self.acked: Dict[int, Tuple[int, int]] = {}
        self.failed = 0
        # partition -> highest committed offset the broker acknowledged
        self.committed: Dict[int, int] = {}
        self.violations: List[str] = []
        self.consumed = 0
        self.producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
                "message.timeout.ms": 60_000,
                # librdkafka's default (rebootstrap, KIP-899) reconnects after a whole-cluster
                # outage only on its 1 s timer and asks for metadata one tick later, so a
                # broker killed again within ~2 s never sees a produce: acks paused for many
                # cycles. Keeping the known broker reconnects within reconnect.backoff.ms and
                # keeps records in flight at every kill.
                "metadata.recovery.strategy": "none",
                "retry.backoff.ms": 50,
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
                # connection-refused noise while the broker is down is expected here
                "log_level": 2,
                **_debug_conf(),
            }
        )
        self.consumer = self._new_consumer()

    def _new_consumer(self) -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": self.broker.bootstrap,
                "group.id": GROUP,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "metadata.recovery.strategy": "none",
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
                "log_level": 2,
                **_debug_conf("KLAMM_SOAK_CONSUMER_DEBUG"),
            }
        )
        c.subscribe([TOPIC])
        return c

    def _on_delivery(self, err, msg) -> None:
        seq = int(msg.key())
        if err is None:
            self.acked[seq] = (msg.partition(), msg.offset())
        else:
            self.failed += 1

    def _value(self, seq: int) -> bytes:
        body = f"{seq}:".encode()
        return body + b"x" * max(0, self.record_bytes - len(body))

    def work(self, duration_s: float) -> None:
        """Produce and consume (committing now and then) for `duration_s`."""
        started = time.monotonic()
        deadline = started + duration_s
        sent_at_start = self.next_seq
        since_commit = 0
        while time.monotonic() < deadline:
            allowed = int((time.monotonic() - started) * self.rate) + 1
            for _ in range(min(50, allowed - (self.next_seq - sent_at_start))):
                seq = self.next_seq
                try:
                    self.producer.produce(
                        TOPIC,
                        key=str(seq).encode(),
                        value=self._value(seq),
                        partition=seq % PARTITIONS,
                        on_delivery=self._on_delivery,
                    )
                except BufferError:
                    break
                self.next_seq += 1
            self.producer.poll(0)
            msg = self.consumer.poll(0.005)
            if msg is not None and msg.error() is None:
                self.consumed += 1
                since_commit += 1
                if since_commit >= COMMIT_EVERY_RECORDS:
                    since_commit = 0
                    self._commit()

    def _commit(self) -> None:
        try:
            result = self.consumer.commit(asynchronous=False)
        except Exception:  # broker down or rebalancing: not acknowledged, not counted
            return
        for tp in result or []:
            if tp.error is None and tp.offset >= 0:
                self.committed[tp.partition] = max(self.committed.get(tp.partition, -1), tp.offset)

    def check_committed(self, when: str) -> None:
        """Committed offsets read back from the broker are never below what it acknowledged."""
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        deadline = time.monotonic() + 30
        while True:
            try:
                got = self.consumer.committed(tps, timeout=10)
                break
            except Exception as e:  # coordinator loading right after a restart
                if time.monotonic() > deadline:
                    self.violations.append(f"{when}: committed() kept failing: {e}")
                    return
                time.sleep(0.2)
        for tp in got:
            want = self.committed.get(tp.partition, -1)
            if want >= 0 and tp.offset < want:
                self.violations.append(
                    f"{when}: committed offset of partition {tp.partition} moved backwards: "
                    f"{want} acknowledged, {tp.offset} read back"
                )

    def cycle(self, n: int) -> None:
        work_s = self.rng.uniform(0.1, 1.5)
        down_s = self.rng.uniform(0.0, 0.5)
        self.work(work_s)
        self.broker.kill()
        self.producer.poll(0)
        time.sleep(down_s)
        self.broker.start()
        self.check_committed(f"after restart {n}")
        self.log(
            f"cycle {n}: worked {work_s:.2f}s, down {down_s:.2f}s; sent {self.next_seq}, "
            f"acked {len(self.acked)}, consumed {self.consumed}, committed {self.committed}"
        )

    def finish(self) -> None:
        self.work(0.5)
        remaining = self.producer.flush(90)
        if remaining:
            self.violations.append(f"{remaining} records still undelivered after 90 s")
        self._commit()
        self.check_committed("at the end")
        self.consumer.close()

    def verify_log(self) -> Dict[str, int]:
        """Read the whole topic back and check every promise."""
        reader = Consumer(
            {
                "bootstrap.servers": self.broker.bootstrap,
                "group.id": "soak-verifier",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        ends = {}
        for p in range(PARTITIONS):
            low, high = reader.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
            ends[p] = (low, high)
        reader.assign([TopicPartition(TOPIC, p, ends[p][0]) for p in range(PARTITIONS)])
        seen: Dict[int, Tuple[int, int]] = {}
        last_offset = {p: ends[p][0] - 1 for p in range(PARTITIONS)}
        last_seq = {p: -1 for p in range(PARTITIONS)}
        remaining = {p for p in range(PARTITIONS) if ends[p][1] > ends[p][0]}
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    self.violations.append(f"read error: {msg.error()}")
                continue
            p, off = msg.partition(), msg.offset()
            if off != last_offset[p] + 1:
                self.violations.append(f"partition {p}: offset gap {last_offset[p]} -> {off}")
            last_offset[p] = off
            seq = int(msg.key())
            if msg.value() != self._value(seq):
                self.violations.append(f"partition {p} offset {off}: wrong value for seq {seq}")
            if seq in seen:
                self.violations.append(
                    f"seq {seq} duplicated: at {seen[seq]} and at {(p, off)}"
                )
            seen[seq] = (p, off)
            if seq <= last_seq[p]:
                self.violations.append(f"partition {p}: seq {seq} after {last_seq[p]} (reordered)")
            last_seq[p] = seq
            if off + 1 >= ends[p][1]:
                remaining.discard(p)
        reader.close()
        if remaining:
            self.violations.append(f"could not read partitions {sorted(remaining)} to their end")
        lost = [s for s, where in self.acked.items() if seen.get(s) != where]
        for s in lost[:10]:
            self.violations.append(
                f"acknowledged seq {s} at {self.acked[s]} but found at {seen.get(s)}"
            )
        if len(lost) > 10:
            self.violations.append(f"... {len(lost) - 10} more acknowledged records lost or moved")
        return {
            "sent": self.next_seq,
            "acked": len(self.acked),
            "failed": self.failed,
            "in_log": len(seen),
            "consumed_by_group": self.consumed,
        }


def run(cycles: int, seed: int, data_dir: Path, log_path: Path, record_bytes: int = 100,
        rate: int = 20_000, extra_args: Optional[List[str]] = None, log=print) -> Tuple[Dict[str, int], List[str]]:
    # Kafka's default group.initial.rebalance.delay.ms (3 s) holds a new group's first
    # join longer than most cycles keep the broker up: the group would rarely form, and
    # commits (one of the things checked) would rarely happen.
    args = ["--set", "group.initial.rebalance.delay.ms=0"] + list(extra_args or [])
    broker = Broker(data_dir, log_path, args)
    broker.start()
    try:
        create_topic(broker.bootstrap, TOPIC, PARTITIONS)
        soak = Soak(broker, seed, record_bytes, rate, log)
        started = time.monotonic()
        for n in range(1, cycles + 1):
            soak.cycle(n)
        soak.finish()
        stats = soak.verify_log()
        stats["cycles"] = cycles
        stats["seconds"] = round(time.monotonic() - started)
        broker.stop()
        return stats, soak.violations
    finally:
        broker.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--record-bytes", type=int, default=100)
    ap.add_argument("--rate", type=int, default=20_000, help="records per second to send")
    ap.add_argument("--keep", action="store_true", help="keep the data dir and broker log")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 31)
    print(f"soak: seed {seed} (rerun with --seed {seed}), {a.cycles} cycles", flush=True)
    work = Path(tempfile.mkdtemp(prefix="klamm-soak-"))
    stats, violations = run(a.cycles, seed, work / "data", work / "broker.log", a.record_bytes,
                            a.rate, log=lambda s: print(s, flush=True))
    print(f"soak: {stats}")
    for v in violations:
        print(f"VIOLATION: {v}")
    print(f"soak: seed {seed}: {len(violations)} violations")
    if a.keep or violations:
        print(f"soak: data and broker log kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
