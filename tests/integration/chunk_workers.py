"""chunk_workers.py — raw worker peers for chunked values (PROTOCOL.md §7.9), built on
chunk_peers.py's RawWorker:
they speak the wire by hand, so a test of one SDK's caller side does not depend on an SDK's
worker side. Each `*_worker` function serves every WorkRequest of one RawWorker until `stop` is
set, appending what goes wrong to `errors` (the test asserts it stays empty).

  receive_stream(w, rid, ref, stop)          read a chunked input, granting credit as it goes
  send_stream(w, rid, stream, data, granted) send bytes as a chunked output within the credit
  hash_worker        input data (inline or chunked) -> {"hex": sha256 hex, "size": n}
  output_worker      sends `make(inputs)` bytes as chunked output "data" (optionally a wrong sha256)
  output_worker_inline  answers every call with the given outputs, inline
  stall_worker       takes 2 MiB of input and sends 2 MiB of output, then waits for its Abort
"""
from __future__ import annotations

import hashlib
import threading

from muster import messages as m
from muster.values import ChunkedValue

from chunk_peers import CHUNK, WINDOW, MiB, RawClient, RawWorker, vm_hwm_kib  # noqa: F401 (re-exported)
from test_chunks import echo_worker  # noqa: F401 (re-exported)


def receive_stream(w: RawWorker, rid: int, ref: ChunkedValue, stop: threading.Event, window: int = WINDOW):
    """The sha256 object and the byte count of input stream `ref`, or None when the call was
    aborted (or `stop` set) first. Credit: one window ahead of what was read."""
    w.send(m.Credit(rid, ref.stream, 0, min(window, ref.size)))
    granted, got, sha = window, 0, hashlib.sha256()
    while got < ref.size:
        if stop.is_set():
            return None
        msg = w.next_published(0.1)
        if isinstance(msg, m.Abort) and msg.request_id == rid:
            return None
        if isinstance(msg, m.Chunk) and msg.request_id == rid and msg.stream == ref.stream:
            assert msg.offset == got, f"chunk at {msg.offset}, expected {got}"
            sha.update(msg.data)
            got += len(msg.data)
            if got < ref.size and got + window - granted >= MiB:
                granted = got + window
                w.send(m.Credit(rid, ref.stream, 0, min(granted, ref.size)))
    return sha, got


def send_stream(w: RawWorker, rid: int, stream: int, data: bytes, granted: int, stop: threading.Event) -> bool:
    """Sends `data` as the chunks of output `stream`, never past the caller's credit; False when
    the call was aborted (or `stop` set) before all of it went."""
    sent = 0
    while sent < len(data):
        while sent < len(data) and sent < granted:
            n = min(CHUNK, len(data) - sent, granted - sent)
            w.send(m.Chunk(rid, stream, sent, data[sent:sent + n]))
            sent += n
        if sent == len(data):
            break
        if stop.is_set():
            return False
        msg = w.next_published(0.1)
        if isinstance(msg, m.Abort) and msg.request_id == rid:
            return False
        if isinstance(msg, m.Credit) and msg.request_id == rid and msg.stream == stream:
            granted = max(granted, msg.bytes)
    return True


def hash_worker(w: RawWorker, stop: threading.Event, errors: list, seen: list | None = None) -> None:
    """Answers {"hex", "size"} of its input "data", read chunk by chunk when chunked (memory: one
    window); `seen` gets ("chunked" | "inline", size) per call."""
    try:
        while not stop.is_set():
            msg = w.next_published(0.1)
            if not isinstance(msg, m.WorkRequest):
                continue
            rid, data = msg.request_id, msg.inputs.get("data")
            if isinstance(data, ChunkedValue):
                got = receive_stream(w, rid, data, stop)
                if got is None:
                    continue
                sha, size = got
                if sha.digest() != data.sha256:
                    w.send(m.Failure(rid, m.ErrorCode.INVALID_REQUEST, f"input data: chunked stream {data.stream}: sha256 mismatch"))
                    continue
                kind = "chunked"
            else:
                sha, size, kind = hashlib.sha256(data), len(data), "inline"
            if seen is not None:
                seen.append((kind, size))
            w.send(m.Result(rid, {"hex": sha.hexdigest(), "size": size}))
    except Exception as e:  # reported by the test
        errors.append(e)


def output_worker(w: RawWorker, stop: threading.Event, errors: list, make, wrong_sha256: bool = False) -> None:
    """Sends make(inputs) as the chunked output "data" (stream 2) within the caller's credit, then
    the Result referring to it: with the true sha256, or a wrong one (the last byte flipped)."""
    try:
        while not stop.is_set():
            msg = w.next_published(0.1)
            if not isinstance(msg, m.WorkRequest):
                continue
            rid, data = msg.request_id, make(msg.inputs)
            assert msg.chunk_window_bytes > 0, "the caller offered no window for chunked outputs"
            if not send_stream(w, rid, 2, data, msg.chunk_window_bytes, stop):
                continue
            digest = bytearray(hashlib.sha256(data).digest())
            if wrong_sha256:
                digest[-1] ^= 1
            w.send(m.Result(rid, {"data": ChunkedValue(2, len(data), bytes(digest))}))
    except Exception as e:
        errors.append(e)


def output_worker_inline(w: RawWorker, stop: threading.Event, errors: list, outputs: dict) -> None:
    """Answers every call with `outputs`, inline."""
    try:
        while not stop.is_set():
            msg = w.next_published(0.1)
            if isinstance(msg, m.WorkRequest):
                w.send(m.Result(msg.request_id, outputs))
    except Exception as e:
        errors.append(e)


def stall_worker(w: RawWorker, stop: threading.Event, errors: list, aborts: list, windows: list) -> None:
    """Grants 2 MiB of its chunked input "data" and sends 2 MiB of chunked output on stream 2, then
    neither grants nor sends more: the call hangs mid-stream in both directions until it is
    aborted (`aborts` gets the Abort's code, once per call: a Pong that crossed the Abort on the
    way listed the call again, and musterd sends such a Pong the Abort again, PROTOCOL.md §7.4).
    `windows` gets each WorkRequest's chunk window."""
    aborted: set[int] = set()
    try:
        while not stop.is_set():
            msg = w.next_published(0.1)
            if isinstance(msg, m.Abort):
                if msg.request_id not in aborted:
                    aborted.add(msg.request_id)
                    aborts.append(msg.code)
                continue
            if not isinstance(msg, m.WorkRequest):
                continue
            windows.append(msg.chunk_window_bytes)
            ref = msg.inputs["data"]
            w.send(m.Credit(msg.request_id, ref.stream, 0, 2 * MiB))
            w.send(m.Chunk(msg.request_id, 2, 0, b"z" * MiB))
            w.send(m.Chunk(msg.request_id, 2, MiB, b"z" * MiB))
    except Exception as e:
        errors.append(e)


class Served:
    """A RawWorker with one of the functions above serving it on a thread; close() stops both."""

    def __init__(self, daemon, worker_id: str, node: str, serve, *args):
        self.worker = RawWorker(daemon, worker_id, node)
        self.stop = threading.Event()
        self.errors: list = []
        self.thread = threading.Thread(target=serve, args=(self.worker, self.stop, self.errors, *args), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.worker.close()
