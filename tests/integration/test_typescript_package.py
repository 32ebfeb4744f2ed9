"""The TypeScript SDK as a user gets it: `npm pack` in worker/typescript makes
muster-sdk-<version>.tgz; a fresh project (`npm init -y` in a temp dir) installs it with
`npm install ./muster-sdk-*.tgz` (offline-friendly: zeromq ships prebuilt binaries and npm's cache
serves what it fetched before), and a worker and a client that `require('muster-sdk')` call each
other through a real musterd. The client never calls close(): Node must still exit by itself.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

import pytest

from conftest import muster_cli, read_log, spawn, stop, wait_for
from package_builds import npm_pack, npm_project_with

WORKER = r"""
const { Worker, MusterError, ErrorCode } = require('muster-sdk');
const w = new Worker({ workerId: 'npm-1' });
w.node({ name: 'npm.add', inputs: { a: 'int', b: 'int' }, outputs: { sum: 'int' } }, (ctx) => {
  if (ctx.inputs.a === undefined) throw new MusterError(ErrorCode.InvalidRequest, 'a is missing');
  return { sum: ctx.inputs.a + ctx.inputs.b };
});
w.run().then(() => process.exit(0), (e) => { console.error(String(e)); process.exit(1); });
"""

CLIENT = r"""
const { Client, MusterError } = require('muster-sdk');
const c = new Client();
(async () => {
  const out = await c.call('npm.add', { a: 2, b: 40 });
  console.log('sum', String(out.sum));
  try { await c.call('npm.add', { b: 1 }); } catch (e) {
    console.log('error', e instanceof MusterError, e.code, e.codeNumber, String(e));
  }
  // no c.close(): an idle client must not keep Node alive
})();
"""


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_npm_pack_installs_and_works_in_a_fresh_project(start_daemon, tmp_path):
    tgz = npm_pack(tmp_path)
    names = tarfile.open(tgz).getnames()
    assert "package/dist/src/index.js" in names and "package/dist/src/index.d.ts" in names
    assert not any(n.startswith("package/dist/test/") or n.startswith("package/node_modules/") for n in names)
    manifest = json.loads(tarfile.open(tgz).extractfile("package/package.json").read())
    assert manifest["exports"]["."]["types"] == "./dist/src/index.d.ts"

    project = npm_project_with(tgz, tmp_path / "app")
    (project / "worker.js").write_text(WORKER)
    (project / "client.js").write_text(CLIENT)

    daemon = start_daemon()
    worker = spawn(["node", project / "worker.js"], daemon.env, tmp_path / "worker.log", cwd=project)

    def ready():
        if worker.poll() is not None:
            pytest.fail(f"the packaged worker exited:\n{read_log(worker)}")
        out = muster_cli(daemon, "workers", "--json")
        return out.returncode == 0 and any(w["worker_id"] == "npm-1" and w["state"] == "ready" for w in json.loads(out.stdout))

    wait_for(ready, 20, "the packaged worker to attach")
    out = subprocess.run(["node", project / "client.js"], cwd=project, env=daemon.env, capture_output=True, text=True,
                         timeout=30)  # bounded: a client that keeps Node alive fails here
    assert out.returncode == 0, out.stderr
    assert "sum 42" in out.stdout
    assert "error true INVALID_REQUEST 5 MusterError: INVALID_REQUEST: a is missing" in out.stdout, out.stdout
    assert stop(worker) == 0, read_log(worker)
    assert "INFO  [" in read_log(worker)  # the common text log format

