"""Consumer groups (Kafka's classic protocol) against a live Klamm broker.

Real clients only: confluent-kafka (librdkafka) for the group scenarios and the admin API,
aiokafka and kafka-python for commit-and-resume. Each test starts its own broker with a
short initial rebalance delay and a low minimum session timeout, so rebalances take
seconds, not tens of seconds.

Two figures are measured, printed and written to /tmp/klamm_group_figures.json:
  * `dead_member_reassign_s`: SIGKILL of a member → its partitions owned by the survivor
    (bounded below by the member's session timeout, 6 s here);
  * `rebalance_10_members_s`: the 10th subscribe of a 10-member group → every member
    holds a partition.

Set KLAMM_GROUP_DEBUG=cgrp,protocol for librdkafka debug logs on stderr, and run with
RUST_LOG=debug for the broker's (it lands in the broker log attached to failures).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from conftest import unique_name
from helpers import ADMIN_TIMEOUT_S, DeliveryLog, admin, create_topic, high_watermarks, producer

GROUP_BROKER_ARGS = (
    "--set", "group.initial.rebalance.delay.ms=0",
    "--set", "group.min.session.timeout.ms=1000",
    "--set", "offsets.topic.num.partitions=5",
)
FIGURES_PATH = Path("/tmp/klamm_group_figures.json")
SESSION_MS = 6000
HEARTBEAT_MS = 1000
DEBUG = os.environ.get("KLAMM_GROUP_DEBUG")


# ---------------------------------------------------------------------------------------
# Plumbing
# ---------------------------------------------------------------------------------------


@pytest.fixture
def gbroker(broker_factory):
    """A broker tuned for group tests (the shared fixture passes extra --set args through)."""
    return broker_factory(*GROUP_BROKER_ARGS)


def record_figure(name: str, value: float, **context) -> None:
    print(f"FIGURE {name} = {value:.3f} s {context or ''}", flush=True)
    try:
        figures = json.loads(FIGURES_PATH.read_text())
    except (OSError, ValueError):
        figures = {}
    figures[name] = {"seconds": round(value, 3), **context, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    FIGURES_PATH.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def wait_for(cond: Callable[[], bool], timeout_s: float, what: Callable[[], str] | str,
             stable_s: float = 0.0, step_s: float = 0.02) -> float:
    """Waits until `cond()` holds (continuously for `stable_s`); returns the time until it
    first held in the run that lasted. Fails with `what` on timeout."""
    start = time.monotonic()
    deadline = start + timeout_s
    held_since: Optional[float] = None
    while True:
        now = time.monotonic()
        if cond():
            if held_since is None:
                held_since = now
            if now - held_since >= stable_s:
                return held_since - start
        else:
            held_since = None
        if now > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout_s}s waiting for: {detail}")
        time.sleep(step_s)


def group_conf(bootstrap: str, group: str, name: str, **overrides) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "topic.metadata.refresh.interval.ms": 5000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
    }
    if DEBUG:
        conf["debug"] = DEBUG
    conf.update(overrides)
    return conf


def produce(bootstrap: str, topic: str, values: Iterable[Tuple[int, str]]) -> Dict[int, int]:
    """Produces (partition, value) pairs keyed by value; returns acked count per partition."""
    dr = DeliveryLog()
    p = producer(bootstrap, **{"enable.idempotence": False, "linger.ms": 5})
    n = 0
    for part, value in values:
        p.produce(topic, key=f"key-{value}".encode(), value=value.encode(), partition=part, on_delivery=dr)
        n += 1
        if n % 200 == 0:
            p.poll(0)
    left = p.flush(30)
    assert left == 0 and not dr.failed, f"produce failed: {left} undelivered, {dr.failed[:5]}"
    assert len(dr.acked) == n
    counts: Dict[int, int] = {}
    for _, part, _ in dr.acked:
        counts[part] = counts.get(part, 0) + 1
    return counts


class Member:
    """A confluent-kafka group consumer polled by its own thread.

    The thread processes each record (appends it to `records`) and then commits it
    synchronously (`commit(message=..., asynchronous=False)`), so a record is committed only
    after it was processed. Rebalance callbacks are logged in `events`.
    """

    def __init__(self, bootstrap: str, group: str, topic: str, name: str,
                 commit: bool = True, **overrides) -> None:
        self.name = name
        self.topic = topic
        self.commit_each = commit
        self.consumer = Consumer(group_conf(bootstrap, group, name, **overrides))
        self.lock = threading.Lock()
        self.assignment: FrozenSet[int] = frozenset()
        self.records: List[Tuple[int, int, str]] = []  # (partition, offset, value)
        self.committed: Dict[int, int] = {}  # partition → next offset, confirmed by the broker
        self.commit_errors: List[str] = []
        self.errors: List[str] = []
        self.events: List[Tuple[str, FrozenSet[int], float]] = []  # (assign|revoke|lost, parts, t)
        self.member_id: Optional[str] = None
        self.subscribed_at: Optional[float] = None
        self.first_assignment_at: Optional[float] = None
        self._stop = threading.Event()
        self._leave = True
        self.thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)
        self.exc: Optional[BaseException] = None

    def _on_assign(self, consumer, partitions):
        self.events.append(("assign", frozenset(tp.partition for tp in partitions), time.monotonic()))

    def _on_revoke(self, consumer, partitions):
        self.events.append(("revoke", frozenset(tp.partition for tp in partitions), time.monotonic()))

    def _on_lost(self, consumer, partitions):
        self.events.append(("lost", frozenset(tp.partition for tp in partitions), time.monotonic()))

    def start(self) -> "Member":
        self.consumer.subscribe([self.topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.subscribed_at = time.monotonic()
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msg = self.consumer.poll(0.05)
                if msg is not None:
                    if msg.error():
                        self.errors.append(str(msg.error()))
                    else:
                        with self.lock:
                            self.records.append((msg.partition(), msg.offset(), msg.value().decode()))
                        if self.commit_each:
                            try:
                                self.consumer.commit(message=msg, asynchronous=False)
                                with self.lock:
                                    self.committed[msg.partition()] = msg.offset() + 1
                            except KafkaException as e:
                                self.commit_errors.append(f"p{msg.partition()}@{msg.offset()}: {e}")
                parts = frozenset(tp.partition for tp in self.consumer.assignment())
                if parts and self.first_assignment_at is None:
                    self.first_assignment_at = time.monotonic()
                with self.lock:
                    self.assignment = parts
                if self.member_id is None:
                    self.member_id = self.consumer.memberid() or None
        except BaseException as e:  # reported by stop()
            self.exc = e
        finally:
            with self.lock:
                self.assignment = frozenset()
            if self._leave:
                self.consumer.close()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stops polling and closes the consumer (LeaveGroup, unless static)."""
        self._stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"{self.name}: poll thread did not stop"
        if self.exc is not None:
            raise AssertionError(f"{self.name}: poll thread failed: {self.exc!r}")

    def snapshot(self) -> FrozenSet[int]:
        with self.lock:
            return self.assignment

    def values(self) -> List[str]:
        with self.lock:
            return [v for _, _, v in self.records]


class SubprocessMember:
    """A group consumer in a child process, so it can die without leaving (SIGKILL).

    Same attributes as `Member`, fed from the JSON lines the child prints.
    """

    SCRIPT = r"""
import json, sys
from confluent_kafka import Consumer, KafkaException
conf, topic = json.loads(sys.argv[1]), sys.argv[2]
def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()
c = Consumer(conf)
c.subscribe([topic])
out(ev="subscribed")
last = None
while True:
    msg = c.poll(0.05)
    if msg is not None:
        if msg.error():
            out(ev="error", err=str(msg.error()))
        else:
            out(ev="rec", p=msg.partition(), o=msg.offset(), v=msg.value().decode())
            try:
                c.commit(message=msg, asynchronous=False)
                out(ev="committed", p=msg.partition(), o=msg.offset() + 1)
            except KafkaException as e:
                out(ev="commit_error", err="p%d@%d: %s" % (msg.partition(), msg.offset(), e))
    parts = sorted(tp.partition for tp in c.assignment())
    if parts != last:
        out(ev="assignment", parts=parts, member_id=c.memberid())
        last = parts
"""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, workdir: Path, **overrides):
        self.name = name
        script = workdir / "group_member.py"
        script.write_text(self.SCRIPT)
        conf = group_conf(bootstrap, group, name, **overrides)
        self.lock = threading.Lock()
        self.assignment: FrozenSet[int] = frozenset()
        self.records: List[Tuple[int, int, str]] = []
        self.committed: Dict[int, int] = {}
        self.commit_errors: List[str] = []
        self.errors: List[str] = []
        self.member_id: Optional[str] = None
        self.subscribed = threading.Event()
        self.stderr_path = workdir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(conf), topic],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        self.reader = threading.Thread(target=self._read, name=f"reader-{name}", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                kind = ev["ev"]
                if kind == "rec":
                    self.records.append((ev["p"], ev["o"], ev["v"]))
                elif kind == "committed":
                    self.committed[ev["p"]] = ev["o"]
                elif kind == "commit_error":
                    self.commit_errors.append(ev["err"])
                elif kind == "error":
                    self.errors.append(ev["err"])
                elif kind == "assignment":
                    self.assignment = frozenset(ev["parts"])
                    self.member_id = ev.get("member_id") or self.member_id
                elif kind == "subscribed":
                    self.subscribed.set()

    def snapshot(self) -> FrozenSet[int]:
        with self.lock:
            return self.assignment

    def values(self) -> List[str]:
        with self.lock:
            return [v for _, _, v in self.records]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.reader.join(5)
        with self.lock:
            self.assignment = frozenset()

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()

    def stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def ownership(members) -> str:
    return ", ".join(f"{m.name}={sorted(m.snapshot())}" for m in members)


def partitioned(members, partitions: int) -> bool:
    """Every partition owned by exactly one of `members`, and each member owns some."""
    owned = [m.snapshot() for m in members]
    return (all(owned)
            and sum(len(o) for o in owned) == partitions
            and frozenset().union(*owned) == frozenset(range(partitions)))


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> Dict[int, int]:
    """Committed offsets via the admin API (OffsetFetch); -1001 where none."""
    client = admin(bootstrap)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = client.list_consumer_group_offsets([req], request_timeout=ADMIN_TIMEOUT_S)[group].result(
        timeout=ADMIN_TIMEOUT_S)
    out = {}
    for tp in res.topic_partitions:
        assert tp.error is None, f"OffsetFetch {tp}: {tp.error}"
        out[tp.partition] = tp.offset
    return out


def describe_group(bootstrap: str, group: str):
    client = admin(bootstrap)
    return client.describe_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)[group].result(
        timeout=ADMIN_TIMEOUT_S)


def consume_all_values(members) -> List[str]:
    out: List[str] = []
    for m in members:
        out.extend(m.values())
    return out


# ---------------------------------------------------------------------------------------
# 1. Three members: balanced assignment, leave, death, every record once
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_three_members_leave_and_death_reassign_and_every_record_consumed_once(gbroker, tmp_path):
    bootstrap = gbroker.bootstrap
    topic, group, parts = unique_name("grp3"), unique_name("g3"), 6
    create_topic(bootstrap, topic, partitions=parts)

    a = Member(bootstrap, group, topic, "A").start()
    b = Member(bootstrap, group, topic, "B").start()
    c = SubprocessMember(bootstrap, group, topic, "C", tmp_path)
    members_all = [a, b, c]
    try:
        t0 = time.monotonic()
        wait_for(lambda: partitioned([a, b, c], parts), 30,
                 lambda: f"3 members to split {parts} partitions: {ownership(members_all)}; "
                         f"C stderr: {c.stderr_tail()}", stable_s=1.0)
        print(f"3 members settled after {time.monotonic() - t0:.2f}s: {ownership(members_all)}", flush=True)
        assert sorted(len(m.snapshot()) for m in members_all) == [2, 2, 2], ownership(members_all)

        # The broker's view (DescribeGroups) agrees with the clients'.
        desc = describe_group(bootstrap, group)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert len(desc.members) == 3, desc.members
        broker_view = sorted(sorted(tp.partition for tp in m.assignment.topic_partitions) for m in desc.members)
        assert broker_view == sorted(sorted(m.snapshot()) for m in members_all), (broker_view, ownership(members_all))

        sent: List[str] = []
        expected_hw = {p: 0 for p in range(parts)}

        def produce_phase(tag: str, n: int) -> None:
            vals = [(i % parts, f"{tag}-{i}") for i in range(n)]
            for p_, cnt in produce(bootstrap, topic, vals).items():
                expected_hw[p_] += cnt
            sent.extend(v for _, v in vals)

        def all_consumed_and_committed(live) -> Callable[[], bool]:
            def check() -> bool:
                got = set(consume_all_values(members_all))
                if not set(sent) <= got:
                    return False
                committed: Dict[int, int] = {}
                for m in members_all:
                    with m.lock:
                        for p_, o in m.committed.items():
                            committed[p_] = max(committed.get(p_, 0), o)
                return all(committed.get(p_, 0) == hw for p_, hw in expected_hw.items() if hw)
            return check

        def progress() -> str:
            got = set(consume_all_values(members_all))
            missing = sorted(set(sent) - got)
            return (f"all {len(sent)} records consumed and committed; missing {len(missing)} "
                    f"(e.g. {missing[:5]}); {ownership(members_all)}; commit errors "
                    f"{[m.commit_errors for m in members_all]}; C stderr: {c.stderr_tail()[-1500:]}")

        # Phase 1: all three consume.
        produce_phase("one", 300)
        wait_for(all_consumed_and_committed(members_all), 30, progress)
        for m in members_all:
            assert m.values(), f"member {m.name} consumed nothing in phase 1: {ownership(members_all)}"

        # Phase 2: A leaves cleanly (close → LeaveGroup); B and C take its partitions.
        a_parts = a.snapshot()
        t_leave = time.monotonic()
        a.stop()
        leave_s = time.monotonic() - t_leave
        moved = wait_for(lambda: partitioned([b, c], parts), 30,
                         lambda: f"B and C to take A's {sorted(a_parts)}: {ownership([b, c])}", stable_s=0.5)
        leave_reassign_s = leave_s + moved
        print(f"A's close took {leave_s:.2f}s; its partitions owned by B/C {leave_reassign_s:.2f}s after "
              f"close started: {ownership([b, c])}", flush=True)
        produce_phase("two", 150)
        wait_for(all_consumed_and_committed([b, c]), 30, progress)

        # Phase 3: C dies without leaving; its partitions move to B after its session timeout.
        c_parts = c.snapshot()
        assert c_parts, "C owns nothing before the kill"
        t_kill = time.monotonic()
        c.kill()
        # Records produced while C is dead: those on C's partitions wait for the reassignment.
        produce_phase("three", 150)
        w0 = time.monotonic()
        held = wait_for(lambda: b.snapshot() == frozenset(range(parts)), 30,
                        lambda: f"B to own all partitions after C died: {ownership([b])}")
        death_s = (w0 - t_kill) + held
        print(f"C (owning {sorted(c_parts)}) SIGKILLed; B owns all {parts} partitions {death_s:.2f}s later "
              f"(session.timeout.ms={SESSION_MS}, heartbeat.interval.ms={HEARTBEAT_MS})", flush=True)
        record_figure("dead_member_reassign_s", death_s, session_timeout_ms=SESSION_MS,
                      heartbeat_interval_ms=HEARTBEAT_MS, partitions_moved=len(c_parts))
        record_figure("left_member_reassign_s", leave_reassign_s, partitions_moved=len(a_parts))
        # The session is measured from C's last heartbeat (at most one interval before the kill).
        assert death_s >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 0.5, \
            f"C's partitions moved {death_s:.2f}s after its death: before its session could expire"
        assert death_s <= SESSION_MS / 1000 + 8, f"reassignment took {death_s:.2f}s"
        wait_for(all_consumed_and_committed([b]), 30, progress)

        # Every record exactly once across the group (each was committed right after it was
        # processed, and no record was produced during a rebalance caused by a live member).
        got = consume_all_values(members_all)
        dupes = sorted({v for v in got if got.count(v) > 1})
        assert not dupes, (f"{len(dupes)} records consumed twice, e.g. {dupes[:10]}; commit errors: "
                           f"{[m.commit_errors for m in members_all]}")
        assert sorted(got) == sorted(sent), f"consumed {len(got)} records, sent {len(sent)}"
        # Each member saw its records in offset order, on partitions it owned.
        for m in members_all:
            per_part: Dict[int, List[int]] = {}
            for p_, o, _ in m.records:
                per_part.setdefault(p_, []).append(o)
            for p_, offs in per_part.items():
                assert offs == sorted(offs), f"{m.name} read p{p_} out of order: {offs[:20]}"
        # Committed offsets (OffsetFetch through the admin API) are exactly the log ends.
        hw = {p_: hi for p_, (_, hi) in high_watermarks(bootstrap, topic, range(parts)).items()}
        assert hw == expected_hw, (hw, expected_hw)
        assert committed_offsets(bootstrap, group, topic, parts) == hw
        assert not b.errors and not c.errors, (b.errors, c.errors)
    finally:
        c.cleanup()
        for m in (a, b):
            if m.thread.is_alive():
                m.stop()


# ---------------------------------------------------------------------------------------
# 2. cooperative-sticky: a joining member takes partitions without a full revoke
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_cooperative_sticky_second_member_moves_only_some_partitions(gbroker):
    bootstrap = gbroker.bootstrap
    topic, group, parts = unique_name("coop"), unique_name("gcoop"), 6
    create_topic(bootstrap, topic, partitions=parts)
    coop = {"partition.assignment.strategy": "cooperative-sticky"}

    first = Member(bootstrap, group, topic, "first", **coop).start()
    second = None
    try:
        wait_for(lambda: first.snapshot() == frozenset(range(parts)), 30,
                 lambda: f"first member to own all partitions: {ownership([first])}", stable_s=0.5)
        produce(bootstrap, topic, [(i % parts, f"before-{i}") for i in range(60)])
        wait_for(lambda: len(first.values()) == 60, 20, lambda: f"60 records, got {len(first.values())}")
        events_before = list(first.events)
        assert [(k, sorted(p)) for k, p, _ in events_before if p] == [("assign", list(range(parts)))], \
            events_before

        second = Member(bootstrap, group, topic, "second", **coop).start()
        wait_for(lambda: partitioned([first, second], parts), 30,
                 lambda: f"both members to own partitions: {ownership([first, second])}", stable_s=1.5)
        kept, moved = first.snapshot(), second.snapshot()
        print(f"cooperative: first kept {sorted(kept)}, second got {sorted(moved)}", flush=True)
        assert len(kept) == 3 and len(moved) == 3, ownership([first, second])

        new_events = [(k, p) for k, p, _ in first.events[len(events_before):] if p]
        revoked = frozenset().union(*[p for k, p in new_events if k == "revoke"]) if new_events else frozenset()
        assert not [e for e in new_events if e[0] == "lost"], f"first member lost partitions: {new_events}"
        assert revoked == moved, (
            f"first member revoked {sorted(revoked)} but only {sorted(moved)} moved; "
            f"events since second joined: {[(k, sorted(p)) for k, p in new_events]}")
        assert not [e for e in new_events if e[0] == "revoke" and e[1] == frozenset(range(parts))], \
            f"full (eager) revoke seen: {new_events}"
        assert not [e for e in new_events if e[0] == "assign"], \
            f"first member was re-assigned partitions it kept (not incremental): {new_events}"
        assert [(k, sorted(p)) for k, p, _ in second.events if p] == [("assign", sorted(moved))], second.events

        # Records keep flowing to whoever owns each partition, each once.
        produce(bootstrap, topic, [(i % parts, f"after-{i}") for i in range(60)])
        wait_for(lambda: len(first.values()) + len(second.values()) == 120, 20,
                 lambda: f"120 records, got {len(first.values()) + len(second.values())}")
        time.sleep(0.5)
        got = first.values() + second.values()
        assert len(got) == len(set(got)) == 120, f"{len(got)} records, {len(set(got))} distinct"
        assert {p for p, _, v in second.records} <= moved

        desc = describe_group(bootstrap, group)
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "cooperative-sticky", desc.partition_assignor
        by_client = {m.client_id: {tp.partition for tp in m.assignment.topic_partitions} for m in desc.members}
        assert by_client == {"first": set(kept), "second": set(moved)}, by_client
    finally:
        for m in (first, second):
            if m is not None and m.thread.is_alive():
                m.stop()


# ---------------------------------------------------------------------------------------
# 3. Static membership: a restart within the session timeout causes no rebalance
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_static_member_restart_within_session_timeout_causes_no_rebalance(gbroker):
    bootstrap = gbroker.bootstrap
    topic, group, parts = unique_name("static"), unique_name("gstatic"), 4
    create_topic(bootstrap, topic, partitions=parts)
    static = {"group.instance.id": "static-one", "session.timeout.ms": 10000}

    s1 = Member(bootstrap, group, topic, "static-1", **static).start()
    wait_for(lambda: s1.snapshot() == frozenset(range(parts)), 30,
             lambda: f"static member to own all: {ownership([s1])}", stable_s=0.3)
    other = Member(bootstrap, group, topic, "dynamic").start()
    s2 = None
    try:
        wait_for(lambda: partitioned([s1, other], parts), 30,
                 lambda: f"2 members to split: {ownership([s1, other])}", stable_s=1.5)
        s1_parts, other_parts = s1.snapshot(), other.snapshot()
        other_events = len(other.events)
        desc = describe_group(bootstrap, group)
        before = {m.group_instance_id: m.member_id for m in desc.members}
        assert set(before) == {"static-one", None}, before
        produce(bootstrap, topic, [(i % parts, f"v-{i}") for i in range(40)])
        wait_for(lambda: len(s1.values()) + len(other.values()) == 40, 20, "first 40 records")

        # Close: a static member does not send LeaveGroup; the group keeps its place.
        t_close = time.monotonic()
        s1.stop()
        desc = describe_group(bootstrap, group)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert {m.group_instance_id: m.member_id for m in desc.members} == before, \
            "the static member was removed on close (LeaveGroup sent, or the broker dropped it)"

        s2 = Member(bootstrap, group, topic, "static-2", **static).start()
        wait_for(lambda: s2.snapshot() == s1_parts, 9, lambda: f"restarted static member to get "
                 f"{sorted(s1_parts)} back: {ownership([s2, other])}")
        print(f"static member back with {sorted(s2.snapshot())} {time.monotonic() - t_close:.2f}s after close",
              flush=True)
        # Several heartbeats of the other member: it must not be asked to rejoin.
        time.sleep(3.5)
        assert other.snapshot() == other_parts, ownership([s2, other])
        assert len(other.events) == other_events, (
            f"rebalance happened: the other member saw {other.events[other_events:]}")
        assert [(k, sorted(p)) for k, p, _ in s2.events if p] == [("assign", sorted(s1_parts))], s2.events

        desc = describe_group(bootstrap, group)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        after = {m.group_instance_id: m.member_id for m in desc.members}
        assert after[None] == before[None], "the dynamic member was replaced"
        assert after["static-one"] != before["static-one"], "the static member kept its old member id"
        assert after["static-one"] == s2.member_id, (after, s2.member_id)

        # The restarted member resumes at its predecessor's commits.
        produce(bootstrap, topic, [(i % parts, f"w-{i}") for i in range(40)])
        wait_for(lambda: len(s2.values()) + len(other.values()) >= 80 - len(s1.values()), 20, "next 40 records")
        time.sleep(0.5)
        got = s1.values() + s2.values() + other.values()
        assert sorted(got) == sorted([f"v-{i}" for i in range(40)] + [f"w-{i}" for i in range(40)])
    finally:
        for m in (s1, other, s2):
            if m is not None and m.thread.is_alive():
                m.stop()


# ---------------------------------------------------------------------------------------
# 4./5. aiokafka and kafka-python: commit after processing, a new consumer resumes there
# ---------------------------------------------------------------------------------------

RESUME_PARTS, RESUME_PER_PART, RESUME_FIRST = 3, 30, 40


def check_resume(first: List[Tuple[int, int, str]], committed: Dict[int, Optional[int]],
                 second: List[Tuple[int, int, str]], sent: List[str]) -> None:
    """`first` processed and committed; `second` must start exactly at the commits."""
    assert len(first) == RESUME_FIRST
    for p in range(RESUME_PARTS):
        done = [o for q, o, _ in first if q == p]
        expect = max(done) + 1 if done else None
        assert committed.get(p) == expect, f"partition {p}: committed {committed.get(p)}, processed up to {expect}"
        resumed = [o for q, o, _ in second if q == p]
        start = expect or 0
        assert resumed == list(range(start, RESUME_PER_PART)), \
            f"partition {p}: committed {start}, the next consumer read offsets {resumed}"
    values = [v for _, _, v in first] + [v for _, _, v in second]
    assert sorted(values) == sorted(sent), "records lost or read twice across the two consumers"


def produce_resume_topic(bootstrap: str, topic: str) -> List[str]:
    create_topic(bootstrap, topic, partitions=RESUME_PARTS)
    vals = [(i % RESUME_PARTS, f"r-{i}") for i in range(RESUME_PARTS * RESUME_PER_PART)]
    produce(bootstrap, topic, vals)
    return [v for _, v in vals]


@pytest.mark.timeout(90)
def test_aiokafka_group_commit_and_resume(gbroker):
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATP

    bootstrap = gbroker.bootstrap
    topic, group = unique_name("aiogrp"), unique_name("gaio")
    sent = produce_resume_topic(bootstrap, topic)

    def new_consumer():
        return AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS, request_timeout_ms=20000, max_poll_records=7,
        )

    async def scenario():
        c1 = new_consumer()
        await c1.start()
        first: List[Tuple[int, int, str]] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(first) < RESUME_FIRST:
                assert loop.time() < deadline, f"first consumer read {len(first)} records"
                batches = await c1.getmany(timeout_ms=500, max_records=7)
                for tp, msgs in sorted(batches.items()):
                    for m in msgs:
                        if len(first) < RESUME_FIRST:  # process, or leave for the next consumer
                            first.append((m.partition, m.offset, m.value.decode()))
            ends: Dict[int, int] = {}
            for p, o, _ in first:
                ends[p] = o + 1
            await c1.commit({ATP(topic, p): (o, f"aio-{p}") for p, o in ends.items()})
            c1_committed = {p: await c1.committed(ATP(topic, p)) for p in range(RESUME_PARTS)}
        finally:
            await c1.stop()  # LeaveGroup

        c2 = new_consumer()
        await c2.start()
        second: List[Tuple[int, int, str]] = []
        try:
            committed = {p: await c2.committed(ATP(topic, p)) for p in range(RESUME_PARTS)}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(second) < len(sent) - RESUME_FIRST:
                assert loop.time() < deadline, f"second consumer read {len(second)} records"
                batches = await c2.getmany(timeout_ms=500)
                for tp, msgs in sorted(batches.items()):
                    second.extend((m.partition, m.offset, m.value.decode()) for m in msgs)
            extra = await c2.getmany(timeout_ms=500)
            second.extend((m.partition, m.offset, m.value.decode()) for ms in extra.values() for m in ms)
        finally:
            await c2.stop()
        return first, c1_committed, committed, second

    first, c1_committed, committed, second = asyncio.run(asyncio.wait_for(scenario(), 80))
    assert c1_committed == committed, (c1_committed, committed)
    check_resume(first, committed, second, sent)


@pytest.mark.timeout(90)
def test_kafka_python_group_commit_and_resume(gbroker):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    bootstrap = gbroker.bootstrap
    topic, group = unique_name("kpgrp"), unique_name("gkp")
    sent = produce_resume_topic(bootstrap, topic)

    def new_consumer():
        return KafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS, request_timeout_ms=20000,
        )

    c1 = new_consumer()
    first: List[Tuple[int, int, str]] = []
    try:
        deadline = time.monotonic() + 30
        while len(first) < RESUME_FIRST:
            assert time.monotonic() < deadline, f"first consumer read {len(first)} records"
            for tp, msgs in sorted(c1.poll(timeout_ms=500, max_records=7).items()):
                for m in msgs:
                    if len(first) < RESUME_FIRST:
                        first.append((m.partition, m.offset, m.value.decode()))
        ends: Dict[int, int] = {}
        for p, o, _ in first:
            ends[p] = o + 1
        c1.commit({KTP(topic, p): OffsetAndMetadata(o, f"kp-{p}", -1) for p, o in ends.items()})
        c1_committed = {p: c1.committed(KTP(topic, p)) for p in range(RESUME_PARTS)}
        c1_meta = {p: c1.committed(KTP(topic, p), metadata=True) for p in ends}
    finally:
        c1.close(autocommit=False)  # LeaveGroup

    for p, om in c1_meta.items():
        assert om.offset == ends[p] and om.metadata == f"kp-{p}", (p, om)

    c2 = new_consumer()
    second: List[Tuple[int, int, str]] = []
    try:
        committed = {p: c2.committed(KTP(topic, p)) for p in range(RESUME_PARTS)}
        deadline = time.monotonic() + 30
        while len(second) < len(sent) - RESUME_FIRST:
            assert time.monotonic() < deadline, f"second consumer read {len(second)} records"
            for tp, msgs in sorted(c2.poll(timeout_ms=500).items()):
                second.extend((m.partition, m.offset, m.value.decode()) for m in msgs)
        for tp, msgs in c2.poll(timeout_ms=500).items():
            second.extend((m.partition, m.offset, m.value.decode()) for m in msgs)
    finally:
        c2.close(autocommit=False)
    assert c1_committed == committed, (c1_committed, committed)
    check_resume(first, committed, second, sent)


# ---------------------------------------------------------------------------------------
# 6. Committed offsets survive a broker restart (clean and crash)
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_committed_offsets_survive_broker_restart(gbroker, how):
    bootstrap = gbroker.bootstrap
    topic, group, parts, per_part = unique_name("rstgrp"), unique_name("grst"), 3, 30
    create_topic(bootstrap, topic, partitions=parts)
    sent = [(i % parts, f"x-{i}") for i in range(parts * per_part)]
    produce(bootstrap, topic, sent)
    commit_at = {0: 10, 1: 17, 2: 0}  # partition 2: nothing processed → no commit at all

    # A group member reads everything but processes only the first records of each partition.
    c1 = Consumer(group_conf(bootstrap, group, "before"))
    c1.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 30
    while seen < len(sent):
        assert time.monotonic() < deadline, f"read {seen} of {len(sent)}"
        for m in c1.consume(100, 0.5):
            assert not m.error(), m.error()
            seen += 1
    offsets = [TopicPartition(topic, p, o, metadata=f"meta-{p}") for p, o in commit_at.items() if o]
    res = c1.commit(offsets=offsets, asynchronous=False)
    assert all(tp.error is None for tp in res), res
    c1.close()

    def committed_view(c: Consumer) -> Dict[int, Tuple[int, Optional[str]]]:
        got = c.committed([TopicPartition(topic, p) for p in range(parts)], timeout=ADMIN_TIMEOUT_S)
        return {tp.partition: (tp.offset, tp.metadata) for tp in got}

    expected = {p: ((o, f"meta-{p}") if o else (OFFSET_INVALID, None)) for p, o in commit_at.items()}
    probe = Consumer(group_conf(bootstrap, group, "probe"))
    assert committed_view(probe) == expected
    probe.close()

    if how == "sigterm":
        gbroker.restart()
    else:
        gbroker.kill()
        gbroker.start()

    c2 = Consumer(group_conf(bootstrap, group, "after"))
    try:
        got = committed_view(c2)
        assert got == expected, f"after {how} restart: committed {got}, expected {expected}"
        assert committed_offsets(bootstrap, group, topic, parts) == \
            {p: (o if o else OFFSET_INVALID) for p, o in commit_at.items()}
        c2.subscribe([topic])
        resumed: Dict[int, List[int]] = {}
        want = sum(per_part - o for o in commit_at.values())
        n = 0
        deadline = time.monotonic() + 30
        while n < want:
            assert time.monotonic() < deadline, f"after {how} restart read {n} of {want}: {resumed}"
            for m in c2.consume(100, 0.5):
                assert not m.error(), m.error()
                resumed.setdefault(m.partition(), []).append(m.offset())
                n += 1
        for m in c2.consume(100, 0.5):
            assert not m.error(), m.error()
            resumed.setdefault(m.partition(), []).append(m.offset())
        for p, o in commit_at.items():
            assert resumed.get(p) == list(range(o, per_part)), \
                f"after {how} restart partition {p} resumed at {resumed.get(p, [])[:3]}..., committed {o}"
        positions = {tp.partition: tp.offset for tp in c2.position([TopicPartition(topic, p) for p in range(parts)])}
        assert positions == {p: per_part for p in range(parts)}, positions
    finally:
        c2.close()


# ---------------------------------------------------------------------------------------
# 7. Ten members: time until every member holds a partition
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_ten_member_rebalance_time(gbroker):
    bootstrap = gbroker.bootstrap
    topic, group, n = unique_name("ten"), unique_name("gten"), 10
    create_topic(bootstrap, topic, partitions=n)
    members: List[Member] = []
    try:
        # Cold start: ten members subscribe back to back.
        for i in range(n):
            members.append(Member(bootstrap, group, topic, f"m{i}", commit=False).start())
        held = wait_for(lambda: partitioned(members, n), 60,
                        lambda: f"all {n} members to own one partition: {ownership(members)}", stable_s=1.0)
        cold_s = held  # wait_for started right after the 10th subscribe
        print(f"10 members: every member owns a partition {cold_s:.2f}s after the 10th subscribe "
              f"(first subscribe {members[-1].subscribed_at - members[0].subscribed_at:.2f}s earlier)",
              flush=True)
        assert all(len(m.snapshot()) == 1 for m in members), ownership(members)
        record_figure("rebalance_10_members_s", cold_s, members=n, partitions=n,
                      heartbeat_interval_ms=HEARTBEAT_MS, strategy="range,roundrobin (librdkafka default)")
        desc = describe_group(bootstrap, group)
        assert desc.state == ConsumerGroupState.STABLE and len(desc.members) == n

        # One member leaves, a new one joins a settled group of nine.
        members.pop(0).stop()
        wait_for(lambda: partitioned(members, n), 30, lambda: f"9 members to split: {ownership(members)}",
                 stable_s=0.5)
        newcomer = Member(bootstrap, group, topic, "m10", commit=False).start()
        members.append(newcomer)
        join_s = wait_for(lambda: partitioned(members, n), 30,
                          lambda: f"newcomer to get a partition: {ownership(members)}")
        print(f"10th member joining 9 settled ones: all own a partition after {join_s:.2f}s", flush=True)
        record_figure("rebalance_10th_member_join_s", join_s, members=n, partitions=n,
                      heartbeat_interval_ms=HEARTBEAT_MS)
    finally:
        errors = []
        for m in members:
            m._stop.set()
        for m in members:
            try:
                m.stop()
            except AssertionError as e:
                errors.append(str(e))
        assert not errors, errors


# ---------------------------------------------------------------------------------------
# 8. Admin API: list/describe groups, list/alter/delete offsets (OffsetDelete), delete groups
# ---------------------------------------------------------------------------------------


GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC = 69, 86


def offset_delete(port: int, group: str, partitions: List[Tuple[str, int]]):
    """OffsetDelete v0 (api key 47) over a plain socket: `(error, {(topic, partition): error})`.
    The broker is its own group coordinator, so the request goes straight to it."""
    import socket
    import struct

    def string(s: str) -> bytes:
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    topics: Dict[str, List[int]] = {}
    for t, p in partitions:
        topics.setdefault(t, []).append(p)
    body = string(group) + struct.pack(">i", len(topics))
    for t, ps in topics.items():
        body += string(t) + struct.pack(">i", len(ps)) + b"".join(struct.pack(">i", p) for p in ps)
    corr = 4711
    msg = struct.pack(">hhi", 47, 0, corr) + string("klamm-groups-test") + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(msg)) + msg)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the OffsetDelete response"
            buf += chunk
    resp = buf[4:]
    got_corr, error, _throttle = struct.unpack(">ihi", resp[:10])
    assert got_corr == corr
    at, out = 10, {}
    (n_topics,) = struct.unpack(">i", resp[at:at + 4]); at += 4
    for _ in range(max(n_topics, 0)):
        (ln,) = struct.unpack(">h", resp[at:at + 2]); at += 2
        name = resp[at:at + ln].decode(); at += ln
        (n_parts,) = struct.unpack(">i", resp[at:at + 4]); at += 4
        for _ in range(n_parts):
            p, err = struct.unpack(">ih", resp[at:at + 6]); at += 6
            out[(name, p)] = err
    assert at == len(resp), f"{len(resp) - at} trailing bytes in the OffsetDelete response"
    return error, out


def admin_result(fut):
    return fut.result(timeout=ADMIN_TIMEOUT_S)


def admin_error(fut) -> KafkaError:
    with pytest.raises(KafkaException) as info:
        fut.result(timeout=ADMIN_TIMEOUT_S)
    return info.value.args[0]


@pytest.mark.timeout(90)
def test_admin_group_operations(gbroker):
    bootstrap = gbroker.bootstrap
    topic, other_topic = unique_name("adm"), unique_name("adm-other")
    group, parts = unique_name("gadm"), 3
    create_topic(bootstrap, topic, partitions=parts)
    create_topic(bootstrap, other_topic, partitions=1)
    produce(bootstrap, topic, [(i % parts, f"a-{i}") for i in range(30)])
    client = admin(bootstrap)

    # An active member subscribed to `topic`, committing offsets for `topic` and `other_topic`.
    c = Consumer(group_conf(bootstrap, group, "adm-active"))
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while len(c.assignment()) < parts:
        assert time.monotonic() < deadline, f"assignment {c.assignment()}"
        c.poll(0.1)
    c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 7),
                      TopicPartition(other_topic, 0, 3)], asynchronous=False)
    try:
        # ListGroups / DescribeGroups of a stable group.
        listed = admin_result(client.list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S))
        states = {g.group_id: g.state for g in listed.valid}
        assert states.get(group) == ConsumerGroupState.STABLE, states
        assert not listed.errors, listed.errors
        desc = describe_group(bootstrap, group)
        assert (desc.group_id, desc.state, desc.is_simple_consumer_group) == \
            (group, ConsumerGroupState.STABLE, False)
        assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
        assert [mm.client_id for mm in desc.members] == ["adm-active"]
        assert desc.members[0].member_id == c.memberid()
        assert sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions) == list(range(parts))
        assert desc.coordinator is not None and desc.coordinator.port == gbroker.port

        # OffsetFetch through the admin API: all of the group's offsets, and selected ones.
        everything = admin_result(client.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=ADMIN_TIMEOUT_S)[group])
        assert {(tp.topic, tp.partition, tp.offset) for tp in everything.topic_partitions} == \
            {(topic, 0, 5), (topic, 1, 7), (other_topic, 0, 3)}

        # Altering offsets of a group with members: rejected (the committer is no member).
        fut = client.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])],
            request_timeout=ADMIN_TIMEOUT_S)[group]
        try:
            res = fut.result(timeout=ADMIN_TIMEOUT_S)
            errs = [tp.error for tp in res.topic_partitions]
            assert errs and all(e is not None and e.code() == KafkaError.UNKNOWN_MEMBER_ID for e in errs), errs
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.UNKNOWN_MEMBER_ID, e

        # OffsetDelete: not for a topic the group consumes; fine for one it does not.
        # (confluent-kafka's AdminClient has no delete_consumer_group_offsets, nor do aiokafka's
        # and kafka-python's: OffsetDelete v0 is sent by hand.)
        assert offset_delete(gbroker.port, group, [(topic, 0), (other_topic, 0)]) == (
            0, {(topic, 0): GROUP_SUBSCRIBED_TO_TOPIC, (other_topic, 0): 0})
        assert committed_offsets(bootstrap, group, topic, parts) == {0: 5, 1: 7, 2: OFFSET_INVALID}
        left = admin_result(client.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=ADMIN_TIMEOUT_S)[group])
        assert {(tp.topic, tp.partition) for tp in left.topic_partitions} == {(topic, 0), (topic, 1)}

        # DeleteGroups of a group with a member: NON_EMPTY_GROUP.
        err = admin_error(client.delete_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)[group])
        assert err.code() == KafkaError.NON_EMPTY_GROUP, err
    finally:
        c.close()

    # Now empty: alter offsets works, OffsetDelete works for the formerly consumed topic.
    desc = describe_group(bootstrap, group)
    assert desc.state == ConsumerGroupState.EMPTY and not desc.members, (desc.state, desc.members)
    res = admin_result(client.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 2), TopicPartition(topic, 2, 9)])],
        request_timeout=ADMIN_TIMEOUT_S)[group])
    assert all(tp.error is None for tp in res.topic_partitions), res.topic_partitions
    assert committed_offsets(bootstrap, group, topic, parts) == {0: 2, 1: 7, 2: 9}
    assert offset_delete(gbroker.port, group, [(topic, 1)]) == (0, {(topic, 1): 0})
    assert offset_delete(gbroker.port, unique_name("no-such-group"), [(topic, 1)]) == (GROUP_ID_NOT_FOUND, {})
    assert committed_offsets(bootstrap, group, topic, parts) == {0: 2, 1: OFFSET_INVALID, 2: 9}

    # A consumer of the group starts at the altered offsets.
    got = {}
    c = Consumer(group_conf(bootstrap, group, "adm-resume"))
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while len(got) < parts:
        assert time.monotonic() < deadline, got
        for msg in c.consume(100, 0.3):
            assert not msg.error(), msg.error()
            got.setdefault(msg.partition(), msg.offset())
    c.close()
    assert got == {0: 2, 1: 0, 2: 9}, got

    # DeleteGroups of the empty group: success, and the group and its offsets are gone.
    res = client.delete_consumer_groups([group, unique_name("never-existed")], request_timeout=ADMIN_TIMEOUT_S)
    admin_result(res[group])
    missing = [g for g in res if g != group][0]
    assert admin_error(res[missing]).code() == KafkaError.GROUP_ID_NOT_FOUND
    listed = admin_result(client.list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S))
    assert group not in {g.group_id for g in listed.valid}
    assert committed_offsets(bootstrap, group, topic, parts) == {p: OFFSET_INVALID for p in range(parts)}
    # ... and stays gone after a restart (the tombstones were written).
    gbroker.restart()
    listed = admin_result(admin(bootstrap).list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S))
    assert group not in {g.group_id for g in listed.valid}
    assert committed_offsets(bootstrap, group, topic, parts) == {p: OFFSET_INVALID for p in range(parts)}


# ---------------------------------------------------------------------------------------
# 9. Static member that does not come back: removed at its session timeout
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_static_member_gone_past_session_timeout_is_removed(gbroker):
    bootstrap = gbroker.bootstrap
    topic, group, parts, session_ms = unique_name("static2"), unique_name("gstatic2"), 4, 3000
    create_topic(bootstrap, topic, partitions=parts)
    s = Member(bootstrap, group, topic, "static-gone", **{"group.instance.id": "gone-1",
                                                          "session.timeout.ms": session_ms}).start()
    other = Member(bootstrap, group, topic, "stays").start()
    try:
        wait_for(lambda: partitioned([s, other], parts), 30, lambda: ownership([s, other]), stable_s=1.0)
        t_close = time.monotonic()
        s.stop()  # no LeaveGroup: the broker must notice the silence
        wait_for(lambda: other.snapshot() == frozenset(range(parts)), 20,
                 lambda: f"the other member to take over: {ownership([other])}")
        elapsed = time.monotonic() - t_close
        print(f"static member gone: partitions moved {elapsed:.2f}s after its close", flush=True)
        assert elapsed >= (session_ms - HEARTBEAT_MS) / 1000 - 0.5, f"moved after {elapsed:.2f}s: too early"
        desc = describe_group(bootstrap, group)
        assert [m.group_instance_id for m in desc.members] == [None], desc.members
    finally:
        for m in (s, other):
            if m.thread.is_alive():
                m.stop()


# ---------------------------------------------------------------------------------------
# 10. A live group across a broker restart: members carry on, nothing lost or repeated
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_live_group_survives_broker_restart(gbroker):
    bootstrap = gbroker.bootstrap
    topic, group, parts = unique_name("live"), unique_name("glive"), 4
    create_topic(bootstrap, topic, partitions=parts)
    a = Member(bootstrap, group, topic, "live-a").start()
    b = Member(bootstrap, group, topic, "live-b").start()
    try:
        wait_for(lambda: partitioned([a, b], parts), 30, lambda: ownership([a, b]), stable_s=1.0)
        before = {m.name: m.snapshot() for m in (a, b)}
        ids_before = sorted(m.member_id for m in describe_group(bootstrap, group).members)
        produce(bootstrap, topic, [(i % parts, f"pre-{i}") for i in range(80)])
        wait_for(lambda: len(a.values()) + len(b.values()) == 80, 20, "80 records before the restart")
        wait_for(lambda: sum(max(m.committed.get(p, 0) for m in (a, b)) for p in range(parts)) == 80, 20,
                 "80 commits before the restart")

        gbroker.restart()
        # The group was restored from __consumer_offsets with both members; they reconnect,
        # heartbeat with their old generation and keep their partitions.
        desc = describe_group(bootstrap, group)
        assert sorted(m.member_id for m in desc.members) == ids_before, (desc.members, ids_before)
        produce(bootstrap, topic, [(i % parts, f"post-{i}") for i in range(80)])
        wait_for(lambda: len(a.values()) + len(b.values()) >= 160, 30,
                 lambda: f"160 records, got {len(a.values()) + len(b.values())}: {ownership([a, b])}, "
                         f"errors {a.errors[-3:]} {b.errors[-3:]}, commit errors "
                         f"{a.commit_errors[-3:]} {b.commit_errors[-3:]}")
        wait_for(lambda: partitioned([a, b], parts), 30, lambda: ownership([a, b]), stable_s=1.0)
        time.sleep(0.5)
        got = a.values() + b.values()
        dupes = sorted({v for v in got if got.count(v) > 1})
        assert not dupes, f"records read twice after the restart: {dupes[:10]}"
        assert len(got) == 160
        assert committed_offsets(bootstrap, group, topic, parts) == {p: 40 for p in range(parts)}
        print(f"live group across restart: {before} → {ownership([a, b])}; "
              f"events a={[(k, sorted(p)) for k, p, _ in a.events]}", flush=True)
    finally:
        for m in (a, b):
            if m.thread.is_alive():
                m.stop()
