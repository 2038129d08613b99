"""Shared helpers of the deployment-file tests (tests/deploy).

(No conftest.py here: tests import what they use from this module, so that
this folder and tests/integration, whose tests import its conftest, can run in
one pytest session.)

Run as ``MEMNODE_BUILD_DIR=... /usr/bin/python3 -m pytest -q -rs
tests/deploy`` (what ``make test`` does, after the build and
``scripts/deps.sh test``). Everything is offline: the Kubernetes manifests
are rendered by kustomize_lite.py and by a real kustomize, validated against
the Kubernetes JSON schemas with the npm packages pinned in
node/package-lock.json (installed there with ``npm ci``), the unit is checked
by ``systemd-analyze``, the Dockerfile and compose.yaml are parsed and
compared with the Makefile and the files they use, and every shipped config
is started as shipped in its own namespaces (deployed.py, shipped.py) with
the memnoded and memnodectl of ``$MEMNODE_BUILD_DIR`` (default
build/release). A missing tool or build fails the test with its name;
nothing is skipped. container_e2e.py (a real Docker engine) is not
collected here: ``make test-container`` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NODE_DIR = Path(__file__).resolve().parent / "node"
BUILD_DIR = Path(os.environ.get("MEMNODE_BUILD_DIR", REPO / "build" / "release")).resolve()



def memnoded_binary() -> Path:
    path = BUILD_DIR / "server" / "memnoded"
    assert os.access(path, os.X_OK), f"{path} is not built (run `make build`, or set MEMNODE_BUILD_DIR)"
    return path


def memnodectl_binary() -> Path:
    path = BUILD_DIR / "client" / "cpp" / "memnodectl"
    assert os.access(path, os.X_OK), f"{path} is not built (run `make build`, or set MEMNODE_BUILD_DIR)"
    return path


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/deploy/node installed with `npm ci` from its lock file."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, ("Kubernetes schema validation needs node and npm on PATH: "
                          "scripts/deps.sh installs them (`make deps`)")
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        r = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"npm ci in {NODE_DIR} failed:\n{r.stdout}\n{r.stderr}"
    return NODE_DIR / "node_modules"
