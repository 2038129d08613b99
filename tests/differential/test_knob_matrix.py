"""The knob errno matrix: every writable /sys/kernel/mm/ksm file x the
inputs of knob_matrix.COMMON_INPUTS, plus the advisor side effects. The host
must answer what the parser rules (knob_matrix.expected) say; memnode must
answer what the host (or the recording) answered."""

from __future__ import annotations

import json

import pytest

import host_ksm
import knob_matrix
from conftest import HOST_OFF, RECORD, RECORDED, load_recorded
from scenarios import DEFAULT_KNOBS

BASELINE = dict(DEFAULT_KNOBS, run="0", advisor_mode="none", pages_to_scan="100",
                sleep_millisecs="20", advisor_max_cpu="70", advisor_min_pages_to_scan="500",
                advisor_max_pages_to_scan="30000", advisor_target_scan_time="200")
ORDER = ("run", "advisor_mode") + tuple(f for f in host_ksm.RESTORE_ORDER
                                        if f != "advisor_mode")


def _baseline(write, read):
    for f in ORDER:
        if f in BASELINE:
            err = write(f, BASELINE[f])
            assert err == 0, (f, err)
    return {f: read(f) for f in BASELINE}


def run_matrix(write, read):
    """[(file, input, errno, readback)] and [(setup, file, input, errno, readback)]."""
    rows, side = [], []
    for f in sorted(BASELINE):
        for text in knob_matrix.COMMON_INPUTS:
            _baseline(write, read)
            err = write(f, text)
            rows.append([f, text, err, read(f)])
    for setup, f, text in knob_matrix.SIDE_EFFECT_ROWS:
        _baseline(write, read)
        for sf, st in setup:
            write(sf, st)
        err = write(f, text)
        side.append([[list(x) for x in setup], f, text, err, read(f)])
    _baseline(write, read)
    return rows, side


@pytest.fixture(scope="module")
def host_matrix(host):
    def write(f, text):
        return host_ksm.write_knob(f, text)[0]
    rows, side = run_matrix(write, host_ksm.read_knob)
    host.ksm.reset({})          # the saved knobs again, lockstep knobs for what follows
    if RECORD:
        RECORDED.mkdir(exist_ok=True)
        (RECORDED / "knob_matrix.json").write_text(json.dumps(
            {"kernel": __import__("os").uname().release, "rows": rows, "side_effects": side},
            indent=1) + "\n")
    return rows, side


def test_every_writable_file_is_in_the_matrix(host):
    assert sorted(host.ksm.writable) == sorted(BASELINE)


def test_knob_matrix_on_host(host_matrix):
    rows, side = host_matrix
    current = None
    bad = []
    for f, text, err, back in rows:
        current = {k: "%s\n" % v if k != "advisor_mode" else "[none] scan-time\n"
                   for k, v in BASELINE.items()}
        want = knob_matrix.expected(f, text, current)
        if (err, back) != want:
            bad.append("echo -n %r > %s: errno %d, reads %r; parser rules say errno %d, %r"
                       % (text, f, err, back, want[0], want[1]))
    for setup, f, text, err, back in side:
        want = knob_matrix.side_effect_expected(tuple(tuple(x) for x in setup), f, text, current)
        if (err, back) != want:
            bad.append("after %s: echo -n %r > %s: errno %d, reads %r; rules say %d, %r"
                       % (setup, text, f, err, back, want[0], want[1]))
    assert len(rows) == len(BASELINE) * len(knob_matrix.COMMON_INPUTS)
    assert not bad, "\n".join(bad)


def test_knob_matrix_on_memnode(memnode_profile, request):
    client = memnode_profile()
    from memnode_exec import MemnodeExecutor
    from dsl import Scenario
    if HOST_OFF:
        rec = load_recorded("knob_matrix")
        assert rec is not None, "no host KSM here and no recording %s/knob_matrix.json" % RECORDED
        rows, side = rec["rows"], rec["side_effects"]
    else:
        rows, side = request.getfixturevalue("host_matrix")
    ex = MemnodeExecutor(client, DEFAULT_KNOBS)
    ex.begin(Scenario(name="knob-matrix", doc="", ops=[], expect=[]))
    try:
        got_rows, got_side = run_matrix(lambda f, t: ex.write_knob(f, t)[0], ex.read_knob)
    finally:
        ex.end()
    bad = ["%s %r: host errno %d reads %r, memnode errno %d reads %r" % (h[0], h[1], h[2], h[3],
                                                                         m[2], m[3])
           for h, m in zip(rows, got_rows) if h != m]
    bad += ["side effect %s: host %s, memnode %s" % (h[:3], h[3:], m[3:])
            for h, m in zip(side, got_side) if h != m]
    assert not bad, "\n".join(bad)
