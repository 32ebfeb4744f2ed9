"""test_typescript_sdk.py — the TypeScript SDK against a real musterd.

The TypeScript example worker (worker/examples/typescript/example-worker.js) serves ts.hello,
ts.echo and ts.digest; the `muster` CLI and the TypeScript client (example-client.js) call them,
and the TypeScript client calls the C++ example worker's hello, echo, sleep and fail. Values must
come back exactly: int64 limits, integral floats, unicode, bytes, empty and nested lists and
maps, null and booleans.

Uses the fixtures of conftest.py: `daemon` (a musterd in a private runtime dir), `start_worker`
(the C++ example worker) and `run_cli` (the muster CLI). Builds the TypeScript SDK with npm if
it is not built. Every process started here has a timeout and is stopped in a finally.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import popen
from link_cutter import LinkCutter

REPO = Path(__file__).resolve().parents[2]
TS_DIR = REPO / "worker" / "typescript"
EXAMPLES = REPO / "worker" / "examples" / "typescript"
TS_WORKER = EXAMPLES / "example-worker.js"
TS_CLIENT = EXAMPLES / "example-client.js"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(NODE is None or NPM is None, reason="node and npm are needed")

# A JSON document exercising every value kind; Python's json keeps 1 (int) and 1.0 (float) apart
# and big integers exact, so strict_equal can check kinds as well as values.
RICH = {
    "null": None,
    "yes": True,
    "no": False,
    "zero": 0,
    "int64_max": 9223372036854775807,
    "int64_min": -9223372036854775808,
    "beyond_js_safe": 9007199254740993,
    "float_one": 1.0,
    "float_neg": -2.5,
    "float_tiny": 5e-324,
    "float_big": 1.7976931348623157e308,
    "third": 0.3333333333333333,
    "empty_string": "",
    "unicode": "héllo wörld ☃ 日本語 😀",
    "bytes": {"$bytes": "AAEC/f7/"},
    "empty_bytes": {"$bytes": ""},
    "empty_list": [],
    "empty_map": {},
    "nested": {"list": [1, [2.0, [None, {"deep": [True, "x", {"$bytes": "QQ=="}]}]]], "map": {"b": 1, "a": 2}},
    "error": {"$error": {"code": "E_TEST", "message": "carried as data"}},
}


def strict_equal(a, b) -> bool:
    """Equal values of equal JSON kinds (1 != 1.0, True != 1) with the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return a == b


def run(cmd: list[str], *, env: dict | None = None, timeout: float = 60, cwd: Path | None = None, input: str | None = None):
    return subprocess.run(
        cmd, env=env, cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def ts_sdk():
    """Makes sure the SDK is installed and built (npm ci once, tsc when the sources are newer)."""
    if not (TS_DIR / "node_modules" / "zeromq").is_dir():
        r = run([NPM, "ci", "--no-audit", "--no-fund"], cwd=TS_DIR, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    built = TS_DIR / "dist" / "src" / "index.js"
    sources = [p for p in (TS_DIR / "src").rglob("*.ts")]
    if not built.exists() or max(p.stat().st_mtime for p in sources) > built.stat().st_mtime:
        r = run([NPM, "run", "build"], cwd=TS_DIR, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    return TS_DIR


def cli_address_args(daemon) -> list[str]:
    return ["--client-address", daemon.client_address]


def ts_call(daemon, node: str, inputs, *extra: str, timeout: float = 60):
    """Calls a node with the TypeScript client; returns the CompletedProcess."""
    text = inputs if isinstance(inputs, str) else json.dumps(inputs)
    return run(
        [NODE, str(TS_CLIENT), *cli_address_args(daemon), "call", node, text, *extra],
        env=daemon.env,
        timeout=timeout,
    )


def ts_list(daemon, what: str):
    r = run([NODE, str(TS_CLIENT), *cli_address_args(daemon), what], env=daemon.env, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def call_until_served(daemon, node: str, inputs, timeout: float = 30):
    """Calls until the node is served (a just-attached worker is confirming for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        r = ts_call(daemon, node, inputs)
        if r.returncode == 0 or "NO_WORKER" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def wait_ready(daemon, run_cli, worker_id: str, proc=None, timeout: float = 30) -> None:
    """Waits until `muster workers --json` shows the worker ready (confirmed, dispatchable)."""

    def ready():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker {worker_id} exited with {proc.returncode}")
        r = run_cli(daemon, "workers", "--json")
        if r.returncode != 0:
            return None
        return any(w["worker_id"] == worker_id and w["state"] == "ready" for w in json.loads(r.stdout))

    wait_until(ready, timeout, f"worker {worker_id} to be ready")


@contextlib.contextmanager
def process(cmd: list[str], env: dict, log_path: Path):
    """Runs a long-lived process with its output in log_path (printed if the test fails);
    SIGTERM then SIGKILL in the end, whatever happens."""
    with open(log_path, "ab") as log:
        proc = popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    except BaseException:
        print(f"---- {log_path} ----\n{log_path.read_text(errors='replace')[-8000:]}")
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture()
def ts_worker(daemon, ts_sdk, run_cli):
    cmd = [NODE, str(TS_WORKER), "--prefix", "ts.", "--worker-id", "ts-it-worker", "--capacity", "4", "--log-level", "debug"]
    with process(cmd, daemon.env, daemon.runtime_dir.parent / "ts-worker.log") as proc:
        wait_ready(daemon, run_cli, "ts-it-worker", proc)
        yield proc


@pytest.fixture()
def cpp_worker(daemon, start_worker, run_cli):
    w = start_worker(daemon, "--capacity", "4", worker_id="cpp-it-worker")
    wait_ready(daemon, run_cli, "cpp-it-worker", w.proc)
    return w


# ---- the CLI calls the TypeScript worker ----------------------------------------------------


def test_cli_calls_ts_worker(daemon, ts_worker, run_cli):
    r = call_until_served(daemon, "ts.hello", {"name": "Ada"})
    assert r.returncode == 0, r.stderr

    r = run_cli(daemon, "call", "ts.hello", '{"name": "Ada"}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}

    r = run_cli(daemon, "call", "ts.hello", "{}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"greeting": "Hello world", "shout": "HELLO WORLD"}

    r = run_cli(daemon, "call", "ts.echo", json.dumps(RICH))
    assert r.returncode == 0, r.stderr
    assert strict_equal(json.loads(r.stdout), RICH), r.stdout

    r = run_cli(daemon, "call", "ts.digest", '{"data": "abc"}')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["hex"] == hashlib.sha256(b"abc").hexdigest()
    assert out["size"] == 3

    r = run_cli(daemon, "call", "ts.digest", "{}")
    assert r.returncode != 0
    assert "error: INVALID_REQUEST:" in r.stderr


# ---- the TypeScript client calls the TypeScript worker ----------------------------------------


def test_ts_client_calls_ts_worker(daemon, ts_worker):
    r = call_until_served(daemon, "ts.hello", {"name": "Zoë"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"greeting": "Hello Zoë", "shout": "HELLO ZOË"}

    r = ts_call(daemon, "ts.echo", RICH)
    assert r.returncode == 0, r.stderr
    assert strict_equal(json.loads(r.stdout), RICH), r.stdout

    r = ts_call(daemon, "ts.digest", {"data": {"$bytes": "AQID"}}, "--parameters", '{"algorithm": "md5"}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hex"] == hashlib.md5(b"\x01\x02\x03").hexdigest()

    nodes = {n["spec"]["name"]: n for n in ts_list(daemon, "nodes")}
    assert nodes["ts.hello"]["spec"]["category"] == "examples"
    assert [p["name"] for p in nodes["ts.hello"]["spec"]["inputs"]] == ["name"]
    workers = {w["workerId"]: w for w in ts_list(daemon, "workers")}
    assert workers["ts-it-worker"]["sdk"].startswith("muster-typescript/")
    assert workers["ts-it-worker"]["capacity"] == 4
    status = ts_list(daemon, "status")
    assert status["workers"] >= 1


def test_ts_worker_detaches_on_sigterm(daemon, ts_worker):
    r = call_until_served(daemon, "ts.hello", {})
    assert r.returncode == 0, r.stderr
    ts_worker.send_signal(signal.SIGTERM)
    assert ts_worker.wait(timeout=20) == 0
    deadline = time.monotonic() + 20
    while True:
        r = ts_call(daemon, "ts.hello", {})
        if r.returncode != 0 and "NO_WORKER" in r.stderr:
            break
        assert time.monotonic() < deadline, f"ts.hello still served after the worker stopped: {r.stdout} {r.stderr}"
        time.sleep(0.1)


# ---- the TypeScript client calls the C++ worker ---------------------------------------------


def test_ts_client_calls_cpp_worker(daemon, cpp_worker, ts_sdk):
    r = call_until_served(daemon, "hello", {"name": "Ada"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}

    r = ts_call(daemon, "echo", RICH)
    assert r.returncode == 0, r.stderr
    assert strict_equal(json.loads(r.stdout), RICH), r.stdout

    r = ts_call(daemon, "sleep", {"ms": 200}, "--progress", "--timeout-ms", "20000")
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout)["slept_ms"], int)
    assert "progress: 10/10" in r.stderr

    r = ts_call(daemon, "fail", {"message": "boom ☹"})
    assert r.returncode != 0
    assert "error: WORKER_ERROR: boom ☹" in r.stderr


NODE_STATS_SCRIPT = """
const { Client } = require(process.argv[1]);
(async () => {
  const client = new Client({ clientAddress: process.argv[2] });
  try {
    const report = await client.nodeStats();
    // Plain numbers only: JSON.stringify throws on a bigint.
    process.stdout.write(JSON.stringify(report));
  } finally {
    client.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_ts_client_node_stats_reads_musterds_per_node_statistics(daemon, cpp_worker, ts_sdk, run_cli):
    """client.nodeStats(): musterd's GetNodeStats, every figure a number, calls made by any client."""
    assert call_until_served(daemon, "hello", {"name": "Ada"}).returncode == 0
    assert run_cli(daemon, "call", "hello", '{"name":"Grace"}').returncode == 0  # another client's call counts
    r = ts_call(daemon, "fail", {"message": "counted by musterd"})
    assert "WORKER_ERROR" in r.stderr

    r = run([NODE, "-e", NODE_STATS_SCRIPT, str(TS_DIR), daemon.client_address], env=daemon.env, timeout=30)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    by_node = {n["node"]: n for n in report["nodes"]}
    hello, fail = by_node["hello"], by_node["fail"]
    assert (hello["completed"], hello["failed"], hello["workers"], hello["workspace"]) == (2, 0, 1, "default")
    service = hello["service"]
    assert service["count"] == 2 and 0 < service["p50Us"] <= service["p99Us"]
    assert sum(service["counts"]) == 2 and len(service["counts"]) == len(service["upperBoundsUs"]) + 1
    assert hello["queueWait"]["count"] == 2 and isinstance(hello["rate1m"], (int, float))
    assert (fail["completed"], fail["failed"]) == (0, 1)
    assert [f["count"] for f in fail["failures"]] == [1]
    newest = report["recentFailures"][0]
    assert (newest["node"], newest["message"]) == ("fail", "counted by musterd")
    assert isinstance(newest["ageMs"], int) and newest["ageMs"] >= 0


def test_ts_client_timeout_aborts_cpp_sleep(daemon, cpp_worker, ts_sdk):
    assert call_until_served(daemon, "hello", {}).returncode == 0
    r = ts_call(daemon, "sleep", {"ms": 60000}, "--timeout-ms", "300")
    assert r.returncode != 0
    assert "error: TIMEOUT:" in r.stderr
    # The daemon aborted the request on the worker, which stops sleeping and frees its slot.
    deadline = time.monotonic() + 30
    while True:
        workers = {w["workerId"]: w for w in ts_list(daemon, "workers")}
        if workers.get("cpp-it-worker", {}).get("inFlight") == 0:
            break
        assert time.monotonic() < deadline, f"the aborted sleep still holds its slot: {workers}"
        time.sleep(0.1)


def test_ts_worker_reattaches_after_daemon_restart(daemon, ts_worker, run_cli):
    assert call_until_served(daemon, "ts.hello", {}).returncode == 0
    daemon.restart()
    # The new daemon knows no workers; the TS worker sees the new instance and attaches again.
    wait_ready(daemon, run_cli, "ts-it-worker", ts_worker)
    r = call_until_served(daemon, "ts.echo", {"after": "restart"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"after": "restart"}


def test_ts_worker_fails_a_result_over_the_daemons_limit_fast(start_daemon, ts_sdk, run_cli):
    # Issue 12 item 14: a Result over musterd's --max-message-bytes used to leave the caller
    # waiting its whole deadline (TIMEOUT) while the worker re-sent it on every ping. The worker
    # learns the limit from Attached and fails the call at once, naming both sizes. The call
    # itself fits (40 kB of name); the greeting and its shout do not (80 kB).
    daemon = start_daemon("--max-message-bytes", "65536")
    cmd = [NODE, str(TS_WORKER), "--prefix", "ts.", "--worker-id", "ts-limit", "--log-level", "debug"]
    with process(cmd, daemon.env, daemon.runtime_dir.parent / "ts-limit.log") as proc:
        wait_ready(daemon, run_cli, "ts-limit", proc)
        r = run_cli(daemon, "call", "ts.hello", json.dumps({"name": "x" * 40000}), "--timeout-ms", "30000")
        assert r.returncode != 0
        assert "error: WORKER_ERROR:" in r.stderr, r.stderr
        assert "exceeds the daemon's limit of 65536 bytes (--max-message-bytes)" in r.stderr, r.stderr
        r = run_cli(daemon, "call", "ts.hello", '{"name": "small"}')
        assert r.returncode == 0, r.stderr


def test_ts_requests_left_when_the_grace_runs_out_are_the_daemons_to_fail(daemon, ts_sdk, run_cli):
    # PROTOCOL.md §7.5: a TypeScript worker whose shutdown grace ran out aborts what it still
    # runs and does not answer it; musterd applies its worker-death rules: ts.sleep is not
    # idempotent, so the caller (here the TypeScript client) gets WORKER_LOST.
    cmd = [NODE, str(TS_WORKER), "--prefix", "ts.", "--worker-id", "ts-grace", "--log-level", "debug",
           "--shutdown-grace-ms", "300"]
    log_path = daemon.runtime_dir.parent / "ts-grace.log"
    with process(cmd, daemon.env, log_path) as proc:
        wait_ready(daemon, run_cli, "ts-grace", proc)
        call = popen(
            [NODE, str(TS_CLIENT), *cli_address_args(daemon), "call", "ts.sleep", '{"ms": 60000}', "--timeout-ms", "120000"],
            env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            wait_until(lambda: re.search(r"request \d+: ts\.sleep", log_path.read_text(errors="replace")), 20,
                       "the request to reach the worker")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            out, err = call.communicate(timeout=30)
        finally:
            if call.poll() is None:
                call.kill()
                call.wait(timeout=5)
        assert call.returncode == 1, (out, err)
        assert "error: WORKER_LOST:" in err, err
        log = log_path.read_text(errors="replace")
        assert "left unanswered" in log, log


# ---- answers without an Ack (PROTOCOL.md §7.7) ------------------------------------------------

# A worker counting each execution of `count` {i} -> {i} in a file (one line per execution), and a
# caller making `argv[3]` calls of it (i from `argv[5]`, 0 by default), `argv[4]` at a time, that
# prints one JSON line: the calls answered with their own i, and the failures.
COUNTING_WORKER = r'''
'use strict';
const fs = require('node:fs');
const { Worker } = require(process.env.MUSTER_TS_SDK);
const [workerId, log] = process.argv.slice(2);
const worker = new Worker({ workerId, capacity: 16, logger: 'debug' });
worker.node({ name: 'count', inputs: [{ name: 'i', type: 'int', required: true }] }, (ctx) => {
  fs.appendFileSync(log, `${ctx.inputs.i}\n`);
  return { i: ctx.inputs.i };
});
worker.run().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
'''

PIPELINED_CALLER = r'''
'use strict';
const { Client } = require(process.env.MUSTER_TS_SDK);
const [clientAddress, total, depth] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const first = Number(process.argv[5] ?? 0);
(async () => {
  const client = new Client({ clientAddress });
  let next = 0, right = 0;
  const failures = [];
  const one = async () => {
    while (next < total) {
      const i = first + next++;
      try {
        const out = await client.call('count', { i }, { timeoutMs: 60000 });
        if (Number(out.i) === i) right += 1; else failures.push(`call ${i} answered ${out.i}`);
      } catch (e) { failures.push(`call ${i}: ${e.message}`); }
    }
  };
  await Promise.all(Array.from({ length: depth }, one));
  console.log(JSON.stringify({ right, failures: failures.slice(0, 20) }));
  client.close();
})();
'''


def executions_of(log: Path) -> dict:
    """{i: how many times the counting worker ran it}."""
    counts: dict = {}
    if log.exists():
        for line in log.read_text().split():
            counts[int(line)] = counts.get(int(line), 0) + 1
    return counts


def test_ts_worker_without_answer_acks_answers_many_calls_once_each(daemon, ts_sdk, run_cli, tmp_path):
    """The TypeScript worker asks for no Ack per answer and musterd grants it: 3,000 calls, 64 in
    flight, each answered once with its own value and run once; the answers are confirmed
    through the Pongs (the worker forgets them), none is sent again."""
    worker_js, caller_js, log = tmp_path / "worker.js", tmp_path / "caller.js", tmp_path / "runs.log"
    worker_js.write_text(COUNTING_WORKER)
    caller_js.write_text(PIPELINED_CALLER)
    env = dict(daemon.env, MUSTER_TS_SDK=str(TS_DIR))
    log_path = tmp_path / "ts-counting.log"
    with process([NODE, str(worker_js), "ts-many", str(log)], env, log_path) as proc:
        wait_ready(daemon, run_cli, "ts-many", proc)
        r = run([NODE, str(caller_js), daemon.client_address, "3000", "64"], env=env, timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout) == {"right": 3000, "failures": []}
        assert executions_of(log) == {i: 1 for i in range(3000)}
        worker_log = log_path.read_text(errors="replace")
        assert "no answer Acks" in worker_log, worker_log[-4000:]  # granted in Attached
        wait_until(lambda: "forgot" in log_path.read_text(errors="replace"), 20, "the Pong's Ack to confirm the answers")
        assert "kept answer(s) again" not in log_path.read_text(errors="replace")


def test_ts_worker_forgets_an_answer_the_restarted_daemon_does_not_know(daemon, ts_sdk, run_cli, tmp_path):
    """A call that is not durable is answered while musterd is down: the worker keeps the answer,
    lists it to the new instance, which does not know it (the call died with the old one, its
    caller got an error), so the Ack to that Pong does not name it and the worker forgets it. It
    is never sent again nor run again."""
    worker_js, log = tmp_path / "worker.js", tmp_path / "runs.log"
    worker_js.write_text(COUNTING_WORKER.replace(
        "fs.appendFileSync(log, `${ctx.inputs.i}\\n`);\n  return { i: ctx.inputs.i };",
        "fs.appendFileSync(log, `${ctx.inputs.i}\\n`);\n"
        "  while (!fs.existsSync(`${log}.gate`)) await new Promise((r) => setTimeout(r, 20));\n"
        "  return { i: ctx.inputs.i };").replace("(ctx) => {", "async (ctx) => {"))
    env = dict(daemon.env, MUSTER_TS_SDK=str(TS_DIR))
    log_path = tmp_path / "ts-counting.log"
    with process([NODE, str(worker_js), "ts-restart", str(log)], env, log_path) as proc:
        wait_ready(daemon, run_cli, "ts-restart", proc)
        call = popen([NODE, str(TS_CLIENT), *cli_address_args(daemon), "call", "count", '{"i": 7}', "--timeout-ms", "60000"],
                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            wait_until(lambda: executions_of(log) == {7: 1}, 20, "the call to run")
            assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
            out, err = call.communicate(timeout=60)  # the caller's daemon went away
            assert call.returncode != 0, (out, err)
        finally:
            if call.poll() is None:
                call.kill()
                call.wait(timeout=5)
        (tmp_path / "runs.log.gate").touch()  # answered while musterd is down: kept
        daemon.start()
        wait_ready(daemon, run_cli, "ts-restart", proc)
        wait_until(lambda: "forgot 1 kept answer(s)" in log_path.read_text(errors="replace"), 20,
                   "the worker to forget the answer the new instance does not know")
        worker_log = log_path.read_text(errors="replace")
        assert "reporting 0 running request(s) and 1 unconfirmed answer(s)" in worker_log, worker_log[-4000:]
        assert "kept answer(s) again" not in worker_log
        assert executions_of(log) == {7: 1}
        # The worker serves on: a new call is answered (and run once).
        (tmp_path / "runs.log.gate").touch()
        r = run([NODE, str(TS_CLIENT), *cli_address_args(daemon), "call", "count", '{"i": 8}'], env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert executions_of(log) == {7: 1, 8: 1}


# ---- one connection per worker (PROTOCOL.md §7.10) --------------------------------------------


def test_ts_worker_connects_once_and_answers_each_call_once_across_a_cut_and_a_restart(start_daemon, ts_sdk, run_cli, tmp_path):
    """The TypeScript worker asks musterd for everything on its DEALER (`direct`) and connects no
    SUB (counted by link_cutter.py, a byte proxy between it and musterd's ipc sockets). Calls
    complete and run exactly once, also when that one connection is cut under them and after a
    musterd restart, from which the worker comes back when its connection is made again, not after
    a liveness window of silence."""
    daemon = start_daemon(ping_ms=1000)  # a worker back only after 3 s of silence would log "no ping for"
    worker_js, caller_js, log = tmp_path / "worker.js", tmp_path / "caller.js", tmp_path / "runs.log"
    worker_js.write_text(COUNTING_WORKER)
    caller_js.write_text(PIPELINED_CALLER)
    log_path = tmp_path / "ts-direct.log"
    with LinkCutter(daemon.runtime_dir, tmp_path / "via-proxy") as link:
        env = dict(daemon.env, MUSTER_TS_SDK=str(TS_DIR), MUSTER_RUNTIME_DIR=str(link.listen_dir))
        caller_env = dict(daemon.env, MUSTER_TS_SDK=str(TS_DIR))
        with process([NODE, str(worker_js), "ts-direct", str(log)], env, log_path) as proc:
            wait_ready(daemon, run_cli, "ts-direct", proc)
            assert "direct: one connection" in log_path.read_text(errors="replace")  # granted in Attached
            assert link.connections_to == {"request.sock": 0, "response.sock": 1}
            listed = json.loads(run_cli(daemon, "workers", "--json").stdout)
            assert [(w["worker_id"], w["direct"]) for w in listed] == [("ts-direct", True)]  # 'muster workers' DIRECT
            r = run([NODE, str(caller_js), daemon.client_address, "300", "16"], env=caller_env, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            assert json.loads(r.stdout) == {"right": 300, "failures": []}

            # The connection cut under 1,000 calls: the worker attaches again on the new one.
            caller = popen([NODE, str(caller_js), daemon.client_address, "1000", "16", "300"], env=caller_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            try:
                wait_until(lambda: len(executions_of(log)) >= 500, 60, "calls to run before the cut")
                link.cut()
                out, err = caller.communicate(timeout=120)
            finally:
                if caller.poll() is None:
                    caller.kill()
                    caller.wait(timeout=5)
            assert caller.returncode == 0, out + err
            assert json.loads(out) == {"right": 1000, "failures": []}
            assert link.connections_to == {"request.sock": 0, "response.sock": 2}

            daemon.restart()
            wait_ready(daemon, run_cli, "ts-direct", proc)
            r = run([NODE, str(caller_js), daemon.client_address, "200", "16", "1300"], env=caller_env, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            assert json.loads(r.stdout) == {"right": 200, "failures": []}
            assert executions_of(log) == {i: 1 for i in range(1500)}
            assert link.connections_to["request.sock"] == 0
            worker_log = log_path.read_text(errors="replace")
            assert worker_log.count("attaching again: the response connection broke") >= 2, worker_log[-4000:]
            assert "no ping for" not in worker_log, worker_log[-4000:]


def test_ts_worker_without_direct_connects_twice(daemon, ts_sdk, run_cli, tmp_path):
    """`--no-direct` (Worker `direct: false`): a SUB and a DEALER, as before, and it is served."""
    with LinkCutter(daemon.runtime_dir, tmp_path / "via-proxy") as link:
        env = dict(daemon.env, MUSTER_RUNTIME_DIR=str(link.listen_dir))
        cmd = [NODE, str(TS_WORKER), "--prefix", "ts.", "--worker-id", "ts-two", "--no-direct", "--log-level", "debug"]
        with process(cmd, env, tmp_path / "ts-two.log") as proc:
            wait_ready(daemon, run_cli, "ts-two", proc)
            assert link.connections_to == {"request.sock": 1, "response.sock": 1}
            listed = json.loads(run_cli(daemon, "workers", "--json").stdout)
            assert [(w["worker_id"], w["direct"]) for w in listed] == [("ts-two", False)]
            r = call_until_served(daemon, "ts.echo", {"two": "connections"})
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout) == {"two": "connections"}
