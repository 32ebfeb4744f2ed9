"""The committed bindings (src/muster/wire/) are exactly what flatc 2.0.8 makes of schema/*.fbs:
regenerate into a temp dir and compare file by file."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
COMMITTED = PACKAGE / "src" / "muster" / "wire"


def test_committed_bindings_match_schema(tmp_path):
    flatc = os.environ.get("FLATC", "flatc")
    if shutil.which(flatc) is None:
        pytest.skip("flatc not installed (apt-get install flatbuffers-compiler)")
    version = subprocess.run([flatc, "--version"], capture_output=True, text=True).stdout.split()[-1]
    if version != "2.0.8":
        pytest.skip(f"flatc {version} installed; the bindings are generated with flatc 2.0.8")
    proc = subprocess.run(["bash", str(PACKAGE / "regen.sh"), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    fresh = tmp_path / "muster" / "wire"
    committed = sorted(p.name for p in COMMITTED.glob("*.py"))
    generated = sorted(p.name for p in fresh.glob("*.py"))
    assert committed == generated, "files differ: run worker/python/regen.sh"
    _, mismatch, errors = filecmp.cmpfiles(COMMITTED, fresh, generated, shallow=False)
    assert not mismatch and not errors, f"stale bindings {mismatch or errors}: run worker/python/regen.sh"
