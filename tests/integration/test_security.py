"""Security on a small LAN: musterd in one network namespace, a worker host and a client host in
two others, joined by veth pairs. Enrollment by token, CURVE on every TCP connection, live
revocation, identity checks and workspaces, and a packet capture showing that neither the
payload nor the token's secret crosses the wire in clear.

Where network namespaces cannot be made (no CAP_NET_ADMIN), the same tests run on loopback and
say so in their output.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from conftest import BUILD, muster_cli, popen, read_log, spawn, stop, wait_for

SUFFIX = f"{os.getpid() % 100000}"
NS = {"daemon": f"mst-d{SUFFIX}", "worker": f"mst-w{SUFFIX}", "client": f"mst-c{SUFFIX}"}
# Addresses of our own test hosts, inside namespaces this test creates.
WORKER_LINK = ("10.231.1.1", "10.231.1.2")
CLIENT_LINK = ("10.231.2.1", "10.231.2.2")


def sh(*args, check=True):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30, check=check)


def make_lan() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    try:
        for ns in NS.values():
            sh("ip", "netns", "add", ns)
        for (peer, (daddr, paddr), i) in (("worker", WORKER_LINK, 1), ("client", CLIENT_LINK, 2)):
            d_if, p_if = f"mstd{i}{SUFFIX}"[:15], f"mstp{i}{SUFFIX}"[:15]
            sh("ip", "link", "add", d_if, "type", "veth", "peer", "name", p_if)
            sh("ip", "link", "set", d_if, "netns", NS["daemon"])
            sh("ip", "link", "set", p_if, "netns", NS[peer])
            sh("ip", "-n", NS["daemon"], "addr", "add", f"{daddr}/24", "dev", d_if)
            sh("ip", "-n", NS[peer], "addr", "add", f"{paddr}/24", "dev", p_if)
            sh("ip", "-n", NS["daemon"], "link", "set", d_if, "up")
            sh("ip", "-n", NS[peer], "link", "set", p_if, "up")
        for ns in NS.values():
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return True
    except (subprocess.CalledProcessError, OSError):
        remove_lan()
        return False


def remove_lan():
    for ns in NS.values():
        sh("ip", "netns", "del", ns, check=False)


@dataclass
class Lan:
    netns: bool
    daemon_ip_for_workers: str
    daemon_ip_for_clients: str

    def run_in(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", NS[host]] if self.netns else []


@pytest.fixture(scope="module")
def lan():
    ok = make_lan()
    if ok:
        print("LAN: three network namespaces joined by veth pairs")
        yield Lan(True, WORKER_LINK[0], CLIENT_LINK[0])
        remove_lan()
    else:
        print("LAN: network namespaces unavailable here; running the same tests on loopback")
        yield Lan(False, "127.0.0.1", "127.0.0.1")


@pytest.fixture
def secure_daemon(lan, tmp_base):
    """musterd listening on CURVE TCP (all interfaces of its host) plus its ipc:// sockets."""
    from conftest import Daemon
    base = tmp_base / "daemon"
    base.mkdir()
    runtime = base / "run"
    env = dict(os.environ, MUSTER_RUNTIME_DIR=str(runtime))
    d = Daemon(runtime_dir=runtime, data_dir=base / "data",
               args=["--listen", "0.0.0.0", "--ping-interval-ms", "200", "--log-level", "debug"],
               env=env)
    # Start it inside the daemon's namespace.
    d.starts += 1
    d.proc = spawn([*lan.run_in("daemon"), BUILD / "broker" / "musterd", "--data-dir", d.data_dir, *d.args],
                   env, base / "musterd.log")
    wait_for(lambda: "ready" in read_log(d.proc) or d.proc.poll() is not None, 10, "musterd")
    assert d.proc.poll() is None, read_log(d.proc)
    yield d
    stop(d.proc)


def mint(daemon, *args) -> str:
    r = muster_cli(daemon, "token", "create", *args)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("muster1.") and len(token) == 112
    return token


def tcp(ip, port):
    return f"tcp://{ip}:{port}"


def start_remote_worker(lan, daemon, tmp_base, token, name, *extra, worker_id=None):
    ip = lan.daemon_ip_for_workers
    data = tmp_base / f"wd-{name}"
    env = dict(os.environ, MUSTER_ENROLLMENT_TOKEN=token, MUSTER_RUNTIME_DIR=str(tmp_base / "none"))
    return spawn([*lan.run_in("worker"), BUILD / "worker" / "muster-example-worker",
                  "--worker-id", worker_id or name, "--request-address", tcp(ip, 7899),
                  "--response-address", tcp(ip, 7898), "--data-dir", data, "--log-level", "debug", *extra],
                 env, tmp_base / f"worker-{name}.log")


def remote_cli(lan, tmp_base, data_name, *args, token=None, timeout=30):
    env = dict(os.environ, MUSTER_RUNTIME_DIR=str(tmp_base / "none"))
    env.pop("MUSTER_ENROLLMENT_TOKEN", None)
    if token:
        env["MUSTER_ENROLLMENT_TOKEN"] = token
    return subprocess.run([*lan.run_in("client"), str(BUILD / "tools" / "muster"),
                           "--client-address", tcp(lan.daemon_ip_for_clients, 7901),
                           "--data-dir", str(tmp_base / f"cd-{data_name}"), "--enroll-timeout-ms", "2000",
                           *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def wait_worker_ready(daemon, worker_id):
    def ready():
        out = muster_cli(daemon, "workers", "--json")
        return out.returncode == 0 and any(w["worker_id"] == worker_id and w["state"] == "ready"
                                           for w in json.loads(out.stdout))
    wait_for(ready, 15, f"worker {worker_id}")


def test_enroll_and_call_across_hosts_nothing_in_clear(lan, secure_daemon, tmp_base):
    d = secure_daemon
    wtoken = mint(d, "--role", "worker", "--name", "lan-worker")
    ctoken = mint(d, "--role", "client")
    start_remote_worker(lan, d, tmp_base, wtoken, "lan-w1")
    wait_worker_ready(d, "lan-w1")

    capture = tmp_base / "lan.pcap"
    tcpdump = None
    if shutil.which("tcpdump"):
        iface = "any"
        tcpdump = popen([*lan.run_in("daemon"), "tcpdump", "-i", iface, "-U", "-s", "0", "-w", str(capture),
                         "tcp", "and", "(port 7898 or port 7899 or port 7900 or port 7901)"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
    secret_payload = "payload-that-must-never-be-seen-" + os.urandom(6).hex()
    try:
        r = remote_cli(lan, tmp_base, "c1", "call", "echo", json.dumps({"text": secret_payload}), token=ctoken)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"text": secret_payload}
        r = remote_cli(lan, tmp_base, "c1", "call", "hello", '{"name":"LAN"}')  # enrolled identity reused
        assert json.loads(r.stdout)["greeting"] == "Hello LAN"
    finally:
        if tcpdump:
            time.sleep(0.5)
            tcpdump.send_signal(signal.SIGINT)
            tcpdump.wait(10)
    if tcpdump:
        data = capture.read_bytes()
        assert len(data) > 1000, "the capture saw the traffic"
        token_secret = ctoken.split(".")[2]
        assert secret_payload.encode() not in data
        assert token_secret.encode() not in data
        assert ctoken.encode() not in data
        print(f"captured {len(data)} bytes of muster traffic: payload and token secret absent")

    keys = json.loads(muster_cli(d, "keys", "list", "--json").stdout)
    assert {k["role"] for k in keys} == {"worker", "client"}
    tokens = json.loads(muster_cli(d, "token", "list", "--json").stdout)
    assert all("secret" not in json.dumps(t).lower() or "secret" in t.get("label", "") for t in tokens)
    assert all(t["state"] == "used-up" for t in tokens)


def with_wrong_secret(token: str) -> str:
    """`token` with one character of its secret changed: well formed, refused."""
    parts = token.split(".")
    return ".".join([parts[0], parts[1], ("A" if parts[2][0] != "A" else "B") + parts[2][1:], parts[3]])


def test_failed_enrollments_slow_down_the_address_they_come_from(lan, secure_daemon, tmp_base):
    """The enrollment rate limiter (keys/rate_limiter.hpp: 3 failures free, then a growing block)
    is keyed by the peer's IP address, which musterd reads from the enrollment socket's messages
    (their Peer-Address; frames.hpp), as the daemon's log of each refusal shows."""
    d = secure_daemon
    wrong = with_wrong_secret(mint(d, "--role", "client"))
    blocked = None
    for i in range(12):  # 3 free failures, then blocks of 1 s, 2 s, 4 s…: an attempt lands in one
        r = remote_cli(lan, tmp_base, f"rl{i}", "status", token=wrong)
        assert r.returncode == 5, r.stderr
        if "too many failed enrollment attempts from your address" in r.stderr:
            blocked = i
            break
        assert "error: PERMISSION_DENIED: enrollment refused" in r.stderr, r.stderr
    assert blocked is not None and blocked >= 3, (blocked, d.log)
    client_ip = CLIENT_LINK[1] if lan.netns else "127.0.0.1"
    assert d.log.count(f"enrollment from {client_ip} refused (unknown-token)") == blocked, d.log


def test_bad_tokens_are_refused_and_the_daemon_keeps_serving(lan, secure_daemon, tmp_base, start_daemon):
    d = secure_daemon
    wrong_secret = with_wrong_secret(mint(d, "--role", "client"))
    # exit status 5: permission denied (README, Exit codes)
    r = remote_cli(lan, tmp_base, "bad1", "status", token=wrong_secret)
    assert r.returncode == 5 and "error: PERMISSION_DENIED: enrollment refused" in r.stderr, r.stderr

    expired = mint(d, "--role", "client", "--ttl", "1s")
    time.sleep(1.2)
    r = remote_cli(lan, tmp_base, "bad2", "status", token=expired)
    assert r.returncode == 5 and "expired" in r.stderr, r.stderr

    once = mint(d, "--role", "client", "--uses", "1")
    assert remote_cli(lan, tmp_base, "ok3", "status", token=once).returncode == 0
    r = remote_cli(lan, tmp_base, "bad3", "status", token=once)
    assert r.returncode == 5 and "no uses left" in r.stderr, r.stderr

    other = start_daemon()  # another daemon: another key pair
    foreign = mint(other, "--role", "client")
    r = remote_cli(lan, tmp_base, "bad4", "status", token=foreign)
    assert r.returncode == 3, r.stderr  # the CURVE handshake cannot complete: nobody answers
    assert "minted by another daemon" in r.stderr, r.stderr

    r = remote_cli(lan, tmp_base, "bad5", "status")  # no token at all
    assert r.returncode == 5 and "must enroll first" in r.stderr

    r = muster_cli(d, "status", "--json")  # the daemon still serves
    assert r.returncode == 0


UNENROLLED_PEER = """
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.linger = 0
pub, sec = zmq.curve_keypair()
s.curve_serverkey = sys.argv[2].encode()
s.curve_publickey = pub
s.curve_secretkey = sec
s.connect(sys.argv[1])
s.send(b"let me in")
print("ANSWERED" if s.poll(1500) else "NO ANSWER")
"""


def test_unenrolled_key_is_refused_at_the_handshake(lan, secure_daemon):
    """A CURVE client whose key the daemon never enrolled gets no connection at all."""
    d = secure_daemon
    daemon_pub = (d.data_dir / "daemon-curve.pub").read_text().split("=", 1)[1].strip()
    python = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "python"
    python = python if python.exists() else Path(__import__("sys").executable)
    r = subprocess.run([*lan.run_in("client"), str(python), "-c", UNENROLLED_PEER,
                        tcp(lan.daemon_ip_for_clients, 7901), daemon_pub],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "NO ANSWER", r.stdout + r.stderr
    wait_for(lambda: "refused a CURVE handshake" in d.log, 5, "the refusal in the daemon's log")
    assert muster_cli(d, "status").returncode == 0


def test_revocation_takes_effect_while_connected(lan, secure_daemon, tmp_base):
    d = secure_daemon
    w = start_remote_worker(lan, d, tmp_base, mint(d, "--role", "worker"), "lan-rev")
    wait_worker_ready(d, "lan-rev")
    ctoken = mint(d, "--role", "client")
    assert remote_cli(lan, tmp_base, "rc", "call", "hello", "{}", token=ctoken).returncode == 0
    worker_identity = next(w_["identity"] for w_ in json.loads(muster_cli(d, "workers", "--json").stdout)
                           if w_["worker_id"] == "lan-rev")
    r = muster_cli(d, "keys", "revoke", worker_identity)
    assert r.returncode == 0, r.stderr
    r = remote_cli(lan, tmp_base, "rc", "call", "hello", "{}")
    assert r.returncode == 1 and "NO_WORKER" in r.stderr
    # Its next message refused; a direct worker (PROTOCOL.md §7.10) gets not even pings, so its
    # next contact is the reconnect after hearing none, whose handshake is refused.
    wait_for(lambda: "revoked or not enrolled as a worker" in d.log or "identity revoked" in d.log, 5,
             "its next message or handshake refused")
    # and the revoked client cannot call either
    client_identity = next(k["id"] for k in json.loads(muster_cli(d, "keys", "list", "--json").stdout)
                           if k["role"] == "client" and not k["revoked"])
    muster_cli(d, "keys", "revoke", client_identity)
    r = remote_cli(lan, tmp_base, "rc", "status", timeout=60)
    assert r.returncode == 3 and "UNAVAILABLE" in r.stderr, r.stderr  # its connection is refused


def test_a_worker_cannot_take_another_workers_id(lan, secure_daemon, tmp_base):
    d = secure_daemon
    start_remote_worker(lan, d, tmp_base, mint(d, "--role", "worker"), "lan-owner")
    wait_worker_ready(d, "lan-owner")
    intruder = start_remote_worker(lan, d, tmp_base, mint(d, "--role", "worker"), "lan-owner-2",
                                   worker_id="lan-owner")
    intruder.wait(20)
    assert intruder.returncode == 2
    assert "attached by another identity" in read_log(intruder)


def test_workspaces_isolate_clients(lan, secure_daemon, tmp_base):
    d = secure_daemon
    start_remote_worker(lan, d, tmp_base, mint(d, "--role", "worker", "--workspace", "alpha"), "lan-alpha")
    wait_worker_ready(d, "lan-alpha")
    r = remote_cli(lan, tmp_base, "beta", "call", "hello", "{}",
                   token=mint(d, "--role", "client", "--workspace", "beta"))
    assert r.returncode == 1 and "NO_WORKER" in r.stderr
    r = remote_cli(lan, tmp_base, "beta", "nodes", "--json")
    assert json.loads(r.stdout) == []
    r = remote_cli(lan, tmp_base, "alpha", "call", "hello", '{"name":"a"}',
                   token=mint(d, "--role", "client", "--workspace", "alpha"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["greeting"] == "Hello a"


# ---- issue 12: workspace isolation on the request socket, admin, worker ids, status, flags --

SPY = Path(__file__).resolve().parent / "spy_subscriber.py"


def free_ports(n: int) -> list[int]:
    """n TCP ports free on loopback right now (bound to port 0, then released)."""
    import socket
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def identity_of_worker(daemon, worker_id: str) -> str:
    return next(w["identity"] for w in json.loads(muster_cli(daemon, "workers", "--json").stdout)
                if w["worker_id"] == worker_id)


def test_a_worker_of_another_workspace_reads_nothing_on_the_request_socket(lan, secure_daemon, tmp_base):
    """An enrolled worker of workspace beta subscribes to "", "w:", workspace alpha's worker's
    exact topic (old and new form) and its identity's prefix: it receives nothing but the
    broadcast pings, while alpha's calls go on completing."""
    d = secure_daemon
    start_remote_worker(lan, d, tmp_base, mint(d, "--role", "worker", "--workspace", "alpha"), "lan-a")
    wait_worker_ready(d, "lan-a")
    a_identity = identity_of_worker(d, "lan-a")
    ip = lan.daemon_ip_for_workers
    env = dict(os.environ, MUSTER_ENROLLMENT_TOKEN=mint(d, "--role", "worker", "--workspace", "beta"),
               MUSTER_RUNTIME_DIR=str(tmp_base / "none"))
    topics = ["-", "w:", "w:lan-a:", f"w:{a_identity}:lan-a:", f"w:{a_identity}:", f"w:{a_identity}",
              "b:"]  # b: last: once pings arrive, every subscription before it was processed
    spy = spawn([*lan.run_in("worker"), sys.executable, SPY, tcp(ip, 7899), tcp(ip, 7900), tmp_base / "spy",
                 *topics], env, tmp_base / "spy.log")
    wait_for(lambda: "receiving" in read_log(spy) or spy.poll() is not None, 20, "the spy to receive a ping")
    assert spy.poll() is None, read_log(spy)
    ctoken = mint(d, "--role", "client", "--workspace", "alpha")
    for i in range(3):
        r = remote_cli(lan, tmp_base, "alpha", "call", "hello", json.dumps({"name": f"secret-{i}"}), token=ctoken)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["greeting"] == f"Hello secret-{i}"
    # A later broadcast ping: whatever was published for alpha has reached the spy by then.
    before = read_log(spy).count("\n")
    time.sleep(0.5)  # more than two ping intervals (200 ms): not a timing assertion
    stop(spy)
    out = json.loads(read_log(spy).splitlines()[-1])
    assert before >= 2
    assert out["received"], "the spy received nothing at all: the test proves nothing"
    assert {tuple(x) for x in out["received"]} == {("b:", "Ping")}, out["received"][:10]
    assert "refused a subscription" in d.log


def raw_sub(address: str, *topics: str):
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    for t in topics:
        sub.setsockopt(zmq.SUBSCRIBE, t.encode())
    sub.connect(address)
    return sub


def drain_topics(sub, until) -> list[bytes]:
    """Topics received until until() is true (polled between messages), then for 0.5 s more
    (broadcast pings come every 200 ms: this is bounded by time, not by silence)."""
    got = []
    while not until():
        while sub.poll(0):
            got.append(sub.recv_multipart()[0])
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        if sub.poll(50):
            got.append(sub.recv_multipart()[0])
    return got


def test_over_ipc_subscriptions_follow_the_same_rule_as_identity_local(start_daemon, start_worker):
    """Over ipc (the local owner, single user) prefixes and other forms are refused too; the exact
    topic w:local:<worker id>: is applied, since any local process is the owner."""
    d = start_daemon()
    w = start_worker(d, "--no-direct").wait_ready()  # its requests on its topic (PROTOCOL.md §7.10)
    request = f"ipc://{d.runtime_dir}/request.sock"
    sub = raw_sub(request, "", "w:", f"w:{w.worker_id}:", "w:local:", "b:")
    wait_for(lambda: sub.poll(50), 10, "a broadcast ping")
    got = drain_topics(sub, lambda: muster_cli(d, "call", "hello", '{"name":"x"}').returncode == 0)
    assert set(got) == {b"b:"}
    own = raw_sub(request, f"w:local:{w.worker_id}:", "b:")
    wait_for(lambda: own.poll(50), 10, "a broadcast ping")
    got = drain_topics(own, lambda: muster_cli(d, "call", "hello", '{"name":"x"}').returncode == 0)
    assert f"w:local:{w.worker_id}:".encode() in got
    sub.close(0)
    own.close(0)


def test_insecure_tcp_peers_are_never_admin(start_daemon):
    """`musterd --insecure` with a tcp:// client endpoint: the remote peer is an anonymous client
    of the default workspace; admin commands are refused. Over ipc the local owner is admin."""
    (port,) = free_ports(1)
    d = start_daemon("--insecure", "--client-address", f"tcp://127.0.0.1:{port}")

    def over_tcp(*args):
        return muster_cli(d, "--client-address", f"tcp://127.0.0.1:{port}", "--insecure", *args)

    for args in (("token", "create", "--role", "admin"), ("keys", "list"), ("token", "list")):
        r = over_tcp(*args)
        assert r.returncode != 0 and "PERMISSION_DENIED" in r.stderr, (args, r.stdout, r.stderr)
    r = over_tcp("status", "--json")  # a client it is
    assert r.returncode == 0, r.stderr
    r = muster_cli(d, "token", "create", "--role", "admin")
    assert r.returncode == 0 and r.stdout.startswith("muster1."), r.stderr
    assert muster_cli(d, "keys", "list").returncode == 0


def test_a_worker_id_is_bound_to_its_connection_over_ipc(start_daemon, start_worker):
    """A second connection (same identity: every ipc peer is the local owner) naming another
    connection's worker id is refused, and that worker is untouched. It is told to attach again
    (`reattach`: most often it is the worker itself after its connection broke; only an Attach
    with the worker's session would keep its calls, test_worker_link_loss.py)."""
    from muster import messages as m
    from muster.errors import ErrorCode
    d = start_daemon()
    w = start_worker(d).wait_ready()
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(f"ipc://{d.runtime_dir}/response.sock")
    for body in (m.Pong(seq=1, instance="x", in_flight=[]), m.Detach(reason="hijack")):
        dealer.send(m.encode(m.WorkerMessage(worker_id=w.worker_id, body=body)))
        assert dealer.poll(5000), "no reply"
        reply = m.decode_daemon_message(dealer.recv()).body
        assert isinstance(reply, m.Rejected), reply
        assert reply.code == ErrorCode.PERMISSION_DENIED and reply.reattach
        assert "another connection" in (reply.message or "")
    dealer.close(0)
    workers = json.loads(muster_cli(d, "workers", "--json").stdout)
    assert [(x["worker_id"], x["state"]) for x in workers] == [(w.worker_id, "ready")]
    r = muster_cli(d, "call", "hello", '{"name":"still"}')
    assert r.returncode == 0 and json.loads(r.stdout)["greeting"] == "Hello still"
    assert "Rejected" not in w.log and "attaching again" not in w.log


def test_status_is_scoped_to_the_callers_workspace(lan, secure_daemon, tmp_base):
    d = secure_daemon
    start_remote_worker(lan, d, tmp_base, mint(d, "--role", "worker", "--workspace", "alpha"), "lan-st")
    wait_worker_ready(d, "lan-st")
    r = remote_cli(lan, tmp_base, "st-a", "call", "hello", "{}",
                   token=mint(d, "--role", "client", "--workspace", "alpha"))
    assert r.returncode == 0, r.stderr
    btoken = mint(d, "--role", "client", "--workspace", "beta")

    def beta_status():
        r = remote_cli(lan, tmp_base, "st-b", "status", "--json", token=btoken)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    s = beta_status()
    assert (s["workers"], s["nodes"], s["queued"], s["in_flight"]) == (0, 0, 0, 0)
    assert (s["submitted"], s["completed"], s["failed"], s["redispatched"]) == (0, 0, 0, 0)
    r = remote_cli(lan, tmp_base, "st-b", "call", "hello", "{}")
    assert r.returncode == 1 and "NO_WORKER" in r.stderr
    s = beta_status()
    assert (s["workers"], s["nodes"], s["submitted"], s["completed"], s["failed"]) == (0, 0, 1, 0, 1)
    assert s["failures"] == {"NO_WORKER": 1}
    # The local owner sees the whole daemon.
    s = json.loads(muster_cli(d, "status", "--json").stdout)
    assert (s["workers"], s["submitted"], s["completed"], s["failed"]) == (1, 2, 1, 1)


def test_endpoint_flags_add_tcp_endpoints_beside_the_ipc_ones(start_daemon, start_worker, build_dir):
    """Each --*-address adds an endpoint; the default ipc:// one stays (unless an ipc:// one is
    given). A worker over --insecure tcp:// serves calls made over ipc and over tcp."""
    help_text = subprocess.run([str(build_dir / "broker" / "musterd"), "--help"], capture_output=True,
                               text=True, timeout=10).stdout
    assert "Repeatable" in help_text
    req, resp, cli = free_ports(3)
    d = start_daemon("--insecure", "--request-address", f"tcp://127.0.0.1:{req}",
                     "--response-address", f"tcp://127.0.0.1:{resp}", "--client-address", f"tcp://127.0.0.1:{cli}")
    for name in ("request", "response", "client"):
        assert (d.runtime_dir / f"{name}.sock").exists(), name
    w = start_worker(d, "--request-address", f"tcp://127.0.0.1:{req}", "--response-address",
                     f"tcp://127.0.0.1:{resp}", "--insecure").wait_ready()
    assert identity_of_worker(d, w.worker_id) == "anonymous"  # not the local owner
    r = muster_cli(d, "call", "hello", '{"name":"ipc"}')
    assert r.returncode == 0 and json.loads(r.stdout)["greeting"] == "Hello ipc", r.stderr
    r = muster_cli(d, "--client-address", f"tcp://127.0.0.1:{cli}", "--insecure", "call", "hello", '{"name":"tcp"}')
    assert r.returncode == 0 and json.loads(r.stdout)["greeting"] == "Hello tcp", r.stderr
    # An ipc:// endpoint given for a role replaces that role's default one.
    alt = d.runtime_dir.parent / "alt-client.sock"
    d2 = start_daemon("--client-address", f"ipc://{alt}")
    assert alt.exists() and not (d2.runtime_dir / "client.sock").exists()
