"""consumer.py — a type-level test of the public API as a user's `mypy --strict` sees it:
checked by `mypy` in worker/python (ctest sdk.python.mypy, [tool.mypy] files), never run.

Owns: what typed user code must accept, and what must be a type error. Each line ending in
`# type: ignore[code]` MUST be an error of that code: the config has warn_unused_ignores
(part of --strict), so mypy fails when such a line type-checks, and a loosened type breaks
the test.
"""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import muster


def typed_worker() -> None:
    worker = muster.Worker(capacity=2)

    @worker.node
    def add(a: int, b: int) -> Dict[str, int]:
        """Adds two integers."""
        return {"sum": a + b}

    # The decorator returns the function itself, with its signature.
    total: int = add(1, 2)["sum"]
    add("1", 2)  # type: ignore[arg-type]

    @worker.node(name="hello", inputs={"name": "string"}, idempotent=True)
    def hello(ctx: muster.Context) -> Dict[str, str]:
        return {"greeting": f"Hello {ctx.inputs.get('name', 'world')}"}

    hello(42)  # type: ignore[arg-type]
    node: muster.Node = worker.add_node({"name": "echo"}, lambda ctx: dict(ctx.inputs))
    worker.add_node({"name": "x"}, handler=42)  # type: ignore[call-overload]
    print(total, node.name)


def typed_client() -> None:
    with muster.Client() as client:
        out: Dict[str, Any] = client.call("add", {"a": 1, "b": 2}, timeout_ms=1000)
        call: muster.Call = client.submit("add", {"a": 1, "b": 2})
        later: Dict[str, Any] = call.result(5.0)
        status = client.status()
        submitted: int = status.submitted
        workers: List[muster.messages.WorkerInfo] = client.workers()
        client.call(42)  # type: ignore[arg-type]
        bad: str = client.call("add")  # type: ignore[assignment]
        print(out, later, submitted, workers, bad)


async def typed_async_client() -> Dict[str, Any]:
    async with muster.AsyncClient() as client:
        out: Dict[str, Any] = await client.call("add", {"a": 1, "b": 2})
        return out


if __name__ == "__main__":  # never: this file is only type-checked
    asyncio.run(typed_async_client())
