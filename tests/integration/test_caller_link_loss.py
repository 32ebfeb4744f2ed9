"""A caller's connection to musterd breaks while both live on (PROTOCOL.md §8.3, docs/STREAMS.md
§3): link_cutter.py proxies the CALLER's client socket and aborts its connection mid-call —
losing whatever was on the way — and libzmq connects again through the proxy, a new peer to
musterd. A resumable call is bound to the new connection with CallResume and goes on:

(a) a 40 MiB chunked echo (upload and download) cut twice mid-stream returns the whole value;
(b) an item stream cut when no item was on the way delivers every item in order, then the
    Result; cut after an item was lost on the way (the proxy drops it first), it ends
    UNAVAILABLE "N item(s) were lost in the reconnect" — which one happens is decided by where
    the test cuts;
(c) a small call forced resumable whose Result is lost in the break gets it, exactly once, from
    musterd's kept reply;
(d) after a musterd restart the new instance does not know the call: UNAVAILABLE "no such call".

Each case runs with the C++ client library (`muster call`), the Python SDK (resume_caller.py,
test_chunk_matrix's caller) and the TypeScript SDK (chunk_caller.js, stream_caller.js); the
worker is the C++ example worker. An SDK that does not implement §8.3 C6 yet is skipped, naming
what is missing.
"""
from __future__ import annotations

import inspect
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from chunk_peers import MiB
from conftest import _PROCS, BUILD, REPO, muster_cli, popen, wait_for
from link_cutter import CLIENT_SOCKETS, LinkCutter
from test_chunk_matrix import CALLER_JS, PY_CALLER, echoed_sha256, write_input
from test_stream_sdk import start_worker, typescript_ready

HERE = Path(__file__).resolve().parent
PY_RESUME_CALLER = HERE / "resume_caller.py"
STREAM_CALLER_JS = HERE / "stream_caller.js"
CALLERS = ["cpp", "py", "ts"]
ITEMS, ITEM_DELAY_MS = 4, 2500  # the next item is 2.5 s away when the test cuts after one
SMALL_MS = 2000

# The TypeScript caller of case (c): sleep, forced resumable, each Progress as a line.
TS_SMALL = """
const path = require('node:path');
const { Client, MusterError } = require(path.resolve(process.argv[1], 'worker', 'typescript'));
(async () => {
  const client = new Client({ logger: 'warn' });
  let outputs = null, error = null;
  try {
    outputs = await client.call('sleep', { ms: Number(process.argv[2]) }, {
      timeoutMs: 60000, resumable: true,
      onProgress: (p) => process.stdout.write(JSON.stringify({ progress: p.step }) + '\\n'),
    });
    outputs = JSON.parse(JSON.stringify(outputs, (_k, x) => (typeof x === 'bigint' ? Number(x) : x)));
  } catch (e) {
    error = e instanceof MusterError ? { code: e.code, message: e.message } : { code: 'EXCEPTION', message: String(e) };
  }
  process.stdout.write(JSON.stringify({ outputs, error }) + '\\n');
  client.close();
})();
"""


def why_not_resumable(caller: str) -> str | None:
    """Why `caller`'s SDK cannot run these cases (None: it can): it must send Submit.resumable
    and CallResume (PROTOCOL.md §8.3 C6)."""
    if caller == "py":
        import muster
        if "resumable" not in inspect.signature(muster.Client.call).parameters:
            return "the Python SDK's Client does not implement resumable calls (PROTOCOL.md §8.3 C6) yet"
    if caller == "ts":
        if not typescript_ready():
            return "the TypeScript SDK is not built (tools/test builds it)"
        client = REPO / "worker" / "typescript" / "dist" / "src" / "client.js"
        if "CallResume" not in client.read_text(errors="replace"):
            return "the TypeScript SDK's Client does not implement resumable calls (PROTOCOL.md §8.3 C6) yet"
    return None


@pytest.fixture
def daemon(start_daemon):
    """Pinging every second: the C++ worker hashing 40 MiB on a loaded machine is not late."""
    return start_daemon(ping_ms=1000)


@pytest.fixture
def caller(request):
    reason = why_not_resumable(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@dataclass
class Outcome:
    items: int
    outputs: dict | None
    code: str | None  # None: the call returned its outputs
    message: str


class Run:
    """One caller process; its stdout and stderr read line by line as they come."""

    def __init__(self, args, env):
        self.proc = popen([str(a) for a in args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
        _PROCS.append(self.proc)
        self.lines = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        self.seen = {"stdout": [], "stderr": []}
        self.threads = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in self.lines]
        for t in self.threads:
            t.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            self.lines[name].put(line.rstrip("\n"))
        self.lines[name].put(None)

    def next_line(self, pipe: str, timeout: float = 60) -> str:
        """The next line the caller writes on `pipe` (waits at most `timeout` s for it)."""
        line = self.lines[pipe].get(timeout=timeout)
        assert line is not None, f"the caller ended first: {self.finish()}"
        self.seen[pipe].append(line)
        return line

    def finish(self, timeout: float = 180) -> tuple[int, list[str], list[str]]:
        self.proc.wait(timeout)
        for t in self.threads:
            t.join(10)
        for name, q in self.lines.items():
            while (line := q.get_nowait()) is not None:
                self.seen[name].append(line)
        return self.proc.returncode, self.seen["stdout"], self.seen["stderr"]

    def outcome(self, caller: str) -> Outcome:
        rc, out, err = self.finish()
        if caller == "cpp":  # muster call: items, then the outputs as JSON lines; an error on stderr
            if rc == 0:
                return Outcome(len(out) - 1, json.loads(out[-1]), None, "")
            failure = next((line for line in err if line.startswith("error: ")), f"exit {rc}: {err}")
            code, _, message = failure.removeprefix("error: ").partition(": ")
            return Outcome(len(out), None, code, message)
        assert out, f"{caller} caller printed nothing (exit {rc}):\n" + "\n".join(err)
        last = json.loads(out[-1])
        if "outputs" not in last and "error" not in last:  # test_chunk_matrix's Python caller: the outputs
            last = {"outputs": last, "error": None}
        error = last.get("error")
        items = last["items"] if isinstance(last.get("items"), int) else 0
        if "in_order" in last:  # stream_caller.js
            assert last["in_order"], last
        return Outcome(items, last.get("outputs"), error and error["code"], error["message"] if error else "")


def via(daemon, link: LinkCutter) -> dict:
    """The caller's environment: its client socket is the proxy's."""
    return dict(daemon.env, MUSTER_RUNTIME_DIR=str(link.listen_dir))


def address(env: dict) -> str:
    return f"ipc://{env['MUSTER_RUNTIME_DIR']}/client.sock"


def echo_args(caller: str, env: dict, source: Path, out_dir: Path) -> list:
    if caller == "cpp":
        return [BUILD / "tools" / "muster", "call", "echo", "--input", f"data=@{source}", "--timeout", "120s",
                "--output-dir", out_dir]
    if caller == "py":
        return [sys.executable, "-c", PY_CALLER, address(env), "echo", source, out_dir]
    return ["node", CALLER_JS, "echo", "--mib", "40", "--from", "file", "--file", source, "--timeout-ms", "120000",
            "--output-file", out_dir / "data"]


def items_args(caller: str, env: dict) -> list:
    """count: ITEMS items, ITEM_DELAY_MS before each; the first line on stdout means an item came."""
    if caller == "cpp":
        return [BUILD / "tools" / "muster", "call", "count", json.dumps({"n": ITEMS, "delay_ms": ITEM_DELAY_MS}),
                "--stream", "--timeout", "120s"]
    if caller == "py":
        return [sys.executable, PY_RESUME_CALLER, address(env), "items", ITEMS, ITEM_DELAY_MS]
    return ["node", STREAM_CALLER_JS, "count", json.dumps({"n": ITEMS, "delay_ms": ITEM_DELAY_MS}),
            "--timeout-ms", "120000", "--notify-at", "1"]


def small_args(caller: str, env: dict) -> tuple[list, str]:
    """sleep, forced resumable, with progress; and the pipe each Progress is reported on."""
    if caller == "cpp":
        return [BUILD / "tools" / "muster", "call", "sleep", json.dumps({"ms": SMALL_MS}), "--resumable",
                "--progress", "--timeout", "60s"], "stderr"
    if caller == "py":
        return [sys.executable, PY_RESUME_CALLER, address(env), "small", SMALL_MS], "stdout"
    return ["node", "-e", TS_SMALL, REPO, SMALL_MS], "stdout"


def completed(daemon) -> int:
    out = muster_cli(daemon, "status", "--json")  # straight to musterd, not through the proxy
    return json.loads(out.stdout)["completed"] if out.returncode == 0 else -1


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_40_mib_echo_goes_on_while_the_callers_link_breaks_twice(daemon, tmp_path, caller):
    start_worker(daemon, "cpp")
    source = tmp_path / "input.bin"
    want = write_input(source)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with LinkCutter(daemon.runtime_dir, daemon.runtime_dir.parent / "via", names=CLIENT_SOCKETS) as link:
        env = via(daemon, link)
        run = Run(echo_args(caller, env, source, out_dir), env)
        if link.wait_up(link.up + 12 * MiB, 120, run.proc):  # the input is on its way to musterd
            link.cut()
        if link.wait_down(link.down + 12 * MiB, 120, run.proc):  # the echo is on its way back
            link.cut()
        outcome = run.outcome(caller)
        assert outcome.code is None, outcome
        assert echoed_sha256(caller, outcome.outputs, out_dir) == want
        assert link.cuts == 2
    assert daemon.log.count("calls resumed: 1 open bound") == 2, daemon.log[-4000:]


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_an_item_stream_cut_with_no_item_on_the_way_delivers_every_item_then_the_result(daemon, caller):
    start_worker(daemon, "cpp")
    with LinkCutter(daemon.runtime_dir, daemon.runtime_dir.parent / "via", names=CLIENT_SOCKETS) as link:
        env = via(daemon, link)
        run = Run(items_args(caller, env), env)
        run.next_line("stdout")  # the first item came; the next one is ITEM_DELAY_MS away
        link.cut()
        outcome = run.outcome(caller)
    assert outcome.code is None, outcome
    assert outcome.items == ITEMS
    assert outcome.outputs == {"count": ITEMS}
    assert "calls resumed: 1 open bound" in daemon.log


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_an_item_stream_that_lost_an_item_in_the_break_ends_unavailable(daemon, caller):
    start_worker(daemon, "cpp")
    with LinkCutter(daemon.runtime_dir, daemon.runtime_dir.parent / "via", names=CLIENT_SOCKETS) as link:
        env = via(daemon, link)
        run = Run(items_args(caller, env), env)
        run.next_line("stdout")  # the first item came
        link.drop_down()  # the second one will be lost on the way...
        link.wait_dropped(1, 60, run.proc)
        link.cut()  # ...and then the connection breaks
        outcome = run.outcome(caller)
    assert outcome.code == "UNAVAILABLE", outcome
    assert re.search(r"\b1 item\(s\) were lost in the reconnect", outcome.message), outcome
    assert outcome.items <= 1


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_result_lost_in_the_break_is_delivered_once_from_musterds_kept_reply(daemon, caller):
    start_worker(daemon, "cpp")
    with LinkCutter(daemon.runtime_dir, daemon.runtime_dir.parent / "via", names=CLIENT_SOCKETS) as link:
        env = via(daemon, link)
        args, progress_pipe = small_args(caller, env)
        run = Run(args, env)
        run.next_line(progress_pipe)  # a Progress came, so did the Accepted with the token before it
        link.drop_down()  # what musterd sends from now on is lost: the rest of the progress, the Result
        wait_for(lambda: completed(daemon) >= 1, 60, "the call to end in musterd")
        link.cut()
        outcome = run.outcome(caller)
    assert outcome.code is None, outcome
    outputs = outcome.outputs
    assert outputs["slept_ms"] >= SMALL_MS - 50, outputs
    assert "calls resumed: 0 open bound to the caller's connection, 1 kept repl(ies) delivered" in daemon.log


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_after_a_musterd_restart_a_resumed_call_is_no_such_call(daemon, caller):
    start_worker(daemon, "cpp")
    run = Run(items_args(caller, daemon.env), daemon.env)
    run.next_line("stdout")  # the call streams
    daemon.stop(signal.SIGKILL)
    daemon.start()
    outcome = run.outcome(caller)
    assert outcome.code == "UNAVAILABLE", outcome
    assert "no such call" in outcome.message, outcome
