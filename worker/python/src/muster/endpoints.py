"""endpoints.py — default endpoints and socket security, chosen exactly as the C++ programs do
(transport/runtime_dir.cpp, transport/endpoints.cpp).

Owns: the runtime directory lookup ($MUSTER_RUNTIME_DIR, else $XDG_RUNTIME_DIR/muster, else
/tmp/muster-<uid>), the default ipc:// endpoints, the "tcp:// needs CURVE or insecure" rule,
and where CURVE keys plug into a socket; address lists (one endpoint, or both daemons of a
failover pair comma-separated, docs/DURABILITY.md §12).
Must never: connect a tcp:// socket in clear text unless the caller said ``insecure=True``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional, Union

import zmq

ROLES = ("request", "response", "client", "enrollment")
TCP_PORTS = {"request": 7899, "response": 7898, "enrollment": 7900, "client": 7901}


def runtime_dir() -> str:
    d = os.environ.get("MUSTER_RUNTIME_DIR")
    if d:
        return d
    x = os.environ.get("XDG_RUNTIME_DIR")
    if x:
        return os.path.join(x, "muster")
    return f"/tmp/muster-{os.getuid()}"


def default_endpoint(role: str) -> str:
    """``ipc://<runtime dir>/<role>.sock`` for role request, response, client."""
    if role not in ROLES:
        raise ValueError(f"unknown socket role {role!r}")
    return f"ipc://{runtime_dir()}/{role}.sock"


def _key(k: Union[str, bytes], what: str) -> bytes:
    b = k.encode("ascii") if isinstance(k, str) else bytes(k)
    b = b.strip()
    if len(b) != 40:
        raise ValueError(f"{what}: a CURVE key is 40 Z85 characters, got {len(b)}")
    return b


@dataclass(frozen=True)
class Curve:
    """CURVE client settings for tcp:// endpoints: the daemon's public key and this peer's
    keypair, all Z85 (40 characters). Enrollment (docs/SECURITY.md) produces them."""

    server_public: Union[str, bytes]
    public: Union[str, bytes]
    secret: Union[str, bytes]

    def apply(self, sock: zmq.Socket[Any]) -> None:
        sock.curve_serverkey = _key(self.server_public, "server public key")
        sock.curve_publickey = _key(self.public, "public key")
        sock.curve_secretkey = _key(self.secret, "secret key")

    @staticmethod
    def generate_keypair() -> "tuple[str, str]":
        """A new (public, secret) Z85 keypair."""
        public, secret = zmq.curve_keypair()
        return public.decode("ascii"), secret.decode("ascii")


def endpoint_list(address: str) -> List[str]:
    """The endpoints of an address: one, or the comma-separated endpoints of a failover pair
    (spaces around commas ignored). ValueError on an empty list or item."""
    if not isinstance(address, str):
        raise ValueError(f"endpoint must be a string, not {type(address).__name__}")
    items = [e.strip() for e in address.split(",")]
    if not all(items):
        raise ValueError(f"'{address}': empty endpoint in the address list (give ENDPOINT or ENDPOINT,ENDPOINT)")
    return items


def check_endpoint(endpoint: str, curve: Optional[Curve], insecure: bool) -> None:
    """ValueError unless every endpoint of the address (endpoint_list) is ipc://PATH,
    inproc://NAME, or tcp:// with CURVE (or ``insecure``)."""
    items = endpoint_list(endpoint)
    if len(items) > 1:
        for e in items:
            check_endpoint(e, curve, insecure)
        return
    endpoint = items[0]
    if endpoint.startswith("tcp://"):
        if curve is None and not insecure:
            raise ValueError(
                f"{endpoint}: tcp:// endpoints are CURVE-encrypted; without CURVE keys they are "
                "refused unless you pass insecure=True (--insecure)"
            )
        return
    if endpoint.startswith("ipc://"):
        if len(endpoint) <= 6:
            raise ValueError(f"{endpoint}: empty ipc path")
        return
    if endpoint.startswith("inproc://"):
        return
    raise ValueError(f"{endpoint}: unsupported endpoint (use ipc://PATH or tcp://HOST:PORT)")


def connect(sock: zmq.Socket[Any], endpoint: str, curve: Optional[Curve], insecure: bool) -> None:
    """Applies CURVE (for tcp:// only) and connects to every endpoint of the address. With
    several (a failover pair), a DEALER gets ZMQ_IMMEDIATE: it queues only on completed
    connections, i.e. to the daemon that is bound, never for the standby's endpoint (where a
    message would wait and reach it, stale, once it takes over)."""
    check_endpoint(endpoint, curve, insecure)
    items = endpoint_list(endpoint)
    if curve is not None and any(e.startswith("tcp://") for e in items):
        curve.apply(sock)
    if len(items) > 1 and sock.type == zmq.DEALER:
        sock.setsockopt(zmq.IMMEDIATE, 1)
    for e in items:
        sock.connect(e)


def drop_unsent(sock: zmq.Socket[Any], address: str) -> None:
    """Drops what the socket still queues for the address's endpoints and connects again: each
    is disconnected (its pipe, with every message libzmq had not written yet, goes with it at
    linger 0) and connected anew. The socket, its options (CURVE, ZMQ_IMMEDIATE) and its
    monitor stay. A client calls it when it gave up a connection and failed the calls on it,
    so that none of them can reach the next daemon on this address and run after all
    (docs/DURABILITY.md §13)."""
    for e in endpoint_list(address):
        try:
            sock.disconnect(e)
        except zmq.ZMQError:
            pass  # not connected to it (any more): nothing queued for it
        sock.connect(e)


__all__ = ["runtime_dir", "default_endpoint", "Curve", "endpoint_list", "check_endpoint", "connect", "drop_unsent",
           "TCP_PORTS"]
