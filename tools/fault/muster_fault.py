#!/usr/bin/env python3
"""muster_fault.py — the fault-injection driver of docs/RELIABILITY.md.

`run` starts a private musterd with example workers, submits requests continuously from
several client connections and counts, for every request, the terminal replies it gets (by
kind and error code), while it injects faults:

  kill-worker     SIGKILL of a random example worker every --kill-every s (it is restarted
                  with the same worker id, i.e. a new session); `sleep` is not idempotent
                  (WORKER_LOST expected; --idempotent-sleep makes it so), `echo` and `hello` are
                  (re-run elsewhere)
  restart-daemon  SIGKILL of musterd, restarted --down s later on the same endpoints; requests
                  open at the crash get UNAVAILABLE on the client side after timeout + grace;
                  probes check that the C++ client library (the muster CLI) and the Python
                  SDK end such a call with UNAVAILABLE instead of hanging
  netem           one worker in a network namespace behind --loss % loss and --delay ms delay
                  in each direction (tc netem on a veth pair; musterd listens on tcp, --insecure)
  partition       that worker cut off (100 % loss) for --partition s
  bad-worker      a worker that answers pings but never answers work (bad_worker.py)
  vanish-client   a client process SIGKILLed with requests in flight
  shutdown        at the end, SIGTERM with requests in flight: each must get its reply

It prints submitted, completed, failed by code, unavailable (open at a daemon crash), lost (no
terminal reply although the daemon was up) and duplicated (a second terminal reply), and exits
non-zero if lost, duplicated or mismatched (an echo result carrying another request's nonce)
is not 0, or a probe hung.

`durable` runs durable calls on counting workers of the three SDKs while it SIGKILLs musterd
and restarts it on the same journal, and reports durable calls lost, duplicated and
non-idempotent calls run twice (tools/fault/durable.py).
`failover` runs the same durable calls against a failover pair on PostgreSQL, every role in a
network namespace of its own, while the active daemon is SIGKILLed, SIGSTOPped and partitioned
from PostgreSQL in turn, and reports the same counts and the failover times (failover.py).

`abuse` measures docs/RELIABILITY.md's "bounded under abuse" table: a well-behaved client's
latency and musterd's memory while other peers flood submits, send maximum-size messages, open
thousands of connections, or reconnect in a tight loop.

Everything started here is killed when the driver exits; network namespaces are deleted.
Only loopback and the namespace's own veth pair (10.213.x.0/30) are used.
"""
from __future__ import annotations

import argparse
import atexit
import collections
import heapq
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import zmq

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import netem  # noqa: E402
import wire  # noqa: E402

# ---- processes ---------------------------------------------------------------------------------

_CHILDREN: List[subprocess.Popen] = []
_NETNS: list = []  # netem links to delete at exit


def _cleanup():
    for p in list(_CHILDREN):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    _CHILDREN.clear()
    for ns in list(_NETNS):
        ns.delete()


atexit.register(_cleanup)


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


def log(msg: str):
    print(f"[fault {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def spawn(args, log_path: Path, env=None, nofile: int = 0) -> subprocess.Popen:
    out = open(log_path, "ab")

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, max(nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
    p = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True, preexec_fn=limit if nofile else None)
    out.close()
    p.log_path = log_path  # type: ignore[attr-defined]
    _CHILDREN.append(p)
    return p


def kill(p: Optional[subprocess.Popen], sig=signal.SIGKILL, wait: float = 10.0):
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_tcp_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


# ---- the cluster under test --------------------------------------------------------------------


class Cluster:
    """musterd and its workers in a private runtime directory."""

    def __init__(self, build: Path, base: Path, ping_ms: int, liveness: int,
                 daemon_args: List[str], netns, tcp_host: Optional[str] = None):
        self.build = build
        self.base = base
        self.runtime = base / "run"
        self.env = dict(os.environ, MUSTER_RUNTIME_DIR=str(self.runtime))
        self.ping_ms = ping_ms
        self.liveness = liveness
        self.daemon_args = daemon_args
        self.netns = netns
        self.client_address = f"ipc://{self.runtime}/client.sock"
        self.tcp = False
        if tcp_host:  # every socket on loopback TCP (musterd --insecure)
            self.tcp = True
            self.client_address = f"tcp://{tcp_host}:{free_tcp_port(tcp_host)}"
            self.request_address = f"tcp://{tcp_host}:{free_tcp_port(tcp_host)}"
            self.response_address = f"tcp://{tcp_host}:{free_tcp_port(tcp_host)}"
        elif netns:
            ip = netns.host_ip
            self.request_address = f"tcp://{ip}:{free_tcp_port(ip)}"
            self.response_address = f"tcp://{ip}:{free_tcp_port(ip)}"
        else:
            self.request_address = f"ipc://{self.runtime}/request.sock"
            self.response_address = f"ipc://{self.runtime}/response.sock"
        self.daemon: Optional[subprocess.Popen] = None
        self.daemon_starts = 0
        self.workers: Dict[str, Tuple[subprocess.Popen, dict]] = {}
        self.peak_rss_kib = 0
        self.daemon_nofile = 0  # soft RLIMIT_NOFILE for musterd (0: inherited)

    # -- musterd
    def start_daemon(self, timeout: float = 20.0):
        self.daemon_starts += 1
        log_path = self.base / f"musterd-{self.daemon_starts}.log"
        args = [self.build / "broker" / "musterd", "--data-dir", self.base / "data",
                "--request-address", self.request_address,
                "--response-address", self.response_address,
                "--client-address", self.client_address,
                "--ping-interval-ms", self.ping_ms, "--liveness", self.liveness,
                *self.daemon_args]
        if self.netns or self.tcp:
            args.append("--insecure")
        self.daemon = spawn(args, log_path, self.env, nofile=self.daemon_nofile)
        # Ready when its client socket answers a status request (log levels vary).
        deadline = time.monotonic() + timeout
        admin = Admin(self.client_address)
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                text = log_path.read_text(errors="replace")
                raise RuntimeError(f"musterd exited at start:\n{text[-3000:]}")
            if admin.status(0.2) is not None:
                return
        raise RuntimeError(f"musterd did not get ready in {timeout} s")

    def kill_daemon(self, sig=signal.SIGKILL):
        kill(self.daemon, sig, wait=30)

    def daemon_log(self, n: Optional[int] = None) -> str:
        n = n or self.daemon_starts
        p = self.base / f"musterd-{n}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def sample_rss(self) -> int:
        if self.daemon and self.daemon.poll() is None:
            r = rss_kib(self.daemon.pid)
            self.peak_rss_kib = max(self.peak_rss_kib, r)
            return r
        return 0

    # -- workers
    def start_worker(self, wid: str, capacity: int = 4, idempotent: bool = False,
                     in_netns: bool = False):
        args = [self.build / "worker" / "muster-example-worker", "--worker-id", wid,
                "--capacity", capacity, "--request-address", self.request_address,
                "--response-address", self.response_address, "--log-level", "warn"]
        if idempotent:
            args.append("--idempotent")
        if self.netns or self.tcp:
            args.append("--insecure")
        if in_netns:
            args = self.netns.prefix() + [str(a) for a in args]
        p = spawn(args, self.base / f"worker-{wid}.log", self.env)
        self.workers[wid] = (p, dict(capacity=capacity, idempotent=idempotent, in_netns=in_netns,
                                     kind="example"))
        return p

    def start_bad_worker(self, wid: str, mode: str, capacity: int = 2):
        args = [sys.executable, HERE / "bad_worker.py", "--worker-id", wid, "--mode", mode,
                "--capacity", capacity, "--request-address", self.request_address,
                "--response-address", self.response_address, "--node", "echo:idem"]
        p = spawn(args, self.base / f"worker-{wid}.log", self.env)
        self.workers[wid] = (p, dict(capacity=capacity, kind="bad", mode=mode))
        return p

    def kill_worker(self, wid: str):
        p, _ = self.workers[wid]
        kill(p)

    def restart_worker(self, wid: str):
        _, spec = self.workers[wid]
        self.start_worker(wid, spec["capacity"], spec["idempotent"], spec["in_netns"])

    def stop_all(self):
        for wid, (p, _) in self.workers.items():
            kill(p, signal.SIGTERM, wait=5)
        kill(self.daemon, signal.SIGTERM, wait=20)


# ---- a tiny synchronous client (status, readiness) -------------------------------------------


class Admin:
    def __init__(self, address: str):
        self.ctx = zmq.Context.instance()
        self.address = address
        self.rid = 1 << 40

    def status(self, timeout: float = 5.0) -> Optional[dict]:
        s = self.ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(self.address)
        try:
            self.rid += 1
            s.send(wire.status_request(self.rid))
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if s.poll(100):
                    r = wire.read_reply(s.recv_multipart()[-1])
                    if r and r.request_id == self.rid and r.kind == wire.REPLY_STATUS:
                        return wire.read_status(r)
            return None
        finally:
            s.close(0)

    def wait_workers(self, n: int, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.status(2.0)
            if st and st["workers"] >= n:
                return True
            time.sleep(0.1)
        return False


# ---- the load: lanes of closed-loop submits, each request counted --------------------------

# state of a request in a lane's ledger
OPEN, DONE, GAVE_UP, LATE = 1, 2, 3, 4


@dataclass
class LoadConfig:
    client_address: str
    lanes: int = 2
    concurrency: int = 16
    mix: Dict[str, float] = field(default_factory=lambda: {"echo": 0.6, "hello": 0.2, "sleep": 0.2})
    sleep_ms: int = 50
    timeout_ms: int = 3000
    grace_s: float = 5.0
    requests: int = 0          # stop after this many submits in total (0: until told)
    rate: float = 0.0          # submits per second per process (0: as fast as the loop goes)
    seed: int = 1


def _templates(cfg: LoadConfig):
    t = {}
    for node in cfg.mix:
        if node == "echo":
            t[node] = wire.SubmitTemplate("echo", {"pad": "x" * 32}, cfg.timeout_ms, nonce_key="n")
        elif node == "hello":
            t[node] = wire.SubmitTemplate("hello", {"name": "fault"}, cfg.timeout_ms)
        elif node == "sleep":
            t[node] = wire.SubmitTemplate("sleep", {"ms": cfg.sleep_ms}, cfg.timeout_ms)
        elif node == "sleep-long":
            t[node] = wire.SubmitTemplate("sleep", {"ms": cfg.sleep_ms * 20}, cfg.timeout_ms * 3)
        else:
            t[node] = wire.SubmitTemplate(node, {}, cfg.timeout_ms)
    return t


class Lane:
    def __init__(self, ctx: zmq.Context, cfg: LoadConfig, index: int):
        self.cfg = cfg
        self.index = index
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.setsockopt(zmq.IMMEDIATE, 1)   # queue only on a live connection
        self.sock.setsockopt(zmq.SNDHWM, 100000)
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 50)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        self.sock.connect(cfg.client_address)
        self.next_rid = 1
        self.state = bytearray(1)                # rid -> OPEN/DONE/GAVE_UP/LATE
        self.node_of = bytearray(1)              # rid -> index into node names
        self.open: Dict[int, float] = {}         # rid -> sent time
        self.give_up: List[Tuple[float, int]] = []
        self.blocked_since: Optional[float] = None
        self.pending = None                      # (node index, bytes) not yet sent


class Counts:
    def __init__(self):
        self.submitted = 0
        self.completed = 0
        self.failed = collections.Counter()
        self.duplicated = 0
        self.mismatched = 0
        self.unsolicited = collections.Counter()
        self.by_node = collections.defaultdict(collections.Counter)
        self.gave_up: Dict[Tuple[int, int], Tuple[float, float, str]] = {}  # -> (sent, gave up, node)
        self.late: List[Tuple[float, float, str]] = []       # gave up, then a reply came
        self.latencies: List[float] = []
        self.dup_examples: List[str] = []

    def to_dict(self):
        return dict(submitted=self.submitted, completed=self.completed, failed=dict(self.failed),
                    duplicated=self.duplicated, mismatched=self.mismatched,
                    unsolicited=dict(self.unsolicited),
                    by_node={k: dict(v) for k, v in self.by_node.items()},
                    gave_up=list(self.gave_up.values()), late=self.late, latencies=self.latencies,
                    dup_examples=self.dup_examples)


def run_load(cfg: LoadConfig, stop_submit, done_queue, worker_index: int = 0, total_quota=None):
    """One load process: `cfg.lanes` DEALER connections in one poll loop. Submits until
    stop_submit is set (or the quota is used up), then waits until every open request has its
    terminal reply or has been given up (timeout + grace), and puts its counts on done_queue."""
    random.seed(cfg.seed + worker_index)
    ctx = zmq.Context()
    templates = _templates(cfg)
    names = list(templates)
    weights = [cfg.mix[n] for n in names]
    lanes = [Lane(ctx, cfg, i) for i in range(cfg.lanes)]
    poller = zmq.Poller()
    by_sock = {}
    for lane in lanes:
        poller.register(lane.sock, zmq.POLLIN)
        by_sock[lane.sock] = lane
    c = Counts()
    budget = (cfg.timeout_ms / 1000.0) * (3 if "sleep-long" in names else 1) + cfg.grace_s
    next_check = 0.0
    send_interval = 1.0 / cfg.rate if cfg.rate > 0 else 0.0
    next_send = time.monotonic()
    sample_every = 16

    local_quota = [0]

    def quota_left() -> bool:
        if total_quota is None:
            return True
        if local_quota[0] == 0:
            with total_quota.get_lock():
                take = min(64, total_quota.value)
                total_quota.value -= take
            local_quota[0] = take
        if local_quota[0] == 0:
            return False
        local_quota[0] -= 1
        return True

    submitting = True
    linger_until = 0.0
    while True:
        now = time.monotonic()
        if submitting and (stop_submit.is_set()):
            submitting = False
        if submitting:
            for lane in lanes:
                while len(lane.open) < cfg.concurrency:
                    if send_interval and now < next_send:
                        break
                    if lane.pending is None:
                        if not quota_left():
                            submitting = False
                            break
                        ni = random.choices(range(len(names)), weights)[0] if len(names) > 1 else 0
                        lane.pending = (ni, templates[names[ni]].make(lane.next_rid))
                    ni, data = lane.pending
                    rid = lane.next_rid
                    try:
                        lane.sock.send(data, zmq.NOBLOCK)
                    except zmq.Again:
                        lane.blocked_since = lane.blocked_since or now
                        break
                    lane.pending = None
                    lane.blocked_since = None
                    lane.next_rid += 1
                    lane.state.append(OPEN)
                    lane.node_of.append(ni)
                    lane.open[rid] = now
                    heapq.heappush(lane.give_up, (now + budget, rid))
                    c.submitted += 1
                    if send_interval:
                        next_send = max(next_send + send_interval, now - 1.0)
                if not submitting:
                    break
        elif not any(lane.open for lane in lanes):
            # Everything answered or given up. Given-up requests may still be answered late
            # (a slow daemon, not a lost request): listen a while longer for them.
            if not c.gave_up or linger_until and now >= linger_until:
                break
            linger_until = linger_until or now + cfg.grace_s

        wait_ms = 100 if not submitting or all(len(l.open) >= cfg.concurrency for l in lanes) else 0
        if send_interval and submitting:
            wait_ms = max(0, min(100, int((next_send - time.monotonic()) * 1000)))
        if any(l.blocked_since for l in lanes):
            wait_ms = 5
        events = poller.poll(wait_ms)
        now = time.monotonic()
        for sock, _ in events:
            lane = by_sock[sock]
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    r = wire.read_reply(frames[-1])
                except Exception:  # a reply we cannot even read: count it
                    c.unsolicited["unreadable"] += 1
                    continue
                if r is None:
                    c.unsolicited["not-a-reply"] += 1
                    continue
                if r.kind not in (wire.REPLY_RESULT, wire.REPLY_FAILURE):
                    continue  # Accepted / Progress are not terminal
                rid = r.request_id
                if rid <= 0 or rid >= len(lane.state):
                    c.unsolicited[wire.code_name(r.code) if r.kind == wire.REPLY_FAILURE else "result"] += 1
                    continue
                st = lane.state[rid]
                node = names[lane.node_of[rid]]
                if st == OPEN:
                    lane.state[rid] = DONE
                    sent = lane.open.pop(rid)
                    if len(c.latencies) < 200000 and rid % sample_every == 0:
                        c.latencies.append(now - sent)
                elif st == GAVE_UP:
                    lane.state[rid] = LATE
                    sent, gave_up_at, _ = c.gave_up.pop((lane.index, rid))
                    c.late.append((sent, now, node))
                else:
                    c.duplicated += 1
                    if len(c.dup_examples) < 10:
                        c.dup_examples.append(
                            f"lane {lane.index} rid {rid} node {node}: second terminal "
                            f"{'RESULT' if r.kind == wire.REPLY_RESULT else wire.code_name(r.code)}")
                    continue
                if r.kind == wire.REPLY_RESULT:
                    c.completed += 1
                    c.by_node[node]["OK"] += 1
                    if node == "echo" and wire.nonce_bytes(rid) not in r.outputs:
                        c.mismatched += 1
                else:
                    c.failed[wire.code_name(r.code)] += 1
                    c.by_node[node][wire.code_name(r.code)] += 1
        if now >= next_check:
            next_check = now + 0.05
            for lane in lanes:
                while lane.give_up and lane.give_up[0][0] <= now:
                    _, rid = heapq.heappop(lane.give_up)
                    if lane.state[rid] == OPEN:
                        lane.state[rid] = GAVE_UP
                        sent = lane.open.pop(rid)
                        c.gave_up[(lane.index, rid)] = (sent, now, names[lane.node_of[rid]])
    for lane in lanes:
        lane.sock.close(0)
    ctx.term()
    done_queue.put(c.to_dict())


# ---- client-library probes ----------------------------------------------------------------------


def cli_probe(cluster: Cluster, timeout_ms: int) -> subprocess.Popen:
    """A `muster call` (the C++ client library) that will be open when musterd is killed."""
    args = [cluster.build / "tools" / "muster", "--client-address", cluster.client_address,
            "call", "sleep", json.dumps({"ms": timeout_ms * 3}), "--timeout-ms", str(timeout_ms)]
    p = subprocess.Popen([str(a) for a in args], env=cluster.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    _CHILDREN.append(p)
    p.started = time.monotonic()  # type: ignore[attr-defined]
    return p


def sdk_probe_main(address: str, timeout_ms: int, out_path: str):
    """Subcommand: a call through the Python SDK that is open when musterd is killed."""
    result = {"available": False}
    try:
        import muster  # noqa: F401
        from muster.client import Client
    except Exception as e:  # the SDK is optional for the driver
        result["error"] = f"no Python SDK: {e}"
        Path(out_path).write_text(json.dumps(result))
        return
    result["available"] = True
    start = time.monotonic()
    try:
        with Client(address) as client:
            call = client.submit("sleep", {"ms": timeout_ms * 3}, timeout_ms=timeout_ms)
            Path(out_path + ".submitted").write_text("1")
            err = call.exception(timeout=(timeout_ms / 1000) + 60)
            result["outcome"] = type(err).__name__ if err else "result"
            result["message"] = str(err) if err else ""
    except Exception as e:
        result["outcome"] = type(e).__name__
        result["message"] = str(e)
    result["elapsed_s"] = time.monotonic() - start
    Path(out_path).write_text(json.dumps(result))


def vanish_main(address: str, count: int, ms: int):
    """Subcommand: submit `count` sleeps and wait to be killed (never read a reply)."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(address)
    t = wire.SubmitTemplate("sleep", {"ms": ms}, ms * 4)
    for rid in range(1, count + 1):
        s.send(t.make(rid))
    print(f"vanishing client: {count} submitted", flush=True)
    time.sleep(3600)


# ---- the run -----------------------------------------------------------------------------------


@dataclass
class Window:
    down: float
    up: float


class Chaos(threading.Thread):
    """Executes the fault schedule while the load runs."""

    def __init__(self, cluster: Cluster, args, t0: float, span: float, repeat: bool):
        super().__init__(daemon=True)
        self.c = cluster
        self.args = args
        self.t0 = t0
        self.span = span          # one round of the schedule
        self.repeat = repeat      # soak: rounds follow each other until stopped
        self.stop = threading.Event()
        self.windows: List[Window] = []
        self.events: List[str] = []
        self.counts = collections.Counter()
        self.probes: List[dict] = []
        self.errors: List[str] = []
        self.rss: List[Tuple[float, int]] = []
        self.rng = random.Random(args.seed)
        self.healers: List[threading.Timer] = []

    def _heal(self):
        self.c.netns.set(self.args.delay, self.args.loss)
        self.note("partition healed")

    def finish(self):
        """Stops the schedule; a partition in progress is healed now."""
        self.stop.set()
        for h in self.healers:
            if h.is_alive():
                h.cancel()
                self._heal()
        self.join(120)

    def note(self, what: str):
        self.events.append(f"{time.monotonic() - self.t0:7.2f}s {what}")
        log(what)

    def schedule(self) -> List[Tuple[float, str]]:
        a, d = self.args, self.span
        faults = set(a.faults)
        plan: List[Tuple[float, str]] = []

        def periodic(first: float, every: float, what: str):
            t = first
            while t < d - 1.0:
                plan.append((t, what))
                t += every if every > 0 else d

        if "kill-worker" in faults:
            periodic(a.kill_every, a.kill_every, "kill-worker")
        if "vanish-client" in faults:
            periodic(d * 0.15, a.vanish_every or d, "vanish-client")
        if "partition" in faults and self.c.netns:
            t = d * 0.25
            while t + a.partition < d - 1.0:
                plan.append((t, "partition"))
                t += a.partition_every if a.partition_every else d
        if "restart-daemon" in faults:
            periodic(d * 0.6, a.restart_every or d, "restart-daemon")
        return sorted(plan)

    def run(self):
        try:
            self._run()
        except Exception as e:  # a fault that could not be injected is a failed run
            self.errors.append(f"chaos: {type(e).__name__}: {e}")
            log(f"chaos thread failed: {e}")

    def _sleep_until(self, t: float) -> bool:
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= t:
                return True
            self.rss.append((now - self.t0, self.c.sample_rss()))
            self.stop.wait(min(0.5, max(0.0, t - now)))
        return False

    def _run(self):
        round_start = self.t0
        while not self.stop.is_set():
            self._round(round_start)
            if not self.repeat:
                break
            round_start += self.span
        self._sleep_until(float("inf"))

    def _round(self, round_start: float):
        for at, what in self.schedule():
            if not self._sleep_until(round_start + at):
                return
            if what == "kill-worker":
                victims = [w for w, (p, s) in self.c.workers.items()
                           if s["kind"] == "example" and not s.get("in_netns")]
                if not victims:
                    continue
                wid = self.rng.choice(victims)
                self.c.kill_worker(wid)
                self.counts["worker SIGKILLs"] += 1
                self.note(f"SIGKILL worker {wid}")
                self.stop.wait(self.args.worker_down)
                self.c.restart_worker(wid)
            elif what == "vanish-client":
                p = spawn([sys.executable, __file__, "vanish", "--client-address",
                           self.c.client_address, "--count", str(self.args.vanish_count),
                           "--ms", "1500"], self.c.base / "vanish.log", self.c.env)
                self.stop.wait(0.5)
                kill(p)
                self.counts["vanished clients"] += 1
                self.note(f"client with {self.args.vanish_count} requests in flight SIGKILLed")
            elif what == "partition":
                ns = self.c.netns
                ns.set(self.args.delay, 100)
                self.counts["partitions"] += 1
                self.note(f"partition of the netns worker for {self.args.partition} s")
                heal = threading.Timer(self.args.partition, self._heal)
                heal.daemon = True
                self.healers.append(heal)
                heal.start()
            elif what == "restart-daemon":
                self.restart_daemon()
        self._sleep_until(round_start + self.span)

    def restart_daemon(self):
        # Let the last worker kill settle (a probe dispatched to a worker that was just killed
        # ends WORKER_LOST, a right answer but not the path the probes are for).
        self.stop.wait(self.args.worker_down + 1.0)
        probe = cli_probe(self.c, self.args.probe_timeout_ms)
        sdk_out = str(self.c.base / f"sdk-probe-{len(self.windows)}.json")
        sdk = spawn([sys.executable, __file__, "sdk-probe", "--client-address",
                     self.c.client_address, "--timeout-ms", str(self.args.probe_timeout_ms),
                     "--out", sdk_out], self.c.base / "sdk-probe.log", self.c.env)
        # Let both probes' requests reach the daemon. Starting Python and importing the SDK can
        # take seconds on a loaded machine: a fixed short wait let the crash come before the
        # submit, and the probe then saw TIMEOUT from the restarted daemon instead of the crash.
        end = time.monotonic() + 30.0
        while time.monotonic() < end and not Path(sdk_out + ".submitted").exists():
            time.sleep(0.05)
        time.sleep(0.3)
        down = time.monotonic()
        self.c.kill_daemon(signal.SIGKILL)
        self.note(f"SIGKILL musterd (start #{self.c.daemon_starts})")
        self.counts["daemon SIGKILLs"] += 1
        self.stop.wait(self.args.down)
        self.c.start_daemon()
        up = time.monotonic()
        self.windows.append(Window(down, up))
        self.note(f"musterd restarted after {up - down:.2f} s")
        threading.Thread(target=self._watch_probes, args=(probe, sdk, sdk_out, down),
                         daemon=True).start()

    def _watch_probes(self, probe, sdk, sdk_out, down):
        limit = self.args.probe_timeout_ms / 1000 + 5.0 + 30.0  # timeout + library grace + slack
        try:
            out, err = probe.communicate(timeout=limit)
            elapsed = time.monotonic() - probe.started
            # Any terminal answer is fine (a concurrent fault may decide it first); a hang or a
            # crash is not. UNAVAILABLE is the expected one and is counted in the verdict.
            m = re.search(r"error: ([A-Z_]+):", err)
            outcome = "RESULT" if probe.returncode == 0 else (m.group(1) if m else None)
            self.probes.append(dict(probe="muster CLI (C++ client library)", ok=outcome is not None,
                                    outcome=outcome, elapsed_s=round(elapsed, 2),
                                    exit=probe.returncode, stderr=err.strip()[-300:]))
        except subprocess.TimeoutExpired:
            kill(probe)
            self.probes.append(dict(probe="muster CLI (C++ client library)", ok=False,
                                    hang=True, stderr=f"no exit within {limit} s"))
        try:
            sdk.wait(limit)
            res = json.loads(Path(sdk_out).read_text()) if Path(sdk_out).exists() else {}
            if not res.get("available", True):
                self.probes.append(dict(probe="Python SDK", ok=True, skipped=res.get("error")))
            else:
                outcome = res.get("outcome")
                self.probes.append(dict(probe="Python SDK",
                                        ok=outcome == "result" or bool(re.match(r"^[A-Z][A-Za-z]+$", outcome or "")),
                                        outcome=outcome, message=res.get("message", "")[:200],
                                        elapsed_s=round(res.get("elapsed_s", -1), 2)))
        except subprocess.TimeoutExpired:
            kill(sdk)
            self.probes.append(dict(probe="Python SDK", ok=False, hang=True))


def classify(results: List[dict], windows: List[Window], grace_s: float):
    total = collections.Counter()
    failed = collections.Counter()
    unsolicited = collections.Counter()
    by_node = collections.defaultdict(collections.Counter)
    unavailable = lost = late = 0
    lost_examples = []
    latencies = []
    dup_examples = []
    for r in results:
        total["submitted"] += r["submitted"]
        total["completed"] += r["completed"]
        total["duplicated"] += r["duplicated"]
        total["mismatched"] += r["mismatched"]
        failed.update(r["failed"])
        unsolicited.update(r["unsolicited"])
        for n, cnt in r["by_node"].items():
            by_node[n].update(cnt)
        latencies.extend(r["latencies"])
        dup_examples.extend(r["dup_examples"])
        late += len(r["late"])
        for sent, gave_up, node in r["gave_up"]:
            # Open while musterd was down (killed .. ready again)?
            if any(sent <= w.up + 0.5 and gave_up >= w.down for w in windows):
                unavailable += 1
                by_node[node]["UNAVAILABLE"] += 1
            else:
                lost += 1
                by_node[node]["LOST"] += 1
                if len(lost_examples) < 10:
                    lost_examples.append(f"{node} sent at {sent:.2f}, no reply by {gave_up:.2f}")
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else None
    return dict(submitted=total["submitted"], completed=total["completed"],
                failed=dict(sorted(failed.items())), failed_total=sum(failed.values()),
                unavailable=unavailable, lost=lost, duplicated=total["duplicated"],
                mismatched=total["mismatched"], late=late, unsolicited=dict(unsolicited),
                by_node={k: dict(v) for k, v in by_node.items()},
                latency_ms=dict(p50=pct(0.5), p99=pct(0.99), max=pct(1.0)),
                lost_examples=lost_examples, dup_examples=dup_examples[:10])


def find_build(arg: Optional[str]) -> Path:
    b = Path(arg or os.environ.get("MUSTER_BUILD_DIR", REPO / "build"))
    for exe in ("broker/musterd", "worker/muster-example-worker", "tools/muster"):
        if not (b / exe).exists():
            raise SystemExit(f"muster_fault: {b / exe} is missing: build first (tools/test or cmake --build)")
    return b


def raise_fd_limit(n: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def cmd_run(args) -> int:
    build = find_build(args.build)
    raise_fd_limit(8192)
    base = Path(tempfile.mkdtemp(prefix="mfault-", dir=args.tmp))
    log(f"working in {base}")
    netns = None
    skipped = []
    wants_ns = {"netem", "partition"} & set(args.faults)
    if wants_ns:
        try:
            netns = netem.make_link(os.getpid() % 100000, args.delay, args.loss)
            _NETNS.append(netns)
            log(f"worker host in network namespace {netns.name}: {netns.describe()}")
        except netem.LinkUnavailable as e:
            skipped.append(f"netem/partition: cannot set up a network namespace ({e})")
        for s in skipped:
            log(f"SKIPPED {s}")

    daemon_args = ["--queue-limit", str(args.queue_limit), "--log-level", args.daemon_log_level,
                   "--shutdown-grace-ms", "2000"]
    cluster = Cluster(build, base, args.ping_ms, args.liveness, daemon_args, netns)
    cluster.start_daemon()
    for i in range(args.workers):
        cluster.start_worker(f"fw{i}", capacity=args.capacity, idempotent=args.idempotent_sleep)
    expected = args.workers
    if netns:
        cluster.start_worker("fw-remote", capacity=args.capacity, idempotent=args.idempotent_sleep,
                             in_netns=True)
        expected += 1
    if "bad-worker" in args.faults:
        cluster.start_bad_worker("fw-bad", args.bad_mode)
        expected += 1
    admin = Admin(cluster.client_address)
    if not admin.wait_workers(expected, 30):
        log("not every worker attached in 30 s; going on")

    cfg = LoadConfig(client_address=cluster.client_address, lanes=args.lanes,
                     concurrency=args.concurrency, mix=parse_mix(args.mix), sleep_ms=args.sleep_ms,
                     timeout_ms=args.timeout_ms, grace_s=args.grace, rate=args.rate, seed=args.seed)
    mpctx = mp.get_context("fork")
    stop_submit = mpctx.Event()
    done_queue = mpctx.Queue()
    quota = mpctx.Value("q", args.requests) if args.requests else None
    procs = [mpctx.Process(target=run_load, args=(cfg, stop_submit, done_queue, i, quota), daemon=True)
             for i in range(args.procs)]
    t0 = time.monotonic()
    soak = bool(args.requests) and not args.duration_given
    duration = float("inf") if soak else args.duration
    for p in procs:
        p.start()
    chaos = Chaos(cluster, args, t0, args.schedule_span if soak else args.duration, repeat=soak)
    chaos.start()
    last_report = t0
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        if quota is not None and quota.value <= 0:
            break
        if now - t0 >= duration or now - t0 > args.max_seconds:
            break
        if not any(p.is_alive() for p in procs):
            break
        if now - last_report >= args.report_every:
            last_report = now
            st = admin.status(2.0)
            if st:
                log(f"progress: daemon submitted {st['submitted']} completed {st['completed']} "
                    f"failed {st['failed']} in flight {st['in_flight']} queued {st['queued']}, "
                    f"musterd RSS {cluster.sample_rss() // 1024} MiB")
    stop_submit.set()
    # Finish the faults before draining (a restart in progress would look like a loss).
    chaos.finish()
    elapsed_submit = time.monotonic() - t0
    results = []
    drain_limit = args.timeout_ms / 1000 * 3 + args.grace + 60
    for _ in procs:
        try:
            results.append(done_queue.get(timeout=drain_limit))
        except Exception:
            log("a load process did not report in time")
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    windows = chaos.windows
    # The probes finish in their own threads.
    probe_deadline = time.monotonic() + args.probe_timeout_ms / 1000 + 40
    while len(chaos.probes) < 2 * len(windows) and time.monotonic() < probe_deadline:
        time.sleep(0.2)
    final_status = admin.status(3.0)
    shutdown_check = None
    if "shutdown" in args.faults:
        shutdown_check = graceful_shutdown_check(cluster)
    cluster.stop_all()
    report = classify(results, windows, args.grace)
    report.update(dict(
        seconds=round(elapsed_submit, 1), workers=args.workers, netns=bool(netns),
        bad_worker="bad-worker" in args.faults, faults=dict(chaos.counts), skipped=skipped,
        restarts=len(windows), probes=chaos.probes, shutdown=shutdown_check,
        chaos_errors=chaos.errors,
        daemon_peak_rss_mib=round(max([r for _, r in chaos.rss] + [cluster.peak_rss_kib]) / 1024, 1),
        final_status=final_status, daemon_check=daemon_ledger_check(final_status),
        events=chaos.events, workdir=str(base)))
    if netns:
        report["link"] = netns.describe()
        netns.delete()
    problems = verdict(report)
    report["problems"] = problems
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if not problems and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if problems else 0


def daemon_ledger_check(st: Optional[dict]) -> dict:
    """musterd's own books after the drain: nothing open, and every submit it counted was
    answered (submitted == completed + failed), for the instance that ran last."""
    if not st:
        return dict(ok=False, why="no status reply")
    ok = st["in_flight"] == 0 and st["queued"] == 0 and st["submitted"] == st["completed"] + st["failed"]
    return dict(ok=ok, submitted=st["submitted"], completed=st["completed"], failed=st["failed"],
                in_flight=st["in_flight"], queued=st["queued"], redispatched=st["redispatched"])


def graceful_shutdown_check(cluster: Cluster) -> dict:
    """SIGTERM with requests in flight: musterd must answer each of them and exit 0."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(cluster.client_address)
    t = wire.SubmitTemplate("sleep", {"ms": 10000}, 20000)
    n = 12
    for rid in range(1, n + 1):
        s.send(t.make(rid))
    time.sleep(0.5)
    cluster.kill_daemon(signal.SIGTERM)
    code = cluster.daemon.returncode
    got = collections.Counter()
    seen = collections.Counter()
    end = time.monotonic() + 5
    while time.monotonic() < end and sum(seen.values()) < n:
        if s.poll(100):
            r = wire.read_reply(s.recv_multipart()[-1])
            if r and r.kind in (wire.REPLY_RESULT, wire.REPLY_FAILURE):
                seen[r.request_id] += 1
                got["RESULT" if r.kind == wire.REPLY_RESULT else wire.code_name(r.code)] += 1
    s.close(0)
    answered = sum(1 for rid in range(1, n + 1) if seen[rid] == 1)
    dups = sum(1 for v in seen.values() if v > 1)
    log_ok = "every request got its terminal reply" in cluster.daemon_log()
    return dict(in_flight=n, answered=answered, duplicated=dups, replies=dict(got), exit_code=code,
                ok=answered == n and dups == 0 and code == 0 and log_ok)


def verdict(r: dict) -> List[str]:
    p = []
    if r["lost"]:
        p.append(f"{r['lost']} request(s) lost: {r['lost_examples']}")
    if r["duplicated"]:
        p.append(f"{r['duplicated']} duplicated terminal repl(ies): {r['dup_examples']}")
    if r["mismatched"]:
        p.append(f"{r['mismatched']} echo result(s) carried another request's nonce")
    if r["unsolicited"]:
        p.append(f"replies for requests never sent: {r['unsolicited']}")
    for bad in ("INTERNAL", "BAD_MESSAGE"):
        if r["failed"].get(bad):
            p.append(f"{r['failed'][bad]} {bad} failure(s)")
    if r["submitted"] == 0:
        p.append("nothing was submitted")
    for pr in r["probes"]:
        if not pr.get("ok"):
            p.append(f"probe failed (hang or no clear answer): {pr}")
    if r["restarts"]:
        # Across the run, each client library must have shown UNAVAILABLE for a call open at
        # a daemon crash at least once (a single probe may be answered by another fault).
        cli = [pr for pr in r["probes"] if pr["probe"].startswith("muster CLI")]
        sdk = [pr for pr in r["probes"] if pr["probe"] == "Python SDK" and not pr.get("skipped")]
        if cli and not any(pr.get("outcome") == "UNAVAILABLE" for pr in cli):
            p.append("no CLI probe ended with UNAVAILABLE across the daemon restarts")
        if sdk and not any(pr.get("outcome") == "Unavailable" for pr in sdk):
            p.append("no Python SDK probe ended with Unavailable across the daemon restarts")
    if not r["daemon_check"]["ok"]:
        p.append(f"musterd's own books do not balance after the drain: {r['daemon_check']}")
    if r["shutdown"] and not r["shutdown"]["ok"]:
        p.append(f"graceful shutdown check failed: {r['shutdown']}")
    p.extend(r["chaos_errors"])
    return p


def print_report(r: dict):
    out = sys.stdout
    print("\nmuster fault run", file=out)
    print(f"  duration      {r['seconds']} s of load; faults: "
          + (", ".join(f"{k} {v}" for k, v in r["faults"].items()) or "none"), file=out)
    if r["netns"]:
        print(f"  netns worker  {r.get('link', '')}; partitioned as scheduled", file=out)
    for s in r["skipped"]:
        print(f"  SKIPPED       {s}", file=out)
    print(f"  submitted     {r['submitted']}", file=out)
    print(f"  completed     {r['completed']}", file=out)
    print(f"  failed        {r['failed_total']}  "
          + " ".join(f"{k}={v}" for k, v in r["failed"].items()), file=out)
    print(f"  unavailable   {r['unavailable']}  (open when musterd was SIGKILLed: client-side "
          f"UNAVAILABLE after timeout + grace)", file=out)
    print(f"  lost          {r['lost']}", file=out)
    print(f"  duplicated    {r['duplicated']}", file=out)
    print(f"  mismatched    {r['mismatched']}", file=out)
    if r["late"]:
        print(f"  late          {r['late']}  (a reply after the client had given up)", file=out)
    lat = r["latency_ms"]
    print(f"  latency       p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms "
          f"(sampled, all nodes)", file=out)
    print(f"  musterd RSS   peak {r['daemon_peak_rss_mib']} MiB", file=out)
    for node, c in sorted(r["by_node"].items()):
        print(f"  node {node:<8} " + " ".join(f"{k}={v}" for k, v in sorted(c.items())), file=out)
    for pr in r["probes"]:
        print(f"  probe         {pr}", file=out)
    print(f"  musterd books {r['daemon_check']}", file=out)
    if r["shutdown"]:
        print(f"  shutdown      {r['shutdown']}", file=out)
    print("  result        " + ("OK" if not r["problems"] else "FAILED"), file=out)
    for p in r["problems"]:
        print(f"  problem       {p}", file=out)
    out.flush()


def parse_mix(text: str) -> Dict[str, float]:
    mix = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        mix[name.strip()] = float(w or 1)
    return mix


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    ap = argparse.ArgumentParser(description="muster fault-injection driver (docs/RELIABILITY.md)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="load + faults; counts every request's terminal replies")
    r.add_argument("--build", help="CMake build dir (default $MUSTER_BUILD_DIR or build/)")
    r.add_argument("--duration", type=float, default=40.0, help="seconds of load (default 40)")
    r.add_argument("--requests", type=int, default=0, help="stop after this many submits")
    r.add_argument("--max-seconds", type=float, default=4 * 3600)
    r.add_argument("--procs", type=int, default=1, help="load processes")
    r.add_argument("--lanes", type=int, default=2, help="client connections per load process")
    r.add_argument("--concurrency", type=int, default=16, help="open requests per connection")
    r.add_argument("--rate", type=float, default=0.0, help="submits/s per load process (0: max)")
    r.add_argument("--mix", default="echo=6,hello=2,sleep=2", help="node weights")
    r.add_argument("--sleep-ms", type=int, default=50)
    r.add_argument("--timeout-ms", type=int, default=3000)
    r.add_argument("--grace", type=float, default=5.0,
                   help="client-side give-up after timeout + grace s (as the client library)")
    r.add_argument("--workers", type=int, default=3, help="local example workers")
    r.add_argument("--idempotent-sleep", action="store_true",
                   help="workers declare `sleep` idempotent (--idempotent): re-run instead of "
                        "WORKER_LOST when its worker dies")
    r.add_argument("--capacity", type=int, default=4)
    r.add_argument("--ping-ms", type=int, default=250)
    r.add_argument("--liveness", type=int, default=4)
    r.add_argument("--queue-limit", type=int, default=1000)
    r.add_argument("--faults", default="kill-worker,restart-daemon,netem,partition,bad-worker,"
                   "vanish-client,shutdown",
                   help="comma-separated subset of: kill-worker restart-daemon netem partition "
                        "bad-worker vanish-client shutdown (or 'none')")
    r.add_argument("--kill-every", type=float, default=3.0)
    r.add_argument("--worker-down", type=float, default=0.3)
    r.add_argument("--down", type=float, default=1.0, help="seconds musterd stays down")
    r.add_argument("--restart-every", type=float, default=0.0)
    r.add_argument("--partition", type=float, default=10.0)
    r.add_argument("--partition-every", type=float, default=0.0)
    r.add_argument("--vanish-every", type=float, default=0.0)
    r.add_argument("--vanish-count", type=int, default=40)
    r.add_argument("--schedule-span", type=float, default=120.0,
                   help="with --requests: the fault schedule repeats every this many s")
    r.add_argument("--loss", type=float, default=5.0)
    r.add_argument("--delay", type=int, default=50)
    r.add_argument("--bad-mode", default="forget", choices=["forget", "hold", "deny"])
    r.add_argument("--probe-timeout-ms", type=int, default=10000)
    r.add_argument("--daemon-log-level", default="info")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--tmp", default=None, help="parent of the work dir (short paths: ipc limit)")
    r.add_argument("--report-every", type=float, default=10.0)
    r.add_argument("--json", help="write the report as JSON here")
    r.add_argument("--keep", action="store_true", help="keep the work dir (logs)")

    a = sub.add_parser("abuse", help="bounded under abuse: latency and memory under hostile peers")
    import abuse as abuse_mod  # noqa: E402
    abuse_mod.add_arguments(a)

    d = sub.add_parser("durable", help="durable calls under daemon SIGKILLs: lost, duplicated, run twice (durable.py)")
    import durable as durable_mod  # noqa: E402
    durable_mod.add_arguments(d)

    f = sub.add_parser("failover", help="a musterd pair on PostgreSQL under SIGKILL, SIGSTOP and partition of "
                                        "the active one, each role in its own network namespace (failover.py)")
    import failover as failover_mod  # noqa: E402
    failover_mod.add_arguments(f)
    failover_mod.add_caller_arguments(sub.add_parser("failover-caller"))
    failover_mod.add_probe_arguments(sub.add_parser("failover-probe"))

    v = sub.add_parser("vanish")
    v.add_argument("--client-address", required=True)
    v.add_argument("--count", type=int, default=40)
    v.add_argument("--ms", type=int, default=1500)
    s = sub.add_parser("sdk-probe")
    s.add_argument("--client-address", required=True)
    s.add_argument("--timeout-ms", type=int, default=3000)
    s.add_argument("--out", required=True)

    args = ap.parse_args(argv)
    if args.cmd == "run":
        args.duration_given = any(x.startswith("--duration") for x in (argv or sys.argv[1:]))
        args.faults = [] if args.faults == "none" else [f.strip() for f in args.faults.split(",")]
        unknown = set(args.faults) - {"kill-worker", "restart-daemon", "netem", "partition",
                                      "bad-worker", "vanish-client", "shutdown"}
        if unknown:
            ap.error(f"unknown faults: {sorted(unknown)}")
        if "partition" in args.faults and "netem" not in args.faults:
            args.faults.append("netem")
        return cmd_run(args)
    if args.cmd == "abuse":
        return abuse_mod.run(args, sys.modules[__name__])
    if args.cmd == "durable":
        return durable_mod.run(args, sys.modules[__name__])
    if args.cmd == "failover":
        return failover_mod.run(args, sys.modules[__name__])
    if args.cmd == "failover-caller":
        return failover_mod.caller_main(args)
    if args.cmd == "failover-probe":
        return failover_mod.probe_main(args, sys.modules[__name__])
    if args.cmd == "vanish":
        vanish_main(args.client_address, args.count, args.ms)
        return 0
    if args.cmd == "sdk-probe":
        sdk_probe_main(args.client_address, args.timeout_ms, args.out)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
