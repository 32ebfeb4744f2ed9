"""enrollment.py — how a Python worker or client gets its CURVE keys for tcp:// endpoints
(docs/SECURITY.md §5, docs/PROTOCOL.md §9): find the token, load or create the key pair and
the saved identity in the data directory, enroll over CURVE if not enrolled yet, and hand back
the ``Curve`` every socket then uses.

Owns: the enrollment exchange on the wire (a DEALER to the enrollment endpoint as a CURVE
client whose server key is the token's daemon key; one EnrollRequest, one EnrollResponse, a
bounded wait) and the choice of when it is needed.
Must never: send the token to a daemon whose key did not come from the token; wait for an
answer without a bound; log or raise with the token text.
"""

from __future__ import annotations

import os
import socket
from typing import Iterable, Optional, Union

import zmq

from . import keys as k
from . import messages as m
from .endpoints import TCP_PORTS, Curve
from .errors import BadMessage, ErrorCode, MusterError

DEFAULT_ENROLLMENT_TIMEOUT = 10.0


class EnrollmentError(MusterError):
    """Enrollment failed: the daemon refused it (its code and message), did not answer
    (UNAVAILABLE), or the local files or token do not allow it (INVALID_REQUEST,
    PERMISSION_DENIED)."""

    default_code = ErrorCode.PERMISSION_DENIED

    def __init__(self, message: str = "", code: Union[ErrorCode, int, None] = None):
        MusterError.__init__(self, code if code is not None else self.default_code, message)


def local_hostname(host: Optional[str] = None) -> str:
    """A host name (default: this host's) as the daemon accepts it: [A-Za-z0-9._-]{0,255}."""
    host = socket.gethostname() if host is None else host
    return "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else "-" for c in host)[:255]


def default_enrollment_address(endpoints: Iterable[str]) -> Optional[str]:
    """``tcp://HOST:7900`` for the host of the first tcp:// endpoint (of address lists too), else None."""
    for ep in (e.strip() for address in endpoints if address for e in address.split(",")):
        if ep and ep.startswith("tcp://"):
            rest = ep[len("tcp://") :]
            host = rest.rsplit(":", 1)[0] if ":" in rest and not rest.endswith("]") else rest
            return f"tcp://{host}:{TCP_PORTS['enrollment']}"
    return None


def enroll(
    plan: k.EnrollmentPlan,
    data_dir: str,
    name: str,
    address: str,
    role: str,
    *,
    enroll_name: str = "",
    hostname: Optional[str] = None,
    timeout: float = DEFAULT_ENROLLMENT_TIMEOUT,
    zmq_context: Optional[zmq.Context[zmq.Socket[bytes]]] = None,
) -> k.LocalIdentity:
    """Sends ``EnrollRequest{token, public_key, role, name, hostname}`` to ``address`` over CURVE
    (server key: the token's daemon key) and, on ok, saves ``<name>-identity.json``. Raises
    EnrollmentError with the daemon's code and message if it refuses, or UNAVAILABLE if no
    answer comes within ``timeout`` seconds (also what a wrong daemon key looks like: the
    CURVE handshake never completes)."""
    if not plan.token:
        raise EnrollmentError("nothing to enroll with: no token", ErrorCode.INVALID_REQUEST)
    if not address or not address.startswith("tcp://"):
        raise EnrollmentError(
            f"the enrollment address must be a tcp:// endpoint, got {address!r}", ErrorCode.INVALID_REQUEST
        )
    host = local_hostname(hostname)
    request = m.EnrollRequest(
        token=plan.token, public_key=plan.keys.public_key, role=role, name=enroll_name, hostname=host
    )
    ctx = zmq_context or zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        Curve(plan.daemon_public_key, plan.keys.public_key, plan.keys.secret_key).apply(sock)
        sock.connect(address)
        sock.send(m.encode(request))
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise EnrollmentError(
                f"no answer from the daemon at {address} within {timeout:g}s: unreachable, or its key "
                f"is not the one in the token ({plan.daemon_public_key})",
                ErrorCode.UNAVAILABLE,
            )
        frames = sock.recv_multipart()
    finally:
        sock.close(0)
        if zmq_context is None:
            ctx.term()
    try:
        resp = m.decode_enroll_response(frames[-1])
    except BadMessage as e:
        raise EnrollmentError(f"unreadable answer from the enrollment endpoint {address}: {e.message}", ErrorCode.BAD_MESSAGE) from None
    if not resp.ok:
        code = resp.code if resp.code not in (ErrorCode.NONE, 0) else ErrorCode.PERMISSION_DENIED
        raise EnrollmentError(f"enrollment refused by the daemon at {address}: {resp.error or 'no reason given'}", code)
    try:
        return k.record_enrollment(
            data_dir, name, plan, resp.identity_id or "", resp.role or "", resp.workspace or "", resp.name or ""
        )
    except ValueError as e:
        raise EnrollmentError(f"the daemon at {address} accepted the enrollment but answered oddly: {e}", ErrorCode.BAD_MESSAGE) from None


def prepare_curve(
    endpoints: Iterable[Optional[str]],
    *,
    role: str,
    name: str,
    data_dir: Optional[str] = None,
    enrollment_address: Optional[str] = None,
    enrollment_token_file: Optional[str] = None,
    enroll_name: str = "",
    hostname: Optional[str] = None,
    timeout: float = DEFAULT_ENROLLMENT_TIMEOUT,
    zmq_context: Optional[zmq.Context[zmq.Socket[bytes]]] = None,
) -> Curve:
    """The CURVE settings for a peer with tcp:// ``endpoints``: reuses the identity saved in
    ``data_dir`` or enrolls with the token found as docs/SECURITY.md §5 says (environment,
    ``enrollment_token_file``, $XDG_CONFIG_HOME/muster/enrollment-token). Every problem is an
    EnrollmentError whose message says what to do."""
    eps = [e for e in endpoints if e]
    data_dir = os.fspath(data_dir) if data_dir else k.default_data_dir()
    found: Optional[k.FoundToken] = None
    try:
        found = k.find_enrollment_token(enrollment_token_file)
        plan = k.plan_enrollment(data_dir, name, found.token if found else None)
    except k.TokenFormatError as e:
        where = f" (from {found.source})" if found else ""
        raise EnrollmentError(f"{e}{where}", ErrorCode.INVALID_REQUEST) from None
    except (k.DaemonKeyMismatch, k.KeyPermissionError) as e:
        raise EnrollmentError(str(e), ErrorCode.PERMISSION_DENIED) from None
    except k.NotEnrolled as e:
        raise EnrollmentError(
            f"{e}. tcp:// endpoints are CURVE-encrypted with keys from enrollment (or pass explicit "
            "CURVE keys, or insecure=True / --insecure for clear text)",
            ErrorCode.PERMISSION_DENIED,
        ) from None
    except (RuntimeError, ValueError, OSError) as e:
        raise EnrollmentError(str(e), ErrorCode.INVALID_REQUEST) from None
    if plan.needs_enrollment:
        address = enrollment_address or default_enrollment_address(eps)
        if not address:
            raise EnrollmentError(
                "not enrolled yet and no enrollment address: pass enrollment_address (--enrollment-address tcp://HOST:7900)",
                ErrorCode.INVALID_REQUEST,
            )
        enroll(
            plan, data_dir, name, address, role, enroll_name=enroll_name, hostname=hostname,
            timeout=timeout, zmq_context=zmq_context,
        )
    return Curve(plan.daemon_public_key, plan.keys.public_key, plan.keys.secret_key)


def needs_curve(endpoints: Iterable[Optional[str]], curve: Optional[Curve], insecure: bool) -> bool:
    """True when some endpoint is tcp:// and neither keys nor ``insecure`` were given."""
    return curve is None and not insecure and any(e and e.startswith("tcp://") for e in endpoints)


__all__ = [
    "EnrollmentError",
    "enroll",
    "prepare_curve",
    "needs_curve",
    "default_enrollment_address",
    "local_hostname",
    "DEFAULT_ENROLLMENT_TIMEOUT",
]
