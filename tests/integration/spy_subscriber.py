"""spy_subscriber.py — an enrolled worker identity that tries to read other workers' traffic on
musterd's request socket (test_security.py, issue 12 item 1). It enrolls (or reuses its
identity), connects a SUB socket over CURVE, subscribes to every topic given, prints "ready"
(and "receiving" at the first message), then records the topic and body type of everything it receives until SIGTERM, and prints them
as one JSON line: {"received": [[topic, body type], ...]}.

usage: spy_subscriber.py REQUEST_ENDPOINT ENROLLMENT_ENDPOINT DATA_DIR TOPIC... (token in
$MUSTER_ENROLLMENT_TOKEN; a topic "-" stands for the empty topic)
"""
from __future__ import annotations

import json
import signal
import sys
import time

import zmq

from muster import messages as m
from muster.enrollment import prepare_curve


def main() -> int:
    request, enrollment, data_dir, *topics = sys.argv[1:]
    curve = prepare_curve([request], role="worker", name="spy", data_dir=data_dir,
                          enrollment_address=enrollment, timeout=10)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    curve.apply(sub)
    for t in topics:
        sub.setsockopt(zmq.SUBSCRIBE, b"" if t == "-" else t.encode())
    sub.connect(request)
    print("ready", flush=True)
    received = []
    end = time.monotonic() + 120
    while not stop and time.monotonic() < end:
        if not sub.poll(100):
            continue
        frames = sub.recv_multipart()
        try:
            kind = type(m.decode_daemon_message(frames[-1]).body).__name__
        except Exception:  # noqa: BLE001 - anything that is not a DaemonMessage is recorded as such
            kind = "undecodable"
        if not received:
            print("receiving", flush=True)  # every subscription before this one was processed
        received.append([frames[0].decode(errors="replace"), kind])
    print(json.dumps({"received": received}), flush=True)
    sub.close(0)
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
