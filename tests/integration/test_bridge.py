"""Process-level tests of muster-bridge (docs/BRIDGE.md): host mode with a Hurozo-style Python
worker, the uplink through a host bridge (over https/wss), WebSocket token and registration
expiry, reconnects after a host restart, 200 concurrent events, hostile WebSocket input, API
token checks, descriptor exhaustion and the per-address cap, a dead worker among two of one
user, and what the uplink answers (only what it registered; events held while a registration
is on its way; open events before it stops).

Every process is started through conftest.spawn (killed when the test ends) and every wait is
bounded; no test asserts a duration. The reference worker runs under Debian's /usr/bin/python3
(python3-requests, python3-websockets); the tests themselves use only the standard library
(a minimal WebSocket client below) so that they run in any virtualenv.
"""
from __future__ import annotations

import base64
import hashlib
import json
import queue
import os
import re
import shutil
import socket
import socketserver
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import BUILD, popen, read_log, spawn, stop, wait_for

HERE = Path(__file__).resolve().parent / "bridge"
SYSTEM_PYTHON = "/usr/bin/python3"
TOKENS = "tok-w alice write\ntok-r alice read\ntok-b bob write\n"


# ---- helpers -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bridge_bin() -> Path:
    path = BUILD / "bridge" / "muster-bridge"
    if not path.exists():
        pytest.skip(f"muster-bridge is not built (looked in {path})")
    return path


@dataclass
class Host:
    proc: subprocess.Popen
    port: int
    tls_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return read_log(self.proc)


def start_host(daemon, *args, port: int | None = None, tls: tuple[Path, Path] | None = None, name="host",
               prefix: tuple = (), log_level="debug") -> Host:
    base = daemon.runtime_dir.parent
    tokens = base / "tokens"
    tokens.write_text(TOKENS)
    port = port or free_port()
    extra = []
    tls_port = None
    if tls:
        tls_port = free_port()
        extra = ["--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert", tls[0], "--tls-key", tls[1]]
    proc = spawn([*prefix, bridge_bin(), "--log-level", log_level, "host", "--listen", f"127.0.0.1:{port}",
                  "--tokens-file", tokens, *extra, *args], daemon.env, base / f"{name}.log")
    want = 2 if tls else 1
    wait_for(lambda: read_log(proc).count("listening on") >= want or proc.poll() is not None, 10,
             "the host bridge to listen")
    assert proc.poll() is None, read_log(proc)
    return Host(proc, port, tls_port)


def start_uplink(daemon, api_url: str, *args, token="tok-w", name="uplink"):
    env = dict(daemon.env, HUROZO_TOKEN=token, HUROZO_API_URL=api_url)
    env.pop("HUROZO_API_TOKEN", None)
    return spawn([bridge_bin(), "--log-level", "debug", "uplink", "--reconnect-max", "1", "--watch-interval", "0.5",
                  *args], env,
                 daemon.runtime_dir.parent / f"{name}.log")


def start_reference_worker(api_url: str, log: Path, token="tok-w", **env_extra):
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip("needs Debian's /usr/bin/python3 with python3-requests and python3-websockets")
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import requests, websockets"], capture_output=True)
    if check.returncode != 0:
        pytest.skip("needs python3-requests and python3-websockets for /usr/bin/python3")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HUROZO_TOKEN=token, HUROZO_API_URL=api_url, PYTHONUNBUFFERED="1", **env_extra)
    return spawn([SYSTEM_PYTHON, HERE / "hello_worker.py"], env, log)


def api(method: str, url: str, token: str | None = None, body=None):
    """An HTTP call; returns (status, parsed JSON body)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def register(host: Host, name: str, outputs=("greeting", "shout"), inputs=("name",), token="tok-w"):
    return api("POST", f"{host.url}/api/remote_nodes/register", token,
               {"name": name, "inputs": list(inputs), "outputs": list(outputs)})


def muster_nodes(run_cli, daemon) -> dict:
    r = run_cli(daemon, "nodes", "--json", timeout=20)
    return {n["name"]: n for n in json.loads(r.stdout)} if r.returncode == 0 else {}


def call(run_cli, daemon, node, inputs, *args, timeout=60):
    return run_cli(daemon, "call", node, json.dumps(inputs), "--timeout-ms", "60000", *args, timeout=timeout)


def popen_call(daemon, node, inputs):
    return popen([str(BUILD / "tools" / "muster"), "call", node, json.dumps(inputs),
                  "--timeout-ms", "60000"], env=daemon.env, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)


class MiniWs:
    """Just enough of a WebSocket client (RFC 6455) to play a remote worker, send garbage and
    see handshake refusals."""

    def __init__(self, port: int, target: str, timeout: float = 15.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.recv_timeout = timeout
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        header, _, self.buf = head.partition(b"\r\n\r\n")
        lines = header.decode(errors="replace").split("\r\n")
        self.status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        self.body = None
        if self.status != 101:
            length = int(headers.get("content-length", "0"))
            while len(self.buf) < length:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                self.buf += chunk
            self.body = json.loads(self.buf[:length] or b"null")
            self.sock.close()
        self.lock = threading.Lock()

    recv_timeout = 30.0  # seconds a recv waits for the next message (pings in between included)
    deadline: float | None = None

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.deadline is not None:  # the peer's pings must not extend a wait for a message
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no WebSocket message within {self.recv_timeout} s")
                self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    masks = True  # a client masks every frame it sends (RFC 6455 5.3); a server never does

    def _send_frame(self, opcode: int, payload: bytes):
        bit = 0x80 if self.masks else 0
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([bit | n])
        elif n < 65536:
            head += bytes([bit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([bit | 127]) + struct.pack("!Q", n)
        if self.masks:
            mask = os.urandom(4)
            head += mask
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(head + payload)

    def send(self, text: str):
        self._send_frame(0x1, text.encode())

    def send_json(self, obj):
        self.send(json.dumps(obj))

    def recv(self) -> str | None:
        """The next text message; None when the peer closes; TimeoutError after recv_timeout."""
        self.deadline, saved = time.monotonic() + self.recv_timeout, self.sock.gettimeout()
        try:
            return self._recv()
        finally:
            self.deadline = None
            self.sock.settimeout(saved)

    def _recv(self) -> str | None:
        parts: list[bytes] | None = None  # the frames of a text message so far
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            # Frames from a client are masked (RFC 6455 5.3), a server's are not.
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                self._peer_closed()
                return None
            elif opcode == 0x1 or (opcode == 0x0 and parts is not None):
                # A message may come in several frames: a text frame, then continuation frames
                # up to the one with FIN (RFC 6455 5.4); the uplink (Beast) sends 4 KiB frames.
                parts = [payload] if opcode == 0x1 else parts + [payload]
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def _peer_closed(self):
        """Called when the other side sends a close frame."""

    def recv_json(self):
        text = self.recv()
        return None if text is None else json.loads(text)

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


class FakeHurozo:
    """A Hurozo backend in miniature for the uplink: answers registrations with a WebSocket URL
    and `token`, records them, and hands each accepted WebSocket to the test as a ServerWs.
    A registration is recorded when it arrives, before it is answered: the uplink serves a node
    only once it has read that answer (its log says "registered '<name>'"), and holds the node's
    events until then. `answer_delay` (node name -> seconds, or a threading.Event the answer
    waits for, at most 30 s) holds the answer back, like a slow server or a slow uplink;
    `refuse` (node name -> error) answers the node's registrations 400 with that error."""

    def __init__(self, token: str, answer_delay: dict[str, float | threading.Event] | None = None,
                 refuse: dict[str, str] | None = None):
        self.token = token
        self.answer_delay = answer_delay or {}
        self.refuse = refuse or {}
        self.closing = threading.Event()
        self.registrations: list[dict] = []
        self.ws_targets: list[str] = []
        self.connections: "queue.Queue[ServerWs]" = queue.Queue()
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                fake._handle(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, sock):
        sock.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if headers.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(hashlib.sha1(
                (headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            self.ws_targets.append(target)
            conn = ServerWs(sock, rest)
            self.connections.put(conn)
            # socketserver closes the socket when this returns: keep it for the test until either
            # end closes it or the test is over (the test's own waits are bounded: recv_timeout).
            while not (conn.closed.wait(0.1) or self.closing.is_set()):
                pass
            return
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += sock.recv(65536)
        body = json.loads(rest[:length] or b"null")
        if method == "POST" and target == "/api/remote_nodes/register" and not (body or {}).get("outputs"):
            reply, status = {"error": "At least one output required"}, "400 Bad Request"  # as Hurozo
        elif method == "POST" and target == "/api/remote_nodes/register":
            name = body.get("name")
            self.registrations.append(body)
            delay = self.answer_delay.get(name, 0)
            if isinstance(delay, threading.Event):
                delay.wait(30)
            else:
                time.sleep(delay)
            if name in self.refuse:
                reply, status = {"error": self.refuse[name]}, "400 Bad Request"
            else:
                reply = {"status": "registered", "websocket_url": f"ws://127.0.0.1:{self.port}/Prod",
                         "token": self.token, "inputs": body.get("inputs", []), "outputs": body.get("outputs", [])}
                status = "200 OK"
        else:
            reply, status = {"error": "Not found"}, "404 Not Found"
        payload = json.dumps(reply).encode()
        sock.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + payload)


class ServerWs(MiniWs):
    """The server end of a WebSocket accepted by FakeHurozo (frames unmasked)."""

    def __init__(self, sock, buf: bytes):
        self.sock, self.buf, self.lock = sock, buf, threading.Lock()
        self.closed = threading.Event()

    masks = False

    def _peer_closed(self):
        self.closed.set()

    def close(self):
        super().close()
        self.closed.set()


def uplink_connection(fake: FakeHurozo, uplink, timeout: float = 20) -> ServerWs:
    """The uplink's first WebSocket to `fake`; a failure with the uplink's log if none comes."""
    try:
        return fake.connections.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"the uplink did not connect within {timeout} s; its log:\n{read_log(uplink)}")


def uplink_message(ws: ServerWs, uplink):
    """The uplink's next WebSocket message (None: it closed); a failure with the uplink's log
    if none comes within ws.recv_timeout or the connection breaks."""
    try:
        return ws.recv_json()
    except OSError as e:  # TimeoutError included
        pytest.fail(f"no message from the uplink: {e!r}; its log:\n{read_log(uplink)}")


def messages_until_stopped(ws: ServerWs, uplink, first: int = 1) -> list:
    """The uplink's next `first` messages, then SIGTERM (it answers what is still open) and every
    message it sends until it closes the WebSocket; a failure with its log if one does not come."""
    messages = [uplink_message(ws, uplink) for _ in range(first)]
    stop(uplink)
    while (message := uplink_message(ws, uplink)) is not None:
        messages.append(message)
    return messages


def only_hello_is_answered(ws: ServerWs, uplink, node: str, uuid: str) -> str:
    """Sends an event for `node`, which the uplink does not serve, and one for hello, then stops
    the uplink: only hello's is answered, the other is ignored as not registered. Returns the
    uplink's log."""
    ws.send_json({"node": node, "inputs": {"x": 1}, "uuid": uuid})
    ws.send_json({"node": "hello", "inputs": {"name": "Ada"}, "uuid": "u-hello"})
    answers = messages_until_stopped(ws, uplink)
    log = read_log(uplink)
    assert [a["uuid"] for a in answers] == ["u-hello"], f"{answers}\n{log}"
    assert f"ignoring event {uuid} for '{node}': not registered by this uplink" in log, log
    return log


def ws_target(token: str) -> str:
    return f"/ws?auth={urllib.request.quote(token, safe='')}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def half_open(port: int) -> socket.socket:
    """A connection that starts an HTTP request and never finishes its headers."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return s


def closed_by_server(s: socket.socket, timeout: float) -> bool:
    """True if the server closes `s` (EOF or reset) within `timeout` s without answering."""
    s.settimeout(timeout)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def is_closed(s: socket.socket) -> bool:
    """True if the server has closed `s` (EOF or reset); does not wait."""
    timeout = s.gettimeout()
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        s.settimeout(timeout)


def healthy(host: Host) -> bool:
    try:
        with urllib.request.urlopen(f"{host.url}/healthz", timeout=5) as res:
            return res.status == 200
    except OSError:
        return False


@pytest.fixture
def tls_cert(tmp_base):
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_base / "cert.pem", tmp_base / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


# ---- (a) host mode with a worker written from the reference -------------------------------------

def test_host_serves_a_reference_python_worker(daemon, run_cli):
    host = start_host(daemon)
    worker = start_reference_worker(host.url, daemon.runtime_dir.parent / "pyworker.log")
    wait_for(lambda: "ws_hello" in muster_nodes(run_cli, daemon), 20, "ws_hello in musterd")
    wait_for(lambda: "WebSocket #1 of alice connected" in host.log, 20, "the worker's WebSocket")
    r = run_cli(daemon, "call", "ws_hello", '{"name":"Ada"}')
    assert r.returncode == 0, r.stderr + host.log + read_log(worker)
    assert json.loads(r.stdout) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}

    node = muster_nodes(run_cli, daemon)["ws_hello"]
    assert [p["name"] for p in node["inputs"]] == ["name"]
    assert [p["name"] for p in node["outputs"]] == ["greeting", "shout"]
    status, body = api("GET", f"{host.url}/api/remote_nodes", "tok-r")
    assert status == 200
    assert body == {"nodes": [{"name": "ws_hello", "inputs": ["name"], "outputs": ["greeting", "shout"]}]}
    # Registrations are per user.
    assert api("GET", f"{host.url}/api/remote_nodes", "tok-b") == (200, {"nodes": []})


# ---- (b) uplink: broker A's example worker, called from broker B through both bridges -----------

def test_uplink_through_host_bridge_over_tls(start_daemon, start_worker, run_cli, tls_cert):
    a, b = start_daemon(), start_daemon()
    start_worker(a).wait_ready()
    host = start_host(b, tls=tls_cert)
    api_url = f"https://127.0.0.1:{host.tls_port}"

    # Without the test CA the uplink must refuse the self-signed certificate.
    untrusting = start_uplink(a, api_url, name="uplink-untrusting")
    wait_for(lambda: "certificate verify failed" in read_log(untrusting), 20, "a TLS verification failure")
    stop(untrusting)

    uplink = start_uplink(a, api_url, "--ca-file", tls_cert[0])
    wait_for(lambda: {"hello", "sleep"} <= muster_nodes(run_cli, b).keys(), 20, "hello and sleep in broker B")
    wait_for(lambda: "WebSocket connected to wss://" in read_log(uplink), 20, "the uplink's wss connection")
    r = call(run_cli, b, "hello", {"name": "Ada"})
    assert r.returncode == 0, r.stderr + read_log(uplink)
    assert json.loads(r.stdout) == {"greeting": "Hello Ada", "shout": "HELLO ADA"}
    r = call(run_cli, b, "sleep", {"ms": 20})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["slept_ms"] >= 20

    # Nodes without outputs cannot be Hurozo remote nodes: the server's message is logged.
    assert "the server refused node 'echo': 400 At least one output required" in read_log(uplink)
    assert "echo" not in muster_nodes(run_cli, b)

    # A failing call has no channel in Hurozo's contract: the uplink answers with null outputs.
    r = call(run_cli, b, "sleep", {"ms": -1})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"slept_ms": None}
    assert "answering with null outputs" in read_log(uplink)


# ---- (c) expiry, reconnects, concurrency, hostile input, tokens ---------------------------------

def test_websocket_token_expiry(daemon):
    host = start_host(daemon, "--ws-token-ttl", "1")
    status, body = register(host, "ws_tok")
    assert status == 200, body
    assert body["status"] == "registered"
    assert body["websocket_url"] == f"ws://127.0.0.1:{host.port}/ws"
    assert body["inputs"] == ["name"] and body["outputs"] == ["greeting", "shout"]
    token = body["token"]

    ws = MiniWs(host.port, ws_target(token))
    assert ws.status == 101
    ws.close()

    no_token = MiniWs(host.port, "/ws")
    assert (no_token.status, no_token.body) == (401, {"error": "Missing authentication token"})
    forged = MiniWs(host.port, ws_target(token[:-2] + ("AA" if not token.endswith("AA") else "BB")))
    assert (forged.status, forged.body) == (401, {"error": "Invalid authentication token"})

    def expired():
        ws = MiniWs(host.port, ws_target(token))
        if ws.status == 101:
            ws.close()
            return None
        return ws
    refused = wait_for(expired, 10, "the WebSocket token to expire")
    assert (refused.status, refused.body) == (401, {"error": "Invalid authentication token"})
    assert "WebSocket refused: token expired" in host.log

    # Registering again hands out a fresh token.
    fresh = register(host, "ws_tok")[1]["token"]
    ws = MiniWs(host.port, ws_target(fresh))
    assert ws.status == 101
    ws.close()


def test_registration_expiry(daemon, run_cli):
    host = start_host(daemon, "--registration-ttl", "1.5")
    assert register(host, "ws_exp")[0] == 200
    wait_for(lambda: "ws_exp" in muster_nodes(run_cli, daemon), 10, "ws_exp in musterd")
    wait_for(lambda: api("GET", f"{host.url}/api/remote_nodes", "tok-w") == (200, {"nodes": []}), 15,
             "the registration to expire")
    wait_for(lambda: "ws_exp" not in muster_nodes(run_cli, daemon), 15, "ws_exp to leave musterd")
    assert "registration of remote node 'ws_exp' for alice expired" in host.log
    r = call(run_cli, daemon, "ws_exp", {"name": "x"})
    assert r.returncode == 1
    assert "NO_WORKER" in r.stderr


def test_api_tokens_and_register_errors(daemon):
    host = start_host(daemon)
    reg = f"{host.url}/api/remote_nodes/register"
    good = {"name": "n1", "inputs": [], "outputs": ["o"]}
    assert api("POST", reg, None, good) == (401, {"error": "Missing Authorization header"})
    assert api("POST", reg, "wrong", good) == (401, {"error": "Invalid API token"})
    assert api("GET", f"{host.url}/api/remote_nodes", "wrong") == (401, {"error": "Invalid API token"})
    assert api("GET", f"{host.url}/api/remote_nodes") == (401, {"error": "Missing Authorization header"})
    assert api("POST", reg, "tok-r", good) == (403, {"error": "Invalid API token"})
    assert api("GET", f"{host.url}/api/remote_nodes", "tok-r") == (200, {"nodes": []})
    assert api("POST", reg, "tok-w", {"name": "a/b", "outputs": ["o"]}) == (400, {"error": "Missing or invalid name"})
    assert api("POST", reg, "tok-w", {"name": "", "outputs": ["o"]}) == (400, {"error": "Missing or invalid name"})
    assert api("POST", reg, "tok-w", {"outputs": ["o"]}) == (400, {"error": "Missing or invalid name"})
    assert api("POST", reg, "tok-w", b"{not json") == (400, {"error": "Missing or invalid name"})
    assert api("POST", reg, "tok-w", {"name": "n", "outputs": []}) == (400, {"error": "At least one output required"})
    assert api("POST", reg, "tok-w", {"name": "n"}) == (400, {"error": "At least one output required"})
    assert api("GET", reg, "tok-w") == (405, {"error": "Method not allowed"})
    assert api("GET", f"{host.url}/nope", "tok-w") == (404, {"error": "Not found"})
    assert api("GET", f"{host.url}/api/remote_nodes", "tok-w") == (200, {"nodes": []})
    status, body = api("POST", reg, "tok-w", good)
    assert status == 200 and body["status"] == "registered"

    # An uplink with a read-only or a wrong token logs the server's message and keeps trying.
    a_proc = start_uplink(daemon, host.url, token="tok-r", name="uplink-ro")
    wrong = start_uplink(daemon, host.url, token="wrong", name="uplink-wrong")
    # (this daemon serves n1 through the host bridge, so the uplinks have something to publish)
    wait_for(lambda: "refused: 403 Invalid API token" in read_log(a_proc), 20, "the read-only refusal")
    wait_for(lambda: "refused: 401 Invalid API token" in read_log(wrong), 20, "the wrong-token refusal")
    assert a_proc.poll() is None and wrong.poll() is None


def test_websocket_hostile_input_and_output_mapping(daemon, run_cli):
    host = start_host(daemon, "--connect-grace", "0")
    status, body = register(host, "mini")
    assert status == 200
    wait_for(lambda: "mini" in muster_nodes(run_cli, daemon), 10, "mini in musterd")
    ws = MiniWs(host.port, ws_target(body["token"]))
    assert ws.status == 101
    wait_for(lambda: "WebSocket #1 of alice connected" in host.log, 10, "the WebSocket")

    ws.send("{not json")
    ws.send_json({"node": "mini", "outputs": {"greeting": "x"}, "uuid": "no-such-uuid"})
    ws.send_json(["a", "list"])
    wait_for(lambda: "unknown uuid 'no-such-uuid'" in host.log, 10, "the unknown uuid to be logged")
    assert "not JSON" in host.log

    # The connection still serves; a misnamed key gives null, extra keys are dropped.
    proc = popen_call(daemon, "mini", {"name": "Ada", "extra": [1, 2]})
    event = ws.recv_json()
    assert event["node"] == "mini"
    assert event["inputs"] == {"name": "Ada", "extra": [1, 2]}
    assert isinstance(event["uuid"], str) and event["uuid"]
    ws.send_json({"node": "mini", "outputs": {"greting": "typo", "shout": "HI", "more": 1}, "uuid": event["uuid"]})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"greeting": None, "shout": "HI"}

    # A worker that disconnects before answering fails the call with WORKER_LOST.
    proc = popen_call(daemon, "mini", {"name": "Bo"})
    assert ws.recv_json()["inputs"]["name"] == "Bo"
    ws.close()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "WORKER_LOST" in err

    # With no WebSocket connected the call fails at once (connect grace 0) with NO_WORKER.
    r = call(run_cli, daemon, "mini", {"name": "Cy"})
    assert r.returncode == 1 and "NO_WORKER" in r.stderr


def test_200_concurrent_events_through_both_bridges(start_daemon, run_cli):
    """B's client -> host B -> WebSocket -> uplink A -> broker A -> host A' -> a gate worker that
    answers nothing until it holds all 200 events, then answers them in reverse order. It can
    only finish if every hop runs the events concurrently and correlates replies by uuid."""
    n = 200
    a, b = start_daemon(), start_daemon()
    host_b = start_host(b, name="host-b")
    host_a = start_host(a, name="host-a")
    status, body = register(host_a, "gate", inputs=("i",), outputs=("i", "node"))
    assert status == 200
    gate = MiniWs(host_a.port, ws_target(body["token"]), timeout=60)
    assert gate.status == 101
    wait_for(lambda: "gate" in muster_nodes(run_cli, a), 10, "gate in broker A")
    uplink = start_uplink(a, host_b.url, "--node", "gate")
    wait_for(lambda: "gate" in muster_nodes(run_cli, b), 20, "gate in broker B")
    wait_for(lambda: "WebSocket connected" in read_log(uplink), 20, "the uplink's WebSocket")

    events = []
    failure = []

    def serve():
        try:
            while len(events) < n:
                events.append(gate.recv_json())
            for e in reversed(events):
                gate.send_json({"node": "gate", "outputs": {"i": e["inputs"]["i"], "node": e["node"]},
                                "uuid": e["uuid"]})
        except Exception as e:  # reported by the assertions below
            failure.append(repr(e))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    procs = [popen_call(b, "gate", {"i": i}) for i in range(n)]
    results = [p.communicate(timeout=90) for p in procs]
    server.join(10)
    assert not failure, failure
    assert len(events) == n and len({e["uuid"] for e in events}) == n
    for i, (p, (out, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 0, err
        assert json.loads(out) == {"i": i, "node": "gate"}


def test_uplink_reconnects_after_the_host_restarts(start_daemon, start_worker, run_cli):
    a, b = start_daemon(), start_daemon()
    start_worker(a).wait_ready()
    host = start_host(b)
    uplink = start_uplink(a, host.url, "--node", "hello")
    wait_for(lambda: "hello" in muster_nodes(run_cli, b), 20, "hello in broker B")
    wait_for(lambda: "WebSocket connected" in read_log(uplink), 20, "the uplink's WebSocket")
    assert call(run_cli, b, "hello", {"name": "one"}).returncode == 0

    # A restarted host knows no registrations and signs with a new secret: the uplink must
    # reconnect with backoff, register again and fetch a fresh token.
    stop(host.proc)
    wait_for(lambda: "reconnecting in" in read_log(uplink), 20, "the uplink to notice")
    host2 = start_host(b, port=host.port, name="host2")
    wait_for(lambda: "WebSocket #1 of alice connected" in host2.log, 30, "the uplink to reconnect")
    wait_for(lambda: "hello" in muster_nodes(run_cli, b), 20, "hello back in broker B")
    r = call(run_cli, b, "hello", {"name": "two"})
    assert r.returncode == 0, r.stderr + read_log(uplink)
    assert json.loads(r.stdout) == {"greeting": "Hello two", "shout": "HELLO TWO"}
    assert read_log(uplink).count("WebSocket connected") >= 2


def test_uplink_answers_events_and_survives_garbage(daemon, start_worker):
    start_worker(daemon).wait_ready()
    token = "tok+en/with=specials"
    # The test waits for the uplink's "registered 'sleep'" so that every event below is served at
    # once (events that come while sleep's registration is on its way are held: the next test).
    fake = FakeHurozo(token)
    try:
        uplink = start_uplink(daemon, fake.url, "--node", "hello", "--node", "sleep")
        ws = uplink_connection(fake, uplink)
        # The token travels URL-encoded; nodes register with their port names.
        assert fake.ws_targets[0] == "/Prod?auth=tok%2Ben%2Fwith%3Dspecials"
        assert {"name": "hello", "inputs": ["name"], "outputs": ["greeting", "shout"]} in fake.registrations
        wait_for(lambda: "registered 'sleep'" in read_log(uplink), 10, "the uplink to register sleep")
        assert {"name": "sleep", "inputs": ["ms"], "outputs": ["slept_ms"]} in fake.registrations, read_log(uplink)
        assert not any(r["name"] == "echo" for r in fake.registrations)  # not selected

        ws.send("{not json")
        ws.send_json(["not", "an", "object"])
        ws.send_json({"node": "hello", "inputs": {"name": "x"}})           # no uuid
        ws.send_json({"node": "echo", "inputs": {}, "uuid": "not-ours"})   # not published here
        ws.send_json({"node": "hello", "inputs": {"name": "Ada"}, "uuid": "u-1"})
        assert uplink_message(ws, uplink) == {"node": "hello", "outputs": {"greeting": "Hello Ada", "shout": "HELLO ADA"},
                                              "uuid": "u-1"}, read_log(uplink)
        # A failed call is answered at once with null outputs.
        ws.send_json({"node": "sleep", "inputs": {"ms": -5}, "uuid": "u-2"})
        assert uplink_message(ws, uplink) == {"node": "sleep", "outputs": {"slept_ms": None}, "uuid": "u-2"}, \
            read_log(uplink)
        # An answer longer than a WebSocket frame (the uplink sends it in several) arrives whole.
        name = "A" * 10000
        ws.send_json({"node": "hello", "inputs": {"name": name}, "uuid": "u-3"})
        assert uplink_message(ws, uplink) == {"node": "hello", "uuid": "u-3", "outputs": {
            "greeting": f"Hello {name}", "shout": f"HELLO {name}"}}, read_log(uplink)
        log = read_log(uplink)
        assert "not JSON" in log and "not a JSON object" in log, log
        assert "event u-2 for 'sleep' failed: INVALID_REQUEST" in log, log
        stop(uplink)
        log = read_log(uplink)
        assert "3 received, 2 answered with outputs, 1 answered with nulls (INVALID_REQUEST=1); 1 ignored" in log, log
    finally:
        fake.close()


def test_uplink_holds_events_while_a_registration_is_on_its_way(daemon, start_worker):
    """The server has accepted sleep's registration but the uplink has not read the answer yet
    (the fake holds it back until the test lets it go): events for sleep that come meanwhile
    are held, then served once the registration succeeds, in arrival order, a repeated uuid
    once (docs/BRIDGE.md, "Events"). Before holding, they were ignored and never answered."""
    start_worker(daemon).wait_ready()
    answer_sleep = threading.Event()
    fake = FakeHurozo("tok", answer_delay={"sleep": answer_sleep})
    try:
        uplink = start_uplink(daemon, fake.url, "--node", "hello", "--node", "sleep")
        ws = uplink_connection(fake, uplink)  # hello's token
        wait_for(lambda: any(r["name"] == "sleep" for r in fake.registrations), 20, "sleep's registration request")
        ws.send_json({"node": "sleep", "inputs": {"ms": 1}, "uuid": "u-1"})
        ws.send_json({"node": "sleep", "inputs": {"ms": 2}, "uuid": "u-2"})
        ws.send_json({"node": "sleep", "inputs": {"ms": 3}, "uuid": "u-1"})  # repeated while held
        wait_for(lambda: "ignoring a repeated event u-1" in read_log(uplink), 20, "the events to be held")
        log = read_log(uplink)
        assert "holding event u-1 for 'sleep'" in log and "holding event u-2 for 'sleep'" in log, log
        assert "registered 'sleep'" not in log, log
        answer_sleep.set()
        # Both answers, and nothing more until the uplink stops: the repeated u-1 is served once.
        answers = messages_until_stopped(ws, uplink, first=2)
        log = read_log(uplink)
        assert sorted(a["uuid"] for a in answers) == ["u-1", "u-2"], f"{answers}\n{log}"
        for a in answers:
            assert a["node"] == "sleep" and isinstance(a["outputs"]["slept_ms"], int), a
        assert log.index("event u-1 for 'sleep' submitted") < log.index("event u-2 for 'sleep' submitted"), log
        assert ("2 received, 2 answered with outputs, 0 answered with nulls; 0 ignored, 1 duplicate(s), 0 bad "
                "message(s); 2 held for a registration on its way (2 then served, 0 then ignored)") in log, log
    finally:
        answer_sleep.set()
        fake.close()


def test_uplink_ignores_held_events_when_the_registration_is_refused(daemon, start_worker):
    """An event held while sleep's registration is on its way is ignored, unanswered, when the
    server refuses that registration (another worker of the user may serve sleep)."""
    start_worker(daemon).wait_ready()
    answer_sleep = threading.Event()
    fake = FakeHurozo("tok", answer_delay={"sleep": answer_sleep}, refuse={"sleep": "Name taken"})
    try:
        uplink = start_uplink(daemon, fake.url, "--node", "hello", "--node", "sleep")
        ws = uplink_connection(fake, uplink)
        wait_for(lambda: any(r["name"] == "sleep" for r in fake.registrations), 20, "sleep's registration request")
        ws.send_json({"node": "sleep", "inputs": {"ms": 1}, "uuid": "u-held"})
        wait_for(lambda: "holding event u-held for 'sleep'" in read_log(uplink), 20, "the event to be held")
        answer_sleep.set()
        wait_for(lambda: "ignoring event u-held for 'sleep': held" in read_log(uplink), 20, "the held event's fate")
        log = read_log(uplink)
        assert "the server refused its registration: Name taken" in log, log
        log = only_hello_is_answered(ws, uplink, "sleep", "u-later")  # no longer held: ignored at once
        assert "1 received, 1 answered with outputs, 0 answered with nulls; 2 ignored" in log, log
        assert "1 held for a registration on its way (0 then served, 1 then ignored)" in log, log
    finally:
        answer_sleep.set()
        fake.close()


# ---- (d) hardening: floods, dead workers, what the uplink answers ------------------------------

def test_host_under_descriptor_exhaustion(daemon):
    """140 half-open requests against a host limited to 128 descriptors: accepting fails with
    EMFILE. The bridge must pause instead of spinning, log that at most once a second, close
    the half-open connections after --header-timeout and then serve again."""
    if not shutil.which("prlimit"):
        pytest.skip("needs prlimit (util-linux)")
    # --max-connections above the descriptor limit, so that accepting really fails (EMFILE);
    # --capacity 16 so that the bridge's muster worker fits in 128 descriptors.
    host = start_host(daemon, "--max-connections-per-ip", "0", "--max-connections", "1000", "--capacity", "16",
                      "--header-timeout", "6", prefix=("prlimit", "--nofile=128", "--"), log_level="info")
    conns = [half_open(host.port) for _ in range(140)]
    wait_for(lambda: "accept failed" in host.log, 20, "the bridge to run out of descriptors")
    before = cpu_seconds(host.proc.pid)
    time.sleep(3)
    used = cpu_seconds(host.proc.pid) - before
    log = host.log
    assert host.proc.poll() is None, log
    assert used < 0.5, f"{used} CPU seconds in 3 s while out of descriptors"
    assert log.count("\n") < 100 and len(log) < 32 * 1024, log[-4000:]
    assert "Too many open files" in log

    # Every half-open connection is closed by the bridge (--header-timeout 6), the ones that
    # waited in the backlog too; then a normal request is served again.
    assert all(closed_by_server(c, 60) for c in conns)
    wait_for(lambda: healthy(host), 30, "the bridge to serve /healthz again")
    assert register(host, "after_flood")[0] == 200
    for c in conns:
        c.close()
    stop(host.proc)
    assert host.proc.returncode == 0, host.log[-4000:]
    timed_out = re.search(r"(\d+) without a complete request in time", host.log)
    assert timed_out and int(timed_out.group(1)) >= 140, host.log[-2000:]


def test_host_keeps_descriptors_for_its_worker(daemon, run_cli):
    """By default connections may use the descriptor limit less what the bridge's muster
    worker needs, so a flood cannot starve the worker: it still starts (one descriptor per
    handler thread) when the first registration arrives during the flood."""
    if not shutil.which("prlimit"):
        pytest.skip("needs prlimit (util-linux)")
    host = start_host(daemon, "--capacity", "16", "--max-connections-per-ip", "0", "--header-timeout", "60",
                      prefix=("prlimit", "--nofile=128", "--"), log_level="info")
    budget = int(re.search(r"(\d+) in all", host.log).group(1))  # 128 - 16 - 64
    conns = [half_open(host.port) for _ in range(110)]
    wait_for(lambda: "connections are open in all" in host.log, 20, "the connection budget to be used up")
    # Every connection past the budget is closed at once (wait for all of them: one accepted
    # after we free places below would take a place again), the first `budget` stay open.
    wait_for(lambda: sum(map(is_closed, conns)) == len(conns) - budget, 20, "the refusals")
    assert not any(map(is_closed, conns[:budget]))
    for c in conns[:10]:
        c.close()

    def registered():
        try:
            return register(host, "flood_node")[0] == 200
        except OSError:  # refused while the budget is still full
            return False
    wait_for(registered, 30, "a registration to get through")
    wait_for(lambda: "flood_node" in muster_nodes(run_cli, daemon) or host.proc.poll() is not None, 20,
             "the bridge's worker to attach")
    assert host.proc.poll() is None, host.log[-4000:]
    assert "flood_node" in muster_nodes(run_cli, daemon)
    for c in conns:
        c.close()


def test_host_caps_connections_per_address(daemon):
    host = start_host(daemon, "--max-connections-per-ip", "4", "--header-timeout", "60")
    held = [half_open(host.port) for _ in range(4)]
    # The fifth connection from 127.0.0.1 is closed at once, unanswered.
    fifth = socket.create_connection(("127.0.0.1", host.port), timeout=10)
    try:
        fifth.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    except OSError:
        pass  # already closed
    assert closed_by_server(fifth, 20)
    wait_for(lambda: "refused a connection from 127.0.0.1: it has 4 open" in host.log, 10, "the refusal")
    # The four held ones are served.
    held[0].sendall(b"\r\n")
    held[0].settimeout(10)
    assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
    # A closed connection frees its place.
    held[1].close()
    wait_for(lambda: healthy(host), 20, "a place for a new connection")
    for c in held:
        c.close()


def test_host_dead_worker_fails_fast_while_another_stays(daemon, run_cli):
    """Two Hurozo workers of one user, each with its own node. Worker A dies mid-call: the call
    fails WORKER_LOST at once (not after its deadline, though worker B is still connected);
    later calls of A's node get NO_WORKER after the connect grace; B's node keeps working."""
    host = start_host(daemon, "--connect-grace", "1")
    status_a, body_a = register(host, "node_a")
    status_b, body_b = register(host, "node_b")
    assert status_a == status_b == 200
    wait_for(lambda: {"node_a", "node_b"} <= muster_nodes(run_cli, daemon).keys(), 10, "both nodes in musterd")
    worker_a = MiniWs(host.port, ws_target(body_a["token"]))
    worker_b = MiniWs(host.port, ws_target(body_b["token"]))
    assert worker_a.status == worker_b.status == 101
    wait_for(lambda: "WebSocket #2 of alice connected" in host.log, 10, "both WebSockets")

    def next_event_for(ws: MiniWs, node: str):
        while True:  # like a Hurozo worker: ignore events for other nodes
            event = ws.recv_json()
            if event is None or event["node"] == node:
                return event

    # popen_call's deadline is 60 s and the node's default 600 s: only a fast failure passes.
    caller = popen_call(daemon, "node_a", {"name": "x"})
    assert next_event_for(worker_a, "node_a")["inputs"] == {"name": "x"}
    worker_a.sock.close()  # dies without a close frame
    out, err = caller.communicate(timeout=30)
    assert caller.returncode == 1 and "WORKER_LOST" in err, out + err

    r = call(run_cli, daemon, "node_a", {"name": "y"}, timeout=30)
    assert r.returncode == 1 and "NO_WORKER" in r.stderr, r.stdout + r.stderr
    assert "disconnected and no other connection serves it" in r.stderr

    caller = popen_call(daemon, "node_b", {"name": "z"})
    event = next_event_for(worker_b, "node_b")
    worker_b.send_json({"node": "node_b", "outputs": {"greeting": "hi z"}, "uuid": event["uuid"]})
    out, err = caller.communicate(timeout=30)
    assert caller.returncode == 0, err
    assert json.loads(out) == {"greeting": "hi z", "shout": None}
    worker_b.close()


def test_uplink_ignores_events_for_nodes_it_did_not_register(daemon, start_worker):
    """The server refuses `echo` (no outputs); another worker of the same user may serve that
    name, so the uplink must not answer its events (an instant `{}` would win the race)."""
    start_worker(daemon).wait_ready()
    fake = FakeHurozo("tok")
    try:
        uplink = start_uplink(daemon, fake.url, "--node", "hello", "--node", "echo")
        ws = uplink_connection(fake, uplink)
        wait_for(lambda: "the server refused node 'echo'" in read_log(uplink), 20, "the refusal of echo")
        log = only_hello_is_answered(ws, uplink, "echo", "u-echo")
        assert "1 ignored" in log, log
    finally:
        fake.close()


def test_uplink_answers_open_events_before_closing_on_sigterm(daemon, start_worker):
    start_worker(daemon).wait_ready()
    fake = FakeHurozo("tok")
    try:
        uplink = start_uplink(daemon, fake.url, "--node", "sleep")
        ws = uplink_connection(fake, uplink)
        ws.send_json({"node": "sleep", "inputs": {"ms": 30000}, "uuid": "u-slow"})
        wait_for(lambda: "event u-slow for 'sleep' submitted" in read_log(uplink), 20, "the event in musterd")
        stop(uplink)
        # The null answer the log promises reaches the server, then the close.
        assert uplink_message(ws, uplink) == {"node": "sleep", "outputs": {"slept_ms": None}, "uuid": "u-slow"}, \
            read_log(uplink)
        assert uplink_message(ws, uplink) is None, read_log(uplink)
        log = read_log(uplink)
        assert "event u-slow for 'sleep' failed: CANCELLED" in log and "answering with null outputs" in log, log
        assert "not sent" not in log and "unwritten" not in log, log
    finally:
        fake.close()
