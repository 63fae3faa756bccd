"""Shared fixtures for Klamm's Python integration tests.

Every test talks to a real `klamm serve` process over TCP with real client
libraries (confluent-kafka/librdkafka, aiokafka, kafka-python, kcat). The
broker binary is `$KLAMM_BIN` (default `<repo>/target/release/klamm`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
LOG_TAIL_BYTES = 64 * 1024


def klamm_bin() -> Path:
    """Locate the broker binary: $KLAMM_BIN (relative to cwd, then repo root)."""
    configured = os.environ.get("KLAMM_BIN")
    if not configured:
        return REPO_ROOT / "target" / "release" / "klamm"
    path = Path(configured)
    if path.is_absolute() or path.exists():
        return path.resolve()
    return REPO_ROOT / path


def refusing_port() -> "tuple[socket.socket, int]":
    """A loopback port that refuses connections while the returned socket stays open:
    bound, never listening, so no other process can take it meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def read_ready_file(path: Path) -> Optional[dict]:
    """`NAME host:port` lines a broker writes to its `ready.file`, as {NAME: port}."""
    try:
        text = path.read_text()
    except OSError:
        return None
    ports = {}
    for line in text.splitlines():
        name, _, addr = line.partition(" ")
        if addr:
            ports[name] = int(addr.rsplit(":", 1)[1])
    return ports or None


# Ask for an admin listener on a port the OS picks; `Broker.admin_port` says which.
ADMIN_ANY_PORT = ("--set", "admin.listener=127.0.0.1:0")


# Lets clients set the test key `internal.segment.bytes` (below segment.bytes's 1 MiB floor)
# without changing any other topic: the broker-wide value equals the default segment size.
SMALL_SEGMENTS = ("--set", "internal.log.segment.bytes=1073741824")


def unique_name(prefix: str) -> str:
    """A topic name no other test uses (tests share nothing, but names stay readable)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class BrokerError(AssertionError):
    pass


class Broker:
    """One `klamm serve` process with its own data dir, port and log file.

    `restart()`/`start()` after `stop()` or `kill()` reuse the same data dir and port,
    so clients can reconnect to the same bootstrap address.
    """

    def __init__(self, data_dir: Path, log_path: Path, extra_args: Optional[List[str]] = None):
        self.bin = klamm_bin()
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        # The first start binds port 0 and reports what it got (`ready.file`); later
        # starts reuse the ports, so clients can reconnect to the same bootstrap address.
        self.port = 0
        self.admin_port: Optional[int] = None
        self.host = "127.0.0.1"
        self.proc: Optional[subprocess.Popen] = None
        self._log_file = None
        self.starts = 0
        # Extra environment for the next starts (e.g. KLAMM_TEST_CRASH_AT).
        self.env: dict = {}

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def ready_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.ready"

    def command(self) -> List[str]:
        extra = list(self.extra_args)
        if self.admin_port is not None:
            extra = [f"admin.listener=127.0.0.1:{self.admin_port}" if a == "admin.listener=127.0.0.1:0" else a for a in extra]
        return [
            str(self.bin),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--listeners",
            f"PLAINTEXT://{self.bootstrap}",
            "--set",
            f"ready.file={self.ready_file}",
            # Test brokers run side by side: none takes the default admin port 9644 unless a
            # test asks for an admin listener itself.
            *([] if any("admin.listener" in a for a in extra) else ["--set", "admin.listener="]),
            *extra,
        ]

    def start(self) -> "Broker":
        if self.running:
            raise BrokerError("broker already running")
        if not self.bin.exists():
            raise BrokerError(
                f"klamm binary not found at {self.bin}; build it with "
                "`cargo build --release --bin klamm` or set KLAMM_BIN"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self.starts += 1
        self._log_file.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        self.ready_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            cwd=str(self.data_dir.parent),
            env={**os.environ, **self.env},
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Waits for the ready file (its ports), then for a connect to succeed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ports = read_ready_file(self.ready_file)
            if ports and "PLAINTEXT" in ports:
                if self.port not in (0, ports["PLAINTEXT"]):
                    raise BrokerError(f"restart bound port {ports['PLAINTEXT']}, not {self.port}")
                self.port = ports["PLAINTEXT"]
                if "ADMIN" in ports:
                    self.admin_port = ports["ADMIN"]
                break
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"klamm exited with code {code} before accepting connections\n{self.log_tail()}"
                )
            time.sleep(0.02)
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"klamm exited with code {code} before accepting connections\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise BrokerError(
            f"klamm did not accept connections on {self.bootstrap} within {timeout_s}s\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> int:
        """Graceful stop: SIGTERM, and the broker must exit 0 within STOP_TIMEOUT_S."""
        if self.proc is None:
            return 0
        proc = self.proc
        if proc.poll() is None:
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self._close_log()
                raise BrokerError(
                    f"klamm did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n{self.log_tail()}"
                )
            self._note(f"stopped by SIGTERM in {time.monotonic() - started:.2f}s, exit code {code}")
        else:
            code = proc.returncode
            self._note(f"had already exited with code {code}")
        self._close_log()
        if code != 0:
            raise BrokerError(f"klamm exited with code {code} on graceful stop\n{self.log_tail()}")
        return code

    def kill(self) -> None:
        """Crash: SIGKILL, no chance to flush or clean up."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._note("killed by SIGKILL")
        self._close_log()

    def wait_exit(self, timeout_s: float) -> int:
        """Waits for the broker to exit by itself (e.g. at a crash point) and returns its code."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise BrokerError(f"klamm did not exit within {timeout_s}s\n{self.log_tail()}")
        self._note(f"exited by itself with code {code}")
        self._close_log()
        return code

    def restart(self) -> "Broker":
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Teardown: never leave a broker behind, whatever happened."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def log_tail(self, max_bytes: int = LOG_TAIL_BYTES) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no broker log)"
        if len(data) > max_bytes:
            data = b"...(truncated)...\n" + data[-max_bytes:]
        return f"--- klamm log {self.log_path} ---\n" + data.decode("utf-8", "replace")

    def _note(self, text: str) -> None:
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.write(f"===== {text}\n".encode())
            self._log_file.flush()

    def _close_log(self) -> None:
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the broker log(s) to the report of any failed phase."""
    outcome = yield
    report = outcome.get_result()
    brokers = getattr(item, "klamm_brokers", None)
    if report.failed and brokers:
        for i, broker in enumerate(brokers):
            report.sections.append((f"klamm broker #{i} log", broker.log_tail()))


@pytest.fixture
def broker_factory(request, tmp_path) -> Iterator[Callable[..., Broker]]:
    """Start brokers with extra args: `broker_factory("--set", "num.partitions=3")`.

    At teardown each broker still running is stopped with SIGTERM and must exit 0.
    """
    brokers: List[Broker] = []
    request.node.klamm_brokers = brokers

    def make(*extra_args: str, start: bool = True) -> Broker:
        n = len(brokers)
        broker = Broker(
            data_dir=tmp_path / f"broker{n}" / "data",
            log_path=tmp_path / f"broker{n}.log",
            extra_args=list(extra_args),
        )
        (tmp_path / f"broker{n}").mkdir(parents=True, exist_ok=True)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make

    errors = []
    for broker in brokers:
        try:
            if broker.running:
                broker.stop()
        except BrokerError as exc:
            errors.append(str(exc))
        finally:
            broker.cleanup()
    if errors:
        pytest.fail("graceful stop failed at teardown:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


@pytest.fixture
def bootstrap(broker) -> str:
    return broker.bootstrap
