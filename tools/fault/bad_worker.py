#!/usr/bin/env python3
"""bad_worker.py — a worker that answers pings but never answers work (a fault for the fault
driver, docs/RELIABILITY.md).

It follows docs/PROTOCOL.md §7 for everything except the work: subscribes to b: before attaching
and to the topic Attached assigns,
answers every Ping with a Pong, attaches again when the daemon restarts or tells it to, and
reconnects when pings stop. WorkRequests are swallowed. Modes for what its Pongs claim:

  --mode hold     lists every request it received, forever: its slots stay taken, so the
                  daemon stops dispatching to it once its capacity is used (a hung worker);
  --mode forget   (default) lists a request until the daemon aborts it, then forgets it: its
                  slots free up and it keeps eating requests, each of which must time out;
  --mode deny     never lists anything: the daemon believes every request was lost on the way
                  and sends it again, until the deadline.

Usage: bad_worker.py --request-address EP --response-address EP [--worker-id ID]
                     [--node echo[:idem]]... [--capacity N] [--mode forget]
Stops on SIGTERM/SIGINT; exits by itself after --max-seconds (default 3600).
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--request-address", required=True)
    ap.add_argument("--response-address", required=True)
    ap.add_argument("--worker-id", default=f"bad-{os.getpid()}")
    ap.add_argument("--node", action="append", default=[],
                    help="node to serve, NAME or NAME:idem (idempotent); default echo:idem")
    ap.add_argument("--capacity", type=int, default=2)
    ap.add_argument("--mode", choices=["hold", "forget", "deny"], default="forget")
    ap.add_argument("--max-seconds", type=float, default=3600)
    args = ap.parse_args()
    nodes = [(n.split(":")[0], n.endswith(":idem")) for n in (args.node or ["echo:idem"])]

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    ctx = zmq.Context()
    session = secrets.token_hex(8)
    held: dict[int, bool] = {}  # request id -> aborted
    swallowed = 0
    instance = ""
    ping_interval, liveness = 1.0, 3
    sub = dealer = None
    topic = ""  # Attached.topic, subscribed on the current SUB socket

    def connect():
        nonlocal sub, dealer, topic
        for s in (sub, dealer):
            if s is not None:
                s.close(0)
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.setsockopt(zmq.SUBSCRIBE, b"b:")
        topic = ""
        sub.connect(args.request_address)
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(args.response_address)

    def send(data: bytes):
        try:
            dealer.send(data, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def do_attach():
        send(wire.attach(args.worker_id, session, args.capacity, nodes, pid=os.getpid()))

    connect()
    do_attach()
    last_ping = time.monotonic()
    end = time.monotonic() + args.max_seconds
    poller = zmq.Poller()

    while not stop and time.monotonic() < end:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(dealer, zmq.POLLIN)
        events = dict(poller.poll(100))
        if dealer in events:
            while True:
                try:
                    frames = dealer.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = wire.read_daemon(frames[-1])
                if msg is None:
                    continue
                if msg.kind == wire.DAEMON_ATTACHED:
                    instance = msg.instance
                    if msg.topic and msg.topic != topic:
                        if topic:
                            sub.setsockopt(zmq.UNSUBSCRIBE, topic.encode())
                        sub.setsockopt(zmq.SUBSCRIBE, msg.topic.encode())
                        topic = msg.topic
                elif msg.kind == wire.DAEMON_REJECTED and msg.reattach:
                    do_attach()
        if sub in events:
            while True:
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = wire.read_daemon(frames[-1])
                if msg is None:
                    continue
                if msg.kind == wire.DAEMON_PING:
                    last_ping = time.monotonic()
                    if instance and msg.instance != instance:
                        instance = ""
                        held.clear()
                        do_attach()
                        continue
                    listed = [] if args.mode == "deny" else sorted(
                        rid for rid, aborted in held.items() if args.mode == "hold" or not aborted)
                    send(wire.pong(args.worker_id, msg.seq, msg.instance, listed))
                elif msg.kind == wire.DAEMON_WORK:
                    if msg.request_id not in held:
                        swallowed += 1
                    held.setdefault(msg.request_id, False)
                elif msg.kind == wire.DAEMON_ABORT:
                    if msg.request_id in held:
                        if args.mode == "hold":
                            held[msg.request_id] = True
                        else:
                            del held[msg.request_id]
        if time.monotonic() - last_ping > ping_interval * liveness * 2:
            # No pings: the daemon is gone or the path is cut. Reconnect and attach again.
            connect()
            instance = ""
            do_attach()
            last_ping = time.monotonic()
    print(f"bad worker {args.worker_id}: swallowed {swallowed} request(s)", flush=True)
    for s in (sub, dealer):
        s.close(0)
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
