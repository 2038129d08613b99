#!/usr/bin/python3
"""Recomputes FillMemory's generators and DigestMemory's range digest on the
client side and compares them with the server (docs/API.md, section 3).

    export PYTHONPATH=$REPO/client/python:$BUILD/python
    /usr/bin/python3 docs/examples/fill_and_digest.py 127.0.0.1:50051
"""
import hashlib
import struct
import sys

from memnode import Client

M64 = (1 << 64) - 1


def splitmix64_bytes(seed: int, length: int) -> bytes:
    """What FillMemory(random_seed=seed) writes from the first byte of the range."""
    out, state = bytearray(), seed & M64
    while len(out) < length:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        out += struct.pack("<Q", z ^ (z >> 31))
    return bytes(out[:length])


def pattern64_bytes(pattern: int, length: int) -> bytes:
    """What FillMemory(pattern64=pattern) writes: byte k = (pattern >> 8*(k%8)) & 0xff."""
    return (struct.pack("<Q", pattern) * (length // 8 + 1))[:length]


def range_digest(address: int, data: bytes) -> str:
    """DigestMemoryResponse.digest of `data` stored at virtual `address`."""
    outer, pos = hashlib.sha256(), 0
    while pos < len(data):
        n = min(4096 - (address + pos) % 4096, len(data) - pos)  # this page's slice
        outer.update(hashlib.sha256(data[pos:pos + n]).digest())  # 32 binary bytes
        pos += n
    return outer.hexdigest()


with Client(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051") as c:
    with c.create_machine("fills", clock="manual") as m:
        p = m.create_process()
        base = p.mmap(4 * 4096).address
        start, length = base + 100, 3 * 4096 + 50        # unaligned on purpose
        cases = [("byte", dict(byte=0x5A), bytes([0x5A]) * length),
                 ("pattern64", dict(pattern64=0x1122334455667788),
                  pattern64_bytes(0x1122334455667788, length)),
                 ("random_seed", dict(seed=42), splitmix64_bytes(42, length))]
        for label, kw, want in cases:
            p.fill(start, length, **kw)
            got = p.read(start, length).data
            d = p.digest(start, length)
            print("%-11s bytes equal: %s  digest equal: %s  first 8 bytes: %s"
                  % (label, got == want, d.digest == range_digest(start, want), want[:8].hex()))
        print("random_seed=42 digest:", p.digest(start, length).digest)
        page = p.read(base, 4096).data
        frame = m.page(p.pfn(base))
        print("PageFrame.content_digest == sha256(page):",
              frame.content_digest == hashlib.sha256(page).hexdigest())
