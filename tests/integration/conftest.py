"""Shared fixtures for muster's process-level integration tests.

Every test starts real processes (musterd, workers, the muster CLI) in a private runtime
directory and talks to them over real sockets. Everything started here is killed when the
test ends, and every wait is bounded. What `spawn`/`popen` start also dies with the test
process itself (a pytest killed outright runs no teardown): see `popen`. A failed test's report
ends with the last lines of the log of every process it started (pytest_runtest_makereport).

Fixtures and helpers:
  build_dir            Path of the CMake build (env MUSTER_BUILD_DIR, default <repo>/build)
  daemon               a running musterd (ping 200 ms, liveness 3) in a private runtime dir
  start_daemon(...)    start another one (extra flags, ping_ms=, liveness=; own runtime dir)
  start_worker(d, ...) start muster-example-worker against daemon d; .wait_ready()
  run_cli(d, *args)    fixture returning muster_cli: run `muster` against daemon d
  spawn(args, env, log) start a process (own session, output to log), killed after the test
  popen(args, **kw)    subprocess.Popen whose process dies with the test process
  wait_for(pred, timeout, what)
"""
from __future__ import annotations

import ctypes
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MUSTER_BUILD_DIR", REPO / "build"))

_PROCS: list[subprocess.Popen] = []

# Run under tools/sanitize asan (it sets ASAN_OPTIONS): a process's RSS then holds ASan's
# quarantine of freed memory (256 MiB by default, kept to catch use after free), its redzones
# and shadow, so a bound on a process's memory means nothing there.
UNDER_ASAN = "ASAN_OPTIONS" in os.environ


def wait_for(pred, timeout: float = 10.0, what: str = "condition", interval: float = 0.05):
    """Polls pred() until it returns a truthy value; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


# ---- processes that die with the test process ---------------------------------------------
# A test process killed outright (SIGKILL, `timeout -s KILL`, a CI job's time limit) runs no
# teardown: _kill_everything never comes, and what it started in sessions of its own (so that
# killpg reaches their children, and `timeout` does not signal them) would live on as orphans of
# pid 1 — musterd holding its sockets, workers attached to it. So each process gets the Linux
# parent-death signal, PR_SET_PDEATHSIG = SIGKILL: the kernel kills it as soon as its parent is
# gone. That signal follows the *thread* that forked the child (it fires when that thread
# ends), so every process is started on one thread that lives as long as the test process, the
# spawner, whatever thread a test starts it from (a musterd started from an asyncio executor
# would otherwise die with the executor's thread, at the end of asyncio.run).

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_spawn_requests: "queue.SimpleQueue[tuple[Callable[[], subprocess.Popen], Future]]" = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _die_with(parent: int) -> Callable[[], None]:
    """The child's set-up between fork and exec: SIGKILL once `parent` (this process) is gone."""
    def set_up() -> None:
        if _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != parent:  # the parent died before the prctl: no signal will come
            os._exit(1)
    return set_up


def _spawner_loop() -> None:
    while True:
        start, done = _spawn_requests.get()
        if done.set_running_or_notify_cancel():
            try:
                done.set_result(start())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                done.set_exception(e)


def popen(args, **kw) -> subprocess.Popen:
    """subprocess.Popen(args, **kw) whose process is killed (SIGKILL) when the test process ends,
    however it ends; started on the spawner thread (see above), from any thread."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawner_loop, name="test-process-spawner", daemon=True)
            _spawner.start()
    done: Future = Future()
    set_up = _die_with(os.getpid())
    _spawn_requests.put((lambda: subprocess.Popen(args, preexec_fn=set_up, **kw), done))
    return done.result()


def spawn(args, env, log_path: Path, **kw) -> subprocess.Popen:
    """Starts `args` in a session of its own, its output appended to `log_path`; killed (its
    process group) when the test ends, and with the test process (popen)."""
    log = open(log_path, "ab")
    proc = popen([str(a) for a in args], env=env, stdout=log, stderr=subprocess.STDOUT,
                 start_new_session=True, **kw)
    proc.log_path = log_path  # type: ignore[attr-defined]
    _PROCS.append(proc)
    return proc


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def read_log(proc) -> str:
    return Path(proc.log_path).read_text(errors="replace")


@dataclass
class Daemon:
    runtime_dir: Path
    data_dir: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)
    starts: int = 0

    @property
    def client_address(self) -> str:
        return f"ipc://{self.runtime_dir}/client.sock"

    @property
    def log(self) -> str:
        return read_log(self.proc)

    def start(self):
        self.starts += 1
        log = self.runtime_dir.parent / f"musterd-{self.starts}.log"
        self.proc = spawn([BUILD / "broker" / "musterd", "--data-dir", self.data_dir, *self.args],
                          self.env, log)
        wait_for(lambda: "ready" in read_log(self.proc) or self.proc.poll() is not None,
                 10, "musterd to start")
        assert self.proc.poll() is None, f"musterd exited:\n{read_log(self.proc)}"
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15.0) -> int:
        return stop(self.proc, sig, timeout)

    def restart(self):
        self.stop()
        return self.start()


def make_daemon(base: Path, *args, ping_ms: int = 200, liveness: int = 3) -> Daemon:
    base.mkdir(parents=True, exist_ok=True)
    runtime = base / "run"
    env = dict(os.environ, MUSTER_RUNTIME_DIR=str(runtime))
    d = Daemon(runtime_dir=runtime, data_dir=base / "data",
               args=["--ping-interval-ms", str(ping_ms), "--liveness", str(liveness), "--log-level", "debug",
                     *map(str, args)],
               env=env)
    return d.start()


@dataclass
class Worker:
    proc: subprocess.Popen
    worker_id: str
    daemon: Daemon

    @property
    def log(self) -> str:
        return read_log(self.proc)

    def wait_ready(self, timeout=10.0):
        def ready():
            out = muster_cli(self.daemon, "workers", "--json")
            if out.returncode != 0:
                return None
            return any(w["worker_id"] == self.worker_id and w["state"] == "ready"
                       for w in json.loads(out.stdout))
        wait_for(ready, timeout, f"worker {self.worker_id} to be ready")
        return self


def muster_cli(daemon: Daemon, *args, timeout: float = 60, input: str | None = None):
    """Runs the `muster` CLI against `daemon`."""
    return subprocess.run([str(BUILD / "tools" / "muster"), *map(str, args)], env=daemon.env,
                          capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def run_cli():
    """run_cli(daemon, *args, timeout=60, input=None) -> CompletedProcess (the muster CLI)."""
    return muster_cli


@pytest.fixture
def build_dir() -> Path:
    assert (BUILD / "broker" / "musterd").exists(), f"build musterd first (looked in {BUILD})"
    return BUILD


@pytest.fixture
def tmp_base():
    # Short paths: ipc:// socket paths must stay under ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="mst-") as d:
        yield Path(d)


@pytest.fixture
def start_daemon(build_dir, tmp_base):
    count = [0]

    def start(*args, ping_ms: int = 200, liveness: int = 3) -> Daemon:
        count[0] += 1
        return make_daemon(tmp_base / f"d{count[0]}", *args, ping_ms=ping_ms, liveness=liveness)
    return start


@pytest.fixture
def daemon(start_daemon) -> Daemon:
    return start_daemon()


@pytest.fixture
def start_worker(build_dir):
    count = [0]

    def start(daemon: Daemon, *args, worker_id: str | None = None) -> Worker:
        count[0] += 1
        wid = worker_id or f"w{count[0]}-{os.getpid()}"
        log = daemon.runtime_dir.parent / f"worker-{wid}.log"
        proc = spawn([BUILD / "worker" / "muster-example-worker", "--worker-id", wid,
                      "--log-level", "debug", *args], daemon.env, log)
        return Worker(proc, wid, daemon)
    return start


# ---- what a failed test shows: the logs of the processes it started ------------------------
# A test that fails only now and then (a loaded CI machine) must be diagnosable from the CI
# output alone: its temp dirs are gone by then. So the report of a failed test gets a section per
# process it started (spawn), the last lines of its log, read before the teardown kills them.

_LOG_TAIL_LINES = 150


def _log_tail(path: Path) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(unreadable: {e})"
    skipped = len(lines) - _LOG_TAIL_LINES
    head = [f"... ({skipped} earlier lines)"] if skipped > 0 else []
    return "\n".join(head + lines[-_LOG_TAIL_LINES:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    seen = set()
    for p in _PROCS:
        path = getattr(p, "log_path", None)
        if path is None or path in seen:
            continue
        seen.add(path)
        args = p.args if isinstance(p.args, (list, tuple)) else [p.args]
        state = "running" if p.poll() is None else f"exit {p.returncode}"
        report.sections.append((f"log of {Path(str(args[0])).name} ({state}): {path}", _log_tail(path)))


@pytest.fixture(autouse=True)
def _kill_everything():
    yield
    while _PROCS:
        p = _PROCS.pop()
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
