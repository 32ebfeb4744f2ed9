#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpora in tests/fuzz/corpus/<target>/ (small, committed).

Binary messages come from the golden vectors in tests/vectors (valid and invalid ones); text
inputs are written here. Run it again after adding vectors; it only adds and overwrites files
it owns (names starting with "seed-" or "vec-").
Usage: tests/fuzz/make_seeds.py
"""
import base64
import random
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
VECTORS = HERE.parent / "vectors"
CORPUS = HERE / "corpus"


def put(target: str, name: str, data: bytes):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def vectors(prefixes, target):
    for f in sorted(VECTORS.glob("*.bin")):
        if any(f.name.startswith(p) for p in prefixes):
            put(target, "vec-" + f.stem, f.read_bytes())


def enroll_request(token: str, key: str, role: str = "worker") -> bytes:
    import flatbuffers
    b = flatbuffers.Builder(256)
    t, k, r, n, h = (b.CreateString(x) for x in (token, key, role, "fuzz", "fuzz-host"))
    b.StartObject(5)
    for slot, off in enumerate((t, k, r, n, h)):
        b.PrependUOffsetTRelativeSlot(slot, off, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"MSEQ")
    return bytes(b.Output())


def batch(identifier: bytes, body_type: int, items, worker_id=None) -> bytes:
    """A Batch (PROTOCOL.md §2.2) of whole messages, each 8-byte aligned, in a WorkerMessage
    (worker_id set) or a ClientMessage."""
    import flatbuffers
    b = flatbuffers.Builder(1024)
    offs = []
    for it in items:
        b.StartVector(1, len(it), 8)
        b.head -= len(it)
        b.Bytes[b.head:b.head + len(it)] = it
        vec = b.EndVector()
        b.StartObject(1)
        b.PrependUOffsetTRelativeSlot(0, vec, 0)
        offs.append(b.EndObject())
    b.StartVector(4, len(offs), 4)
    for o in reversed(offs):
        b.PrependUOffsetTRelative(o)
    vec = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, vec, 0)
    body = b.EndObject()
    wid = b.CreateString(worker_id) if worker_id is not None else None
    b.StartObject(4)
    if wid is not None:
        b.PrependUOffsetTRelativeSlot(0, wid, 0)  # WorkerMessage.worker_id
    b.PrependUint8Slot(1, body_type, 0)
    b.PrependUOffsetTRelativeSlot(2, body, 0)
    b.Finish(b.EndObject(), file_identifier=identifier)
    return bytes(b.Output())


RNG = random.Random(6)  # seeds are the same on every run


def rand(n: int) -> bytes:
    return RNG.randbytes(n)


def b64url(n: int) -> str:
    return base64.urlsafe_b64encode(rand(n)).rstrip(b"=").decode()


def tag(data: bytes) -> str:
    return f"{zlib.crc32(data):08x}"


def main():
    vectors(["worker_", "invalid_"], "worker_message")
    vectors(["client_", "invalid_"], "client_message")
    vectors(["enroll_request"], "enroll_request")
    vectors(["values_", "invalid_nested"], "values")
    vectors(["daemon_"], "daemon_message")
    # Batches (PROTOCOL.md §2.2): WorkerBody.Batch = 7, ClientBody.Batch = 17.
    vec = lambda name: (VECTORS / f"{name}.bin").read_bytes()
    put("worker_message", "seed-batch", batch(b"MSWK", 7, [vec("worker_result"), vec("worker_failure"),
                                                          vec("worker_progress"), vec("invalid_truncated")], "w1"))
    put("worker_message", "seed-batch-nested",
        batch(b"MSWK", 7, [batch(b"MSWK", 7, [vec("worker_result")], "w1"), vec("worker_detach")], "w1"))
    put("client_message", "seed-batch", batch(b"MSCL", 17, [vec("client_submit"), vec("client_submit_minimal"),
                                                          vec("client_cancel"), vec("invalid_truncated_submit")]))
    vectors(["reply_"], "client_reply")
    vectors(["client_token", "client_key", "invalid_token", "invalid_key"], "admin_command")
    # ZAP requests as FuzzedDataProvider strings ("\\x" ends one; the last byte is the frame
    # count); "KEY" becomes the enrolled worker's key.
    for i, frames in enumerate([
        ["1.0", "1", "muster.worker", "127.0.0.1", "", "CURVE", "KEY"],
        ["1.0", "2", "muster.client", "127.0.0.1", "", "CURVE", "KEY"],
        ["1.0", "3", "muster.enroll", "127.0.0.1", "", "CURVE", "KEY"],
        ["1.0", "4", "muster.worker", "127.0.0.1", "", "NULL"],
    ]):
        body = b"".join(f.encode().replace(b"\\", b"\\\\") + b"\\x" for f in frames)
        put("zap_request", f"seed-{i}", body + bytes([len(frames)]))
    # The enroll target swaps "TOKEN" and "KEY" for the run's minted token and a client key.
    put("enroll_request", "seed-placeholders", enroll_request("TOKEN", "KEY"))
    put("enroll_request", "seed-placeholders-client", enroll_request("TOKEN", "KEY", "client"))
    # Any bytes drive the session target (FuzzedDataProvider); a few varied starts.
    for i, n in enumerate((16, 64, 256, 1024)):
        put("broker_session", f"seed-{i}", bytes((j * 37 + i) % 256 for j in range(n)))

    for i, text in enumerate([
        '{"name": "Ada"}',
        '{"i": -9223372036854775808, "j": 9223372036854775807, "u": 18446744073709551615, '
        '"f": 2.0, "e": 2.5e-7, "s": "h\\u00e9llo \\u4e16\\u754c", "b": {"$bytes": "AAEC/w=="}, '
        '"l": [], "m": {}, "n": null, "t": true, "deep": [[{"x": [1, {"y": null}]}]]}',
        '{"err": {"$error": {"code": "E", "message": "m"}}, "notbytes": {"$bytes": 1}}',
        '{"a": {"$bytes": "===="}}',
        '{"dup": 1, "dup": 2}',
        '{"x": ' + "[" * 40 + "]" * 40 + "}",
        "[1, 2]",
        '{"s": "\\ud800"}',
        '{"x": 1e400, "y": -1e400}',  # out_of_range in nlohmann: must be invalid_argument
        '{"$error": {"code": "E"}}',   # a value at the top level, not a map: invalid_argument
        '{"$bytes": "AA=="}',
    ]):
        put("value_json", f"seed-{i}", text.encode())

    token = f"muster1.{rand(8).hex()}.{b64url(32)}.{b64url(32)}"
    for sel, text in [
        (0, token.encode()),
        (0, b"muster1.0123456789abcdef.short.key"),
        (1, b"rq:[A6Bq9.Kh]mbM1gt#8aIjx^ZQ&LvM8Nch9vx("),
        (2, b64url(32).encode()),
        (3, b"00ff10ab"),
        (4, b"1h30m"),
        (4, b"10w"),
        (5, b"2025-03-01T12:00:00.250Z"),
        (6, b"# daemon key\npublic=rq:[A6Bq9.Kh]mbM1gt#8aIjx^ZQ&LvM8Nch9vx(\nsecret=JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n"),
        (7, b"public=rq:[A6Bq9.Kh]mbM1gt#8aIjx^ZQ&LvM8Nch9vx(\n"),
        (8, b"muster.worker\x0010.0.0.1\x00CURVE\x00" + rand(32)),
        (8, b"muster.enroll\x0010.0.0.1\x00CURVE\x00" + rand(32)),
    ]:
        put("keys_text", f"seed-{sel}-{tag(text)}", bytes([sel]) + text)

    for sel, text in [
        (0, '{"name": "hello", "inputs": ["name"], "outputs": ["greeting", "shout"]}'),
        (0, '{"name": "a/b", "outputs": []}'),
        (1, '{"node": "hello", "inputs": {"name": "Ada", "b": {"$bytes": "AA=="}}, "uuid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}'),
        (1, '{"node": "hello", "uuid": 42}'),
        (2, '{"node": "hello", "outputs": {"greeting": "hi", "shout": {"$bytes": "!!"}}, "uuid": "x"}'),
        (3, "wss://hurozo.example:8443/ws/remote?auth=abc"),
        (3, "http://[::1]/"),
        (4, "/ws/remote_nodes?auth=abc%2Fdef&x=%zz"),
        (5, "MS4xNzAwMDAwMDAwMDAwLm5vbmNlLmFkYQ.c2ln"),
        (6, "# tokens\ntok-1 ada write\ntok-2 bob ro\n\n"),
        (7, "Bearer good-token"),
    ]:
        put("bridge_json", f"seed-{sel}-{tag(text.encode())}", bytes([sel]) + text.encode())


if __name__ == "__main__":
    main()
