"""Fixtures of the integration tests: the real memnoded binary on loopback.

Run as ``MEMNODE_BUILD_DIR=<abs build dir> /usr/bin/python3 -m pytest -q
tests/integration`` (what ``make test`` does). The build directory provides
the server (``server/memnoded``) and the generated Python stubs
(``python/memnode/v1``); ``client/python`` provides the friendly wrapper.
"""

from __future__ import annotations

import itertools
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("MEMNODE_BUILD_DIR", REPO / "build" / "release")).resolve()
PY_STUBS = BUILD_DIR / "python"
CLIENT_DIR = REPO / "client" / "python"

for _p in (str(CLIENT_DIR), str(PY_STUBS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

STARTUP_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0

# Limit on the bytes of a single WriteMemory/ReadMemory that the server is
# started with, so that the REQUEST_TOO_LARGE test knows it exactly.
MAX_REQUEST_BYTES = 1 << 20

# Extra server flags; MEMNODE_TEST_SERVER_FLAGS may add more (space separated).
SERVER_FLAGS = [
    "--listen=127.0.0.1:0",
    "--max_request_bytes=%d" % MAX_REQUEST_BYTES,
] + os.environ.get("MEMNODE_TEST_SERVER_FLAGS", "").split()

_LISTENING = re.compile(rb"^LISTENING (127\.0\.0\.1:\d+)\s*$")


class _Server:
    """A running memnoded child process."""

    def __init__(self, binary: Path) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="memnoded-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [str(binary)] + SERVER_FLAGS,
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
            cwd=str(BUILD_DIR), start_new_session=True)
        self.address = None
        self._stdout_lines = []

    def wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        buf = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not buf:
                break
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break  # EOF: the server closed stdout or died
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._stdout_lines.append(line)
                m = _LISTENING.match(line)
                if m:
                    self.address = m.group(1).decode()
                    # Keep draining stdout so the server never blocks on it.
                    threading.Thread(target=self._drain, daemon=True).start()
                    return self.address
        self.stop()
        raise RuntimeError(
            "memnoded did not print 'LISTENING 127.0.0.1:<port>' within %.0f s "
            "(exit code %s).\nflags: %s\nstdout:\n%s\nstderr:\n%s" % (
                timeout, self.proc.returncode, " ".join(SERVER_FLAGS),
                b"\n".join(self._stdout_lines + [buf]).decode(errors="replace"),
                self.stderr_tail()))

    def _drain(self) -> None:
        try:
            for line in self.proc.stdout:
                self._stdout_lines.append(line.rstrip(b"\n"))
        except (OSError, ValueError):
            pass

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.log.name, "rb") as f:
                data = f.read()
            return data[-limit:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_GRACE_S)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture(scope="session")
def memnoded():
    """Starts ``$MEMNODE_BUILD_DIR/server/memnoded`` on 127.0.0.1:<free port>
    and yields its address; SIGTERM (then SIGKILL) at the end."""
    binary = BUILD_DIR / "server" / "memnoded"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail("memnoded binary not found at %s (set MEMNODE_BUILD_DIR to the "
                    "absolute build directory and build it first)" % binary, pytrace=False)
    if not (PY_STUBS / "memnode" / "v1" / "machine_pb2.py").is_file():
        pytest.fail("generated Python stubs not found under %s (build target "
                    "memnode_python_stubs)" % PY_STUBS, pytrace=False)
    server = _Server(binary)
    try:
        address = server.wait_listening(STARTUP_TIMEOUT_S)
        yield address
    finally:
        server.stop()
        rc = server.proc.returncode
        # A crash (signal other than the TERM/KILL we sent) is a test failure.
        if rc is not None and rc < 0 and -rc not in (signal.SIGTERM, signal.SIGKILL):
            pytest.fail("memnoded died with signal %d\n%s" % (-rc, server.stderr_tail()),
                        pytrace=False)
        try:
            os.unlink(server.log.name)
        except OSError:
            pass


@pytest.fixture(scope="session")
def client(memnoded):
    """A memnode.Client connected to the test server."""
    from memnode import Client
    c = Client(memnoded, timeout=120.0)
    c.wait_ready(timeout=10.0)
    yield c
    c.close()


_machine_ids = itertools.count(1)


def _machine_id(request) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")
    base = ("t-" + base)[:48].rstrip("-")
    return "%s-%d" % (base, next(_machine_ids))


@pytest.fixture
def make_machine(client, request):
    """Factory: ``make_machine(nodes=2, blocks_per_node=4, pages_per_block=64)``
    creates a MANUAL machine with a unique id; all are deleted at teardown."""
    created = []

    def make(nodes: int = 2, blocks_per_node: int = 4, pages_per_block: int = 64,
             clock: str = "manual"):
        m = client.create_machine(_machine_id(request), nodes=nodes,
                                  blocks_per_node=blocks_per_node,
                                  pages_per_block=pages_per_block, clock=clock)
        created.append(m)
        return m

    yield make
    for m in created:
        m.__exit__(None, None, None)


@pytest.fixture
def machine(make_machine):
    """A small MANUAL machine: 2 nodes x 4 blocks x 64 pages."""
    return make_machine()
