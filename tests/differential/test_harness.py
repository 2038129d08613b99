"""The harness's own logic, on any machine (no KSM, no server needed):
frame labels, trail comparison, the driver's refusal on a kernel without KSM,
and the recordings' consistency with the scenario catalogue."""

from __future__ import annotations

import json
import pytest

import host_ksm
import observe
from conftest import RECORDED
from scenarios import SCENARIOS, smart_scan_visits


def test_labels_follow_frames_not_pfns():
    lab = observe.FrameLabeler()
    # Two pages, own frames.
    out = lab.label("fill", {"A.r0.0": (10, False, False, 1), "A.r0.1": (11, False, False, 1)})
    assert out["A.r0.0"][0] == "A.r0.0@fill" and out["A.r0.1"][0] == "A.r0.1@fill"
    # A merge: page 0 now maps page 1's frame, which keeps its label.
    out = lab.label("pass2", {"A.r0.0": (11, True, False, 2), "A.r0.1": (11, True, False, 2)})
    assert out["A.r0.0"][0] == out["A.r0.1"][0] == "A.r0.1@fill"
    # A COW copy that the allocator happens to put at the old pfn 10 (freed by
    # the merge) is a new frame, not page 0's original one.
    out = lab.label("cow", {"A.r0.0": (10, False, False, 1), "A.r0.1": (11, True, False, 1)})
    assert out["A.r0.0"][0] == "A.r0.0@cow"
    assert out["A.r0.1"][0] == "A.r0.1@fill"
    # A frame whose every earlier mapper moved away, reused by another page:
    # fresh label as well.
    out = lab.label("s9", {"A.r0.0": (11, False, False, 1), "A.r0.1": (12, False, False, 1)})
    assert out["A.r0.0"][0] == "A.r0.0@s9" and out["A.r0.1"][0] == "A.r0.1@s9"
    # The zero page, and absent pages.
    out = lab.label("z", {"A.r0.0": (99, False, True, 0), "A.r0.1": None})
    assert out["A.r0.0"] == ["zero", False, True, None] and out["A.r0.1"] is None


def test_events_rename_frames_processes_and_rmap_items():
    lab = observe.FrameLabeler()
    lab.label("fill", {"A.r0.0": (10, False, False, 1), "A.r0.1": (11, False, False, 1)})
    canon = observe.EventCanon(lab, zero_pfn=5)
    ev = canon.canon([
        ("ksm_start_scan", {"seq": 1, "rmap_entries": 2}),
        ("ksm_merge_with_ksm_page", {"ksm_page": False, "pfn": 11, "rmap": "ff01", "mm": "A",
                                     "err": 0}),
        ("ksm_merge_one_page", {"pfn": 5, "rmap": "ff02", "mm": "A", "err": 0}),
        ("ksm_remove_rmap_item", {"pfn": 77, "rmap": "ff01", "mm": "A"}),
    ])
    assert ev == [["ksm_start_scan", 1, 2],
                  ["ksm_merge_with_ksm_page", False, "A.r0.1@fill", "ri0", "A", 0],
                  ["ksm_merge_one_page", "zero", "ri1", "A", 0],
                  ["ksm_remove_rmap_item", "?0", "ri0", "A"]]


def test_compare_trails_reports_each_kind_of_difference():
    base = {"tag": "pass1", "op": "ksmd", "result": {}, "counters": {"pages_shared": 1},
            "stat": {"A": {"ksm_rmap_items": 2}}, "pages": {"A.r0.0": ["x@f", True, False, 2]},
            "events": [["ksm_start_scan", 0, 0]]}
    other = json.loads(json.dumps(base))
    assert observe.compare_trails([base], [other]) == []
    other["counters"]["pages_shared"] = 2
    other["pages"]["A.r0.0"][0] = "y@f"
    other["stat"]["A"]["ksm_rmap_items"] = 3
    other["events"] = []
    diffs = observe.compare_trails([base], [other])
    assert len(diffs) == 4, diffs
    assert observe.compare_trails([base], [other], events=False) != []


def test_driver_refuses_a_kernel_without_ksm(monkeypatch, tmp_path):
    monkeypatch.setattr(host_ksm, "KSM_DIR", tmp_path / "no-such-ksm")
    with pytest.raises(host_ksm.HostKsmUnavailable, match="no KSM"):
        host_ksm.HostKsm().acquire()


def test_smart_scan_schedule_rule():
    # skip_age(): 1 skip for ages up to 3, 2 up to 5, 4 up to 8, then 8.
    assert smart_scan_visits(40) == [1, 2, 3, 4, 6, 9, 14, 23, 32]


def test_recordings_match_the_catalogue():
    """Every scenario has a recording of the real kernel with one record per
    step; a scenario edited without re-recording is caught here."""
    for sc in SCENARIOS:
        path = RECORDED / ("%s.json" % sc.name)
        assert path.exists(), "%s missing: run with MEMNODE_DIFFERENTIAL_RECORD=1" % path
        rec = json.loads(path.read_text())
        tags = [op.tag for op in sc.tagged()]
        assert [s["tag"] for s in rec["trail"]] == tags, sc.name
        assert [s["op"] for s in rec["trail"]] == [op.describe() for op in sc.tagged()], sc.name
        assert not observe.check_expectations(sc, rec["trail"]), sc.name
    assert (RECORDED / "knob_matrix.json").exists()
