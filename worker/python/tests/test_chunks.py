"""The chunker (muster.chunks) and the client's chunk behaviour against a fake daemon client
socket (PROTOCOL.md §7.9): strict send rule, stream numbering, the receiver's checks and
credit, the worker's input stream."""

from __future__ import annotations

import asyncio
import hashlib
import io
import pathlib
import threading

import pytest

import muster
from muster import chunks as c
from muster import messages as m
from muster.errors import ErrorCode
from muster.values import ChunkedValue

from conftest import WAIT
from test_client import FakeClientSocket

MiB = 1 << 20


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---- encoders --------------------------------------------------------------------------


def test_chunk_encoders_write_what_messages_encode_writes():
    data = bytes(range(256)) * 4097
    assert c.client_chunk(7, 3, 1 << 33, data) == m.encode(m.ClientMessage(7, m.Chunk(7, 3, 1 << 33, data)))
    assert c.client_chunk(7, 3, 0, memoryview(data)[5:]) == m.encode(m.ClientMessage(7, m.Chunk(7, 3, 0, data[5:])))
    assert c.worker_chunk("w1", 9, 2, MiB, data) == m.encode(m.WorkerMessage("w1", m.Chunk(9, 2, MiB, data)))
    assert c.client_credit(4, 2, 5 * MiB) == m.encode(m.ClientMessage(4, m.Credit(4, 2, 0, 5 * MiB)))
    back = m.decode_client_message(c.client_chunk(7, 3, 8, data)).body
    assert (back.request_id, back.stream, back.offset, back.data) == (7, 3, 8, data)


# ---- the caller's inputs ---------------------------------------------------------------


def test_split_inputs_chunks_bytes_over_the_threshold_and_files_on_odd_streams(tmp_path):
    small, big = b"s" * 10, b"b" * 101
    path = tmp_path / "f.bin"
    path.write_bytes(b"p" * 200)
    tiny = tmp_path / "t.bin"
    tiny.write_bytes(b"t" * 5)
    f = io.BytesIO(b"q" * 150)
    f.seek(0)
    out, senders = c.split_inputs({"a": small, "b": big, "c": path, "d": 3, "e": tiny, "f": f}, 100, False)
    assert out["a"] == small and out["d"] == 3
    assert out["e"] == b"t" * 5  # a file within the threshold travels inline
    assert out["b"] == ChunkedValue(1, 101, sha(big))
    assert out["c"] == ChunkedValue(3, 200, sha(b"p" * 200))
    assert out["f"] == ChunkedValue(5, 150, sha(b"q" * 150))
    assert [(s.port, s.stream) for s in senders] == [("b", 1), ("c", 3), ("f", 5)]
    for s in senders:
        s.close()


def test_split_inputs_refuses_durable_chunks_too_many_streams_and_unseekable_files():
    with pytest.raises(muster.InvalidRequest) as e:
        c.split_inputs({"x": b"x" * 11}, 10, True)
    assert e.value.message == c.DURABLE_CHUNKED
    assert c.split_inputs({"x": b"x" * 10}, 10, True)[0] == {"x": b"x" * 10}
    with pytest.raises(ValueError, match="at most 16 chunked inputs"):
        c.split_inputs({f"i{i}": b"x" * 11 for i in range(17)}, 10, False)

    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            return 0

        def seekable(self):
            return False

    with pytest.raises(ValueError, match="seekable"):
        c.split_inputs({"x": Pipe()}, 10, False)


def test_the_input_sender_sends_nothing_before_credit_and_never_past_it():
    data = bytes(range(256)) * (10 * 4096)  # 10 MiB
    s = c.InputSender("data", 1, c.BytesSource(data))
    assert list(s.due()) == []  # no chunk before the worker's first Credit
    s.grant(4 * MiB - 1)
    sent = list(s.due())
    assert [off for off, _ in sent] == [0, MiB, 2 * MiB]  # the 4th MiB does not fit 4 MiB - 1
    s.grant(2 * MiB)  # a stale grant changes nothing
    assert list(s.due()) == []
    s.grant(20 * MiB)
    sent += list(s.due())
    assert b"".join(bytes(d) for _, d in sent) == data
    assert [len(d) for _, d in sent] == [MiB] * 10
    assert s.done


# ---- the caller's outputs --------------------------------------------------------------


def test_the_output_receiver_grants_as_it_consumes_and_checks_the_reference():
    r = c.OutputReceiver(2, c.MemorySink())
    grants = [r.feed(i * MiB, bytes([i]) * MiB) for i in range(6)]
    # granted once a chunk's worth was consumed since the last grant: consumed + 4 MiB
    assert grants == [c.Grant(n * MiB) for n in (5, 6, 7, 8, 9, 10)]
    assert r.feed(0, b"x") is None  # bytes it has (sent again before a resume): dropped
    whole = b"".join(bytes([i]) * MiB for i in range(6))
    assert r.finish("data", ChunkedValue(2, len(whole), sha(whole))) == whole
    bad = c.OutputReceiver(4, c.MemorySink())
    bad.feed(0, b"abc")
    with pytest.raises(muster.WorkerError) as e:
        bad.finish("out", ChunkedValue(4, 3, bytes(32)))
    assert e.value.message == "output out: chunked stream 4: sha256 mismatch"
    with pytest.raises(muster.WorkerError, match="3 bytes arrived, the reference says 4"):
        bad.finish("out", ChunkedValue(4, 4, sha(b"abcd")))


def test_sinks_directory_writer_and_callable(tmp_path):
    factory = c.check_sinks(tmp_path, None)
    sink = factory(2, 1)
    sink.write(b"hello ")
    sink.write(b"world")
    path = sink.value("data", ChunkedValue(2, 11, sha(b"hello world")))
    assert path == tmp_path / "data" and path.read_bytes() == b"hello world"
    failed = factory(4, 1)
    failed.write(b"x")
    failed.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    got = []
    one = c.check_sinks(None, got.append)
    one(2, 1).write(b"abc")
    assert got == [b"abc"]
    with pytest.raises(muster.WorkerError, match="second chunked output"):
        one(4, 1)
    buf = io.BytesIO()
    c.check_sinks(None, buf)(2, 1).write(b"xyz")
    assert buf.getvalue() == b"xyz"
    with pytest.raises(ValueError, match="not both"):
        c.check_sinks(tmp_path, buf)
    with pytest.raises(ValueError, match="not a directory"):
        c.check_sinks(tmp_path / "nope", None)


# ---- the worker's input stream ---------------------------------------------------------


def test_the_input_stream_grants_as_the_handler_reads_and_checks_the_sha256():
    data = bytes(range(256)) * (6 * 4096)  # 6 MiB
    grants = []
    s = c.InputStream("data", 1, len(data), sha(data), grant=grants.append)
    assert s.granted == 4 * MiB  # the first grant, sent by the worker with the WorkRequest
    for i in range(4):
        assert s.feed(i * MiB, data[i * MiB:(i + 1) * MiB]) is None  # streamed: no grant before a read
    assert s.read(MiB + 10) == data[:MiB + 10]
    assert grants == [5 * MiB + 10]
    out = bytearray(data[:MiB + 10])

    def reader():
        out.extend(s.read())

    t = threading.Thread(target=reader)
    t.start()
    for i in range(4, 6):
        s.feed(i * MiB, data[i * MiB:(i + 1) * MiB])
    t.join(WAIT)
    assert bytes(out) == data and s.read(10) == b""
    assert grants[-1] == len(data)  # never more than the size

    bad = c.InputStream("data", 3, 4, bytes(32))
    bad.feed(0, b"abcd")
    with pytest.raises(muster.InvalidRequest) as e:
        bad.read(4)
    assert e.value.message == "input data: chunked stream 3: sha256 mismatch"
    gap = c.InputStream("data", 1, 10, bytes(32))
    assert gap.feed(3, b"x") == c.Grant(4 * MiB, 0)  # a gap: a resume Credit at what it has (R2)
    assert gap.error is None and gap.received == 0
    empty = c.InputStream("data", 5, 0, bytes(32))  # no chunk comes: checked at once
    assert empty.error is not None and empty.error.message == "input data: chunked stream 5: sha256 mismatch"
    assert c.InputStream("data", 5, 0, sha(b"")).read() == b""
    over = c.InputStream("data", 1, 2, bytes(32))
    over.feed(0, b"abc")
    assert over.error is not None and "beyond its size of 2 bytes" in over.error.message


def test_the_input_stream_collects_wakes_readers_on_abort_and_reads_async():
    data = b"z" * (3 * MiB)
    col = c.InputStream("data", 1, len(data), sha(data), collect=True)
    assert [col.feed(i * MiB, data[i * MiB:(i + 1) * MiB]) for i in range(3)] == [None, None, None]  # 4 MiB cover it
    tail = c.InputStream("data", 1, 5 * MiB + 7, bytes(32), collect=True)
    grants = [tail.feed(i * MiB, b"x" * MiB) for i in range(5)]
    assert grants == [c.Grant(5 * MiB), c.Grant(5 * MiB + 7), None, None, None]  # the last grant reaches the size exactly
    assert col.complete and col.value() == data

    s = c.InputStream("data", 1, 10, bytes(32))
    got = []
    t = threading.Thread(target=lambda: got.append(pytest.raises(muster.MusterError, s.read, 4)))
    t.start()
    s.fail(muster.MusterError(ErrorCode.CANCELLED, "cancelled by the caller"))
    t.join(WAIT)
    assert got[0].value.code == ErrorCode.CANCELLED

    a = c.InputStream("data", 1, 6, sha(b"abcdef"))

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, a.feed, 0, b"abc")
        loop.call_later(0.1, a.feed, 3, b"def")
        return [block async for block in a]

    assert b"".join(asyncio.run(main())) == b"abcdef"
    assert c.InputStream.of_bytes("x", b"inline").read() == b"inline"


def test_output_pieces_rechunk_iterators_and_files(tmp_path):
    p = c.OutputPieces(iter([b"a" * (MiB - 1), b"bb", b"c" * MiB]))
    assert [len(p.next()) for _ in range(4)] == [MiB, MiB, 1, 0]
    path = tmp_path / "o.bin"
    path.write_bytes(b"d" * (MiB + 5))
    q = c.OutputPieces(path)
    assert [len(q.next()) for _ in range(3)] == [MiB, 5, 0]
    q.close()
    with pytest.raises(TypeError, match="must yield bytes"):
        c.OutputPieces(iter(["text"])).next()
    assert c.is_stream_output(iter([])) and c.is_stream_output(path) and c.is_stream_output(io.BytesIO())
    assert not c.is_stream_output(b"x") and not c.is_stream_output([1]) and not c.is_stream_output({"a": 1})


# ---- the client against a fake daemon --------------------------------------------------


@pytest.fixture
def daemon(short_tmp):
    d = FakeClientSocket(short_tmp)
    yield d
    d.close()


def test_the_client_uploads_under_credit_and_checks_a_chunked_output(daemon):
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB: over the default 8 MiB threshold
    out = bytes(range(255, -1, -1)) * (5 * 4096)
    with muster.Client(daemon.address, connect_timeout=2.0) as client:
        call = client.submit("echo", {"data": data, "n": 1})
        peer, _, msg = daemon.recv()
        rid, submit = msg.request_id, msg.body
        assert submit.chunk_window_bytes == 4 * MiB
        assert submit.inputs == {"data": ChunkedValue(1, len(data), sha(data)), "n": 1}
        assert not daemon.router.poll(300), "a chunk before the worker's first Credit"
        daemon.reply(peer, rid, m.Credit(rid, 1, 0, 2 * MiB + 5))
        got = [daemon.recv()[2].body for _ in range(2)]
        assert [(b.stream, b.offset, len(b.data)) for b in got] == [(1, 0, MiB), (1, MiB, MiB)]
        assert not daemon.router.poll(300), "a chunk past the credit"
        daemon.reply(peer, rid, m.Credit(rid, 1, 0, 100 * MiB))
        got += [daemon.recv()[2].body for _ in range(7)]
        assert b"".join(b.data for b in got) == data
        # the output: 5 MiB on stream 2; the client grants as it takes them
        for i in range(5):
            daemon.reply(peer, rid, m.Chunk(rid, 2, i * MiB, out[i * MiB:(i + 1) * MiB]))
        credits = [daemon.recv()[2].body for _ in range(2)]
        assert [(cr.stream, cr.bytes) for cr in credits] == [(2, 5 * MiB), (2, 6 * MiB)]
        daemon.reply(peer, rid, m.Result(rid, {"data": ChunkedValue(2, len(out), sha(out))}))
        assert call.result(WAIT) == {"data": out}


def test_the_client_fails_a_wrong_sha256_locally_and_cancels_a_broken_stream(daemon):
    with muster.Client(daemon.address, connect_timeout=2.0) as client:
        call = client.submit("x")
        peer, _, msg = daemon.recv()
        rid = msg.request_id
        daemon.reply(peer, rid, m.Chunk(rid, 2, 0, b"abc"))
        daemon.reply(peer, rid, m.Result(rid, {"data": ChunkedValue(2, 3, bytes(32))}))
        with pytest.raises(muster.WorkerError) as e:
            call.result(WAIT)
        assert e.value.message == "output data: chunked stream 2: sha256 mismatch"

        call = client.submit("x")
        peer, _, msg = daemon.recv()
        rid = msg.request_id
        daemon.reply(peer, rid, m.Chunk(rid, 3, 0, b"abc"))  # an odd stream: the caller's
        assert isinstance(daemon.recv()[2].body, m.Cancel)
        with pytest.raises(muster.WorkerError, match="a chunk of stream 3, which a worker may not open"):
            call.result(WAIT)


def test_a_file_input_is_hashed_then_streamed_and_closed(daemon, tmp_path):
    path = tmp_path / "in.bin"
    data = b"f" * (2 * MiB)
    path.write_bytes(data)
    f = open(path, "rb")
    with muster.Client(daemon.address, connect_timeout=2.0, chunk_threshold=MiB) as client:
        call = client.submit("echo", {"data": f})
        peer, _, msg = daemon.recv()
        rid = msg.request_id
        assert msg.body.inputs == {"data": ChunkedValue(1, len(data), sha(data))}
        daemon.reply(peer, rid, m.Credit(rid, 1, 0, 4 * MiB))
        assert b"".join(daemon.recv()[2].body.data for _ in range(2)) == data
        daemon.reply(peer, rid, m.Result(rid, {}))
        assert call.result(WAIT) == {}
    assert not f.closed  # the caller's file object stays the caller's
    f.close()
    with pytest.raises(ValueError, match="chunk_threshold"):
        muster.Client(daemon.address, chunk_threshold=0)
