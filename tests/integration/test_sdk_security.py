"""The Python and TypeScript SDKs against a real musterd on CURVE TCP: workers and clients of
both languages enroll with tokens minted by `muster token create`, then every socket is CURVE;
the clients call both workers' nodes; a wrong token, a single-use token used twice and a token
of another daemon are refused with clear errors while the daemon keeps serving; revoking a
worker's key (`muster keys revoke ID`) stops it being called at once.

musterd runs with `--listen 127.0.0.1` (TCP ports 7899, 7898, 7900, 7901 next to its ipc://
sockets) inside a network namespace of its own, so the fixed ports never collide with anything
on this host; the SDK processes join that namespace, the admin CLI talks to the daemon over its
ipc:// client socket. Where network namespaces cannot be made, the test uses the host's loopback
if those ports are free (and says so), else it is skipped (MUSTER_TEST_NO_NETNS=1 forces loopback).

Needs the build (musterd, muster; MUSTER_BUILD_DIR), the `muster` Python package in this
interpreter, and node with the TypeScript SDK built (worker/typescript: npm ci && npm run build).
Every process started here stops by itself or is killed by conftest's autouse fixture.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BUILD, REPO, Daemon, muster_cli, read_log, spawn, stop, wait_for

muster = pytest.importorskip("muster", reason="the Python SDK is not installed (pip install ./worker/python)")

PY_WORKER = REPO / "worker" / "examples" / "python" / "example_worker.py"
TS_DIR = REPO / "worker" / "typescript"
TS_WORKER = REPO / "worker" / "examples" / "typescript" / "example-worker.js"
TS_CLIENT = REPO / "worker" / "examples" / "typescript" / "example-client.js"
NODE = shutil.which("node")
MUSTERD = BUILD / "broker" / "musterd"
PORTS = {"request": 7899, "response": 7898, "enrollment": 7900, "client": 7901}
EP = {role: f"tcp://127.0.0.1:{port}" for role, port in PORTS.items()}
NETNS = f"mst-sdk{os.getpid() % 100000}"


def _daemon_supports_security() -> bool:
    try:
        out = subprocess.run([str(MUSTERD), "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--enrollment-address" in out and "--listen" in out


pytestmark = [
    pytest.mark.skipif(not MUSTERD.exists(), reason=f"build musterd first (looked in {BUILD})"),
    pytest.mark.skipif(not _daemon_supports_security(), reason="this musterd has no --enrollment-address/--listen yet"),
    pytest.mark.skipif(NODE is None, reason="node is needed for the TypeScript SDK"),
    pytest.mark.skipif(not (TS_DIR / "dist" / "src" / "index.js").exists(), reason="build the TypeScript SDK first (npm run build)"),
]

# A Python client in a process of its own (it has to join the daemon's network namespace):
# enrolls (or reuses its identity), calls each node, prints one JSON line.
PY_CLIENT = r"""
import json, sys
import muster
a = json.loads(sys.argv[1])
try:
    with muster.Client(a["address"], data_dir=a["data_dir"], enrollment_address=a.get("enroll"),
                       enrollment_timeout=a.get("timeout", 10.0), connect_timeout=5.0) as c:
        out = {}
        for node in a["nodes"]:
            try:
                out[node] = {"ok": c.call(node, {"name": "Ada"}, timeout_ms=5000)}
            except muster.MusterError as e:
                out[node] = {"error": e.code_name, "message": e.message}
        print(json.dumps(out))
except muster.MusterError as e:
    print(json.dumps({"enroll_error": e.code_name, "message": e.message}))
"""


# ---- where the daemon runs ---------------------------------------------------------------------


def _sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=20)


def _ports_free() -> bool:
    for port in PORTS.values():
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@pytest.fixture(scope="module")
def netns():
    """The command prefix that runs a process next to the daemon: `ip netns exec NS` in a network
    namespace of our own (its own loopback, so the fixed TCP ports are ours), or [] on the
    host's loopback."""
    if os.geteuid() == 0 and shutil.which("ip") and not os.environ.get("MUSTER_TEST_NO_NETNS"):
        if _sh("ip", "netns", "add", NETNS).returncode == 0:
            if _sh("ip", "-n", NETNS, "link", "set", "lo", "up").returncode == 0:
                print(f"daemon and SDK peers in network namespace {NETNS} (loopback 127.0.0.1)")
                yield ["ip", "netns", "exec", NETNS]
                _sh("ip", "netns", "del", NETNS)
                return
            _sh("ip", "netns", "del", NETNS)
    if not _ports_free():
        pytest.skip("no network namespace, and TCP ports 7898-7901 on loopback are taken")
    print("network namespaces unavailable: daemon and SDK peers on the host's loopback")
    yield []


class Secure:
    """A musterd on CURVE TCP with its ipc:// admin socket, and helpers to run SDK peers."""

    def __init__(self, base: Path, prefix: list[str]):
        self.base = base
        self.prefix = prefix
        runtime = base / "run"
        self.daemon = Daemon(runtime_dir=runtime, data_dir=base / "data", args=[],
                             env=dict(os.environ, MUSTER_RUNTIME_DIR=str(runtime)))
        self.daemon.starts = 1
        self.daemon.proc = spawn(
            [*prefix, MUSTERD, "--data-dir", self.daemon.data_dir, "--listen", "127.0.0.1",
             "--ping-interval-ms", "200", "--liveness", "3", "--log-level", "debug"],
            self.daemon.env, base / "musterd.log")
        wait_for(lambda: "ready" in read_log(self.daemon.proc) or self.daemon.proc.poll() is not None, 10, "musterd")
        assert self.daemon.proc.poll() is None, read_log(self.daemon.proc)
        self.config = base / "config"  # an empty $XDG_CONFIG_HOME: no token from the real one
        self.config.mkdir()

    # -- admin over ipc:// ------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return muster_cli(self.daemon, *args, timeout=timeout)

    def mint(self, *args: str) -> str:
        r = self.cli("token", "create", *args)
        assert r.returncode == 0, r.stderr
        token = r.stdout.strip()
        assert token.startswith("muster1.") and len(token) == 112, token
        return token

    def identity_of(self, data_dir: Path, name: str) -> dict:
        """The daemon's identity record for the key in data_dir/<name>-curve.pub."""
        pub = muster.keys.load_public_key_file(str(data_dir / f"{name}-curve.pub"))
        r = self.cli("keys", "list", "--json")
        assert r.returncode == 0, r.stderr
        (ident,) = [i for i in json.loads(r.stdout) if i["public_key"] == pub]
        return ident

    def worker_ready(self, worker_id: str, proc, timeout: float = 15):
        def ready():
            if proc.poll() is not None:
                pytest.fail(f"worker {worker_id} exited ({proc.returncode}):\n{read_log(proc)}")
            r = self.cli("workers", "--json")
            return r.returncode == 0 and any(
                w["worker_id"] == worker_id and w["state"] == "ready" for w in json.loads(r.stdout))
        wait_for(ready, timeout, f"worker {worker_id} ready")

    # -- SDK peers in the daemon's network -----------------------------------------------------

    def env(self, token: str | None = None) -> dict:
        env = dict(os.environ, XDG_CONFIG_HOME=str(self.config))
        env.pop("MUSTER_ENROLLMENT_TOKEN", None)
        env.pop("MUSTER_DATA_DIR", None)
        if token is not None:
            env["MUSTER_ENROLLMENT_TOKEN"] = token
        return env

    def py_worker(self, worker_id: str, data_dir: Path, token: str | None, *extra: str):
        return spawn([*self.prefix, sys.executable, PY_WORKER, "--prefix", "py.", "--worker-id", worker_id,
                      "--request-address", EP["request"], "--response-address", EP["response"],
                      "--data-dir", data_dir, "--log-level", "debug", *extra],
                     self.env(token), self.base / f"{worker_id}.log")

    def ts_worker(self, worker_id: str, data_dir: Path, token: str | None, *extra: str):
        return spawn([*self.prefix, NODE, TS_WORKER, "--prefix", "ts.", "--worker-id", worker_id,
                      "--request-address", EP["request"], "--response-address", EP["response"],
                      "--data-dir", data_dir, "--log-level", "debug", *extra],
                     self.env(token), self.base / f"{worker_id}.log")

    def py_client(self, data_dir: Path, token: str | None, nodes: list[str], **kw) -> dict:
        args = {"address": EP["client"], "data_dir": str(data_dir), "nodes": nodes, **kw}
        r = subprocess.run([*self.prefix, sys.executable, "-c", PY_CLIENT, json.dumps(args)], env=self.env(token),
                           capture_output=True, text=True, timeout=40)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    def ts_client(self, data_dir: Path, token: str | None, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, NODE, TS_CLIENT, "--client-address", EP["client"],
                               "--data-dir", str(data_dir), "--enrollment-address", EP["enrollment"], *args],
                              env=self.env(token), capture_output=True, text=True, timeout=40)

    def ts_call(self, data_dir: Path, token: str | None, node: str) -> subprocess.CompletedProcess:
        return self.ts_client(data_dir, token, "call", node, '{"name": "Ada"}', "--timeout-ms", "5000")


@pytest.fixture
def secure(build_dir, tmp_base, netns):
    s = Secure(tmp_base, netns)
    yield s
    stop(s.daemon.proc)


def other_secret(token: str) -> str:
    """The same token id and daemon key with another secret: well-formed, but wrong."""
    tag, tid, _secret, key = token.split(".")
    return ".".join([tag, tid, base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(), key])


def other_daemon(token: str) -> str:
    """A well-formed token for a daemon key nobody has."""
    tag, tid, secret, _key = token.split(".")
    return ".".join([tag, tid, secret, base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()])


GREETING = {"greeting": "Hello Ada", "shout": "HELLO ADA"}


# ---- the tests ---------------------------------------------------------------------------------


def test_python_and_typescript_enroll_and_call_each_other_over_curve(secure, tmp_base):
    py_dir, ts_dir = tmp_base / "py-worker", tmp_base / "ts-worker"
    token_file = tmp_base / "ts-worker-token"
    token_file.write_text(secure.mint("--role", "worker", "--name", "ts-box") + "\n")
    token_file.chmod(0o600)
    py = secure.py_worker("py-sec", py_dir, secure.mint("--role", "worker", "--workspace", "default", "--name", "py-box"),
                          "--enrollment-address", EP["enrollment"])
    ts = secure.ts_worker("ts-sec", ts_dir, None, "--enrollment-token-file", str(token_file))  # default enrollment address
    secure.worker_ready("py-sec", py)
    secure.worker_ready("ts-sec", ts)

    # The identities are what the C++ library writes, and what the daemon stored.
    for d, label in ((py_dir, "py-box"), (ts_dir, "ts-box")):
        saved = muster.keys.load_local_identity(str(d), "worker")
        ident = secure.identity_of(d, "worker")
        assert (saved.identity_id, saved.role, saved.workspace) == (ident["id"], "worker", "default")
        assert ident["name"] == label  # the SDKs leave the name to the token's label
        assert oct(os.stat(d / "worker-curve.key").st_mode & 0o777) == "0o600"
        assert saved.daemon_public_key == muster.keys.load_public_key_file(str(secure.daemon.data_dir / "daemon-curve.pub"))

    # A Python client and a TypeScript client, each enrolled as a client, call both workers.
    pyc = tmp_base / "py-client"
    out = secure.py_client(pyc, secure.mint("--role", "client"), ["py.hello", "ts.hello"], enroll=EP["enrollment"])
    assert out == {"py.hello": {"ok": GREETING}, "ts.hello": {"ok": GREETING}}, out
    tsc = tmp_base / "ts-client"
    tok = secure.mint("--role", "client")
    for node in ("py.hello", "ts.hello"):
        r = secure.ts_call(tsc, tok, node)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == GREETING
    assert secure.identity_of(pyc, "client")["role"] == "client"
    assert secure.identity_of(tsc, "client")["role"] == "client"
    # Later runs reuse the saved identity: no token needed any more.
    out = secure.py_client(pyc, None, ["ts.hello"])
    assert out == {"ts.hello": {"ok": GREETING}}, out
    r = secure.ts_call(tsc, None, "py.hello")
    assert r.returncode == 0 and json.loads(r.stdout) == GREETING, r.stderr
    # The three languages share a data directory: each reads the others' key and identity files.
    out = secure.py_client(tsc, None, ["py.hello"])  # written by TypeScript
    assert out == {"py.hello": {"ok": GREETING}}, out
    r = secure.ts_call(pyc, None, "ts.hello")  # written by Python
    assert r.returncode == 0 and json.loads(r.stdout) == GREETING, r.stderr
    cppc = tmp_base / "cpp-client"
    for d, token in ((pyc, None), (tsc, None), (cppc, secure.mint("--role", "client"))):
        # the C++ CLI over TCP: reuses the SDKs' identities, and enrolls one of its own
        r = subprocess.run([*secure.prefix, BUILD / "tools" / "muster", "--client-address", EP["client"],
                            "--data-dir", d, "call", "ts.hello", '{"name": "Ada"}'],
                           env=secure.env(token), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and json.loads(r.stdout) == GREETING, r.stderr
    out = secure.py_client(cppc, None, ["py.hello"])  # written by C++
    assert out == {"py.hello": {"ok": GREETING}}, out
    r = secure.ts_call(cppc, None, "py.hello")
    assert r.returncode == 0 and json.loads(r.stdout) == GREETING, r.stderr
    # Nothing of this went through the ipc:// sockets: the workers are seen with their identities.
    workers = {w["worker_id"]: w for w in json.loads(secure.cli("workers", "--json").stdout)}
    assert workers["py-sec"]["identity"] == secure.identity_of(py_dir, "worker")["id"]
    assert workers["ts-sec"]["identity"] == secure.identity_of(ts_dir, "worker")["id"]


def test_bad_tokens_are_refused_clearly_and_the_daemon_keeps_serving(secure, tmp_base):
    good = secure.mint("--role", "client")
    # A wrong secret: the daemon answers, and the SDKs say why.
    py = secure.py_worker("py-bad", tmp_base / "py-bad", other_secret(secure.mint("--role", "worker")))
    assert py.wait(20) == 1
    assert "error: PERMISSION_DENIED: enrollment refused by the daemon" in read_log(py)
    assert "unknown token" in read_log(py)
    assert not (tmp_base / "py-bad" / "worker-identity.json").exists()
    ts = secure.ts_worker("ts-bad", tmp_base / "ts-bad", other_secret(secure.mint("--role", "worker")))
    assert ts.wait(20) == 1
    assert "example-worker: error: PERMISSION_DENIED: enrollment refused by the daemon" in read_log(ts)
    assert "unknown token" in read_log(ts)
    assert not (tmp_base / "ts-bad" / "worker-identity.json").exists()

    # A single-use token, used once (fine), then again for another key: used up.
    out = secure.py_client(tmp_base / "first", good, [])
    assert out == {}, out
    out = secure.py_client(tmp_base / "second", good, ["py.hello"])
    assert out["enroll_error"] == "PERMISSION_DENIED", out
    assert "no uses left" in out["message"], out
    r = secure.ts_call(tmp_base / "third", good, "py.hello")
    assert r.returncode == 1 and "no uses left" in r.stderr, r.stderr

    # A token of another daemon: the CURVE handshake cannot complete, so nobody answers.
    out = secure.py_client(tmp_base / "other", other_daemon(good), ["py.hello"], timeout=1.5)
    assert out["enroll_error"] == "UNAVAILABLE" and "not the one in the token" in out["message"], out
    r = secure.ts_client(tmp_base / "other-ts", other_daemon(good), "--enrollment-timeout-ms", "1500", "nodes")
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr and "not the one in the token" in r.stderr, r.stderr

    # A malformed token never leaves the process, and its text is not echoed.
    out = secure.py_client(tmp_base / "malformed", "muster1.not-a-token", [])
    assert out["enroll_error"] == "INVALID_REQUEST" and "malformed token" in out["message"], out
    assert "not-a-token" not in out["message"]

    # The daemon kept serving: the enrolled client still calls, a worker still enrolls.
    w = secure.py_worker("py-good", tmp_base / "py-good", secure.mint("--role", "worker"))
    secure.worker_ready("py-good", w)
    out = secure.py_client(tmp_base / "first", None, ["py.hello"])
    assert out == {"py.hello": {"ok": GREETING}}, out


def test_revoking_a_worker_key_stops_it_being_called(secure, tmp_base):
    py_dir = tmp_base / "py-worker"
    py = secure.py_worker("py-rev", py_dir, secure.mint("--role", "worker"))
    ts = secure.ts_worker("ts-rev", tmp_base / "ts-worker", secure.mint("--role", "worker"))
    secure.worker_ready("py-rev", py)
    secure.worker_ready("ts-rev", ts)
    client = tmp_base / "client"
    out = secure.py_client(client, secure.mint("--role", "client"), ["py.hello", "ts.hello"])
    assert out == {"py.hello": {"ok": GREETING}, "ts.hello": {"ok": GREETING}}, out

    ident = secure.identity_of(py_dir, "worker")
    r = secure.cli("keys", "revoke", ident["id"])
    assert r.returncode == 0, r.stderr
    assert secure.identity_of(py_dir, "worker")["revoked"] is True

    # At once: the worker leaves the registry and its node is no longer served.
    def gone():
        r = secure.cli("call", "py.hello", '{"name": "Ada"}', "--timeout-ms", "3000")
        return r.returncode != 0 and "NO_WORKER" in r.stderr
    wait_for(gone, 5, "py.hello to have no worker after the revocation")
    assert "py-rev" not in {w["worker_id"] for w in json.loads(secure.cli("workers", "--json").stdout)}
    out = secure.py_client(client, None, ["py.hello", "ts.hello"])
    assert out["py.hello"]["error"] == "NO_WORKER", out
    assert out["ts.hello"] == {"ok": GREETING}, out
    # It stays out: a revoked key cannot attach again, however long it tries.
    assert py.poll() is None or py.returncode != 0
    r = secure.cli("call", "py.hello", "{}", "--timeout-ms", "2000")
    assert r.returncode != 0 and "NO_WORKER" in r.stderr
