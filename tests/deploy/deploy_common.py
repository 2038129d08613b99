"""Shared helpers of the deployment-file tests (tests/deploy).

(No conftest.py here: tests import what they use from this module, so that
this folder and tests/integration, whose tests import its conftest, can run in
one pytest session.)

Run as ``/usr/bin/python3 -m pytest -q tests/deploy`` (what ``make test``
does, after the build). Everything is offline: the Kubernetes manifests are
rendered by kustomize_lite.py (and by a real kustomize when one is
installed), validated against the Kubernetes JSON schemas with the npm
packages pinned in node/package-lock.json (installed there with ``npm ci``),
the unit is checked by ``systemd-analyze``, and the Dockerfile and
compose.yaml are parsed and compared with the Makefile and the files they
use. Tests that start memnoded use ``$MEMNODE_BUILD_DIR`` (default
build/release) and are skipped when it has not been built.
"""

from __future__ import annotations

import os
import shutil
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NODE_DIR = Path(__file__).resolve().parent / "node"
BUILD_DIR = Path(os.environ.get("MEMNODE_BUILD_DIR", REPO / "build" / "release")).resolve()



def memnoded_binary() -> Path:
    path = BUILD_DIR / "server" / "memnoded"
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built (run `make build` or set MEMNODE_BUILD_DIR)")
    return path


def memnodectl_binary() -> Path:
    path = BUILD_DIR / "client" / "cpp" / "memnodectl"
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built (run `make build` or set MEMNODE_BUILD_DIR)")
    return path


class Memnoded:
    """memnoded started with the given flags; waits for its LISTENING line."""

    def __init__(self, *args: str, timeout: float = 30.0):
        self.proc = subprocess.Popen([str(memnoded_binary()), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.address = None
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.startswith("LISTENING "):
                    self.address = line.split()[1]
                    self.started = time.monotonic()
                    return
            elif self.proc.poll() is not None:
                break
        self.proc.kill()
        _, err = self.proc.communicate()
        raise AssertionError(f"memnoded {' '.join(args)} did not start (exit {self.proc.returncode}):\n"
                             f"{''.join(lines)}{err}")

    def stop(self, timeout: float = 15.0) -> int:
        # memnoded installs its SIGTERM handler just after printing LISTENING:
        # give it a moment so that the stop is the graceful one under test.
        time.sleep(max(0.0, self.started + 0.5 - time.monotonic()))
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.stop()


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
