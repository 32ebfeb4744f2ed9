"""link_cutter.py — a byte proxy between a peer (a worker, or a caller: CLIENT_SOCKETS) and
musterd's ipc sockets that can break the peer's connections on demand, as a network blip does:
what was on the way is lost, both ends live on and connect again (libzmq reconnects by itself).
It can also lose what musterd sends from a given moment on (drop_down), so that a test knows a
reply was lost in the break, not only that it may have been.

Owns: the proxy's listening sockets in its own directory (the peer's MUSTER_RUNTIME_DIR), one
upstream connection per accepted one, and counts of the bytes forwarded (or dropped) each way.
Must never: parse, delay, reorder or alter the bytes it forwards (it is a wire, not a peer), or
outlive its test (stop() closes everything; the thread is a daemon thread).
"""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

SOCKETS = ("request.sock", "response.sock")  # the worker's two (PROTOCOL.md §1)
CLIENT_SOCKETS = ("client.sock",)  # a caller's one


class LinkCutter:
    def __init__(self, upstream_dir: Path, listen_dir: Path, names=SOCKETS):
        self.upstream_dir, self.listen_dir, self.names = Path(upstream_dir), Path(listen_dir), names
        self.listen_dir.mkdir(parents=True, exist_ok=True)
        self.down = 0  # bytes forwarded musterd -> worker
        self.up = 0  # bytes forwarded worker -> musterd
        self.cuts = 0
        self.dropping = False  # drop_down(): bytes from musterd are lost instead of forwarded
        self.dropped = 0  # bytes from musterd lost that way
        self.connections = 0  # accepted so far (a reconnect adds to it)
        self.connections_to = {name: 0 for name in names}  # the same, per socket
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.AbstractServer] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> "LinkCutter":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _listen(self) -> None:
        for name in self.names:
            path = self.listen_dir / name
            path.unlink(missing_ok=True)
            upstream = self.upstream_dir / name
            self._servers.append(await asyncio.start_unix_server(
                lambda r, w, up=upstream, n=name: self._serve(r, w, up, n), path=str(path)))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: Path,
                     name: str) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(upstream))
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self.connections_to[name] += 1
        link = (writer, up_writer)
        self._links.append(link)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, downward: bool) -> None:
            try:
                while data := await src.read(1 << 16):
                    if downward and self.dropping:
                        self.dropped += len(data)
                        continue
                    dst.write(data)
                    if downward:
                        self.down += len(data)
                    else:
                        self.up += len(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.transport.abort()
                up_writer.transport.abort()

        await asyncio.gather(pump(up_reader, writer, True), pump(reader, up_writer, False))
        if link in self._links:
            self._links.remove(link)

    def cut(self) -> None:
        """Breaks every current connection at once (both directions, both sockets); whatever
        was buffered on the way is lost. New connections are accepted as before."""
        def abort_all() -> None:
            for a, b in self._links:
                a.transport.abort()
                b.transport.abort()
            self._links.clear()
            self.dropping = False  # the next connections carry everything again
        self._loop.call_soon_threadsafe(abort_all)
        self.cuts += 1

    def drop_down(self) -> None:
        """From now on what musterd sends is lost on the way (counted in `dropped`), until the
        next cut(): a reply sent meanwhile is known to be lost in the break."""
        self.dropping = True

    def wait_dropped(self, n: int, timeout: float, unless_ended=None) -> bool:
        """Waits until `n` bytes from musterd were lost by drop_down(); False if the process
        `unless_ended` ended first."""
        return self._wait(lambda: self.dropped >= n, timeout, unless_ended, f"{n} bytes to be dropped")

    def wait_down(self, n: int, timeout: float, unless_ended=None) -> bool:
        """Waits until `n` bytes went from musterd to the worker (since the start); False if the
        process `unless_ended` (a Popen) ended first."""
        return self._wait(lambda: self.down >= n, timeout, unless_ended, f"{n} bytes to reach the worker")

    def wait_up(self, n: int, timeout: float, unless_ended=None) -> bool:
        """Waits until `n` bytes went from the worker to musterd (since the start); False if the
        process `unless_ended` (a Popen) ended first."""
        return self._wait(lambda: self.up >= n, timeout, unless_ended, f"{n} bytes to reach musterd")

    def _wait(self, done, timeout: float, unless_ended, what: str) -> bool:
        end = time.monotonic() + timeout
        while not done():
            if unless_ended is not None and unless_ended.poll() is not None:
                return False
            if time.monotonic() > end:
                raise TimeoutError(f"waited {timeout} s for {what} (down {self.down}, up {self.up})")
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        async def close() -> None:
            for s in self._servers:
                s.close()
            for a, b in self._links:
                a.transport.abort()
                b.transport.abort()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
