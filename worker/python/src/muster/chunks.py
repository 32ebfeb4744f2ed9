"""chunks.py — chunked bytes values in the Python SDK (PROTOCOL.md §7.9, docs/STREAMS.md §3):
the pieces the client (client.py, aio.py) and the worker (worker/) share.

A bytes value larger than ``chunk_threshold`` (default 8 MiB) travels as Chunk messages of one
of the call's streams (the caller's inputs on odd streams 1, 3, 5…; the worker's outputs on
even streams 2, 4, 6…) under a credit window the receiver grants (4 MiB, then as it consumes);
the message that holds the value carries a ``ChunkedValue(stream, size, sha256)`` instead.

Chunks lost on the way are asked for again (PROTOCOL.md §7.9 "Resumption", resume.py): every
receiver here trims or drops what it has and sends a resume Credit on a gap or a stall; every
sender goes back to the offset a resume Credit names, reading the bytes again.

Owns: the constants; the cheap Chunk and Credit encoders (the message built once around the
data, PROTOCOL.md §7.9's wire unchanged); ``ChunkSource`` (bytes, a file or a path, its size
and sha256 known before the Submit, read by offset) and ``split_inputs`` (which inputs of a
Submit travel chunked); ``InputSender`` (a caller's stream: never a byte past the worker's
credit, back to a resume offset); ``OutputReceiver`` and the sinks (a caller's output stream:
checked against its reference, collected as bytes, written to a file or a directory, or handed
to a callback); ``OutputPieces`` and ``OutputSender`` (a worker's output stream: its sending
thread blocks until the caller's credit covers the next chunk; it can send again from a resume
offset until released); ``InputStream`` (a worker's input stream: a binary file object a
handler reads, or the bytes assembled before an ordinary handler runs, granting credit as they
are consumed). Must never: send a chunk beyond the credit; grant credit for bytes not consumed;
hash or deliver a byte twice; hand over a value whose size or sha256 differ from its reference;
leave a reader or a sender blocked once the call is over.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import pathlib
import threading
import time
from collections import deque
from typing import IO, Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import flatbuffers

from . import messages as m
from .credit import AsyncWaiters, wake_all
from .errors import ErrorCode, InvalidRequest, MusterError, Unavailable, WorkerError
from .resume import RESUME_AFTER, RESUME_KEEP_BYTES, Grant, KeptBytes, Resumer
from .values import ChunkedValue

#: Bytes of one Chunk's data (the SDKs' ``kChunkBytes``).
CHUNK_BYTES = 1 << 20
#: The receive window a receiver grants per stream (``kChunkWindowBytes``): 4 MiB at first,
#: then ``consumed + window`` as it consumes.
CHUNK_WINDOW_BYTES = 4 << 20
#: A bytes value larger than this travels chunked (the ``chunk_threshold`` option's default).
DEFAULT_CHUNK_THRESHOLD = 8 << 20
#: Streams of one parity a call may have (PROTOCOL.md §7.9 ``kMaxChunkStreams``).
MAX_CHUNK_STREAMS = 16

DURABLE_CHUNKED = (
    "a durable call carries its values inline (at most the message limit); chunked values are for "
    "non-durable calls (docs/DURABILITY.md)"
)

#: Bytes-like data a chunk carries.
Data = Union[bytes, bytearray, memoryview]


# ---- the cheap encoders --------------------------------------------------------------------


def _encode_root(message: Any, identifier: bytes, room: int) -> memoryview:
    """``messages.encode`` with a builder sized for the message at once: the data is copied
    once, into the buffer (no growth), and the message is a view of that buffer (zmq sends it
    as it is)."""
    b = flatbuffers.Builder(room + 512)
    root = m._encode_table(b, message)
    b.Finish(root, file_identifier=identifier)
    return memoryview(b.Bytes)[b.head :]


def client_chunk(request_id: int, stream: int, offset: int, data: Data) -> memoryview:
    """A caller's ``ClientMessage{Chunk}`` (byte for byte what ``messages.encode`` writes)."""
    return _encode_root(m.ClientMessage(request_id, m.Chunk(request_id, stream, offset, data)), b"MSCL", len(data))  # type: ignore[arg-type]


def worker_chunk(worker_id: str, request_id: int, stream: int, offset: int, data: Data) -> memoryview:
    """A worker's ``WorkerMessage{Chunk}``."""
    return _encode_root(m.WorkerMessage(worker_id, m.Chunk(request_id, stream, offset, data)), b"MSWK", len(data))  # type: ignore[arg-type]


def credit_body(request_id: int, stream: int, grant: Grant) -> m.Credit:
    """The Credit a receiver sends for ``grant`` (a resume Credit when ``grant.resume_at`` is
    set, PROTOCOL.md §7.9 "Resumption")."""
    resume = grant.resume_at is not None
    return m.Credit(request_id, stream, 0, grant.total, grant.resume_at or 0, resume)


def client_credit(request_id: int, stream: int, total: int, resume_at: Optional[int] = None) -> bytes:
    return m.encode(m.ClientMessage(request_id, credit_body(request_id, stream, Grant(total, resume_at))))


# ---- what a caller sends -------------------------------------------------------------------


class ChunkSource:
    """The bytes of one chunked value, read by offset: from memory, or from a binary file (a
    file object the caller gave, or one this opened from a path). ``size`` and ``sha256`` are
    known at construction: a file is hashed in one streaming pass, then read again where the
    worker's credit and its resume Credits ask (so it must be seekable)."""

    def __init__(self, size: int, sha256: bytes):
        self.size = size
        self.sha256 = sha256

    def read_at(self, offset: int, n: int) -> Data:
        """``n`` bytes from ``offset`` (within the size). ValueError or OSError if the source
        cannot give them (a file that changed)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class BytesSource(ChunkSource):
    def __init__(self, data: Data):
        self._view = memoryview(data).cast("B")
        super().__init__(len(self._view), hashlib.sha256(self._view).digest())

    def read_at(self, offset: int, n: int) -> Data:
        return self._view[offset : offset + n]


class FileSource(ChunkSource):
    def __init__(self, f: IO[bytes], owned: bool = False):
        self._f = f
        self._owned = owned
        try:
            self._start = f.tell()
            sha = hashlib.sha256()
            size = 0
            while True:
                block = f.read(CHUNK_BYTES)
                if not block:
                    break
                if not isinstance(block, (bytes, bytearray)):
                    raise TypeError(f"a file input must be opened in binary mode (read gave a {type(block).__name__})")
                sha.update(block)
                size += len(block)
            f.seek(self._start)
        except (OSError, io.UnsupportedOperation) as e:
            if owned:
                f.close()
            raise ValueError(f"a file input must be a seekable binary file (it is hashed before the Submit): {e}") from None
        except BaseException:
            if owned:
                f.close()
            raise
        super().__init__(size, sha.digest())
        self._pos = 0  # the file's position, from its start

    def read_at(self, offset: int, n: int) -> Data:
        n = min(n, self.size - offset)
        if offset != self._pos:
            self._f.seek(self._start + offset)
        block = self._f.read(n)
        self._pos = offset + len(block)
        if len(block) != n:
            raise ValueError("the input file changed while it was sent (it ended early)")
        return block

    def read_all(self) -> bytes:
        """All of it (a small file that travels inline)."""
        data = self._f.read(self.size)
        self.close()
        return bytes(data)

    def close(self) -> None:
        if self._owned:
            self._f.close()


def is_file_input(value: Any) -> bool:
    """A value a caller gives for an input that is read from a file: a ``pathlib.PurePath`` or
    an object with ``read`` (a binary file object)."""
    return isinstance(value, pathlib.PurePath) or (callable(getattr(value, "read", None)) and not isinstance(value, (bytes, str)))


def split_inputs(
    inputs: Mapping[str, Any], threshold: int, durable: bool
) -> Tuple[Dict[str, Any], List["InputSender"]]:
    """The inputs as the Submit carries them, and the senders of those that travel chunked:
    bytes over ``threshold``, and files (a path or a binary file object: a file up to the
    threshold travels inline). Streams are numbered 1, 3, 5… in the inputs' order. Raises
    InvalidRequest for a durable call that would chunk (DURABILITY.md), ValueError for more
    than 16 chunked inputs or a file that cannot be read twice."""
    out: Dict[str, Any] = {}
    senders: List[InputSender] = []
    try:
        for port, value in inputs.items():
            source: Optional[ChunkSource] = None
            if isinstance(value, (bytes, bytearray, memoryview)):
                if memoryview(value).nbytes > threshold:
                    if durable:
                        raise InvalidRequest(DURABLE_CHUNKED)
                    source = BytesSource(value)
            elif is_file_input(value):
                if isinstance(value, pathlib.PurePath):
                    fs = FileSource(open(value, "rb"), owned=True)
                else:
                    fs = FileSource(value)
                if fs.size <= threshold:
                    out[port] = fs.read_all()
                    continue
                if durable:
                    fs.close()
                    raise InvalidRequest(DURABLE_CHUNKED)
                source = fs
            if source is None:
                out[port] = value
                continue
            stream = 2 * len(senders) + 1
            if len(senders) == MAX_CHUNK_STREAMS:
                source.close()
                raise ValueError(f"a call may have at most {MAX_CHUNK_STREAMS} chunked inputs")
            senders.append(InputSender(port, stream, source))
            out[port] = ChunkedValue(stream, source.size, source.sha256)
    except BaseException:
        for s in senders:
            s.close()
        raise
    return out, senders


class InputSender:
    """One chunked input of a call, on the caller's side: sends its chunks as the worker's
    credit (cumulative bytes) allows, never one before the first Credit nor past the grant, and
    goes back to where a resume Credit asks (PROTOCOL.md §7.9 R9, R10: the source is read
    again there; the Submit's reference does not change). Its source stays open until the
    call is over: a resume may come until then."""

    def __init__(self, port: str, stream: int, source: ChunkSource):
        self.port = port
        self.stream = stream
        self.source = source
        self.granted = 0
        self.next = 0  # the offset of the next chunk to send
        self.sent = 0  # the bytes sent (the furthest chunk's end)

    @property
    def done(self) -> bool:
        return self.next >= self.source.size

    def grant(self, total: int) -> None:
        self.granted = max(self.granted, total)

    def resume(self, offset: int, total: int) -> None:
        """A resume Credit (R9): the next chunk starts at ``offset``, the grant rises to
        ``total``. One beyond what was sent is ignored."""
        if offset > self.sent:
            return
        self.grant(total)
        self.next = offset

    def due(self) -> Iterator[Tuple[int, Data]]:
        """The chunks the credit allows now: (offset, data), each at most CHUNK_BYTES. Raises
        Unavailable when bytes sent before cannot be read again (R10: the call ends)."""
        while not self.done:
            offset = self.next
            n = min(CHUNK_BYTES, self.source.size - offset)
            if offset + n > self.granted:
                return
            try:
                data = self.source.read_at(offset, n)
            except (OSError, ValueError) as e:
                if offset >= self.sent:
                    raise  # a first read: the input cannot be read (INVALID_REQUEST)
                raise Unavailable(f"input {self.port}: chunked stream {self.stream}: cannot resume at offset {offset}: {e}") from None
            self.next = offset + n
            self.sent = max(self.sent, self.next)
            yield offset, data

    def close(self) -> None:
        self.source.close()


# ---- what a caller receives ----------------------------------------------------------------


class Sink:
    """Where one output stream's bytes go as they arrive; ``value`` is what the outputs hold for
    it once the Result checked it; ``discard`` drops what was written (a failed call)."""

    def write(self, data: Data) -> None:
        raise NotImplementedError

    def value(self, port: str, ref: ChunkedValue) -> Any:
        return ref

    def discard(self) -> None:
        pass


class MemorySink(Sink):
    """The default: the value is assembled and handed over as plain bytes."""

    def __init__(self) -> None:
        self._pieces: List[Data] = []

    def write(self, data: Data) -> None:
        self._pieces.append(data)  # a chunk's data is its own bytes object: kept, not copied

    def value(self, port: str, ref: ChunkedValue) -> Any:
        pieces, self._pieces = self._pieces, []
        return b"".join(pieces)  # one copy (without the GIL, for large values)

    def discard(self) -> None:
        self._pieces = []


class WriterSink(Sink):
    """A caller's sink: a binary writable file object (``write``) or a callable taking each
    piece of bytes in order. The outputs hold the ChunkedValue reference (size, sha256)."""

    def __init__(self, target: Any):
        self._file = callable(getattr(target, "write", None))
        self._write: Callable[[Data], Any] = target.write if self._file else target

    def write(self, data: Data) -> None:
        self._write(data if self._file else bytes(data))  # a callable gets bytes


class DirectorySink(Sink):
    """``output_dir``: the stream is written to a part file in the directory, renamed to the
    output's port name once the Result checked it; the outputs hold its ``pathlib.Path``."""

    def __init__(self, directory: pathlib.Path, stream: int, request_id: int):
        self._dir = directory
        self._part = directory / f".muster-{os.getpid()}-{request_id}-stream-{stream}.part"
        self._f: Optional[IO[bytes]] = open(self._part, "wb")

    def write(self, data: Data) -> None:
        assert self._f is not None
        self._f.write(data)

    def value(self, port: str, ref: ChunkedValue) -> Any:
        if not port or "/" in port or port in (".", ".."):
            raise ValueError(f"output {port!r} cannot name a file")
        assert self._f is not None
        self._f.close()
        self._f = None
        path = self._dir / port
        os.replace(self._part, path)
        return path

    def discard(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
            try:
                os.unlink(self._part)
            except OSError:
                pass


def check_sinks(output_dir: Any, output_sink: Any) -> Optional[Callable[[int, int], Sink]]:
    """The sink factory ``(stream, request_id) -> Sink`` for a call's output streams, from the
    caller's options (None: the default, plain bytes)."""
    if output_dir is not None and output_sink is not None:
        raise ValueError("give output_dir or output_sink, not both")
    if output_dir is not None:
        directory = pathlib.Path(output_dir)
        if not directory.is_dir():
            raise ValueError(f"output_dir {str(directory)!r} is not a directory")
        return lambda stream, rid: DirectorySink(directory, stream, rid)
    if output_sink is not None:
        if not callable(getattr(output_sink, "write", None)) and not callable(output_sink):
            raise TypeError("output_sink must be a binary writable file object or a callable taking bytes")
        used: List[int] = []

        def one(stream: int, rid: int) -> Sink:
            if used:
                raise WorkerError(f"the worker sent a second chunked output (stream {stream}); output_sink takes one")
            used.append(stream)
            return WriterSink(output_sink)

        return one
    return None


class OutputReceiver:
    """One output stream of a call on the caller's side: the chunks in order into its sink, the
    sha256 as they pass, credit granted as they are consumed (``consumed + window``, sent once a
    chunk's worth was consumed since the last grant). Lost chunks are asked for again with a
    resume Credit (PROTOCOL.md §7.9 R1–R3): a chunk that overlaps what it has is trimmed, one
    it has is dropped, a gap or a stall (``resume_after`` without a chunk while it waits for
    granted bytes) asks the worker to go back to the bytes it has. The sink gets each byte
    once, in order."""

    def __init__(self, stream: int, sink: Sink, window: int = CHUNK_WINDOW_BYTES, resume_after: float = RESUME_AFTER):
        self.stream = stream
        self.sink = sink
        self.window = window
        self.granted = window  # the Submit's chunk_window_bytes
        self.received = 0  # R: the bytes taken, in order
        self._sha = hashlib.sha256()
        self._resumer = Resumer(resume_after, time.monotonic())

    def feed(self, offset: int, data: Data) -> Optional[Grant]:
        """Takes the chunk at ``offset`` (or the part of it after what it has); returns the
        Credit to send now, if any: a grant as it consumed, or a resume Credit after a gap."""
        now = time.monotonic()
        part, resume = self._resumer.new_part(offset, data, self.received, now)
        if part is None:
            return Grant(self.granted, self.received) if resume else None
        self.sink.write(part)
        self._sha.update(part)
        self.received += len(part)
        self._resumer.took()
        if self.received + self.window - self.granted >= CHUNK_BYTES:
            self.granted = self.received + self.window
            return Grant(self.granted)
        return None

    def stalled(self, now: float) -> Optional[Grant]:
        """R3: the resume Credit to send now if the stream waits for granted bytes and heard
        nothing for ``resume_after`` (the worker's stream size is unknown until its Result:
        ``granted`` bounds what it may expect)."""
        if self._resumer.stalled(self.received, self.granted, now):
            return Grant(self.granted, self.received)
        return None

    def stall_at(self) -> Optional[float]:
        return self._resumer.stall_at(self.received, self.granted)

    def finish(self, port: str, ref: ChunkedValue) -> Any:
        """The output's value once the Result named this stream for ``port``; WorkerError if the
        stream does not hold exactly the referenced bytes."""
        if self.received != ref.size:
            raise WorkerError(f"output {port}: chunked stream {self.stream}: {self.received} bytes arrived, the reference says {ref.size}")
        if self._sha.digest() != ref.sha256:
            raise WorkerError(f"output {port}: chunked stream {self.stream}: sha256 mismatch")
        return self.sink.value(port, ref)


class CallChunks:
    """The chunked values of one call on the caller's side (its input senders and output
    receivers), driven by the client's I/O thread or event loop. ``send`` sends an encoded
    message to the daemon."""

    def __init__(
        self, senders: List[InputSender], sink_factory: Optional[Callable[[int, int], Sink]], request_id: int,
        resume_after: float = RESUME_AFTER,
    ):  # fmt: skip
        self.senders = {s.stream: s for s in senders}
        self.receivers: Dict[int, OutputReceiver] = {}
        self._sink_factory = sink_factory
        self.request_id = request_id
        self.resume_after = resume_after
        self.closed = False

    def on_credit(self, credit: m.Credit, send: Callable[[Data], Any]) -> None:
        """A worker's grant for one of the inputs (or a resume Credit: back to its offset): the
        chunks it allows go now. Raises Unavailable when a resume asks for bytes the input
        cannot give again (the call ends), ValueError/OSError for an input that cannot be read."""
        s = self.senders.get(credit.stream)
        if s is None or self.closed:
            return
        if credit.resume:
            s.resume(credit.resume_offset, credit.bytes)
        else:
            s.grant(credit.bytes)
        for offset, data in s.due():
            send(client_chunk(self.request_id, s.stream, offset, data))

    def on_chunk(self, chunk: m.Chunk, send: Callable[[Data], Any]) -> None:
        """A chunk of one of the worker's outputs. Raises WorkerError (the call fails) for a
        chunk the stream cannot take, or a sink's error."""
        if self.closed:
            return
        stream = chunk.stream
        r = self.receivers.get(stream)
        if r is None:
            if stream % 2 or stream < 2 or len(self.receivers) >= MAX_CHUNK_STREAMS:
                raise WorkerError(f"a chunk of stream {stream}, which a worker may not open")
            sink = self._sink_factory(stream, self.request_id) if self._sink_factory else MemorySink()
            r = self.receivers[stream] = OutputReceiver(stream, sink, resume_after=self.resume_after)
        grant = r.feed(chunk.offset, chunk.data or b"")
        if grant is not None:
            send(client_credit(self.request_id, stream, grant.total, grant.resume_at))

    def check_stalls(self, now: float, send: Callable[[Data], Any]) -> None:
        """R3 for the output streams: a resume Credit for each that stalled."""
        if self.closed:
            return
        for r in self.receivers.values():
            grant = r.stalled(now)
            if grant is not None:
                send(client_credit(self.request_id, r.stream, grant.total, grant.resume_at))

    def stall_at(self) -> Optional[float]:
        """The earliest time an output stream stalls if nothing comes (None: none can)."""
        times = [t for t in (r.stall_at() for r in self.receivers.values()) if t is not None]
        return min(times) if times and not self.closed else None

    def outputs(self, outputs: Dict[str, Any]) -> Dict[str, Any]:
        """The Result's outputs with each ChunkedValue replaced by its checked value. Raises
        WorkerError (sha256 or size mismatch, a stream that never came)."""
        out = dict(outputs)
        for port, v in outputs.items():
            if isinstance(v, ChunkedValue):
                r = self.receivers.get(v.stream)
                if r is None:
                    if v.size == 0 and v.sha256 == hashlib.sha256().digest() and not v.stream % 2:
                        r = OutputReceiver(v.stream, MemorySink() if self._sink_factory is None else self._sink_factory(v.stream, self.request_id))  # fmt: skip
                    else:
                        raise WorkerError(f"output {port}: chunked stream {v.stream}: no chunks arrived")
                out[port] = r.finish(port, v)
        return out

    def close(self, failed: bool) -> None:
        """The call is over: no more chunks either way; a failed call's sinks drop what they
        held."""
        if self.closed:
            return
        self.closed = True
        for s in self.senders.values():
            s.close()
        if failed:
            for r in self.receivers.values():
                r.sink.discard()


# ---- a worker's output streams -------------------------------------------------------------


def is_stream_output(value: Any) -> bool:
    """An output a handler returns as a stream: a binary file object (``read``), a path, or an
    iterator of bytes (a generator...)."""
    if isinstance(value, (bytes, bytearray, memoryview, str, list, tuple, dict)):
        return False
    return is_file_input(value) or isinstance(value, Iterator)


class OutputPieces:
    """The bytes of an output stream in pieces of at most CHUNK_BYTES, from a file object, a
    path, an iterator of bytes-like pieces or bytes. ``seekable`` sources (bytes, a path, a
    file object that can seek) also read again from any offset already read (``read_at``);
    the others cannot."""

    def __init__(self, value: Any):
        self._file: Optional[IO[bytes]] = None
        self._iter: Optional[Iterator[Any]] = None
        self._view: Optional[memoryview] = None
        self._pos = 0  # bytes handed out by next()
        self._pending = bytearray()
        self._back: Deque[Data] = deque()  # pieces handed back (unread), before the source's next
        self._start = 0  # a seekable file's position at offset 0
        self.seekable = True
        if isinstance(value, (bytes, bytearray, memoryview)):
            self._view = memoryview(value).cast("B")
        elif isinstance(value, pathlib.PurePath):
            self._file = open(value, "rb")
        elif callable(getattr(value, "read", None)):
            self._file = value
            try:
                self.seekable = bool(value.seekable()) if callable(getattr(value, "seekable", None)) else False
                if self.seekable:
                    self._start = value.tell()
            except (OSError, ValueError):
                self.seekable = False
        else:
            self._iter = iter(value)
            self.seekable = False
        self._owned = isinstance(value, pathlib.PurePath)

    def next(self) -> Data:
        """The next piece; empty at the end."""
        if self._back:
            piece = self._back.popleft()
        else:
            piece = self._read()
        self._pos += len(piece)
        return piece

    def unread(self, pieces: List[Data]) -> None:
        """Hands back pieces just read (a read-ahead): next() gives them again first."""
        self._back.extendleft(reversed(pieces))
        self._pos -= sum(len(p) for p in pieces)

    def read_at(self, offset: int, n: int) -> Data:
        """``n`` bytes from ``offset`` of a seekable source (bytes already read: ``offset + n``
        at most what next() gave). ValueError if they cannot be read again."""
        if self._view is not None:
            return self._view[offset : offset + n]
        assert self._file is not None and self.seekable
        where = self._file.tell()
        self._file.seek(self._start + offset)
        block = self._file.read(n)
        self._file.seek(where)
        if not isinstance(block, (bytes, bytearray)) or len(block) != n:
            raise ValueError("the output file changed while it was sent")
        return block

    def _read(self) -> Data:
        if self._view is not None:
            out = self._view[self._pos : self._pos + CHUNK_BYTES]
            return out
        if self._file is not None:
            block = self._file.read(CHUNK_BYTES)
            if not isinstance(block, (bytes, bytearray)):
                raise TypeError(f"an output file must be opened in binary mode (read gave a {type(block).__name__})")
            return block
        assert self._iter is not None
        while len(self._pending) < CHUNK_BYTES:
            try:
                piece = next(self._iter)
            except StopIteration:
                break
            if not isinstance(piece, (bytes, bytearray, memoryview)):
                raise TypeError(f"an output iterator must yield bytes, not {type(piece).__name__}")
            self._pending += piece
        piece_out = bytes(self._pending[:CHUNK_BYTES])
        del self._pending[:CHUNK_BYTES]
        return piece_out

    def close(self) -> None:
        if self._owned and self._file is not None:
            self._file.close()
        close = getattr(self._iter, "close", None)
        if callable(close):
            close()


class OutputSender:
    """One chunked output stream of a worker's call (PROTOCOL.md §7.9): reads its source once,
    hashing each byte the first time it is read, and sends chunks of CHUNK_BYTES, each once
    the caller's grant covers it (the strict send rule). A resume Credit sends it back to its
    offset (R9): the bytes are read again from the source, or, for one that cannot seek, from
    the last RESUME_KEEP_BYTES it sent (R10); a resume further back ends the call
    (``error``). Until it is released it can send again (R11): its first pass runs in the
    handler's thread (``send_all``), what resumes ask after that in the worker's I/O thread
    (``due``).

    ``grant``, ``resume``, ``close`` come from the I/O thread; ``send_all`` blocks its thread
    until the grant covers the next chunk, the stream is closed (an abort) or fails."""

    def __init__(self, port: str, stream: int, pieces: OutputPieces, granted: int, keep: int = RESUME_KEEP_BYTES):
        self.port = port
        self.stream = stream
        self._pieces = pieces
        self._cond = threading.Condition()
        self.granted = granted
        self.next = 0  # the offset of the next chunk to send
        self.sent = 0  # the bytes sent (the furthest chunk's end)
        self.read = 0  # the bytes read from the source and hashed
        self.size: Optional[int] = None  # known once the source ended
        self.passed = False  # the first pass is over: the reference is known, `due` sends resumes
        self.closed = False
        self.error: Optional[str] = None  # a resume it cannot serve: the call fails with it
        self._sha = hashlib.sha256()
        self._rest: Data = b""  # read from the source beyond a chunk, not counted in `read` yet
        self._kept = None if pieces.seekable else KeptBytes(keep)

    # ---- the I/O thread ----

    def grant(self, total: int) -> bool:
        """Raises the grant; True when the I/O thread must send what it allows (``due``)."""
        with self._cond:
            if total > self.granted:
                self.granted = total
                self._cond.notify_all()
            return self.passed and not self.closed

    def resume(self, offset: int, total: int) -> bool:
        """A resume Credit (R9): back to ``offset``, the grant raised to ``total``. One beyond
        what was sent is ignored; one before what can be read again sets ``error``. True when
        the I/O thread must send what it allows (``due``)."""
        with self._cond:
            if self.closed or self.error is not None or offset > self.sent:
                return False
            self.granted = max(self.granted, total)
            if self._kept is not None and offset < self._kept.start:
                self.error = (
                    f"output {self.port}: chunked stream {self.stream}: cannot resume at offset {offset}: the output is not "
                    f"seekable and only its last {self._kept.keep} bytes sent are kept (from offset {self._kept.start})"
                )
            else:
                self.next = offset
            self._cond.notify_all()
            return self.passed and self.error is None

    def due(self) -> Iterator[Tuple[int, Data]]:
        """After the first pass: the chunks the grant allows from where a resume sent it back.
        Sets ``error`` (and stops) when the source cannot give them again."""
        while True:
            with self._cond:
                if self.closed or self.error is not None or self.size is None:
                    return
                offset = self.next
                n = min(CHUNK_BYTES, self.size - offset)
                if n <= 0 or offset + n > self.granted:
                    return
            try:
                data = self._again(offset, n)
            except (OSError, ValueError) as e:
                with self._cond:
                    self.error = f"output {self.port}: chunked stream {self.stream}: cannot resume at offset {offset}: {e}"
                return
            with self._cond:
                if self.next != offset:
                    continue
                self.next = offset + n
            yield offset, data

    def close(self) -> None:
        """No more sending: a blocked ``send_all`` returns None."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def release(self) -> None:
        """Closed for good: the source too (after the first pass, from the I/O thread; during
        it, the handler's thread does it)."""
        self.close()
        self._pieces.close()

    # ---- the handler's thread ----

    def send_all(self, post: Callable[[int, Data], None]) -> Optional[ChunkedValue]:
        """The first pass: every byte of the source, chunk by chunk within the grant, going
        back where resumes ask. Returns the reference (size, sha256 of each byte once) once the
        last chunk went, None if closed first; raises WorkerError for a resume it cannot serve
        (R10) and what the source raises."""
        while True:
            with self._cond:
                if self.closed:
                    return None
                if self.error is not None:
                    raise WorkerError(self.error)
                if self.size is not None and self.next >= self.size:
                    self.passed = True
                    return ChunkedValue(self.stream, self.size, self._sha.digest())
                offset = self.next
            if offset >= self.read:
                data = self._fresh()
                if data is None:
                    continue  # the source ended: `size` is known
            else:
                data = self._again(offset, min(CHUNK_BYTES, self.read - offset))
            with self._cond:
                self._cond.wait_for(
                    lambda: self.closed or self.error is not None or self.next != offset or self.granted >= offset + len(data)
                )
                if self.closed or self.error is not None or self.next != offset:
                    continue  # closed, failed, or sent back meanwhile: decided at the top
                post(offset, data)
                self.next = offset + len(data)
                if self.next > self.sent:
                    self.sent = self.next
                    if self._kept is not None:
                        self._kept.sent_up_to(self.sent)

    def _fresh(self) -> Optional[Data]:
        """The next chunk of new bytes (hashed now, kept if the source cannot seek); None at the
        end of the source (``size`` set)."""
        parts: List[Data] = [self._rest] if len(self._rest) else []
        n = len(self._rest)
        self._rest = b""
        while n < CHUNK_BYTES:
            piece = self._pieces.next()
            if not len(piece):
                break
            parts.append(piece)
            n += len(piece)
        if not n:
            with self._cond:
                self.size = self.read
            return None
        data: Data = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(data) > CHUNK_BYTES:
            view = memoryview(data)
            data, self._rest = bytes(view[:CHUNK_BYTES]), bytes(view[CHUNK_BYTES:])
        self._sha.update(data)
        if self._kept is not None:
            self._kept.add(data)
        self.read += len(data)
        return data

    def _again(self, offset: int, n: int) -> Data:
        """Bytes already read, read again (R10)."""
        if self._kept is not None:
            return self._kept.read_at(offset, n)
        return self._pieces.read_at(offset, n)


# ---- a worker's input streams --------------------------------------------------------------


class InputStream(io.RawIOBase):
    """A chunked input on the worker's side, as a readable binary file object.

    Fed by the worker's I/O thread (``feed``) as chunks arrive; read by the handler: ``read(n)``,
    ``readinto``, iteration by lines, ``read()`` for the rest (sync handlers), ``await
    aread(n)`` (async handlers: waits without blocking the event loop). The worker grants credit
    as the handler reads (``consumed + window``), so at most one window waits here. The sha256 is
    checked when the last byte arrives: a mismatch (or an abort: deadline, cancel) makes the
    next read raise the call's error. ``collect`` streams (a port an ordinary handler gets as
    bytes) consume as they arrive and are handed over whole (``value``)."""

    def __init__(
        self,
        port: str,
        stream: int,
        size: int,
        sha256: bytes,
        grant: Optional[Callable[[int], None]] = None,
        collect: bool = False,
        window: int = CHUNK_WINDOW_BYTES,
        loop_thread: Callable[[], Optional[threading.Thread]] = lambda: None,
        resume_after: float = RESUME_AFTER,
    ):
        super().__init__()
        self.port = port
        self.stream = stream
        self.size = size
        self.window = window
        self.collect = collect
        self._sha256 = sha256
        self._grant = grant
        self._loop_thread = loop_thread
        self._cond = threading.Condition()
        self._pieces: Deque[memoryview] = deque()
        self._buffered = 0
        self.received = 0
        self.consumed = 0
        self.granted = window if size else 0
        self._sha = hashlib.sha256()
        self._resumer = Resumer(resume_after, time.monotonic())
        self._error: Optional[MusterError] = None
        self._async_waiters: AsyncWaiters = []
        # a collect stream's chunks, joined once complete (bytes.join copies without the GIL)
        self._collected: Optional[List[Data]] = [] if collect else None
        if size == 0 and sha256 != hashlib.sha256().digest():  # no chunk will come to check it
            with self._cond:
                self._fail(InvalidRequest(f"input {port}: chunked stream {stream}: sha256 mismatch"))

    @classmethod
    def of_bytes(cls, port: str, data: bytes) -> "InputStream":
        """An inline bytes input read the same way (no chunks, no credit)."""
        s = cls(port, 0, len(data), hashlib.sha256(data).digest())
        if data:
            s.feed(0, data)
        return s

    # ---- the I/O thread ----

    @property
    def complete(self) -> bool:
        return self.received >= self.size

    def feed(self, offset: int, data: Data) -> Optional[Grant]:
        """Takes one chunk, or the part of it after what it has (PROTOCOL.md §7.9 R1). Returns
        the Credit to send now, if any: the grant it earns (collect streams), or a resume
        Credit after a gap (R2; the chunk is dropped). A chunk beyond the size, or a sha256
        mismatch, fails the stream (``error`` is then set: the call fails INVALID_REQUEST)."""
        with self._cond:
            if self._error is not None:
                return None
            now = time.monotonic()
            part, resume = self._resumer.new_part(offset, data, self.received, now)
            if part is None:
                return Grant(self.granted, self.received) if resume else None
            n = len(part)
            if self.received + n > self.size:
                self._fail(InvalidRequest(f"input {self.port}: chunked stream {self.stream}: chunks beyond its size of {self.size} bytes"))
                return None
            self._sha.update(part)
            self.received += n
            self._resumer.took()
            if self._collected is not None:
                self._collected.append(part)
            else:
                self._pieces.append(memoryview(part).cast("B") if not isinstance(part, memoryview) else part)
                self._buffered += n
            if self.received == self.size and self._sha.digest() != self._sha256:
                self._fail(InvalidRequest(f"input {self.port}: chunked stream {self.stream}: sha256 mismatch"))
                return None
            self._wake()
            if self._collected is not None:
                total = self._consumed(n)
                return Grant(total) if total is not None else None
            return None

    def stalled(self, now: float) -> Optional[Grant]:
        """R3: the resume Credit to send now if the stream waits for bytes it granted and heard
        nothing for ``resume_after`` (again each further ``resume_after``)."""
        with self._cond:
            if self._error is not None or not self._resumer.stalled(self.received, min(self.granted, self.size), now):
                return None
            return Grant(self.granted, self.received)

    def stall_at(self) -> Optional[float]:
        """When the stream stalls if nothing comes (None: it waits for nothing)."""
        with self._cond:
            if self._error is not None:
                return None
            return self._resumer.stall_at(self.received, min(self.granted, self.size))

    def resume_now(self) -> Optional[Grant]:
        """R4 (the worker attached again to the same daemon instance): a resume Credit at what
        it has, unless it has it all."""
        with self._cond:
            if self._error is not None or self.complete:
                return None
            self._resumer.asked(time.monotonic())
            return Grant(self.granted, self.received)

    def fail(self, error: MusterError) -> None:
        """The call is over (abort, the worker stopping): readers get ``error``."""
        with self._cond:
            if self._error is None and not (self.complete and self._collected is not None):
                self._fail(error)

    def _fail(self, error: MusterError) -> None:
        self._error = error
        self._pieces.clear()
        self._buffered = 0
        self._collected = None
        self._wake()

    @property
    def error(self) -> Optional[MusterError]:
        return self._error

    def value(self) -> bytes:
        """A collect stream's bytes, once complete (one copy; call it off the I/O thread)."""
        with self._cond:
            assert self._collected is not None and self.complete
            pieces, self._collected = self._collected, []
        out = b"".join(pieces)
        with self._cond:
            self._collected = [out]  # asked again: the same bytes
        return out

    # ---- the reader ----

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if not len(view):
            return 0
        if threading.current_thread() is self._loop_thread():
            raise RuntimeError(f"input {self.port}: a blocking read would stall the worker's event loop: use `await stream.aread(n)`")
        with self._cond:
            self._cond.wait_for(lambda: self._ready())
            return self._take(view)

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buf = bytearray(size)
        n = self.readinto(buf)
        del buf[n:]
        return bytes(buf)

    def readall(self) -> bytes:
        out = bytearray()
        while True:
            block = self.read(CHUNK_BYTES)
            if not block:
                return bytes(out)
            out += block

    async def aread(self, size: int = -1) -> bytes:
        """``read`` for async handlers: waits for chunks without blocking the event loop."""
        if size < 0:
            out = bytearray()
            while True:
                block = await self.aread(CHUNK_BYTES)
                if not block:
                    return bytes(out)
                out += block
        buf = bytearray(size)
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._ready():
                    n = self._take(memoryview(buf))
                    del buf[n:]
                    return bytes(buf)
                waiter: "asyncio.Future[None]" = loop.create_future()
                self._async_waiters.append((loop, waiter))
            await waiter

    def __aiter__(self) -> "InputStream":
        return self

    async def __anext__(self) -> bytes:
        block = await self.aread(CHUNK_BYTES)
        if not block:
            raise StopAsyncIteration
        return block

    def _ready(self) -> bool:
        return self._error is not None or self._buffered > 0 or self.consumed >= self.size

    def _take(self, view: memoryview) -> int:
        if self._error is not None:
            raise self._error
        n = 0
        while n < len(view) and self._pieces:
            piece = self._pieces[0]
            k = min(len(piece), len(view) - n)
            view[n : n + k] = piece[:k]
            n += k
            if k == len(piece):
                self._pieces.popleft()
            else:
                self._pieces[0] = piece[k:]
        self._buffered -= n
        grant = self._consumed(n)
        if grant is not None and self._grant is not None:
            self._grant(grant)
        return n

    def _consumed(self, n: int) -> Optional[int]:
        self.consumed += n
        want = min(self.consumed + self.window, self.size)  # never past the size
        if want > self.granted and (want - self.granted >= CHUNK_BYTES or want == self.size):
            self.granted = want
            return want
        return None

    def _wake(self) -> None:
        wake_all(self._cond, self._async_waiters)

    def __repr__(self) -> str:
        return f"<InputStream {self.port} stream {self.stream}: {self.consumed}/{self.size} bytes read>"


def chunk_error(error: BaseException, what: str) -> MusterError:
    """The error a call fails with locally when a chunked value breaks on the caller's side:
    ``error`` itself if it is a MusterError; else WORKER_ERROR for an output (a sink that
    failed), INVALID_REQUEST for an input (a file that cannot be read)."""
    if isinstance(error, MusterError):
        return error
    code = ErrorCode.WORKER_ERROR if what == "output" else ErrorCode.INVALID_REQUEST
    return MusterError(code, f"{what}: {type(error).__name__}: {error}")


def abort_error(code: Optional[ErrorCode], reason: str) -> MusterError:
    return MusterError(code or ErrorCode.CANCELLED, reason or "aborted")


__all__ = [
    "CHUNK_BYTES", "CHUNK_WINDOW_BYTES", "DEFAULT_CHUNK_THRESHOLD", "MAX_CHUNK_STREAMS", "DURABLE_CHUNKED", "credit_body",
    "ChunkSource", "BytesSource", "FileSource", "InputSender", "split_inputs", "Sink", "MemorySink", "WriterSink",
    "DirectorySink", "check_sinks", "OutputReceiver", "CallChunks", "OutputSender", "OutputPieces",
    "is_stream_output", "InputStream", "chunk_error", "client_chunk", "worker_chunk", "client_credit",
]  # fmt: skip
