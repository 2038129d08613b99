"""Snapshots and restart against the real memnoded (issue: reliability).

A machine saved with SaveMachineSnapshot and loaded with LoadMachineSnapshot,
or saved by a graceful shutdown with --state_dir and restored by the next
start, is the same machine: same state digest (CheckMachine), same pfns, same
KSM counters and trees, and it behaves the same afterwards (docs/SEMANTICS.md
SC-1 continues where it stopped). Corrupt and truncated files are refused
with SNAPSHOT_CORRUPT and nothing is loaded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from conftest import BUILD_DIR  # noqa: E402  (sets sys.path for the stubs)
from memnode.v1 import common_pb2, ksm_pb2, ksm_pb2_grpc, machine_pb2, machine_pb2_grpc
from memnode.v1 import process_pb2, process_pb2_grpc

PAGE = 4096


class Server:
    def __init__(self, state_dir: Path):
        self.proc = subprocess.Popen(
            [str(BUILD_DIR / "server" / "memnoded"), "--listen=127.0.0.1:0", "--metrics_address=",
             "--state_dir=%s" % state_dir, "--clock=manual", "--nodes=2", "--blocks_per_node=2",
             "--pages_per_block=64"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.out = []
        deadline = time.monotonic() + 30
        self.address = None
        while time.monotonic() < deadline and self.address is None:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            self.out.append(line)
            m = re.match(r"LISTENING (\S+)", line)
            if m:
                self.address = m.group(1)
        assert self.address, "memnoded did not start: %r" % self.out
        self.channel = grpc.insecure_channel(self.address)
        self.machines = machine_pb2_grpc.MachineServiceStub(self.channel)
        self.procs = process_pb2_grpc.ProcessServiceStub(self.channel)
        self.ksm = ksm_pb2_grpc.KsmServiceStub(self.channel)

    def stop(self) -> str:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0, err.decode()
        return "".join(self.out) + out.decode() + err.decode()


def digest(s: Server, name: str) -> str:
    r = s.machines.CheckMachine(machine_pb2.CheckMachineRequest(name=name), timeout=10)
    assert r.ok, list(r.violations)
    return r.state_digest


def counters(s: Server, name: str):
    k = s.ksm.GetKsm(ksm_pb2.GetKsmRequest(name=name + "/ksm"), timeout=10)
    return (k.pages_shared, k.pages_sharing, k.pages_unshared, k.pages_volatile, k.full_scans)


def setup_10_1(s: Server, name: str):
    """Two processes with one identical page each, advised MERGEABLE."""
    addrs = []
    for _ in range(2):
        p = s.procs.CreateProcess(process_pb2.CreateProcessRequest(parent=name), timeout=10).name
        a = s.procs.Mmap(process_pb2.MmapRequest(name=p, length=PAGE, prot=3), timeout=10).address
        s.procs.WriteMemory(process_pb2.WriteMemoryRequest(name=p, address=a, data=b"same page"), timeout=10)
        r = s.procs.Madvise(process_pb2.MadviseRequest(name=p, address=a, length=PAGE,
                                                       advice=process_pb2.ADVICE_MERGEABLE), timeout=10)
        assert r.errnum == common_pb2.ERRNO_OK
        addrs.append((p, a))
    return addrs


def step(s: Server, name: str, passes: int):
    s.ksm.StepKsm(ksm_pb2.StepKsmRequest(name=name + "/ksm", full_scans=passes), timeout=10)


def pfn(s: Server, p: str, a: int) -> int:
    return s.procs.TranslateAddresses(
        process_pb2.TranslateAddressesRequest(name=p, address=a, pages=1), timeout=10).pages[0].pfn


def test_graceful_restart_restores_machines_bit_for_bit(tmp_path):
    s = Server(tmp_path)
    name = "machines/default"
    (pa, aa), (pb, ab) = setup_10_1(s, name)
    step(s, name, 1)
    # SEMANTICS SC-1: after pass 1 only checksums are stored.
    assert counters(s, name) == (0, 0, 0, 2, 1)
    before = digest(s, name)
    pfn_b = pfn(s, pb, ab)
    log = s.stop()
    assert "machines saved to" in log
    assert (tmp_path / "default.mnsnap").exists()

    s2 = Server(tmp_path)
    try:
        assert any("restored machines/default" in l for l in s2.out)
        assert digest(s2, name) == before
        assert counters(s2, name) == (0, 0, 0, 2, 1)
        # The restored machine continues exactly: pass 2 merges, and the KSM
        # page is B's original frame (MERGE-9).
        step(s2, name, 1)
        assert counters(s2, name) == (1, 1, 0, 0, 2)
        assert pfn(s2, pa, aa) == pfn_b == pfn(s2, pb, ab)
    finally:
        s2.stop()


def test_save_and_load_rpc_and_corrupt_files(tmp_path):
    s = Server(tmp_path)
    try:
        name = "machines/default"
        setup_10_1(s, name)
        step(s, name, 2)
        saved = s.machines.SaveMachineSnapshot(
            machine_pb2.SaveMachineSnapshotRequest(name=name, file="lab.mnsnap"), timeout=10)
        assert saved.bytes > 0 and saved.state_digest == digest(s, name)
        m = s.machines.LoadMachineSnapshot(
            machine_pb2.LoadMachineSnapshotRequest(file="lab.mnsnap", machine_id="copy"), timeout=10)
        assert m.name == "machines/copy"
        assert digest(s, "machines/copy") == saved.state_digest
        assert counters(s, "machines/copy") == counters(s, name) == (1, 1, 0, 0, 2)

        data = (tmp_path / "lab.mnsnap").read_bytes()
        (tmp_path / "cut.mnsnap").write_bytes(data[: len(data) // 2])
        flipped = bytearray(data)
        flipped[len(data) - 10] ^= 0xFF
        (tmp_path / "flip.mnsnap").write_bytes(bytes(flipped))
        before = [x.name for x in s.machines.ListMachines(machine_pb2.ListMachinesRequest(), timeout=10).machines]
        for f in ("cut.mnsnap", "flip.mnsnap"):
            with pytest.raises(grpc.RpcError) as e:
                s.machines.LoadMachineSnapshot(
                    machine_pb2.LoadMachineSnapshotRequest(file=f, machine_id="bad"), timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert b"SNAPSHOT_CORRUPT" in dict(e.value.trailing_metadata())["grpc-status-details-bin"]
        after = [x.name for x in s.machines.ListMachines(machine_pb2.ListMachinesRequest(), timeout=10).machines]
        assert before == after  # nothing loaded
        with pytest.raises(grpc.RpcError) as e:
            s.machines.SaveMachineSnapshot(
                machine_pb2.SaveMachineSnapshotRequest(name=name, file="../escape"), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        s.stop()


def test_corrupt_snapshot_at_start_is_refused_and_reported(tmp_path):
    (tmp_path / "broken.mnsnap").write_bytes(b"MNSNAP\0\0garbage")
    s = Server(tmp_path)
    try:
        names = [x.name for x in s.machines.ListMachines(machine_pb2.ListMachinesRequest(), timeout=10).machines]
        assert names == ["machines/default"]
    finally:
        log = s.stop()
    assert "snapshot refused" in log and "broken.mnsnap" in log
