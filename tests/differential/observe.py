"""Observation vectors, frame labels, event canonicalisation and comparison.

Both executors (host_exec.HostExecutor on the real kernel, memnode_exec.
MemnodeExecutor on an emulated linux-6.18 machine) implement the primitives
of ``Executor``; ``run_scenario`` drives either through a scenario and builds
the same *trail*: one record per step (operation or single ksmd pass) with

  result    what the step itself returned (errno, prctl value, knob read-back)
  counters  the /sys/kernel/mm/ksm counter vector (COUNTERS), with
            pages_scanned, pages_skipped and cow_ksm as deltas since the
            scenario started (the kernel's are cumulative since boot)
  stat      per live process: its /proc/PID/ksm_stat fields and
            /proc/PID/ksm_merging_pages
  pages     per test page: [label, ksm, zero, mapcount] or None if not present
  events    the KSM tracepoints fired during the step, canonicalised

Physical frame numbers differ between the two worlds, so frames are named by
*labels*: a frame keeps the label it had at the previous observation while
at least one page that mapped it then still maps it; a frame none of whose
pages mapped it before gets a fresh label "<first page>@<step tag>" (pages
in canonical order); the shared zero page is "zero". Two worlds that behave
alike produce identical labels, so the grouping of pages by KSM frame and
"which original frame survived a merge" are compared by plain equality.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Tuple

from dsl import ADVICE, PAGE_SIZE, Op, Scenario, page_id

# The sysfs counters observed after every step (file names under
# /sys/kernel/mm/ksm). DELTA_COUNTERS are reported relative to the start of
# the scenario.
COUNTERS = (
    "run", "full_scans", "pages_shared", "pages_sharing", "pages_unshared",
    "pages_volatile", "pages_scanned", "pages_skipped", "ksm_zero_pages",
    "general_profit", "stable_node_chains", "stable_node_dups",
)
DELTA_COUNTERS = ("pages_scanned", "pages_skipped", "cow_ksm")

# /proc/PID/ksm_stat fields (Linux 6.14+); ksm_merge_any / ksm_mergeable are
# booleans ("yes"/"no" in the file).
STAT_FIELDS = ("ksm_rmap_items", "ksm_zero_pages", "ksm_merging_pages",
               "ksm_process_profit", "ksm_merge_any", "ksm_mergeable")

# sizeof(struct ksm_rmap_item) on x86-64 (docs/SEMANTICS.md: general_profit).
RMAP_ITEM_BYTES = 64

# Tracepoints of the ksm event group and, per tracepoint, which arguments are
# compared: "pfn" (a frame: compared by label), "mm" (a process: compared by
# its scenario name), "rmap" (an rmap item: compared by order of first
# appearance within the step), plain values otherwise.
TRACEPOINTS = {
    "ksm_start_scan": ("seq", "rmap_entries"),
    "ksm_stop_scan": ("seq", "rmap_entries"),
    "ksm_enter": ("mm",),
    "ksm_exit": ("mm",),
    "ksm_merge_one_page": ("pfn", "rmap", "mm", "err"),
    "ksm_merge_with_ksm_page": ("ksm_page", "pfn", "rmap", "mm", "err"),
    "ksm_remove_ksm_page": ("pfn",),
    "ksm_remove_rmap_item": ("pfn", "rmap", "mm"),
    "ksm_advisor": ("scan_time", "pages_to_scan", "cpu_percent"),
}


class Unsupported(Exception):
    """The executor cannot perform an operation (e.g. an RPC the server does
    not offer yet). The message says exactly what is missing."""


class Executor:
    """Primitives of one world. Page ranges are (region name, first, count);
    ``addr`` is fixed by the scenario (dsl.BASE/STRIDE)."""

    name = "abstract"
    # Whether the executor reports tracepoint events (host: only with tracefs).
    has_events = False
    events_unavailable_reason = ""

    def begin(self, scenario: Scenario) -> None: ...
    def end(self) -> None: ...
    def spawn(self, proc: str) -> int: ...
    def mmap(self, proc: str, region: str, addr: int, pages: int, shared: bool) -> int: ...
    def fill(self, proc: str, region: str, first: int, count: int, kind: str, arg: int,
             step: int) -> None: ...
    def write(self, proc: str, region: str, page: int, offset: int, value: int) -> None: ...
    def madvise(self, proc: str, region: str, first: int, count: int, advice: int) -> int: ...
    def munmap(self, proc: str, region: str, first: int, count: int) -> int: ...
    def prctl_set(self, proc: str, value: int) -> int: ...
    def prctl_get(self, proc: str) -> Tuple[int, int]: ...
    def fork(self, proc: str, child: str) -> int: ...
    def exec(self, proc: str) -> None: ...
    def exit(self, proc: str) -> None: ...
    def write_knob(self, file: str, text: str) -> Tuple[int, str]: ...
    def do_pass(self) -> None: ...
    def counters(self) -> Dict[str, int]: ...
    def ksm_stat(self, proc: str) -> Dict[str, Any]: ...
    def observe(self, proc: str, region: str, first: int, count: int
                ) -> List[Optional[Tuple[int, bool, bool, int]]]: ...
    def drain_events(self) -> List[Tuple[str, Dict[str, Any]]]: ...


# --------------------------------------------------------------------------
# frame labels
# --------------------------------------------------------------------------

class FrameLabeler:
    """Names frames by their history (module docstring)."""

    def __init__(self) -> None:
        self.prev: Dict[str, Tuple[int, str]] = {}      # page -> (pfn, label)
        self.history: Dict[int, str] = {}                # pfn -> last label

    def label(self, tag: str, raw: Dict[str, Optional[Tuple[int, bool, bool, int]]]
              ) -> Dict[str, Optional[List[Any]]]:
        groups: Dict[int, List[str]] = {}
        for pid_ in sorted(raw, key=_page_sort_key):
            entry = raw[pid_]
            if entry is not None:
                groups.setdefault(entry[0], []).append(pid_)
        out: Dict[str, Optional[List[Any]]] = {p: None for p in raw}
        new_prev: Dict[str, Tuple[int, str]] = {}
        for pfn, pages in groups.items():
            first = raw[pages[0]]
            if first[2]:
                lab = "zero"
            else:
                cont = [p for p in pages if p in self.prev and self.prev[p][0] == pfn]
                lab = self.prev[cont[0]][1] if cont else "%s@%s" % (pages[0], tag)
            self.history[pfn] = lab
            for p in pages:
                _pfn, ksm, zero, mapcount = raw[p]
                out[p] = [lab, bool(ksm), bool(zero), None if zero else int(mapcount)]
                new_prev[p] = (pfn, lab)
        self.prev = new_prev
        return out

    def pfn_label(self, pfn: int) -> Optional[str]:
        return self.history.get(pfn)


def _page_sort_key(pid_: str):
    proc, region, idx = pid_.split(".")
    return (proc, region, int(idx))


# --------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------

class EventCanon:
    """Renames the identities in raw events: frames by label, processes by
    scenario name (the executor already did that for "mm"), rmap items by
    order of first appearance within the step."""

    def __init__(self, labeler: FrameLabeler, zero_pfn: Optional[int]) -> None:
        self.labeler = labeler
        self.zero_pfn = zero_pfn
        self.unknown: Dict[int, str] = {}

    def canon(self, events: List[Tuple[str, Dict[str, Any]]]) -> List[List[Any]]:
        rmaps: Dict[Any, str] = {}
        out = []
        for name, args in events:
            fields = TRACEPOINTS.get(name)
            if fields is None:
                out.append([name, args])
                continue
            row: List[Any] = [name]
            for f in fields:
                v = args.get(f)
                if f == "pfn":
                    v = self._pfn(v)
                elif f == "rmap":
                    if v not in rmaps:
                        rmaps[v] = "ri%d" % len(rmaps)
                    v = rmaps[v]
                row.append(v)
            out.append(row)
        return out

    def _pfn(self, pfn: Optional[int]) -> Optional[str]:
        if pfn is None:
            return None
        if self.zero_pfn is not None and pfn == self.zero_pfn:
            return "zero"
        lab = self.labeler.pfn_label(pfn)
        if lab is not None:
            return lab
        if pfn not in self.unknown:
            self.unknown[pfn] = "?%d" % len(self.unknown)
        return self.unknown[pfn]


# --------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------

class Model:
    """Which test pages exist: per process, region -> number of pages, with
    a set of unmapped page indexes."""

    def __init__(self) -> None:
        self.procs: Dict[str, Dict[str, List[Any]]] = {}   # proc -> region -> [pages, gone]

    def pages(self) -> List[Tuple[str, str, int, int]]:
        """(proc, region, first, count) runs of mapped pages."""
        out = []
        for proc in sorted(self.procs):
            for region in sorted(self.procs[proc]):
                n, gone = self.procs[proc][region]
                run = None
                for i in range(n + 1):
                    mapped = i < n and i not in gone
                    if mapped and run is None:
                        run = i
                    elif not mapped and run is not None:
                        out.append((proc, region, run, i - run))
                        run = None
        return out


def run_scenario(ex: Executor, scenario: Scenario) -> List[Dict[str, Any]]:
    """Runs ``scenario`` on ``ex``; returns the trail (one dict per step)."""
    ops = scenario.tagged()
    model = Model()
    labeler = FrameLabeler()
    trail: List[Dict[str, Any]] = []
    ex.begin(scenario)
    try:
        canon = EventCanon(labeler, getattr(ex, "zero_pfn", None))
        base = ex.counters()
        ex.drain_events()                       # whatever the set-up produced
        for op in ops:
            result = _apply(ex, scenario, op, model)
            trail.append(_observe(ex, op, result, model, labeler, canon, base))
    finally:
        ex.end()
    return trail


def _apply(ex: Executor, sc: Scenario, op: Op, model: Model) -> Dict[str, Any]:
    k = op.kind
    if k == "spawn":
        ex.spawn(op.proc)
        model.procs[op.proc] = {}
        return {}
    if k == "mmap":
        err = ex.mmap(op.proc, op.region, sc.address(op.region), op.count, op.shared)
        if err == 0:
            model.procs[op.proc][op.region] = [op.count, set()]
        return {"errno": err}
    if k == "fill":
        ex.fill(op.proc, op.region, op.first, op.count, op.pattern.kind, op.pattern.arg,
                op.pattern.step)
        return {}
    if k == "write":
        ex.write(op.proc, op.region, op.first, op.offset, op.value)
        return {}
    if k == "madvise":
        return {"errno": ex.madvise(op.proc, op.region, op.first, op.count, ADVICE[op.text])}
    if k == "munmap":
        err = ex.munmap(op.proc, op.region, op.first, op.count)
        if err == 0:
            entry = model.procs[op.proc][op.region]
            entry[1].update(range(op.first, op.first + op.count))
        return {"errno": err}
    if k == "prctl_set":
        return {"errno": ex.prctl_set(op.proc, op.value)}
    if k == "prctl_get":
        err, value = ex.prctl_get(op.proc)
        return {"errno": err, "value": value}
    if k == "fork":
        ex.fork(op.proc, op.child)
        model.procs[op.child] = {r: [n, set(g)] for r, (n, g) in model.procs[op.proc].items()}
        return {}
    if k == "exec":
        ex.exec(op.proc)
        model.procs[op.proc] = {}
        return {}
    if k == "exit":
        ex.exit(op.proc)
        del model.procs[op.proc]
        return {}
    if k == "knob":
        err, text = ex.write_knob(op.region, op.text)
        return {"errno": err, "readback": text}
    if k == "pass":
        ex.do_pass()
        return {}
    raise ValueError("unknown op %r" % k)


def _observe(ex: Executor, op: Op, result: Dict[str, Any], model: Model,
             labeler: FrameLabeler, canon: EventCanon, base: Dict[str, int]
             ) -> Dict[str, Any]:
    counters = ex.counters()
    for c in DELTA_COUNTERS:
        counters[c] = counters[c] - base[c]
    raw: Dict[str, Optional[Tuple[int, bool, bool, int]]] = {}
    for proc, region, first, count in model.pages():
        for i, entry in enumerate(ex.observe(proc, region, first, count)):
            raw[page_id(proc, region, first + i)] = entry
    pages = labeler.label(op.tag, raw)
    stat = {proc: ex.ksm_stat(proc) for proc in sorted(model.procs)}
    events = canon.canon(ex.drain_events()) if ex.has_events else None
    return {"tag": op.tag, "op": op.describe(), "result": result, "counters": counters,
            "stat": stat, "pages": pages, "events": events}


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------

def step(trail: List[Dict[str, Any]], tag: str) -> Dict[str, Any]:
    for s in trail:
        if s["tag"] == tag:
            return s
    raise KeyError("no step tagged %r" % tag)


def ksm_groups(s: Dict[str, Any]) -> Dict[str, List[str]]:
    """label -> sorted pages, for KSM frames only."""
    out: Dict[str, List[str]] = {}
    for p, e in s["pages"].items():
        if e is not None and e[1]:
            out.setdefault(e[0], []).append(p)
    return {k: sorted(v, key=_page_sort_key) for k, v in out.items()}


def invariants(trail: List[Dict[str, Any]]) -> List[str]:
    """Rules that hold after every step (kernel source, docs/SEMANTICS.md):
    general_profit and ksm_process_profit formulas; a process's
    ksm_merging_pages file equals its ksm_stat line; the pages the
    kernel flags KSM have the KSM frame's mapcount."""
    bad = []
    for s in trail:
        c = s["counters"]
        rmap = c["pages_volatile"] + c["pages_shared"] + c["pages_sharing"] + c["pages_unshared"]
        want = (c["pages_sharing"] + c["ksm_zero_pages"]) * PAGE_SIZE - rmap * RMAP_ITEM_BYTES
        if c["general_profit"] != want:
            bad.append("%s: general_profit %d != (sharing+zero)*4096 - rmap_items*64 = %d"
                       % (s["tag"], c["general_profit"], want))
        for proc, st in s["stat"].items():
            if st is None:
                continue
            want = ((st["ksm_merging_pages"] + st["ksm_zero_pages"]) * PAGE_SIZE
                    - st["ksm_rmap_items"] * RMAP_ITEM_BYTES)
            if st["ksm_process_profit"] != want:
                bad.append("%s: %s ksm_process_profit %d != %d"
                           % (s["tag"], proc, st["ksm_process_profit"], want))
            if st.get("merging_pages_file") != st["ksm_merging_pages"]:
                bad.append("%s: %s /proc/PID/ksm_merging_pages %s != ksm_stat %s"
                           % (s["tag"], proc, st.get("merging_pages_file"),
                              st["ksm_merging_pages"]))
    return bad


def check_expectations(scenario: Scenario, trail: List[Dict[str, Any]]) -> List[str]:
    """Every mismatch between the trail and the scenario's expected values."""
    bad: List[str] = []
    for exp in scenario.expect:
        try:
            s = step(trail, exp.tag)
        except KeyError as e:
            bad.append(str(e))
            continue
        where = "%s (%s)" % (exp.tag, s["op"])
        for k, v in exp.counters.items():
            if s["counters"].get(k) != v:
                bad.append("%s: counter %s = %r, kernel rule says %r"
                           % (where, k, s["counters"].get(k), v))
        for proc, want in exp.stat.items():
            got = s["stat"].get(proc)
            if want is None:
                if got is not None:
                    bad.append("%s: process %s should be gone, has %r" % (where, proc, got))
                continue
            if got is None:
                bad.append("%s: no ksm_stat for %s" % (where, proc))
                continue
            for k, v in want.items():
                if got.get(k) != v:
                    bad.append("%s: %s ksm_stat %s = %r, kernel rule says %r"
                               % (where, proc, k, got.get(k), v))
        for k, v in exp.result.items():
            if s["result"].get(k) != v:
                bad.append("%s: result %s = %r, kernel rule says %r"
                           % (where, k, s["result"].get(k), v))
        if exp.groups is not None:
            got = ksm_groups(s)
            if list(exp.groups) == ["*"]:
                want_sets = sorted(sorted(g) for g in exp.groups["*"])
                got_sets = sorted(sorted(g) for g in got.values())
                if want_sets != got_sets:
                    bad.append("%s: KSM groups %s, kernel rule says %s"
                               % (where, got_sets, want_sets))
            else:
                want = {k: sorted(v, key=_page_sort_key) for k, v in exp.groups.items()}
                if got != want:
                    bad.append("%s: KSM groups %s, kernel rule says %s"
                               % (where, json.dumps(got, sort_keys=True),
                                  json.dumps(want, sort_keys=True)))
        for p, fields in exp.pages.items():
            e = s["pages"].get(p, "missing")
            if e == "missing":
                bad.append("%s: page %s not observed" % (where, p))
                continue
            got_f = {"present": e is not None}
            if e is not None:
                got_f.update(label=e[0], ksm=e[1], zero=e[2], mapcount=e[3])
            for k, v in fields.items():
                if got_f.get(k) != v:
                    bad.append("%s: page %s %s = %r, kernel rule says %r"
                               % (where, p, k, got_f.get(k), v))
        if exp.check is not None:
            try:
                exp.check(s, trail)
            except AssertionError as e:
                bad.append("%s: %s" % (where, e))
    return bad


def compare_trails(a: List[Dict[str, Any]], b: List[Dict[str, Any]], names=("host", "memnode"),
                   events: bool = True, limit: int = 40) -> List[str]:
    """Step-by-step differences between two trails of the same scenario."""
    diffs: List[str] = []
    if len(a) != len(b):
        diffs.append("trail lengths differ: %s %d, %s %d" % (names[0], len(a), names[1], len(b)))
    for sa, sb in zip(a, b):
        where = "%s (%s)" % (sa["tag"], sa["op"])
        for key in ("result", "counters", "stat", "pages"):
            for d in _dict_diff(sa[key], sb[key], key):
                diffs.append("%s: %s (%s vs %s)" % (where, d, names[0], names[1]))
        if events and sa.get("events") is not None and sb.get("events") is not None:
            if sa["events"] != sb["events"]:
                diffs.append("%s: events differ\n  %s: %s\n  %s: %s" % (
                    where, names[0], sa["events"], names[1], sb["events"]))
        if len(diffs) >= limit:
            diffs.append("... (stopped after %d differences)" % limit)
            break
    return diffs


def _dict_diff(x: Any, y: Any, path: str) -> Iterable[str]:
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y), key=str):
            if k not in x:
                yield "%s.%s only in second: %r" % (path, k, y[k])
            elif k not in y:
                yield "%s.%s only in first: %r" % (path, k, x[k])
            else:
                yield from _dict_diff(x[k], y[k], "%s.%s" % (path, k))
    elif x != y:
        yield "%s: %r != %r" % (path, x, y)
