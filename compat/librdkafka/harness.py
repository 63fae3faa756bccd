#!/usr/bin/env python3
"""Run librdkafka's integration tests (tests/ of the rdkafka-sys crate) against Klamm.

Invoked through compat/librdkafka/run; see README.md next to this file.

Steps: locate the rdkafka-sys source via `cargo metadata`, copy its librdkafka tree to
target/librdkafka-compat/build-<version>/ and build librdkafka + tests/test-runner there
(cached by a stamp file), build Klamm, then for every mode start a fresh Klamm on a free
port, write a test.conf and run each broker-backed test number in its own test-runner
process (-L: no local/mock tests, -p1: sequential). Results are parsed from the
test-runner summary table.
"""

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCRATCH = Path(os.environ.get("RDKAFKA_COMPAT_DIR", REPO / "target" / "librdkafka-compat"))

# The Kafka version whose APIs Klamm serves. librdkafka's test framework uses it to pick
# features: 4.0 means "MsgVersion 0/1 removed, no api.version.request=false" (Klamm only
# accepts magic 2 / Produce >= v3), admin API available for topic creation, etc.
KAFKA_VERSION = "4.0.0"

CONFIGURE_ARGS = [
    "--disable-ssl", "--disable-gssapi", "--disable-curl",
    "--enable-zlib", "--enable-zstd", "--disable-lz4-ext",  # lz4 + snappy are built in
]
# Bump when the build recipe changes so cached builds are redone.
BUILD_RECIPE = "2"  # 2: rapidjson-dev (tests 0053, 0101)

MODES = {
    # name: (test-runner args, broker --set overrides, scenario)
    "plain": ([], {}, "default"),
    "idempotent": (["-P"], {}, "default"),
    # librdkafka's "noautocreate" scenario: broker with auto.create.topics.enable=false;
    # only tests declared for that scenario run in it.
    "noautocreate": (["-s", "noautocreate"], {"auto.create.topics.enable": "false"},
                     "noautocreate"),
}
DEFAULT_MODES = ["plain", "idempotent", "noautocreate"]

# Broker settings for every mode (then the mode's own, then --broker-set).
BROKER_DEFAULTS = {
    # librdkafka's default test scenario (tests/scenarios/default.json)
    "num.partitions": "4",
    # Apache Kafka's default, which librdkafka's CI brokers (trivup) keep. Tests such as
    # 0102_static_group_rebalance and 0113_cooperative_rebalance (l_unsubscribe) start two
    # consumers back to back and expect both in the first generation; with 0 the first
    # joiner completes generation 1 alone and the tests see an extra rebalance.
    "group.initial.rebalance.delay.ms": "3000",
}

# Tests that need bin/kafka-topics.sh: given KAFKA_PATH pointing at our shim
# (shim/kafka-topics.c, built against the same librdkafka; it uses the Admin API
# against Klamm, as the real kafka-topics.sh would).
KAFKA_TOPICS_SHIM_TESTS = {"0045", "0052", "0077"}

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\([A-Za-z]")
SUMMARY = re.compile(r"^\|\s*(\S+)\s*\|\s*([A-Z]+)\s*\|\s*([0-9.]+)s\s*\|(.*)$")


def log(msg):
    print(f"[librdkafka-compat] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run(cmd, check=True, **kw)


# --------------------------------------------------------------------------- build

def rdkafka_sys_dir():
    """Source dir of the rdkafka-sys crate the workspace resolves to."""
    def metadata(extra):
        out = subprocess.run(["cargo", "metadata", "--format-version", "1", *extra],
                             cwd=REPO, check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    try:
        meta = metadata(["--offline"])
    except subprocess.CalledProcessError:
        meta = metadata([])
    pkgs = [p for p in meta["packages"] if p["name"] == "rdkafka-sys"]
    if not pkgs:
        sys.exit("rdkafka-sys is not a dependency of this workspace")
    pkg = max(pkgs, key=lambda p: p["version"])
    src = Path(pkg["manifest_path"]).parent / "librdkafka"
    if not (src / "tests" / "test.c").exists():
        run(["cargo", "fetch"], cwd=REPO)
    if not (src / "tests" / "test.c").exists():
        sys.exit(f"librdkafka tests not found under {src}")
    return pkg["version"], src


def build_librdkafka(jobs, force=False):
    version, src = rdkafka_sys_dir()
    bdir = SCRATCH / f"build-{version}"
    shim_src = HERE / "shim" / "kafka-topics.c"
    stamp_data = json.dumps({
        "src": str(src), "version": version, "configure": CONFIGURE_ARGS,
        "recipe": BUILD_RECIPE,
    }, sort_keys=True)
    stamp = bdir / ".klamm-compat-stamp"
    runner = bdir / "src" / "tests" / "test-runner"
    if force or not (stamp.exists() and stamp.read_text() == stamp_data and runner.exists()):
        log(f"building librdkafka {version} from {src} in {bdir} (takes ~5 min on 2 cores)")
        if bdir.exists():
            shutil.rmtree(bdir)
        bdir.mkdir(parents=True)
        shutil.copytree(src, bdir / "src", symlinks=True)
        t = bdir / "src"
        # the crate copy may carry a config cache from rdkafka-sys' own build
        for f in ("config.cache", "Makefile.config", "config.h", "config.log"):
            (t / f).unlink(missing_ok=True)
        blog = open(bdir / "build.log", "w")
        try:
            for cmd in (["./configure", *CONFIGURE_ARGS],
                        ["make", f"-j{jobs}", "libs"],
                        ["make", f"-j{jobs}", "-C", "tests", "build"]):
                log("$ " + " ".join(cmd) + f"   (log: {bdir / 'build.log'})")
                subprocess.run(cmd, cwd=t, check=True, stdout=blog, stderr=subprocess.STDOUT)
        except subprocess.CalledProcessError as e:
            blog.close()
            sys.exit(f"librdkafka build failed ({e}); see {bdir / 'build.log'}")
        blog.close()
        stamp.write_text(stamp_data)
    else:
        log(f"librdkafka {version}: using cached build in {bdir}")

    # kafka-topics.sh shim (our code, rebuilt when it changes)
    shim_dir = bdir / "kafka-shim"
    shim_bin = shim_dir / "kafka-topics"
    shim_hash = hashlib.sha256(shim_src.read_bytes()).hexdigest()
    shim_stamp = shim_dir / ".stamp"
    if not (shim_bin.exists() and shim_stamp.exists() and shim_stamp.read_text() == shim_hash):
        (shim_dir / "bin").mkdir(parents=True, exist_ok=True)
        run(["gcc", "-O1", "-Wall", "-o", str(shim_bin), str(shim_src),
             f"-I{bdir / 'src' / 'src'}", str(bdir / "src" / "src" / "librdkafka.a"),
             "-lzstd", "-lz", "-lm", "-ldl", "-lpthread", "-lrt"])
        script = shim_dir / "bin" / "kafka-topics.sh"
        script.write_text(f'#!/bin/sh\nexec "{shim_bin}" "$@"\n')
        script.chmod(0o755)
        shim_stamp.write_text(shim_hash)
    return version, bdir


def klamm_binary(no_build):
    env_bin = os.environ.get("KLAMM_BIN")
    if env_bin:
        return Path(env_bin).resolve()
    if not no_build:
        run(["cargo", "build", "--release", "--bin", "klamm"], cwd=REPO)
    b = REPO / "target" / "release" / "klamm"
    if not b.exists():
        sys.exit(f"{b} missing (build with cargo build --release --bin klamm)")
    return b


# --------------------------------------------------------------------------- tests

def parse_tests(test_c):
    """The tests[] table of tests/test.c: name, flags, scenario."""
    text = test_c.read_text()
    start = text.index("struct test tests[] = {")
    end = text.index("{NULL}};", start)
    body = text[start:end]
    tests = []
    i = 0
    while True:
        i = body.find("_TEST(", i)
        if i < 0:
            break
        depth, j = 0, i + len("_TEST")
        while True:
            c = body[j]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        entry = re.sub(r"/\*.*?\*/", "", body[i + 6:j], flags=re.S)
        parts = [p.strip() for p in entry.split(",")]
        name, flags = parts[0], parts[1]
        m = re.search(r'\.scenario\s*=\s*"([^"]*)"', entry)
        tests.append({
            "name": name,
            "num": name.split("_")[0],
            "local": "TEST_F_LOCAL" in flags,
            "manual": "TEST_F_MANUAL" in flags,
            "known_issue": re.search(r"TEST_F_KNOWN_ISSUE\b", flags) is not None,
            "scenario": m.group(1) if m else "default",
        })
        i = j
    return tests


def read_allowlist(path):
    """Lines `<test_name> <mode>[,<mode>...]`, '#' comments; returns {name: [modes]}."""
    out = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        modes = parts[1].split(",") if len(parts) > 1 else ["plain"]
        for m in modes:
            if m not in MODES:
                sys.exit(f"allowlist.txt: unknown mode {m!r} in line {line!r}")
        out.setdefault(parts[0], []).extend(modes)
    return out


def read_not_applicable():
    out = {}
    p = HERE / "not-applicable.txt"
    for line in p.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        out[name.strip()] = reason.strip()
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, binary, workdir, overrides):
        self.binary, self.workdir, self.overrides = binary, workdir, overrides
        self.proc = None
        self.port = None
        self.starts = 0

    def start(self):
        self.starts += 1
        data = self.workdir / "data"
        if data.exists():
            shutil.rmtree(data)
        self.port = free_port()
        args = [str(self.binary), "serve", "--data-dir", str(data),
                "--listeners", f"PLAINTEXT://127.0.0.1:{self.port}"]
        for k, v in self.overrides.items():
            args += ["--set", f"{k}={v}"]
        env = dict(os.environ)
        env["RUST_LOG"] = os.environ.get("KLAMM_RUST_LOG") or os.environ.get("RUST_LOG") or "info"
        self.logpath = self.workdir / f"broker-{self.starts}.log"
        self.logf = open(self.logpath, "w")
        log(f"starting klamm on 127.0.0.1:{self.port} (log: {self.logpath})")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"klamm exited at start-up (code {self.proc.returncode}); "
                         f"see {self.logpath}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"klamm did not listen on port {self.port} within 30 s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
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


def parse_summary(logtext):
    """{name: (state, seconds, reason)} from the test-runner summary table(s)."""
    res = {}
    for raw in logtext.splitlines():
        line = ANSI.sub("", raw).rstrip()
        m = SUMMARY.match(line)
        if m and m.group(1) != "<MAIN>":
            res[m.group(1)] = (m.group(2), float(m.group(3)), m.group(4).strip())
    return res


def failure_detail(logtext, name):
    """First '### Test "..." failed at ...' message for a test, if the summary had none."""
    text = ANSI.sub("", logtext)
    m = re.search(r'### Test "%s[^"]*" failed at (.*?) at .*?###\n(.*)' % re.escape(name), text)
    if m:
        return m.group(1).strip() + ": " + m.group(2).strip()
    return ""


def run_group(num, names, mode, ctx, broker, attempt=1):
    """Run all tests of one test number in one test-runner process."""
    args, _, _ = MODES[mode]
    tdir = ctx["bdir"] / "src" / "tests"
    logdir = ctx["rundir"] / mode / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    logpath = logdir / (f"{num}.log" if attempt == 1 else f"{num}.retry{attempt - 1}.log")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TESTS", "SUBTESTS",
                                                            "TESTS_SKIP", "KAFKA_PATH")}
    env.update({
        "TESTS": num,
        "TEST_KAFKA_VERSION": KAFKA_VERSION,
        "RDKAFKA_TEST_CONF": str(ctx["rundir"] / mode / "test.conf"),
        "LD_LIBRARY_PATH": "../src:../src-cpp",
        "RDKAFKA_GITVER": ctx["version"],
    })
    if num in KAFKA_TOPICS_SHIM_TESTS:
        env["KAFKA_PATH"] = str(ctx["bdir"] / "kafka-shim")
        env["BROKERS"] = f"127.0.0.1:{broker.port}"
    # stdbuf: the summary table goes to stdout, which test-runner would otherwise lose
    # when it abort()s after a failed test (leftover librdkafka threads at exit)
    cmd = ["stdbuf", "-oL", "-eL", "./test-runner", "-L", "-p1", *args]
    t0 = time.time()
    with open(logpath, "w") as lf:
        lf.write(f"# TESTS={num} {' '.join(cmd)}  (broker 127.0.0.1:{broker.port})\n")
        lf.flush()
        p = subprocess.Popen(cmd, cwd=tdir, env=env, stdout=lf, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            rc = p.wait(ctx["group_timeout"])
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
            timed_out = True
    wall = time.time() - t0
    text = logpath.read_text(errors="replace")
    summ = parse_summary(text)
    out = {}
    for name in names:
        if name in summ:
            state, secs, reason = summ[name]
        else:
            state, secs, reason = ("RUNNING" if rc else "MISSING"), wall, ""
        if state == "PASSED":
            status = "pass"
        elif state == "SKIPPED":
            status = "skip"
        elif state == "MISSING":
            status, reason = "skip", "not run by test-runner"
        else:
            status = "fail"
            if not reason:
                reason = failure_detail(text, name)
            if timed_out:
                reason = (f"killed by harness after {ctx['group_timeout']} s; " + reason).strip()
            elif state == "RUNNING":
                reason = (f"test-runner exited with code {rc} before the test finished "
                          f"(crash or test timeout); " + reason).strip()
        if status == "fail" and "KAFKA_PATH" in reason:
            status = "n/a"
            reason = "needs Apache Kafka's JVM tools (KAFKA_PATH): " + reason
        out[name] = {"status": status, "secs": secs, "reason": reason,
                     "log": str(logpath.relative_to(ctx["rundir"]))}
    return out


def run_mode(mode, names_by_num, ctx, klamm):
    overrides = dict(BROKER_DEFAULTS)
    overrides.update(MODES[mode][1])
    overrides.update(ctx["broker_set"])
    mdir = ctx["rundir"] / mode
    mdir.mkdir(parents=True, exist_ok=True)
    broker = Broker(klamm, mdir, overrides)
    broker.start()
    results = {}

    def write_conf():
        (mdir / "test.conf").write_text(
            f"bootstrap.servers=127.0.0.1:{broker.port}\n"
            f"test.timeout.multiplier={ctx['multiplier']}\n")

    write_conf()
    try:
        nums = sorted(names_by_num)
        for idx, num in enumerate(nums):
            names = names_by_num[num]
            log(f"[{mode}] {idx + 1}/{len(nums)} {num} ({', '.join(names)})")
            res = run_group(num, names, mode, ctx, broker)
            crashed = not broker.alive()
            retried = False
            if (not crashed and ctx["retries"] and
                    any(r["status"] == "fail" for r in res.values())):
                retried = True
                log(f"[{mode}] {num}: failure, retrying once")
                res2 = run_group(num, names, mode, ctx, broker, attempt=2)
                for n, r in res2.items():
                    if res[n]["status"] == "fail" and r["status"] == "pass":
                        r["reason"] = "FLAKY: failed first attempt: " + res[n]["reason"]
                    res[n] = r
                crashed = not broker.alive()
            for n, r in res.items():
                r["retried"] = retried
                if crashed:
                    r["status"] = "fail" if r["status"] != "n/a" else r["status"]
                    r["reason"] = (f"KLAMM CRASHED (exit {broker.proc.returncode}, see "
                                   f"{broker.logpath.name}); " + r["reason"])
                results[n] = r
                log(f"[{mode}]   {n}: {r['status'].upper()} {r['secs']:.1f}s "
                    f"{r['reason'][:160]}")
            if crashed:
                log(f"[{mode}] klamm died; restarting a fresh broker")
                broker.stop()
                broker.start()
                write_conf()
    finally:
        broker.stop()
        if not ctx["keep"]:
            shutil.rmtree(mdir / "data", ignore_errors=True)
    return results


# --------------------------------------------------------------------------- report

def md_escape(s):
    return s.replace("|", "\\|").replace("\n", " ")


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def write_reports(all_results, ctx, modes, na, out_md, out_tsv, title):
    tests = ctx["tests"]
    names = [t["name"] for t in tests]
    with open(out_tsv, "w") as f:
        f.write("test\tmode\tresult\tseconds\treason\n")
        for mode in modes:
            for n in names:
                r = all_results.get(mode, {}).get(n)
                if r:
                    f.write(f"{n}\t{mode}\t{r['status']}\t{r['secs']:.3f}\t"
                            f"{r['reason'].replace(chr(9), ' ')}\n")
    lines = [f"# {title}", ""]
    lines.append(f"librdkafka {ctx['version']} (rdkafka-sys crate), test-runner "
                 f"`-L -p1`, TEST_KAFKA_VERSION={KAFKA_VERSION}, "
                 f"test.timeout.multiplier={ctx['multiplier']}; Klamm {ctx['klamm_rev']}; "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
                 f"total wall time {ctx['elapsed'] / 60:.1f} min.")
    lines.append("")
    lines.append("Generated by `compat/librdkafka/run`. `pass`/`fail` = test ran against "
                 "Klamm; `skip` = the test skipped itself (reason given); `n/a` = cannot "
                 "run against a single PLAINTEXT broker without a JVM (see "
                 "not-applicable.txt). Local/mock-cluster tests (`TEST_F_LOCAL`) are "
                 "not listed. Failure analysis: FINDINGS.md.")
    lines.append("")
    lines.append("| mode | passed | failed | passed / ran | skipped | n/a |")
    lines.append("|---|---|---|---|---|---|")
    for mode in modes:
        rs = all_results.get(mode, {}).values()
        c = {s: sum(1 for r in rs if r["status"] == s) for s in ("pass", "fail", "skip", "n/a")}
        ran = c["pass"] + c["fail"]
        lines.append(f"| {mode} | {c['pass']} | {c['fail']} | {c['pass']}/{ran} | "
                     f"{c['skip']} | {c['n/a']} |")
    lines.append("")
    lines.append("| test | " + " | ".join(modes) + " |")
    lines.append("|---|" + "---|" * len(modes))
    for n in names:
        cells = []
        any_r = False
        for mode in modes:
            r = all_results.get(mode, {}).get(n)
            if r:
                any_r = True
                mark = {"pass": "PASS", "fail": "**FAIL**", "skip": "skip",
                        "n/a": "n/a"}[r["status"]]
                if r["status"] in ("pass", "fail"):
                    mark += f" {r['secs']:.1f}s"
                if r["status"] == "pass" and r["reason"].startswith("FLAKY"):
                    mark += " (flaky)"
                cells.append(mark)
            else:
                cells.append("")
        if any_r:
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("## Failures, skips and n/a, with the test-runner's reason")
    lines.append("")
    lines.append("| test | mode | result | reason |")
    lines.append("|---|---|---|---|")
    for n in names:
        for mode in modes:
            r = all_results.get(mode, {}).get(n)
            if r and (r["status"] != "pass" or r["reason"]):
                reason = r["reason"][:300]
                lines.append(f"| {n} | {mode} | {r['status']} | {md_escape(reason)} |")
    lines.append("")
    Path(out_md).write_text("\n".join(lines))
    log(f"wrote {out_md} and {out_tsv}")


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ci", action="store_true",
                    help="run only allowlist.txt entries; exit 1 if any of them fails")
    ap.add_argument("--modes", default=None,
                    help=f"comma list of {','.join(MODES)} (default: all)")
    ap.add_argument("--tests", default=None,
                    help="comma list of test numbers or names to run (default: all applicable)")
    ap.add_argument("--jobs", type=int, default=2, help="make -j for the build (default 2)")
    ap.add_argument("--multiplier", default="3",
                    help="test.timeout.multiplier (default 3, for a 2-core machine)")
    ap.add_argument("--group-timeout", type=int, default=1200,
                    help="harness kill timeout per test number, seconds (default 1200)")
    ap.add_argument("--retries", type=int, default=None,
                    help="re-run a failing test number once (default: 1 in --ci, 0 otherwise)")
    ap.add_argument("--rebuild", action="store_true", help="force a librdkafka rebuild")
    ap.add_argument("--build-only", action="store_true", help="only build, run nothing")
    ap.add_argument("--no-klamm-build", action="store_true",
                    help="use target/release/klamm as is (or $KLAMM_BIN)")
    ap.add_argument("--keep", action="store_true", help="keep broker data dirs")
    ap.add_argument("--broker-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra klamm --set for every mode (repeatable)")
    ap.add_argument("--out", default=None,
                    help="results file stem (default compat/librdkafka/results for a full "
                         "run, target/librdkafka-compat/ci-results for --ci or partial runs)")
    a = ap.parse_args()

    SCRATCH.mkdir(parents=True, exist_ok=True)
    lockf = open(SCRATCH / ".lock", "w")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("another compat run holds the lock; waiting")
        fcntl.flock(lockf, fcntl.LOCK_EX)

    t_start = time.time()
    version, bdir = build_librdkafka(a.jobs, a.rebuild)
    if a.build_only:
        return 0
    klamm = klamm_binary(a.no_klamm_build)

    tests = parse_tests(bdir / "src" / "tests" / "test.c")
    na = read_not_applicable()
    allow = read_allowlist(HERE / "allowlist.txt")  # name -> [modes]

    modes = a.modes.split(",") if a.modes else list(DEFAULT_MODES)
    for m in modes:
        if m not in MODES:
            sys.exit(f"unknown mode {m}")
    wanted = set(a.tests.split(",")) if a.tests else None

    rundir = SCRATCH / "runs" / time.strftime("%Y%m%d-%H%M%S")
    rundir.mkdir(parents=True)
    latest = SCRATCH / "runs" / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(rundir.name)
    # keep the last 5 runs
    old = sorted(p for p in (SCRATCH / "runs").iterdir()
                 if p.is_dir() and not p.is_symlink())[:-5]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)

    # private copy of the broker binary: the lead may rebuild target/release meanwhile
    kcopy = rundir / "klamm"
    shutil.copy2(klamm, kcopy)
    klamm_rev = (f"{git_rev()} (binary built "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(klamm.stat().st_mtime))})")

    ctx = {"bdir": bdir, "version": version, "rundir": rundir, "tests": tests,
           "multiplier": a.multiplier, "group_timeout": a.group_timeout,
           "retries": a.retries if a.retries is not None else (1 if a.ci else 0),
           "keep": a.keep, "klamm_rev": klamm_rev,
           "broker_set": dict(kv.split("=", 1) for kv in a.broker_set)}

    all_results = {}
    for mode in modes:
        scenario = MODES[mode][2]
        by_num = {}
        for t in tests:
            if t["local"] or t["manual"]:
                continue
            if scenario not in t["scenario"].split(","):
                continue
            if a.ci:
                if mode not in allow.get(t["name"], []):
                    continue
            elif wanted and t["num"] not in wanted and t["name"] not in wanted:
                continue
            if t["name"] in na:
                all_results.setdefault(mode, {})[t["name"]] = {
                    "status": "n/a", "secs": 0.0, "reason": na[t["name"]], "log": ""}
                continue
            by_num.setdefault(t["num"], []).append(t["name"])
        if not by_num:
            continue
        log(f"=== mode {mode}: {sum(len(v) for v in by_num.values())} tests in "
            f"{len(by_num)} test-runner invocations")
        all_results.setdefault(mode, {}).update(run_mode(mode, by_num, ctx, kcopy))
        # CI: keep only allow-listed names of the numbers run
        if a.ci:
            all_results[mode] = {n: r for n, r in all_results[mode].items()
                                 if mode in allow.get(n, [])}

    ctx["elapsed"] = time.time() - t_start
    full = not a.ci and not wanted and a.modes is None
    stem = a.out or (str(HERE / "results") if full else str(SCRATCH / "ci-results"))
    (rundir / "results.json").write_text(json.dumps(all_results, indent=1))
    run_modes = [m for m in modes if m in all_results]
    write_reports(all_results, ctx, run_modes, na, stem + ".md", stem + ".tsv",
                  "librdkafka test suite against Klamm" + (" (CI allow-list)" if a.ci else ""))
    log(f"logs: {rundir}")

    if a.ci:
        regressions, flaky, passed = [], [], 0
        for name, ms in allow.items():
            for m in ms:
                if m not in modes:
                    continue
                r = all_results.get(m, {}).get(name)
                if not r or r["status"] != "pass":
                    regressions.append((name, m, r))
                else:
                    passed += 1
                    if r["reason"].startswith("FLAKY"):
                        flaky.append((name, m, r))
        for name, m, r in flaky:
            log(f"flaky (passed on retry): {name} [{m}]: {r['reason'][:200]}")
        log(f"CI: {passed} allow-listed tests passed, {len(regressions)} failed, "
            f"{ctx['elapsed'] / 60:.1f} min")
        if regressions:
            for name, m, r in regressions:
                why = (f"{r['status']}: {r['reason'][:300]} (log {rundir / r['log']})"
                       if r else "not run (unknown test name?)")
                log(f"REGRESSION {name} [{m}]: {why}")
            return 1
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
