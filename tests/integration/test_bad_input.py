"""The bad-input matrix: every RPC of every memnode.v1 service (enumerated from
the generated descriptors, so a new RPC is included automatically and must
get a row in BASE below) gets missing, malformed and unknown names,
out-of-range numbers, oversized payloads and contradictory fields. Each must
fail with the canonical code and the ErrorInfo reason, and leave the target
machine's state digest unchanged. Then every request type is fuzzed with
random bytes (fixed seed, bounded count): the server must stay up and answer
with proper statuses. Emulated syscall outcomes (errnum fields inside OK
responses) are not errors and are not what this file tests."""

from __future__ import annotations

import random
import warnings

import grpc
import pytest

from memnoded_proc import Memnoded, all_methods, error_info, invoke

MAX_REQUEST_BYTES = 1 << 16
MAX_REQUEST_PAGES = 1024
MAX_KSM_VISITS = 100000
MAX_PROCESSES = 8
PAGE = 4096

M = "machines/bad"
K = M + "/ksm"
B = M + "/memoryBlocks/0"
GHOST_M = "machines/no-such-machine"

C = grpc.StatusCode


@pytest.fixture(scope="module")
def server():
    s = Memnoded(["--listen=127.0.0.1:0", "--metrics_address=", "--default_machine=false",
                  "--max_request_bytes=%d" % MAX_REQUEST_BYTES,
                  "--max_request_pages=%d" % MAX_REQUEST_PAGES,
                  "--max_ksm_visits=%d" % MAX_KSM_VISITS,
                  "--max_processes=%d" % MAX_PROCESSES, "--max_machines=4"])
    yield s
    alive = s.alive()
    err = s.stderr()
    rc = s.stop()
    assert alive, "memnoded died during the tests (rc %s)\n%s" % (rc, err)


METHODS = {path.split(".", 2)[2]: (path, m, req) for path, m, req, _ in all_methods()}


def call(channel, short, **fields):
    path, m, req = METHODS[short]
    return invoke(channel, path, m, req(**fields).SerializeToString(), timeout=30)


@pytest.fixture(scope="module")
def env(server):
    from memnode.v1 import common_pb2, machine_pb2, process_pb2
    ch = grpc.insecure_channel(server.address)
    call(ch, "MachineService/CreateMachine", machine_id="bad", machine=machine_pb2.Machine(
        topology=machine_pb2.Topology(nodes=2, blocks_per_node=4, pages_per_block=64),
        clock_mode=common_pb2.CLOCK_MODE_MANUAL))
    p = process_pb2.Process.FromString(call(ch, "ProcessService/CreateProcess", parent=M))
    mm = process_pb2.MmapResponse.FromString(
        call(ch, "ProcessService/Mmap", name=p.name, length=8 * PAGE, prot=3))
    r = process_pb2.MemoryAccessResult.FromString(call(
        ch, "ProcessService/FillMemory", name=p.name, address=mm.address, length=8 * PAGE,
        random_seed=11))
    assert r.errnum == 0
    yield ch, p.name, mm.address
    ch.close()


def digest(ch):
    from memnode.v1 import machine_pb2
    r = machine_pb2.CheckMachineResponse.FromString(call(ch, "MachineService/CheckMachine", name=M))
    assert r.ok, list(r.violations)
    return r.state_digest


# Per method: the resource-name field, its kind, and a request that is valid
# apart from that name (P and ADDR stand for the test process and its mapping).
P, ADDR = object(), object()
BASE = {
    "MachineService/CreateMachine": ("machine_id", "id", {}),
    "MachineService/GetMachine": ("name", "machine", {}),
    "MachineService/ListMachines": (None, None, {}),
    "MachineService/DeleteMachine": ("name", "machine", {}),
    "MachineService/CheckMachine": ("name", "machine", {}),
    "MachineService/SaveMachineSnapshot": ("name", "machine-snapshot", {}),
    "MachineService/LoadMachineSnapshot": ("machine_id", "snapshot", {"file": "x.mnsnap"}),
    "MachineService/GetPageFrame": ("machine", "machine", {"pfn": 0}),
    "MachineService/ListPageFrames": ("machine", "machine", {"count": 1}),
    "ProcessService/CreateProcess": ("parent", "machine", {}),
    "ProcessService/GetProcess": ("name", "process", {}),
    "ProcessService/ListProcesses": ("parent", "machine", {}),
    "ProcessService/ForkProcess": ("name", "process", {}),
    "ProcessService/ExitProcess": ("name", "process", {}),
    "ProcessService/Mmap": ("name", "process", {"length": PAGE, "prot": 3}),
    "ProcessService/Munmap": ("name", "process", {"address": ADDR, "length": PAGE}),
    "ProcessService/Mprotect": ("name", "process", {"address": ADDR, "length": PAGE, "prot": 1}),
    "ProcessService/Madvise": ("name", "process", {"address": ADDR, "length": PAGE, "advice": 4}),
    "ProcessService/WriteMemory": ("name", "process", {"address": ADDR, "data": b"x"}),
    "ProcessService/FillMemory": ("name", "process", {"address": ADDR, "length": PAGE,
                                                      "byte_value": 1}),
    "ProcessService/ReadMemory": ("name", "process", {"address": ADDR, "length": 1}),
    "ProcessService/DigestMemory": ("name", "process", {"address": ADDR, "length": 1}),
    "ProcessService/TouchMemory": ("name", "process", {"address": ADDR, "length": 1}),
    "ProcessService/PinPages": ("name", "process", {"address": ADDR, "length": PAGE}),
    "ProcessService/UnpinPages": ("name", "process", {"address": ADDR, "length": PAGE}),
    "ProcessService/TranslateAddresses": ("name", "process", {"address": ADDR, "pages": 1}),
    "KsmService/GetKsm": ("name", "ksm", {}),
    "KsmService/UpdateKsm": ("name", "ksm", {"run": 1}),
    "KsmService/WriteKsmSysfs": ("name", "ksm", {"file": "run", "value": "1"}),
    "KsmService/StepKsm": ("name", "ksm", {"visits": 1}),
    "KsmService/ListStableNodes": ("parent", "ksm", {}),
    "KsmService/ListUnstableItems": ("parent", "ksm", {}),
    "KsmService/ListRmapItems": ("process", "process", {}),
    "NumaService/SetMempolicy": ("name", "process", {"mode": 2, "nodes": 1}),
    "NumaService/GetMempolicy": ("name", "process", {}),
    "NumaService/Mbind": ("name", "process", {"address": ADDR, "length": PAGE, "mode": 2,
                                              "nodes": 1}),
    "NumaService/MigratePages": ("caller", "process", {"pid": 0, "old_nodes": 1,
                                                       "new_nodes": 2}),
    "NumaService/MovePages": ("caller", "process", {"pid": 0, "addresses": [ADDR],
                                                    "nodes": [1]}),
    "MemoryBlockService/ListMemoryBlocks": ("parent", "machine", {}),
    "MemoryBlockService/GetMemoryBlock": ("name", "block", {}),
    "MemoryBlockService/OfflineMemoryBlock": ("name", "block", {}),
    "MemoryBlockService/ResumeOffline": ("name", "block", {}),
    "MemoryBlockService/CancelOffline": ("name", "block", {}),
    "MemoryBlockService/OnlineMemoryBlock": ("name", "block", {}),
    "MemoryBlockService/AddMemoryBlock": ("parent", "machine", {"node": 0}),
    "MemoryBlockService/RemoveMemoryBlock": ("name", "block", {}),
    "MemoryBlockService/AllocateKernelPages": ("name", "block", {"count": 1}),
    "MemoryBlockService/FreeKernelPages": ("name", "block", {"count": 1}),
    "MemoryBlockService/InjectNotifierFailure": ("parent", "machine", {"event": 4, "errnum": 16,
                                                                       "count": 1}),
    "MemoryBlockService/ClearNotifierFailures": ("parent", "machine", {}),
    "EventService/WatchEvents": ("name", "machine", {}),
}

BAD_NAME = ("INVALID_ARGUMENT", "INVALID_NAME")
MACHINE_NF = ("NOT_FOUND", "MACHINE_NOT_FOUND")


def name_cases(kind, pname):
    """(value, (code, reason)) for a name field of this kind."""
    long = "machines/" + "a" * 300
    common = [("", BAD_NAME), ("machines", BAD_NAME), ("machines/", BAD_NAME),
              ("machines/Bad", BAD_NAME), ("machine/bad", BAD_NAME), (long, BAD_NAME),
              ("machines/bad\x00", BAD_NAME), ("machines/bad/../bad", BAD_NAME),
              ("machines/b%2fd", BAD_NAME)]
    if kind == "machine":
        return common + [(M + "/extra", BAD_NAME), (GHOST_M, MACHINE_NF)]
    if kind == "machine-snapshot":  # the missing --state_dir is reported before the lookup
        return common + [(M + "/extra", BAD_NAME),
                         (GHOST_M, ("FAILED_PRECONDITION", "NO_STATE_DIR"))]
    if kind == "process":
        return common + [(M, BAD_NAME), (M + "/processes/abc", BAD_NAME),
                         (M + "/processes/0", BAD_NAME), (M + "/processes/-1", BAD_NAME),
                         (M + "/processes/01", BAD_NAME), (M + "/processes/99999999999", BAD_NAME),
                         (M + "/processes/1/x", BAD_NAME), (M + "/procs/1", BAD_NAME),
                         (GHOST_M + "/processes/1", MACHINE_NF),
                         (M + "/processes/4242", ("NOT_FOUND", "PROCESS_NOT_FOUND"))]
    if kind == "ksm":
        return common + [(M, BAD_NAME), (M + "/ksm/x", BAD_NAME), (M + "/KSM", BAD_NAME),
                         (GHOST_M + "/ksm", MACHINE_NF)]
    if kind == "block":
        return common + [(M, BAD_NAME), (M + "/memoryBlocks/x", BAD_NAME),
                         (M + "/memoryBlocks/-1", BAD_NAME), (M + "/memoryBlocks/", BAD_NAME),
                         (M + "/memoryBlocks/4294967296", BAD_NAME),
                         (GHOST_M + "/memoryBlocks/0", MACHINE_NF),
                         (M + "/memoryBlocks/999", ("NOT_FOUND", "BLOCK_NOT_FOUND"))]
    if kind == "id":
        return [("", BAD_NAME), ("Bad", BAD_NAME), ("1abc", BAD_NAME), ("a" * 64, BAD_NAME),
                ("a_b", BAD_NAME), ("bad", ("ALREADY_EXISTS", "MACHINE_EXISTS"))]
    if kind == "snapshot":  # every snapshot call fails first on the missing --state_dir
        return [("", ("FAILED_PRECONDITION", "NO_STATE_DIR")),
                ("Bad", ("FAILED_PRECONDITION", "NO_STATE_DIR"))]
    raise AssertionError(kind)


def fill(fields, pname, addr):
    out = {}
    for k, v in fields.items():
        if v is ADDR:
            v = addr
        elif isinstance(v, list):
            v = [addr if x is ADDR else x for x in v]
        out[k] = v
    return out


def expect(ch, short, fields, code, reason):
    """Calls and checks the status and ErrorInfo; returns the error."""
    with pytest.raises(grpc.RpcError) as info:
        call(ch, short, **fields)
    err = info.value
    got = (err.code().name, (error_info(err) or (None,))[0])
    assert got == (code, reason), "%s(%r): got %s %r, want %s %s" % (
        short, fields, got[0], err.details(), code, reason)
    assert error_info(err)[1] == "memnode.dev"
    return err


def test_every_method_has_a_row():
    missing = sorted(set(METHODS) - set(BASE))
    assert not missing, "add these RPCs to BASE in test_bad_input.py: %s" % missing
    assert len(METHODS) >= 51


# Every RPC that names a resource; ListMachines names none and is the one
# exception (test_every_method_has_a_row keeps the table complete).
NAMED = sorted(m for m in METHODS if BASE.get(m, (None,))[0] is not None)


def test_only_list_machines_names_nothing():
    assert sorted(set(METHODS) - set(NAMED)) == ["MachineService/ListMachines"]


@pytest.mark.parametrize("short", NAMED)
def test_bad_names(env, short):
    ch, pname, addr = env
    field, kind, base = BASE[short]
    before = digest(ch)
    for value, (code, reason) in name_cases(kind, pname):
        fields = fill(base, pname, addr)
        fields[field] = value
        expect(ch, short, fields, code, reason)
        assert digest(ch) == before, (short, value)


# (method, fields, code, reason): out-of-range numbers, contradictory fields,
# oversized requests. "P" in a field value is the test process's name.
SPECIFIC = [
    ("MachineService/GetPageFrame", {"machine": M, "pfn": 512}, "OUT_OF_RANGE", "PFN_OUT_OF_RANGE"),
    ("MachineService/GetPageFrame", {"machine": M, "pfn": 2**64 - 1}, "OUT_OF_RANGE",
     "PFN_OUT_OF_RANGE"),
    ("MachineService/ListPageFrames", {"machine": M, "count": 0}, "INVALID_ARGUMENT",
     "INVALID_FIELD"),
    ("MachineService/ListPageFrames", {"machine": M, "count": MAX_REQUEST_PAGES + 1},
     "RESOURCE_EXHAUSTED", "TOO_MANY_PAGES"),
    ("MachineService/ListPageFrames", {"machine": M, "count": 2**64 - 1}, "RESOURCE_EXHAUSTED",
     "TOO_MANY_PAGES"),
    ("MachineService/ListPageFrames", {"machine": M, "count": 1, "start_pfn": 2**63},
     "OUT_OF_RANGE", "PFN_OUT_OF_RANGE"),
    ("MachineService/ListPageFrames", {"machine": M, "count": 1, "page_size": -1},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("MachineService/ListPageFrames", {"machine": M, "count": 1, "page_token": "garbage"},
     "INVALID_ARGUMENT", "INVALID_PAGE_TOKEN"),
    ("MachineService/ListMachines", {"page_token": "o99999"}, "INVALID_ARGUMENT",
     "INVALID_PAGE_TOKEN"),
    ("MachineService/ListMachines", {"page_size": -5}, "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("MachineService/CreateMachine", {"machine_id": "new-one", "machine": {"topology": {
        "nodes": 65}}}, "INVALID_ARGUMENT", "INVALID_TOPOLOGY"),
    ("MachineService/CreateMachine", {"machine_id": "new-one", "machine": {"topology": {
        "pages_per_block": 100}}}, "INVALID_ARGUMENT", "INVALID_TOPOLOGY"),
    ("MachineService/CreateMachine", {"machine_id": "new-one", "machine": {"clock_mode": 77}},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("ProcessService/ListProcesses", {"parent": M, "page_token": "o-1"}, "INVALID_ARGUMENT",
     "INVALID_PAGE_TOKEN"),
    ("ProcessService/Madvise", {"name": "P", "address": "A", "length": PAGE, "advice": 0},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("ProcessService/Madvise", {"name": "P", "address": "A", "length": PAGE, "advice": 99},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("ProcessService/WriteMemory", {"name": "P", "address": "A",
                                    "data": b"\x01" * (MAX_REQUEST_BYTES + 1)},
     "RESOURCE_EXHAUSTED", "REQUEST_TOO_LARGE"),
    ("ProcessService/ReadMemory", {"name": "P", "address": "A", "length": MAX_REQUEST_BYTES + 1},
     "RESOURCE_EXHAUSTED", "REQUEST_TOO_LARGE"),
    ("ProcessService/ReadMemory", {"name": "P", "address": "A", "length": 2**64 - 1},
     "RESOURCE_EXHAUSTED", "REQUEST_TOO_LARGE"),
    ("ProcessService/FillMemory", {"name": "P", "address": "A", "length": PAGE},
     "INVALID_ARGUMENT", "INVALID_FIELD"),  # no pattern
    ("ProcessService/FillMemory", {"name": "P", "address": "A", "length": PAGE,
                                   "byte_value": 256}, "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("ProcessService/FillMemory", {"name": "P", "address": "A", "length": 512 * PAGE + 1,
                                   "byte_value": 1}, "RESOURCE_EXHAUSTED", "RANGE_TOO_LARGE"),
    ("ProcessService/FillMemory", {"name": "P", "address": "A", "length": 2**64 - 1,
                                   "random_seed": 1}, "RESOURCE_EXHAUSTED", "RANGE_TOO_LARGE"),
    ("ProcessService/TouchMemory", {"name": "P", "address": "A", "length": 2**63},
     "RESOURCE_EXHAUSTED", "RANGE_TOO_LARGE"),
    ("ProcessService/DigestMemory", {"name": "P", "address": "A", "length": 2**63},
     "RESOURCE_EXHAUSTED", "RANGE_TOO_LARGE"),
    ("ProcessService/PinPages", {"name": "P", "address": "A", "length": 2**40},
     "RESOURCE_EXHAUSTED", "RANGE_TOO_LARGE"),
    ("ProcessService/TranslateAddresses", {"name": "P", "address": "A", "pages": 0},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("ProcessService/TranslateAddresses", {"name": "P", "address": "A",
                                           "pages": MAX_REQUEST_PAGES + 1},
     "RESOURCE_EXHAUSTED", "TOO_MANY_PAGES"),
    ("ProcessService/CreateProcess", {"parent": M, "process": {"home_node": 7}},
     "OUT_OF_RANGE", "NODE_OUT_OF_RANGE"),
    ("KsmService/StepKsm", {"name": K}, "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("KsmService/StepKsm", {"name": K, "visits": MAX_KSM_VISITS + 1}, "RESOURCE_EXHAUSTED",
     "VISITS_LIMIT"),
    ("KsmService/WriteKsmSysfs", {"name": K, "file": "run", "value": "1" * 5000},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("KsmService/WriteKsmSysfs", {"name": K, "file": "../../etc/passwd", "value": "1"},
     "INVALID_ARGUMENT", "UNKNOWN_SYSFS_FILE"),
    ("KsmService/ListStableNodes", {"parent": K, "page_size": -1}, "INVALID_ARGUMENT",
     "INVALID_FIELD"),
    ("NumaService/SetMempolicy", {"name": "P", "mode": 9}, "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("NumaService/Mbind", {"name": "P", "address": "A", "length": PAGE, "mode": -1},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("NumaService/MigratePages", {"caller": "P", "pid": -1}, "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("NumaService/MovePages", {"caller": "P", "pid": -3, "addresses": ["A"]},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    # Contradictory: nodes must be empty (query) or as long as addresses.
    ("NumaService/MovePages", {"caller": "P", "addresses": ["A", "A"], "nodes": [0]},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("NumaService/MovePages", {"caller": "P", "addresses": [], "nodes": [0]},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("NumaService/MovePages", {"caller": "P", "addresses": [0] * (MAX_REQUEST_PAGES + 1)},
     "RESOURCE_EXHAUSTED", "TOO_MANY_PAGES"),
    ("MemoryBlockService/OfflineMemoryBlock", {"name": B, "pause_after": 42}, "INVALID_ARGUMENT",
     "INVALID_FIELD"),
    ("MemoryBlockService/ResumeOffline", {"name": B, "pause_after": -1}, "INVALID_ARGUMENT",
     "INVALID_FIELD"),
    ("MemoryBlockService/AllocateKernelPages", {"name": B, "count": 0}, "INVALID_ARGUMENT",
     "INVALID_FIELD"),
    ("MemoryBlockService/AddMemoryBlock", {"parent": M, "node": 2}, "OUT_OF_RANGE",
     "NODE_OUT_OF_RANGE"),
    ("MemoryBlockService/AddMemoryBlock", {"parent": M, "node": 2**32 - 1}, "OUT_OF_RANGE",
     "NODE_OUT_OF_RANGE"),
    ("MemoryBlockService/InjectNotifierFailure", {"parent": M, "event": 0, "errnum": 16},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("MemoryBlockService/InjectNotifierFailure", {"parent": M, "event": 4, "errnum": 0},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("MemoryBlockService/InjectNotifierFailure", {"parent": M, "event": 4, "errnum": 9999},
     "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("MemoryBlockService/ListMemoryBlocks", {"parent": M, "page_token": "x"}, "INVALID_ARGUMENT",
     "INVALID_PAGE_TOKEN"),
    ("EventService/WatchEvents", {"name": M, "kinds": [0]}, "INVALID_ARGUMENT", "INVALID_FIELD"),
    ("EventService/WatchEvents", {"name": M, "kinds": [1, 63]}, "INVALID_ARGUMENT",
     "INVALID_FIELD"),
]


def _build(short, fields, pname, addr):
    from google.protobuf import json_format  # noqa: F401  (nested dicts below)
    out = {}
    _, _, req = METHODS[short]
    for k, v in fields.items():
        if v == "P":
            v = pname
        elif v == "A":
            v = addr
        elif isinstance(v, list):
            v = [addr if x == "A" else x for x in v]
        out[k] = v
    msg = req()
    for k, v in out.items():
        if isinstance(v, dict):
            _merge(getattr(msg, k), v)
        elif isinstance(v, list):
            getattr(msg, k).extend(v)
        else:
            setattr(msg, k, v)
    return msg


def _merge(msg, d):
    for k, v in d.items():
        if isinstance(v, dict):
            _merge(getattr(msg, k), v)
        else:
            setattr(msg, k, v)


@pytest.mark.parametrize("case", SPECIFIC, ids=lambda c: "%s-%s" % (c[0].split("/")[1], c[3]))
def test_specific_bad_values(env, case):
    ch, pname, addr = env
    short, fields, code, reason = case
    before = digest(ch)
    msg = _build(short, fields, pname, addr)
    path, m, _ = METHODS[short]
    with pytest.raises(grpc.RpcError) as info:
        invoke(ch, path, m, msg.SerializeToString(), timeout=30)
    err = info.value
    got = (err.code().name, (error_info(err) or (None,))[0])
    assert got == (code, reason), "%s: got %s %r" % (short, got, err.details())
    assert digest(ch) == before


def test_process_limit(env):
    ch, pname, _ = env
    from memnode.v1 import process_pb2
    made = []
    try:
        for _ in range(MAX_PROCESSES + 2):
            try:
                made.append(process_pb2.Process.FromString(
                    call(ch, "ProcessService/CreateProcess", parent=M)).name)
            except grpc.RpcError as e:
                assert e.code() == C.RESOURCE_EXHAUSTED and error_info(e)[0] == "PROCESS_LIMIT"
                break
        else:
            pytest.fail("no PROCESS_LIMIT after %d processes" % (MAX_PROCESSES + 2))
        before = digest(ch)
        expect(ch, "ProcessService/ForkProcess", {"name": pname}, "RESOURCE_EXHAUSTED",
               "PROCESS_LIMIT")
        assert digest(ch) == before
    finally:
        for n in made:
            call(ch, "ProcessService/ExitProcess", name=n)


def test_message_above_grpc_receive_limit(server, env):
    """A message larger than the gRPC receive limit is refused by gRPC itself
    (RESOURCE_EXHAUSTED, no ErrorInfo: the handler never sees it)."""
    ch, pname, addr = env
    before = digest(ch)
    with pytest.raises(grpc.RpcError) as info:
        call(ch, "ProcessService/WriteMemory", name=pname, address=addr,
             data=b"\x02" * (MAX_REQUEST_BYTES + (2 << 20)))
    assert info.value.code() == C.RESOURCE_EXHAUSTED
    assert digest(ch) == before


def test_machine_and_memory_limits(env):
    ch, _, _ = env
    from memnode.v1 import machine_pb2
    # 2^42 bytes > --max_machine_bytes (default 1 TiB).
    before = digest(ch)
    expect(ch, "MachineService/CreateMachine",
           {"machine_id": "huge", "machine": machine_pb2.Machine(topology=machine_pb2.Topology(
               nodes=64, blocks_per_node=4096, pages_per_block=4194304))},
           "RESOURCE_EXHAUSTED", "MEMORY_LIMIT")
    made = []
    try:
        for i in range(5):
            try:
                call(ch, "MachineService/CreateMachine", machine_id="lim-%d" % i,
                     machine=machine_pb2.Machine(topology=machine_pb2.Topology(
                         nodes=1, blocks_per_node=1, pages_per_block=64)))
                made.append("machines/lim-%d" % i)
            except grpc.RpcError as e:
                assert (e.code(), error_info(e)[0]) == (C.RESOURCE_EXHAUSTED, "MACHINE_LIMIT")
                break
        else:
            pytest.fail("no MACHINE_LIMIT with --max_machines=4")
    finally:
        for n in made:
            call(ch, "MachineService/DeleteMachine", name=n)
    assert digest(ch) == before


# Codes a fuzzed request may legitimately get.
FUZZ_OK_CODES = {C.INVALID_ARGUMENT, C.NOT_FOUND, C.OUT_OF_RANGE, C.RESOURCE_EXHAUSTED,
                 C.FAILED_PRECONDITION, C.ALREADY_EXISTS}


@pytest.mark.parametrize("short", sorted(METHODS))
def test_fuzz_random_bytes(server, env, short):
    ch, _, _ = env
    path, m, req = METHODS[short]
    rng = random.Random("memnode-fuzz-" + short)
    before = digest(ch)
    for i in range(40):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        parsed = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                req.FromString(data)
        except Exception:  # noqa: BLE001 - any decode error
            parsed = False
        try:
            invoke(ch, path, m, data, timeout=10)
        except grpc.RpcError as e:
            info = error_info(e)
            if e.code() == C.INTERNAL and info is None:
                # The server's protobuf parser refused the bytes (gRPC's own
                # status, before any handler; the C++ parser also refuses
                # strings that are not UTF-8, which Python's accepts).
                continue
            assert parsed or e.code() in FUZZ_OK_CODES, (short, data, e)
            assert e.code() in FUZZ_OK_CODES, (short, data, e.code(), e.details())
            assert info is not None and info[1] == "memnode.dev" and info[0], (short, data)
    assert server.alive()
    # Random names never name machines/bad: its state is untouched.
    assert digest(ch) == before
    assert invoke(ch, "/grpc.health.v1.Health/Check", type("U", (), {"server_streaming": False}),
                  b"", timeout=10) == b"\x08\x01"


def test_step_ksm_max_visits_is_capped(env):
    """max_visits above --max_ksm_visits is lowered to it, not refused."""
    ch, _, _ = env
    from memnode.v1 import ksm_pb2
    r = ksm_pb2.StepKsmResponse.FromString(
        call(ch, "KsmService/StepKsm", name=K, full_scans=1, max_visits=2**64 - 1))
    assert r.visits <= MAX_KSM_VISITS
