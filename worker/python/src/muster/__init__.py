"""muster — the Python SDK of the muster worker broker.

Workers serve nodes to ``musterd``; clients call them. See worker/python/README.md.

    import muster

    worker = muster.Worker(capacity=4)

    @worker.node(name="hello", inputs={"name": "string"}, outputs=["greeting"])
    def hello(ctx):
        return {"greeting": f"Hello {ctx.inputs.get('name') or 'world'}"}

    worker.run()

    with muster.Client() as client:
        print(client.call("hello", {"name": "Ada"}))
"""

from ._version import SDK, __version__
from .aio import AsyncCall, AsyncClient, Progress
from .chunks import CHUNK_BYTES, CHUNK_WINDOW_BYTES, DEFAULT_CHUNK_THRESHOLD, InputStream
from .resume import RESUME_AFTER, RESUME_KEEP_BYTES
from .client import Call, Client
from .credit import StreamNotRequested
from .endpoints import Curve, default_endpoint, runtime_dir
from .enrollment import EnrollmentError
from .keys import DaemonKeyMismatch, NotEnrolled, TokenFormatError, parse_token
from .errors import (
    BadMessage,
    Cancelled,
    ErrorCode,
    Internal,
    InvalidRequest,
    MusterError,
    NoWorker,
    PermissionDenied,
    QueueFull,
    ShuttingDown,
    Timeout,
    Unavailable,
    WorkerError,
    WorkerLost,
    error_for,
)
from .log import setup_logging
from .jobs import Job
from .messages import NO_DEFAULT, Event, EventKind, JobInfo, JobState, NodeSpec, Port
from .nodes import Node, Registry, add_node, node
from .errors import deprecated_alias as _deprecated_alias
from .values import ChunkedValue, ErrorValue
from .watch import Watch
from .worker import Caller, Context, Worker
from .stream import AsyncStream, Stream

__all__ = [
    "__version__",
    "SDK",
    "Worker",
    "Context",
    "Caller",
    "Client",
    "Watch",
    "Event",
    "EventKind",
    "Call",
    "AsyncClient",
    "AsyncCall",
    "Stream",
    "AsyncStream",
    "StreamNotRequested",
    "Progress",
    "Job",
    "JobInfo",
    "JobState",
    "setup_logging",
    "Curve",
    "EnrollmentError",
    "DaemonKeyMismatch",
    "NotEnrolled",
    "TokenFormatError",
    "parse_token",
    "runtime_dir",
    "default_endpoint",
    "ErrorCode",
    "ChunkedValue",
    "InputStream",
    "CHUNK_BYTES",
    "CHUNK_WINDOW_BYTES",
    "DEFAULT_CHUNK_THRESHOLD",
    "RESUME_AFTER",
    "RESUME_KEEP_BYTES",
    "ErrorValue",
    "MusterError",
    "error_for",
    "NoWorker",
    "Timeout",
    "WorkerLost",
    "Cancelled",
    "InvalidRequest",
    "PermissionDenied",
    "QueueFull",
    "WorkerError",
    "BadMessage",
    "Internal",
    "ShuttingDown",
    "Unavailable",
    "Port",
    "NodeSpec",
    "NO_DEFAULT",
    "Node",
    "Registry",
    "node",
    "add_node",
]


def __getattr__(name: str) -> object:
    # Deprecated names (muster.InvalidInput): a DeprecationWarning, then the protocol's class.
    return _deprecated_alias(__name__, name)
