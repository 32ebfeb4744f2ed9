"""resume.py — resumption of a chunked stream (PROTOCOL.md §7.9 "Resumption", rules R1–R3 and
R10), the pieces both ends of the Python SDK share.

Chunks can be lost while both ends live on (the daemon's PUB drops what it holds for a worker
that reconnects, a connection that breaks loses what was on the way). The receiver then asks
the sender to go back with a **resume Credit** at ``R``, the bytes it has in order; the sender
sends again from ``R``.

Owns: the constants (``RESUME_AFTER``, ``RESUME_KEEP_BYTES``); ``Grant`` (a Credit to send:
the cumulative grant, and for a resume Credit the offset it asks for); ``Resumer`` (one
receiving stream's R1–R3: where a chunk goes — taken, trimmed, dropped, or a gap — and when a
resume Credit is due); ``KeptBytes`` (the last bytes a sender that cannot seek sent, to read
them again, R10). Must never: let a receiver take a byte twice or skip one; ask again for the
same loss before ``resume_after`` went by without a chunk taken; hand back bytes it no longer
holds (it says how far back it can go instead).
"""

from __future__ import annotations

from collections import deque
from typing import Deque, List, NamedTuple, Optional, Tuple, Union

#: A receiver that granted bytes it has not received and heard no chunk of the stream for this
#: long (seconds) sends a resume Credit (R3); after a gap it sends at most one per this long
#: (R2). The ``resume_after`` option of Worker, Client and AsyncClient defaults to it.
RESUME_AFTER = 2.0
#: A sender whose source cannot be read again (an iterator, a pipe) keeps the last this many
#: bytes it sent (``kResumeKeepBytes``, R10): more than any receiver's window plus a chunk.
RESUME_KEEP_BYTES = 16 << 20

Data = Union[bytes, bytearray, memoryview]


class Grant(NamedTuple):
    """A Credit a receiver sends: the cumulative grant ``total``; with ``resume_at`` (not None)
    a resume Credit (``Credit.resume``, ``Credit.resume_offset``)."""

    total: int
    resume_at: Optional[int] = None


def check_resume_after(value: float) -> float:
    """The ``resume_after`` option, checked: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"resume_after must be a positive number of seconds, got {value!r}")
    return float(value)


class Resumer:
    """The receiving side of one stream's resumption (R1–R3). It holds no bytes: its owner
    keeps ``R`` (the bytes received in order) and asks it where each chunk goes and whether a
    resume Credit is due. Not thread-safe: its owner's lock guards it."""

    def __init__(self, resume_after: float, now: float):
        self.resume_after = resume_after
        self._heard = now  # a chunk of the stream last came (or the stream opened)
        self._asked: Optional[float] = None  # a resume Credit went then, and no chunk was taken since

    def new_part(self, offset: int, data: Data, have: int, now: float) -> Tuple[Optional[Data], bool]:
        """R1 and R2 for the chunk ``data`` at ``offset``, the receiver having ``have`` bytes: its
        bytes not here yet (``data[have - offset:]``; None when it brings none: all of them are
        here, sent again before the sender went back, or it lies past a gap) and whether a
        resume Credit is due now (a gap: ``gap``)."""
        self._heard = now
        if offset > have:
            return None, self.gap(now)
        k = min(len(data), have - offset)
        if k == len(data):
            return None, False
        return (data[k:] if k else data), False

    def took(self) -> None:
        """Bytes were taken: a later loss is a new one (R2)."""
        self._asked = None

    def gap(self, now: float) -> bool:
        """R2: a resume Credit is due for this gap, unless one went less than ``resume_after``
        ago with no chunk taken since (one Credit per loss, not one per chunk after it)."""
        if self._asked is not None and now - self._asked < self.resume_after:
            return False
        self._asked = now
        return True

    def stall_at(self, have: int, expected: int) -> Optional[float]:
        """When the stream stalls (R3) if nothing comes: None while it has all it may expect
        (``expected``: what it granted, within the value's size when known)."""
        if have >= expected:
            return None
        return max(self._heard, self._asked or self._heard) + self.resume_after

    def stalled(self, have: int, expected: int, now: float) -> bool:
        """R3: it granted bytes it has not received and no chunk came (nor did it ask) for
        ``resume_after``: a resume Credit is due now (and again each further ``resume_after``)."""
        at = self.stall_at(have, expected)
        if at is None or now < at:
            return False
        self._asked = now
        return True

    def asked(self, now: float) -> None:
        """A resume Credit went for another reason (R4: the worker attached again)."""
        self._asked = now


class KeptBytes:
    """The last bytes a sender read from a source it cannot read again (R10): at least ``keep``
    bytes behind what it sent, as the pieces it read. ``start`` is the first offset it can
    give back."""

    def __init__(self, keep: int = RESUME_KEEP_BYTES):
        self.keep = keep
        self._pieces: Deque[Tuple[int, Data]] = deque()
        self.start = 0
        self.end = 0

    def add(self, data: Data) -> None:
        if len(data):
            self._pieces.append((self.end, data))
            self.end += len(data)

    def sent_up_to(self, offset: int) -> None:
        """The bytes before ``offset`` went out: pieces wholly before ``offset - keep`` go."""
        while self._pieces and self._pieces[0][0] + len(self._pieces[0][1]) <= offset - self.keep:
            first, data = self._pieces.popleft()
            self.start = first + len(data)

    def read_at(self, offset: int, n: int) -> Data:
        """``n`` bytes from ``offset`` (``start <= offset``, ``offset + n <= end``)."""
        assert self.start <= offset and offset + n <= self.end
        out: List[Data] = []
        want = n
        for first, data in self._pieces:
            if first + len(data) <= offset:
                continue
            k = offset - first
            part = memoryview(data)[k : k + want]
            out.append(part)
            want -= len(part)
            offset += len(part)
            if not want:
                break
        return out[0] if len(out) == 1 else b"".join(out)


__all__ = ["RESUME_AFTER", "RESUME_KEEP_BYTES", "Grant", "Resumer", "KeptBytes", "check_resume_after"]
