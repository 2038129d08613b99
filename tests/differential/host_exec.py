"""The host executor: scenarios on this machine's real KSM.

Each scenario process is a ksm_helper (ksm_helper.c) started by this module
or forked by another helper; the helper does the memory operations in its own
address space and reports pagemap / kpageflags / kpagecount. This module
reads /proc/PID/ksm_stat and the sysfs counters, drives ksmd one full scan at
a time through host_ksm.HostKsm, and turns the ksm tracepoint lines into
events whose "mm" is the scenario's process name.

Processes and FIFOs are this module's own; ``end()`` kills any helper still
alive (by pid) and ``HostKsm.reset`` at the next scenario unmerges what is left.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import host_ksm
from dsl import Scenario
from observe import Executor

REPLY_TIMEOUT_S = 30.0
KPF_KSM = 1 << 21
KPF_ZERO_PAGE = 1 << 24
PM_PRESENT = 1 << 63
PM_PFN_MASK = (1 << 55) - 1


class HelperError(RuntimeError):
    pass


class Helper:
    """One helper process and its command channel."""

    def __init__(self, pid: int, wfd: int, rfd: int, popen: Optional[subprocess.Popen] = None):
        self.pid = pid
        self.wfd = wfd
        self.rfd = rfd
        self.popen = popen
        self.buf = b""
        self.regions: Dict[str, int] = {}      # region name -> helper region number

    def send(self, line: str) -> str:
        os.write(self.wfd, (line + "\n").encode())
        return self.readline("reply to %r" % line)

    def readline(self, what: str) -> str:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HelperError("helper %d: no %s within %.0f s" % (self.pid, what,
                                                                     REPLY_TIMEOUT_S))
            r, _, _ = select.select([self.rfd], [], [], left)
            if not r:
                continue
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                raise HelperError("helper %d closed its reply channel (%s)" % (self.pid, what))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode()
        if text.startswith("err "):
            raise HelperError("helper %d: %s -> %s" % (self.pid, what, text))
        return text

    def close(self) -> None:
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass


def kv(reply: str) -> Dict[str, str]:
    out = {}
    for tok in reply.split()[1:]:
        k, _, v = tok.partition("=")
        out[k] = v
    return out


class HostExecutor(Executor):
    name = "host"

    def __init__(self, ksm: host_ksm.HostKsm, helper_binary: Path,
                 tracing: Optional[host_ksm.Tracing], default_knobs: Dict[str, str]) -> None:
        self.ksm = ksm
        self.default_knobs = default_knobs
        self.binary = str(helper_binary)
        self.tracing = tracing
        self.has_events = tracing is not None and tracing.ok
        self.events_unavailable_reason = "" if self.has_events else (
            tracing.unavailable if tracing is not None else "tracing not requested")
        self.procs: Dict[str, Helper] = {}
        self.mm_names: Dict[str, str] = {}        # hashed mm pointer -> process name
        self.pending: List[Tuple[str, Dict[str, Any]]] = []
        self.zero_pfn: Optional[int] = None
        self.tmp: Optional[tempfile.TemporaryDirectory] = None
        self._fifo = 0
        self._current_proc: Optional[str] = None

    # ---- lifecycle ------------------------------------------------------------
    def begin(self, scenario: Scenario) -> None:
        knobs = dict(self.default_knobs)
        knobs.update(scenario.knobs)
        self.ksm.reset(knobs)
        self.tmp = tempfile.TemporaryDirectory(prefix="memnode-diff-")
        self.procs.clear()
        self.mm_names.clear()
        self.pending.clear()
        if self.has_events:
            self.tracing.clear()

    def end(self) -> None:
        for name, h in list(self.procs.items()):
            self._kill(h)
        self.procs.clear()
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None

    def _kill(self, h: Helper) -> None:
        try:
            os.kill(h.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        h.close()
        if h.popen is not None:
            h.popen.wait(timeout=10)
        else:
            self._wait_gone(h.pid)

    @staticmethod
    def _wait_gone(pid: int, timeout: float = 10.0) -> None:
        """A forked helper is reaped by the kernel (its parent ignores
        SIGCHLD) or by init: wait until its /proc entry is gone."""
        deadline = time.monotonic() + timeout
        while os.path.exists("/proc/%d" % pid):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().split(") ", 1)[1].startswith("Z"):
                        return          # exit_mm is done for a zombie
            except (OSError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise HelperError("process %d did not go away after exit" % pid)
            time.sleep(0.001)

    # ---- processes -------------------------------------------------------------
    def spawn(self, proc: str) -> int:
        p = subprocess.Popen([self.binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             bufsize=0, close_fds=True)
        h = Helper(p.pid, p.stdin.fileno(), p.stdout.fileno(), p)
        hello = kv(h.readline("ready line"))
        self.zero_pfn = int(hello["zero_pfn"])
        self.procs[proc] = h
        self._collect(proc)
        return h.pid

    def fork(self, proc: str, child: str) -> int:
        parent = self.procs[proc]
        self._fifo += 1
        cmd = os.path.join(self.tmp.name, "cmd%d" % self._fifo)
        rep = os.path.join(self.tmp.name, "rep%d" % self._fifo)
        os.mkfifo(cmd, 0o600)
        os.mkfifo(rep, 0o600)
        pid = int(kv(parent.send("fork %s %s" % (cmd, rep)))["pid"])
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:                      # the child opens cmd for reading first
            try:
                wfd = os.open(cmd, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise HelperError("forked helper %d never opened its FIFO" % pid)
                time.sleep(0.001)
        os.set_blocking(wfd, True)
        rfd = os.open(rep, os.O_RDONLY | os.O_NONBLOCK)
        h = Helper(pid, wfd, rfd)
        h.regions = dict(parent.regions)
        hello = kv(h.readline("ready line of the forked child"))
        if int(hello["pid"]) != pid:
            raise HelperError("forked child says pid %s, parent said %d" % (hello["pid"], pid))
        self.procs[child] = h
        self._collect(child)
        return pid

    def exec(self, proc: str) -> None:
        h = self.procs[proc]
        os.write(h.wfd, b"exec\n")
        hello = kv(h.readline("ready line after exec"))
        if int(hello["pid"]) != h.pid:
            raise HelperError("exec changed the pid?")
        h.regions = {}
        self._collect(proc)

    def exit(self, proc: str) -> None:
        h = self.procs.pop(proc)
        h.send("exit")
        h.close()
        if h.popen is not None:
            h.popen.wait(timeout=REPLY_TIMEOUT_S)
        else:
            self._wait_gone(h.pid)
        self._collect(proc)

    # ---- memory -----------------------------------------------------------------
    def _region(self, proc: str, region: str) -> Tuple[Helper, int]:
        h = self.procs[proc]
        return h, h.regions[region]

    def mmap(self, proc: str, region: str, addr: int, pages: int, shared: bool) -> int:
        h = self.procs[proc]
        n = len(h.regions)
        while n in h.regions.values():
            n += 1
        h.send("mmap %d %d %d%s" % (n, addr, pages, " shared" if shared else ""))  # raises
        h.regions[region] = n
        self._collect(proc)
        return 0

    def fill(self, proc, region, first, count, kind, arg, step) -> None:
        h, r = self._region(proc, region)
        h.send("fill %d %d %d %s %d %d" % (r, first, count, kind, arg, step))
        self._collect(proc)

    def write(self, proc, region, page, offset, value) -> None:
        h, r = self._region(proc, region)
        h.send("write %d %d %d %d" % (r, page, offset, value))
        self._collect(proc)

    def madvise(self, proc, region, first, count, advice) -> int:
        h, r = self._region(proc, region)
        err = int(kv(h.send("madvise %d %d %d %d" % (r, first, count, advice)))["errno"])
        self._collect(proc)
        return err

    def munmap(self, proc, region, first, count) -> int:
        h, r = self._region(proc, region)
        err = int(kv(h.send("munmap %d %d %d" % (r, first, count)))["errno"])
        self._collect(proc)
        return err

    def prctl_set(self, proc, value) -> int:
        h = self.procs[proc]
        err = int(kv(h.send("prctl_set %d" % value))["errno"])
        if err == 0 and value:
            # Harness hygiene, not part of the scenario: keep the helper's own
            # libc/stack/heap VMAs out of KSM so that only the test regions
            # count, as in the emulated process (docs/DIFFERENTIAL.md).
            h.send("isolate")
        self._collect(proc)
        return err

    def prctl_get(self, proc) -> Tuple[int, int]:
        r = kv(self.procs[proc].send("prctl_get"))
        self._collect(proc)
        return int(r["errno"]), int(r.get("value", -1))

    def observe(self, proc, region, first, count):
        h, r = self._region(proc, region)
        reply = kv(h.send("observe %d %d %d" % (r, first, count)))
        out = []
        for item in reply["pages"].split(","):
            pm, flags, mapcount = (int(x, 16) for x in item.split(":"))
            if not pm & PM_PRESENT:
                out.append(None)
                continue
            out.append((pm & PM_PFN_MASK, bool(flags & KPF_KSM), bool(flags & KPF_ZERO_PAGE),
                        mapcount))
        return out

    # ---- KSM ----------------------------------------------------------------------
    def write_knob(self, file: str, text: str) -> Tuple[int, str]:
        err, _ = host_ksm.write_knob(file, text)
        readback = host_ksm.read_knob(file)
        self._collect(None)
        return err, readback

    def do_pass(self) -> None:
        self.ksm.one_pass()
        self._collect(None)

    def counters(self) -> Dict[str, int]:
        return self.ksm.counters()

    def ksm_stat(self, proc: str) -> Dict[str, Any]:
        pid = self.procs[proc].pid
        st = host_ksm.ksm_stat_of(pid)
        if st is None:
            raise HelperError("cannot read /proc/%d/ksm_stat" % pid)
        out = {k: st[k] for k in ("ksm_rmap_items", "ksm_zero_pages", "ksm_merging_pages",
                                  "ksm_process_profit", "ksm_merge_any", "ksm_mergeable")}
        out["merging_pages_file"] = int(Path("/proc/%d/ksm_merging_pages" % pid).read_text())
        return out

    # ---- events ------------------------------------------------------------------
    def _collect(self, proc: Optional[str]) -> None:
        """Reads the trace lines of the operation just done; a ksm_enter names
        an mm after the process the operation created or registered."""
        if not self.has_events:
            return
        for name, body in self.tracing.drain():
            args = host_ksm.parse_event(name, body)
            if name == "ksm_enter" and args["mm"] not in self.mm_names:
                self.mm_names[args["mm"]] = proc if proc is not None else "?"
            if "mm" in args:
                args["mm"] = self.mm_names.get(args["mm"], "mm?" + str(args["mm"]))
            self.pending.append((name, args))

    def drain_events(self) -> List[Tuple[str, Dict[str, Any]]]:
        self._collect(None)
        out, self.pending = self.pending, []
        return out
