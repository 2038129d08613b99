"""The scenario language shared by the host executor and the memnode executor.

A scenario is a list of operations on named processes ("A", "B", ...) and
named regions ("r0", "r1", ...), plus ``passes(n)`` steps that let ksmd do n
full scans, one at a time. Both executors run the same list; after every
operation and after every single pass they take the same observation (see
observe.py), so that the two trails can be compared step by step.

Addresses are fixed by the scenario, not by the kernel: region number i (in
order of first appearance in the scenario) lives at ``BASE + i * STRIDE`` in
every process. ksmd visits an mm's VMAs in address order, so fixing the
layout is what makes the scan order, and with it which frame survives a
merge, the same on both sides.

Page contents come from three generators that memnode's FillMemory offers
too (process.proto): ``zero()`` (all bytes 0, written, so a real anonymous
page), ``byte(v)`` (every byte v) and ``seed(s)`` (the splitmix64 stream
seeded with s, little-endian words from the first byte of the page). A fill
of ``count`` pages with ``seed(s, step=k)`` gives page i the seed ``s + i*k``:
``step=0`` makes identical pages, ``step=1`` distinct ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

PAGE_SIZE = 4096
BASE = 0x2000_0000_0000      # 32 TiB: far from anything the helper maps itself
STRIDE = 0x4000_0000         # 1 GiB between regions

MADV_DONTNEED = 4
MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
ADVICE = {"mergeable": MADV_MERGEABLE, "unmergeable": MADV_UNMERGEABLE,
          "dontneed": MADV_DONTNEED}


@dataclass(frozen=True)
class Pattern:
    """Contents of a page: kind 'zero', 'byte' or 'seed'; page i of a fill
    gets argument ``arg + i * step``."""
    kind: str
    arg: int = 0
    step: int = 0

    def for_page(self, i: int) -> Tuple[str, int]:
        return self.kind, self.arg + i * self.step


def zero() -> Pattern:
    return Pattern("zero")


def byte(value: int) -> Pattern:
    return Pattern("byte", value & 0xFF)


def seed(value: int, step: int = 0) -> Pattern:
    return Pattern("seed", value, step)


@dataclass
class Op:
    """One step of a scenario. ``kind`` selects the executor primitive; the
    remaining attributes are its arguments. ``tag`` names the step for the
    expectations (default: ``s<index>``; passes are tagged ``pass<k>``, k
    counting every pass of the scenario from 1)."""
    kind: str
    proc: Optional[str] = None
    region: Optional[str] = None
    first: int = 0
    count: int = 0
    pattern: Optional[Pattern] = None
    value: int = 0
    offset: int = 0
    text: str = ""
    child: Optional[str] = None
    shared: bool = False
    tag: Optional[str] = None

    def describe(self) -> str:
        k = self.kind
        if k == "spawn":
            return "spawn %s" % self.proc
        if k == "mmap":
            return "%s: mmap %s %d pages%s" % (self.proc, self.region, self.count,
                                              " shared" if self.shared else "")
        if k == "fill":
            return "%s: fill %s[%d:%d] %s" % (self.proc, self.region, self.first,
                                             self.first + self.count, self.pattern)
        if k == "write":
            return "%s: write %s[%d]+%d = %#x" % (self.proc, self.region, self.first,
                                                  self.offset, self.value)
        if k == "madvise":
            return "%s: madvise %s[%d:%d] %s" % (self.proc, self.region, self.first,
                                                self.first + self.count, self.text)
        if k == "munmap":
            return "%s: munmap %s[%d:%d]" % (self.proc, self.region, self.first,
                                            self.first + self.count)
        if k == "prctl_set":
            return "%s: prctl(PR_SET_MEMORY_MERGE, %d)" % (self.proc, self.value)
        if k == "prctl_get":
            return "%s: prctl(PR_GET_MEMORY_MERGE)" % self.proc
        if k == "fork":
            return "%s: fork -> %s" % (self.proc, self.child)
        if k == "exec":
            return "%s: exec" % self.proc
        if k == "exit":
            return "%s: exit" % self.proc
        if k == "knob":
            return "echo %r > %s" % (self.text, self.region)
        if k == "pass":
            return "ksmd: one full scan"
        return k


# --------------------------------------------------------------------------
# constructors used by scenarios.py
# --------------------------------------------------------------------------

def spawn(proc: str, tag: Optional[str] = None) -> Op:
    return Op("spawn", proc=proc, tag=tag)


def mmap(proc: str, region: str, pages: int, shared: bool = False,
         tag: Optional[str] = None) -> Op:
    return Op("mmap", proc=proc, region=region, count=pages, shared=shared, tag=tag)


def fill(proc: str, region: str, first: int, count: int, pattern: Pattern,
         tag: Optional[str] = None) -> Op:
    return Op("fill", proc=proc, region=region, first=first, count=count,
              pattern=pattern, tag=tag)


def write(proc: str, region: str, page: int, value: int, offset: int = 0,
          tag: Optional[str] = None) -> Op:
    """An 8-byte little-endian store of ``value`` at ``offset`` of the page."""
    return Op("write", proc=proc, region=region, first=page, count=1, value=value,
              offset=offset, tag=tag)


def madvise(proc: str, region: str, first: int, count: int, advice: str,
            tag: Optional[str] = None) -> Op:
    assert advice in ADVICE, advice
    return Op("madvise", proc=proc, region=region, first=first, count=count,
              text=advice, tag=tag)


def munmap(proc: str, region: str, first: int, count: int, tag: Optional[str] = None) -> Op:
    return Op("munmap", proc=proc, region=region, first=first, count=count, tag=tag)


def prctl_set(proc: str, value: int, tag: Optional[str] = None) -> Op:
    return Op("prctl_set", proc=proc, value=value, tag=tag)


def prctl_get(proc: str, tag: Optional[str] = None) -> Op:
    return Op("prctl_get", proc=proc, tag=tag)


def fork(proc: str, child: str, tag: Optional[str] = None) -> Op:
    return Op("fork", proc=proc, child=child, tag=tag)


def exec_(proc: str, tag: Optional[str] = None) -> Op:
    return Op("exec", proc=proc, tag=tag)


def exit_(proc: str, tag: Optional[str] = None) -> Op:
    return Op("exit", proc=proc, tag=tag)


def knob(file: str, text: str, tag: Optional[str] = None) -> Op:
    """A write of ``text`` (exactly these bytes) to /sys/kernel/mm/ksm/<file>;
    the result records the errno and the file's text read back."""
    return Op("knob", region=file, text=text, tag=tag)


def passes(n: int) -> List[Op]:
    return [Op("pass") for _ in range(n)]


# --------------------------------------------------------------------------
# expectations
# --------------------------------------------------------------------------

@dataclass
class At:
    """Expected observations after the step tagged ``tag``.

    counters:  subset of the sysfs counter vector (observe.COUNTERS) that must
               match exactly.
    stat:      {proc: {ksm_stat field: value}} subset; ``None`` for a process
               that must be gone.
    result:    subset of the step's own result (errno, value, readback, ...).
    groups:    {label: [page ids]}: every KSM frame among the test pages, by
               its label (observe.py), with exactly these pages mapping it.
               ``"*"`` as the only key means "these sets, labels not checked".
    pages:     {page id: {field: value}} for single pages (label, ksm, zero,
               mapcount, present).
    check:     a callable(step, trail) -> None for anything else (asserts).
    """
    tag: str
    counters: Dict[str, int] = field(default_factory=dict)
    stat: Dict[str, Optional[Dict[str, Any]]] = field(default_factory=dict)
    result: Dict[str, Any] = field(default_factory=dict)
    groups: Optional[Dict[str, List[str]]] = None
    pages: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    check: Optional[Callable[[Dict[str, Any], List[Dict[str, Any]]], None]] = None


@dataclass
class Scenario:
    """A scenario: its knobs (written after run=2, before the first op), its
    operations, and the kernel's expected observations."""
    name: str
    doc: str
    ops: List[Op]
    expect: List[At]
    knobs: Dict[str, str] = field(default_factory=dict)
    # The memnode half needs RPCs beyond the core set for some operations
    # (prctl, exec): listed here so the memnode executor can say which.
    needs: Tuple[str, ...] = ()

    def regions(self) -> Dict[str, int]:
        """Region name -> index, in order of first appearance."""
        out: Dict[str, int] = {}
        for op in self.ops:
            if op.region and op.kind != "knob" and op.region not in out:
                out[op.region] = len(out)
        return out

    def address(self, region: str) -> int:
        return BASE + self.regions()[region] * STRIDE

    def tagged(self) -> List[Op]:
        """The ops with their final tags (explicit ones kept)."""
        out, npass = [], 0
        for i, op in enumerate(self.ops):
            if op.kind == "pass":
                npass += 1
                default = "pass%d" % npass
            else:
                default = "s%d" % i
            if op.tag is None:
                op.tag = default
            out.append(op)
        tags = [op.tag for op in out]
        dup = {t for t in tags if tags.count(t) > 1}
        if dup:
            raise ValueError("scenario %s: duplicate tags %s" % (self.name, sorted(dup)))
        return out


def page_id(proc: str, region: str, index: int) -> str:
    """Canonical name of a test page: ``A.r0.3``."""
    return "%s.%s.%d" % (proc, region, index)
