#!/usr/bin/env python3
"""gateway_whoami_worker.py — a Python test worker for tests/integration/test_gateway.py: its
nodes tell who called them, as the daemon stamped it (the caller context).

    <prefix>whoami  {} -> {identity, name, workspace, role}: the request's caller context
    <prefix>hold    {} -> waits until the request is aborted (at most 60 s); on an abort it
                         appends "<abort code> <caller name>" to --abort-log, then fails

Takes the worker flags of the SDK (muster.worker.cli) plus --prefix and --abort-log."""
from __future__ import annotations

import argparse

import muster
from muster.worker.cli import add_worker_arguments, run_worker, setup_logging, worker_from_args


def main() -> int:
    parser = argparse.ArgumentParser()
    add_worker_arguments(parser)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--abort-log", help="file that gets one line per aborted hold")
    args = parser.parse_args()
    setup_logging(args.log_level, "whoami-worker")
    worker = worker_from_args(args)

    @worker.node(name=args.prefix + "whoami", description="Returns its caller context.", category="tests")
    def whoami(ctx):
        c = ctx.caller
        return {"identity": c.identity, "name": c.name, "workspace": c.workspace, "role": c.role}

    @worker.node(name=args.prefix + "hold", description="Waits until aborted.", category="tests")
    def hold(ctx):
        if ctx.wait_aborted(60) and args.abort_log:
            with open(args.abort_log, "a") as f:
                f.write(f"{ctx.abort_code.name if ctx.abort_code else '?'} {ctx.caller.name}\n")
        ctx.check_aborted()
        return {}

    return run_worker(worker)


if __name__ == "__main__":
    raise SystemExit(main())
