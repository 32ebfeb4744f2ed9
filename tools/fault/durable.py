"""durable.py — `muster_fault.py durable`: durable calls under daemon SIGKILLs (docs/DURABILITY.md,
docs/RELIABILITY.md).

A private musterd with its journal, counting workers of the C++, Python and TypeScript SDKs
(tests/integration/counting_workers.py; TypeScript only where `node` and the built SDK are
there), one client connection submitting durable calls (half to the idempotent node, half to
the other, each with a unique nonce as its input `i`) while musterd is SIGKILLed every
--kill-every s and restarted --down s later on the same journal and endpoints. The workers are
never killed, so every call must end exactly once with its result, adopted across the restarts.

At the end it waits until nothing is queued or running, stops musterd, reads the journal and the
workers' execution log, and reports: durable calls accepted, finished with a result, failed by
code (the journal's terminal outcome), lost (accepted, or journaled, but without a terminal
outcome in the journal: missing, or still queued or running), duplicated (a nonce run to
completion twice, or two terminal replies on the connection), non-idempotent run twice (a
nonce of the non-idempotent node started twice), and the adoptions and re-queues musterd
logged. Exit status 1 when lost, duplicated or non-idempotent-run-twice is not 0.

A failure is not a loss: WORKER_LOST is the one terminal reply of a non-idempotent call whose
worker re-attached without it. That happens when musterd is killed after the turn that
journaled the call's dispatch was written and before its WorkRequest went out (a SIGKILL during
the turn's fsync: the WAL pages survive in the page cache), so the worker never got it; an
idempotent one is re-queued and runs once (docs/DURABILITY.md §13).

Owns: the durable mix only. Must never: kill a worker (the counts above would then allow
re-runs), or read the journal while musterd holds it.
"""
from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import zmq

import wire

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import counting_workers  # noqa: E402

NODES = ("count", "count_idem")


def add_arguments(a):
    a.add_argument("--build", help="CMake build dir (default $MUSTER_BUILD_DIR or build/)")
    a.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    a.add_argument("--concurrency", type=int, default=12, help="open durable calls at a time")
    a.add_argument("--sleep-ms", type=int, default=300, help="how long each call runs (max; random below)")
    a.add_argument("--kill-every", type=float, default=4.0, help="seconds between musterd SIGKILLs")
    a.add_argument("--down", type=float, default=0.5, help="seconds musterd stays down")
    a.add_argument("--ping-ms", type=int, default=200)
    a.add_argument("--liveness", type=int, default=3)
    a.add_argument("--sdks", default="cpp,python,typescript", help="counting workers, one per SDK")
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--tmp", default=None, help="parent of the work dir (short paths: ipc limit)")
    a.add_argument("--json", help="write the report as JSON here")
    a.add_argument("--keep", action="store_true", help="keep the work dir (logs)")


def _sdks(wanted: str) -> list:
    out = []
    for sdk in (s.strip() for s in wanted.split(",") if s.strip()):
        if sdk == "typescript" and (shutil.which("node") is None or
                                    not (REPO / "worker" / "typescript" / "dist").exists()):
            continue  # reported as skipped
        out.append(sdk)
    return out


class Submitter:
    """One client connection of durable calls; it reconnects by itself (ZMQ) after a restart.
    `address` may be a failover pair's list (A,B): then only completed connections take a
    Submit (ZMQ_IMMEDIATE), and one that none takes is not submitted (failover.py)."""

    def __init__(self, address: str, sleep_ms: int, seed: int):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        endpoints = address.split(",")
        if len(endpoints) > 1:
            self.sock.setsockopt(zmq.IMMEDIATE, 1)
        for endpoint in endpoints:
            self.sock.connect(endpoint)
        self.templates = {(node, ms): wire.SubmitTemplate(node, {"ms": ms}, 120_000, nonce_key="i",
                                                           durable=True)
                          for node in NODES for ms in range(0, sleep_ms + 1, max(1, sleep_ms // 4))}
        self.rng = random.Random(seed)
        self.next_rid = 1
        self.node_of: dict = {}    # rid (= nonce) -> node
        self.job_of: dict = {}     # rid -> job id (from Accepted)
        self.terminal: dict = {}   # rid -> terminal replies received
        self.open: set = set()     # rids this connection still waits for (since the last crash)

    def submit(self) -> bool:
        """Sends one durable call; False when no connection takes it now (nothing sent)."""
        rid = self.next_rid
        node, ms = self.rng.choice(list(self.templates))
        try:
            self.sock.send(bytes(self.templates[(node, ms)].make(rid)), zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.next_rid += 1
        self.node_of[rid] = node
        self.open.add(rid)
        return True

    def read(self, timeout_ms: int):
        if not self.sock.poll(timeout_ms):
            return
        while True:
            try:
                r = wire.read_reply(self.sock.recv_multipart(zmq.NOBLOCK)[-1])
            except zmq.Again:
                return
            if r is None:
                continue
            if r.kind == wire.REPLY_ACCEPTED:
                self.job_of[r.request_id] = r.job_id
            elif r.kind in (wire.REPLY_RESULT, wire.REPLY_FAILURE):
                self.terminal[r.request_id] = self.terminal.get(r.request_id, 0) + 1
                self.open.discard(r.request_id)

    def crashed(self):
        """musterd died: the calls open on this connection end in the journal, not here (a
        caller resumes them on the next instance: not built yet)."""
        self.open.clear()


def _journal_rows(path: Path) -> dict:
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return {r["job_id"]: dict(r) for r in db.execute(
            "SELECT job_id, node, state, outcome_code, message, attempts FROM call_rows")}


def tally(rows: dict, node_of: dict, job_of: dict, terminal: dict, runs: dict, daemon_logs: str) -> dict:
    """The counts of a durable run (also failover.py's): `rows` the journal's calls by job id
    (state, outcome_code, node, message), `node_of`/`job_of`/`terminal` the caller's nonce ->
    node / job id (from Accepted) / terminal replies received, `runs` the counting workers'
    executions, `daemon_logs` every musterd log of the run."""
    accepted = {rid: job for rid, job in job_of.items() if job}
    lost = []
    for rid, job in sorted(accepted.items()):
        row = rows.get(job)
        if row is None or row["state"] != 2:
            lost.append({"nonce": rid, "job_id": job, "node": node_of[rid],
                         "row": None if row is None else {k: row[k] for k in ("state", "outcome_code", "message")}})
    unaccepted_rows = sorted(set(rows) - set(accepted.values()))
    lost += [{"job_id": j, "row": rows[j]} for j in unaccepted_rows if rows[j]["state"] != 2]
    failed: dict = {}
    for r in rows.values():
        if r["state"] == 2 and r["outcome_code"] != 0:
            name = f'{wire.code_name(r["outcome_code"])} ({r["node"]})'
            failed[name] = failed.get(name, 0) + 1
    failed_examples = [{"job_id": r["job_id"], "node": r["node"], "message": r["message"]}
                       for r in rows.values() if r["state"] == 2 and r["outcome_code"] != 0][:10]
    duplicated = sorted(n for n, c in runs["done"].items() if c > 1)
    duplicated += sorted(r for r, c in terminal.items() if c > 1)
    twice = sorted(n for n, c in runs["start"].items() if c > 1 and node_of.get(n) == "count")
    # Run by a worker though its caller was never told Accepted: a musterd killed before the
    # commit of a call whose WorkRequest went early (docs/DURABILITY.md §3). Allowed once.
    ran_unaccepted = sorted(n for n in runs["start"] if not job_of.get(n))
    return {
        "accepted": len(accepted),
        "journaled_without_accepted": len(unaccepted_rows),
        "finished_ok": sum(1 for r in rows.values() if r["state"] == 2 and r["outcome_code"] == 0),
        "failed": failed,
        "failed_examples": failed_examples,
        "lost": len(lost),
        "lost_examples": lost[:10],
        "duplicated": len(duplicated),
        "duplicated_examples": duplicated[:10],
        "non_idempotent_run_twice": len(twice),
        "run_twice_examples": twice[:10],
        "executions": sum(runs["start"].values()),
        "ran_without_accepted": len(ran_unaccepted),
        "adopted": daemon_logs.count("durable call adopted"),
        "requeued_after_restart": daemon_logs.count("durable call re-queued"),
        "ended_after_restart": daemon_logs.count("durable call ended after the restart"),
    }


def run(args, fm) -> int:
    build = fm.find_build(args.build)
    base = Path(tempfile.mkdtemp(prefix="mdurable-", dir=args.tmp))
    fm.log(f"working in {base}")
    cluster = fm.Cluster(build, base, args.ping_ms, args.liveness,
                         ["--log-level", "info", "--shutdown-grace-ms", "500"], None)
    cluster.start_daemon()
    sdks = _sdks(args.sdks)
    skipped = sorted(set(s.strip() for s in args.sdks.split(",")) - set(sdks))
    log = base / "executions.log"
    env = counting_workers.env(cluster.env)
    for sdk in sdks:
        fm.spawn(counting_workers.command(sdk, build, f"count-{sdk}", log, base),
                 base / f"worker-{sdk}.log", env)
    admin = fm.Admin(cluster.client_address)
    if not admin.wait_workers(len(sdks), 30):
        fm.log("the counting workers did not attach")
        return 2
    sub = Submitter(cluster.client_address, args.sleep_ms, args.seed)
    kills = 0
    t0 = time.monotonic()
    next_kill = t0 + args.kill_every
    while time.monotonic() - t0 < args.duration:
        while len(sub.open) < args.concurrency and sub.submit():
            pass
        sub.read(20)
        if time.monotonic() >= next_kill:
            cluster.kill_daemon(signal.SIGKILL)
            kills += 1
            sub.crashed()
            time.sleep(args.down)
            cluster.start_daemon()
            next_kill = time.monotonic() + args.kill_every
    # Let every call end: nothing queued, running or waiting for its worker (the re-attach
    # window), then stop musterd and read what it journaled.
    window = args.ping_ms * args.liveness / 1000
    end = time.monotonic() + 120
    quiet_since = None
    while time.monotonic() < end:
        sub.read(50)
        st = admin.status(2.0)
        if st and st["queued"] == 0 and st["in_flight"] == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > window + 1:
                break
        else:
            quiet_since = None
    cluster.kill_daemon(signal.SIGTERM)
    for p in list(fm._CHILDREN):
        fm.kill(p, signal.SIGTERM, wait=10)

    rows = _journal_rows(base / "data" / "journal.db")
    runs = counting_workers.executions(log)
    daemon_logs = "".join(cluster.daemon_log(i) for i in range(1, cluster.daemon_starts + 1))
    counts = tally(rows, sub.node_of, sub.job_of, sub.terminal, runs, daemon_logs)
    report = {
        "settings": {k: getattr(args, k) for k in ("duration", "concurrency", "sleep_ms", "kill_every",
                                                   "down", "ping_ms", "liveness", "seed")},
        "sdks": sdks, "skipped": skipped,
        "daemon_sigkills": kills,
        "submitted": sub.next_rid - 1,
        **counts,
    }
    print("durable calls under daemon SIGKILLs")
    for key in ("sdks", "skipped", "daemon_sigkills", "submitted", "accepted", "journaled_without_accepted",
                "finished_ok", "failed", "lost", "duplicated", "non_idempotent_run_twice", "executions",
                "ran_without_accepted", "adopted",
                "requeued_after_restart", "ended_after_restart"):
        print(f"  {key:28} {report[key]}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    ok = report["lost"] == 0 and report["duplicated"] == 0 and report["non_idempotent_run_twice"] == 0
    if not ok:
        print(json.dumps({k: report[k] for k in ("lost_examples", "duplicated_examples", "run_twice_examples")}, indent=1))
    if not args.keep and ok:
        shutil.rmtree(base, ignore_errors=True)
    else:
        fm.log(f"logs kept in {base}")
    return 0 if ok else 1
