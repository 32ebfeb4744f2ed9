"""abuse.py — `muster_fault.py abuse`: is musterd bounded under abuse, and do hostile peers
starve a well-behaved client? (docs/RELIABILITY.md, "Bounded under abuse")

A well-behaved client calls `echo` one request at a time for the whole run and records each
latency. Phase by phase, abusers run in their own processes next to it:

  baseline        nothing else
  flood           a client submits `sleep` as fast as it can without waiting (workers busy):
                  it must get QUEUE_FULL, and musterd's memory must stay flat
  flood-large     the same with --large-kib inputs per submit: queued payloads stay in
                  musterd's memory (bounded by --queue-limit × size per node)
  unread-replies  a client submits `echo` with --large-kib inputs and never reads a reply:
                  musterd keeps the undelivered replies (ZeroMQ send queue) in memory
  max-size        peers send frames of exactly --max-message-bytes and of twice that (the
                  latter makes libzmq drop the connection)
  big-attach      a peer attaching as a worker with --attach-nodes node declarations (one
                  message well under the size limit), again and again
  connections     --connections idle client connections opened at once, each asking status
                  (musterd runs with the soft open-files limit of --daemon-nofile, if given)
  reconnect       a peer connecting, submitting and disconnecting in a tight loop
  forged-pongs    two workers serving `forged`, one never reading its SUB socket and ponging
                  seq 10^12, one reading pings only to pong their seqs with an empty in-flight
                  list 20 times each, while a client calls `forged` with --pong-kib inputs:
                  musterd must neither confirm the first nor re-send without bound to the second
                  (re-sent bytes from GetStatus `redispatched`, and musterd's RSS)
  slow-reader     a client submits --slow-reader-calls tiny `echo` calls without reading, then
                  reads everything: every call must get exactly one reply (result or QUEUE_FULL)
  attach-storm    a peer pipelining twenty 100,000-node Attaches, then twenty at
                  --max-attach-nodes (1,000) nodes, again and again: the honest workers must
                  keep their pings and the good client its latency
  enroll-guess    an enrolled peer guessing enrollment tokens on the enrollment endpoint
                  (CURVE TCP on loopback; not with --tcp, which is --insecure), each guess
                  after a valid re-enrollment of its own key: the guesses must still be slowed
                  down (docs/SECURITY.md §5). Reports guesses checked vs refused unchecked

For each phase it prints the good client's p50/p99/max latency and error count, and musterd's
RSS (start, peak, end); the abusers' replies by code.
"""
from __future__ import annotations

import collections
import json
import multiprocessing as mp
import os
import re
import signal
import tempfile
import time

from pathlib import Path
from typing import Dict, Optional, Tuple

import zmq

import wire

PHASES = ["baseline", "flood", "flood-large", "unread-replies", "max-size", "big-attach",
          "connections", "reconnect", "forged-pongs", "slow-reader", "attach-storm",
          "enroll-guess"]


def add_arguments(a):
    a.add_argument("--build", help="CMake build dir (default $MUSTER_BUILD_DIR or build/)")
    a.add_argument("--phases", default=",".join(PHASES))
    a.add_argument("--phase-seconds", type=float, default=8.0)
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--capacity", type=int, default=4)
    a.add_argument("--queue-limit", type=int, default=1000)
    a.add_argument("--max-message-bytes", type=int, default=16 << 20)
    a.add_argument("--large-kib", type=int, default=1024, help="input size of the large floods")
    a.add_argument("--connections", type=int, default=2000)
    a.add_argument("--daemon-nofile", type=int, default=0,
                   help="soft RLIMIT_NOFILE for musterd (e.g. 1024, a common default); 0: inherit")
    a.add_argument("--attach-nodes", type=int, default=20000)
    a.add_argument("--pong-kib", type=int, default=256, help="input size of the forged-pongs calls")
    a.add_argument("--slow-reader-calls", type=int, default=130000)
    a.add_argument("--tcp", action="store_true",
                   help="musterd on loopback TCP (--insecure) instead of ipc:// sockets")
    a.add_argument("--rss-limit-mib", type=int, default=6144,
                   help="stop an abuser when musterd's RSS passes this (protects the machine)")
    a.add_argument("--json", help="write the report as JSON here")
    a.add_argument("--tmp", default=None)
    a.add_argument("--keep", action="store_true")


# ---- abusers (each runs in its own process until killed) ---------------------------------------


def _flood(address: str, node: str, inputs: dict, timeout_ms: int, read: bool, out_path: str):
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.SNDHWM, 1000)
    s.connect(address)
    t = wire.SubmitTemplate(node, inputs, timeout_ms)
    counts = collections.Counter()
    rid = 0
    last_dump = time.monotonic()
    while True:
        rid += 1
        try:
            s.send(t.make(rid), zmq.NOBLOCK)
            counts["sent"] += 1
        except zmq.Again:
            time.sleep(0.001)
        if read:
            while True:
                try:
                    r = wire.read_reply(s.recv_multipart(zmq.NOBLOCK)[-1])
                except zmq.Again:
                    break
                if r and r.kind == wire.REPLY_FAILURE:
                    counts[wire.code_name(r.code)] += 1
                elif r and r.kind == wire.REPLY_RESULT:
                    counts["RESULT"] += 1
        if time.monotonic() - last_dump > 0.5:
            last_dump = time.monotonic()
            Path(out_path).write_text(json.dumps(counts))


def _max_size(address: str, size: int, out_path: str):
    ctx = zmq.Context()
    counts = collections.Counter()
    junk = bytearray(os.urandom(64)) * (size // 64)
    junk[4:8] = b"MSCL"  # the right identifier: the daemon has to look further
    big = bytes(junk)
    over = big + big
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.SNDHWM, 4)
    s.connect(address)
    last_dump = time.monotonic()
    i = 0
    while True:
        i += 1
        if i % 8 == 0:
            # twice the limit: libzmq drops this connection (maxmsgsize); use a new one
            s2 = ctx.socket(zmq.DEALER)
            s2.linger = 0
            s2.connect(address)
            try:
                s2.send(over, zmq.NOBLOCK)
                counts["oversize sent"] += 1
            except zmq.Again:
                pass
            time.sleep(0.05)
            s2.close(0)
        try:
            s.send(big, zmq.NOBLOCK)
            counts["max-size sent"] += 1
        except zmq.Again:
            time.sleep(0.005)
        while True:
            try:
                r = wire.read_reply(s.recv_multipart(zmq.NOBLOCK)[-1])
            except zmq.Again:
                break
            counts[wire.code_name(r.code) if r else "?"] += 1
        if time.monotonic() - last_dump > 0.5:
            last_dump = time.monotonic()
            Path(out_path).write_text(json.dumps(counts))


def _connections(address: str, n: int, out_path: str):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * n + 1024)), hard))
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, n + 100)
    socks = []
    counts = collections.Counter()
    for i in range(n):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(address)
        s.send(wire.status_request(i + 1))
        socks.append(s)
    counts["opened"] = n
    Path(out_path).write_text(json.dumps(counts))
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    while True:
        for s, _ in poller.poll(500):
            s.recv_multipart()
            counts["status replies"] += 1
        Path(out_path).write_text(json.dumps(counts))


def _big_attach(address: str, nodes: int, out_path: str):
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(address)
    msg = wire.attach("big-attach", "s1", 1, [(f"n{i}", False) for i in range(nodes)])
    counts = collections.Counter(message_bytes=len(msg))
    while True:
        start = time.monotonic()
        s.send(msg)
        if s.poll(600_000):
            r = wire.read_daemon(s.recv_multipart()[-1])
            counts["attached" if r and r.kind == wire.DAEMON_ATTACHED else "other reply"] += 1
            counts["last_reply_s"] = round(time.monotonic() - start, 2)
        Path(out_path).write_text(json.dumps(counts))


def _reconnect(address: str, out_path: str):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = zmq.Context()
    t = wire.SubmitTemplate("echo", {"x": 1}, 2000)
    counts = collections.Counter()
    last_dump = time.monotonic()
    rid = 0
    while True:
        rid += 1
        if rid % 256 == 0:  # closed sockets are reaped by the context: start a fresh one
            ctx.term()
            ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(address)
        s.send(t.make(rid))
        s.close(0)
        counts["connect+submit+close"] += 1
        if time.monotonic() - last_dump > 0.5:
            last_dump = time.monotonic()
            Path(out_path).write_text(json.dumps(counts))


def _read_counts(path: str) -> dict:
    """An abuser's last counts (it may be killed halfway through writing them: then retry)."""
    for _ in range(20):
        try:
            return json.loads(Path(path).read_text()) if Path(path).exists() else {}
        except ValueError:
            time.sleep(0.05)
    return {}


def _dump_every(counts, out_path: str, last: list, period: float = 0.5):
    if time.monotonic() - last[0] > period:
        last[0] = time.monotonic()
        Path(out_path).write_text(json.dumps(counts))


def _forged_pongs(request_address: str, response_address: str, client_address: str, kib: int,
                  out_path: str):
    """Two forging workers serving `forged` and a client calling it (item 10 of issue 12)."""
    ctx = zmq.Context()
    counts = collections.Counter()
    workers = {}
    for wid in ("forge-deaf", "forge-seqs"):
        sub = ctx.socket(zmq.SUB)
        sub.connect(request_address)
        sub.subscribe(f"w:{wid}:".encode())
        sub.subscribe(b"b:")
        d = ctx.socket(zmq.DEALER)
        d.connect(response_address)
        workers[wid] = (sub, d)
    time.sleep(0.3)
    for wid, (sub, d) in workers.items():
        d.send(wire.attach(wid, "s1", 4, [("forged", False)]))
    client = ctx.socket(zmq.DEALER)
    client.connect(client_address)
    t = wire.SubmitTemplate("forged", {"blob": "x" * (kib * 1024)}, 5000)
    instance, answered, rid, last = "", set(), 0, [time.monotonic()]
    deaf_sub, deaf = workers["forge-deaf"]
    seqs_sub, seqs = workers["forge-seqs"]
    while True:
        # the deaf one never reads its SUB socket: forged seqs only, empty in-flight list
        for i in range(20):
            deaf.send(wire.pong("forge-deaf", 10 ** 12 + i, instance, []))
            counts["forged pongs"] += 1
        # the other reads pings (and work) only to learn seqs, and answers each 20 times
        while seqs_sub.poll(0):
            m = wire.read_daemon(seqs_sub.recv_multipart()[-1])
            if m and m.kind == wire.DAEMON_PING:
                instance = m.instance
                if m.seq not in answered:
                    answered.add(m.seq)
                    for _ in range(20):
                        seqs.send(wire.pong("forge-seqs", m.seq, instance, []))
                        counts["pongs to real pings"] += 1
            elif m and m.kind == wire.DAEMON_WORK:
                counts["work requests received"] += 1
        for d in (deaf, seqs):
            while d.poll(0):
                d.recv_multipart()
        if rid - counts["client replies"] < 16:  # 16 calls open
            rid += 1
            client.send(t.make(rid))
        while client.poll(0):
            r = wire.read_reply(client.recv_multipart()[-1])
            if r and r.kind in (wire.REPLY_RESULT, wire.REPLY_FAILURE):
                counts["client replies"] += 1
                counts["client " + ("RESULT" if r.kind == wire.REPLY_RESULT else wire.code_name(r.code))] += 1
        time.sleep(0.005)
        _dump_every(counts, out_path, last)


def _slow_reader(address: str, calls: int, out_path: str):
    """Submits `calls` tiny echo calls reading nothing, then reads every reply (item 11). It
    paces its submits by musterd's queue (asked on a second connection), so that its calls are
    accepted and their replies pile up unread rather than being refused at the queue limit."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(address)
    probe = ctx.socket(zmq.DEALER)
    probe.connect(address)
    t = wire.SubmitTemplate("echo", {"x": 1}, 120000)
    counts = collections.Counter()
    last = [time.monotonic()]
    for rid in range(1, calls + 1):
        s.send(t.make(rid))  # reads nothing until the end
        counts["sent"] += 1
        if rid % 250 == 0:
            while True:
                probe.send(wire.status_request(rid))
                if not probe.poll(10000):
                    break
                r = wire.read_reply(probe.recv_multipart()[-1])
                if not r or wire.read_status(r)["queued"] < 50:
                    break
                time.sleep(0.01)
        _dump_every(counts, out_path, last)
    seen = set()
    quiet = time.monotonic()
    while time.monotonic() - quiet < 5:
        if not s.poll(100):
            continue
        r = wire.read_reply(s.recv_multipart()[-1])
        if r and r.kind in (wire.REPLY_RESULT, wire.REPLY_FAILURE):
            quiet = time.monotonic()
            if r.request_id in seen:
                counts["duplicated"] += 1
            seen.add(r.request_id)
            counts["RESULT" if r.kind == wire.REPLY_RESULT else wire.code_name(r.code)] += 1
            counts["missing"] = calls - len(seen)
            _dump_every(counts, out_path, last)
    counts["missing"] = calls - len(seen)
    counts["done"] = 1
    Path(out_path).write_text(json.dumps(counts))
    while True:
        time.sleep(1)


def _attach_storm(address: str, out_path: str):
    """Pipelined huge Attaches, then pipelined ones at the node limit (item 13)."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(address)
    huge = wire.attach("storm-huge", "s1", 1, [(f"n{i}", False) for i in range(100_000)])
    at_limit = [wire.attach(f"storm-{i}", "s1", 1, [(f"s{i}.{k}", False) for k in range(1000)])
                for i in range(20)]
    counts = collections.Counter(huge_bytes=len(huge), at_limit_bytes=len(at_limit[0]))
    last = [time.monotonic()]
    while True:
        for _ in range(20):
            s.send(huge)
        for m in at_limit:
            s.send(m)
        for _ in range(40):
            if not s.poll(60_000):
                break
            r = wire.read_daemon(s.recv_multipart()[-1])
            counts["attached" if r and r.kind == wire.DAEMON_ATTACHED else
                   "rejected" if r and r.kind == wire.DAEMON_REJECTED else "other"] += 1
        _dump_every(counts, out_path, last, 0.2)


def _enroll_request(token: str, public_key: str) -> bytes:
    """EnrollRequest{token, public_key, role, name, hostname} (schema/enroll.fbs), MSEQ."""
    import flatbuffers
    b = flatbuffers.Builder(256)
    offs = [b.CreateString(x) for x in (token, public_key, "worker", "abuse", "abuse-host")]
    b.StartObject(5)
    for slot, off in enumerate(offs):
        b.PrependUOffsetTRelativeSlot(slot, off, 0)
    b.Finish(b.EndObject(), file_identifier=b"MSEQ")
    return bytes(b.Output())


def _enroll_answer(buf: bytes) -> Tuple[bool, str]:
    """(ok, error) of an EnrollResponse (schema/enrolled.fbs: ok is field 0, error field 6)."""
    import flatbuffers
    t = flatbuffers.table.Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    o = t.Offset(4)
    ok = bool(o) and bool(t.Get(flatbuffers.number_types.BoolFlags, o + t.Pos))
    o = t.Offset(16)
    return ok, (t.String(o + t.Pos).decode("utf-8", "replace") if o else "")


def _enroll_guess(address: str, daemon_key: str, token: str, out_path: str):
    """Enrolls a key once (a real first enrollment), then forever: re-enrolls it (valid, a
    no-op) and guesses a token. Counts the guesses the daemon checked and those it refused
    unchecked (rate-limited)."""
    import base64
    import zmq.utils.z85
    ctx = zmq.Context()
    pub, sec = zmq.curve_keypair()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.curve_serverkey, s.curve_publickey, s.curve_secretkey = daemon_key.encode(), pub, sec
    s.connect(address)
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    key_part = b64(zmq.utils.z85.decode(daemon_key.encode()))

    def ask(tok: str) -> Tuple[bool, str]:
        s.send(_enroll_request(tok, pub.decode()))
        if not s.poll(10000):
            return False, "no answer in 10 s"
        return _enroll_answer(s.recv_multipart()[-1])

    counts: Dict[str, object] = collections.Counter()
    ok, err = ask(token)
    counts["first enrollment"] = "ok" if ok else err
    start = last_dump = time.monotonic()
    while True:
        ok, _ = ask(token)
        counts["re-enroll ok" if ok else "re-enroll refused"] += 1
        guess = f"muster1.{os.urandom(8).hex()}.{b64(os.urandom(32))}.{key_part}"
        _, err = ask(guess)
        kind = ("guess checked" if err.startswith("unknown token") else
                "guess rate-limited" if "too many failed" in err else f"guess: {err}")
        counts[kind] += 1
        now = time.monotonic()
        if now - last_dump > 0.5:
            last_dump = now
            out = dict(counts)
            out["checked guesses/s"] = round(counts["guess checked"] / (now - start), 1)
            Path(out_path).write_text(json.dumps(out))


def _enrollment_setup(cluster, fm) -> Optional[Tuple[str, str, str]]:
    """(enrollment address, daemon key, a one-use worker token) of a daemon started with
    --enrollment-address, or None."""
    import subprocess
    address = getattr(cluster, "enrollment_address", None)
    if not address:
        return None
    pub = (cluster.base / "data" / "daemon-curve.pub").read_text()
    key = next(line.split("=", 1)[1].strip() for line in pub.splitlines() if line.startswith("public="))
    out = subprocess.run([str(cluster.build / "tools" / "muster"), "--client-address", cluster.client_address,
                          "token", "create", "--role", "worker"], env=cluster.env, capture_output=True,
                         text=True, timeout=30)
    token = next((w for w in out.stdout.split() if w.startswith("muster1.")), None)
    if not token:
        fm.log(f"enroll-guess: could not mint a token: {out.stderr.strip()}")
        return None
    return address, key, token


# ---- the run -------------------------------------------------------------------------------------


def _good_client(address: str, seconds: float):
    """Sequential echo calls; returns (latencies, errors)."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(address)
    t = wire.SubmitTemplate("echo", {"x": 1}, 5000, nonce_key="n")
    lat, errors = [], collections.Counter()
    end = time.monotonic() + seconds
    rid = 10 ** 9
    while time.monotonic() < end:
        rid += 1
        start = time.monotonic()
        s.send(t.make(rid))
        got = None
        while time.monotonic() - start < 10:
            if s.poll(100):
                r = wire.read_reply(s.recv_multipart()[-1])
                if r and r.request_id == rid and r.kind in (wire.REPLY_RESULT, wire.REPLY_FAILURE):
                    got = r
                    break
        if got is None:
            errors["no reply in 10 s"] += 1
        elif got.kind == wire.REPLY_FAILURE:
            errors[wire.code_name(got.code)] += 1
        else:
            lat.append(time.monotonic() - start)
        time.sleep(0.01)
    s.close(0)
    return lat, errors


def _pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 2)


def run(args, fm) -> int:
    build = fm.find_build(args.build)
    fm.raise_fd_limit(4 * args.connections + 2048)
    base = Path(tempfile.mkdtemp(prefix="mabuse-", dir=args.tmp))
    fm.log(f"working in {base}")
    daemon_args = ["--queue-limit", str(args.queue_limit), "--log-level", "warn",
                   "--max-message-bytes", str(args.max_message_bytes)]
    wanted = [p.strip() for p in args.phases.split(",") if p.strip()]
    enrollment_address = None
    if "enroll-guess" in wanted and not args.tcp:  # --tcp is --insecure: no enrollment endpoint
        enrollment_address = f"tcp://127.0.0.1:{fm.free_tcp_port('127.0.0.1')}"
        daemon_args += ["--enrollment-address", enrollment_address]
    cluster = fm.Cluster(build, base, 500, 4, daemon_args, None,
                         tcp_host="127.0.0.1" if args.tcp else None)
    cluster.enrollment_address = enrollment_address
    cluster.daemon_nofile = args.daemon_nofile
    cluster.start_daemon()
    for i in range(args.workers):
        cluster.start_worker(f"aw{i}", capacity=args.capacity)
    admin = fm.Admin(cluster.client_address)
    admin.wait_workers(args.workers, 30)
    time.sleep(0.5)
    mpctx = mp.get_context("fork")
    addr = cluster.client_address
    large = {"blob": "x" * (args.large_kib * 1024)}
    report = {"settings": dict(workers=args.workers, capacity=args.capacity,
                               queue_limit=args.queue_limit,
                               max_message_bytes=args.max_message_bytes,
                               large_kib=args.large_kib, connections=args.connections,
                               daemon_nofile=args.daemon_nofile, attach_nodes=args.attach_nodes,
                               phase_seconds=args.phase_seconds), "phases": []}
    enrollment = _enrollment_setup(cluster, fm) if enrollment_address else None
    for phase in wanted:
        out = str(base / f"{phase}.json")
        targets = {
            "baseline": [],
            "flood": [(_flood, (addr, "sleep", {"ms": 200}, 60000, True, out))],
            "flood-large": [(_flood, (addr, "sleep", dict(large, ms=200), 60000, True, out))],
            "unread-replies": [(_flood, (addr, "echo", large, 60000, False, out))],
            "max-size": [(_max_size, (addr, args.max_message_bytes, out))],
            "big-attach": [(_big_attach, (cluster.response_address, args.attach_nodes, out))],
            "connections": [(_connections, (addr, args.connections, out))],
            "reconnect": [(_reconnect, (addr, out))],
            "forged-pongs": [(_forged_pongs, (cluster.request_address, cluster.response_address,
                                              addr, args.pong_kib, out))],
            "slow-reader": [(_slow_reader, (addr, args.slow_reader_calls, out))],
            "attach-storm": [(_attach_storm, (cluster.response_address, out))],
            "enroll-guess": [(_enroll_guess, (*enrollment, out))] if enrollment else [],
        }[phase]
        st0 = admin.status(5.0) or {}
        rss_start = fm.rss_kib(cluster.daemon.pid)
        procs = [mpctx.Process(target=f, args=a, daemon=True) for f, a in targets]
        for p in procs:
            p.start()
        peak = [rss_start]
        stop = [False]
        capped = [False]

        def watch():
            while not stop[0]:
                r = fm.rss_kib(cluster.daemon.pid)
                peak[0] = max(peak[0], r)
                if r > args.rss_limit_mib * 1024 and not capped[0]:
                    capped[0] = True
                    fm.log(f"{phase}: musterd RSS passed {args.rss_limit_mib} MiB: stopping the abuser")
                    for p in procs:
                        p.kill()
                time.sleep(0.1)
        import threading
        w = threading.Thread(target=watch, daemon=True)
        w.start()
        time.sleep(1.0 if procs else 0)  # let the abuse get going
        lat, errors = _good_client(addr, args.phase_seconds)
        if phase == "slow-reader":  # it reads its replies only at the end: let it
            end = time.monotonic() + 120
            while time.monotonic() < end and '"done"' not in (Path(out).read_text() if Path(out).exists() else ""):
                time.sleep(0.2)
        stop[0] = True
        w.join()
        for p in procs:
            p.kill()
            p.join(5)
        abuser = _read_counts(out)
        # let musterd settle: queued requests time out or finish
        time.sleep(2.0)
        st = admin.status(5.0) or {}
        if phase == "slow-reader":  # what musterd says it dropped: refusals only, never a result
            found = re.findall(r"were dropped: that client reads none of its replies \((\d+) in all\)",
                               cluster.daemon_log())
            abuser["refusals musterd dropped"] = int(found[-1]) if found else 0
        if phase == "forged-pongs":  # every re-send repeats the call's input
            abuser["re-sent KiB"] = (st.get("redispatched", 0) - st0.get("redispatched", 0)) * args.pong_kib
        row = dict(phase=phase, good_calls=len(lat), good_errors=dict(errors),
                   p50_ms=_pct(lat, 0.5), p99_ms=_pct(lat, 0.99), max_ms=_pct(lat, 1.0),
                   rss_start_mib=round(rss_start / 1024, 1), rss_peak_mib=round(peak[0] / 1024, 1),
                   rss_end_mib=round(fm.rss_kib(cluster.daemon.pid) / 1024, 1),
                   rss_capped=capped[0], abuser=abuser, daemon_alive=cluster.daemon.poll() is None,
                   daemon_failures=st.get("failures", {}))
        report["phases"].append(row)
        fm.log(f"{phase}: good client {len(lat)} calls p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms "
                f"max {row['max_ms']} ms errors {dict(errors)}; musterd RSS {row['rss_start_mib']} -> "
                f"peak {row['rss_peak_mib']} -> {row['rss_end_mib']} MiB; abuser {abuser}")
        if cluster.daemon.poll() is not None:
            fm.log(f"musterd died during {phase}")
            break
        # Wait for the backlog of the phase to clear before the next one.
        end = time.monotonic() + 90
        while time.monotonic() < end:
            st = admin.status(5.0) or {}
            if st.get("queued", 1) == 0 and st.get("in_flight", 1) == 0:
                break
            time.sleep(0.5)
    cluster.stop_all()
    print("\nmuster abuse run (good client: sequential echo calls)")
    print(f"  {'phase':<15} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'errors':<16} {'RSS MiB start/peak/end':<24} abuser")
    ok = True
    for r in report["phases"]:
        print(f"  {r['phase']:<15} {r['good_calls']:>6} {str(r['p50_ms']):>8} {str(r['p99_ms']):>8} "
              f"{str(r['max_ms']):>8} {json.dumps(r['good_errors']):<16} "
              f"{r['rss_start_mib']}/{r['rss_peak_mib']}/{r['rss_end_mib']}"
              f"{' (capped)' if r['rss_capped'] else '':<10} {json.dumps(r['abuser'])}")
        ok = ok and r["daemon_alive"]
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if not args.keep:
        import shutil
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1
