"""Fixtures of the differential test (docs/DIFFERENTIAL.md).

Run as root: ``/usr/bin/python3 -m pytest -q tests/differential`` (with
``MEMNODE_BUILD_DIR=<abs build dir>`` for the memnode half).

Environment:
  MEMNODE_NO_HOST_KSM=1           this machine has no usable KSM: the host half
                                  is skipped (it fails otherwise) and the memnode
                                  half is compared with tests/differential/recorded.
  MEMNODE_NO_TRACEFS=1            tracefs cannot be mounted here: the event-order
                                  comparison is skipped (it fails otherwise).
  MEMNODE_DIFFERENTIAL_MEMNODE=0  the memnode half is off (allowed only until the
                                  linux-6.18 profile is wired; it fails otherwise
                                  when the server does not offer the profile).
  MEMNODE_DIFFERENTIAL_RECORD=1   (re)write tests/differential/recorded/*.json from
                                  this host's run.
  MEMNODE_BUILD_DIR               build directory (default build/release).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD_DIR = Path(os.environ.get("MEMNODE_BUILD_DIR", REPO / "build" / "release")).resolve()
RECORDED = HERE / "recorded"

for _p in (str(HERE), str(REPO / "client" / "python"), str(BUILD_DIR / "python")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import host_ksm  # noqa: E402
import observe  # noqa: E402
from host_exec import HostExecutor  # noqa: E402
from scenarios import DEFAULT_KNOBS  # noqa: E402


def env_flag(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


HOST_OFF = env_flag("MEMNODE_NO_HOST_KSM") == "1"
TRACEFS_OFF = env_flag("MEMNODE_NO_TRACEFS") == "1"
MEMNODE_OFF = env_flag("MEMNODE_DIFFERENTIAL_MEMNODE") == "0"
RECORD = env_flag("MEMNODE_DIFFERENTIAL_RECORD") == "1"


# --------------------------------------------------------------------------
# host half
# --------------------------------------------------------------------------

class Host:
    """The session's hold on the host KSM: acquire/release can be repeated
    (the signal tests release it to run their own driver in a subprocess)."""

    def __init__(self) -> None:
        self.ksm = None
        self.tracing = None

    def acquire(self) -> None:
        self.ksm = host_ksm.HostKsm()
        try:
            self.ksm.acquire()
        except (host_ksm.HostKsmUnavailable, host_ksm.HostKsmBusy) as e:
            self.ksm = None
            pytest.fail("host KSM cannot be driven: %s\n(on a machine without KSM set "
                        "MEMNODE_NO_HOST_KSM=1, see docs/DIFFERENTIAL.md)" % e, pytrace=False)
        self.tracing = host_ksm.Tracing()
        self.ksm.tracing = self.tracing

    def release(self) -> list:
        problems = self.ksm.restore() if self.ksm is not None else []
        self.ksm = None
        self.tracing = None
        return problems


@pytest.fixture(scope="session")
def helper_binary():
    """ksm_helper.c compiled with gcc into <build>/differential/."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc not found: it builds tests/differential/ksm_helper.c "
                    "(scripts/deps.sh installs build-essential)", pytrace=False)
    out_dir = BUILD_DIR / "differential"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "ksm_helper"
    src = HERE / "ksm_helper.c"
    r = subprocess.run([gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("compiling %s failed:\n%s" % (src, r.stderr), pytrace=False)
    return out


@pytest.fixture(scope="session")
def host():
    if HOST_OFF:
        pytest.skip("MEMNODE_NO_HOST_KSM=1: the host half is turned off on this machine")
    h = Host()
    h.acquire()
    yield h
    problems = h.release()
    if problems:
        pytest.fail("host KSM was NOT restored cleanly: %s" % "; ".join(problems),
                    pytrace=False)


@pytest.fixture(scope="session")
def host_trails(host, helper_binary):
    """name -> host trail, each scenario run once per session."""
    cache = {}

    def get(scenario):
        if scenario.name not in cache:
            ex = HostExecutor(host.ksm, helper_binary, host.tracing, DEFAULT_KNOBS)
            trail = observe.run_scenario(ex, scenario)
            cache[scenario.name] = {"trail": trail, "events": ex.has_events,
                                    "events_unavailable": ex.events_unavailable_reason}
            if RECORD:
                record(scenario, cache[scenario.name])
        return cache[scenario.name]
    return get


def kernel_release() -> str:
    return os.uname().release


def record(scenario, result) -> None:
    RECORDED.mkdir(exist_ok=True)
    doc = {"scenario": scenario.name, "doc": scenario.doc, "kernel": kernel_release(),
           "knobs": dict(DEFAULT_KNOBS, **scenario.knobs), "events": result["events"],
           "trail": result["trail"]}
    (RECORDED / ("%s.json" % scenario.name)).write_text(
        json.dumps(doc, indent=1, sort_keys=True) + "\n")


def load_recorded(name: str):
    path = RECORDED / ("%s.json" % name)
    if not path.exists():
        return None
    return json.loads(path.read_text())


# --------------------------------------------------------------------------
# memnode half
# --------------------------------------------------------------------------

_LISTENING = re.compile(rb"^LISTENING (127\.0\.0\.1:\d+)\s*$")


@pytest.fixture(scope="session")
def memnode_client():
    if MEMNODE_OFF:
        pytest.skip("MEMNODE_DIFFERENTIAL_MEMNODE=0: the memnode half is turned off until "
                    "the linux-6.18 profile is wired (docs/DIFFERENTIAL.md)")
    binary = BUILD_DIR / "server" / "memnoded"
    if not os.access(binary, os.X_OK):
        pytest.fail("memnoded not found at %s (build it, or set MEMNODE_BUILD_DIR)" % binary,
                    pytrace=False)
    if not (BUILD_DIR / "python" / "memnode" / "v1" / "machine_pb2.py").is_file():
        pytest.fail("generated Python stubs missing under %s/python (target "
                    "memnode_python_stubs)" % BUILD_DIR, pytrace=False)
    log = tempfile.NamedTemporaryFile(prefix="memnoded-diff-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(binary), "--listen=127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=log, stdin=subprocess.DEVNULL, cwd=str(BUILD_DIR),
                            start_new_session=True)
    address, buf = None, b""
    deadline = time.monotonic() + 30
    while address is None and time.monotonic() < deadline and proc.poll() is None:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.split(b"\n"):
                m = _LISTENING.match(line)
                if m:
                    address = m.group(1).decode()
    if address is None:
        proc.kill()
        pytest.fail("memnoded did not start; log %s" % log.name, pytrace=False)
    from memnode import Client
    client = Client(address, timeout=120.0)
    client.wait_ready(timeout=10.0)
    yield client
    client.close()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    os.unlink(log.name)


@pytest.fixture(scope="session")
def _profile_probe(memnode_client):
    from memnode_exec import profile_offered
    return profile_offered(memnode_client)


@pytest.fixture
def memnode_profile(memnode_client, _profile_probe):
    """A callable returning the client once the server is known to offer
    linux-6.18; called in the test body, so that the test FAILS (it is neither
    skipped nor an error of the set-up) when the profile is missing."""
    return lambda: _need_profile(memnode_client, _profile_probe)


def _need_profile(memnode_client, _profile_probe):
    if _profile_probe is not None:
        pytest.fail("the server does not offer the linux-6.18 profile: %s. The memnode half "
                    "of the differential test is expected to pass; set "
                    "MEMNODE_DIFFERENTIAL_MEMNODE=0 only until the profile is wired "
                    "(docs/DIFFERENTIAL.md)." % _profile_probe, pytrace=False)
    return memnode_client


@pytest.fixture
def reference(request):
    """The real-kernel trail of a scenario: this host's (when the host half is
    on), else the recorded one."""
    def get(scenario):
        if not HOST_OFF:
            return request.getfixturevalue("host_trails")(scenario)
        rec = load_recorded(scenario.name)
        if rec is None:
            pytest.fail("no host KSM here and no recording %s/%s.json" % (RECORDED,
                                                                          scenario.name),
                        pytrace=False)
        return {"trail": rec["trail"], "events": rec["events"], "events_unavailable": ""}
    return get
