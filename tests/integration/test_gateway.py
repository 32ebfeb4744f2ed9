"""muster-gateway end to end: musterd, a C++ and a Python example worker, the gateway, and real
clients (the `websockets` library for the WebSocket, urllib / http.client for HTTP).

What each test proves is in its name and docstring; docs/GATEWAY.md is the contract. Every wait
is bounded; every process is killed when the test ends (conftest)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import BUILD, REPO, read_log, spawn, stop, wait_for

websockets_sync = pytest.importorskip("websockets.sync.client", reason="pip install websockets (tools/lib/setup.sh)")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

GATEWAY = BUILD / "gateway" / "muster-gateway"
PY_EXAMPLE = REPO / "worker" / "examples" / "python" / "example_worker.py"
PASSWORDS = {"alice": "alice-pw", "reader": "reader-pw", "bob": "bob-pw", "carol": "carol-pw", "ada": "ada-pw",
             "gus": "gus-pw"}
DEFAULT_USERS = [("alice", "default", "call"), ("reader", "default", "read"), ("bob", "beta", "call")]


# ---- processes ----------------------------------------------------------------------------

def add_user(data_dir: Path, name: str, workspace: str, role: str):
    out = subprocess.run([str(GATEWAY), "user", "add", name, "--data-dir", str(data_dir), "--workspace", workspace,
                          "--role", role], input=PASSWORDS[name] + "\n", capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


class Gateway:
    def __init__(self, daemon, base: Path, *args, name="gw", scheme="http", ssl_context=None, global_args=(),
                 poll_interval="0.2"):
        self.daemon, self.data_dir, self.args = daemon, base / f"{name}-data", list(args)
        self.poll_interval = poll_interval
        self.global_args = list(global_args)
        self.name, self.scheme, self.ssl_context = name, scheme, ssl_context
        self.starts = 0
        self.proc = None
        self.port = 0

    def start(self):
        self.starts += 1
        log = self.data_dir.parent / f"{self.name}-{self.starts}.log"
        self.proc = spawn([GATEWAY, "--log-level", "debug", *self.global_args, "serve", "--data-dir", self.data_dir,
                           "--listen", "127.0.0.1:0", "--poll-interval", self.poll_interval, "--status-interval", "0.5",
                           "--daemon-timeout", "0.5", *self.args], self.daemon.env, log)
        m = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", read_log(self.proc)) or self.proc.poll() is not None,
                     10, "the gateway to listen")
        assert self.proc.poll() is None, read_log(self.proc)
        self.port = int(m.group(1))
        wait_for(lambda: self.get("/healthz")[0] == 200, 10, "the gateway to reach musterd")
        return self

    def stop(self):
        return stop(self.proc)

    @property
    def log(self) -> str:
        return read_log(self.proc)

    @property
    def instance_id(self) -> str:
        return (self.data_dir / "instance-id").read_text().strip()

    def request(self, method, path, body=None, token=None, headers=None):
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"{self.scheme}://127.0.0.1:{self.port}{path}", data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl_context) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), dict(e.headers)

    def get(self, path, token=None):
        return self.request("GET", path, token=token)[:2]

    def login(self, name="alice", password=None):
        status, body, _ = self.request("POST", "/api/auth/login",
                                       {"username": name, "password": password or PASSWORDS[name]})
        assert status == 200, body
        return body["token"]

    def ws(self, token=None, **kw):
        token = token if token is not None else self.login()
        if self.ssl_context:
            kw.setdefault("ssl", self.ssl_context)
        return WS(f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}/api/ws?token={token}", **kw)


class WS:
    """A WebSocket client of the gateway (the `websockets` library, sync API)."""

    def __init__(self, url, **kw):
        kw.setdefault("max_size", None)
        self.conn = websockets_sync.connect(url, open_timeout=10, **kw).__enter__()

    def send(self, type_, payload=None):
        self.conn.send(json.dumps({"type": type_, "payload": payload, "timestamp": int(time.time())}))

    def recv(self, timeout=10.0):
        return json.loads(self.conn.recv(timeout=timeout))

    def wait(self, type_, pred=lambda p: True, timeout=15.0, what=None):
        """The next message of `type_` whose payload satisfies pred (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {type_} message{' ' + what if what else ''} within {timeout} s")
            try:
                m = self.recv(timeout=left)
            except TimeoutError:
                continue
            if m["type"] == type_ and pred(m["payload"]):
                return m

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def start_python_worker(daemon, worker_id: str):
    log = daemon.runtime_dir.parent / f"pyworker-{worker_id}.log"
    return spawn([sys.executable, PY_EXAMPLE, "--prefix", "py.", "--worker-id", worker_id, "--log-level", "debug"],
                 daemon.env, log)


@pytest.fixture
def start_gateway(daemon, tmp_base):
    def start(*args, daemon_=None, users=DEFAULT_USERS, **kw):
        gw = Gateway(daemon_ or daemon, tmp_base, *args, **kw)
        if not gw.data_dir.exists():
            for user in users:
                add_user(gw.data_dir, *user)
        return gw.start()
    return start


@pytest.fixture
def cpp_worker(daemon, start_worker):
    return start_worker(daemon, worker_id="cpp-1").wait_ready()


@pytest.fixture
def gw(start_gateway, cpp_worker):
    return start_gateway()


def upgrade(port, target, headers=None):
    """A raw WebSocket upgrade request: (status, body) of the refusal, or (101, b"")."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
         "Sec-WebSocket-Version": "13", **(headers or {})}
    c.request("GET", target, headers=h)
    r = c.getresponse()
    body = b"" if r.status == 101 else r.read()
    c.close()
    return r.status, body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(key: bytes, claims: dict, alg="HS256") -> str:
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    if alg == "none":
        return f"{head}.{body}."
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


# ---- authentication -------------------------------------------------------------------------

def test_login_ok_bad_and_rate_limited(gw):
    token = gw.login()
    assert token.count(".") == 2
    status, body, _ = gw.request("POST", "/api/auth/login", {"username": "alice", "password": "alice-pw"})
    assert status == 200 and body["user"] == {"name": "alice", "workspace": "default", "role": "call"}
    assert body["expires_at"] > time.time()
    assert gw.request("POST", "/api/auth/login", {"username": "alice", "password": "nope"})[:2] == \
        (401, {"error": "Invalid username or password"})
    assert gw.request("POST", "/api/auth/login", {"username": "nobody", "password": "x"})[:2] == \
        (401, {"error": "Invalid username or password"})
    status, body, _ = gw.request("POST", "/api/auth/login", b"{not json")
    assert status == 400 and "username" in body["error"]
    # Five attempts per window (default): the sixth from this address is refused.
    status, body, headers = gw.request("POST", "/api/auth/login", {"username": "alice", "password": "alice-pw"})
    assert status == 429, body
    assert body["error"].startswith("Too many login attempts")
    assert int(headers["Retry-After"]) >= 1
    # Neither a password nor a token reached the log.
    assert "alice-pw" not in gw.log and token not in gw.log and "nope" not in gw.log


def test_settings_come_from_a_config_file_too(start_gateway, cpp_worker, tmp_base):
    config = tmp_base / "gateway.toml"
    config.write_text('[serve]\nlogin-attempts = 1\nallowed-origin = ["http://app.example"]\n')
    gw = start_gateway(global_args=["--config", config])
    gw.login()
    assert gw.request("POST", "/api/auth/login", {"username": "alice", "password": "alice-pw"})[0] == 429
    token = make_jwt((gw.data_dir / "jwt.key").read_bytes(),
                     {"sub": "alice", "workspace": "default", "role": "call", "iss": "muster-gateway",
                      "iat": int(time.time()), "exp": int(time.time()) + 60})
    assert upgrade(gw.port, f"/api/ws?token={token}", {"Origin": "http://app.example"})[0] == 101
    assert upgrade(gw.port, f"/api/ws?token={token}", {"Origin": "http://other.example"})[0] == 403


def gateway_cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(GATEWAY), *map(str, args)], capture_output=True, text=True, timeout=30, env=env)


def test_a_bad_key_or_type_in_the_config_file_is_refused_with_its_file_and_line(tmp_base):
    config = tmp_base / "gateway.toml"
    config.write_text('log-level = "debug"\n\n[serve]\nlisten = "127.0.0.1:0"\nlogin-atempts = 3\n')
    out = gateway_cli("--config", config, "serve", "--data-dir", tmp_base / "gw-data")
    assert out.returncode == 2, out
    assert f"{config}:5: serve.login-atempts: unknown setting (muster-gateway serve has no --login-atempts option" \
        in out.stderr
    config.write_text('[serve]\nlogin-attempts = "many"\n')
    out = gateway_cli("serve", "--config", config)  # --config may follow the subcommand too
    assert out.returncode == 2, out
    assert f"{config}:2: serve.login-attempts: expected a non-negative integer, got a string" in out.stderr
    config.write_text('listen = "127.0.0.1:0"\n')  # serve's flag outside [serve]
    out = gateway_cli("--config", config, "serve")
    assert out.returncode == 2 and f"{config}:1: listen: unknown setting" in out.stderr, out
    assert not (tmp_base / "gw-data").exists()  # refused before anything was created


def test_print_config_reads_back_and_the_gateway_starts_from_it(start_gateway, cpp_worker, tmp_base):
    first = tmp_base / "first.toml"
    first.write_text('[serve]\nlogin-attempts = 7\nallowed-origin = ["http://app.example", "http://b.example"]\n')
    out = gateway_cli("--config", first, "--log-format", "json", "serve", "--token-ttl", "120", "--print-config")
    assert out.returncode == 0, out.stderr
    printed = out.stdout
    assert printed.startswith("# muster-gateway settings: `muster-gateway --config FILE serve`")
    assert "log-format = 'json'\n" in printed and "\n[serve]\n" in printed
    assert "login-attempts = 7\n" in printed and "token-ttl = 120\n" in printed  # file, and flag
    assert "allowed-origin = ['http://app.example', 'http://b.example']\n" in printed
    assert "ping-interval = 54\n" in printed  # the defaults too
    assert "print-config" not in printed.replace("--print-config", "")
    second = tmp_base / "printed.toml"
    second.write_text(printed)
    again = gateway_cli("--config", second, "serve", "--print-config")
    assert again.returncode == 0 and again.stdout == printed, again
    # The printed file runs a gateway (its log format, login limit and origins in force).
    gw = start_gateway(global_args=["--config", second])
    assert gw.log.lstrip().startswith("{")  # json lines
    for _ in range(7):
        gw.login()
    assert gw.request("POST", "/api/auth/login", {"username": "alice", "password": "alice-pw"})[0] == 429


def test_the_bridge_reads_the_same_config_file_format(tmp_base):
    bridge = BUILD / "bridge" / "muster-bridge"
    config = tmp_base / "bridge.toml"
    config.write_text('log-level = "warn"\n[uplink]\nnode = ["a*"]\n[host]\ntokens-file = "/etc/t"\ncapacity = 8\n')
    out = subprocess.run([str(bridge), "--config", str(config), "host", "--capacity", "9", "--print-config"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "log-level = 'warn'\n" in out.stdout and "\n[host]\n" in out.stdout and "[uplink]" not in out.stdout
    assert "tokens-file = '/etc/t'\n" in out.stdout and "capacity = 9\n" in out.stdout
    config.write_text('[host]\ntokens-file = "/etc/t"\ncapacty = 8\n')
    out = subprocess.run([str(bridge), "--config", str(config), "host"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and f"{config}:3: host.capacty: unknown setting" in out.stderr, out


def test_users_of_another_workspace_are_refused(start_gateway, cpp_worker):
    """--workspace limits a gateway to the workspaces named (by default it serves every user's)."""
    gw = start_gateway("--workspace", "default")
    status, body, _ = gw.request("POST", "/api/auth/login", {"username": "bob", "password": "bob-pw"})
    assert status == 403
    assert body == {"error": "user 'bob' belongs to workspace 'beta'; this gateway serves workspace 'default' only"}
    # A token for bob signed with the gateway's own key (as if the users file had moved him) is
    # refused on the WebSocket and on REST.
    key = (gw.data_dir / "jwt.key").read_bytes()
    now = int(time.time())
    forged = make_jwt(key, {"sub": "bob", "workspace": "beta", "role": "call", "iss": "muster-gateway",
                            "iat": now, "exp": now + 60})
    assert upgrade(gw.port, f"/api/ws?token={forged}")[0] == 403
    assert gw.get("/api/nodes", token=forged)[0] == 403


def test_websocket_401_bodies_are_the_references(gw):
    assert upgrade(gw.port, "/api/ws") == (401, b'{"error":"Missing authentication token"}')
    assert upgrade(gw.port, "/api/ws?token=") == (401, b'{"error":"Missing authentication token"}')
    assert upgrade(gw.port, "/api/ws?token=garbage") == (401, b'{"error":"Invalid authentication token"}')
    assert gw.get("/api/nodes") == (401, {"error": "Missing authentication token"})
    assert gw.get("/api/nodes", token="x.y.z") == (401, {"error": "Invalid authentication token"})


def test_expired_forged_and_unsigned_jwts_are_refused(gw):
    key = (gw.data_dir / "jwt.key").read_bytes()
    now = int(time.time())
    claims = {"sub": "alice", "workspace": "default", "role": "call", "iss": "muster-gateway", "iat": now}
    good = make_jwt(key, {**claims, "exp": now + 60})
    assert upgrade(gw.port, f"/api/ws?token={good}")[0] == 101  # the hand-made token is right...
    invalid = (401, b'{"error":"Invalid authentication token"}')
    assert upgrade(gw.port, f"/api/ws?token={make_jwt(key, {**claims, 'exp': now - 1})}") == invalid  # ...expired
    assert upgrade(gw.port, f"/api/ws?token={make_jwt(b'k' * 32, {**claims, 'exp': now + 60})}") == invalid  # other key
    assert upgrade(gw.port, f"/api/ws?token={make_jwt(key, {**claims, 'exp': now + 60}, alg='none')}") == invalid
    assert upgrade(gw.port, f"/api/ws?token={make_jwt(key, {**claims, 'exp': now + 60, 'iss': 'x'})}") == invalid
    tampered = good.split(".")
    tampered[1] = b64url(json.dumps({**claims, "role": "admin", "exp": now + 60}).encode())
    assert upgrade(gw.port, "/api/ws?token=" + ".".join(tampered)) == invalid
    ghost = make_jwt(key, {**claims, "sub": "ghost", "exp": now + 60})  # a user not in the file
    assert upgrade(gw.port, f"/api/ws?token={ghost}") == invalid


def test_a_websocket_closes_when_its_token_expires_or_its_user_goes(gw):
    key = (gw.data_dir / "jwt.key").read_bytes()
    now = int(time.time())
    short = make_jwt(key, {"sub": "alice", "workspace": "default", "role": "call", "iss": "muster-gateway",
                           "iat": now, "exp": now + 2})

    def closed_with(ws, code):
        with pytest.raises(ConnectionClosed) as e:
            while True:
                ws.recv(timeout=15)
        return e.value.rcvd is not None and e.value.rcvd.code == code

    with gw.ws(short) as ws:
        err = ws.wait("error", timeout=20)["payload"]
        assert err == {"error": "authentication token expired: log in again", "code": "TOKEN_EXPIRED"}
        assert closed_with(ws, 1008)
    with gw.ws(gw.login("reader")) as ws:
        ws.wait("connected")
        out = subprocess.run([str(GATEWAY), "user", "remove", "reader", "--data-dir", str(gw.data_dir)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        err = ws.wait("error", timeout=20)["payload"]
        assert err == {"error": "user 'reader' may no longer use this gateway", "code": "PERMISSION_DENIED"}
        assert closed_with(ws, 1008)


def test_wrong_origin_is_refused(start_gateway, cpp_worker):
    gw = start_gateway("--allowed-origin", "http://app.example")
    token = gw.login()
    assert upgrade(gw.port, f"/api/ws?token={token}", {"Origin": "http://evil.example"}) == \
        (403, b'{"error":"Origin not allowed"}')
    assert upgrade(gw.port, f"/api/ws?token={token}", {"Origin": "http://app.example"})[0] == 101
    assert upgrade(gw.port, f"/api/ws?token={token}", {"Origin": f"http://127.0.0.1:{gw.port}"})[0] == 101  # same origin
    assert upgrade(gw.port, f"/api/ws?token={token}")[0] == 101  # not a browser
    with pytest.raises(InvalidStatus) as e:
        gw.ws(token, origin="http://evil.example")
    assert e.value.response.status_code == 403


# ---- envelope -------------------------------------------------------------------------------

def test_connected_then_ping_pong_with_a_stable_peer_id(gw):
    token = gw.login()
    with gw.ws(token) as ws:
        m = ws.recv()
        assert m["type"] == "connected"
        assert m["payload"] == {"message": "Connected to WebSocket server", "peer_id": gw.instance_id}
        assert isinstance(m["timestamp"], int) and abs(m["timestamp"] - time.time()) < 60
        ws.send("ping")
        pong = ws.wait("pong")
        assert pong["payload"] is None and set(pong) == {"type", "payload", "timestamp"}
    assert token not in gw.log and token.split(".")[2] not in gw.log
    first = gw.instance_id
    gw.stop()
    gw.start()
    with gw.ws() as ws:
        assert ws.recv()["payload"]["peer_id"] == first


def test_malformed_messages_get_errors_and_the_connection_stays(start_gateway, cpp_worker):
    gw = start_gateway("--max-message-bytes", "65536")
    with gw.ws() as ws:
        ws.conn.send("{not json")
        assert ws.wait("error")["payload"] == {"error": "message is not valid JSON", "code": "INVALID_MESSAGE"}
        ws.conn.send(json.dumps({"payload": {}}))
        assert ws.wait("error")["payload"]["code"] == "INVALID_MESSAGE"
        ws.conn.send(b"\x00\x01binary")
        assert ws.wait("error")["payload"]["code"] == "INVALID_MESSAGE"
        ws.send("docker.build.output", {})
        assert ws.wait("error")["payload"] == {"error": "unknown message type 'docker.build.output'", "code": "UNKNOWN_TYPE"}
        ws.send("execution.start", {"inputs": {}, "client_ref": 9})
        err = ws.wait("error")["payload"]
        assert err["code"] == "INVALID_REQUEST" and err["client_ref"] == 9 and "'node'" in err["error"]
        ws.send("service.search.request", {"active_only": "yes"})
        assert ws.wait("error")["payload"]["code"] == "INVALID_REQUEST"
        ws.send("execution.cancel", {"execution_id": 12345})
        assert ws.wait("error")["payload"]["code"] == "NOT_FOUND"
        ws.send("ping")
        ws.wait("pong")  # still up
        # A message over --max-message-bytes closes the socket with 1009 (message too big).
        ws.conn.send(json.dumps({"type": "ping", "payload": "x" * 70000}))
        with pytest.raises(ConnectionClosed) as e:
            while True:
                ws.recv(timeout=10)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009
    assert "not valid JSON" in gw.log
    # Over HTTP: a body over --max-message-bytes, and a request that is not HTTP.
    status, body, _ = gw.request("POST", "/api/nodes/echo/call", b"x" * 70000, token=gw.login())
    assert (status, body) == (413, {"error": "Request body too large"})
    import socket
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400") and b'{"error":"Malformed HTTP request"}' in answer
    with gw.ws() as ws:  # the gateway itself is fine
        ws.send("ping")
        ws.wait("pong")


def test_a_peer_that_never_answers_pings_is_dropped(start_gateway, cpp_worker):
    gw = start_gateway("--ping-interval", "0.2", "--pong-timeout", "1")
    token = gw.login()
    import socket
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall((f"GET /api/ws?token={token} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    got = b""
    deadline = time.monotonic() + 15
    # Read (never answering the pings) until the gateway closes the connection.
    while time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got.startswith(b"HTTP/1.1 101"), got[:200]
    assert b"\x89" in got  # the gateway's ping frames (opcode 0x9)
    assert time.monotonic() < deadline, "the gateway never dropped the silent peer"
    wait_for(lambda: "no pong for" in gw.log, 5, "the drop to be logged")


# ---- pushes ---------------------------------------------------------------------------------

def test_services_updated_is_pushed_when_a_worker_attaches_not_at_the_next_poll(daemon, start_gateway, cpp_worker):
    """The gateway watches musterd (Watch, PROTOCOL.md §8.2): with a poll every 60 s, a worker
    that attaches still shows in services.updated and peers.updated at once."""
    gw = start_gateway(poll_interval="60")
    with gw.ws() as ws:
        ws.wait("services.updated", lambda p: {s["name"] for s in p["services"]} == {"echo", "sha256", "hello", "sleep", "fail", "count"})
        py = start_python_worker(daemon, "py-pushed")
        # Bounded well below the poll interval: only a pushed event can bring it.
        services = ws.wait("services.updated", lambda p: any(s["name"] == "py.stats" for s in p["services"]),
                           timeout=20)["payload"]
        assert next(s for s in services["services"] if s["name"] == "py.stats")["peer_ids"] == ["py-pushed"]
        ws.wait("peers.updated", lambda p: any(x["id"] == "py-pushed" and x["state"] == "ready" for x in p["peers"]),
                timeout=20)
        stop(py)
        ws.wait("peers.updated", lambda p: all(x["id"] != "py-pushed" or x["state"] != "ready" for x in p["peers"]),
                timeout=20)


def test_pushes_follow_a_worker_that_joins_and_leaves(gw, daemon):
    with gw.ws() as ws:
        assert ws.recv()["type"] == "connected"
        status = ws.wait("node.status")["payload"]
        assert status["peer_id"] == gw.instance_id and status["stats"]["workers"] == 1
        assert status["stats"]["services_count"] == 6 and status["known_peers"] == 1
        ws.wait("services.updated", lambda p: {s["name"] for s in p["services"]} == {"echo", "sha256", "hello", "sleep", "fail", "count"})
        ws.wait("peers.updated", lambda p: [x["id"] for x in p["peers"]] == ["cpp-1"])

        py = start_python_worker(daemon, "py-1")
        # A worker is listed from its Attach on ("confirming"), ready once its SUB path is proven.
        peers = ws.wait("peers.updated", lambda p: any(x["id"] == "py-1" and x["state"] == "ready"
                                                       for x in p["peers"]), timeout=30)["payload"]
        entry = next(x for x in peers["peers"] if x["id"] == "py-1")
        assert entry["sdk"].startswith("muster-python") and entry["state"] == "ready" and "py.stats" in entry["nodes"]
        assert entry["capacity"] >= 1 and entry["in_flight"] == 0 and entry["hostname"]
        services = ws.wait("services.updated", lambda p: any(s["name"] == "py.stats" for s in p["services"]))["payload"]
        stats = next(s for s in services["services"] if s["name"] == "py.stats")
        assert stats["status"] == "ACTIVE" and stats["service_type"] == "math" and stats["peer_ids"] == ["py-1"]
        assert stats["workers"] == 1 and stats["queue_depth"] == 0 and "inputs" in stats["config"]
        ws.wait("node.status", lambda p: p["stats"]["workers"] == 2)

        stop(py)
        ws.wait("peers.updated", lambda p: [x["id"] for x in p["peers"]] == ["cpp-1"], timeout=30)
        gone = ws.wait("services.updated", lambda p: any(s["name"] == "py.stats" and s["status"] == "INACTIVE"
                                                         for s in p["services"]))["payload"]
        assert next(s for s in gone["services"] if s["name"] == "echo")["status"] == "ACTIVE"
        ws.wait("node.status", lambda p: p["stats"]["workers"] == 1)


def test_search_with_each_filter(gw, daemon):
    py = start_python_worker(daemon, "py-2")
    with gw.ws() as ws:
        ws.wait("peers.updated", lambda p: any(x["id"] == "py-2" and x["state"] == "ready"
                                               for x in p["peers"]), timeout=30)

        def search(**payload):
            ws.send("service.search.request", payload)
            r = ws.wait("service.search.response")["payload"]
            assert r["complete"] is True and r["error"] == ""
            return sorted(s["name"] for s in r["services"])

        everything = search()
        assert {"echo", "hello", "sleep", "fail", "py.echo", "py.stats", "py.hash"} <= set(everything)
        assert search(query="greets") == ["hello", "py.hello"]  # description
        assert search(query="STATS") == ["py.stats"]            # name, any case
        assert search(service_type="math") == ["py.stats"]
        assert search(service_type="math,crypto") == ["py.hash", "py.stats"]
        assert search(peer_ids=["cpp-1"]) == ["count", "echo", "fail", "hello", "sha256", "sleep"]
        assert search(peer_ids=["nobody"]) == []
        assert search(query="echo", active_only=True) == ["echo", "py.echo"]
        stop(py)
        ws.wait("services.updated", lambda p: any(s["name"] == "py.echo" and s["status"] == "INACTIVE"
                                                  for s in p["services"]), timeout=30)
        assert search(query="echo", active_only=True) == ["echo"]
        assert search(query="echo", active_only=False) == ["echo", "py.echo"]


# ---- calls ----------------------------------------------------------------------------------

def test_calls_report_progress_then_complete_or_cancel(gw):
    with gw.ws() as ws:
        ws.send("execution.start", {"node": "sleep", "inputs": {"ms": 400}, "client_ref": "a"})
        pending = ws.wait("execution.updated")["payload"]
        assert pending["status"] == "pending" and pending["client_ref"] == "a" and pending["node"] == "sleep"
        eid = pending["execution_id"]
        steps = []
        while True:
            u = ws.wait("execution.updated", lambda p: p["execution_id"] == eid)["payload"]
            if u["status"] != "running":
                break
            steps.append(u["progress"]["step"])
            assert u["progress"]["total"] == 10 and u["progress"]["message"].startswith("slept")
        assert steps == list(range(1, 11))
        assert u["status"] == "completed" and u["outputs"]["slept_ms"] >= 400 and u["error"] is None
        assert u["completed_at"] >= u["started_at"]

        ws.send("execution.start", {"node": "sleep", "inputs": {"ms": 20000}, "client_ref": "long"})
        eid = ws.wait("execution.updated", lambda p: p["client_ref"] == "long")["payload"]["execution_id"]
        ws.wait("execution.updated", lambda p: p["execution_id"] == eid and p["status"] == "running")
        ws.send("execution.cancel", {"execution_id": eid})
        done = ws.wait("execution.updated", lambda p: p["execution_id"] == eid and p["status"] != "running")["payload"]
        assert done["status"] == "cancelled" and done["error"]["code"] == "CANCELLED"

        ws.send("execution.start", {"node": "fail", "inputs": {"message": "boom"}})
        failed = ws.wait("execution.updated", lambda p: p["node"] == "fail" and p["status"] != "pending")["payload"]
        assert failed["status"] == "failed" and failed["error"] == {"code": "WORKER_ERROR", "message": "boom"}
        ws.send("execution.start", {"node": "nothing-serves-this"})
        nw = ws.wait("execution.updated", lambda p: p["node"] == "nothing-serves-this" and p["status"] != "pending")
        assert nw["payload"]["error"]["code"] == "NO_WORKER"


def test_200_concurrent_executions_on_one_socket(gw):
    with gw.ws() as ws:
        for i in range(200):
            ws.send("execution.start", {"node": "echo", "inputs": {"i": i}, "client_ref": i})
        results = {}
        while len(results) < 200:
            u = ws.wait("execution.updated", lambda p: p["status"] not in ("pending", "running"), timeout=60)["payload"]
            assert u["status"] == "completed", u
            results[u["client_ref"]] = u["outputs"]
        assert results == {i: {"i": i} for i in range(200)}


def test_a_reader_may_watch_but_not_call(gw):
    token = gw.login("reader")
    with gw.ws(token) as ws:
        ws.send("execution.start", {"node": "echo", "client_ref": "r"})
        err = ws.wait("error")["payload"]
        assert err["code"] == "PERMISSION_DENIED" and err["client_ref"] == "r"
        ws.send("service.search.request", {})
        assert ws.wait("service.search.response")["payload"]["services"]
    status, body, _ = gw.request("POST", "/api/nodes/echo/call", {"inputs": {}}, token=token)
    assert status == 403 and body["code"] == "PERMISSION_DENIED"
    assert gw.get("/api/nodes", token=token)[0] == 200


def test_closing_a_socket_cancels_its_executions(gw, cpp_worker):
    with gw.ws() as ws:
        ws.send("execution.start", {"node": "sleep", "inputs": {"ms": 20000}})
        ws.wait("execution.updated", lambda p: p["status"] == "running")
    wait_for(lambda: "aborted after" in cpp_worker.log, 15, "the worker to be told to abort")
    wait_for(lambda: "1 execution(s) open: cancelled" in gw.log, 5, "the gateway to log the cancel")


# ---- REST -----------------------------------------------------------------------------------

def test_rest_routes_and_their_status_codes(gw):
    token = gw.login()
    status, nodes = gw.get("/api/nodes", token)
    assert status == 200 and sorted(n["name"] for n in nodes) == ["count", "echo", "fail", "hello", "sha256", "sleep"]
    assert all(n["workspace"] == "default" for n in nodes)
    status, workers = gw.get("/api/workers", token)
    assert status == 200 and [w["worker_id"] for w in workers] == ["cpp-1"]
    status, st = gw.get("/api/status", token)
    assert status == 200 and st["stats"]["workers"] == 1 and st["daemon"]["version"]

    call = lambda node, body=None: gw.request("POST", f"/api/nodes/{node}/call", body, token=token)[:2]
    status, body = call("hello", {"inputs": {"name": "gateway"}})
    assert status == 200 and body["outputs"] == {"greeting": "Hello gateway", "shout": "HELLO GATEWAY"}
    assert call("echo", {"inputs": {"b": {"$bytes": "aGk="}}})[1]["outputs"] == {"b": {"$bytes": "aGk="}}
    status, body = call("fail", {"inputs": {"message": "no"}})
    assert status == 422 and body["error"] == "no" and body["code"] == "WORKER_ERROR"
    status, body = call("nothing-serves-this")
    assert status == 404 and body["code"] == "NO_WORKER"
    status, body = call("sleep", {"inputs": {"ms": 5000}, "timeout_ms": 200})
    assert status == 504 and body["code"] == "TIMEOUT"
    status, body = call("sleep", {"inputs": {"ms": -1}})
    assert status == 400 and body["code"] == "INVALID_REQUEST"
    assert call("echo", b"{nope")[0] == 400
    status, body = call("echo", {"input": {}})
    assert status == 400 and "unknown field 'input'" in body["error"]
    assert gw.request("GET", "/api/nodes/echo/call", token=token)[0] == 405
    assert gw.request("DELETE", "/api/nodes", token=token)[0] == 405
    assert gw.get("/api/nothing", token) == (404, {"error": "Not found"})
    status, doc = gw.get("/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.") and "/api/nodes/{name}/call" in doc["paths"]
    assert gw.get("/healthz")[1]["ok"] is True


def test_healthz_and_websockets_follow_the_daemon(gw, daemon):
    with gw.ws() as ws:
        ws.wait("connected")
        daemon.stop()
        err = ws.wait("error", timeout=20)["payload"]
        assert err["code"] == "UNAVAILABLE" and "musterd is unreachable" in err["error"]
        status, body = gw.get("/healthz")
        assert status == 503 and body["ok"] is False
        token = gw.login()
        status, body, _ = gw.request("POST", "/api/nodes/echo/call", {"inputs": {}}, token=token)
        assert status == 503 and body["code"] == "UNAVAILABLE"
        ws.send("execution.start", {"node": "echo", "client_ref": "down"})
        assert ws.wait("error", lambda p: p.get("client_ref") == "down")["payload"]["code"] == "UNAVAILABLE"
        daemon.start()
        again = ws.wait("connected", timeout=30)["payload"]
        assert again["peer_id"] == gw.instance_id
        wait_for(lambda: gw.get("/healthz") == (200, {"ok": True, "daemon": "reachable", "peer_id": gw.instance_id}),
                 20, "healthz to be ok again")
        # The worker re-attaches by itself; calls work again.
        ws.wait("services.updated", lambda p: any(s["name"] == "echo" and s["status"] == "ACTIVE" for s in p["services"]),
                timeout=30)
        ws.send("execution.start", {"node": "echo", "inputs": {"x": 1}, "client_ref": "up"})
        done = ws.wait("execution.updated", lambda p: p["client_ref"] == "up" and p["status"] != "pending")["payload"]
        assert done["status"] == "completed"


# ---- TLS ------------------------------------------------------------------------------------

def test_https_and_wss_share_the_port_with_http(start_gateway, cpp_worker, tmp_base):
    import ssl
    cert, key = tmp_base / "cert.pem", tmp_base / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ctx = ssl.create_default_context(cafile=str(cert))
    gw = start_gateway("--tls-cert", cert, "--tls-key", key)
    tls = Gateway(gw.daemon, tmp_base, name="gw", scheme="https", ssl_context=ctx)
    tls.data_dir, tls.port = gw.data_dir, gw.port
    assert tls.get("/healthz")[0] == 200
    with tls.ws(tls.login()) as ws:
        assert ws.recv()["type"] == "connected"
        ws.send("execution.start", {"node": "hello", "inputs": {"name": "tls"}})
        done = ws.wait("execution.updated", lambda p: p["status"] == "completed")["payload"]
        assert done["outputs"]["greeting"] == "Hello tls"
    assert gw.get("/healthz")[0] == 200  # plain http on the same port
    gw.stop()

    only = start_gateway("--tls-cert", cert, "--tls-key", key, "--tls-only", name="only", scheme="https", ssl_context=ctx)
    assert only.get("/healthz")[0] == 200
    plain = Gateway(only.daemon, tmp_base, name="only")
    plain.port = only.port
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        plain.get("/healthz")


# ---- workspaces -----------------------------------------------------------------------------

def mint(daemon, *args) -> str:
    r = subprocess.run([str(BUILD / "tools" / "muster"), "token", "create", *args], env=daemon.env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def free_ports(n):
    import socket
    socks = [socket.socket() for _ in range(n)]
    for so in socks:
        so.bind(("127.0.0.1", 0))
    ports = [so.getsockname()[1] for so in socks]
    for so in socks:
        so.close()
    return ports


class CurveDaemon:
    """musterd with CURVE TCP endpoints on free loopback ports (ipc:// stays for the local owner)."""

    def __init__(self, start_daemon):
        self.req, self.resp, self.client, self.enroll = (f"tcp://127.0.0.1:{p}" for p in free_ports(4))
        self.d = start_daemon("--request-address", self.req, "--response-address", self.resp,
                              "--client-address", self.client, "--enrollment-address", self.enroll)

    def worker_args(self, data_dir):
        return ["--request-address", self.req, "--response-address", self.resp, "--enrollment-address", self.enroll,
                "--data-dir", data_dir]


WHOAMI_PY = Path(__file__).with_name("gateway_whoami_worker.py")
WHOAMI_JS = Path(__file__).with_name("gateway_whoami_worker.js")


def start_whoami_worker(cd: CurveDaemon, base: Path, language: str, workspace: str, worker_id: str, prefix="",
                        abort_log=None):
    token = mint(cd.d, "--role", "worker", "--workspace", workspace, "--name", worker_id)
    args = cd.worker_args(base / f"wd-{worker_id}") + ["--worker-id", worker_id, "--prefix", prefix]
    if language == "python":
        cmd = [sys.executable, WHOAMI_PY, *args, "--log-level", "debug"] + (["--abort-log", abort_log] if abort_log else [])
    else:
        cmd = ["node", WHOAMI_JS, *args]
    return spawn(cmd, dict(cd.d.env, MUSTER_ENROLLMENT_TOKEN=token), base / f"{worker_id}.log")


def local_workers(d):
    out = subprocess.run([str(BUILD / "tools" / "muster"), "workers", "--json"], env=d.env, capture_output=True,
                         text=True, timeout=30)
    return {w["worker_id"]: w for w in json.loads(out.stdout or "[]")} if out.returncode == 0 else {}


@pytest.fixture
def two_workspaces(start_daemon, start_gateway, tmp_base):
    """musterd on CURVE TCP; workspace alpha: a Python worker (whoami, hold); workspace beta: a
    TypeScript worker (b.whoami); one gateway enrolled (role gateway) for alpha and beta, with
    users ada (alpha), bob (beta) and gus (gamma, a workspace the gateway was not enrolled for)."""
    if not (REPO / "worker" / "typescript" / "dist").exists():
        pytest.skip("build the TypeScript SDK first (tools/lib/setup.sh setup_typescript)")
    cd = CurveDaemon(start_daemon)
    abort_log = tmp_base / "aborts.log"
    start_whoami_worker(cd, tmp_base, "python", "alpha", "alpha-py", abort_log=abort_log)
    start_whoami_worker(cd, tmp_base, "typescript", "beta", "beta-ts", prefix="b.")
    wait_for(lambda: {"alpha-py", "beta-ts"} <= {k for k, w in local_workers(cd.d).items() if w["state"] == "ready"},
             30, "the alpha and beta workers to be ready")
    token_file = tmp_base / "gw.token"
    token_file.write_text(mint(cd.d, "--role", "gateway", "--workspace", "alpha,beta", "--name", "front-door"))
    gw = start_gateway("--client-address", cd.client, "--enrollment-address", cd.enroll,
                       "--muster-data-dir", tmp_base / "gw-keys", "--enrollment-token-file", token_file,
                       daemon_=cd.d, users=[("ada", "alpha", "call"), ("bob", "beta", "call"), ("gus", "gamma", "call")])
    return cd, gw, abort_log


def test_the_worker_sees_the_end_user_and_workspaces_stay_apart(two_workspaces):
    """One gateway serves users of alpha and beta at once: each sees, searches and calls only
    its own workspace's nodes (pushes and REST), and the worker's caller context names the end
    user and the user's workspace, not the gateway (issue 13, item 6)."""
    cd, gw, _ = two_workspaces
    ada, bob = gw.login("ada"), gw.login("bob")
    gw_identity = json.loads((gw.data_dir.parent / "gw-keys" / "gateway-identity.json").read_text())
    assert gw_identity["role"] == "gateway" and gw_identity["workspace"] == "alpha,beta"

    # REST: each user's lists are their own workspace's only.
    wait_for(lambda: [n["name"] for n in gw.get("/api/nodes", ada)[1]] == ["hold", "whoami"], 10, "alpha's nodes")
    wait_for(lambda: [n["name"] for n in gw.get("/api/nodes", bob)[1]] == ["b.whoami"], 10, "beta's nodes")
    assert [w["worker_id"] for w in gw.get("/api/workers", ada)[1]] == ["alpha-py"]
    assert [w["worker_id"] for w in gw.get("/api/workers", bob)[1]] == ["beta-ts"]
    st = gw.get("/api/status", bob)[1]
    assert st["workspace"] == "beta" and st["stats"]["workers"] == 1 and st["stats"]["nodes"] == 1

    # The worker sees the end user: Python worker in alpha, TypeScript worker in beta.
    status, body, _ = gw.request("POST", "/api/nodes/whoami/call", {}, token=ada)
    assert status == 200, body
    assert body["outputs"] == {"identity": f"{gw_identity['identity_id']}/ada", "name": "ada", "workspace": "alpha",
                               "role": "call"}
    status, body, _ = gw.request("POST", "/api/nodes/b.whoami/call", {}, token=bob)
    assert status == 200, body
    assert body["outputs"]["name"] == "bob" and body["outputs"]["workspace"] == "beta"

    # beta cannot call alpha's node, nor alpha beta's: musterd schedules in the user's workspace.
    status, body, _ = gw.request("POST", "/api/nodes/whoami/call", {}, token=bob)
    assert status == 404 and body["code"] == "NO_WORKER"
    assert gw.request("POST", "/api/nodes/b.whoami/call", {}, token=ada)[1]["code"] == "NO_WORKER"

    # WebSocket: pushes and search carry only the user's workspace.
    with gw.ws(bob) as ws:
        services = ws.wait("services.updated")["payload"]["services"]
        assert [s["name"] for s in services] == ["b.whoami"]
        assert [p["id"] for p in ws.wait("peers.updated")["payload"]["peers"]] == ["beta-ts"]
        assert ws.wait("node.status")["payload"]["workspace"] == "beta"
        ws.send("service.search.request", {"query": "whoami"})
        assert [s["name"] for s in ws.wait("service.search.response")["payload"]["services"]] == ["b.whoami"]
        ws.send("service.search.request", {"peer_ids": ["alpha-py"]})
        assert ws.wait("service.search.response")["payload"]["services"] == []
        ws.send("execution.start", {"node": "b.whoami", "client_ref": "me"})
        done = ws.wait("execution.updated", lambda p: p["status"] in ("completed", "failed"))["payload"]
        assert done["outputs"]["name"] == "bob" and done["outputs"]["workspace"] == "beta"
        ws.send("execution.start", {"node": "hold", "client_ref": "theirs"})
        failed = ws.wait("execution.updated", lambda p: p["status"] == "failed")["payload"]
        assert failed["error"]["code"] == "NO_WORKER"
    with gw.ws(ada) as ws:
        assert [s["name"] for s in ws.wait("services.updated")["payload"]["services"]] == ["hold", "whoami"]
        ws.send("execution.start", {"node": "whoami"})
        done = ws.wait("execution.updated", lambda p: p["status"] == "completed")["payload"]
        assert done["outputs"]["name"] == "ada" and done["outputs"]["workspace"] == "alpha"


def test_a_gateway_is_refused_a_workspace_it_was_not_enrolled_for(two_workspaces):
    """gus belongs to gamma; the gateway was enrolled for alpha and beta only: musterd refuses
    every list and call made on behalf of gus (PERMISSION_DENIED), nothing is dispatched."""
    cd, gw, _ = two_workspaces
    gus = gw.login("gus")
    status, body, _ = gw.request("POST", "/api/nodes/whoami/call", {}, token=gus)
    assert status == 403 and body["code"] == "PERMISSION_DENIED"
    assert "not enrolled for workspace 'gamma'" in body["error"]
    status, body = gw.get("/api/nodes", gus)
    assert status == 403 and body["code"] == "PERMISSION_DENIED"
    with gw.ws(gus) as ws:
        err = ws.wait("error")["payload"]
        assert err["code"] == "PERMISSION_DENIED" and "gamma" in err["error"]
        assert ws.wait("services.updated")["payload"]["services"] == []
    assert "refused a message on the client socket: gateway" in read_log(cd.d.proc)


def curve_dealer(data_dir: Path, name: str, endpoint: str):
    """A DEALER connected with the CURVE keys a muster program enrolled and saved in data_dir."""
    import zmq
    keys = dict(line.split("=", 1) for line in (data_dir / f"{name}-curve.key").read_text().split()
                if "=" in line)
    identity = json.loads((data_dir / f"{name}-identity.json").read_text())
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey, s.curve_secretkey = keys["public"].encode(), keys["secret"].encode()
    s.curve_serverkey = identity["daemon_public_key"].encode()
    s.connect(endpoint)
    return s


def client_message_on_behalf_of(request_id: int, user: str, workspace: str) -> bytes:
    """A ClientMessage{ListNodes} asserting `user` of `workspace` (PROTOCOL.md §8.1)."""
    import flatbuffers
    from muster.wire import ClientMessage as wCM, OnBehalfOf as wOB
    b = flatbuffers.Builder(64)
    b.StartObject(0)
    body = b.EndObject()
    u, w = b.CreateString(user), b.CreateString(workspace)
    wOB.Start(b)
    wOB.AddUser(b, u)
    wOB.AddWorkspace(b, w)
    asserted = wOB.End(b)
    wCM.Start(b)
    wCM.AddRequestId(b, request_id)
    wCM.AddBodyType(b, 3)  # ListNodes
    wCM.AddBody(b, body)
    wCM.AddOnBehalfOf(b, asserted)
    b.Finish(wCM.End(b), file_identifier=b"MSCL")
    return bytes(b.Output())


def test_a_rest_call_is_cancelled_when_its_http_client_goes_away(two_workspaces):
    """A REST call whose HTTP client disconnects before the answer is cancelled: musterd gets a
    Cancel and the worker's handler sees its request aborted with CANCELLED."""
    cd, gw, abort_log = two_workspaces
    ada = gw.login("ada")
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    c.request("POST", "/api/nodes/hold/call", body=json.dumps({"timeout_ms": 60000}),
              headers={"Authorization": f"Bearer {ada}", "Content-Type": "application/json"})
    wait_for(lambda: gw.get("/api/status", ada)[1]["stats"]["in_flight"] == 1, 15, "the worker to hold the call")
    c.sock.close()  # the client goes away without waiting for its answer
    wait_for(lambda: abort_log.exists() and "CANCELLED ada" in abort_log.read_text(), 15,
             "the worker to see its request cancelled")
    assert "the HTTP client went away: cancelled" in gw.log
    wait_for(lambda: gw.get("/api/status", ada)[1]["stats"]["in_flight"] == 0, 15, "the worker to be free again")
    # An answered call on a kept-alive connection is not cancelled; the next request is served.
    k = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    for _ in range(2):
        k.request("POST", "/api/nodes/whoami/call", body=b"{}", headers={"Authorization": f"Bearer {ada}"})
        r = k.getresponse()
        assert r.status == 200 and json.loads(r.read())["outputs"]["name"] == "ada"
    k.close()
    assert abort_log.read_text().count("CANCELLED") == 1


def test_only_a_gateway_identity_may_assert_a_user(start_daemon, tmp_base):
    """A client identity and an admin identity that send on_behalf_of are refused with
    PERMISSION_DENIED (a gateway's identical message is answered: the tests above)."""
    pytest.importorskip("zmq")
    from muster import messages as m
    cd = CurveDaemon(start_daemon)
    for role, ws in (("client", "alpha"), ("admin", "default")):
        data = tmp_base / f"keys-{role}"
        env = dict(cd.d.env, MUSTER_ENROLLMENT_TOKEN=mint(cd.d, "--role", role, "--workspace", ws))
        args = [str(BUILD / "tools" / "muster"), "--client-address", cd.client, "--enrollment-address", cd.enroll,
                "--data-dir", str(data)] + (["--admin"] if role == "admin" else []) + ["status"]
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr  # enrolled, and its own status is answered
        s = curve_dealer(data, role, cd.client)
        s.send(client_message_on_behalf_of(7, "mallory", "alpha"))
        assert s.poll(10000), "no answer from musterd"
        reply = m.decode_client_reply(s.recv())
        s.close()
        assert reply.request_id == 7
        assert type(reply.body).__name__ == "Failure", reply
        assert reply.body.code.name == "PERMISSION_DENIED"
        assert "only an identity enrolled with role gateway" in reply.body.message
    assert "refused a message on the client socket: identity" in cd.d.log


# ---- a browser-style client -----------------------------------------------------------------

def node_websocket_args():
    """`node` with its built-in WebSocket (a flag on Node 20/21), or None without node."""
    import shutil
    node = shutil.which("node")
    if not node:
        return None
    probe = subprocess.run([node, "-e", "process.exit(typeof WebSocket === 'undefined' ? 1 : 0)"], timeout=30)
    return [node] if probe.returncode == 0 else [node, "--experimental-websocket"]


def test_nodes_built_in_websocket_client(start_gateway, cpp_worker, daemon):
    node = node_websocket_args()
    if node is None:
        pytest.skip("node is not installed")
    py = start_python_worker(daemon, "py-3")
    gw = start_gateway()
    wait_for(lambda: "py-3" in [w["worker_id"] for w in gw.get("/api/workers", gw.login())[1]], 30, "py-3 to attach")
    r = subprocess.run([*node, str(REPO / "gateway" / "examples" / "node-client.mjs"), f"http://127.0.0.1:{gw.port}",
                        "alice", PASSWORDS["alice"]], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["peer_id"] == gw.instance_id and summary["message"] == "Connected to WebSocket server"
    assert summary["search"] == ["hello", "py.hello"] and summary["search_complete"] is True
    assert summary["progress_steps"] == list(range(1, 11))
    assert summary["status"] == "completed" and summary["outputs"]["slept_ms"] >= 300
    assert summary["cancelled"] == "cancelled"
    assert summary["bad_token_refused"] is True
    stop(py)


# ---- uploads --------------------------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_chunked_upload_with_pause_drop_and_resume_then_a_call_using_the_file(start_gateway, cpp_worker, daemon):
    py = start_python_worker(daemon, "py-up")
    gw = start_gateway()
    token = gw.login()
    wait_for(lambda: "py-up" in [w["worker_id"] for w in gw.get("/api/workers", token)[1]], 30, "py-up to attach")
    content = bytes(range(256)) * 1000 + b"tail"  # 256004 bytes
    chunk = 65536
    chunks = [content[i:i + chunk] for i in range(0, len(content), chunk)]
    assert len(chunks) == 4
    with gw.ws(token) as ws:
        ws.send("file.upload.start", {"service_id": 1, "upload_group_id": "g1", "filename": "data.bin",
                                      "file_path": "in/data.bin", "file_index": 0, "total_files": 1,
                                      "total_size": len(content), "total_chunks": len(chunks), "chunk_size": chunk})
        p = ws.wait("file.upload.progress")["payload"]
        assert (p["chunks_received"], p["bytes_uploaded"], p["percentage"]) == (0, 0, 0)
        sid = p["session_id"]
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 0, "data": b64(chunks[0])})
        p = ws.wait("file.upload.progress")["payload"]
        assert (p["chunks_received"], p["bytes_uploaded"], p["percentage"]) == (1, chunk, 25.0)
        ws.send("file.upload.pause", {"session_id": sid})
        assert ws.wait("file.upload.progress")["payload"]["status"] == "paused"
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 1, "data": b64(chunks[1])})
        assert ws.wait("file.upload.error")["payload"]["code"] == "SESSION_PAUSED"
        ws.send("file.upload.resume", {"session_id": sid})
        assert ws.wait("file.upload.progress")["payload"]["status"] == "uploading"
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 2, "data": b64(chunks[2])})  # out of order
        assert ws.wait("file.upload.progress")["payload"]["chunks_received"] == 2
    # The connection dropped mid-upload: a new one resumes the session.
    with gw.ws(token) as ws:
        ws.send("file.upload.resume", {"session_id": sid})
        p = ws.wait("file.upload.progress")["payload"]
        assert (p["chunks_received"], p["bytes_uploaded"], p["status"]) == (2, 2 * chunk, "uploading")
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 3, "data": b64(chunks[3])})
        ws.wait("file.upload.progress")
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 1, "data": b64(chunks[1])})
        assert ws.wait("file.upload.progress")["payload"]["percentage"] == 100.0
        done = ws.wait("file.upload.complete")["payload"]
        assert done["session_id"] == sid and done["size"] == len(content)
        assert done["file_hash"] == "sha256:" + hashlib.sha256(content).hexdigest()
        # A call takes the file as bytes; the Python worker hashes what it got.
        ws.send("execution.start", {"node": "py.hash", "inputs": {"data": {"$file": done["file_hash"]}}, "client_ref": "h"})
        r = ws.wait("execution.updated", lambda p: p["client_ref"] == "h" and p["status"] not in ("pending", "running"))
        assert r["payload"]["status"] == "completed", r
        assert r["payload"]["outputs"]["hex"] == hashlib.sha256(content).hexdigest()
        assert r["payload"]["outputs"]["size"] == len(content)
        # The same by REST.
        status, body, _ = gw.request("POST", "/api/nodes/py.hash/call", {"inputs": {"data": {"$file": done["file_hash"]}}},
                                     token=token)
        assert status == 200 and body["outputs"]["hex"] == hashlib.sha256(content).hexdigest()
        # Unknown file: a clear refusal, nothing called.
        ws.send("execution.start", {"node": "py.hash", "inputs": {"data": {"$file": "sha256:" + "0" * 64}}, "client_ref": "x"})
        err = ws.wait("error", lambda p: p.get("client_ref") == "x")["payload"]
        assert err["code"] == "INVALID_REQUEST" and "no uploaded file sha256:000" in err["error"]
    stop(py)


def test_uploads_survive_a_gateway_restart(start_gateway, cpp_worker, daemon):
    """Finished files and open sessions are kept in the data dir: after a restart a paused
    session resumes from where it was and completes, both files resolve as {"$file": ...} in a
    call, and a session whose partial data is gone fails with SESSION_RESTORE_FAILED."""
    py = start_python_worker(daemon, "py-keep")
    gw = start_gateway()
    token = gw.login()
    wait_for(lambda: "py-keep" in [w["worker_id"] for w in gw.get("/api/workers", token)[1]], 30, "py-keep to attach")
    small, content = b"kept across a restart", bytes(range(256)) * 40  # 10240 bytes in chunks of 4096
    chunks = [content[i:i + 4096] for i in range(0, len(content), 4096)]

    def start(ws, data, chunk_size):
        ws.send("file.upload.start", {"filename": "f.bin", "total_size": len(data),
                                      "total_chunks": -(-len(data) // chunk_size), "chunk_size": chunk_size})
        return ws.wait("file.upload.progress")["payload"]["session_id"]

    with gw.ws(token) as ws:
        sid_small = start(ws, small, 64)
        ws.send("file.upload.chunk", {"session_id": sid_small, "chunk_index": 0, "data": b64(small)})
        small_hash = ws.wait("file.upload.complete")["payload"]["file_hash"]
        sid = start(ws, content, 4096)
        for i in (0, 2):
            ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": i, "data": b64(chunks[i])})
            ws.wait("file.upload.progress")
        sid_gone = start(ws, content, 4096)
        ws.send("file.upload.chunk", {"session_id": sid_gone, "chunk_index": 0, "data": b64(chunks[0])})
        ws.wait("file.upload.progress")
    gw.stop()
    (gw.data_dir / "uploads" / "partial" / f"{sid_gone}.part").unlink()
    gw.start()
    token = gw.login()
    with gw.ws(token) as ws:
        ws.send("file.upload.resume", {"session_id": sid})
        p = ws.wait("file.upload.progress")["payload"]
        assert (p["chunks_received"], p["bytes_uploaded"], p["status"]) == (2, 4096 + len(chunks[2]), "uploading")
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 1, "data": b64(chunks[1])})
        done = ws.wait("file.upload.complete")["payload"]
        assert done["file_hash"] == "sha256:" + hashlib.sha256(content).hexdigest()
        ws.send("file.upload.resume", {"session_id": sid_gone})
        err = ws.wait("file.upload.error")["payload"]
        assert err["code"] == "SESSION_RESTORE_FAILED" and err["session_id"] == sid_gone
        for h, data in ((small_hash, small), (done["file_hash"], content)):
            status, body, _ = gw.request("POST", "/api/nodes/py.hash/call", {"inputs": {"data": {"$file": h}}}, token=token)
            assert status == 200 and body["outputs"]["hex"] == hashlib.sha256(data).hexdigest(), body
    stop(py)


def test_every_upload_error_code(start_gateway, cpp_worker):
    gw = start_gateway("--upload-quota-bytes", "100000", "--max-file-input-bytes", "10")
    token = gw.login()
    with gw.ws(token) as ws:
        def start(**kw):
            payload = {"filename": "f.bin", "total_size": 10, "total_chunks": 1, "chunk_size": 10, **kw}
            ws.send("file.upload.start", payload)
            return ws.wait("file.upload.progress")["payload"]

        def start_error(**kw):
            ws.send("file.upload.start", {"filename": "f.bin", "total_size": 10, "total_chunks": 1, "chunk_size": 10, **kw})
            return ws.wait("file.upload.error")["payload"]

        assert start_error(total_size=200000, total_chunks=2, chunk_size=100000)["code"] == "UPLOAD_START_FAILED"  # quota
        assert "over the 100000 bytes" in start_error(total_size=200000, total_chunks=2, chunk_size=100000)["error"]
        assert start_error(filename="../x")["code"] == "UPLOAD_START_FAILED"
        assert "make 1 chunk(s), not 3" in start_error(total_chunks=3)["error"]
        ws.send("file.upload.chunk", {"session_id": "nope", "chunk_index": 0, "data": "AAAA"})
        assert ws.wait("file.upload.error")["payload"] == {"session_id": "nope", "error": "Upload session not found",
                                                           "code": "SESSION_NOT_FOUND"}
        sid = start()["session_id"]
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 0, "data": "!!not base64!!"})
        assert ws.wait("file.upload.error")["payload"]["code"] == "INVALID_ENCODING"
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 0, "data": b64(b"short")})
        assert ws.wait("file.upload.error")["payload"]["code"] == "INVALID_ENCODING"
        # The partial file is replaced by a directory: the write fails.
        part = gw.data_dir / "uploads" / "partial" / f"{sid}.part"
        part.unlink()
        part.mkdir()
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 0, "data": b64(b"0123456789")})
        err = ws.wait("file.upload.error")["payload"]
        assert err["code"] == "WRITE_FAILED" and err["error"].startswith("Failed to write chunk to disk")
        assert not part.exists()  # the failed session is dropped with its data
        # A paused session whose data vanished cannot be restored.
        sid = start(total_size=20, total_chunks=2)["session_id"]
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 0, "data": b64(b"0123456789")})
        ws.wait("file.upload.progress")
        ws.send("file.upload.pause", {"session_id": sid})
        ws.wait("file.upload.progress")
        (gw.data_dir / "uploads" / "partial" / f"{sid}.part").unlink()
        ws.send("file.upload.resume", {"session_id": sid})
        assert ws.wait("file.upload.error")["payload"]["code"] == "SESSION_RESTORE_FAILED"
        ws.send("file.upload.resume", {"session_id": sid})
        assert ws.wait("file.upload.error")["payload"]["code"] == "SESSION_NOT_FOUND"  # it was dropped
        # A finished file larger than --max-file-input-bytes is refused as a call input, clearly.
        sid = start(total_size=11, total_chunks=1, chunk_size=11)["session_id"]
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": 0, "data": b64(b"eleven byte")})
        ref = ws.wait("file.upload.complete")["payload"]["file_hash"]
        ws.send("execution.start", {"node": "echo", "inputs": {"f": {"$file": ref}}, "client_ref": "big"})
        err = ws.wait("error", lambda p: p.get("client_ref") == "big")["payload"]
        assert err["code"] == "INVALID_REQUEST" and "at most 10 bytes" in err["error"]
    # A read-only user may not upload (another user's sessions and files: tests/unit/gateway_uploads.cpp).
    with gw.ws(gw.login("reader")) as ws:
        ws.send("file.upload.start", {"filename": "f", "total_size": 1, "total_chunks": 1, "chunk_size": 1})
        assert ws.wait("file.upload.error")["payload"]["code"] == "UPLOAD_START_FAILED"
