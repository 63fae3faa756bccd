#!/usr/bin/env python3
"""Run kafka-python 3.0.12's own integration suite (test/integration/) against Klamm.

Invoked through compat/kafka-python/run; see README.md next to this file.

Steps: create (or reuse, by a stamp file) a venv under target/kafka-python-compat/,
download kafka-python's sdist from PyPI and install it there with its test extras,
copy the sdist's test/ tree (plus the two files the sdist lacks, from support/) into a
run directory, start one Klamm (port 0, ready file) with the broker settings of
kafka-python's own test broker, run pytest with KAFKA_URI/KAFKA_VERSION pointing at it,
read the per-test results from pytest's junit xml and compare them with allowlist.txt.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCRATCH = Path(os.environ.get("KAFKA_PYTHON_COMPAT_DIR", REPO / "target" / "kafka-python-compat"))
TAG = "[kafka-python-compat]"

KAFKA_PYTHON_VERSION = "3.0.12"
# kafka-python's `testing` extra (pytest, pytest-mock, pytest-timeout) and the codec
# extras (lz4, snappy, zstd, crc32c), pinned so that the CI gate does not move with new
# releases. Without the codecs the compression tests skip themselves.
TEST_DEPS = [
    "pytest==9.2.0",
    "pytest-mock==3.17.0",
    "pytest-timeout==2.4.0",
    "lz4==4.4.5",
    "python-snappy==0.7.3",
    "cramjam==2.14.0",
    "zstandard==0.25.0",
    "crc32c==2.9.post0",
]
# Bump when the install recipe changes so existing venvs are rebuilt.
VENV_RECIPE = "1"

# The Kafka version whose API set Klamm serves (ApiVersions: Kafka 4.0's). The suite's
# version gates use it: >= 4.0 runs the KRaft-only admin tests (DescribeQuorum,
# DescribeTopicPartitions) and expects 4.0's DescribeConfigs answers;
# test_kafka_version_infer asserts that the version kafka-python infers from ApiVersions
# equals it (so 3.9.0 would fail there against a 4.0-shaped broker).
DEFAULT_KAFKA_VERSION = "4.0.0"

# Broker settings of kafka-python's own test broker (servers/4.0.0/resources/
# kafka.properties in its repository; the fixture renders it with partitions=4,
# replicas=1). Keys Klamm has no equivalent for (offsets.commit.timeout.ms, the
# authorizer, replica.* and controller settings) are left out. advertised.listeners is
# set too (to the bound address), as that file does.
BROKER_DEFAULTS = {
    "num.partitions": "4",
    "default.replication.factor": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "offsets.topic.num.partitions": "2",
    "log.cleaner.enable": "false",
}

# Files of test/integration/ this step does not run (reported as skipped, with the
# reason; see support/klamm_compat_plugin.py).
NOT_RUN_FILES = ["test_sasl_integration.py", "test_ssl_integration.py"]

KEEP_RUNS = 5
PYTEST_TIMEOUT_S = 900  # whole pytest process (harness kill)
PER_TEST_TIMEOUT_S = 120  # pytest-timeout per test (upstream: 300)


def log(msg):
    print(f"{TAG} {msg}", flush=True)


def die(msg, code=2):
    print(f"{TAG} error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


# --------------------------------------------------------------------------- setup


def ensure_venv(python, rebuild=False):
    """The venv with kafka-python (from its sdist) and the test deps; returns
    (venv python, unpacked sdist dir). Reused while its stamp matches."""
    venv = SCRATCH / "venv"
    sdist_dir = SCRATCH / "sdist"
    stamp = venv / ".klamm-compat-stamp"
    want = json.dumps({"kafka-python": KAFKA_PYTHON_VERSION, "deps": TEST_DEPS,
                       "recipe": VENV_RECIPE, "python": python}, sort_keys=True)
    vpy = venv / "bin" / "python"
    src = sdist_dir / f"kafka_python-{KAFKA_PYTHON_VERSION}"
    if (not rebuild and stamp.exists() and stamp.read_text() == want and vpy.exists()
            and (src / "test" / "integration").is_dir()):
        return vpy, src

    log(f"setting up {venv} (kafka-python {KAFKA_PYTHON_VERSION} from its PyPI sdist)")
    if venv.exists():
        shutil.rmtree(venv)
    if sdist_dir.exists():
        shutil.rmtree(sdist_dir)
    sdist_dir.mkdir(parents=True)
    run([python, "-m", "venv", venv])
    pip = [vpy, "-m", "pip", "--disable-pip-version-check", "-q"]
    # The sdist is the only place the test suite ships (the wheel has no tests).
    run(pip + ["download", "--no-deps", "--no-binary", ":all:", "-d", sdist_dir,
               f"kafka-python=={KAFKA_PYTHON_VERSION}"])
    tarballs = sorted(sdist_dir.glob("kafka_python-*.tar.gz"))
    if not tarballs:
        die(f"pip download left no kafka_python-*.tar.gz in {sdist_dir}")
    with tarfile.open(tarballs[0]) as tf:
        tf.extractall(sdist_dir, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    if not (src / "test" / "integration").is_dir():
        die(f"{tarballs[0]} has no test/integration/")
    # kafka-python itself from that very sdist (built locally), then the test deps.
    run(pip + ["install", "--no-binary", "kafka-python", str(tarballs[0])] + TEST_DEPS)
    stamp.write_text(want)
    return vpy, src


def klamm_binary(arg):
    b = arg or os.environ.get("KLAMM_BIN") or str(REPO / "target" / "release" / "klamm")
    p = Path(b)
    if not p.is_absolute():
        p = (Path.cwd() / p) if (Path.cwd() / p).exists() else (REPO / p)
    if not p.exists():
        die(f"klamm binary {p} missing (cargo build --release --bin klamm, or set KLAMM_BIN)")
    return p.resolve()


def new_rundir():
    runs = SCRATCH / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = runs / stamp
    n = 1
    while d.exists():
        n += 1
        d = runs / f"{stamp}-{n}"
    d.mkdir()
    latest = runs / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(d.name)
    old = sorted(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    for p in old[:-KEEP_RUNS]:
        shutil.rmtree(p, ignore_errors=True)
    return d


def prepare_suite(src, rundir):
    """A copy of the sdist's test/ tree (and its pytest settings) to run from, plus the
    files the sdist lacks. Run from here, `kafka` is the installed package."""
    work = rundir / "suite"
    work.mkdir()
    shutil.copytree(src / "test", work / "test")
    # [tool.pytest.ini_options]: log format/level, --timeout=300 --timeout-method=thread
    shutil.copy(src / "pyproject.toml", work / "pyproject.toml")
    for f in (HERE / "support" / "test").iterdir():
        if f.suffix == ".py" and not (work / "test" / f.name).exists():
            shutil.copy(f, work / "test" / f.name)
    shutil.copy(HERE / "support" / "klamm_compat_plugin.py", work / "klamm_compat_plugin.py")
    # fixtures.Fixture() insists that KAFKA_ROOT (a Kafka distribution) exists, even for
    # an external broker; nothing in it is used then.
    (work / "kafka-root").mkdir()
    return work


# --------------------------------------------------------------------------- broker


def read_ready_file(path):
    """`NAME host:port` lines of klamm's ready.file, as {NAME: port}."""
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


class Broker:
    """One `klamm serve` with its own data dir. The first start binds port 0 and reads
    the port from the ready file; it is then restarted on that port with
    advertised.listeners set, as kafka-python's broker config has it."""

    def __init__(self, binary, rundir, overrides):
        self.binary, self.rundir, self.overrides = binary, rundir, overrides
        self.data = rundir / "broker-data"
        self.ready = rundir / "broker.ready"
        self.logpath = rundir / "broker.log"
        self.port = 0
        self.proc = None
        self.logf = None

    def command(self):
        args = [str(self.binary), "serve", "--data-dir", str(self.data),
                "--listeners", f"PLAINTEXT://127.0.0.1:{self.port}",
                "--set", f"ready.file={self.ready}",
                # no admin HTTP listener (default port 9644 may be taken)
                "--set", "admin.listener="]
        if self.port:
            args += ["--set", f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}"]
        for k, v in self.overrides.items():
            args += ["--set", f"{k}={v}"]
        return args

    def _launch(self):
        env = dict(os.environ)
        env["RUST_LOG"] = os.environ.get("KLAMM_RUST_LOG") or os.environ.get("RUST_LOG") or "info"
        self.logf = open(self.logpath, "ab")
        self.logf.write(f"\n===== {' '.join(self.command())}\n".encode())
        self.logf.flush()
        self.ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(self.rundir), start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return f"klamm exited at start-up (code {self.proc.returncode}); see {self.logpath}"
            ports = read_ready_file(self.ready)
            if ports and "PLAINTEXT" in ports:
                if self.port not in (0, ports["PLAINTEXT"]):
                    return f"klamm bound port {ports['PLAINTEXT']}, not {self.port}"
                self.port = ports["PLAINTEXT"]
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return None
                except OSError:
                    pass
            time.sleep(0.05)
        return f"klamm was not ready within 30 s; see {self.logpath}"

    def start(self):
        for attempt in range(3):
            if self.data.exists():
                shutil.rmtree(self.data)
            self.port = 0
            err = self._launch()
            if err:
                die(err)
            # now on a known port: restart there with advertised.listeners
            self.stop()
            err = self._launch()
            if not err:
                log(f"klamm on 127.0.0.1:{self.port} (log: {self.logpath})")
                return
            self.stop()
            log(f"restart on port {self.port} failed ({err}); retrying")
        die("could not start klamm")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM (then SIGKILL after 15 s); returns the exit code if it had died."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        self.proc = None
        return code


# --------------------------------------------------------------------------- pytest


def test_id(classname, name):
    """`test_admin_integration.py::test_create_partitions` from a junit testcase."""
    mod = classname.rsplit(".", 1)[-1]
    return f"{mod}.py::{name}"


def node_id(tid):
    return f"test/integration/{tid}"


def parse_junit(path):
    """{test id: {"status": pass|fail|error|skip, "reason": str, "secs": float}}"""
    results = {}
    if not path.exists():
        return results
    rank = {"pass": 0, "skip": 1, "fail": 2, "error": 3}
    for tc in ET.parse(path).iter("testcase"):
        tid = test_id(tc.get("classname", ""), tc.get("name", ""))
        status, reason = "pass", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                status = "fail" if child.tag == "failure" else "error"
                reason = child.get("message") or ""
                if not reason:
                    text = (child.text or "").strip().splitlines()
                    reason = text[-1] if text else ""
                break
            if child.tag == "skipped":
                status, reason = "skip", child.get("message") or ""
        secs = float(tc.get("time") or 0)
        prev = results.get(tid)
        # a teardown error is a second <testcase> of the same name
        if prev is None or rank[status] > rank[prev["status"]]:
            results[tid] = {"status": status, "reason": " ".join(reason.split()),
                            "secs": secs + (prev["secs"] if prev else 0)}
        else:
            prev["secs"] += secs
    return results


def run_pytest(vpy, work, broker, kafka_version, junit, logpath, selection, extra):
    env = dict(os.environ)
    for k in ("PYTHONPATH", "KAFKA_URI", "ZOOKEEPER_URI", "KAFKA_ROOT", "PROJECT_ROOT"):
        env.pop(k, None)
    env.update({
        "KAFKA_URI": f"kafka://127.0.0.1:{broker.port}",
        "KAFKA_VERSION": kafka_version,
        "KAFKA_ROOT": str(work / "kafka-root"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    cmd = [str(vpy), "-m", "pytest", *selection, "-p", "no:cacheprovider",
           "-p", "klamm_compat_plugin", "-rA", "--tb=short", "--durations=0",
           f"--timeout={PER_TEST_TIMEOUT_S}", f"--junitxml={junit}", *extra]
    with open(logpath, "ab") as f:
        f.write(f"\n===== KAFKA_URI={env['KAFKA_URI']} KAFKA_VERSION={kafka_version} "
                f"{' '.join(cmd)}\n".encode())
        f.flush()
        p = subprocess.Popen(cmd, cwd=str(work), env=env, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            return p.wait(PYTEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            log(f"pytest killed after {PYTEST_TIMEOUT_S} s")
            return -9


# --------------------------------------------------------------------------- reports


def read_allowlist(path):
    """(allow-listed test ids, known-flaky test ids from `# flaky: ID` lines)"""
    names, flaky = [], set()
    for line in path.read_text().splitlines():
        if line.startswith("# flaky:"):
            flaky.add(line.split(":", 1)[1].strip())
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names, flaky


def write_summary(results, path, title):
    order = {"fail": 0, "error": 1, "pass": 2, "skip": 3}
    lines = [f"# {title}", "", "| test | status | s | reason |", "|---|---|---|---|"]
    for tid, r in sorted(results.items(), key=lambda kv: (order[kv[1]["status"]], kv[0])):
        reason = r["reason"][:300].replace("|", "\\|")
        lines.append(f"| {tid} | {r['status']} | {r['secs']:.1f} | {reason} |")
    path.write_text("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(
        prog="compat/kafka-python/run",
        description="kafka-python's own integration suite against Klamm (README.md).")
    ap.add_argument("--ci", action="store_true",
                    help="regression gate: retry failing allow-listed tests once, "
                         "exit 1 if one still fails")
    ap.add_argument("--tests", default="",
                    help="comma-separated pytest -k expressions or test ids "
                         "(test_producer_integration.py::test_end_to_end[gzip])")
    ap.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION,
                    help=f"KAFKA_VERSION for the suite (default {DEFAULT_KAFKA_VERSION})")
    ap.add_argument("--klamm", help="broker binary (default $KLAMM_BIN, else target/release/klamm)")
    ap.add_argument("--no-klamm-build", action="store_true",
                    help="accepted for symmetry with compat/librdkafka; this harness never builds")
    ap.add_argument("--broker-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra `klamm serve --set` (after the defaults)")
    ap.add_argument("--allowlist", help="allow-list file (default allowlist.txt next to this file)")
    ap.add_argument("--python", default=sys.executable, help="python for the venv")
    ap.add_argument("--rebuild-venv", action="store_true")
    ap.add_argument("--setup-only", action="store_true", help="create the venv and stop")
    ap.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    a = ap.parse_args()

    t0 = time.time()
    vpy, src = ensure_venv(a.python, a.rebuild_venv)
    if a.setup_only:
        log(f"venv ready: {vpy}")
        return 0
    allow_path = Path(a.allowlist) if a.allowlist else HERE / "allowlist.txt"
    allow, known_flaky = read_allowlist(allow_path) if allow_path.exists() else ([], set())

    rundir = new_rundir()
    klamm = rundir / "klamm"
    shutil.copy2(klamm_binary(a.klamm), klamm)  # the binary may be replaced meanwhile
    work = prepare_suite(src, rundir)

    overrides = dict(BROKER_DEFAULTS)
    for kv in a.broker_set:
        k, sep, v = kv.partition("=")
        if not sep:
            die(f"--broker-set wants KEY=VALUE, not {kv!r}")
        overrides[k] = v

    selection, kexprs = [], []
    for t in filter(None, (s.strip() for s in a.tests.split(","))):
        if "::" in t:
            selection.append(node_id(t) if not t.startswith("test/") else t)
        else:
            kexprs.append(t)
    if not selection:
        selection = ["test/integration"]
    extra = (["-k", " or ".join(kexprs)] if kexprs else []) + a.pytest_args

    broker = Broker(klamm, rundir, overrides)
    broker.start()
    pytest_log = rundir / "pytest.log"
    crashed = None
    try:
        log(f"kafka-python {KAFKA_PYTHON_VERSION} test/integration, KAFKA_VERSION="
            f"{a.kafka_version} (pytest log: {pytest_log})")
        code = run_pytest(vpy, work, broker, a.kafka_version, rundir / "junit.xml",
                          pytest_log, selection, extra)
        results = parse_junit(rundir / "junit.xml")
        if not results:
            die(f"pytest (exit {code}) reported no tests; see {pytest_log}")
        if not broker.alive():
            crashed = broker.stop()
            log(f"BROKER DIED during the run (exit {crashed}); see {broker.logpath}")
        retried = {}
        if a.ci and crashed is None:
            again = [t for t in allow if t in results and results[t]["status"] in ("fail", "error")]
            if again:
                log(f"retrying {len(again)} failed allow-listed tests once: {' '.join(again)}")
                run_pytest(vpy, work, broker, a.kafka_version, rundir / "junit-retry.xml",
                           pytest_log, [node_id(t) for t in again], a.pytest_args)
                retried = parse_junit(rundir / "junit-retry.xml")
                if not broker.alive():
                    crashed = broker.stop()
                    log(f"BROKER DIED during the retry (exit {crashed}); see {broker.logpath}")
    finally:
        broker.stop()

    for tid, r in retried.items():
        if r["status"] == "pass" and tid in results:
            results[tid] = dict(r, reason="FLAKY (passed on retry): " + results[tid]["reason"])
    elapsed = time.time() - t0
    (rundir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    write_summary(results, rundir / "results.md",
                  f"kafka-python {KAFKA_PYTHON_VERSION} integration suite against Klamm "
                  f"(KAFKA_VERSION={a.kafka_version})")

    count = {s: sum(1 for r in results.values() if r["status"] == s)
             for s in ("pass", "fail", "error", "skip")}
    log(f"results: {count['pass']} pass, {count['fail']} fail, {count['error']} error, "
        f"{count['skip']} skip ({len(results)} tests; {rundir / 'results.md'})")
    for tid, r in sorted(results.items()):
        if r["status"] in ("fail", "error"):
            mark = ("allow-listed " if tid in allow
                    else "known flaky " if tid in known_flaky else "")
            log(f"  {mark}{r['status'].upper()} {tid}: {r['reason'][:240]}")
    skips = {}
    for tid, r in results.items():
        if r["status"] == "skip":
            skips.setdefault(r["reason"], []).append(tid)
    for reason, tids in sorted(skips.items()):
        log(f"  skipped {len(tids)}: {reason[:160]}")

    ran = [t for t in allow if t in results]
    regressions = [t for t in ran if results[t]["status"] != "pass"]
    missing = [t for t in allow if t not in results]
    filtered = bool(a.tests or a.pytest_args)
    if not filtered:
        regressions += missing  # a listed test that no longer exists is a failure too
    candidates = sorted(t for t, r in results.items() if r["status"] == "pass" and t not in allow)
    for t in candidates:
        if t in known_flaky:
            log(f"  passes, not allow-listed (known flaky, allowlist.txt): {t}")
        else:
            log(f"  passes, not allow-listed (candidate for allowlist.txt): {t}")
    for t in ran:
        if results[t]["reason"].startswith("FLAKY"):
            log(f"  flaky (passed on retry): {t}")
    passed = len(ran) - len([t for t in ran if results[t]["status"] != "pass"])
    for t in regressions:
        why = (f"{results[t]['status']}: {results[t]['reason'][:300]}" if t in results
               else "not run (renamed or removed test?)")
        log(f"REGRESSION {t}: {why}")
    log(f"logs: {rundir}")
    log(f"CI: {passed} allow-listed tests passed, {len(regressions)} failed, "
        f"{elapsed / 60:.1f} min")
    if crashed is not None:
        return 1
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
