"""cli.py — the command line of Python workers: ``python -m muster.worker`` and the example
workers share these flags, named as in the C++ programs.

Owns: flag parsing (the log flags' formats live in muster/log.py), building a Worker from
flags, and running it until a signal.
Must never: leave the process running after SIGINT/SIGTERM beyond the shutdown grace.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, List, Optional, Sequence, Set

from .._version import SDK
from ..log import LOG_FORMATS, LOG_LEVELS, setup_logging
from ..endpoints import check_endpoint
from ..enrollment import EnrollmentError
from ..nodes import Node
from . import Worker

def program_name(default: str) -> str:
    """The name the program was started by, for ``--help`` and errors: the console script's
    own name (``muster-python-worker``), or ``default`` under ``python -m``/a .py file."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not argv0 or argv0.endswith(".py") or argv0 in ("-c", "-m"):
        return default
    return argv0


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request-address", help="the daemon's request (PUB) endpoint (default: ipc://$RUNTIME/request.sock)")
    parser.add_argument("--response-address", help="the daemon's response (ROUTER) endpoint (default: ipc://$RUNTIME/response.sock)")
    parser.add_argument("--worker-id", help="worker id, [A-Za-z0-9_.-]{1,64} (default: py-<host>-<pid>)")
    parser.add_argument("--capacity", type=int, default=4, help="requests run at once (default 4)")
    parser.add_argument("--log-level", default="info", choices=sorted(LOG_LEVELS, key=LOG_LEVELS.__getitem__), metavar="LEVEL",
                        help="trace, debug, info, warn, error, off (default info)")
    parser.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                        help="text (TIME LEVEL [component] message key=value) or json, one object per line (default text)")
    parser.add_argument("--insecure", action="store_true", help="allow tcp:// endpoints without CURVE")
    parser.add_argument("--data-dir", help="where this worker keeps its CURVE keys and identity (<name>-curve.key, "
                        "<name>-identity.json) for tcp:// endpoints (default: $MUSTER_DATA_DIR, else $XDG_DATA_HOME/muster, "
                        "else ~/.local/share/muster)")
    parser.add_argument("--enrollment-address", help="the daemon's enrollment endpoint, used once to enroll "
                        "(default: tcp://<host of --response-address>:7900)")
    parser.add_argument("--enrollment-token-file", help="file holding the enrollment token (used when "
                        "MUSTER_ENROLLMENT_TOKEN is not set; default $XDG_CONFIG_HOME/muster/enrollment-token)")
    parser.add_argument("--name", dest="identity_name", default="worker", help="file name stem of the keys and identity in "
                        "--data-dir (default: worker)")
    parser.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds to finish open requests on shutdown (default 10)")
    parser.add_argument("--no-direct", dest="direct", action="store_false",
                        help="keep two connections to the daemon, a SUB and a DEALER, instead of asking for everything on the "
                        "DEALER (docs/PROTOCOL.md §7.10)")


def worker_from_args(args: argparse.Namespace) -> Worker:
    for ep in (args.request_address, args.response_address, getattr(args, "enrollment_address", None)):
        if ep:
            try:
                check_endpoint(ep, None, True)  # tcp:// without --insecure: keys from enrollment
            except ValueError as e:
                raise SystemExit(f"error: {e}")
    try:
        return Worker(
            worker_id=args.worker_id,
            capacity=args.capacity,
            request_address=args.request_address,
            response_address=args.response_address,
            insecure=args.insecure,
            data_dir=getattr(args, "data_dir", None),
            enrollment_address=getattr(args, "enrollment_address", None),
            enrollment_token_file=getattr(args, "enrollment_token_file", None),
            name=getattr(args, "identity_name", None) or "worker",
            shutdown_grace=args.shutdown_grace,
            direct=getattr(args, "direct", True),
        )
    except ValueError as e:
        raise SystemExit(f"error: {e}")


def run_worker(worker: Worker) -> int:
    """Runs until a signal or stop(); then exits even if a handler thread ignores its abort.
    A failed enrollment ends the program with ``error: CODE: message`` and status 1."""
    try:
        worker.ensure_keys()
    except EnrollmentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    worker.run()
    if worker.busy_handlers:
        logging.getLogger("muster.worker").warning(
            "%d handler(s) still running after shutdown: exiting anyway", worker.busy_handlers
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    prog = program_name("python -m muster.worker")
    parser = argparse.ArgumentParser(prog=prog, description=f"Serve Python nodes to musterd ({SDK}).")
    add_worker_arguments(parser)
    parser.add_argument("--nodes-dir", help="load every node.py below this directory, and reload changed files")
    parser.add_argument("--reload-interval", type=float, default=1.0, help="seconds between checks for changed node files (default 1; 0: never)")
    parser.add_argument("files", nargs="*", help="more Python files declaring nodes with @muster.node")
    args = parser.parse_args(argv)
    setup_logging(args.log_level, prog, args.log_format)
    if not args.nodes_dir and not args.files:
        parser.error("give --nodes-dir DIR or node files to serve")
    worker = worker_from_args(args)

    from ..nodes_dir import NodesDirectory, load_file, watch

    directory: Optional[NodesDirectory] = None
    if args.nodes_dir:
        try:
            directory = NodesDirectory(args.nodes_dir)
        except ValueError as e:
            raise SystemExit(f"error: {e}")
    extra: List[Node] = []
    for f in args.files:
        try:
            extra.extend(load_file(f))
        except Exception as e:  # noqa: BLE001
            raise SystemExit(f"error: {f}: {type(e).__name__}: {e}")

    def load_all() -> List[Node]:
        nodes = list(extra)
        if directory is not None:
            nodes.extend(directory.load())
        return _dedupe(nodes)

    worker.set_nodes(load_all())
    if directory is not None and args.reload_interval > 0:
        watched = directory

        class _Source:
            root = watched.root

            def changed(self) -> bool:
                return watched.changed()

            def load(self) -> List[Node]:
                return load_all()

        watch(_Source(), worker, args.reload_interval)
    return run_worker(worker)


def _dedupe(nodes: List[Node]) -> List[Node]:
    seen: Set[str] = set()
    out: List[Node] = []
    for n in nodes:
        if n.name in seen:
            logging.getLogger("muster.worker").error("node %s declared twice: keeping the first", n.name)
            continue
        seen.add(n.name)
        out.append(n)
    return out
