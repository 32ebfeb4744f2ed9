"""errors.py — the closed set of muster error codes (schema/common.fbs ``ErrorCode``) and the
Python exceptions they map to.

Owns: code <-> name <-> exception class. Each class is named as its code in schema/common.fbs
(``InvalidRequest`` for ``InvalidRequest``), on the worker's side and the caller's alike; the
printed names are the ones every muster program prints ("NO_WORKER", "WORKER_ERROR", ...), as
in ``error: CODE: message`` from the CLI. Old names (``InvalidInput``) are deprecated aliases.
Must never: renumber a code; the values are the wire values.
"""

from __future__ import annotations

import enum
import warnings
from typing import Any, Dict, Optional, Tuple, Type, Union


class ErrorCode(enum.IntEnum):
    NONE = 0
    NO_WORKER = 1
    TIMEOUT = 2
    WORKER_LOST = 3
    CANCELLED = 4
    INVALID_REQUEST = 5
    PERMISSION_DENIED = 6
    QUEUE_FULL = 7
    WORKER_ERROR = 8
    BAD_MESSAGE = 9
    INTERNAL = 10
    SHUTTING_DOWN = 11
    UNAVAILABLE = 12

    @classmethod
    def parse(cls, value: Union["ErrorCode", int, str]) -> "ErrorCode":
        """Accepts a code, its wire value, its name ("WORKER_ERROR") or its schema name
        ("WorkerError")."""
        if isinstance(value, ErrorCode):
            return value
        if isinstance(value, bool):
            raise ValueError(f"not an error code: {value!r}")
        if isinstance(value, int):
            return cls(value)
        if isinstance(value, str):
            if value in cls.__members__:
                return cls[value]
            for member in cls:
                if member.schema_name == value:
                    return member
        raise ValueError(f"not an error code: {value!r}")

    @property
    def schema_name(self) -> str:
        """The enumerator's name in schema/common.fbs ("WorkerError")."""
        return "".join(part.capitalize() for part in self.name.split("_"))


def code_name(code: Union[ErrorCode, int]) -> str:
    """The printed name of a code; an unknown value (from a newer peer) is "UNKNOWN"."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return "UNKNOWN"


class MusterError(Exception):
    """A muster failure with its error code. ``str(e)`` is ``CODE: message``.

    Raise a ``MusterError`` (or a subclass) from node code to fail a request with that code;
    any other exception fails it with WORKER_ERROR.
    """

    default_code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, code: Union[ErrorCode, int, str, None] = None, message: str = ""):
        if code is None:
            code = self.default_code
        try:
            self.code = ErrorCode.parse(code)
        except ValueError:
            # A code this SDK does not know (newer daemon): keep the number.
            self.code = code  # type: ignore[assignment]
        self.message = message
        super().__init__(f"{code_name(self.code)}: {message}" if message else code_name(self.code))

    @property
    def code_name(self) -> str:
        return code_name(self.code)

    def __reduce__(self) -> Tuple[Any, Tuple[Any, str]]:
        return (error_for, (self.code, self.message))


class _CodedError(MusterError):
    """Base of the one class per code: ``NoWorker("message")``."""

    def __init__(self, message: str = "", code: Union[ErrorCode, int, str, None] = None):
        super().__init__(code if code is not None else type(self).default_code, message)


class NoWorker(_CodedError):
    """No live worker serves the node."""

    default_code = ErrorCode.NO_WORKER


class Timeout(_CodedError):
    """The deadline passed before a result arrived."""

    default_code = ErrorCode.TIMEOUT


class WorkerLost(_CodedError):
    """The worker died holding the request."""

    default_code = ErrorCode.WORKER_LOST


class Cancelled(_CodedError):
    """The caller cancelled the request."""

    default_code = ErrorCode.CANCELLED


class InvalidRequest(_CodedError):
    """A well-formed message with unacceptable content (from a worker: inputs it cannot accept)."""

    default_code = ErrorCode.INVALID_REQUEST


class PermissionDenied(_CodedError):
    """The identity may not do this."""

    default_code = ErrorCode.PERMISSION_DENIED


class QueueFull(_CodedError):
    """All workers busy and the queue is full."""

    default_code = ErrorCode.QUEUE_FULL


class WorkerError(_CodedError):
    """Raised by a node's own code: fails the request."""

    default_code = ErrorCode.WORKER_ERROR


class BadMessage(_CodedError):
    """Bytes that are not a verifiable message of the type. ``request_id`` is the request id
    of the message when its envelope was readable and had one (set by messages.decode)."""

    default_code = ErrorCode.BAD_MESSAGE
    request_id: Optional[int] = None


class Internal(_CodedError):
    """A bug in muster."""

    default_code = ErrorCode.INTERNAL


class ShuttingDown(_CodedError):
    """The daemon is stopping and did not finish."""

    default_code = ErrorCode.SHUTTING_DOWN


class Unavailable(_CodedError):
    """The daemon could not be reached or the connection was lost."""

    default_code = ErrorCode.UNAVAILABLE

# Names kept for old code: each warns (DeprecationWarning) and is the class of the protocol's
# name. A worker raises, and a caller catches, the same InvalidRequest.
DEPRECATED_ALIASES: Dict[str, Tuple[str, Type[MusterError]]] = {
    "InvalidInput": ("InvalidRequest", InvalidRequest),
}


def deprecated_alias(module: str, name: str) -> Type[MusterError]:
    """The class behind a deprecated name, with a DeprecationWarning; AttributeError for any
    other name (a module ``__getattr__``)."""
    if name in DEPRECATED_ALIASES:
        new, cls = DEPRECATED_ALIASES[name]
        warnings.warn(
            f"{module}.{name} is deprecated: use {module}.{new} (the protocol's name, caught by callers as such)",
            DeprecationWarning,
            stacklevel=3,
        )
        return cls
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def __getattr__(name: str) -> Type[MusterError]:
    return deprecated_alias(__name__, name)


_BY_CODE: Dict[ErrorCode, Type[MusterError]] = {
    cls.default_code: cls
    for cls in (
        NoWorker,
        Timeout,
        WorkerLost,
        Cancelled,
        InvalidRequest,
        PermissionDenied,
        QueueFull,
        WorkerError,
        BadMessage,
        Internal,
        ShuttingDown,
        Unavailable,
    )
}


def error_for(code: Union[ErrorCode, int, str], message: str = "") -> MusterError:
    """The exception for a code: ``error_for("TIMEOUT", "...")`` is a ``Timeout``."""
    try:
        parsed: Optional[ErrorCode] = ErrorCode.parse(code)
    except ValueError:
        parsed = None
    cls = _BY_CODE.get(parsed) if parsed is not None else None
    if cls is None:
        return MusterError(code, message)
    return cls(message)


__all__ = [
    "ErrorCode",
    "code_name",
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
]
