"""signature.py — nodes derived from a typed Python function, as Celery and Hypha users expect:

    @worker.node
    def add(a: int, b: int = 0, *, scale: float = 1.0) -> {"sum": float}:
        \"\"\"Adds two numbers.\"\"\"
        return {"sum": (a + b) * scale}

Positional-or-keyword parameters are the node's inputs, keyword-only ones (after ``*``) its
parameters; a parameter without a default is required. The annotation gives the port type
(``int``, ``float``, ``str``, ``bool``, ``bytes``, ``list``/``List[...]``, ``dict``/``Dict[...]``,
``Any``; ``Optional[X]`` is X, not required, default None); ``Annotated[int, "the first
addend"]`` adds a description. The return annotation gives the outputs: a dict literal
(``{"sum": float}``) or a ``TypedDict`` (the handler returns that dict), ``dict``/``Mapping``
(undeclared outputs), ``None`` (no outputs), or any other type: one output named ``result``
holding the return value. A parameter annotated ``muster.Context`` receives the request's
context (progress, abort, caller). The first paragraph of the docstring is the description.

Owns: deciding whether a handler is typed (anything but one unannotated or Context-annotated
parameter), deriving its ports, and the adapter that calls it with keyword arguments.
Must never: guess a port type it does not know (ValueError naming the parameter).
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .messages import NO_DEFAULT, Port

RESULT_OUTPUT = "result"  # the one output of a node whose return annotation is not a dict

_SCALARS: Dict[Any, str] = {
    int: "int",
    float: "float",
    str: "string",
    bool: "bool",
    bytes: "bytes",
    bytearray: "bytes",
    type(None): "null",
    list: "list",
    tuple: "list",
    dict: "map",
    Any: "any",
    object: "any",
}
_ORIGINS: Dict[Any, str] = {
    list: "list",
    tuple: "list",
    collections.abc.Sequence: "list",
    dict: "map",
    collections.abc.Mapping: "map",
}


def _is_context(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.split(".")[-1] == "Context"
    return getattr(annotation, "__name__", None) == "Context" and getattr(annotation, "__module__", "").startswith("muster")


def is_typed(handler: Callable[..., Any]) -> bool:
    """A handler is typed unless it takes exactly one parameter that is unannotated or
    annotated ``muster.Context`` (the classic ``def h(ctx)``)."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(params) == 1 and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        ann = params[0].annotation
        return not (ann is inspect.Parameter.empty or _is_context(ann))
    return True


def _hints(handler: Callable[..., Any]) -> Dict[str, Any]:
    """The annotations, strings (``from __future__ import annotations``) evaluated in the
    function's module: typing.get_type_hints would refuse ``-> {"sum": int}``."""
    target = inspect.unwrap(handler)
    # typing's names first, so Optional/List/... resolve even where the module imported them
    # only locally; the module's own names win.
    globalns = {**vars(typing), **getattr(target, "__globals__", {})}
    out: Dict[str, Any] = {}
    for k, v in dict(getattr(target, "__annotations__", {})).items():
        if isinstance(v, str):
            try:
                v = eval(v, globalns)  # noqa: S307 - the function's own annotation
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"{getattr(target, '__name__', 'node')}: cannot evaluate the annotation {v!r} of {k!r}: {e}") from None
        out[k] = v
    return out


def _is_typeddict(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, dict) and hasattr(t, "__total__") and hasattr(t, "__annotations__")


def _split_annotated(t: Any) -> Tuple[Any, Optional[str]]:
    if typing.get_origin(t) is typing.Annotated:
        base, *extras = typing.get_args(t)
        desc = next((e for e in extras if isinstance(e, str)), None)
        return base, desc
    return t, None


def _port_type(t: Any, what: str) -> Tuple[str, bool]:
    """(port type, optional) of an annotation."""
    t, _ = _split_annotated(t)
    if t is inspect.Parameter.empty:
        return "any", False
    origin = typing.get_origin(t)
    if origin is typing.Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType"):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        optional = len(args) < len(typing.get_args(t))
        if len(args) == 1:
            return _port_type(args[0], what)[0], optional
        kinds = {_port_type(a, what)[0] for a in args}
        return (kinds.pop() if len(kinds) == 1 else ("float" if kinds == {"int", "float"} else "any")), optional
    if origin is typing.Literal:
        kinds = {_SCALARS.get(type(a), "any") for a in typing.get_args(t)}
        return (kinds.pop() if len(kinds) == 1 else "any"), False
    if origin is not None:
        if origin in _ORIGINS:
            return _ORIGINS[origin], False
        raise ValueError(f"{what}: cannot map the annotation {t!r} to a port type")
    try:
        if t in _SCALARS:
            return _SCALARS[t], False
    except TypeError:
        pass
    if _is_typeddict(t):
        return "map", False
    raise ValueError(f"{what}: cannot map the annotation {t!r} to a port type (use int, float, str, bool, bytes, list, dict, Any)")


def _outputs(ret: Any, what: str) -> Tuple[Optional[List[Port]], bool]:
    """(output ports or None for undeclared, whether the return value is wrapped as
    ``{"result": value}``)."""
    if ret is inspect.Parameter.empty:
        return None, False
    ret, desc = _split_annotated(ret)
    if ret is None or ret is type(None):
        return [], False
    if isinstance(ret, Mapping):  # -> {"sum": int}
        return [_port(str(k), v, NO_DEFAULT, False, f"{what} output {k!r}") for k, v in ret.items()], False
    if _is_typeddict(ret):
        hints = typing.get_type_hints(ret, include_extras=True)
        return [_port(k, v, NO_DEFAULT, False, f"{what} output {k!r}") for k, v in hints.items()], False
    origin = typing.get_origin(ret) or ret
    if origin in (dict, collections.abc.Mapping, Mapping):
        return None, False
    kind, _ = _port_type(ret, f"{what} return")
    return [Port(name=RESULT_OUTPUT, type=kind, description=desc)], True


def _port(name: str, annotation: Any, default: Any, required: bool, what: str) -> Port:
    kind, optional = _port_type(annotation, what)
    _, desc = _split_annotated(annotation)
    if optional and default is NO_DEFAULT:
        default = None
    return Port(name=name, type=kind, description=desc, required=required and not optional, default_value=default)


class TypedHandler:
    """Calls a typed function with its ports as keyword arguments (and the Context where it
    asked for one); wraps a non-dict return value as ``{"result": value}``."""

    def __init__(self, fn: Callable[..., Any], names: List[str], context_arg: Optional[str], wrap: bool):
        self.fn = fn
        self.names = names
        self.context_arg = context_arg
        self.wrap = wrap
        self.__name__ = getattr(fn, "__name__", "node")
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def _kwargs(self, ctx: Any) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {}
        for n in self.names:
            if n in ctx.inputs:
                kwargs[n] = ctx.inputs[n]
            elif n in ctx.parameters:
                kwargs[n] = ctx.parameters[n]
        if self.context_arg is not None:
            kwargs[self.context_arg] = ctx
        return kwargs

    def _outputs(self, out: Any) -> Any:
        return {RESULT_OUTPUT: out} if self.wrap else out

    def __call__(self, ctx: Any) -> Any:
        return self._outputs(self.fn(**self._kwargs(ctx)))


class AsyncTypedHandler(TypedHandler):
    async def __call__(self, ctx: Any) -> Any:
        return self._outputs(await self.fn(**self._kwargs(ctx)))


def derive(handler: Callable[..., Any], node: str) -> Tuple[List[Port], List[Port], Optional[List[Port]], Callable[[Any], Any]]:
    """(inputs, parameters, outputs or None, handler taking a Context) of a typed function."""
    sig = inspect.signature(handler)
    hints = _hints(handler)
    inputs: List[Port] = []
    parameters: List[Port] = []
    names: List[str] = []
    context_arg: Optional[str] = None
    for p in sig.parameters.values():
        ann = hints.get(p.name, p.annotation)
        if _is_context(_split_annotated(ann)[0]):
            context_arg = p.name
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ValueError(f"node {node}: *{p.name} cannot be a port (name every input)")
        if p.kind == p.POSITIONAL_ONLY:
            raise ValueError(f"node {node}: positional-only parameter {p.name!r} cannot be a port")
        default = NO_DEFAULT if p.default is p.empty else p.default
        port = _port(p.name, ann, default, default is NO_DEFAULT, f"node {node}: parameter {p.name!r}")
        (parameters if p.kind == p.KEYWORD_ONLY else inputs).append(port)
        names.append(p.name)
    outputs, wrap = _outputs(hints.get("return", sig.return_annotation), f"node {node}:")
    cls = AsyncTypedHandler if inspect.iscoroutinefunction(handler) else TypedHandler
    return inputs, parameters, outputs, cls(handler, names, context_arg, wrap)


__all__ = ["RESULT_OUTPUT", "is_typed", "derive", "TypedHandler", "AsyncTypedHandler"]
