"""The memnode executor: the same scenarios on an emulated linux-6.18 machine.

It talks to memnoded through the Python client (client/python/memnode) and
the generated stubs. The machine is created with ``profile="linux-6.18"``,
one NUMA node (like the host), MANUAL clock; ksmd is stepped one full scan
at a time with StepKsm(full_scans=1), with run written to 1 before and to 0
after, exactly like the host driver does, so that ``run`` reads the same.

The API of the linux-6.18 profile is still being built. This executor uses,
beyond the RPCs that exist today, the following (docs/DIFFERENTIAL.md, "API
the memnode half expects"); each missing piece raises ``Unsupported`` naming
it, and the test fails with that message:

* KsmService.ReadKsmSysfs(ReadKsmSysfsRequest{name, file})
    -> ReadKsmSysfsResponse{errnum, value}: the text a read of
    /sys/kernel/mm/ksm/<file> returns (e.g. "256\\n", "[none] scan-time\\n").
* KsmService.WriteKsmSysfs (exists): its errnum is the errno of the write,
  with the profile's parsers (EINVAL, ERANGE, EBUSY, ...).
* Ksm.cow_ksm: the machine's /proc/vmstat cow_ksm.
* ProcessService.GetKsmStat(GetKsmStatRequest{name}) -> KsmStat{
    ksm_rmap_items, ksm_zero_pages, ksm_merging_pages, ksm_process_profit,
    ksm_merge_any, ksm_mergeable}: /proc/PID/ksm_stat.
* ProcessService.Prctl(PrctlRequest{name, option, arg2})
    -> PrctlResponse{errnum, value}: PR_SET_MEMORY_MERGE (67) and
    PR_GET_MEMORY_MERGE (68).
* ProcessService.ExecProcess(ExecProcessRequest{name}) -> Process: execve of a
  fresh program in the same process (new, empty mm; MMF_VM_MERGE_ANY kept).
* EventKind values EVENT_KIND_KSM_START_SCAN, _KSM_STOP_SCAN, _KSM_ENTER,
  _KSM_EXIT, _KSM_MERGE_ONE_PAGE, _KSM_MERGE_WITH_KSM_PAGE,
  _KSM_REMOVE_KSM_PAGE, _KSM_REMOVE_RMAP_ITEM with MachineEvent fields
  pid (the mm), address (with pid: the rmap item), pfn, errnum (the
  tracepoint's err, as a negative errno number in ``value`` is not needed:
  0 = success), ksm (merge_with_ksm_page: a KSM page was given), value
  (start/stop_scan: seq) and rmap_entries (start/stop_scan).
* Machine.last_event_sequence (GetMachine): the sequence number of the
  machine's latest event, so that the event stream can be drained exactly up
  to the end of a step. Without it the executor waits for 50 ms of silence.
"""

from __future__ import annotations

import itertools
import queue
import struct
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from dsl import PAGE_SIZE, Scenario
from observe import Executor, Unsupported

PROFILE = "linux-6.18"
PR_SET_MEMORY_MERGE = 67
PR_GET_MEMORY_MERGE = 68
LOCKSTEP_KNOBS = (("advisor_mode", "none"), ("pages_to_scan", "4294967295"),
                  ("sleep_millisecs", "3600000"))
COUNTER_FILES = ("full_scans", "general_profit", "ksm_zero_pages", "pages_scanned",
                 "pages_shared", "pages_sharing", "pages_skipped", "pages_unshared",
                 "pages_volatile", "stable_node_chains", "stable_node_dups", "run")
_ids = itertools.count(1)


def _has_rpc(stub: Any, name: str) -> bool:
    return hasattr(stub, name)


class MemnodeExecutor(Executor):
    name = "memnode"

    def __init__(self, client: Any, default_knobs: Dict[str, str]) -> None:
        from memnode.v1 import common_pb2, events_pb2, events_pb2_grpc, ksm_pb2, process_pb2
        self.c = client
        self.common_pb2 = common_pb2
        self.events_pb2 = events_pb2
        self.ksm_pb2 = ksm_pb2
        self.process_pb2 = process_pb2
        self.events_stub = events_pb2_grpc.EventServiceStub(client.channel)
        self.default_knobs = default_knobs
        self.machine = None
        self.procs: Dict[str, Any] = {}
        self.pid_names: Dict[int, str] = {}
        self.addr: Dict[Tuple[str, str], int] = {}
        self.zero_pfn = None
        self.has_events = all(hasattr(events_pb2, "EVENT_KIND_KSM_%s" % n)
                              for n in ("START_SCAN", "STOP_SCAN", "MERGE_WITH_KSM_PAGE"))
        self.events_unavailable_reason = "" if self.has_events else (
            "events.proto has no EVENT_KIND_KSM_* kinds (tracepoint-named events)")
        self._events: "queue.Queue[Any]" = queue.Queue()
        self._watch = None
        self._last_seq = 0
        self._pending: List[Tuple[str, Dict[str, Any]]] = []

    # ---- capability checks ------------------------------------------------------
    def require(self, what: str) -> None:
        ok = {
            "read_sysfs": _has_rpc(self.c.ksm, "ReadKsmSysfs"),
            "ksm_stat": _has_rpc(self.c.processes, "GetKsmStat"),
            "prctl": _has_rpc(self.c.processes, "Prctl"),
            "exec": _has_rpc(self.c.processes, "ExecProcess"),
            "cow_ksm": "cow_ksm" in self.ksm_pb2.Ksm.DESCRIPTOR.fields_by_name,
        }[what]
        if not ok:
            raise Unsupported({
                "read_sysfs": "KsmService.ReadKsmSysfs(file) -> {errnum, value}",
                "ksm_stat": "ProcessService.GetKsmStat(process) -> KsmStat",
                "prctl": "ProcessService.Prctl(process, option, arg2) -> {errnum, value}",
                "exec": "ProcessService.ExecProcess(process)",
                "cow_ksm": "Ksm.cow_ksm (the machine's /proc/vmstat cow_ksm)",
            }[what] + " is missing from the API (see docs/DIFFERENTIAL.md)")

    # ---- lifecycle ----------------------------------------------------------------
    def begin(self, scenario: Scenario) -> None:
        for what in ("read_sysfs", "ksm_stat", "cow_ksm") + tuple(scenario.needs):
            self.require(what)
        mid = "diff-%s-%d" % (scenario.name.replace("_", "-")[:40], next(_ids))
        self.machine = self.c.create_machine(mid, nodes=1, blocks_per_node=4,
                                             pages_per_block=4096, clock="manual",
                                             profile=PROFILE)
        self.procs.clear()
        self.pid_names.clear()
        self.addr.clear()
        knobs = dict(LOCKSTEP_KNOBS)
        knobs.update(self.default_knobs)
        knobs.update(scenario.knobs)
        knobs["run"] = "0"
        for f, text in knobs.items():
            err, _ = self.write_knob(f, text)
            if err:
                raise RuntimeError("memnode: %s=%s gave errno %d" % (f, text, err))
        if self.has_events:
            self._start_watch()

    def end(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.machine is not None:
            self.machine.delete()
            self.machine = None

    # ---- events -------------------------------------------------------------------
    def _start_watch(self) -> None:
        req = self.events_pb2.WatchEventsRequest(name=self.machine.name)
        self._watch = self.events_stub.WatchEvents(req)
        stream = self._watch

        def pump():
            try:
                for ev in stream:
                    self._events.put(ev)
            except Exception:          # cancelled at end(), or the machine is gone
                pass
        threading.Thread(target=pump, daemon=True).start()

    def drain_events(self) -> List[Tuple[str, Dict[str, Any]]]:
        if not self.has_events:
            return []
        target = None
        m = self.machine.get()
        if "last_event_sequence" in type(m).DESCRIPTOR.fields_by_name:
            target = m.last_event_sequence
        quiet_since = time.monotonic()
        while True:
            if target is not None and self._last_seq >= target:
                break
            try:
                ev = self._events.get(timeout=0.01)
            except queue.Empty:
                if target is None and time.monotonic() - quiet_since > 0.05:
                    break
                if target is not None and time.monotonic() - quiet_since > 30:
                    raise RuntimeError("event stream stalled before sequence %d" % target)
                continue
            quiet_since = time.monotonic()
            if ev.sequence:
                self._last_seq = ev.sequence
            kind = self.events_pb2.EventKind.Name(ev.kind)
            if kind == "EVENT_KIND_DROPPED":
                raise RuntimeError("memnode event stream dropped %d events" % ev.dropped)
            if kind.startswith("EVENT_KIND_KSM_") and kind != "EVENT_KIND_KSM_BATCH_HELD":
                self._pending.append(self._tracepoint(kind[len("EVENT_KIND_"):].lower(), ev))
        out, self._pending = self._pending, []
        return out

    def _tracepoint(self, name: str, ev: Any) -> Tuple[str, Dict[str, Any]]:
        mm = self.pid_names.get(ev.pid, "mm?%d" % ev.pid)
        rmap = (ev.pid, ev.address)
        err = -int(ev.errnum) if ev.errnum else 0
        if name in ("ksm_start_scan", "ksm_stop_scan"):
            return name, {"seq": int(ev.value), "rmap_entries": int(ev.rmap_entries)}
        if name in ("ksm_enter", "ksm_exit"):
            return name, {"mm": mm}
        if name == "ksm_merge_one_page":
            return name, {"pfn": ev.pfn, "rmap": rmap, "mm": mm, "err": err}
        if name == "ksm_merge_with_ksm_page":
            return name, {"ksm_page": bool(ev.ksm), "pfn": ev.pfn, "rmap": rmap, "mm": mm,
                          "err": err}
        if name == "ksm_remove_ksm_page":
            return name, {"pfn": ev.pfn}
        if name == "ksm_remove_rmap_item":
            return name, {"pfn": ev.pfn, "rmap": rmap, "mm": mm}
        return name, {"raw": str(ev)}

    # ---- processes -------------------------------------------------------------
    def spawn(self, proc: str) -> int:
        p = self.machine.create_process()
        self.procs[proc] = p
        self.pid_names[p.pid] = proc
        return p.pid

    def fork(self, proc: str, child: str) -> int:
        c = self.procs[proc].fork()
        self.procs[child] = c
        self.pid_names[c.pid] = child
        for (pr, region), a in list(self.addr.items()):
            if pr == proc:
                self.addr[(child, region)] = a
        return c.pid

    def exec(self, proc: str) -> None:
        self.require("exec")
        p = self.procs[proc]
        self.c.call(self.c.processes.ExecProcess,
                    self.process_pb2.ExecProcessRequest(name=p.name))
        for key in [k for k in self.addr if k[0] == proc]:
            del self.addr[key]

    def exit(self, proc: str) -> None:
        self.procs.pop(proc).exit()

    # ---- memory -----------------------------------------------------------------
    def mmap(self, proc, region, addr, pages, shared) -> int:
        r = self.procs[proc].mmap(pages * PAGE_SIZE, "rw", shared=shared, address=addr,
                                  fixed=True)
        if r.ok:
            if r.address != addr:
                raise RuntimeError("memnode mapped %s at %#x, not %#x" % (region, r.address, addr))
            self.addr[(proc, region)] = addr
        return r.errnum

    def _page(self, proc, region, page) -> int:
        return self.addr[(proc, region)] + page * PAGE_SIZE

    def fill(self, proc, region, first, count, kind, arg, step) -> None:
        p = self.procs[proc]
        for i in range(count):
            a = self._page(proc, region, first + i)
            v = arg + i * step
            if kind == "zero":
                r = p.fill(a, PAGE_SIZE, byte=0)
            elif kind == "byte":
                r = p.fill(a, PAGE_SIZE, byte=v & 0xFF)
            elif kind == "seed":
                r = p.fill(a, PAGE_SIZE, seed=v)
            else:
                raise ValueError(kind)
            if not r.ok:
                raise RuntimeError("memnode FillMemory: %s" % r.errno_name)

    def write(self, proc, region, page, offset, value) -> None:
        r = self.procs[proc].write(self._page(proc, region, page) + offset,
                                   struct.pack("<Q", value & (2**64 - 1)))
        if not r.ok:
            raise RuntimeError("memnode WriteMemory: %s" % r.errno_name)

    def madvise(self, proc, region, first, count, advice) -> int:
        return self.procs[proc].madvise(self._page(proc, region, first), count * PAGE_SIZE,
                                        advice).errnum

    def munmap(self, proc, region, first, count) -> int:
        return self.procs[proc].munmap(self._page(proc, region, first),
                                       count * PAGE_SIZE).errnum

    def _prctl(self, proc: str, option: int, arg2: int) -> Any:
        self.require("prctl")
        return self.c.call(self.c.processes.Prctl, self.process_pb2.PrctlRequest(
            name=self.procs[proc].name, option=option, arg2=arg2))

    def prctl_set(self, proc, value) -> int:
        return int(self._prctl(proc, PR_SET_MEMORY_MERGE, value).errnum)

    def prctl_get(self, proc) -> Tuple[int, int]:
        r = self._prctl(proc, PR_GET_MEMORY_MERGE, 0)
        return int(r.errnum), int(r.value) if not r.errnum else -1

    def observe(self, proc, region, first, count):
        p = self.procs[proc]
        out = []
        for t in p.translate(self._page(proc, region, first), count):
            if not t.present:
                out.append(None)
                continue
            zero = t.state == self.common_pb2.PAGE_STATE_ZERO
            ksm = t.state == self.common_pb2.PAGE_STATE_KSM
            mapcount = 0 if zero else self.machine.page(t.pfn).mapcount
            out.append((t.pfn, ksm, zero, mapcount))
        return out

    # ---- KSM ------------------------------------------------------------------------
    def read_knob(self, file: str) -> str:
        self.require("read_sysfs")
        r = self.c.call(self.c.ksm.ReadKsmSysfs, self.ksm_pb2.ReadKsmSysfsRequest(
            name=self.machine.ksm.name, file=file))
        if r.errnum:
            raise RuntimeError("memnode ReadKsmSysfs(%s): errno %d" % (file, r.errnum))
        return r.value

    def write_knob(self, file: str, text: str) -> Tuple[int, str]:
        r = self.machine.ksm.write_sysfs(file, text)
        return r.errnum, self.read_knob(file)

    def do_pass(self) -> None:
        self.machine.ksm.write_sysfs("run", "1")
        resp = self.machine.ksm.step(full_scans=1)
        self.machine.ksm.write_sysfs("run", "0")
        if resp.passes != 1:
            raise RuntimeError("memnode StepKsm(full_scans=1) completed %d passes" % resp.passes)

    def counters(self) -> Dict[str, int]:
        out = {f: int(self.read_knob(f)) for f in COUNTER_FILES}
        out["cow_ksm"] = int(self.machine.ksm.get().cow_ksm)
        return out

    def ksm_stat(self, proc: str) -> Dict[str, Any]:
        self.require("ksm_stat")
        s = self.c.call(self.c.processes.GetKsmStat, self.process_pb2.GetKsmStatRequest(
            name=self.procs[proc].name))
        out = {k: getattr(s, k) for k in ("ksm_rmap_items", "ksm_zero_pages",
                                          "ksm_merging_pages", "ksm_process_profit")}
        out["ksm_merge_any"] = bool(s.ksm_merge_any)
        out["ksm_mergeable"] = bool(s.ksm_mergeable)
        out["merging_pages_file"] = out["ksm_merging_pages"]
        return out


def profile_offered(client: Any) -> Optional[str]:
    """None if the server creates linux-6.18 machines, else the reason why not."""
    from memnode import MemnodeError
    mid = "diff-probe-%d" % next(_ids)
    try:
        m = client.create_machine(mid, nodes=1, blocks_per_node=1, pages_per_block=64,
                                  clock="manual", profile=PROFILE)
    except MemnodeError as e:
        return "CreateMachine(profile=%r) failed: %s" % (PROFILE, e)
    try:
        got = m.get().profile
        if got != PROFILE:
            return "CreateMachine(profile=%r) created a %r machine" % (PROFILE, got)
    finally:
        m.delete()
    return None
