"""Host half: every scenario on this machine's real KSM, checked against the
kernel rules written in scenarios.py, plus the safety of the host driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import host_ksm
import observe
from conftest import HERE, TRACEFS_OFF, load_recorded
from host_exec import HostExecutor
from scenarios import DEFAULT_KNOBS, SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_on_host(host_trails, scenario):
    result = host_trails(scenario)
    trail = result["trail"]
    problems = observe.check_expectations(scenario, trail) + observe.invariants(trail)
    assert not problems, "%s on the real kernel:\n  %s" % (scenario.name, "\n  ".join(problems))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_host_trail_matches_recording(host_trails, scenario):
    """The kernel is deterministic under lockstep: this host's trail equals the
    recording made on the same kernel release (events included when both have
    them). A different kernel release is reported as such, not compared."""
    rec = load_recorded(scenario.name)
    assert rec is not None, "no recording for %s (MEMNODE_DIFFERENTIAL_RECORD=1)" % scenario.name
    if rec["kernel"] != os.uname().release:
        pytest.skip("recorded on %s, this host runs %s: re-record with "
                    "MEMNODE_DIFFERENTIAL_RECORD=1" % (rec["kernel"], os.uname().release))
    result = host_trails(scenario)
    diffs = observe.compare_trails(rec["trail"], json.loads(json.dumps(result["trail"])),
                                   names=("recorded", "now"),
                                   events=bool(rec["events"] and result["events"]))
    assert not diffs, "\n".join(diffs)


def test_event_log_available(host):
    """The tracepoint comparison needs tracefs; its absence is reported, not
    silently skipped (MEMNODE_NO_TRACEFS=1 documents a host without it)."""
    if host.tracing.ok:
        return
    if TRACEFS_OFF:
        pytest.skip("MEMNODE_NO_TRACEFS=1: %s" % host.tracing.unavailable)
    pytest.fail("the ksm tracepoints cannot be recorded: %s (set MEMNODE_NO_TRACEFS=1 on a "
                "host without tracefs)" % host.tracing.unavailable, pytrace=False)


def test_event_log_frames_pass(host_trails):
    """Each lockstep pass shows exactly one ksm_start_scan / ksm_stop_scan
    pair around its events, with seq = full_scans before the pass."""
    scenario = SCENARIOS[2]                       # checksum_first_delay
    result = host_trails(scenario)
    if not result["events"]:
        pytest.skip("no event log on this host: %s" % result["events_unavailable"])
    for s in result["trail"]:
        if not s["tag"].startswith("pass"):
            assert not any(e[0] in ("ksm_start_scan", "ksm_stop_scan") for e in s["events"]), s
            continue
        ev = s["events"]
        assert ev[0][0] == "ksm_start_scan" and ev[-1][0] == "ksm_stop_scan", ev
        assert ev[0][1] == ev[-1][1] == s["counters"]["full_scans"] - 1, ev


def test_guard_sees_mergeable_process(host, helper_binary):
    """processes_using_ksm() names a process that only madvised MERGEABLE
    (ksmd has not run): the driver would refuse to start next to it."""
    p = subprocess.Popen([str(helper_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         bufsize=0)
    try:
        p.stdout.readline()
        for cmd in ("mmap 0 %d 2" % 0x2000_0000_0000, "fill 0 0 2 seed 1 0", "madvise 0 0 2 12"):
            p.stdin.write((cmd + "\n").encode())
            assert p.stdout.readline().startswith(b"ok"), cmd
        users = host_ksm.processes_using_ksm(exclude=(os.getpid(),))
        assert any(u.startswith("%d " % p.pid) and "ksm_mergeable" in u for u in users), users
        probe = host_ksm.HostKsm()
        probe.writable = host.ksm.writable
        with pytest.raises(host_ksm.HostKsmBusy, match="process %d " % p.pid):
            probe._refuse_if_busy()
    finally:
        p.kill()
        p.wait()
    assert not any(u.startswith("%d " % p.pid) for u in host_ksm.processes_using_ksm())


def _die_with_parent():
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)   # PR_SET_PDEATHSIG


_DRIVER = r"""
import sys, time
sys.path.insert(0, %(here)r)
import host_ksm
k = host_ksm.HostKsm()
k.acquire()
host_ksm.write_knob("sleep_millisecs", "4321")
host_ksm.write_knob("max_page_sharing", "77")
host_ksm.write_knob("use_zero_pages", "1")
host_ksm.write_knob("run", "1")
print("changed", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_driver_restores_knobs_after_signal(host, sig):
    """A driver killed by a signal leaves every knob as it found it: at once
    for SIGTERM/SIGINT, at the next acquire (state file) for SIGKILL."""
    problems = host.release()
    assert not problems, problems
    before = {f: host_ksm.read_knob(f) for f in host_ksm.HostKsm().writable_files()}
    try:
        # The driver gets SIGTERM if this process dies (PR_SET_PDEATHSIG), so
        # an interrupted session never leaves it behind holding the knobs.
        p = subprocess.Popen([sys.executable, "-c", _DRIVER % {"here": str(HERE)}],
                             stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
        assert p.stdout.readline().strip() == "changed"
        assert host_ksm.read_knob("sleep_millisecs") == "4321\n"
        os.kill(p.pid, sig)
        p.wait(timeout=30)
        if sig == signal.SIGKILL:
            assert host_ksm.STATE_FILE.exists()
            assert host_ksm.read_knob("max_page_sharing") == "77\n"
            # run=1 left behind by a dead driver: the next acquire repairs
            # from the state file before it looks at run.
    finally:
        host.acquire()
    after = {f: host_ksm.read_knob(f) for f in host.ksm.writable}
    assert after == before
    assert after["run"] == "0\n"
    # The state file now holds this session's own save (the repaired knobs).
    assert json.loads(host_ksm.STATE_FILE.read_text()) == host.ksm.saved == before


def test_lockstep_pass_is_one_full_scan(host, helper_binary):
    """Between passes ksmd does nothing: counters read twice, a while apart,
    are equal; each one_pass() advances full_scans by exactly one."""
    from dsl import Scenario, fill, madvise, mmap, seed, spawn
    sc = Scenario(name="lockstep_probe", doc="", expect=[],
                  ops=[spawn("A"), mmap("A", "r0", 4), fill("A", "r0", 0, 4, seed(3, step=1)),
                       madvise("A", "r0", 0, 4, "mergeable")])
    ex = HostExecutor(host.ksm, helper_binary, None, DEFAULT_KNOBS)
    ex.begin(sc)
    try:
        ex.spawn("A")
        ex.mmap("A", "r0", sc.address("r0"), 4, False)
        ex.fill("A", "r0", 0, 4, "seed", 3, 1)
        ex.madvise("A", "r0", 0, 4, 12)
        for k in range(1, 4):
            ex.do_pass()
            a = host.ksm.counters()
            time.sleep(0.2)
            b = host.ksm.counters()
            assert a == b and a["full_scans"] == k
    finally:
        ex.end()


def test_fill_generators_match_memnode(helper_binary):
    """The helper's page contents are the bytes memnode's FillMemory writes
    (memnode.digest is the client's reference implementation of them)."""
    sys.path.insert(0, str(HERE.parents[1] / "client" / "python"))
    from memnode.digest import byte_fill, random_bytes
    addr = 0x2000_0000_0000
    p = subprocess.Popen([str(helper_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         bufsize=0)
    try:
        p.stdout.readline()
        cmds = ["mmap 0 %d 4" % addr, "fill 0 0 1 zero 0", "fill 0 1 1 byte 171",
                "fill 0 2 2 seed 12345 7"]
        for cmd in cmds:
            p.stdin.write((cmd + "\n").encode())
            assert p.stdout.readline().startswith(b"ok"), cmd
        with open("/proc/%d/mem" % p.pid, "rb", buffering=0) as mem:
            mem.seek(addr)
            data = mem.read(4 * 4096)
    finally:
        p.kill()
        p.wait()
    assert data[0:4096] == bytes(4096)
    assert data[4096:8192] == byte_fill(171, 4096)
    assert data[8192:12288] == random_bytes(12345, 4096)
    assert data[12288:16384] == random_bytes(12345 + 7, 4096)
