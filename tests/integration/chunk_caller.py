"""A raw caller of chunked values (PROTOCOL.md §7.9), for tests of an SDK's worker side.

It speaks the wire by hand (chunk_peers.RawClient, the Python SDK's codec), so a test of a worker
SDK depends on no client SDK: it uploads the chunked inputs of one call within the worker's
credit, reads the chunked outputs granting 4 MiB ahead of what it read, and returns the terminal
reply with what each output stream brought (size, sha256). A `tick` callback runs on every turn,
for a test that cancels or kills something mid-stream.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

from muster import messages as m
from muster.values import ChunkedValue
from chunk_peers import CHUNK, WINDOW, MiB, RawClient, block

__all__ = ["Upload", "Outcome", "call_chunked", "blocks_sha256", "RawClient", "MiB", "WINDOW"]


def blocks_sha256(n: int) -> bytes:
    """The sha256 of block(0) … block(n-1) (chunk_peers.block: 1 MiB each)."""
    sha = hashlib.sha256()
    for i in range(n):
        sha.update(block(i))
    return sha.digest()


@dataclass
class Upload:
    """A chunked input of `mib` MiB, the chunk_peers blocks 0 … mib-1, on caller stream `stream`.
    `sha256` overrides the true digest in the reference (a corrupted value)."""
    mib: int
    stream: int = 1
    sha256: bytes | None = None

    def reference(self) -> ChunkedValue:
        return ChunkedValue(self.stream, self.mib * MiB, self.sha256 or blocks_sha256(self.mib))


@dataclass
class Outcome:
    reply: object = None                                  # the terminal reply (Result/Failure), or None
    sent: dict[int, int] = field(default_factory=dict)    # input stream -> bytes sent
    received: dict[int, int] = field(default_factory=dict)  # output stream -> bytes received
    digests: dict[int, "hashlib._Hash"] = field(default_factory=dict)
    credits: list = field(default_factory=list)           # the Credits the worker granted, in order

    def digest(self, stream: int) -> bytes:
        return self.digests[stream].digest()


def call_chunked(client: RawClient, rid: int, node: str, inputs: dict, uploads: dict[str, Upload] | None = None,
                 chunk_window: int = WINDOW, timeout: float = 60, grant_outputs: bool = True,
                 tick: Callable[[Outcome], None] | None = None, timeout_ms: int = 120_000) -> Outcome:
    """Submits `node` with `inputs` plus the chunked `uploads`, sends their chunks as the worker
    grants, reads output chunks (granting more only if `grant_outputs`), until the terminal reply
    or `timeout` s without one."""
    uploads = uploads or {}
    all_inputs = dict(inputs)
    for port, up in uploads.items():
        all_inputs[port] = up.reference()
    client.send(rid, m.Submit(node, all_inputs, None, timeout_ms, chunk_window_bytes=chunk_window))
    out = Outcome()
    granted_in: dict[int, int] = {}
    granted_out: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while out.reply is None and time.monotonic() < deadline:
        for up in uploads.values():
            sent = out.sent.get(up.stream, 0)
            while sent < up.mib * MiB and sent + CHUNK <= granted_in.get(up.stream, 0):
                client.send(rid, m.Chunk(rid, up.stream, sent, block(sent // CHUNK)))
                sent += CHUNK
            out.sent[up.stream] = sent
        if tick:
            tick(out)
        r = client.next_reply(0.2)
        if r is None:
            continue
        if isinstance(r, m.Credit):
            out.credits.append(r)
            granted_in[r.stream] = max(granted_in.get(r.stream, 0), r.bytes)
        elif isinstance(r, m.Chunk):
            got = out.received.get(r.stream, 0)
            assert r.offset == got, f"stream {r.stream}: a chunk at {r.offset}, expected {got}"
            out.digests.setdefault(r.stream, hashlib.sha256()).update(r.data)
            got += len(r.data)
            out.received[r.stream] = got
            g = granted_out.setdefault(r.stream, chunk_window)
            if grant_outputs and got + WINDOW - g >= MiB:
                granted_out[r.stream] = got + WINDOW
                client.send(rid, m.Credit(rid, r.stream, 0, got + WINDOW))
        elif isinstance(r, (m.Result, m.Failure)):
            out.reply = r
    return out
