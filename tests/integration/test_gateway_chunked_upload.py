"""An uploaded file larger than one message reaches a worker through the gateway (docs/GATEWAY.md
"Using a file in a call", PROTOCOL.md §7.9): the gateway's C++ client sends it chunked straight
from the upload on disk, with the upload's sha256, so neither the gateway nor musterd holds it; a
raw Python worker (chunk_workers.hash_worker) hashes what it receives, chunk by chunk.

MUSTER_LONG=1 also runs the 2 GiB upload (MUSTER_UPLOAD_MIB sets its size) and prints its times
and the peak RSS of musterd and the gateway (tools/bench/gateway_upload.sh runs it).
Every wait is bounded; everything started here is killed by conftest's autouse fixture.
"""
from __future__ import annotations

import base64
import hashlib
import os
import threading
import time

import pytest

from conftest import wait_for
from chunk_workers import MiB, Served, hash_worker, vm_hwm_kib
from test_gateway import DEFAULT_USERS, Gateway, add_user

CHUNK = MiB  # upload chunk (small, so that the gateway's peak memory shows what the call adds)


def pattern_chunks(size: int, seed: int = 3):
    """The file's bytes as CHUNK-sized pieces, made on the fly (a 2 GiB file is never held)."""
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    for i, at in enumerate(range(0, size, CHUNK)):
        yield (i.to_bytes(8, "little") + block)[:min(CHUNK, size - at)]


def upload(ws, size: int) -> tuple[str, str]:
    """Uploads a `size`-byte file over the WebSocket; (its file_hash, the sha256 hex we computed)."""
    total_chunks = -(-size // CHUNK)
    ws.send("file.upload.start", {"filename": "big.bin", "total_size": size, "total_chunks": total_chunks,
                                  "chunk_size": CHUNK})
    sid = ws.wait("file.upload.progress")["payload"]["session_id"]
    sha = hashlib.sha256()
    for i, piece in enumerate(pattern_chunks(size)):
        sha.update(piece)
        ws.send("file.upload.chunk", {"session_id": sid, "chunk_index": i, "data": base64.b64encode(piece).decode()})
        ws.wait("file.upload.progress", timeout=60)
    done = ws.wait("file.upload.complete", timeout=60)["payload"]
    assert done["file_hash"] == "sha256:" + sha.hexdigest()
    return done["file_hash"], sha.hexdigest()


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class RssSampler:
    """The highest VmRSS of `pid` sampled every 20 ms while the block runs. (Not the gateway's
    VmHWM: logging in hashes the password with Argon2, a 64 MiB peak of its own.)"""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, vm_rss_kib(self.pid))
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, vm_rss_kib(self.pid))


def call(ws, inputs: dict, ref: str, timeout: float = 120):
    ws.send("execution.start", {"node": "hash", "inputs": inputs, "client_ref": ref, "timeout_ms": int(timeout * 1000)})
    return ws.wait("execution.updated", lambda p: p["client_ref"] == ref and p["status"] not in ("pending", "running"),
                   timeout=timeout + 10)["payload"]


@pytest.fixture
def setup(daemon, tmp_base):
    seen: list = []
    worker = Served(daemon, "raw-hash", "hash", hash_worker, seen)
    started: list[Gateway] = []

    def start(*args) -> Gateway:
        gw = Gateway(daemon, tmp_base, *args)
        for user in DEFAULT_USERS:
            add_user(gw.data_dir, *user)
        started.append(gw.start())
        return gw
    yield start, seen
    worker.close()
    assert not worker.errors, worker.errors


def test_a_40_mib_upload_is_sent_chunked_from_disk_to_a_worker(daemon, setup):
    start, seen = setup
    gw = start()
    size = 40 * MiB + 777  # over musterd's 16 MiB message limit
    token = gw.login()
    with gw.ws(token) as ws:
        ref, digest = upload(ws, size)
        with RssSampler(gw.proc.pid) as gw_rss:
            r = call(ws, {"data": {"$file": ref}, "note": "x"}, "big")
        assert r["status"] == "completed", r
        assert r["outputs"] == {"hex": digest, "size": size}
        assert seen == [("chunked", size)]
        # The same by REST.
        status, body, _ = gw.request("POST", "/api/nodes/hash/call", {"inputs": {"data": {"$file": ref}}}, token=token)
        assert status == 200 and body["outputs"] == {"hex": digest, "size": size}, body
        # Inside a list or map it cannot travel chunked: refused, saying why.
        ws.send("execution.start", {"node": "hash", "inputs": {"data": [{"$file": ref}]}, "client_ref": "nested"})
        err = ws.wait("error", lambda p: p.get("client_ref") == "nested")["payload"]
        assert err["code"] == "INVALID_REQUEST" and "must be a top-level input" in err["error"], err
        # The file changed on disk after its upload (same size): the worker's sha256 check fails the
        # call; shorter: the gateway refuses it before calling.
        path = next(p for p in (gw.data_dir / "uploads" / "files").iterdir() if not p.name.endswith(".json"))
        with open(path, "r+b") as f:
            f.seek(20 * MiB)
            f.write(b"\xff")
        r = call(ws, {"data": {"$file": ref}}, "changed")
        assert r["status"] == "failed" and r["error"]["code"] == "INVALID_REQUEST", r
        assert r["error"]["message"] == "input data: chunked stream 1: sha256 mismatch"
        os.truncate(path, size - 1)
        ws.send("execution.start", {"node": "hash", "inputs": {"data": {"$file": ref}}, "client_ref": "short"})
        err = ws.wait("error", lambda p: p.get("client_ref") == "short")["payload"]
        assert "cannot be read back intact" in err["error"], err
    d_kib = vm_hwm_kib(daemon.proc.pid)
    print(f"40 MiB upload and calls: musterd VmHWM {d_kib} KiB, gateway VmRSS during the call at most {gw_rss.peak} KiB")
    assert d_kib < 64 * 1024, f"musterd's peak RSS was {d_kib} KiB (bound: 64 MiB)"
    assert gw_rss.peak < 32 * 1024, f"the gateway's RSS reached {gw_rss.peak} KiB during the call: did it hold the file?"


def test_max_file_input_bytes_still_bounds_what_a_call_may_take(daemon, setup):
    start, _ = setup
    gw = start("--max-file-input-bytes", str(10 * MiB))
    with gw.ws(gw.login()) as ws:
        ref, _ = upload(ws, 10 * MiB + 1)
        ws.send("execution.start", {"node": "hash", "inputs": {"data": {"$file": ref}}, "client_ref": "over"})
        err = ws.wait("error", lambda p: p.get("client_ref") == "over")["payload"]
        assert "a call takes files of at most 10485760 bytes (--max-file-input-bytes)" in err["error"], err


@pytest.mark.skipif(os.environ.get("MUSTER_LONG") != "1", reason="the 2 GiB upload runs with MUSTER_LONG=1")
def test_a_2_gib_upload_reaches_a_worker(daemon, setup):
    start, seen = setup
    size = int(os.environ.get("MUSTER_UPLOAD_MIB", "2048")) * MiB
    limit = str(size + MiB)
    gw = start("--upload-max-file-bytes", limit, "--upload-quota-bytes", limit, "--upload-total-bytes", limit)
    with gw.ws(gw.login()) as ws:
        t0 = time.monotonic()
        ref, digest = upload(ws, size)
        t1 = time.monotonic()
        with RssSampler(gw.proc.pid) as gw_rss:
            r = call(ws, {"data": {"$file": ref}}, "huge", timeout=1800)
        t2 = time.monotonic()
    assert r["status"] == "completed" and r["outputs"] == {"hex": digest, "size": size}, r
    d_kib = vm_hwm_kib(daemon.proc.pid)
    print(f"\n{size // MiB} MiB: upload {t1 - t0:.1f} s, call (gateway -> musterd -> worker, hashed) {t2 - t1:.1f} s "
          f"({size / MiB / (t2 - t1):.0f} MiB/s); musterd VmHWM {d_kib} KiB, gateway VmRSS during the call at most "
          f"{gw_rss.peak} KiB")
    assert d_kib < 64 * 1024
    assert gw_rss.peak < 64 * 1024
