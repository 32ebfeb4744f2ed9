"""The cached-layout encoders (muster.templates) write exactly what messages.encode writes, for
every shape: zero and non-zero scalars, short and long worker ids, payloads of many sizes."""

from __future__ import annotations

import itertools

from muster import messages as m
from muster import templates
from muster.values import encode_values


def test_worker_item_is_byte_for_byte_messages_encode():
    payloads = [encode_values({}), encode_values({"i": 1}), encode_values({"s": "x" * 1000, "n": 2.5})]
    for wid, rid, seq, payload in itertools.product(["w", "py-worker-1", "x" * 64], [0, 1, 2**64 - 1],
                                                    [0, 1, 7, 2**40], payloads):
        for _ in range(2):  # learned, then from the cache
            got = templates.worker_item(wid, rid, seq, payload)
            want = m.encode(m.WorkerMessage(worker_id=wid, body=m.Item(request_id=rid, seq=seq, values=payload)))  # type: ignore[arg-type]
            assert got == want, (wid, rid, seq, len(payload))
            assert m.decode_worker_message(got).body.seq == seq


def test_client_credit_is_byte_for_byte_messages_encode():
    for rid, stream, items, nbytes in itertools.product([0, 5, 2**64 - 1], [0, 3, 2**32 - 1], [0, 1, 10**9], [0, 1 << 20]):
        for _ in range(2):
            got = templates.client_credit(rid, stream, items, nbytes)
            want = m.encode(m.ClientMessage(request_id=rid, body=m.Credit(request_id=rid, stream=stream, items=items, bytes=nbytes)))
            assert got == want, (rid, stream, items, nbytes)
