"""The scan-time advisor, checked by replay: its inputs (scan time, CPU
share) depend on wall and CPU time, so they are taken from the real kernel's
ksm_advisor tracepoint and fed to the rule (advisor.replay) and to memnode;
the pages_to_scan sequence must be the kernel's."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import advisor
import host_ksm
from conftest import HOST_OFF, RECORD, RECORDED, TRACEFS_OFF, load_recorded
from scenarios import DEFAULT_KNOBS

KNOBS = {"advisor_min_pages_to_scan": "300", "advisor_max_pages_to_scan": "5000",
         "advisor_max_cpu": "50", "advisor_target_scan_time": "2"}
SCANS = 6


@pytest.fixture(scope="module")
def host_advisor(host, helper_binary):
    if not host.tracing.ok:
        if TRACEFS_OFF:
            pytest.skip("MEMNODE_NO_TRACEFS=1: %s" % host.tracing.unavailable)
        pytest.fail("the advisor replay needs the ksm_advisor tracepoint: %s"
                    % host.tracing.unavailable, pytrace=False)
    host.ksm.reset(dict(DEFAULT_KNOBS, **KNOBS))
    p = subprocess.Popen([str(helper_binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         bufsize=0)
    try:
        p.stdout.readline()
        for cmd in ("mmap 0 %d 512" % 0x2000_0000_0000, "fill 0 0 256 seed 77 0",
                    "fill 0 256 256 seed 1000 1", "madvise 0 0 512 12"):
            p.stdin.write((cmd + "\n").encode())
            assert p.stdout.readline().startswith(b"ok"), cmd
        host.tracing.drain()
        for f, t in (("advisor_mode", "scan-time"), ("sleep_millisecs", "5"), ("run", "1")):
            assert host_ksm.write_knob(f, t)[0] == 0, f
        deadline = time.monotonic() + 120
        while int(host_ksm.read_knob("full_scans")) < SCANS:
            assert time.monotonic() < deadline, "ksmd did not do %d scans in 120 s" % SCANS
            time.sleep(0.01)
        host_ksm.write_knob("run", "0")
        final = int(host_ksm.read_knob("pages_to_scan"))
        events = [host_ksm.parse_event(n, b) for n, b in host.tracing.drain()
                  if n == "ksm_advisor"]
    finally:
        p.kill()
        p.wait()
        host.ksm.reset(DEFAULT_KNOBS)
    rec = {"kernel": os.uname().release, "knobs": KNOBS, "pages_to_scan_after": final,
           "inputs": [[e["scan_time"], e["cpu_percent"]] for e in events],
           "outputs": [e["pages_to_scan"] for e in events]}
    if RECORD:
        RECORDED.mkdir(exist_ok=True)
        (RECORDED / "advisor_replay.json").write_text(json.dumps(rec, indent=1) + "\n")
    return rec


def _replay(rec):
    k = rec["knobs"]
    return advisor.replay([tuple(x) for x in rec["inputs"]],
                          min_pages=int(k["advisor_min_pages_to_scan"]),
                          max_pages=int(k["advisor_max_pages_to_scan"]),
                          max_cpu=int(k["advisor_max_cpu"]),
                          target_scan_time=int(k["advisor_target_scan_time"]))


def test_advisor_rule_replays_the_kernel(host_advisor):
    rec = host_advisor
    assert len(rec["outputs"]) >= SCANS, rec
    assert _replay(rec) == rec["outputs"]
    # The value ksmd runs with is the last one the advisor computed.
    assert rec["pages_to_scan_after"] == rec["outputs"][-1]


def test_advisor_replay_on_memnode(memnode_profile, request):
    """memnode's advisor fed with the kernel's inputs gives the kernel's
    outputs. Needs KsmService.ReplayAdvisor (docs/DIFFERENTIAL.md)."""
    client = memnode_profile()
    if HOST_OFF:
        rec = load_recorded("advisor_replay")
        assert rec is not None, "no host KSM and no recording advisor_replay.json"
    else:
        rec = request.getfixturevalue("host_advisor")
    if not hasattr(client.ksm, "ReplayAdvisor"):
        pytest.fail("KsmService.ReplayAdvisor(inputs: [{scan_time_s, cpu_percent}]) -> "
                    "{pages_to_scan: [...]} is missing from the API (docs/DIFFERENTIAL.md)",
                    pytrace=False)
    from memnode.v1 import ksm_pb2
    from memnode_exec import MemnodeExecutor
    from dsl import Scenario
    ex = MemnodeExecutor(client, DEFAULT_KNOBS)
    ex.begin(Scenario(name="advisor-replay", doc="", ops=[], expect=[], knobs=rec["knobs"]))
    try:
        assert ex.write_knob("advisor_mode", "scan-time")[0] == 0
        resp = client.call(client.ksm.ReplayAdvisor, ksm_pb2.ReplayAdvisorRequest(
            name=ex.machine.ksm.name,
            inputs=[ksm_pb2.AdvisorInput(scan_time_s=s, cpu_percent=c)
                    for s, c in rec["inputs"]]))
        assert list(resp.pages_to_scan) == rec["outputs"]
        assert int(ex.read_knob("pages_to_scan")) == rec["outputs"][-1]
    finally:
        ex.end()
