"""client/python is an installable package (pip, offline, Debian's Python).

Creates a venv with --system-site-packages in a temp dir (grpcio, protobuf,
setuptools and wheel come from Debian), runs
``pip install --no-build-isolation --no-index ./client/python`` (the stubs are
generated from protos/ by client/python/setup.py), then runs a script in that
venv from a temp cwd, without PYTHONPATH, against the session's memnoded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import PY_STUBS, REPO

TIMEOUT_S = 300

# docs/SEMANTICS.md SC-1: two processes, one identical page each: after pass 1
# volatile 2 and nothing merged; after pass 2 shared 1, sharing 1.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    import memnode
    from memnode.v1 import machine_pb2
    from memnode import Client, MemnodeError, PAGE_SIZE

    out = {"memnode": memnode.__file__, "stubs": machine_pb2.__file__}
    with Client(sys.argv[1], timeout=60) as c:
        c.wait_ready(timeout=10)
        try:
            c.machine("no-such-machine").get()
        except MemnodeError as e:            # reason needs google.rpc stubs
            out["reason"] = e.reason
        with c.create_machine("pkg-%d" % os.getpid(), nodes=2, blocks_per_node=2,
                              pages_per_block=64, clock="manual") as m:
            for p in (m.create_process(home_node=1), m.create_process(home_node=1)):
                addr = p.mmap(PAGE_SIZE, "rw").address
                p.fill(addr, PAGE_SIZE, byte=0x42)
                assert p.madvise(addr, PAGE_SIZE, "mergeable").ok
            m.ksm.step(full_scans=1)
            out["pass1"] = m.ksm.counters()
            m.ksm.step(full_scans=1)
            out["pass2"] = m.ksm.counters()
            out["check"] = m.check().ok
    print(json.dumps(out))
""")


def _env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("MEMNODE_STUBS_DIR", None)
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _run(cmd, env, cwd):
    r = subprocess.run(cmd, env=env, cwd=str(cwd), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, "%s failed (%d):\n%s" % (" ".join(map(str, cmd)),
                                                      r.returncode, r.stdout[-6000:])
    return r.stdout


def _venv(tmp_path, env):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], env, tmp_path)
    return venv / "bin" / "python"


def _pip_install(py, env, extra=()):
    return _run([str(py), "-m", "pip", "install", "--no-build-isolation", "--no-index",
                 *extra, "./client/python"], env, REPO)


def test_pip_install_generates_stubs_and_talks_to_memnoded(memnoded, tmp_path):
    env = _env()
    py = _venv(tmp_path, env)
    log = _pip_install(py, env)
    assert "Successfully installed memnode" in log, log

    work = tmp_path / "cwd"
    work.mkdir()
    (work / "scenario.py").write_text(SCRIPT)
    out = json.loads(_run([str(py), "scenario.py", memnoded], env, work).strip().splitlines()[-1])

    site = str(tmp_path / "venv")
    assert out["memnode"].startswith(site), out      # the installed copy, not client/python
    assert out["stubs"].startswith(site), out
    assert out["reason"] == "MACHINE_NOT_FOUND"
    p1, p2 = out["pass1"], out["pass2"]
    assert (p1["pages_shared"], p1["pages_sharing"], p1["pages_unshared"],
            p1["pages_volatile"], p1["full_scans"]) == (0, 0, 0, 2, 1)
    assert (p2["pages_shared"], p2["pages_sharing"], p2["pages_unshared"],
            p2["pages_volatile"], p2["full_scans"]) == (1, 1, 0, 0, 2)
    assert out["check"] is True

    # Uninstall removes the generated stubs too (they are in the wheel's RECORD).
    _run([str(py), "-m", "pip", "uninstall", "-y", "memnode"], env, REPO)
    r = subprocess.run([str(py), "-c", "import memnode"], env=env, cwd=str(work),
                       capture_output=True, text=True)
    assert r.returncode != 0


def test_pip_install_from_build_stubs_dir(tmp_path):
    """MEMNODE_STUBS_DIR=<build>/python: the stubs CMake generated are copied."""
    env = _env()
    env["MEMNODE_STUBS_DIR"] = str(PY_STUBS)
    py = _venv(tmp_path, env)
    log = _pip_install(py, env)
    assert "Successfully installed memnode" in log, log
    del env["MEMNODE_STUBS_DIR"]
    out = _run([str(py), "-c", "import memnode, memnode.client; from memnode.v1 import "
                "machine_pb2, ksm_pb2_grpc; from google.rpc import status_pb2; "
                "print(machine_pb2.__file__)"], env, tmp_path)
    assert out.strip().startswith(str(tmp_path / "venv")), out
