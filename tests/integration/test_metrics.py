"""Observability against the real memnoded and a real Prometheus server.

This module starts its own memnoded (metrics on a free port, a tiny event
buffer, a low stream limit) and its own Prometheus (1 s scrape interval), so
that it does not depend on the session server's flags. Expected values come
from docs/SEMANTICS.md (rules cited by id, e.g. "SEMANTICS SC-1",
"SEMANTICS MERGE-7"), never from what the server printed.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest

from conftest import BUILD_DIR, REPO  # also puts the stubs on sys.path

from memnode import Client, MemnodeError, PAGE_SIZE
from memnode.v1 import events_pb2, events_pb2_grpc
from memnode.v1 import hotplug_pb2 as H

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
DEPLOY = REPO / "deploy"
EVENT_BUFFER = 16   # --event_buffer of this module's server
MAX_STREAMS = 3     # --max_streams of this module's server
WAIT_S = 60.0       # bound on every wait for an asynchronous outcome
MAX_VISITS = 1 << 22


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


class _Memnoded:
    """memnoded with metrics on a free port; prints METRICS and LISTENING."""

    def __init__(self) -> None:
        binary = BUILD_DIR / "server" / "memnoded"
        if not os.access(binary, os.X_OK):
            pytest.fail("memnoded not found at %s" % binary, pytrace=False)
        self.log = tempfile.NamedTemporaryFile(prefix="memnoded-obs-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [str(binary), "--listen=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             "--event_buffer=%d" % EVENT_BUFFER, "--max_streams=%d" % MAX_STREAMS,
             "--clock=manual", "--nodes=2", "--blocks_per_node=4", "--pages_per_block=64"],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self.address = self.metrics = None
        deadline = time.monotonic() + 30
        buf = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline and not self.address:
            if not select.select([fd], [], [], 0.2)[0]:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.split(b"\n"):
                m = re.match(rb"^(METRICS|LISTENING) (127\.0\.0\.1:\d+)\s*$", line)
                if m and m.group(1) == b"METRICS":
                    self.metrics = m.group(2).decode()
                elif m:
                    self.address = m.group(2).decode()
        if not (self.address and self.metrics):
            self.stop()
            pytest.fail("memnoded did not start: %r\n%s" % (buf, self.stderr()), pytrace=False)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            for _ in self.proc.stdout:
                pass
        except (OSError, ValueError):
            pass

    def stderr(self) -> str:
        with open(self.log.name, "rb") as f:
            return f.read()[-4000:].decode(errors="replace")

    def scrape(self) -> str:
        return _http_get("http://%s/metrics" % self.metrics).decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        os.unlink(self.log.name)


class _Prometheus:
    """A real Prometheus scraping `target` every second."""

    def __init__(self, target: str) -> None:
        if not os.access(PROMETHEUS, os.X_OK):
            pytest.fail("Prometheus server not found (Debian package `prometheus`; "
                        "scripts/deps.sh installs it)", pytrace=False)
        self.dir = tempfile.mkdtemp(prefix="memnode-prom-")
        config = Path(self.dir) / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: memnoded\n    static_configs:\n"
            "      - targets: ['%s']\n" % target)
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(Path(self.dir) / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=%s" % config,
             "--storage.tsdb.path=%s" % (Path(self.dir) / "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                _http_get(self.url + "/-/ready", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        pytest.fail("Prometheus did not become ready", pytrace=False)

    def query(self, expr: str):
        body = _http_get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def wait_value(self, expr: str, want: float) -> None:
        """Polls an instant query until its single sample equals `want`."""
        deadline = time.monotonic() + WAIT_S
        last = None
        while time.monotonic() < deadline:
            last = self.query(expr)
            if len(last) == 1 and float(last[0]["value"][1]) == want:
                return
            time.sleep(0.25)
        pytest.fail("%s did not reach %s within %.0f s; last result %r"
                    % (expr, want, WAIT_S, last), pytrace=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    s = _Memnoded()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def prometheus(server):
    p = _Prometheus(server.metrics)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def mclient(server):
    c = Client(server.address, timeout=120.0)
    c.wait_ready(timeout=10.0)
    yield c
    c.close()


@pytest.fixture
def events(mclient):
    return events_pb2_grpc.EventServiceStub(mclient.channel)


_ids = iter(range(1, 1 << 30))


@pytest.fixture
def new_machine(mclient):
    made = []

    def make(pages_per_block=64, blocks_per_node=4):
        m = mclient.create_machine("obs-%d" % next(_ids), nodes=2,
                                   blocks_per_node=blocks_per_node,
                                   pages_per_block=pages_per_block, clock="manual")
        made.append(m)
        return m

    yield make
    for m in made:
        try:
            m.delete()
        except MemnodeError:
            pass


def _proc_with_pages(m, pages, byte):
    """A process with `pages` private pages all holding `byte`, advised
    MERGEABLE after the write (the assumptions of SEMANTICS A.21)."""
    p = m.create_process()
    r = p.mmap(pages * PAGE_SIZE, "rw")
    assert r.ok, r
    assert p.fill(r.address, pages * PAGE_SIZE, byte=byte).ok
    assert p.madvise(r.address, pages * PAGE_SIZE, "mergeable").ok
    return p, r.address


def _passes(m, n):
    resp = m.ksm.step(full_scans=n, max_visits=MAX_VISITS)
    assert resp.passes == n
    return resp


def _parse(text):
    """{series: value} of an exposition (series = name{labels} as written)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = value
    return out


def _series_names(text):
    return {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s).group(0) for s in _parse(text)}


def _value(text, name, **labels):
    """The value of the series with exactly `labels`, or None."""
    for series, value in _parse(text).items():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$", series)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_]+)="([^"]*)"', m.group(2) or ""))
        if got == labels:
            return float(value)
    return None


def _watch(events, machine, kinds=(), timeout=WAIT_S):
    """Opens WatchEvents and waits until the server has subscribed it."""
    call = events.WatchEvents(events_pb2.WatchEventsRequest(name=machine.name, kinds=kinds),
                              timeout=timeout)
    call.initial_metadata()  # the server sends headers once subscribed
    return call


# ---------------------------------------------------------------------------
# Prometheus end to end
# ---------------------------------------------------------------------------

def test_prometheus_sees_scenario_10_1_merge(mclient, new_machine, prometheus):
    m = new_machine()
    mid = m.name.split("/", 1)[1]
    _proc_with_pages(m, 1, 0x5A)
    _proc_with_pages(m, 1, 0x5A)
    # SEMANTICS SC-1: two passes merge the pair: pages_shared 1, pages_sharing 1.
    _passes(m, 2)
    prometheus.wait_value('memnode_ksm_pages_sharing{machine="%s"}' % mid, 1)
    prometheus.wait_value('memnode_ksm_pages_shared{machine="%s"}' % mid, 1)
    # SEMANTICS MERGE-7: node creation appends the tree item, then the current one.
    prometheus.wait_value('memnode_ksm_merges_total{machine="%s"}' % mid, 2)
    prometheus.wait_value('memnode_ksm_full_scans_total{machine="%s"}' % mid, 2)
    # No block of this machine went offline: the offline prune series exists, at 0.
    prometheus.wait_value(
        'memnode_ksm_stable_nodes_pruned_total{machine="%s",reason="offline"}' % mid, 0)
    prometheus.wait_value('up{job="memnoded"}', 1)


def test_deleted_machine_series_disappear(server, new_machine):
    m = new_machine()
    mid = m.name.split("/", 1)[1]
    assert _value(server.scrape(), "memnode_ksm_pages_shared", machine=mid) == 0
    assert _value(server.scrape(), "memnode_memory_offline_total",
                  machine=mid, result="success") == 0
    m.delete()
    text = server.scrape()
    assert 'machine="%s"' % mid not in text


def test_rpc_metrics_count_by_method_and_code(server, mclient):
    before = server.scrape()
    ksm = mclient.machine("no-such-machine").ksm
    with pytest.raises(MemnodeError) as e:
        ksm.get()
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    after = server.scrape()
    labels = dict(method="memnode.v1.KsmService/GetKsm", code="NOT_FOUND")
    assert (_value(after, "memnode_rpc_requests_total", **labels) or 0) - \
        (_value(before, "memnode_rpc_requests_total", **labels) or 0) == 1
    count = dict(method="memnode.v1.KsmService/GetKsm")
    assert _value(after, "memnode_rpc_duration_seconds_count", **count) >= 1
    # Pre-registered at start-up for every method, at zero until called.
    assert _value(after, "memnode_rpc_requests_total",
                  method="memnode.v1.MachineService/CheckMachine", code="OK") is not None


# ---------------------------------------------------------------------------
# promtool and the deploy/ files
# ---------------------------------------------------------------------------

def _promtool(*args, stdin=None):
    if not os.access(PROMTOOL, os.X_OK):
        pytest.fail("promtool not found (Debian package `prometheus`)", pytrace=False)
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, timeout=60)


def test_promtool_check_config_and_rules():
    r = _promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    r = _promtool("check", "rules", str(DEPLOY / "prometheus" / "rules.yml"))
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_promtool_check_metrics_on_live_scrape(server, mclient, new_machine):
    m = new_machine()
    _proc_with_pages(m, 2, 1)
    _passes(m, 2)
    r = _promtool("check", "metrics", stdin=server.scrape().encode())
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def _names_in_exprs(exprs):
    names = set()
    for e in exprs:
        names |= set(re.findall(r"\bmemnode_[a-z0-9_]+", e))
    return names


def test_every_name_in_dashboard_and_rules_is_scraped(server):
    dash = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("expr", "definition") and isinstance(v, str):
                    exprs.append(v)
                elif k == "query" and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dash)
    rules = (DEPLOY / "prometheus" / "rules.yml").read_text()
    exprs += re.findall(r"expr:\s*(.+)", rules)
    used = _names_in_exprs(exprs)
    assert "memnode_ksm_pages_sharing" in used and "memnode_migrate_pages_total" in used
    scraped = _series_names(server.scrape())
    missing = sorted(n for n in used if n not in scraped)
    assert not missing, "used in deploy/ but not exposed: %s" % missing
    # The dashboard's machine template variable.
    names = [v["name"] for v in dash["templating"]["list"]]
    assert "machine" in names


# ---------------------------------------------------------------------------
# The event stream
# ---------------------------------------------------------------------------

def test_event_stream_scenario_10_1_in_order(events, new_machine):
    m = new_machine()
    call = _watch(events, m)
    a, va = _proc_with_pages(m, 1, 0x77)
    b, vb = _proc_with_pages(m, 1, 0x77)
    b_page = b.pfn(vb)
    _passes(m, 2)
    got = [next(call) for _ in range(4)]
    call.cancel()
    E = events_pb2
    # SEMANTICS SC-1 / MERGE-5: pass 1 only stores checksums, so its only event
    # is its end; pass 2 merges: the node is created with A's tree item,
    # then B's item is appended (SEMANTICS MERGE-7); the KSM page is B's original
    # page (SEMANTICS MERGE-9); then pass 2 ends.
    assert [e.kind for e in got] == [E.EVENT_KIND_PASS_END, E.EVENT_KIND_MERGE,
                                     E.EVENT_KIND_MERGE, E.EVENT_KIND_PASS_END]
    assert got[0].value == 1 and got[3].value == 2
    assert (got[1].pid, got[1].address, got[1].new_node) == (a.pid, va, True)
    assert (got[2].pid, got[2].address, got[2].new_node) == (b.pid, vb, False)
    assert got[1].pfn == got[2].pfn == b_page
    assert got[1].stable_node_id == got[2].stable_node_id != 0
    seqs = [e.sequence for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert all(e.dropped == 0 for e in got)
    # MANUAL time advances only with ksmd passes: it is past 0 by then.
    assert got[3].emulated_time_ns > 0


def test_event_stream_kind_filter(events, new_machine):
    m = new_machine()
    call = _watch(events, m, kinds=[events_pb2.EVENT_KIND_MERGE])
    _proc_with_pages(m, 1, 3)
    _proc_with_pages(m, 1, 3)
    _passes(m, 2)
    got = [next(call) for _ in range(2)]
    call.cancel()
    assert [e.kind for e in got] == [events_pb2.EVENT_KIND_MERGE] * 2
    # Sequence numbers are the machine's: pass 1's end is number 1, filtered out.
    assert [e.sequence for e in got] == [2, 3]


def _merged_pair_on_node_1(m):
    """SEMANTICS SC-1's state on node 1 (away from the zero page in block 0): A then
    B, one identical page each, merged by two passes. Returns (a, va, b, vb,
    kpfn, block id); the KSM page is B's original page (SEMANTICS MERGE-9)."""
    procs = []
    for _ in range(2):
        p = m.create_process(home_node=1)
        r = p.mmap(PAGE_SIZE, "rw")
        assert r.ok, r
        assert p.fill(r.address, PAGE_SIZE, byte=0x5A).ok
        procs.append((p, r.address))
    for p, va in procs:
        assert p.madvise(va, PAGE_SIZE, "mergeable").ok
    (a, va), (b, vb) = procs
    kpfn = b.translate(vb, 1)[0].pfn
    resp = _passes(m, 2)
    assert (resp.ksm.pages_shared, resp.ksm.pages_sharing) == (1, 1)
    assert [n.kpfn for n in m.ksm.stable_nodes()] == [kpfn]
    return a, va, b, vb, kpfn, m.page(kpfn).block


def _until_marker(call, marker_pid):
    """Events up to (not including) the PROCESS_EXIT of marker_pid."""
    got = []
    for e in call:
        if e.kind == events_pb2.EVENT_KIND_PROCESS_EXIT and e.pid == marker_pid:
            return got
        got.append(e)
    raise AssertionError("stream ended before the marker")


def test_event_stream_offline_of_a_live_ksm_page_in_order(events, new_machine):
    """SEMANTICS SC-8 scripted: offline the block holding a live KSM page shared by
    two processes, watching every event of the machine."""
    E = events_pb2
    m = new_machine()
    a, va, b, vb, kpfn, block = _merged_pair_on_node_1(m)
    marker = m.create_process()
    call = _watch(events, m)
    rep = m.block(block).offline()
    assert rep.ok, rep
    marker.exit()  # ends the script: everything before it is the offline's
    got = _until_marker(call, marker.pid)
    call.cancel()

    kinds = [e.kind for e in got]
    assert kinds == [
        E.EVENT_KIND_OFFLINE_PHASE,   # SEMANTICS HP-7: isolation succeeds (the page is movable)
        E.EVENT_KIND_MEMORY_NOTIFY,   # SEMANTICS HP-8 / HP-15: MEM_GOING_OFFLINE to ksm(100)
        E.EVENT_KIND_OFFLINE_PHASE,   # going_offline: the notifiers all said NOTIFY_OK
        E.EVENT_KIND_MIGRATE,         # SEMANTICS HP-9, HP-13, MIG-4..MIG-5: the KSM page moves
        E.EVENT_KIND_OFFLINE_PHASE,   # migrated: no LRU page left, every page free
        E.EVENT_KIND_MEMORY_NOTIFY,   # SEMANTICS HP-10 / HP-16: MEM_OFFLINE to ksm(100)
        E.EVENT_KIND_OFFLINE_PHASE,   # done (after MEM_OFFLINE, hotplug.proto)
        E.EVENT_KIND_OFFLINE_RESULT,  # SEMANTICS HP-10: return 0
    ], got
    # Phases in order (SEMANTICS HP-7..HP-10), all of this block.
    phases = [e.offline_phase for e in got if e.kind == E.EVENT_KIND_OFFLINE_PHASE]
    assert phases == [H.OFFLINE_PHASE_ISOLATED, H.OFFLINE_PHASE_GOING_OFFLINE,
                      H.OFFLINE_PHASE_MIGRATED, H.OFFLINE_PHASE_DONE]
    for e in got:
        if e.kind != E.EVENT_KIND_MIGRATE:
            assert e.block == block, e
    # SEMANTICS HP-14, HP-18: KSM's callback at priority 100, always NOTIFY_OK; it is
    # the only memory notifier of the era (no injected one here).
    notes = [e for e in got if e.kind == E.EVENT_KIND_MEMORY_NOTIFY]
    assert [(e.memory_event, e.notifier, e.notifier_priority, e.errnum) for e in notes] == [
        (H.MEM_GOING_OFFLINE, "ksm", 100, 0), (H.MEM_OFFLINE, "ksm", 100, 0)]
    # SEMANTICS SC-8 / MIG-4..MIG-5: the one page in use in the block is the KSM page (A's
    # original page was freed by the merge, SEMANTICS SC-1); hot-remove migrates it
    # with offlining=1, so it moves (result 0) although it is PageKsm.
    [mig] = [e for e in got if e.kind == E.EVENT_KIND_MIGRATE]
    assert mig.migrate_reason == E.MIGRATE_REASON_MEMORY_OFFLINE
    assert mig.ksm and mig.errnum == 0 and mig.pfn == kpfn
    # SEMANTICS HP-16 / SC-8: MEM_OFFLINE finds no node in range: no PRUNE event
    # (the kinds above); kpfn followed the page out of the block (MIG-4).
    [node] = m.ksm.stable_nodes()
    assert node.kpfn != kpfn and m.page(node.kpfn).block != block
    assert a.translate(va, 1)[0].pfn == b.translate(vb, 1)[0].pfn == node.kpfn
    # SEMANTICS HP-10: the offline returns 0; its duration is the report's.
    res = got[-1]
    assert res.errnum == 0 and res.duration_ns == rep.emulated_ns
    # Every event of the machine, numbered consecutively (nothing filtered).
    seqs = [e.sequence for e in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(got)))


def test_event_stream_offline_filters_by_kind(events, new_machine):
    """Kind filter on the hot-remove kinds, and SEMANTICS SC-10 (a): an unmovable
    pageblock fails the offline with EBUSY at isolation, before any memory
    notifier and before any migration."""
    E = events_pb2
    m = new_machine()
    _, _, _, _, _, block = _merged_pair_on_node_1(m)
    kinds = [E.EVENT_KIND_MIGRATE, E.EVENT_KIND_MEMORY_NOTIFY, E.EVENT_KIND_OFFLINE_RESULT]
    call = _watch(events, m, kinds=kinds)
    assert m.block(block).kernel_pages(1, unmovable=True).pages == 1
    rep = m.block(block).offline()
    assert not rep.ok
    # An empty block of node 1: free pages need no work (SEMANTICS HP-12), so no
    # migration; both notifier calls (HP-8, HP-10); the phases are filtered out.
    other = next(b.proto.block for b in m.blocks()
                 if b.proto.node == 1 and b.proto.block != block)
    assert m.block(other).offline().ok
    got = [next(call) for _ in range(1 + 2 + 1)]
    call.cancel()
    EBUSY = 16
    # SEMANTICS SC-10 (a) / HP-7: no notifier event, no migration; EBUSY.
    assert (got[0].kind, got[0].block, got[0].errnum) == (E.EVENT_KIND_OFFLINE_RESULT, block, EBUSY)
    assert [e.kind for e in got[1:]] == [E.EVENT_KIND_MEMORY_NOTIFY, E.EVENT_KIND_MEMORY_NOTIFY,
                                         E.EVENT_KIND_OFFLINE_RESULT]
    assert all(e.block == other for e in got[1:])
    assert got[3].errnum == 0


def test_slow_reader_loses_events_and_is_told(events, mclient, new_machine):
    # Big enough that a few merge/unmerge rounds overflow both the 16-event
    # buffer and whatever HTTP/2 buffers lie between the server and us.
    m = new_machine(pages_per_block=1024)
    pages = 1024
    _proc_with_pages(m, pages, 0x42)
    _proc_with_pages(m, pages, 0x42)
    marker = m.create_process()
    call = _watch(events, m)
    # Read nothing while the machine works. SEMANTICS SC-2: 2*pages identical pages
    # merge into one node within 2 passes; run=2 unmerges them (SEMANTICS SC-14).
    for _ in range(2):
        t0 = time.monotonic()
        resp = _passes(m, 2)
        assert (resp.ksm.pages_shared, resp.ksm.pages_sharing) == (1, 2 * pages - 1)
        assert m.ksm.set(run=2).ok
        assert m.ksm.set(run=0).ok
        # The stream is blocked, the machine is not: the calls return.
        assert time.monotonic() - t0 < WAIT_S

    # Now read everything, in a thread, until the stream has been quiet.
    import queue
    got = queue.Queue()

    def reader():
        try:
            for e in call:
                got.put(e)
        except grpc.RpcError:
            pass
        got.put(None)

    threading.Thread(target=reader, daemon=True).start()
    seen = []
    while True:
        try:
            e = got.get(timeout=1.5)
        except queue.Empty:
            break
        assert e is not None, "stream ended early"
        seen.append(e)
    # The reader has caught up: an event now finds room in the buffer.
    marker.exit()
    e = got.get(timeout=WAIT_S)
    assert e is not None
    seen.append(e)
    call.cancel()
    assert seen[-1].kind == events_pb2.EVENT_KIND_PROCESS_EXIT and seen[-1].pid == marker.pid

    # Every event of the machine since the watch began (numbers 1..marker) is
    # delivered or counted in a DROPPED event at the place of the loss.
    dropped, pending, expected = 0, 0, 1
    for e in seen:
        if e.kind == events_pb2.EVENT_KIND_DROPPED:
            assert e.dropped > 0 and e.sequence == 0
            dropped += e.dropped
            pending += e.dropped
            continue
        assert e.sequence == expected + pending, (e.sequence, expected, pending)
        expected, pending = e.sequence + 1, 0
    assert dropped > 0, "no loss reported (%d events delivered)" % len(seen)
    # The first EVENT_BUFFER events were queued before any loss.
    assert [e.sequence for e in seen[:EVENT_BUFFER]] == list(range(1, EVENT_BUFFER + 1))


def test_stream_limit_and_release(events, new_machine):
    m = new_machine()
    calls = [_watch(events, m) for _ in range(MAX_STREAMS)]
    with pytest.raises(grpc.RpcError) as e:
        next(_watch_nowait(events, m))
    err = MemnodeError.from_rpc_error(e.value)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason == "STREAM_LIMIT"
    for c in calls:
        c.cancel()
    # Slots come back once the server notices the cancellations.
    deadline = time.monotonic() + WAIT_S
    while True:
        c = _watch_nowait(events, m)
        c.initial_metadata()  # headers of a stream in place, or its error
        ok = not c.done()
        c.cancel()
        if ok:
            break
        assert time.monotonic() < deadline, "stream slots were not released"
        time.sleep(0.1)


def _watch_nowait(events, machine):
    return events.WatchEvents(events_pb2.WatchEventsRequest(name=machine.name), timeout=WAIT_S)


def test_stream_ends_when_machine_is_deleted(events, new_machine):
    m = new_machine()
    call = _watch(events, m)
    m.delete()
    with pytest.raises(grpc.RpcError) as e:
        for _ in call:
            pass
    err = MemnodeError.from_rpc_error(e.value)
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "MACHINE_NOT_FOUND")


def test_watch_errors(events):
    cases = [
        (events_pb2.WatchEventsRequest(name="nope"), grpc.StatusCode.INVALID_ARGUMENT),
        (events_pb2.WatchEventsRequest(name="machines/absent"), grpc.StatusCode.NOT_FOUND),
        (events_pb2.WatchEventsRequest(name="machines/default", kinds=[0]),
         grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for req, code in cases:
        with pytest.raises(grpc.RpcError) as e:
            next(events.WatchEvents(req, timeout=WAIT_S))
        assert e.value.code() == code, req
