"""Safe control of the host's real KSM (/sys/kernel/mm/ksm) and of the ksm
tracepoints, for the differential test (docs/DIFFERENTIAL.md).

Safety rules, all enforced here:

* ``HostKsm.acquire()`` takes an exclusive lock (/run/memnode-differential.lock)
  so two runs never drive KSM at once, then refuses to start (HostKsmBusy)
  when KSM is in use: run != 0, advisor_mode != none, a non-zero
  pages_shared / pages_sharing / pages_unshared / pages_volatile /
  stable_node_chains / stable_node_dups / ksm_zero_pages, or any process
  whose /proc/PID/ksm_stat shows mergeable memory or KSM state.
* Before changing anything it saves the text of every writable knob, in
  memory and in /run/memnode-differential-ksm.json (a run killed with
  SIGKILL is repaired by the next run, which restores from that file first).
* ``restore()`` writes run=2 (unmerges whatever the test left), then every
  saved knob in an order that respects the kernel's side effects
  (advisor_mode before pages_to_scan, max_page_sharing / merge_across_nodes
  after the unmerge), then run=0, and verifies every knob reads back as saved.
  It runs at release, at interpreter exit and on SIGTERM / SIGINT / SIGHUP.
* Nothing outside /sys/kernel/mm/ksm is written, except tracefs: a private
  instance ``instances/memnode_differential`` (mounted first if needed and
  unmounted again if this module mounted it).

Lockstep passes (kernel-6x semantics §1.4 as written in docs/DIFFERENTIAL.md):
advisor_mode=none, pages_to_scan=4294967295 and an hour-long sleep, with
run=0 between passes. ``one_pass()`` writes a different sleep_millisecs
(which wakes ksmd out of its timed sleep), then run=1 (which wakes it out of
its "nothing to do" wait), waits until full_scans has grown by one and
writes run=0: ksmd has done exactly one full scan, has no more work, and all
counters are still until the next call.

Thread safety: one HostKsm per process, used from one thread.
"""

from __future__ import annotations

import atexit
import errno as errno_mod
import fcntl
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

KSM_DIR = Path("/sys/kernel/mm/ksm")
TRACEFS = Path("/sys/kernel/tracing")
INSTANCE = "memnode_differential"
LOCK_FILE = Path("/run/memnode-differential.lock")
STATE_FILE = Path("/run/memnode-differential-ksm.json")
# Present while tracefs is mounted by a run of this test (so that a run killed
# with SIGKILL leaves the next run the job of unmounting it).
MOUNT_MARKER = Path("/run/memnode-differential-tracefs-mounted")

# Restore order (see module docstring); files not listed are restored after.
RESTORE_ORDER = (
    "advisor_mode", "advisor_max_cpu", "advisor_min_pages_to_scan",
    "advisor_max_pages_to_scan", "advisor_target_scan_time", "pages_to_scan",
    "sleep_millisecs", "max_page_sharing", "merge_across_nodes",
    "stable_node_chains_prune_millisecs", "use_zero_pages", "smart_scan",
)
BUSY_COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
                 "stable_node_chains", "stable_node_dups", "ksm_zero_pages")

SLEEP_A = 3_600_000          # one hour: ksmd never wakes by itself during a step
SLEEP_B = SLEEP_A + 1
PASS_TIMEOUT_S = 60.0


class HostKsmUnavailable(Exception):
    """The host has no KSM sysfs interface or we may not write it."""


class HostKsmBusy(Exception):
    """KSM is in use by someone else: the test refuses to touch it."""


def _errno_of(e: OSError) -> int:
    return e.errno if e.errno is not None else errno_mod.EIO


def read_knob(name: str) -> str:
    return (KSM_DIR / name).read_text()


def write_knob(name: str, text: str) -> Tuple[int, int]:
    """Writes exactly ``text`` in one write(2). Returns (errno, bytes written)."""
    data = text.encode()
    fd = os.open(KSM_DIR / name, os.O_WRONLY)
    try:
        n = os.write(fd, data)
        return 0, n
    except OSError as e:
        return _errno_of(e), -1
    finally:
        os.close(fd)


def advisor_mode_word(text: str) -> str:
    """'[none] scan-time\\n' -> 'none'."""
    m = re.search(r"\[([^\]]+)\]", text)
    return m.group(1) if m else text.strip()


def ksm_stat_of(pid: int) -> Optional[Dict[str, object]]:
    """Parses /proc/PID/ksm_stat (None if unreadable: kernel thread, gone)."""
    try:
        text = Path("/proc/%d/ksm_stat" % pid).read_text()
    except OSError:
        return None
    out: Dict[str, object] = {}
    for line in text.splitlines():
        key, _, value = line.replace(":", " ").partition(" ")
        value = value.strip()
        if value in ("yes", "no"):
            out[key] = value == "yes"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                out[key] = value
    return out


def processes_using_ksm(exclude: Tuple[int, ...] = ()) -> List[str]:
    """'pid comm: reason' for every process with mergeable memory or KSM state."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        st = ksm_stat_of(int(entry))
        if not st:
            continue
        reasons = [k for k in ("ksm_mergeable", "ksm_merge_any") if st.get(k) is True]
        reasons += ["%s=%s" % (k, st[k]) for k in ("ksm_rmap_items", "ksm_merging_pages",
                                                    "ksm_zero_pages") if st.get(k)]
        if reasons:
            try:
                comm = Path("/proc/%s/comm" % entry).read_text().strip()
            except OSError:
                comm = "?"
            found.append("%s %s: %s" % (entry, comm, ", ".join(reasons)))
    return found


def vmstat(name: str) -> int:
    for line in Path("/proc/vmstat").read_text().splitlines():
        k, _, v = line.partition(" ")
        if k == name:
            return int(v)
    raise KeyError(name)


class HostKsm:
    """The host's KSM, saved on acquire and restored on release (see module)."""

    def __init__(self) -> None:
        self.saved: Dict[str, str] = {}
        self.writable: List[str] = []
        self.readonly: List[str] = []
        self._lock_fd: Optional[int] = None
        self._restored = True
        self._restoring = False
        self._pending_signal = 0
        self._old_handlers: Dict[int, object] = {}
        self.tracing: Optional[Tracing] = None
        self._sleep = SLEEP_A

    # ---- acquire / release ------------------------------------------------
    def acquire(self) -> None:
        if not KSM_DIR.is_dir():
            raise HostKsmUnavailable("%s does not exist: this kernel has no KSM (CONFIG_KSM)"
                                     % KSM_DIR)
        if os.geteuid() != 0:
            raise HostKsmUnavailable("driving %s needs root (euid is %d)" % (KSM_DIR, os.geteuid()))
        self._lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise HostKsmBusy("another differential run holds %s" % LOCK_FILE)
        try:
            self._repair_from_state_file()
            self.writable = self.writable_files()
            self.readonly = sorted(p.name for p in KSM_DIR.iterdir()
                                   if p.name not in self.writable)
            self._refuse_if_busy()
            self.saved = {f: read_knob(f) for f in self.writable}
            tmp = STATE_FILE.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.saved, indent=1, sort_keys=True))
            os.replace(tmp, STATE_FILE)
        except BaseException:
            self._unlock()
            raise
        self._restored = False
        atexit.register(self.restore)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue            # an ignored signal cannot end the run
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    @staticmethod
    def writable_files() -> List[str]:
        return sorted(p.name for p in KSM_DIR.iterdir() if p.stat().st_mode & 0o200)

    def _repair_from_state_file(self) -> None:
        """A previous run died without restoring: put its saved knobs back."""
        if not STATE_FILE.exists():
            return
        saved = json.loads(STATE_FILE.read_text())
        self._write_back(saved)
        STATE_FILE.unlink()

    def _refuse_if_busy(self) -> None:
        problems = []
        run = read_knob("run").strip()
        if run != "0":
            problems.append("run is %s (ksmd is in use)" % run)
        if "advisor_mode" in self.writable:
            mode = advisor_mode_word(read_knob("advisor_mode"))
            if mode != "none":
                problems.append("advisor_mode is %s (its state cannot be restored)" % mode)
        for c in BUSY_COUNTERS:
            if (KSM_DIR / c).exists():
                v = int(read_knob(c))
                if v:
                    problems.append("%s is %d" % (c, v))
        problems += ["process " + p for p in processes_using_ksm(exclude=(os.getpid(),))]
        if problems:
            raise HostKsmBusy("the host's KSM is in use, refusing to drive it: "
                              + "; ".join(problems))

    def _on_signal(self, signum, frame) -> None:
        """SIGTERM/SIGINT/SIGHUP become KeyboardInterrupt: the stack unwinds
        (closing helper pipes and trace files), pytest tears the session down
        and the fixture, or atexit, restores the knobs. A signal that arrives
        while the knobs are being restored is raised when the restore is done."""
        if self._restoring:
            self._pending_signal = signum
            return
        raise KeyboardInterrupt("signal %d: the host KSM knobs are restored on the way out"
                                % signum)

    def _write_back(self, saved: Dict[str, str]) -> List[str]:
        """run=2, every saved knob in RESTORE_ORDER, run=0. Returns problems."""
        problems = []
        err, _ = write_knob("run", "2")
        if err:
            problems.append("run=2: errno %d" % err)
        order = [f for f in RESTORE_ORDER if f in saved]
        order += sorted(f for f in saved if f not in order and f != "run")
        for f in order:
            text = saved[f]
            value = advisor_mode_word(text) if f == "advisor_mode" else text.strip()
            err, _ = write_knob(f, value)
            if err:
                problems.append("%s=%r: errno %d" % (f, value, err))
        err, _ = write_knob("run", "0")
        if err:
            problems.append("run=0: errno %d" % err)
        return problems

    def restore(self) -> List[str]:
        """Restores and verifies the saved knobs (idempotent). Returns the
        problems found (empty when every knob reads back as saved, run=0)."""
        if self._restored:
            return []
        self._restored = True
        self._restoring = True
        self._pending_signal = 0
        try:
            problems = self._restore()
        finally:
            self._restoring = False
        if self._pending_signal:
            raise KeyboardInterrupt("signal %d during the restore of the host KSM knobs (done: "
                                    "%s)" % (self._pending_signal, problems or "clean"))
        return problems

    def _restore(self) -> List[str]:
        problems = []
        if self.tracing is not None:
            self.tracing.close()
            self.tracing = None
        problems += cleanup_tracefs()
        problems += self._write_back(self.saved)
        problems += self.verify_restored()
        if not problems:
            try:
                STATE_FILE.unlink()
            except FileNotFoundError:
                pass
        for sig, old in self._old_handlers.items():
            try:
                signal.signal(sig, old)
            except (TypeError, ValueError):
                pass
        self._old_handlers.clear()
        self._unlock()
        return problems

    def verify_restored(self) -> List[str]:
        problems = []
        for f, text in self.saved.items():
            now = read_knob(f)
            want = "0\n" if f == "run" else text
            if now != want:
                problems.append("%s reads %r, saved %r" % (f, now, want))
        return problems

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- per scenario ---------------------------------------------------------
    def reset(self, knobs: Dict[str, str]) -> None:
        """Clean state for a scenario: run=2 (unmerge, full_scans=0), the
        saved knobs, then the lockstep knobs and the scenario's own."""
        problems = self._write_back(self.saved)
        if problems:
            raise RuntimeError("cannot reset host KSM: %s" % "; ".join(problems))
        for name, text in (("advisor_mode", "none"), ("pages_to_scan", "4294967295"),
                           ("sleep_millisecs", str(SLEEP_A))):
            err, _ = write_knob(name, text)
            if err:
                raise RuntimeError("cannot set %s=%s: errno %d" % (name, text, err))
        self._sleep = SLEEP_A
        for name, text in knobs.items():
            err, _ = write_knob(name, text)
            if err:
                raise RuntimeError("scenario knob %s=%s: errno %d" % (name, text, err))
        err, _ = write_knob("run", "0")
        if err:
            raise RuntimeError("run=0: errno %d" % err)

    def one_pass(self) -> None:
        """Lets ksmd do exactly one full scan (module docstring)."""
        before = int(read_knob("full_scans"))
        self._sleep = SLEEP_B if self._sleep == SLEEP_A else SLEEP_A
        err, _ = write_knob("sleep_millisecs", str(self._sleep))
        if err:
            raise RuntimeError("sleep_millisecs write: errno %d" % err)
        err, _ = write_knob("run", "1")
        if err:
            raise RuntimeError("run=1: errno %d" % err)
        deadline = time.monotonic() + PASS_TIMEOUT_S
        try:
            while int(read_knob("full_scans")) == before:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "ksmd did not finish a full scan within %.0f s (full_scans stays %d):"
                        " no registered mm, or ksmd is stuck" % (PASS_TIMEOUT_S, before))
                time.sleep(0.0005)
        finally:
            write_knob("run", "0")
        after = int(read_knob("full_scans"))
        if after != before + 1:
            raise RuntimeError("ksmd did %d full scans in one step, not 1" % (after - before))

    def counters(self) -> Dict[str, int]:
        out = {}
        for f in self.readonly + ["run"]:
            if f in ("advisor_mode",):
                continue
            out[f] = int(read_knob(f))
        out["cow_ksm"] = vmstat("cow_ksm")
        return out


class Tracing:
    """A private tracefs instance with events/ksm/* enabled."""

    def __init__(self) -> None:
        self.mounted_here = False
        self.dir: Optional[Path] = None
        self.unavailable = ""
        try:
            if not (TRACEFS / "instances").is_dir():
                # Marker first: a run killed right after the mount still
                # tells the next run (or restore) to unmount.
                MOUNT_MARKER.touch()
                r = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    MOUNT_MARKER.unlink(missing_ok=True)
                    self.unavailable = ("tracefs is not mounted at %s and `mount -t tracefs` "
                                        "failed: %s" % (TRACEFS, r.stderr.strip()
                                                        or "exit %d" % r.returncode))
                    return
            self.mounted_here = MOUNT_MARKER.exists()
            if not (TRACEFS / "events" / "ksm").is_dir():
                self.unavailable = "%s/events/ksm does not exist (no ksm tracepoints)" % TRACEFS
                return
            d = TRACEFS / "instances" / INSTANCE
            if d.exists():
                os.rmdir(d)            # left over by a killed run
            os.mkdir(d)
            self.dir = d
            (d / "buffer_size_kb").write_text("4096")
            (d / "trace_clock").write_text("global")
            (d / "events" / "ksm" / "enable").write_text("1")
            (d / "tracing_on").write_text("1")
            self.clear()
        except OSError as e:
            self.unavailable = "tracefs instance %s: %s" % (INSTANCE, e)
            self.close()

    @property
    def ok(self) -> bool:
        return self.dir is not None and not self.unavailable

    def clear(self) -> None:
        with open(self.dir / "trace", "w") as f:
            f.truncate(0)

    _LINE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+"
                       r"(?P<ts>[\d.]+):\s+(?P<event>\w+):\s?(?P<body>.*)$")

    def drain(self) -> List[Tuple[str, str]]:
        """(event, body) lines recorded since the last drain, in order."""
        text = (self.dir / "trace").read_text()
        self.clear()
        lost = re.search(r"entries-in-buffer/entries-written: (\d+)/(\d+)", text)
        if lost and lost.group(1) != lost.group(2):
            raise RuntimeError("tracefs lost events (%s/%s): enlarge buffer_size_kb"
                               % (lost.group(1), lost.group(2)))
        out = []
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            m = self._LINE.match(line)
            if not m:
                raise RuntimeError("cannot parse trace line %r" % line)
            out.append((m.group("event"), m.group("body")))
        return out

    def close(self) -> List[str]:
        self.dir = None
        self.mounted_here = False
        return cleanup_tracefs()


def cleanup_tracefs() -> List[str]:
    """Removes this test's tracefs instance, and unmounts tracefs if a run of
    this test mounted it (MOUNT_MARKER). Idempotent."""
    problems = []
    d = TRACEFS / "instances" / INSTANCE
    if d.is_dir():
        try:
            (d / "events" / "ksm" / "enable").write_text("0")
            os.rmdir(d)
        except OSError as e:
            problems.append("removing tracefs instance %s: %s" % (d, e))
    if MOUNT_MARKER.exists():
        if (TRACEFS / "instances").is_dir():
            r = subprocess.run(["umount", str(TRACEFS)], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append("could not unmount the tracefs this test mounted at %s: %s"
                                % (TRACEFS, r.stderr.strip()))
                return problems
        MOUNT_MARKER.unlink()
    return problems


_BODY = {
    "ksm_start_scan": re.compile(r"^seq (?P<seq>-?\d+) rmap size (?P<rmap_entries>-?\d+)$"),
    "ksm_stop_scan": re.compile(r"^seq (?P<seq>-?\d+) rmap size (?P<rmap_entries>-?\d+)$"),
    "ksm_enter": re.compile(r"^mm (?P<mm>\S+)$"),
    "ksm_exit": re.compile(r"^mm (?P<mm>\S+)$"),
    "ksm_merge_one_page": re.compile(
        r"^ksm pfn (?P<pfn>\d+) rmap_item (?P<rmap>\S+) mm (?P<mm>\S+) error (?P<err>-?\d+)$"),
    "ksm_merge_with_ksm_page": re.compile(
        r"^(?P<ksm_page>ksm )?pfn (?P<pfn>\d+) rmap_item (?P<rmap>\S+) mm (?P<mm>\S+) "
        r"error (?P<err>-?\d+)$"),
    "ksm_remove_ksm_page": re.compile(r"^pfn (?P<pfn>\d+)$"),
    "ksm_remove_rmap_item": re.compile(
        r"^pfn (?P<pfn>\d+) rmap_item (?P<rmap>\S+) mm (?P<mm>\S+)$"),
    "ksm_advisor": re.compile(r"^ksm scan time (?P<scan_time>-?\d+) pages_to_scan "
                              r"(?P<pages_to_scan>\d+) cpu percent (?P<cpu_percent>\d+)$"),
}


def parse_event(name: str, body: str) -> Dict[str, object]:
    """The arguments of one ksm tracepoint line (numbers as int, pointers as
    the hashed hex text ftrace prints, ksm_page as a bool)."""
    rx = _BODY.get(name)
    if rx is None:
        return {"raw": body}
    m = rx.match(body)
    if not m:
        raise RuntimeError("unexpected %s format: %r" % (name, body))
    out: Dict[str, object] = {}
    for k, v in m.groupdict().items():
        if k == "ksm_page":
            out[k] = v is not None
        elif k in ("mm", "rmap"):
            out[k] = v
        else:
            out[k] = int(v)
    return out
