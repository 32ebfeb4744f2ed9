"""The Python and TypeScript SDKs as a user gets them, built and installed in temp dirs: the
wheel (and sdist) of `muster-sdk` installed into a fresh virtualenv, and the npm tarball
`muster-sdk-<version>.tgz` installed into a fresh npm project. Shared by the package tests
(test_python_package, test_typescript_package, test_packages_cross_language).

Must never: install anything outside the directories it is given (no global pip or npm).
Needs the package indexes the first time (pip and npm cache what they fetch).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

PYTHON_SDK = REPO / "worker" / "python"
TYPESCRIPT_SDK = REPO / "worker" / "typescript"


def run(args, **kw) -> subprocess.CompletedProcess:
    """Runs a command (bounded), failing with its output when it fails."""
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout}\n{out.stderr}"
    return out


def build_python_dists(outdir: Path) -> tuple[Path, Path]:
    """`python -m build` of the Python SDK: returns (wheel, sdist)."""
    run([sys.executable, "-m", "build", "--outdir", outdir, PYTHON_SDK])
    (wheel,) = outdir.glob("muster_sdk-*.whl")
    (sdist,) = outdir.glob("muster_sdk-*.tar.gz")
    return wheel, sdist


def venv_with_wheel(wheel: Path, venv: Path) -> Path:
    """A fresh virtualenv at `venv` with `wheel` (and its dependencies) installed; returns venv."""
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel])
    return venv


def npm(args, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return run(["npm", *args], cwd=cwd, **kw)


def npm_pack(outdir: Path) -> Path:
    """`npm pack` of the TypeScript SDK (its `prepare` builds dist/): returns the tarball."""
    npm(["pack", "--silent", "--pack-destination", outdir], TYPESCRIPT_SDK)
    (tgz,) = outdir.glob("muster-sdk-*.tgz")
    return tgz


def npm_project_with(tgz: Path, project: Path) -> Path:
    """A fresh npm project (`npm init -y`) at `project` with `tgz` installed; returns project."""
    project.mkdir(parents=True)
    npm(["init", "-y"], project)
    npm(["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", tgz], project)
    return project
