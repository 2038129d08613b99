"""Foundation flow against the real memnoded: a 1 GiB private mapping, fills,
digests recomputed in Python, fork with copy-on-write, translate, exit."""

import hashlib

from memnode import PAGE_SIZE
from memnode import digest as D
from memnode.v1 import common_pb2

GIB = 1 << 30
MIB = 1 << 20
PATTERN = 0x0123456789ABCDEF
SEED = 42


class Contents:
    """Expected bytes of one mapping: a pattern64 fill anchored at `base`
    with byte overlays on top (later overlays win)."""

    def __init__(self, base, length, pattern):
        self.base, self.length, self.pattern = base, length, pattern
        self.overlays = []  # (address, bytes)

    def copy(self):
        c = Contents(self.base, self.length, self.pattern)
        c.overlays = list(self.overlays)
        return c

    def overlay(self, address, data):
        self.overlays.append((address, bytes(data)))

    def bytes_at(self, address, n):
        buf = bytearray(D.pattern_bytes(self.pattern, n, phase=address - self.base))
        for start, data in self.overlays:
            lo, hi = max(start, address), min(start + len(data), address + n)
            if lo < hi:
                buf[lo - address:hi - address] = data[lo - start:hi - start]
        return bytes(buf)

    def digest(self, address, length):
        # Slices that no overlay touches are pure pattern: memoise their hash.
        cache = {}
        outer = hashlib.sha256()
        for a, n in D.page_slices(address, length):
            touched = any(s < a + n and a < s + len(d) for s, d in self.overlays)
            if touched:
                outer.update(hashlib.sha256(self.bytes_at(a, n)).digest())
                continue
            key = ((a - self.base) % 8, n)
            if key not in cache:
                cache[key] = hashlib.sha256(self.bytes_at(a, n)).digest()
            outer.update(cache[key])
        return outer.hexdigest()


def test_foundation_flow(make_machine):
    # 2 nodes x 8 blocks x 32768 pages = 2 GiB of emulated memory.
    m = make_machine(nodes=2, blocks_per_node=8, pages_per_block=32768)
    info = m.get()
    assert info.total_pages == 2 * 8 * 32768
    assert info.clock_mode == common_pb2.CLOCK_MODE_MANUAL

    parent = m.create_process()
    r = parent.mmap(GIB, "rw")
    assert r.ok, r
    base = r.address
    assert base % PAGE_SIZE == 0

    # Fill the whole GiB with a 64-bit pattern anchored at `base`.
    r = parent.fill(base, GIB, pattern64=PATTERN)
    assert r.ok, r
    assert r.bytes_done == GIB

    expected = Contents(base, GIB, PATTERN)
    whole = parent.digest(base, GIB)
    assert whole.ok, whole
    assert whole.digest == expected.digest(base, GIB)
    assert whole.populated_pages == GIB // PAGE_SIZE

    # Unaligned sub-ranges: inside one page, across one boundary, many pages,
    # and ending at the very end of the mapping.
    subranges = [(base + 3, 10), (base + PAGE_SIZE - 1, 2),
                 (base + 12345, 7 * MIB + 77), (base + GIB - 5000, 5000)]
    for addr, n in subranges:
        got = parent.digest(addr, n)
        assert got.ok, (hex(addr), n, got)
        assert got.digest == D.pattern_digest(base, PATTERN, addr, n), (hex(addr), n)

    # 1 MiB of splitmix64 data at an unaligned offset; read it back in chunks.
    rnd_addr = base + 300 * MIB + 123
    r = parent.fill(rnd_addr, MIB, seed=SEED)
    assert r.ok, r
    assert r.bytes_done == MIB
    rnd = D.random_bytes(SEED, MIB)
    expected.overlay(rnd_addr, rnd)
    assert parent.read_bytes(rnd_addr, MIB, chunk=256 << 10) == rnd
    # The bytes just around the random range are still the pattern.
    for edge in (rnd_addr - 16, rnd_addr + MIB - 16):
        around = parent.read(edge, 32)
        assert around.ok, around
        assert around.data == expected.bytes_at(edge, 32)
    parent_digest = expected.digest(base, GIB)
    assert parent.digest(base, GIB).digest == parent_digest

    # fork(2): the child sees exactly the parent's memory.
    child = parent.fork()
    assert child.pid != parent.pid
    assert child.get().parent_pid == parent.pid
    got = child.digest(base, GIB)
    assert got.ok, got
    assert got.digest == parent_digest

    # Private mappings are copy-on-write after fork: before any write, the
    # parent's and the child's ptes point at the same frames (mapcount 2).
    window = base + 96 * PAGE_SIZE
    before_p = parent.translate(window, 8)
    before_c = child.translate(window, 8)
    assert [t.pfn for t in before_p] == [t.pfn for t in before_c]
    assert all(t.present for t in before_p)
    shared_frame = m.page(before_p[4].pfn)
    assert shared_frame.mapcount == 2

    # The child writes into page 100 (index 4 of the window).
    child_write_addr = base + 100 * PAGE_SIZE + 17
    payload = b"the child wrote this"
    r = child.write(child_write_addr, payload)
    assert r.ok, r
    assert r.bytes_done == len(payload)
    child_expected = expected.copy()
    child_expected.overlay(child_write_addr, payload)

    assert parent.digest(base, GIB).digest == parent_digest
    child_digest = child.digest(base, GIB)
    assert child_digest.digest == child_expected.digest(base, GIB)
    assert child_digest.digest != parent_digest
    assert child.read(child_write_addr - 1, len(payload) + 2).data == \
        child_expected.bytes_at(child_write_addr - 1, len(payload) + 2)
    assert parent.read(child_write_addr, len(payload)).data == \
        expected.bytes_at(child_write_addr, len(payload))

    after_p = parent.translate(window, 8)
    after_c = child.translate(window, 8)
    for i in range(8):
        if i == 4:
            # The child got a private copy; the parent kept the original.
            assert after_c[i].pfn != after_p[i].pfn
            assert after_p[i].pfn == before_p[i].pfn
            assert after_c[i].state == common_pb2.PAGE_STATE_ANON
        else:
            assert after_c[i].pfn == after_p[i].pfn == before_p[i].pfn, i
    assert m.page(after_p[4].pfn).mapcount == 1
    assert m.page(after_c[4].pfn).mapcount == 1
    assert m.page(after_p[3].pfn).mapcount == 2

    # exit(2) of the child: only its private copy is freed.
    r = child.exit()
    assert r.pages_freed == 1
    assert m.page(after_p[3].pfn).mapcount == 1
    assert parent.digest(base, GIB).digest == parent_digest

    check = m.check()
    assert check.ok, list(check.violations)
    assert len(check.state_digest) == 16
    assert [p.pid for p in m.processes()] == [parent.pid]
