"""Enum display names of the Python client (memnode.enums): every value of
every memnode.v1 enum has one, derived from the proto name by the rule of
docs/API.md 1.7, distinct within its enum, and every spelling of it is
accepted back by the client's argument helpers. No server needed."""

from __future__ import annotations

import pytest

from memnode import client as mc
from memnode.enums import display_name, display_names, enum_prefix, enum_value
from memnode.v1 import (common_pb2, events_pb2, hotplug_pb2, ksm_pb2, machine_pb2,
                        numa_pb2, process_pb2)

_FILES = (common_pb2, events_pb2, hotplug_pb2, ksm_pb2, machine_pb2, numa_pb2, process_pb2)


def _all_enums():
    out = []
    for module in _FILES:
        out.extend(module.DESCRIPTOR.enum_types_by_name.values())
        messages = list(module.DESCRIPTOR.message_types_by_name.values())
        while messages:
            m = messages.pop()
            out.extend(m.enum_types)
            messages.extend(m.nested_types)
    return out


ENUMS = _all_enums()


def test_every_enum_of_the_api_is_covered():
    names = {e.name for e in ENUMS}
    assert {"Errno", "ClockMode", "PageState", "OfflinePhase", "MemoryBlockState",
            "MemoryNotifierEvent", "MempolicyMode", "MbindFlag", "Prot", "Advice",
            "ProcessState", "RmapState", "EventKind", "MigrateReason", "PruneReason"} <= names


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.name)
def test_every_value_has_a_distinct_name_that_parses_back(enum):
    names = display_names(enum)
    assert list(names) == [v.number for v in enum.values]
    assert len(set(names.values())) == len(names), names
    for v in enum.values:
        name = names[v.number]
        # The proto name minus a prefix ending in '_', in lower case.
        assert name and name == name.lower()
        assert v.name.endswith(name.upper())
        assert len(v.name) == len(name) or v.name[-len(name) - 1] == "_"
        for text in (name, name.upper(), name.replace("_", "-"), v.name, str(v.number)):
            assert enum_value(enum, text) == v.number, text
    with pytest.raises(ValueError):
        enum_value(enum, "no-such-value")


def test_the_rule_of_docs_api_md():
    assert display_name(hotplug_pb2.OfflinePhase,
                        hotplug_pb2.OFFLINE_PHASE_GOING_OFFLINE) == "going_offline"
    assert display_name(hotplug_pb2.MemoryBlockState,
                        hotplug_pb2.MEMORY_BLOCK_STATE_GOING_OFFLINE) == "going_offline"
    assert display_name(common_pb2.Errno, common_pb2.ERRNO_EFAULT) == "efault"
    assert display_name(common_pb2.Errno, common_pb2.ERRNO_OK) == "ok"
    assert display_name(numa_pb2.MempolicyMode, numa_pb2.MPOL_BIND) == "bind"
    assert display_name(numa_pb2.MbindFlag, numa_pb2.MPOL_MF_MOVE_ALL) == "move_all"
    assert display_name(numa_pb2.MbindFlag, numa_pb2.MBIND_FLAG_NONE) == "mbind_flag_none"
    assert display_name(hotplug_pb2.MemoryNotifierEvent,
                        hotplug_pb2.MEM_GOING_OFFLINE) == "going_offline"
    assert display_name(hotplug_pb2.MemoryNotifierEvent,
                        hotplug_pb2.MEMORY_NOTIFIER_EVENT_UNSPECIFIED) == \
        "memory_notifier_event_unspecified"
    assert display_name(process_pb2.Prot, process_pb2.PROT_NONE) == "none"
    assert display_name(process_pb2.Advice, process_pb2.ADVICE_MERGEABLE) == "mergeable"
    assert display_name(events_pb2.EventKind, events_pb2.EVENT_KIND_COW_BREAK) == "cow_break"
    assert display_name(events_pb2.MigrateReason,
                        events_pb2.MIGRATE_REASON_MEMORY_OFFLINE) == "memory_offline"
    assert display_name(common_pb2.PageState, common_pb2.PAGE_STATE_KSM) == "ksm"
    assert enum_prefix(hotplug_pb2.MemoryNotifierEvent) == "MEM_"
    assert enum_prefix(numa_pb2.MempolicyMode) == "MPOL_"
    assert display_name(common_pb2.PageState, 99) == "99"


def test_client_arguments_take_every_display_name():
    cases = (
        (mc._advice, process_pb2.Advice, {process_pb2.ADVICE_UNSPECIFIED}),
        (mc._clock, common_pb2.ClockMode, set()),
        (mc._mode, numa_pb2.MempolicyMode, set()),
        (mc._phase, hotplug_pb2.OfflinePhase, {hotplug_pb2.OFFLINE_PHASE_DONE}),
        (mc._mem_event, hotplug_pb2.MemoryNotifierEvent, set()),
        (mc._errno, common_pb2.Errno, set()),
    )
    for parse, enum, refused in cases:
        for number, name in display_names(enum).items():
            if number in refused:
                with pytest.raises(ValueError):
                    parse(name)
                continue
            assert parse(name) == number
            assert parse(name.replace("_", "-").upper()) == number
            assert parse(number) == number
    # The spellings the client documented before the names were derived.
    assert mc._phase("going-offline") == hotplug_pb2.OFFLINE_PHASE_GOING_OFFLINE
    assert mc._phase("OFFLINE_PHASE_MIGRATED") == hotplug_pb2.OFFLINE_PHASE_MIGRATED
    assert mc._phase(None) == hotplug_pb2.OFFLINE_PHASE_NONE
    assert mc._mode("mpol_interleave") == numa_pb2.MPOL_INTERLEAVE
    assert mc._mem_event("going-offline") == hotplug_pb2.MEM_GOING_OFFLINE
    assert mc._mem_event("MEM_CANCEL_OFFLINE") == hotplug_pb2.MEM_CANCEL_OFFLINE
    assert mc._errno("EBUSY") == common_pb2.ERRNO_EBUSY
    assert mc._clock("manual") == common_pb2.CLOCK_MODE_MANUAL
    for parse, bad in ((mc._advice, "sideways"), (mc._phase, "done"), (mc._mode, "local")):
        with pytest.raises(ValueError):
            parse(bad)
