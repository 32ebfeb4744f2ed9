"""The C++ worker SDK's chunked values (PROTOCOL.md §7.9, docs/STREAMS.md §3) through a real
musterd: the C++ example worker (`echo`, `sha256`) driven by the raw caller of chunk_caller.py.

- echo: a 48 MiB chunked input (over the 16 MiB message limit) assembled for a plain handler and
  echoed as a chunked output, sha256 checked at both ends, musterd's peak RSS under 64 MiB;
- sha256: a 96 MiB input read as a stream by the handler, the worker's own peak RSS staying far
  below the value (so it never held it);
- a corrupted value (wrong sha256) fails InvalidRequest naming the port and the stream;
- cancel mid-upload and mid-download stop the handler (the one slot of a capacity-1 worker
  serves the next call);
- the worker SIGKILLed mid-stream ends the call WORKER_LOST, exactly once;
- an inline bytes output over the chunk threshold travels chunked when the caller takes chunks,
  inline when it does not;
- both ends in C++: `muster call --input data=@FILE --output-dir` echoes and hashes 41 MiB.

MUSTER_CHUNK_WORKER_MIB sets the echoed size (default 48; tools/bench/stream.sh runs 1024).
Every wait is bounded; everything started here is killed by conftest's autouse fixture.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal

from chunk_caller import MiB, RawClient, Upload, blocks_sha256, call_chunked
from conftest import wait_for
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import ChunkedValue
from chunk_peers import vm_hwm_kib

ECHO_MIB = int(os.environ.get("MUSTER_CHUNK_WORKER_MIB", "48"))


def start(start_worker, daemon, *args):
    return start_worker(daemon, *args).wait_ready()


def test_echo_of_a_chunked_input_returns_a_chunked_output_in_bounded_musterd_memory(daemon, start_worker):
    w = start(start_worker, daemon)
    c = RawClient(daemon)
    bound = max(60, ECHO_MIB // 4)  # seconds: 48 MiB by default, 1 GiB+ in tools/bench/stream.sh
    out = call_chunked(c, 1, "echo", {}, {"data": Upload(ECHO_MIB)}, timeout=bound, timeout_ms=bound * 1000)
    digest = blocks_sha256(ECHO_MIB)
    assert isinstance(out.reply, m.Result), (out.reply, w.log[-4000:])
    # The input came back on the worker's first stream, checked by the reference it holds.
    assert out.reply.outputs == {"data": ChunkedValue(2, ECHO_MIB * MiB, digest)}
    assert out.received == {2: ECHO_MIB * MiB} and out.digest(2) == digest
    # The worker granted the input 4 MiB ahead of what it took, never more.
    assert out.credits[0].bytes == 4 * MiB
    assert all(cr.stream == 1 and cr.bytes <= ECHO_MIB * MiB for cr in out.credits)
    hwm = vm_hwm_kib(daemon.proc.pid)
    print(f"echoed {ECHO_MIB} MiB through the C++ worker; musterd VmHWM {hwm} KiB")
    assert hwm < 64 * 1024, f"musterd's peak RSS was {hwm} KiB echoing {ECHO_MIB} MiB (bound: 64 MiB)"
    assert c.next_reply(0.3) is None  # exactly one terminal reply
    c.close()


def test_the_sha256_node_reads_its_input_as_a_stream_in_bounded_worker_memory(daemon, start_worker):
    w = start(start_worker, daemon)
    c = RawClient(daemon)
    mib = 96
    out = call_chunked(c, 2, "sha256", {}, {"data": Upload(mib)}, timeout=120)
    assert isinstance(out.reply, m.Result), out.reply
    assert out.reply.outputs == {"hex": blocks_sha256(mib).hex()}
    worker_hwm = vm_hwm_kib(w.proc.pid)
    print(f"hashed {mib} MiB in the C++ worker; its VmHWM {worker_hwm} KiB")
    assert worker_hwm < 48 * 1024, f"the worker's peak RSS was {worker_hwm} KiB hashing {mib} MiB as a stream"
    # A small inline value is read through the same stream.
    out = call_chunked(c, 3, "sha256", {"data": b"abc"}, timeout=30)
    assert out.reply.outputs == {"hex": hashlib.sha256(b"abc").hexdigest()}
    c.close()


def test_a_wrong_sha256_fails_the_call_invalid_request_naming_the_stream(daemon, start_worker):
    start(start_worker, daemon)
    c = RawClient(daemon)
    for rid, node in ((4, "echo"), (5, "sha256")):  # assembled for the handler / read as a stream
        out = call_chunked(c, rid, node, {}, {"data": Upload(9, sha256=bytes(32))}, timeout=60)
        assert isinstance(out.reply, m.Failure), out.reply
        assert out.reply.code == ErrorCode.INVALID_REQUEST
        assert out.reply.message == "input data: chunked stream 1: sha256 mismatch", out.reply.message
        assert out.received == {}, "an output went out of a value that failed its check"
    c.close()


def test_cancel_mid_upload_stops_the_reading_handler(daemon, start_worker):
    w = start(start_worker, daemon, "--capacity", "1")
    c = RawClient(daemon)

    def cancel_after_8_mib(out):
        if out.sent.get(1, 0) >= 8 * MiB and not cancelled:
            c.send(6, m.Cancel())
            cancelled.append(True)

    cancelled: list = []
    out = call_chunked(c, 6, "sha256", {}, {"data": Upload(64)}, tick=cancel_after_8_mib, timeout=60)
    assert isinstance(out.reply, m.Failure) and out.reply.code == ErrorCode.CANCELLED, out.reply
    assert out.sent[1] < 64 * MiB
    wait_for(lambda: "aborted while input data was read" in w.log, 10, "the handler to stop reading")
    # Its one slot is free: the next call is served.
    out = call_chunked(c, 7, "sha256", {"data": b"next"}, timeout=30)
    assert out.reply.outputs == {"hex": hashlib.sha256(b"next").hexdigest()}, out.reply
    c.close()


def test_cancel_mid_download_stops_the_sending_handler(daemon, start_worker):
    w = start(start_worker, daemon, "--capacity", "1")
    c = RawClient(daemon)

    def cancel_once_stalled(out):
        if out.received.get(2, 0) >= 4 * MiB and not cancelled:  # the caller grants no more
            c.send(8, m.Cancel())
            cancelled.append(True)

    cancelled: list = []
    out = call_chunked(c, 8, "echo", {}, {"data": Upload(24)}, grant_outputs=False, tick=cancel_once_stalled,
                       timeout=60)
    assert isinstance(out.reply, m.Failure) and out.reply.code == ErrorCode.CANCELLED, out.reply
    assert out.received[2] == 4 * MiB, "the worker sent past the caller's credit"
    wait_for(lambda: "aborted while chunked stream 2 was sent" in w.log, 10, "the handler to stop sending")
    out = call_chunked(c, 9, "echo", {"x": 1}, timeout=30)
    assert out.reply.outputs == {"x": 1}, out.reply
    c.close()


def test_a_worker_killed_mid_stream_ends_the_call_worker_lost_once(daemon, start_worker):
    w = start(start_worker, daemon)
    c = RawClient(daemon)

    def kill_after_8_mib(out):
        if out.sent.get(1, 0) >= 8 * MiB and w.proc.poll() is None:
            os.kill(w.proc.pid, signal.SIGKILL)

    out = call_chunked(c, 10, "sha256", {}, {"data": Upload(64)}, tick=kill_after_8_mib, timeout=30)
    assert isinstance(out.reply, m.Failure) and out.reply.code == ErrorCode.WORKER_LOST, out.reply
    assert c.next_reply(1.0) is None  # exactly one terminal reply
    c.close()


def test_an_inline_output_over_the_threshold_travels_chunked_only_when_the_caller_takes_chunks(daemon, start_worker):
    start(start_worker, daemon)
    c = RawClient(daemon)
    data = os.urandom(12 * MiB)  # inline (under the 16 MiB message limit), over the 8 MiB threshold
    ref = ChunkedValue(2, len(data), hashlib.sha256(data).digest())
    out = call_chunked(c, 11, "echo", {"data": data}, timeout=60)
    assert out.reply.outputs == {"data": ref}
    assert out.received == {2: len(data)} and out.digest(2) == ref.sha256
    out = call_chunked(c, 12, "echo", {"data": data}, chunk_window=0, timeout=60)
    assert out.reply.outputs == {"data": data} and out.received == {}
    c.close()


def test_the_cpp_cli_and_the_cpp_worker_echo_and_hash_a_file_chunked(daemon, start_worker, run_cli, tmp_base):
    # Both ends in C++: `muster call --input data=@FILE` (the C++ client) to the example worker.
    start(start_worker, daemon)
    src, out = tmp_base / "in.bin", tmp_base / "out"
    data = os.urandom(41 * MiB)
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    r = run_cli(daemon, "call", "echo", "--input", f"data=@{src}", "--output-dir", out, "--timeout", "120s",
                timeout=150)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"data": {"file": str(out / "data"), "size": len(data), "sha256": digest}}
    assert (out / "data").read_bytes() == data
    r = run_cli(daemon, "call", "sha256", "--input", f"data=@{src}", "--timeout", "120s", timeout=150)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"hex": digest}
    hwm = vm_hwm_kib(daemon.proc.pid)
    assert hwm < 64 * 1024, f"musterd's peak RSS was {hwm} KiB (bound: 64 MiB)"
