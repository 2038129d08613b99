"""Bad requests fail with the right gRPC code and ErrorInfo reason and change
nothing; emulated syscall errors come back as values (SEMANTICS CH-21)."""

import grpc
import pytest

from conftest import MAX_REQUEST_BYTES
from memnode import (EACCES, EFAULT, EINVAL, ENOMEM, MemnodeError, PAGE_SIZE)
from memnode.v1 import machine_pb2, process_pb2


def expect_error(code, reason, fn, *args, **kwargs):
    with pytest.raises(MemnodeError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert (err.code, err.reason) == (code, reason), err
    return err


@pytest.fixture
def populated(machine):
    """A machine with one process holding some written memory, so that the
    state digest covers more than an empty machine."""
    p = machine.create_process()
    r = p.mmap(8 * PAGE_SIZE, "rw")
    assert r.ok, r
    assert p.fill(r.address, 8 * PAGE_SIZE, seed=7).ok
    return machine, p, r.address


def test_bad_requests_are_rejected_and_change_nothing(client, populated):
    m, p, addr = populated
    before = m.check()
    assert before.ok, list(before.violations)
    machines_before = [x.name for x in client.list_machines()]

    # Unknown machine.
    expect_error(grpc.StatusCode.NOT_FOUND, "MACHINE_NOT_FOUND",
                 client.machine("no-such-machine").get)
    expect_error(grpc.StatusCode.NOT_FOUND, "MACHINE_NOT_FOUND",
                 client.machine("no-such-machine").create_process)
    expect_error(grpc.StatusCode.NOT_FOUND, "MACHINE_NOT_FOUND",
                 client.machine("no-such-machine").ksm.get)

    # Unknown process of an existing machine.
    ghost = m.process(4242)
    expect_error(grpc.StatusCode.NOT_FOUND, "PROCESS_NOT_FOUND", ghost.get)
    expect_error(grpc.StatusCode.NOT_FOUND, "PROCESS_NOT_FOUND",
                 ghost.write, addr, b"x")
    expect_error(grpc.StatusCode.NOT_FOUND, "PROCESS_NOT_FOUND",
                 ghost.mmap, PAGE_SIZE)

    # Malformed resource names.
    for bad in ["machine/" + m.id, "machines/", "machines/Upper_Case", ""]:
        expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME",
                     client.call, client.machines.GetMachine,
                     machine_pb2.GetMachineRequest(name=bad))
    for bad in [m.name + "/processes/abc", m.name + "/procs/1", m.name + "/processes/"]:
        expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME",
                     client.call, client.processes.GetProcess,
                     process_pb2.GetProcessRequest(name=bad))

    # A pfn beyond the topology (pfns are 0 .. total_pages-1).
    total = m.get().total_pages
    assert total == 2 * 4 * 64
    m.page(total - 1)  # the last pfn exists
    expect_error(grpc.StatusCode.OUT_OF_RANGE, "PFN_OUT_OF_RANGE", m.page, total)
    expect_error(grpc.StatusCode.OUT_OF_RANGE, "PFN_OUT_OF_RANGE", m.page, 1 << 40)

    # A WriteMemory larger than the server's per-request limit (the fixture
    # starts memnoded with --max_request_bytes=MAX_REQUEST_BYTES).
    expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE",
                 p.write, addr, b"\xab" * (MAX_REQUEST_BYTES + 1))

    # Duplicate machine id.
    expect_error(grpc.StatusCode.ALREADY_EXISTS, "MACHINE_EXISTS",
                 client.create_machine, m.id)

    # Invalid topologies (machine.proto Topology: nodes 1..64, blocks 1..65536,
    # pages_per_block a multiple of 64 in 64..2^22). Zero means "default".
    bad_topologies = [
        dict(nodes=65, blocks_per_node=4, pages_per_block=64),
        dict(nodes=2, blocks_per_node=65537, pages_per_block=64),
        dict(nodes=2, blocks_per_node=4, pages_per_block=100),
        dict(nodes=2, blocks_per_node=4, pages_per_block=32),
        dict(nodes=2, blocks_per_node=4, pages_per_block=(1 << 22) + 64),
    ]
    for i, topo in enumerate(bad_topologies):
        bad_id = "bad-topology-%d" % i
        expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TOPOLOGY",
                     client.create_machine, bad_id, **topo)
        expect_error(grpc.StatusCode.NOT_FOUND, "MACHINE_NOT_FOUND",
                     client.machine(bad_id).get)

    # Nothing changed: same machines, same state.
    assert [x.name for x in client.list_machines()] == machines_before
    after = m.check()
    assert after.ok, list(after.violations)
    assert after.state_digest == before.state_digest


def test_memnode_error_carries_error_info_domain_and_message(client):
    err = expect_error(grpc.StatusCode.NOT_FOUND, "MACHINE_NOT_FOUND",
                       client.machine("still-missing").get)
    assert err.message  # a human-readable status message is present
    assert err.domain   # ErrorInfo.domain is set by the server


def test_emulated_errors_are_values(machine):
    m = machine
    p = m.create_process()
    r = p.mmap(4 * PAGE_SIZE, "rw")
    assert r.ok, r
    rw = r.address
    assert p.fill(rw, 4 * PAGE_SIZE, byte=0x5A).ok
    r = p.mmap(2 * PAGE_SIZE, "r")
    assert r.ok, r
    ro = r.address
    state = m.check().state_digest

    # Writes outside any mapping: EFAULT, nothing done (process.proto
    # MemoryAccessResult: "part of the range outside any mapping: nothing done").
    unmapped = rw - 16 * PAGE_SIZE
    assert p.translate(unmapped)[0].mapped is False
    r = p.write(unmapped, b"hello")
    assert (r.errnum, r.ok) == (EFAULT, False)
    assert r.errno_name == "ERRNO_EFAULT"
    assert r.bytes_done == 0
    # A write straddling the start of the mapping (nothing is mapped just
    # below it): EFAULT and the mapped part is untouched.
    assert p.translate(rw - PAGE_SIZE)[0].mapped is False
    r = p.write(rw - 2, b"abcd")
    assert r.errnum == EFAULT
    assert r.bytes_done == 0
    assert p.read(rw, 2).data == b"\x5a\x5a"
    # A write running from the rw mapping into the read-only one right above
    # it (first fit upwards) is refused as a whole: EACCES.
    if ro == rw + 4 * PAGE_SIZE:
        r = p.write(rw + 4 * PAGE_SIZE - 2, b"abcd")
        assert r.errnum == EACCES
        assert r.bytes_done == 0
        assert p.read(rw + 4 * PAGE_SIZE - 2, 2).data == b"\x5a\x5a"
    # Reading outside any mapping is EFAULT too.
    assert p.read(unmapped, 8).errnum == EFAULT

    # Write to a read-only mapping: EACCES, nothing done.
    r = p.write(ro + 10, b"nope")
    assert r.errnum == EACCES
    assert r.bytes_done == 0
    assert p.fill(ro, PAGE_SIZE, byte=1).errnum == EACCES
    assert p.read(ro + 10, 4).data == b"\0\0\0\0"

    # munmap of an unaligned address: EINVAL.
    assert p.munmap(rw + 1, PAGE_SIZE).errnum == EINVAL
    # madvise MERGEABLE on an unaligned start: EINVAL (SEMANTICS MADV-2).
    assert p.madvise(rw + 8, PAGE_SIZE, "mergeable").errnum == EINVAL

    # None of the above changed anything.
    assert m.check().state_digest == state
    vmas = p.get().vmas
    assert [(v.start, v.end) for v in vmas] == sorted(
        [(rw, rw + 4 * PAGE_SIZE), (ro, ro + 2 * PAGE_SIZE)])
    assert not any(v.mergeable for v in vmas)
    assert p.get().ksm_registered is False


def test_madvise_over_a_gap_is_enomem_but_advises_the_mapped_parts(machine):
    p = machine.create_process()
    r = p.mmap(3 * PAGE_SIZE, "rw")
    assert r.ok, r
    a = r.address
    assert p.fill(a, 3 * PAGE_SIZE, byte=0x11).ok
    assert p.munmap(a + PAGE_SIZE, PAGE_SIZE).ok  # leave a one-page gap

    # SEMANTICS MADV-4: the mapped parts are processed, then ENOMEM.
    r = p.madvise(a, 3 * PAGE_SIZE, "mergeable")
    assert r.errnum == ENOMEM, r
    proc = p.get()
    assert [(v.start, v.end, v.mergeable) for v in proc.vmas] == [
        (a, a + PAGE_SIZE, True), (a + 2 * PAGE_SIZE, a + 3 * PAGE_SIZE, True)]
    # SEMANTICS MADV-7: the first MADV_MERGEABLE registers the mm.
    assert proc.ksm_registered is True

    # Zero length: success, nothing done (SEMANTICS MADV-2).
    assert p.madvise(a, 0, "unmergeable").ok
    assert all(v.mergeable for v in p.get().vmas)
