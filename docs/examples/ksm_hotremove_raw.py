#!/usr/bin/python3
"""The docs/API.md worked experiment with the raw generated stubs only
(no wrapper): what any gRPC language does.

    export PYTHONPATH=$BUILD/python          # the generated *_pb2 modules
    /usr/bin/python3 docs/examples/ksm_hotremove_raw.py 127.0.0.1:50051
"""
import sys

import grpc
from google.rpc import error_details_pb2, status_pb2
from memnode.v1 import common_pb2 as cm
from memnode.v1 import hotplug_pb2 as hp, hotplug_pb2_grpc
from memnode.v1 import ksm_pb2 as kp, ksm_pb2_grpc
from memnode.v1 import machine_pb2 as mp, machine_pb2_grpc
from memnode.v1 import process_pb2 as pp, process_pb2_grpc

target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
ch = grpc.insecure_channel(target)
machines = machine_pb2_grpc.MachineServiceStub(ch)
procs = process_pb2_grpc.ProcessServiceStub(ch)
ksm = ksm_pb2_grpc.KsmServiceStub(ch)
blocks = hotplug_pb2_grpc.MemoryBlockServiceStub(ch)


def reason(err: grpc.RpcError) -> str:
    """google.rpc.ErrorInfo.reason from the grpc-status-details-bin trailer."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(value)
            for any_ in st.details:
                info = error_details_pb2.ErrorInfo()
                if any_.Unpack(info):
                    return "%s (domain %s)" % (info.reason, info.domain)
    return ""


def counters(name):
    k = ksm.GetKsm(kp.GetKsmRequest(name=name))
    return ("shared=%d sharing=%d unshared=%d volatile=%d full_scans=%d"
            % (k.pages_shared, k.pages_sharing, k.pages_unshared,
               k.pages_volatile, k.full_scans))


def pfn(proc, addr):
    t = procs.TranslateAddresses(pp.TranslateAddressesRequest(name=proc, address=addr, pages=1))
    return t.pages[0].pfn


m = machines.CreateMachine(mp.CreateMachineRequest(
    machine_id="raw",
    machine=mp.Machine(topology=mp.Topology(nodes=2, blocks_per_node=4, pages_per_block=64),
                       clock_mode=cm.CLOCK_MODE_MANUAL)))
KSM = m.name + "/ksm"
print(m.name, cm.ClockMode.Name(m.clock_mode), m.profile, "total_pages", m.total_pages)

names = []
for _ in range(2):
    p = procs.CreateProcess(pp.CreateProcessRequest(parent=m.name,
                                                    process=pp.Process(home_node=1)))
    r = procs.Mmap(pp.MmapRequest(name=p.name, length=4096, prot=pp.PROT_READ | pp.PROT_WRITE))
    addr = r.address
    procs.FillMemory(pp.FillMemoryRequest(name=p.name, address=addr, length=4096, byte_value=0x42))
    adv = procs.Madvise(pp.MadviseRequest(name=p.name, address=addr, length=4096,
                                          advice=pp.ADVICE_MERGEABLE))
    print(p.name, "addr 0x%x pfn %d madvise %s" % (addr, pfn(p.name, addr), cm.Errno.Name(adv.errnum)))
    names.append(p.name)
A, B = names

for i in (1, 2):
    s = ksm.StepKsm(kp.StepKsmRequest(name=KSM, full_scans=1))
    print("pass %d: visits=%d %s" % (i, s.visits, counters(KSM)))
node = ksm.ListStableNodes(kp.ListStableNodesRequest(parent=KSM)).stable_nodes[0]
print("stable node #%d kpfn=%d mappings=%s" % (node.id, node.kpfn,
      [(mm.pid, hex(mm.address)) for mm in node.mappings]))
print("pfns now: A=%d B=%d" % (pfn(A, addr), pfn(B, addr)))

w = procs.WriteMemory(pp.WriteMemoryRequest(name=A, address=addr, data=b"\x42"))
print("A writes: %s bytes_done=%d, A pfn now %d; %s" % (cm.Errno.Name(w.errnum), w.bytes_done,
      pfn(A, addr), counters(KSM)))
ksm.StepKsm(kp.StepKsmRequest(name=KSM, full_scans=1))
print("after a pass: %s, A pfn %d" % (counters(KSM), pfn(A, addr)))

blk = machines.GetPageFrame(mp.GetPageFrameRequest(machine=m.name, pfn=node.kpfn)).block
rep = blocks.OfflineMemoryBlock(hp.OfflineMemoryBlockRequest(name="%s/memoryBlocks/%d" % (m.name, blk)))
node = ksm.ListStableNodes(kp.ListStableNodesRequest(parent=KSM)).stable_nodes[0]
print("offline block %d: %s ksm_pages_migrated=%d -> kpfn %d; %s" % (
    blk, cm.Errno.Name(rep.errnum), rep.ksm_pages_migrated, node.kpfn, counters(KSM)))

blk = machines.GetPageFrame(mp.GetPageFrameRequest(machine=m.name, pfn=node.kpfn)).block
bname = "%s/memoryBlocks/%d" % (m.name, blk)
rep = blocks.OfflineMemoryBlock(hp.OfflineMemoryBlockRequest(
    name=bname, pause_after=hp.OFFLINE_PHASE_GOING_OFFLINE))
print("offline block %d paused=%s phase=%s" % (blk, rep.paused, hp.OfflinePhase.Name(rep.phase)))
try:
    ksm.StepKsm(kp.StepKsmRequest(name=KSM, visits=1))
except grpc.RpcError as e:
    print("StepKsm:", e.code().name, reason(e))
for p in (A, B):
    procs.Madvise(pp.MadviseRequest(name=p, address=addr, length=4096, advice=pp.ADVICE_DONTNEED))
print("both dropped the page; stale=%s; %s" % (
    ksm.ListStableNodes(kp.ListStableNodesRequest(parent=KSM)).stable_nodes[0].stale, counters(KSM)))
rep = blocks.ResumeOffline(hp.ResumeOfflineRequest(name=bname))
print("resume: %s phase=%s stable_nodes_pruned=%d; %s" % (
    cm.Errno.Name(rep.errnum), hp.OfflinePhase.Name(rep.phase), rep.stable_nodes_pruned,
    counters(KSM)))
machines.DeleteMachine(mp.DeleteMachineRequest(name=m.name))
