"""The C++ client library's chunked values (PROTOCOL.md §7.9, docs/STREAMS.md §3), through the
`muster` CLI (`muster call NODE --input data=@FILE --output-dir DIR`) and a real musterd, with raw
Python workers (chunk_workers.py) at the other end: inputs larger than a message sent chunked from
a file within the worker's credit, chunked outputs checked and written to files or printed, the
sha256 checked on both ends, musterd's and the CLI's memory bounded, a wrong sha256 refused,
cancel, deadline and a lost daemon mid-stream leaving nothing behind.
Every wait is bounded; everything started here is killed by conftest's autouse fixture.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import BUILD, muster_cli, popen, wait_for
from chunk_workers import (MiB, Served, echo_worker, hash_worker, output_worker, output_worker_inline, stall_worker,
                         vm_hwm_kib)
from muster import messages as m

SIZE = 40 * MiB + 12345  # over musterd's 16 MiB message limit, not a whole number of chunks


def write_file(path, size: int, seed: int = 7) -> str:
    """A file of `size` pseudo-random bytes; its sha256 hex."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    sha = hashlib.sha256()
    with open(path, "wb") as f:
        left, i = size, 0
        while left:
            piece = (i.to_bytes(8, "little") + block)[:min(left, MiB)]
            f.write(piece)
            sha.update(piece)
            left -= len(piece)
            i += 1
    return sha.hexdigest()


def cli(daemon, *args):
    """Starts `muster` against `daemon`; returns the Popen (stdout, stderr piped)."""
    return popen([str(BUILD / "tools" / "muster"), *map(str, args)], env=daemon.env,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc, timeout=120):
    """Waits for `proc`: (exit status, stdout, stderr, its peak RSS in KiB as last sampled).
    The peak is read from /proc/PID/status (VmHWM, a high-water mark) every 20 ms while it runs:
    the rusage of a child forked from this (large) Python process would count our pages too."""
    deadline = time.monotonic() + timeout
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s=s, o=o: o.append(s.read()), daemon=True)
               for s, o in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, vm_hwm_kib(proc.pid))
        except (OSError, AssertionError):  # exiting: its status has no memory lines any more
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"muster did not finish within {timeout} s")
        time.sleep(0.02)
    for r in readers:
        r.join(10)
    return proc.returncode, "".join(out), "".join(err), peak


@pytest.fixture
def served(daemon):
    started: list[Served] = []

    def serve(node: str, fn, *args) -> Served:
        s = Served(daemon, f"raw-{node}-{len(started)}", node, fn, *args)
        started.append(s)
        return s
    yield serve
    for s in started:
        s.close()
        assert not s.errors, s.errors


def test_a_40_mib_file_is_echoed_chunked_both_ways_into_an_output_dir_in_bounded_memory(daemon, served, tmp_base):
    served("echo", echo_worker)  # asserts it received the bytes whose sha256 the client announced
    src, out = tmp_base / "in.bin", tmp_base / "out"
    digest = write_file(src, SIZE)
    code, stdout, stderr, cli_kib = finish(cli(daemon, "call", "echo", "--input", f"data=@{src}", "--output-dir", out,
                                               "--timeout", "120s"))
    assert code == 0, stderr
    printed = json.loads(stdout)
    assert printed == {"data": {"file": str(out / "data"), "size": SIZE, "sha256": digest}}
    got = hashlib.sha256((out / "data").read_bytes()).hexdigest()
    assert got == digest, "the file written holds other bytes than were sent"
    assert sorted(p.name for p in out.iterdir()) == ["data"], "something else was left in the output dir"
    hwm = vm_hwm_kib(daemon.proc.pid)
    print(f"echoed {SIZE} bytes: musterd VmHWM {hwm} KiB, muster CLI maxrss {cli_kib} KiB")
    assert hwm < 64 * 1024, f"musterd's peak RSS was {hwm} KiB (bound: 64 MiB)"
    # Neither the input nor the output was held whole by the CLI (file read per chunk, sink).
    assert cli_kib < 32 * 1024, f"the CLI's peak RSS was {cli_kib} KiB for a {SIZE} byte value each way"


def test_a_chunked_output_is_printed_as_bytes_without_an_output_dir(daemon, served):
    size = 20 * MiB + 3
    payload = bytes(range(256)) * (size // 256) + b"xyz"
    served("make", output_worker, lambda inputs: payload)
    r = muster_cli(daemon, "call", "make", '{"data": {"$bytes": "AA=="}}', "--timeout", "60s", timeout=120)
    assert r.returncode == 0, r.stderr
    got = base64.b64decode(json.loads(r.stdout)["data"]["$bytes"])
    assert len(got) == size and hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


def test_small_files_go_inline_and_large_ones_chunked(daemon, served, tmp_base):
    seen: list = []
    served("hash", hash_worker, seen)
    for size in (0, 1000, 8 * MiB, 8 * MiB + 1):
        path = tmp_base / f"f{size}"
        digest = write_file(path, size, seed=size)
        r = muster_cli(daemon, "call", "hash", "--input", f"data=@{path}", "--timeout", "60s", timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"hex": digest, "size": size}
    # 8 MiB is the client's chunk threshold: up to it inline, above it chunked.
    assert seen == [("inline", 0), ("inline", 1000), ("inline", 8 * MiB), ("chunked", 8 * MiB + 1)]


def test_a_wrong_sha256_from_the_worker_fails_the_call_and_leaves_no_file(daemon, served, tmp_base):
    served("make", output_worker, lambda inputs: b"q" * (9 * MiB), True)
    out = tmp_base / "out"
    r = muster_cli(daemon, "call", "make", '{"data": {"$bytes": "AA=="}}', "--output-dir", out, "--timeout", "60s",
                   timeout=120)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "WORKER_ERROR: output data: chunked stream 2: sha256 mismatch" in r.stderr
    assert r.stdout == ""
    assert list(out.iterdir()) == [], "a stream that did not check out was left in the output dir"
    r = muster_cli(daemon, "call", "make", '{"data": {"$bytes": "AA=="}}', "--timeout", "60s", timeout=120)
    assert r.returncode == 1 and "output data: chunked stream 2: sha256 mismatch" in r.stderr


def stalled_call(daemon, served, tmp_base, *extra):
    """A call to a worker that took 2 MiB of a 40 MiB input and sent 2 MiB of output, then stalls:
    the CLI's process, its output dir (holding the partial stream by then), the worker's aborts."""
    aborts: list = []
    windows: list = []
    served("stall", stall_worker, aborts, windows)
    src, out = tmp_base / "in.bin", tmp_base / "out"
    write_file(src, SIZE)
    proc = cli(daemon, "call", "stall", "--input", f"data=@{src}", "--output-dir", out, *extra)
    wait_for(lambda: out.exists() and any(p.name.endswith(".part") for p in out.iterdir()), 30,
             "the partial output stream on disk")
    assert windows == [4 * MiB]  # every Submit offers the 4 MiB window
    return proc, out, aborts


def test_cancel_mid_stream_stops_both_streams_and_leaves_nothing(daemon, served, tmp_base):
    proc, out, aborts = stalled_call(daemon, served, tmp_base, "--timeout", "60s")
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr, _ = finish(proc, 30)
    assert code == 130, stderr
    assert "CANCELLED" in stderr
    wait_for(lambda: aborts, 10, "the worker's Abort")
    assert aborts == [m.ErrorCode.CANCELLED]
    assert list(out.iterdir()) == [], "the partial output stream was left behind"


def test_the_deadline_mid_stream_ends_the_call_timeout_and_leaves_nothing(daemon, served, tmp_base):
    proc, out, aborts = stalled_call(daemon, served, tmp_base, "--timeout", "3s")
    code, stdout, stderr, _ = finish(proc, 30)
    assert code == 4, stderr
    assert "TIMEOUT" in stderr
    wait_for(lambda: aborts, 10, "the worker's Abort")
    assert list(out.iterdir()) == []


def test_a_lost_daemon_mid_stream_ends_the_call_unavailable_and_leaves_nothing(daemon, served, tmp_base):
    # Not resumable: a resumable call would wait for the daemon to come back (PROTOCOL.md §8.3;
    # test_caller_link_loss.py), up to its deadline.
    proc, out, aborts = stalled_call(daemon, served, tmp_base, "--timeout", "60s", "--no-resumable")
    daemon.proc.kill()
    code, stdout, stderr, _ = finish(proc, 30)
    assert code == 3, stderr
    assert "UNAVAILABLE" in stderr
    assert list(out.iterdir()) == []


def test_bad_files_and_dirs_and_durable_calls_are_refused_clearly(daemon, served, tmp_base):
    served("hash", hash_worker)
    r = muster_cli(daemon, "call", "hash", "--input", f"data=@{tmp_base}/missing.bin")
    assert r.returncode == 2
    assert f"error: --input data=@{tmp_base}/missing.bin: cannot read {tmp_base}/missing.bin: No such file or directory" in r.stderr
    r = muster_cli(daemon, "call", "hash", "--input", f"data=@{tmp_base}")
    assert r.returncode == 2 and "it is a directory" in r.stderr
    r = muster_cli(daemon, "call", "hash", "--input", "data")
    assert r.returncode == 2 and "expected NAME=@FILE" in r.stderr
    blocker = tmp_base / "a-file"
    blocker.write_bytes(b"x")
    r = muster_cli(daemon, "call", "hash", '{"data": {"$bytes": "AA=="}}', "--output-dir", blocker / "out")
    assert r.returncode == 2 and f"--output-dir: cannot write to {blocker}/out" in r.stderr
    # An inline bytes output whose port cannot name a file: the call's outcome cannot be kept.
    served("bad-port", output_worker_inline, {"../up": b"x"})
    r = muster_cli(daemon, "call", "bad-port", '{"data": {"$bytes": "AA=="}}', "--output-dir", tmp_base / "o2")
    assert r.returncode == 1 and 'error: --output-dir: output "../up": the name cannot name a file' in r.stderr, r.stderr
    assert not (tmp_base / "up").exists()
    big = tmp_base / "big.bin"
    write_file(big, 9 * MiB)
    r = muster_cli(daemon, "call", "hash", "--durable", "--input", f"data=@{big}")
    assert r.returncode == 1
    assert ("INVALID_REQUEST: a durable call carries its values inline (at most the message limit); chunked values "
            "are for non-durable calls (docs/DURABILITY.md)") in r.stderr
