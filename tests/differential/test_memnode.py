"""Memnode half: every scenario on an emulated linux-6.18 machine, compared
step by step with the real kernel's trail (this host's, or the recording when
MEMNODE_NO_HOST_KSM=1): counters, ksm_stat, page grouping and surviving
frames (labels), op results, and the tracepoint sequence where both worlds
have one."""

from __future__ import annotations

import pytest

import observe
from memnode_exec import MemnodeExecutor
from scenarios import DEFAULT_KNOBS, SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_memnode_vs_kernel(memnode_profile, reference, scenario):
    client = memnode_profile()
    ref = reference(scenario)
    ex = MemnodeExecutor(client, DEFAULT_KNOBS)
    try:
        trail = observe.run_scenario(ex, scenario)
    except observe.Unsupported as e:
        pytest.fail("memnode cannot run %s: %s" % (scenario.name, e), pytrace=False)
    # The kernel's event log exists wherever tracefs could be mounted (else the
    # host half says so); memnode must then have the same tracepoints.
    if ref["events"] and not ex.has_events:
        pytest.fail("memnode has no tracepoint-named events: %s" % ex.events_unavailable_reason,
                    pytrace=False)
    compare_events = bool(ref["events"])
    diffs = observe.compare_trails(ref["trail"], trail, names=("kernel", "memnode"),
                                   events=compare_events)
    assert not diffs, "%s: memnode differs from the kernel:\n  %s" % (scenario.name,
                                                                      "\n  ".join(diffs))
    # memnode must satisfy the same rules on its own (a clearer message when
    # the reference itself was recorded elsewhere).
    problems = observe.check_expectations(scenario, trail) + observe.invariants(trail)
    assert not problems, "\n  ".join(problems)
