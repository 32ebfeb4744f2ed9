"""nodes_dir.py — nodes-directory mode: every ``node.py`` below a directory declares nodes with
the module-level API (``@muster.node(...)`` or ``muster.add_node({...}, handler)``); changed
files are reloaded by polling modification times, and the worker re-attaches with the new node
list (see shared/reference/nanograph-sdk-python.md for the layout this follows).

Owns: finding, importing and re-importing node files, and the watcher thread.
Must never: let one broken node.py take the others (or the worker) down: a file that fails to
load is logged and keeps serving its last good nodes.

Layout::

    nodes/
      text/upper/node.py        # @muster.node(name="text.upper", ...)
      math/stats/node.py        # may `import helpers` from its own directory
      math/stats/helpers.py
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from typing import Dict, Iterable, List, Optional, Protocol, Tuple

from .nodes import Node, Registry, collecting

log = logging.getLogger("muster.nodes_dir")

Snapshot = Dict[str, Tuple[int, int]]


class NodesDirectory:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        if not os.path.isdir(self.root):
            raise ValueError(f"{root}: not a directory")
        self._snapshot: Snapshot = {}
        self._by_file: Dict[str, List[Node]] = {}
        self._generation = 0

    def _walk(self) -> Snapshot:
        out: Snapshot = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
            for f in filenames:
                if f.endswith(".py"):
                    p = os.path.join(dirpath, f)
                    try:
                        st = os.stat(p)
                    except OSError:
                        continue
                    out[p] = (st.st_mtime_ns, st.st_size)
        return out

    def node_files(self) -> List[str]:
        return sorted(p for p in self._walk() if os.path.basename(p) == "node.py")

    def changed(self) -> bool:
        return self._walk() != self._snapshot

    def load(self) -> List[Node]:
        """(Re)imports every node.py and returns all their nodes, in file order. A file that
        fails keeps its previous nodes; a node name declared twice keeps the first."""
        snapshot = self._walk()
        changed_files = {p for p in set(snapshot) | set(self._snapshot) if snapshot.get(p) != self._snapshot.get(p)}
        self._snapshot = snapshot
        self._generation += 1
        # Helper modules imported from the directory are re-imported too.
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None) or ""
            if f and os.path.abspath(f).startswith(self.root + os.sep) and not name.startswith("muster_nodes_"):
                del sys.modules[name]
        files = sorted(p for p in snapshot if os.path.basename(p) == "node.py")
        for gone in set(self._by_file) - set(files):
            log.info("%s removed", self._rel(gone))
            del self._by_file[gone]
        for path in files:
            if path in self._by_file and not changed_files:
                continue
            nodes = self._load_file(path)
            if nodes is not None:
                self._by_file[path] = nodes
        out: List[Node] = []
        seen: Dict[str, str] = {}
        for path in files:
            for n in self._by_file.get(path, []):
                if n.name in seen:
                    log.error(
                        "%s: node %s is already declared in %s: ignored",
                        self._rel(path), n.name, self._rel(seen[n.name]),
                    )  # fmt: skip
                    continue
                seen[n.name] = path
                out.append(n)
        return out

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def _load_file(self, path: str) -> Optional[List[Node]]:
        rel = self._rel(path)
        modname = "muster_nodes_" + "".join(c if c.isalnum() else "_" for c in rel[:-3]) + f"_{self._generation}"
        try:
            nodes = load_file(path, modname)
        except Exception as e:  # noqa: BLE001 - any error in user code
            log.error("%s: failed to load: %s: %s%s", rel, type(e).__name__, e,
                      " (keeping its previous nodes)" if path in self._by_file else "")
            log.debug("traceback", exc_info=True)
            return None
        if not nodes:
            log.warning("%s declares no nodes", rel)
        else:
            log.info("%s: %s", rel, ", ".join(n.name for n in nodes))
        return nodes


def load_file(path: str, modname: Optional[str] = None) -> List[Node]:
    """Imports one Python file (its directory first on sys.path while it loads) and returns
    the nodes it declared with the module-level API. Raises whatever the file raises."""
    path = os.path.abspath(path)
    modname = modname or "muster_nodes_" + "".join(c if c.isalnum() else "_" for c in path)
    registry = Registry()
    registry.source = path
    directory = os.path.dirname(path)
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, directory)
    try:
        with collecting(registry):
            spec.loader.exec_module(module)
    finally:
        try:
            sys.path.remove(directory)
        except ValueError:
            pass
    return registry.nodes()


class NodeListHolder(Protocol):
    """What ``watch`` hands a reloaded node list to (a muster.Worker)."""

    def set_nodes(self, nodes: Iterable[Node]) -> None: ...


class NodeSource(Protocol):
    """What ``watch`` polls: a NodesDirectory, or anything that can say whether its node files
    changed and load its nodes again."""

    @property
    def root(self) -> str: ...

    def changed(self) -> bool: ...

    def load(self) -> List[Node]: ...


def watch(
    directory: NodeSource,
    worker: NodeListHolder,
    interval: float = 1.0,
    stop: Optional[threading.Event] = None,
) -> threading.Thread:
    """Starts a daemon thread that polls ``directory`` every ``interval`` seconds and gives
    the worker the new node list when a file changed."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                if directory.changed():
                    log.info("node files changed: reloading")
                    worker.set_nodes(directory.load())
            except Exception:  # noqa: BLE001
                log.exception("reloading %s failed", directory.root)

    t = threading.Thread(target=loop, name="muster-nodes-watch", daemon=True)
    t.start()
    return t


__all__ = ["NodesDirectory", "load_file", "watch"]
