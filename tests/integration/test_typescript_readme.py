"""The TypeScript examples of README.md and worker/typescript/README.md compile and run as
written against a real musterd, so they cannot rot (the Python ones: test_readme_examples.py).

Every ```ts / ```typescript block becomes its own ES module (`block_<line>.mts`) in a temp
project whose node_modules/muster-sdk is the SDK of this tree (built dist/, as `npm install`
would give it); all are compiled by the SDK's tsc with --strict, then run in document order
with the daemon's runtime directory in the environment (the SDK's default ipc:// endpoints). A
block that calls `worker.run()` is a worker: it is started, must attach, and must exit 0 on
SIGTERM at the end; any other block must exit 0 by itself (bounded). A block preceded by
`<!-- not run: reason -->` is a fragment and is skipped.

The client examples call `hello` (served by the README's own worker block) and `sleep`: a
small worker started here serves `sleep` (not idempotent, like the C++ example worker's).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, muster_cli, read_log, spawn, stop, wait_for
from readme_blocks import code_blocks

TS = REPO / "worker" / "typescript"
NODE = shutil.which("node")
TSC = TS / "node_modules" / ".bin" / "tsc"

pytestmark = pytest.mark.skipif(NODE is None or not TSC.exists(), reason="node and the SDK's npm ci are needed")


SLEEP_WORKER = r"""
const { Worker } = require('muster-sdk');
const w = new Worker({ workerId: 'readme-sleep' });
w.node({ name: 'sleep', inputs: { ms: 'int' }, idempotent: false }, async (ctx) => {
  await new Promise((resolve) => {
    const t = setTimeout(resolve, Number(ctx.inputs.ms ?? 0));
    ctx.signal.addEventListener('abort', () => { clearTimeout(t); resolve(undefined); }, { once: true });
  });
  ctx.throwIfAborted();
  return {};
});
w.run().then(() => process.exit(0), (e) => { console.error(String(e)); process.exit(1); });
"""


def ts_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each runnable ```ts block of a Markdown file."""
    return code_blocks(path, ("ts", "typescript"))


def test_the_block_extraction_finds_runnable_and_fragment_blocks():
    blocks = ts_blocks(TS / "README.md")
    assert len(blocks) >= 3
    assert any("worker.run()" in c for _, c in blocks)
    assert not any("daemon.lan" in c for _, c in blocks)  # the tcp:// fragment is marked not run


def project(tmp_path: Path) -> Path:
    """A temp project that has this tree's SDK as node_modules/muster-sdk."""
    app = tmp_path / "app"
    (app / "node_modules").mkdir(parents=True)
    (app / "node_modules" / "muster-sdk").symlink_to(TS, target_is_directory=True)
    (app / "package.json").write_text(json.dumps({"name": "readme-examples", "private": True}))
    (app / "tsconfig.json").write_text(json.dumps({
        "compilerOptions": {
            "target": "ES2022", "module": "nodenext", "moduleResolution": "nodenext", "strict": True,
            "skipLibCheck": True, "types": ["node"], "typeRoots": [str(TS / "node_modules" / "@types")],
            "outDir": "out", "rootDir": ".",
        },
        "include": ["*.mts"],
    }))
    return app


def compile_blocks(app: Path, readme: str, blocks: list[tuple[int, str]]) -> dict[int, Path]:
    for line, code in blocks:
        (app / f"block_{line}.mts").write_text(code)
    out = subprocess.run([str(TSC), "-p", str(app)], capture_output=True, text=True, timeout=300, cwd=app)
    errors = re.sub(r"block_(\d+)\.mts", lambda m: f"{readme}:{m.group(1)}+", out.stdout + out.stderr)
    assert out.returncode == 0, f"the TypeScript examples of {readme} do not compile:\n{errors}"
    return {line: app / "out" / f"block_{line}.mjs" for line, _ in blocks}


@pytest.mark.parametrize("readme", ["README.md", "worker/typescript/README.md"])
def test_readme_typescript_examples_compile_and_run_as_written(readme, start_daemon, tmp_path):
    blocks = ts_blocks(REPO / readme)
    assert blocks, f"no runnable TypeScript block in {readme}"
    assert (TS / "dist" / "src" / "index.d.ts").exists(), "build the SDK first (cd worker/typescript && npm run build)"
    app = project(tmp_path)
    programs = compile_blocks(app, readme, blocks)

    daemon = start_daemon()

    def ready(worker_id=None, pid=None):
        out = muster_cli(daemon, "workers", "--json")
        if out.returncode != 0:
            return False
        return any(w["state"] == "ready" and (w["worker_id"] == worker_id or w.get("pid") == pid)
                   for w in json.loads(out.stdout))

    (app / "sleep-worker.cjs").write_text(SLEEP_WORKER)
    sleeper = spawn([NODE, app / "sleep-worker.cjs"], daemon.env, tmp_path / "sleep-worker.log", cwd=app)
    wait_for(lambda: ready("readme-sleep"), 20, "the sleep worker to attach")

    workers = []
    for line, code in blocks:
        where = f"{readme}:{line}"
        if "worker.run()" in code:
            proc = spawn([NODE, programs[line]], daemon.env, tmp_path / f"block_{line}.log", cwd=app)

            def attached(proc=proc):
                if proc.poll() is not None:
                    pytest.fail(f"the worker of {where} exited:\n{read_log(proc)}")
                return ready(pid=proc.pid)

            wait_for(attached, 20, f"the worker of {where} to attach")
            workers.append((where, proc))
        else:
            out = subprocess.run([NODE, str(programs[line])], env=daemon.env, capture_output=True, text=True,
                                 timeout=120, cwd=app)
            assert out.returncode == 0, f"{where} failed:\n{out.stdout}\n{out.stderr}"
    for where, proc in workers:
        assert stop(proc) == 0, f"the worker of {where} did not exit cleanly:\n{read_log(proc)}"
    assert stop(sleeper) == 0, read_log(sleeper)
