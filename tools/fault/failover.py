"""failover.py — `muster_fault.py failover`: a failover pair (docs/DURABILITY.md §12) under faults,
every role in a network namespace of its own (docs/RELIABILITY.md).

Namespaces `mfo<tag><role>` joined by a Linux bridge in a hub namespace, addresses in
10.215.<tag % 250>.0/24: PostgreSQL (tests/integration/postgres_server.py, listening on its
address), musterd A and B (`--journal postgresql://…`, tcp endpoints in clear text, each on
its own address), the counting workers of the three SDKs (tests/integration/counting_workers.py)
and the durable callers (durable.py's Submitter, given both daemons' client addresses). The
active daemon is, in turn, SIGKILLed, SIGSTOPped, and partitioned from PostgreSQL (blackhole
routes both ways in their two namespaces), every --fault-every s; after the standby took over
the old one is brought back as the new standby (restarted; or SIGCONTed / healed, when it must
first stop by itself: its lease ran out, exit 1). Failover time: from the fault to the standby
answering a status request, probed from the callers' namespace.

At the end it waits until nothing is queued or running, stops everything, reads the journal
from PostgreSQL and the workers' execution log and reports, as durable.py does: durable calls
lost, duplicated, non-idempotent run twice (durable.tally), the failover times p50/max by fault
and in all, and whether each paused or partitioned leader stopped by itself. Exit status 1 when
any count is not 0, a failover did not complete, or an old leader did not stop.

Owns: the failover mix and its namespaces. Must never: touch the host's network (everything is
inside the namespaces it creates, all deleted at exit, also on SIGINT/SIGTERM), kill a worker,
or run unbounded (every wait has a limit; --max-seconds bounds the run).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import durable
import counting_workers  # noqa: E402 (durable.py put tests/integration on the path)
from postgres_server import PostgresServer, absent_reason  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MUSTER_FAULT = Path(__file__).resolve().parent / "muster_fault.py"
FAULTS = ("sigkill", "sigstop", "partition")
PORTS = {"request": 7899, "response": 7898, "client": 7901}


def add_arguments(a):
    a.add_argument("--build", help="CMake build dir (default $MUSTER_BUILD_DIR or build/)")
    a.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    a.add_argument("--faults", default=",".join(FAULTS), help=f"applied in turn: {', '.join(FAULTS)}")
    a.add_argument("--fault-every", type=float, default=8.0, help="seconds between faults (default 8)")
    a.add_argument("--first-fault", type=float, default=3.0, help="seconds before the first fault")
    a.add_argument("--lease-ms", type=int, default=1000, help="the pair's --lease-ms (default 1000)")
    a.add_argument("--concurrency", type=int, default=12, help="open durable calls at a time")
    a.add_argument("--sleep-ms", type=int, default=300, help="how long each call runs (max; random below)")
    a.add_argument("--ping-ms", type=int, default=200)
    a.add_argument("--liveness", type=int, default=3)
    a.add_argument("--sdks", default="cpp,python,typescript", help="counting workers, one per SDK")
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--max-seconds", type=float, default=1800.0, help="hard limit of the whole run")
    a.add_argument("--tmp", default=None, help="parent of the work dir")
    a.add_argument("--json", help="write the report as JSON here")
    a.add_argument("--keep", action="store_true", help="keep the work dir (logs)")


def add_caller_arguments(a):
    a.add_argument("--address", required=True, help="both daemons' client endpoints, A,B")
    a.add_argument("--duration", type=float, required=True)
    a.add_argument("--concurrency", type=int, default=12)
    a.add_argument("--sleep-ms", type=int, default=300)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--stop-file", required=True, help="the caller stops reading once this exists")
    a.add_argument("--out", required=True)


def add_probe_arguments(a):
    a.add_argument("--address", required=True)
    a.add_argument("--since", type=float, required=True, help="wall-clock time of the fault")
    a.add_argument("--timeout", type=float, default=60.0)


# ---- namespaces --------------------------------------------------------------------------------

def _ip(*args, check=True):
    return subprocess.run(["ip", *map(str, args)], check=check, capture_output=True, text=True, timeout=20)


def namespaces_unavailable() -> Optional[str]:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns add)"
    probe = f"mfoprobe{os.getpid()}"
    try:
        r = _ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return "`ip` is not installed (Debian: iproute2)"
    if r.returncode != 0:
        return f"ip netns add is not permitted: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Net:
    """The namespaces of one run, their addresses, and cuts between two of them."""

    MEMBERS = ("pg", "a", "b", "workers", "callers")
    HOSTS = {"pg": 10, "a": 11, "b": 12, "workers": 20, "callers": 30}

    def __init__(self, tag: int):
        self.tag = tag
        self.subnet = f"10.215.{tag % 250}"
        self.cidr = f"{self.subnet}.0/24"
        self.ns = {r: f"mfo{tag}{r}" for r in ("hub", *self.MEMBERS)}
        self.ip = {r: f"{self.subnet}.{h}" for r, h in self.HOSTS.items()}
        self.made: List[str] = []
        self.cuts: set = set()

    def create(self) -> "Net":
        existing = _ip("netns", "list").stdout.split()
        clash = [n for n in self.ns.values() if n in existing]
        if clash:
            raise RuntimeError(f"network namespaces already exist: {clash}")
        hub = self.ns["hub"]
        _ip("netns", "add", hub)
        self.made.append(hub)
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        for i, role in enumerate(self.MEMBERS):
            ns, port = self.ns[role], f"mfo{self.tag}v{i}"
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("link", "add", port, "netns", hub, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", hub, "link", "set", port, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.ip[role]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        return self

    def prefix(self, role: str) -> List[str]:
        return ["ip", "netns", "exec", self.ns[role]]

    def cut(self, x: str, y: str):
        """x and y stop hearing each other (packets to the other dropped in both namespaces)."""
        _ip("-n", self.ns[x], "route", "add", "blackhole", f"{self.ip[y]}/32")
        _ip("-n", self.ns[y], "route", "add", "blackhole", f"{self.ip[x]}/32")
        self.cuts.add((x, y))

    def heal(self, x: str, y: str):
        _ip("-n", self.ns[x], "route", "del", "blackhole", f"{self.ip[y]}/32", check=False)
        _ip("-n", self.ns[y], "route", "del", "blackhole", f"{self.ip[x]}/32", check=False)
        self.cuts.discard((x, y))

    def delete(self):
        """Idempotent: every namespace made (their veth ends and the bridge go with them)."""
        for ns in reversed(self.made):
            _ip("netns", "del", ns, check=False)
        self.made = []


# ---- the processes inside the namespaces ------------------------------------------------------

def caller_main(args) -> int:
    """In the callers' namespace: durable calls to the pair until --duration, replies read until
    --stop-file exists; writes what it sent and received to --out."""
    sub = durable.Submitter(args.address, args.sleep_ms, args.seed)
    sent_at: Dict[int, float] = {}
    stale = args.sleep_ms / 1000 + 3.0  # sent to a daemon that died: its outcome is in the journal
    refused = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.duration:
        now = time.monotonic()
        for rid in [r for r in sub.open if now - sent_at[r] > stale]:
            sub.open.discard(rid)
        while len(sub.open) < args.concurrency:
            if not sub.submit():
                refused += 1  # no daemon connection up (a failover under way)
                break
            sent_at[sub.next_rid - 1] = now
        sub.read(20)
    end = time.monotonic() + 300
    while not os.path.exists(args.stop_file) and time.monotonic() < end:
        sub.read(100)
    Path(args.out).write_text(json.dumps({
        "node_of": sub.node_of, "job_of": sub.job_of, "terminal": sub.terminal,
        "submitted": sub.next_rid - 1, "not_taken": refused}))
    return 0


def probe_main(args, fm) -> int:
    """In the callers' namespace: prints the ms from --since to the first status answer."""
    admin = fm.Admin(args.address)
    end = time.monotonic() + args.timeout
    while time.monotonic() < end:
        if admin.status(0.2) is not None:
            print(json.dumps({"after_ms": round((time.time() - args.since) * 1000)}), flush=True)
            return 0
        time.sleep(0.02)
    print(json.dumps({"after_ms": None}), flush=True)
    return 1


# ---- the run ------------------------------------------------------------------------------------

class Pair:
    """musterd A and B in their namespaces on one PostgreSQL journal."""

    def __init__(self, fm, build: Path, base: Path, net: Net, uri: str, args):
        self.fm, self.build, self.base, self.net, self.uri, self.args = fm, build, base, net, uri, args
        self.procs: Dict[str, subprocess.Popen] = {}
        self.starts = {"a": 0, "b": 0}

    def endpoint(self, role: str, kind: str) -> str:
        return f"tcp://{self.net.ip[role]}:{PORTS[kind]}"

    def both(self, kind: str) -> str:
        return f"{self.endpoint('a', kind)},{self.endpoint('b', kind)}"

    def log_path(self, role: str, n: Optional[int] = None) -> Path:
        return self.base / f"musterd-{role}-{n or self.starts[role]}.log"

    def log(self, role: str) -> str:
        p = self.log_path(role)
        return p.read_text(errors="replace") if p.exists() else ""

    def all_logs(self) -> str:
        return "".join(self.log_path(r, n).read_text(errors="replace")
                       for r in ("a", "b") for n in range(1, self.starts[r] + 1) if self.log_path(r, n).exists())

    def start(self, role: str):
        self.starts[role] += 1
        run = self.base / role / "run"
        run.mkdir(parents=True, exist_ok=True)
        args = [*self.net.prefix(role), self.build / "broker" / "musterd", "--data-dir", self.base / role / "data",
                "--journal", self.uri, "--lease-ms", self.args.lease_ms,
                "--ping-interval-ms", self.args.ping_ms, "--liveness", self.args.liveness,
                "--request-address", self.endpoint(role, "request"),
                "--response-address", self.endpoint(role, "response"),
                "--client-address", self.endpoint(role, "client"),
                "--insecure", "--log-level", "info", "--shutdown-grace-ms", "500"]
        self.procs[role] = self.fm.spawn(args, self.log_path(role), dict(os.environ, MUSTER_RUNTIME_DIR=str(run)))

    def wait_log(self, role: str, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log(role):
                return True
            if self.procs[role].poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def wait_exit(self, role: str, timeout: float) -> Optional[int]:
        try:
            return self.procs[role].wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def _percentile(values: List[float], p: float) -> Optional[float]:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def _journal_rows(pg: PostgresServer) -> dict:
    out = pg.psql("SELECT coalesce(json_agg(json_build_object('job_id', job_id, 'state', state, "
                  "'outcome_code', outcome_code, 'node', convert_from(node, 'UTF8'), "
                  "'message', convert_from(coalesce(message, ''::bytea), 'UTF8'), 'attempts', attempts)), '[]') "
                  "FROM calls WHERE shard = 'default'", "muster")
    return {r["job_id"]: r for r in json.loads(out or "[]")}


def run(args, fm) -> int:
    why = namespaces_unavailable() or absent_reason()
    if why:
        print(f"failover: cannot run: {why}", file=sys.stderr)
        return 2
    build = fm.find_build(args.build)
    base = Path(tempfile.mkdtemp(prefix="mfailover-", dir=args.tmp))
    os.chmod(base, 0o755)  # the PostgreSQL server runs as another user below it
    fm.log(f"working in {base}")
    started = time.monotonic()
    net = Net(os.getpid() % 100000)
    fm._NETNS.append(net)
    net.create()
    fm.log(f"namespaces {', '.join(net.ns.values())} on {net.cidr}")
    pg = PostgresServer(base / "pg", tcp=(net.ns["pg"], net.ip["pg"], net.cidr))
    fm._NETNS.append(pg)  # stopped at exit too (its delete: below)
    pg.delete = pg.stop  # type: ignore[attr-defined]
    pg.start()
    pg.psql("CREATE DATABASE muster")
    uri = f"postgresql://muster@{net.ip['pg']}:5432/muster"
    pair = Pair(fm, build, base, net, uri, args)
    pair.start("a")
    if not pair.wait_log("a", "ready", 30):
        fm.log(f"musterd A did not start:\n{pair.log('a')[-2000:]}")
        return 2
    pair.start("b")
    if not pair.wait_log("b", "standby:", 30):
        fm.log(f"musterd B did not become a standby:\n{pair.log('b')[-2000:]}")
        return 2
    active, standby = "a", "b"

    sdks = durable._sdks(args.sdks)
    skipped = sorted(set(s.strip() for s in args.sdks.split(",")) - set(sdks))
    log = base / "executions.log"
    env = counting_workers.env(dict(os.environ))
    addresses = (pair.both("request"), pair.both("response"))
    for sdk in sdks:
        fm.spawn(net.prefix("workers") + [str(a) for a in counting_workers.command(
            sdk, build, f"count-{sdk}", log, base, addresses, insecure=True)], base / f"worker-{sdk}.log", env)

    def status(role: str) -> Optional[dict]:
        r = subprocess.run([*net.prefix("callers"), build / "tools" / "muster", "--client-address",
                            pair.endpoint(role, "client"), "--insecure", "status", "--json"],
                           capture_output=True, text=True, timeout=30)
        return json.loads(r.stdout) if r.returncode == 0 else None

    end = time.monotonic() + 60
    while time.monotonic() < end and (status(active) or {}).get("workers", 0) < len(sdks):
        time.sleep(0.2)
    if (status(active) or {}).get("workers", 0) < len(sdks):
        fm.log("the counting workers did not attach")
        return 2

    stop_file = base / "caller.stop"
    caller_out = base / "caller.json"
    caller = fm.spawn([*net.prefix("callers"), sys.executable, MUSTER_FAULT, "failover-caller",
                       "--address", pair.both("client"), "--duration", args.duration,
                       "--concurrency", args.concurrency, "--sleep-ms", args.sleep_ms, "--seed", args.seed,
                       "--stop-file", stop_file, "--out", caller_out], base / "caller.log", env)

    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    events: List[dict] = []
    problems: List[str] = []
    t0 = time.monotonic()
    next_fault = t0 + args.first_fault
    lease_s = args.lease_ms / 1000
    i = 0
    while time.monotonic() - t0 < args.duration and time.monotonic() - started < args.max_seconds:
        if time.monotonic() < next_fault:
            time.sleep(0.05)
            continue
        fault = faults[i % len(faults)]
        i += 1
        victim, pid = active, pair.procs[active].pid
        since = time.time()
        if fault == "sigkill":
            os.kill(pid, signal.SIGKILL)
        elif fault == "sigstop":
            os.kill(pid, signal.SIGSTOP)
        else:
            net.cut(victim, "pg")
        probe = subprocess.run([*net.prefix("callers"), sys.executable, MUSTER_FAULT, "failover-probe",
                                "--address", pair.endpoint(standby, "client"), "--since", str(since),
                                "--timeout", "60"], capture_output=True, text=True, timeout=90)
        after = json.loads(probe.stdout.strip().splitlines()[-1])["after_ms"] if probe.stdout.strip() else None
        event = {"fault": fault, "victim": victim, "at_s": round(time.monotonic() - t0, 1), "failover_ms": after}
        if after is None:
            problems.append(f"{fault} of {victim}: the standby did not answer within 60 s")
        # The old leader back as the new standby: a paused or partitioned one must first stop by
        # itself (its lease ran out: it exits 1 before it sends anything of a turn).
        if fault == "sigkill":
            pair.wait_exit(victim, 10)
        else:
            if fault == "sigstop":
                os.kill(pid, signal.SIGCONT)
            code = pair.wait_exit(victim, 4 * lease_s + 30)
            if fault == "partition":
                net.heal(victim, "pg")
            event["old_leader_exit"] = code
            event["old_leader_said"] = next((line.split("error: ", 1)[-1][:200] for line in pair.log(victim).splitlines()
                                             if "lost the lease" in line or "error:" in line), "")
            if code is None:
                problems.append(f"{fault} of {victim}: the old leader did not stop by itself")
                fm.kill(pair.procs[victim], signal.SIGKILL)
        pair.start(victim)
        if not pair.wait_log(victim, "standby:", 30):
            problems.append(f"{victim} did not come back as a standby after {fault}")
        events.append(event)
        fm.log(f"{fault} of {victim}: failover {after} ms" +
               (f", old leader exited {event.get('old_leader_exit')}" if fault != "sigkill" else ""))
        active, standby = standby, victim
        next_fault = time.monotonic() + args.fault_every

    # The callers stop submitting at --duration; then every call ends (nothing queued or
    # running, past the re-attach window), the callers stop reading, and everything stops.
    while time.monotonic() - t0 < args.duration + 1 and caller.poll() is None:
        time.sleep(0.1)
    window = args.ping_ms * args.liveness / 1000
    end, quiet_since = time.monotonic() + 120, None
    while time.monotonic() < end:
        st = status(active)
        if st and st["queued"] == 0 and st["in_flight"] == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > window + 1:
                break
        else:
            quiet_since = None
        time.sleep(0.2)
    stop_file.touch()
    caller.wait(30)
    for role in ("a", "b"):
        fm.kill(pair.procs[role], signal.SIGTERM, wait=20)
    for p in list(fm._CHILDREN):
        fm.kill(p, signal.SIGTERM, wait=10)

    rows = _journal_rows(pg)
    sent = json.loads(caller_out.read_text()) if caller_out.exists() else {"node_of": {}, "job_of": {}, "terminal": {}}
    as_int = lambda d: {int(k): v for k, v in d.items()}  # noqa: E731 (JSON keys are strings)
    counts = durable.tally(rows, as_int(sent["node_of"]), as_int(sent["job_of"]), as_int(sent["terminal"]),
                           counting_workers.executions(log), pair.all_logs())
    times = [e["failover_ms"] for e in events if e["failover_ms"] is not None]
    by_fault = {f: [e["failover_ms"] for e in events if e["fault"] == f and e["failover_ms"] is not None]
                for f in faults}
    report = {
        "settings": {k: getattr(args, k) for k in ("duration", "faults", "fault_every", "lease_ms", "concurrency",
                                                   "sleep_ms", "ping_ms", "liveness", "seed")},
        "namespaces": list(net.ns.values()), "sdks": sdks, "skipped": skipped,
        "faults_applied": {f: sum(1 for e in events if e["fault"] == f) for f in faults},
        "failover_ms": {"p50": _percentile(times, 50), "max": max(times) if times else None, "all": times},
        "failover_ms_by_fault": {f: {"p50": _percentile(v, 50), "max": max(v) if v else None} for f, v in by_fault.items()},
        "old_leaders_stopped_by_themselves": sum(1 for e in events if e["fault"] != "sigkill"
                                                 and e.get("old_leader_exit") is not None),
        "events": events,
        "submitted": sent.get("submitted", 0),
        "not_taken_while_no_daemon": sent.get("not_taken", 0),
        **counts,
        "problems": problems,
    }
    print("durable calls across failovers of a musterd pair (network namespaces)")
    for key in ("sdks", "skipped", "faults_applied", "failover_ms", "failover_ms_by_fault",
                "old_leaders_stopped_by_themselves", "submitted", "accepted", "finished_ok", "failed", "lost",
                "duplicated", "non_idempotent_run_twice", "executions", "adopted", "requeued_after_restart",
                "ended_after_restart", "problems"):
        print(f"  {key:34} {report[key]}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    ok = (report["lost"] == 0 and report["duplicated"] == 0 and report["non_idempotent_run_twice"] == 0
          and not problems and len(events) > 0)
    if not ok:
        print(json.dumps({k: report[k] for k in ("lost_examples", "duplicated_examples", "run_twice_examples",
                                                 "problems")}, indent=1))
    pg.stop()
    net.delete()
    if not args.keep and ok:
        shutil.rmtree(base, ignore_errors=True)
    else:
        fm.log(f"logs kept in {base}")
    return 0 if ok else 1

