#!/usr/bin/env python3
"""example_worker.py — the Python example worker: the C++ example's nodes, plus two that do real
work with Python's standard library.

    echo   outputs = inputs, of any size: a bytes input over 8 MiB arrives in chunks (assembled
           and checked before the handler runs) and goes back in chunks (docs/STREAMS.md §3)
    hello  {name} -> {greeting: "Hello <name>", shout: "HELLO <NAME>"}; empty or missing -> "world"
    sleep  {ms} -> {slept_ms}; reports progress; stops on abort (an async handler)
    fail   {message} -> fails with WORKER_ERROR carrying the message
    stats  {values: [numbers]} -> {count, mean, median, stdev, min, max} (statistics)
    hash   {data: string|bytes, algorithm: "sha256"} -> {hex, size} (hashlib)
    checksum {data: bytes} -> {size, sha256} (a bytes input: the dashboard's file upload)
    sha256 {data: bytes} -> {hex}: reads its input as a stream (ctx.input_stream), so a
           2 GiB input is hashed in bounded memory
    count  {n, delay_ms, pad} -> items {i: 0}, {i: 1}, ... {i: n-1}, then {count: n}, as the C++
           example's (a generator: call it with client.stream or `muster call --stream`; the
           caller's credit paces it); waits delay_ms before each item, which carries `pad` zero
           bytes if pad > 0; stops on abort

Run it next to the C++ example worker with a prefix, so the names do not collide:

    python worker/examples/python/example_worker.py --prefix py.
    muster call py.hello '{"name": "Ada"}'

Needs the SDK: pip install ./worker/python
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import math
import statistics
import sys
import time

import muster
from muster.worker.cli import add_worker_arguments, run_worker, setup_logging, worker_from_args

log = logging.getLogger("example")


def declare_nodes(worker: muster.Worker, prefix: str = "") -> None:
    @worker.node(
        name=prefix + "echo",
        description="Returns its inputs unchanged.",
        category="examples",
        version="1.0.0",
        idempotent=True,
    )
    def echo(ctx):
        return dict(ctx.inputs)

    @worker.node(
        name=prefix + "hello",
        description="Greets someone, as Hurozo's hello-world remote node.",
        category="examples",
        version="1.0.0",
        inputs=[muster.Port("name", "any", "who to greet")],
        outputs={"greeting": "string", "shout": "string"},
        idempotent=True,
    )
    def hello(ctx):
        name = ctx.inputs.get("name")
        if not isinstance(name, str) or not name:
            name = "world"
        return {"greeting": f"Hello {name}", "shout": f"HELLO {name.upper()}"}

    @worker.node(
        name=prefix + "sleep",
        description="Sleeps for `ms` milliseconds, reporting progress; stops early on abort.",
        category="examples",
        version="1.0.0",
        inputs={"ms": {"type": "int", "required": True}},
        outputs={"slept_ms": "int"},
    )
    async def sleep(ctx):
        ms = ctx.inputs["ms"]
        if ms < 0:
            raise muster.InvalidRequest("ms must not be negative")
        steps = 10
        start = time.monotonic()
        try:
            for i in range(1, steps + 1):
                await asyncio.sleep((ms // steps + (1 if i <= ms % steps else 0)) / 1000.0)
                ctx.progress(i, steps, f"slept {i}/{steps}")
        except asyncio.CancelledError:
            log.info("sleep request %d aborted after %d ms (%s)", ctx.request_id,
                     (time.monotonic() - start) * 1000, ctx.abort_reason)
            raise
        return {"slept_ms": int((time.monotonic() - start) * 1000)}

    @worker.node(
        name=prefix + "fail",
        description="Always fails with a worker error carrying `message`.",
        category="examples",
        version="1.0.0",
        inputs={"message": "any"},
        idempotent=True,
    )
    def fail(ctx):
        message = ctx.inputs.get("message")
        raise muster.WorkerError(message if isinstance(message, str) else "failed on purpose")

    @worker.node(
        name=prefix + "stats",
        description="Count, mean, median, standard deviation, min and max of a list of numbers.",
        category="math",
        version="1.0.0",
        inputs={"values": {"type": "list", "required": True, "description": "numbers"}},
        outputs={"count": "int", "mean": "float", "median": "float", "stdev": "float", "min": "float", "max": "float"},
        parameters={"precision": 12},
        idempotent=True,
    )
    def stats(ctx):
        values = ctx.inputs["values"]
        if not values:
            raise muster.InvalidRequest("values must not be empty")
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            raise muster.InvalidRequest(f"values must be finite numbers, got {bad[0]!r}")
        digits = ctx.parameters["precision"]
        r = lambda x: round(float(x), digits)  # noqa: E731
        return {
            "count": len(values),
            "mean": r(statistics.fmean(values)),
            "median": r(statistics.median(values)),
            "stdev": r(statistics.stdev(values)) if len(values) > 1 else 0.0,
            "min": r(min(values)),
            "max": r(max(values)),
        }

    @worker.node(
        name=prefix + "hash",
        description="Digest of a string (UTF-8) or bytes with any hashlib algorithm.",
        category="crypto",
        version="1.0.0",
        inputs={"data": {"type": "any", "required": True}},
        outputs={"hex": "string", "digest": "bytes", "size": "int"},
        parameters={"algorithm": "sha256"},
        idempotent=True,
    )
    def hash_(ctx):
        data = ctx.inputs["data"]
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, bytes):
            raise muster.InvalidRequest("data must be a string or bytes")
        algorithm = ctx.parameters["algorithm"]
        if algorithm not in hashlib.algorithms_available or algorithm.startswith("shake"):
            raise muster.InvalidRequest(f"unknown algorithm {algorithm!r}")
        h = hashlib.new(algorithm, data)
        return {"hex": h.hexdigest(), "digest": h.digest(), "size": len(data)}

    @worker.node(
        name=prefix + "checksum",
        description="Size and SHA-256 of a file (a bytes input, e.g. uploaded through the dashboard).",
        category="files",
        version="1.0.0",
        inputs={"data": {"type": "bytes", "required": True, "description": "the file"}},
        outputs={"size": "int", "sha256": "string"},
        idempotent=True,
    )
    def checksum(ctx):
        data = ctx.inputs["data"]
        if not isinstance(data, bytes):
            raise muster.InvalidInput("data must be bytes")
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    @worker.node(
        name=prefix + "sha256",
        description="SHA-256 of a bytes input of any size, read as a stream (bounded memory).",
        category="files",
        version="1.0.0",
        inputs={"data": {"type": "bytes", "required": True}},
        outputs={"hex": "string"},
        idempotent=True,
        stream_inputs=["data"],  # chunks are read as they arrive, not assembled first
    )
    def sha256(ctx):
        data = ctx.input_stream("data")  # a binary file object; the worker grants credit as it reads
        h = hashlib.sha256()
        while block := data.read(1 << 20):
            h.update(block)
        return {"hex": h.hexdigest()}

    @worker.node(
        name=prefix + "count",
        description="Streams the items {i: 0}, {i: 1}, ... {i: n-1} (call it with a stream: "
        "`muster call --stream count '{\"n\": 3}'`), then returns {count}; waits delay_ms before "
        "each item; stops early on abort.",
        category="examples",
        version="1.0.0",
        inputs={
            "n": {"type": "int", "required": True},
            "delay_ms": {"type": "int", "default": 0},
            "pad": {"type": "int", "default": 0, "description": "bytes of padding per item"},
        },
        outputs={"count": "int"},
    )
    def count(ctx):
        n, delay, pad = ctx.inputs["n"], ctx.inputs["delay_ms"], ctx.inputs["pad"]
        if n < 0 or delay < 0 or not 0 <= pad <= 64 << 20:
            raise muster.InvalidRequest("n, delay_ms must not be negative, pad must be 0 to 64 MiB")
        padding = bytes(pad)
        for i in range(n):
            if delay and ctx.wait_aborted(delay / 1000.0):
                return None  # aborted: the answer is dropped anyway
            # each value is an item; the loop waits here while the caller's window is full, and
            # the generator is closed when the call is cancelled or times out
            yield {"i": i, "pad": padding} if pad else {"i": i}
        return {"count": n}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="muster Python example worker: echo, hello, sleep, fail, stats, hash, checksum, sha256, count.")
    add_worker_arguments(parser)
    parser.add_argument("--prefix", default="", help="prefix for every node name, e.g. 'py.' (default: none)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level, "example_worker.py", args.log_format)
    worker = worker_from_args(args)
    try:
        declare_nodes(worker, args.prefix)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    return run_worker(worker)


if __name__ == "__main__":
    sys.exit(main())
