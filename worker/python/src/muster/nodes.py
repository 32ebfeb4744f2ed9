"""nodes.py — declaring nodes: the decorator and definition-dict forms, port shorthands, name
rules, and the input/parameter checks the SDK applies before a handler runs
(docs/PROTOCOL.md §5).

Owns: Node (a spec plus its handler), Registry (the nodes one worker serves), and the
module-level ``muster.node`` / ``muster.add_node`` API used by node.py files.
Must never: let a node with an invalid name or port type reach the wire.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import threading
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from . import signature
from .errors import InvalidRequest
from .messages import NO_DEFAULT, NodeSpec, Port
from .values import ChunkedValue, encode_values, kind_of

NODE_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")
WORKER_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
PORT_TYPES = ("any", "null", "bool", "int", "float", "string", "bytes", "list", "map")

_TYPE_ALIASES: Dict[Any, str] = {
    None: "any",
    object: "any",
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    bytes: "bytes",
    list: "list",
    tuple: "list",
    dict: "map",
    "boolean": "bool",
    "integer": "int",
    "number": "float",
    "double": "float",
    "str": "string",
    "text": "string",
    "array": "list",
    "dict": "map",
    "object": "map",
}

#: A node's handler: ``def h(ctx)`` (sync or async) or a typed function (signature.py).
Handler = Callable[..., Any]
#: The handler a decorator is given, returned unchanged (its type kept for the caller).
HandlerT = TypeVar("HandlerT", bound=Handler)


def valid_node_name(name: Any) -> bool:
    return isinstance(name, str) and NODE_NAME_RE.match(name) is not None


def valid_worker_id(worker_id: Any) -> bool:
    return isinstance(worker_id, str) and WORKER_ID_RE.match(worker_id) is not None


def port_type(t: Any, what: str = "port") -> str:
    """Normalises a port type: one of PORT_TYPES, a Python type (str, int, ...) or a common
    alias ("number", "boolean", "object", ...)."""
    try:
        if t in _TYPE_ALIASES:
            return _TYPE_ALIASES[t]
    except TypeError:  # unhashable
        pass
    if isinstance(t, str) and t in PORT_TYPES:
        return t
    raise ValueError(f"{what}: unknown type {t!r} (use one of {', '.join(PORT_TYPES)})")


_PORT_KEYS = {"name", "type", "description", "required", "default", "default_value", "label", "value"}


def _port_from(name: str, spec: Any, what: str) -> Port:
    if isinstance(spec, Port):
        p = dataclasses.replace(spec, name=spec.name or name)
    elif isinstance(spec, Mapping):
        unknown = set(spec) - _PORT_KEYS
        if unknown:
            raise ValueError(f"{what}: unknown key(s) {sorted(unknown)} in port {name!r}")
        default = spec.get("default", spec.get("default_value", spec.get("value", NO_DEFAULT)))
        p = Port(
            name=spec.get("name", name),
            type=spec.get("type", "any"),
            description=spec.get("description") or spec.get("label"),
            required=bool(spec.get("required", False)),
            default_value=default,
        )
    else:
        p = Port(name=name, type=spec)
    return _checked_port(p, what)


def _checked_port(p: Port, what: str) -> Port:
    if not isinstance(p.name, str) or not p.name:
        raise ValueError(f"{what}: a port needs a non-empty name")
    t = port_type(p.type if p.type is not None else "any", f"{what} {p.name!r}")
    if p.default_value is not NO_DEFAULT:
        try:
            encode_values({"default": p.default_value})
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"{what} {p.name!r}: default cannot be encoded: {e}") from None
    return dataclasses.replace(p, type=t)


def ports(spec: Any, what: str = "ports") -> List[Port]:
    """Port list from the shorthands accepted by ``node()``:

    - ``{"name": "string", "n": int}`` (name -> type),
    - ``{"name": {"type": "string", "required": True, "default": "", "description": ...}}``,
    - ``[Port(...), {"name": "x", "type": "int"}, "y"]``.
    """
    if spec is None:
        return []
    out: List[Port] = []
    if isinstance(spec, Mapping):
        for name, s in spec.items():
            out.append(_port_from(name, s, what))
    elif isinstance(spec, (list, tuple)):
        for s in spec:
            if isinstance(s, str):
                out.append(_checked_port(Port(name=s, type="any"), what))
            elif isinstance(s, Port):
                out.append(_checked_port(s, what))
            elif isinstance(s, Mapping) and "name" in s:
                out.append(_port_from(s["name"], s, what))
            else:
                raise ValueError(f"{what}: cannot make a port of {s!r}")
    else:
        raise ValueError(f"{what}: expected a dict or a list of ports, got {type(spec).__name__}")
    names = [p.name for p in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"{what}: duplicate port name(s) {sorted(dup)}")
    return out


def _looks_like_port(v: Any) -> bool:
    return isinstance(v, Port) or (
        isinstance(v, Mapping)
        and set(v) <= _PORT_KEYS
        and bool({"type", "default", "default_value", "value"} & set(v))
    )


def parameter_ports(spec: Any) -> List[Port]:
    """Parameters: ``{"name": default, ...}`` (the type follows the default), or a port list."""
    if isinstance(spec, Mapping) and not all(_looks_like_port(v) for v in spec.values()):
        out = []
        for name, default in spec.items():
            t = "any" if default is None else kind_of(default)
            out.append(_checked_port(Port(name=name, type=t, default_value=default), "parameters"))
        return out
    return ports(spec, "parameters")


@dataclasses.dataclass
class Node:
    """A node a worker serves: its spec (as sent in Attach) and its handler."""

    spec: NodeSpec
    handler: Handler
    is_async: bool = False
    source: Optional[str] = None  # the node.py it came from, in nodes-directory mode
    # bytes inputs the handler reads as streams (ctx.input_stream): a chunked value of one of
    # these is not assembled before the handler runs (docs/STREAMS.md §3)
    stream_inputs: Tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    def prepare(self, inputs: Optional[Dict[str, Any]], parameters: Optional[Dict[str, Any]]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """Inputs and parameters with defaults applied; raises InvalidRequest for a missing
        required port or a value of the wrong kind."""
        return (
            _apply_ports(self.spec.inputs or [], dict(inputs or {}), "input", self.name),
            _apply_ports(self.spec.parameters or [], dict(parameters or {}), "parameter", self.name),
        )


def _kind_ok(value: Any, t: Optional[str]) -> bool:
    if t in (None, "any") or value is None:
        return True
    k = "bytes" if isinstance(value, ChunkedValue) else kind_of(value)  # chunks of a bytes value
    return k == t or (t == "float" and k == "int")


def _apply_ports(ports_: Sequence[Port], given: Dict[str, Any], what: str, node: str) -> Dict[str, Any]:
    for p in ports_:
        if p.name not in given:
            if p.default_value is not NO_DEFAULT:
                given[p.name] = p.default_value
            elif p.required:
                raise InvalidRequest(f"node {node}: missing required {what} '{p.name}'")
            continue
        v = given[p.name]
        if not _kind_ok(v, p.type):
            raise InvalidRequest(
                f"node {node}: {what} '{p.name}' must be {p.type}, got {kind_of(v)}"
            )
    return given


_DEFINITION_KEYS = {
    "name", "description", "category", "version", "inputs", "outputs", "parameters",
    "idempotent", "timeout_ms", "default_timeout_ms", "durable", "stream_inputs",
}  # fmt: skip


def make_node(
    handler: Handler,
    name: Optional[str] = None,
    *,
    description: Optional[str] = None,
    category: Optional[str] = None,
    version: Optional[str] = None,
    inputs: Any = None,
    outputs: Any = None,
    parameters: Any = None,
    idempotent: bool = False,
    timeout_ms: int = 0,
    durable: bool = False,
    source: Optional[str] = None,
    stream_inputs: Sequence[str] = (),
) -> Node:
    """A node from its handler. ``idempotent``: safe to run again if its worker dies
    mid-request; ``durable``: every call to it is durable (journaled by musterd, survives a
    daemon restart; docs/DURABILITY.md), whether or not the caller asked. ``stream_inputs``:
    declared bytes (or any) inputs the handler reads with ``ctx.input_stream(port)`` as they
    arrive, in bounded memory; a chunked value of any other input is assembled and checked
    before the handler runs (docs/STREAMS.md §3)."""
    if not callable(handler):
        raise TypeError(f"a node handler must be callable, not {type(handler).__name__}")
    name = name if name is not None else getattr(handler, "__name__", None)
    if not isinstance(name, str) or not valid_node_name(name):
        raise ValueError(f"invalid node name {name!r}: must match [A-Za-z0-9_.:-]{{1,128}}")
    if description is None and handler.__doc__:
        description = inspect.cleandoc(handler.__doc__).split("\n\n")[0]
    if not isinstance(timeout_ms, int) or timeout_ms < 0:
        raise ValueError(f"node {name}: timeout_ms must be a non-negative integer")
    # async def, or async def with yield (an async generator: each yielded value is an item)
    is_async = inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler)
    if signature.is_typed(handler):
        # Ports from the signature (signature.py); what the caller gave explicitly wins.
        typed_inputs, typed_parameters, typed_outputs, handler = signature.derive(handler, name)
        inputs = typed_inputs if inputs is None else inputs
        parameters = typed_parameters if parameters is None else parameters
        outputs = typed_outputs if outputs is None else outputs
    spec = NodeSpec(
        name=name,
        description=description,
        category=category,
        version=version,
        inputs=ports(inputs, f"node {name}: inputs"),
        outputs=ports(outputs, f"node {name}: outputs"),
        parameters=parameter_ports(parameters),
        idempotent=bool(idempotent),
        default_timeout_ms=timeout_ms,
        durable=bool(durable),
    )
    if isinstance(stream_inputs, str):
        stream_inputs = (stream_inputs,)
    declared = {p.name: p.type for p in spec.inputs or []}
    for port in stream_inputs:
        if declared.get(port) not in ("bytes", "any"):
            raise ValueError(f"node {name}: stream_inputs names {port!r}, which is not a declared bytes input")
    return Node(spec=spec, handler=handler, is_async=is_async, source=source, stream_inputs=tuple(stream_inputs))


def node_from_definition(definition: Mapping[str, Any], handler: Handler, source: Optional[str] = None) -> Node:
    """A node from a definition dict: ``{"name", "description", "category", "version",
    "inputs", "outputs", "parameters", "idempotent", "timeout_ms", "durable"}``."""
    unknown = set(definition) - _DEFINITION_KEYS
    if unknown:
        raise ValueError(f"node definition: unknown key(s) {sorted(unknown)}; known: {sorted(_DEFINITION_KEYS)}")
    if "name" not in definition:
        raise ValueError("node definition: 'name' is required")
    d = dict(definition)
    timeout = d.pop("timeout_ms", None)
    if timeout is None:
        timeout = d.pop("default_timeout_ms", 0)
    else:
        d.pop("default_timeout_ms", None)
    name = d.pop("name")
    return make_node(handler, name, timeout_ms=timeout, source=source, **d)


class Registry:
    """An ordered set of nodes by name. Thread-safe; ``version`` changes whenever the list of
    node specs does."""

    def __init__(self) -> None:
        self._nodes: Dict[str, Node] = {}
        self._lock = threading.Lock()
        self.version = 0
        self.source: Optional[str] = None  # stamped on nodes added while set (loader)

    def add(self, node: Node, replace: bool = False) -> Node:
        with self._lock:
            if node.name in self._nodes and not replace:
                raise ValueError(f"node {node.name} is already declared")
            if node.source is None and self.source is not None:
                node.source = self.source
            self._nodes[node.name] = node
            self.version += 1
        return node

    def remove(self, name: str) -> bool:
        with self._lock:
            found = self._nodes.pop(name, None) is not None
            if found:
                self.version += 1
            return found

    def replace_all(self, nodes: Iterable[Node]) -> bool:
        """Replaces every node; returns whether the specs changed (``version`` only changes
        then: new handlers for the same specs need no re-attach)."""
        new: Dict[str, Node] = {}
        for n in nodes:
            if n.name in new:
                raise ValueError(f"node {n.name} is declared twice")
            new[n.name] = n
        with self._lock:
            changed = [n.spec for n in self._nodes.values()] != [n.spec for n in new.values()]
            self._nodes = new
            if changed:
                self.version += 1
            return changed

    def get(self, name: str) -> Optional[Node]:
        with self._lock:
            return self._nodes.get(name)

    def nodes(self) -> List[Node]:
        with self._lock:
            return list(self._nodes.values())

    def specs(self) -> List[NodeSpec]:
        return [n.spec for n in self.nodes()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._nodes

    @overload
    def node(self, name: HandlerT) -> HandlerT: ...
    @overload
    def node(self, name: Optional[str] = None, **options: Any) -> Callable[[HandlerT], HandlerT]: ...

    def node(self, name: Union[str, Handler, None] = None, **options: Any) -> Any:
        """Decorator: ``@registry.node(name="x", inputs={...}, outputs=[...], ...)``; the
        handler receives a Context and returns a dict of outputs. Usable bare: ``@node``."""
        if callable(name):  # bare @node
            if options:
                raise TypeError("a bare @node takes no options: use @node(name=..., ...)")
            handler = name
            self.add(make_node(handler))
            return handler

        def decorate(handler: HandlerT) -> HandlerT:
            self.add(make_node(handler, name, **options))
            return handler

        return decorate

    @overload
    def add_node(self, definition: Mapping[str, Any], handler: Handler) -> Node: ...
    @overload
    def add_node(self, definition: Mapping[str, Any], handler: None = None) -> Callable[[HandlerT], HandlerT]: ...

    def add_node(self, definition: Mapping[str, Any], handler: Optional[Handler] = None) -> Any:
        """``add_node({...}, handler)``, or ``@add_node({...})`` as a decorator."""
        if handler is None:

            def decorate(h: HandlerT) -> HandlerT:
                self.add(node_from_definition(definition, h))
                return h

            return decorate
        return self.add(node_from_definition(definition, handler))


# ---- the module-level API for node.py files ------------------------------------------------

_default_registry = Registry()
_collectors = threading.local()


def current_registry() -> Registry:
    """Where ``muster.node`` registers: the loader's registry while a node.py is being
    imported (see nodes_dir.py), else a process-wide default registry."""
    stack = getattr(_collectors, "stack", None)
    return stack[-1] if stack else _default_registry


def default_registry() -> Registry:
    return _default_registry


@contextlib.contextmanager
def collecting(registry: Registry) -> Iterator[Registry]:
    """While active (in this thread), ``muster.node``/``muster.add_node`` register into
    ``registry``."""
    stack = getattr(_collectors, "stack", None)
    if stack is None:
        stack = _collectors.stack = []
    stack.append(registry)
    try:
        yield registry
    finally:
        stack.pop()


@overload
def node(name: HandlerT) -> HandlerT: ...
@overload
def node(name: Optional[str] = None, **options: Any) -> Callable[[HandlerT], HandlerT]: ...


def node(name: Union[str, Handler, None] = None, **options: Any) -> Any:
    """Module-level decorator for node.py files: ``@muster.node(name="x", inputs=...)``."""
    return current_registry().node(name, **options)


@overload
def add_node(definition: Mapping[str, Any], handler: Handler) -> Node: ...
@overload
def add_node(definition: Mapping[str, Any], handler: None = None) -> Callable[[HandlerT], HandlerT]: ...


def add_node(definition: Mapping[str, Any], handler: Optional[Handler] = None) -> Any:
    """Module-level definition-dict form for node.py files."""
    return current_registry().add_node(definition, handler)


__all__ = [
    "NODE_NAME_RE",
    "WORKER_ID_RE",
    "PORT_TYPES",
    "valid_node_name",
    "valid_worker_id",
    "port_type",
    "ports",
    "parameter_ports",
    "Node",
    "make_node",
    "node_from_definition",
    "Registry",
    "node",
    "add_node",
    "current_registry",
    "default_registry",
    "collecting",
]
