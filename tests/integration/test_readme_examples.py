"""The Python examples of README.md and worker/python/README.md run as written against a real
musterd, so they cannot rot (the README's `slow` once failed with `NameError: asyncio`).

Every ```python block runs, in document order, as its own program with the daemon's runtime
directory in the environment (the SDK's default ipc:// endpoints). A block that calls
`worker.run()` is a worker: it is started, must attach (a ready worker with its pid), and must
exit 0 on SIGTERM at the end; any other block must exit 0. A block preceded by
`<!-- not run: reason -->` is a fragment and is skipped.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, read_log, spawn, stop, wait_for
from readme_blocks import code_blocks

muster = pytest.importorskip("muster", reason="the Python SDK is not installed (pip install ./worker/python)")

def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each runnable ```python block of a Markdown file."""
    return code_blocks(path, ("python",))


def test_the_block_extraction_finds_runnable_and_fragment_blocks():
    blocks = python_blocks(REPO / "worker" / "python" / "README.md")
    assert len(blocks) >= 4 and all("worker = muster.Worker(request_address=\"tcp://" not in c for _, c in blocks)
    assert any("async def slow" in c for _, c in blocks)


@pytest.mark.parametrize("readme", ["README.md", "worker/python/README.md"])
def test_readme_python_examples_run_as_written(readme, start_daemon, tmp_path):
    daemon = start_daemon()
    blocks = python_blocks(REPO / readme)
    assert blocks, f"no runnable Python block in {readme}"
    workers = []
    with muster.Client(daemon.client_address, connect_timeout=5.0) as client:
        for line, code in blocks:
            script = tmp_path / f"block_{line}.py"
            script.write_text(code)
            where = f"{readme}:{line}"
            if "worker.run()" in code:
                proc = spawn([sys.executable, script], daemon.env, tmp_path / f"block_{line}.log")

                def attached(proc=proc):
                    if proc.poll() is not None:
                        pytest.fail(f"the worker of {where} exited:\n{read_log(proc)}")
                    return any(w.pid == proc.pid and w.state == "ready" for w in client.workers())

                wait_for(attached, 20, f"the worker of {where} to attach")
                workers.append((where, proc))
            else:
                out = subprocess.run([sys.executable, script], env=daemon.env, capture_output=True, text=True,
                                     timeout=120, cwd=tmp_path)
                assert out.returncode == 0, f"{where} failed:\n{out.stdout}\n{out.stderr}"
    for where, proc in workers:
        assert stop(proc) == 0, f"the worker of {where} did not exit cleanly:\n{read_log(proc)}"
        assert "Traceback" not in read_log(proc), f"{where}:\n{read_log(proc)}"
