"""Display names of memnode.v1 enum values, derived from the enum descriptor
by the rule every memnode client follows (docs/API.md, "Enum display
names"), so a value added to a proto needs no change here:

1. the prefix is the longest prefix ending in ``_`` that all the enum's
   value names share; when they share none, the one its non-zero values
   share (``MEM_`` for MemoryNotifierEvent, ``MPOL_MF_`` for MbindFlag);
2. the display name is the value name without the prefix, in lower case.

>>> from memnode.v1 import hotplug_pb2, numa_pb2
>>> display_name(hotplug_pb2.OfflinePhase, hotplug_pb2.OFFLINE_PHASE_GOING_OFFLINE)
'going_offline'
>>> enum_value(numa_pb2.MempolicyMode, "BIND")
2

Only ``google.protobuf`` is needed (no generated stubs are imported here).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Union


def _descriptor(enum: Any):
    """The EnumDescriptor of an EnumTypeWrapper (``hotplug_pb2.OfflinePhase``)
    or of itself."""
    return getattr(enum, "DESCRIPTOR", enum)


def _common_prefix(names) -> str:
    names = list(names)
    if not names:
        return ""
    prefix = names[0]
    for n in names[1:]:
        i = 0
        while i < len(prefix) and i < len(n) and prefix[i] == n[i]:
            i += 1
        prefix = prefix[:i]
    cut = prefix.rfind("_")
    return prefix[:cut + 1] if cut >= 0 else ""


def enum_prefix(enum: Any) -> str:
    """The prefix the rule strips from the value names of ``enum``
    (``"OFFLINE_PHASE_"``, ``"MPOL_"``, ``"MEM_"``)."""
    values = _descriptor(enum).values
    prefix = _common_prefix(v.name for v in values)
    if not prefix:
        prefix = _common_prefix(v.name for v in values if v.number != 0)
    return prefix


def _short(name: str, prefix: str) -> str:
    if prefix and name.startswith(prefix) and len(name) > len(prefix):
        return name[len(prefix):]
    return name


def display_name(enum: Any, number: int) -> str:
    """The display name of value ``number`` of ``enum`` (``"going_offline"``);
    an unknown number shows as its decimal."""
    d = _descriptor(enum)
    value = d.values_by_number.get(int(number))
    if value is None:
        return str(int(number))
    return _short(value.name, enum_prefix(d)).lower()


def display_names(enum: Any) -> dict:
    """``{number: display name}`` of every value, in declaration order."""
    d = _descriptor(enum)
    return {v.number: display_name(d, v.number) for v in d.values}


def enum_value(enum: Any, value: Union[int, str], what: Optional[str] = None,
               exclude: Iterable[int] = ()) -> int:
    """The number of ``value``: an int (returned as is), or the display name
    in any case with ``-`` or ``_``, the full proto name, or a decimal
    string. Raises ValueError (naming ``what``) for anything else and for the
    numbers in ``exclude``."""
    d = _descriptor(enum)
    excluded = set(exclude)
    if isinstance(value, bool):
        raise TypeError("%s is not a bool" % (what or d.name))
    if isinstance(value, int):
        return value
    text = str(value).strip().upper().replace("-", "_")
    prefix = enum_prefix(d)
    for v in d.values:
        if v.number in excluded:
            continue
        if text in (v.name, _short(v.name, prefix)):
            return v.number
    if text.isdigit() and int(text) in d.values_by_number and int(text) not in excluded:
        return int(text)
    allowed = [display_name(d, v.number) for v in d.values if v.number not in excluded]
    raise ValueError("%s must be an int or one of %s, not %r"
                     % (what or d.name, ", ".join(allowed), value))


__all__ = ["enum_prefix", "display_name", "display_names", "enum_value"]
