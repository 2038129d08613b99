"""Client-side reference implementations of memnode's content helpers.

Two things are defined by the API (protos/memnode/v1/process.proto) in a way
that any client can recompute without asking the server:

* the **range digest** of ``DigestMemoryResponse.digest``: SHA-256 over the
  concatenation of the (binary, 32-byte) SHA-256 of every page slice that the
  range touches, where a slice is the part of one 4 KiB page that lies inside
  the range, lowercase hex;
* the **random fill** of ``FillMemoryRequest.random_seed``: the splitmix64
  stream started at the seed, each 64-bit output written little-endian, from
  the first byte of the filled range on.

Both live here in plain Python so that tests can derive expected values
independently of the server.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Callable, Iterator, Tuple

PAGE_SIZE = 4096
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


# --------------------------------------------------------------------------
# splitmix64 and the fill generators
# --------------------------------------------------------------------------

def splitmix64(seed: int) -> Iterator[int]:
    """Yields the splitmix64 outputs for ``seed`` forever.

    The state starts at ``seed``; each step adds the golden-ratio increment
    first, so the first output is derived from ``seed + 0x9E3779B97F4A7C15``.
    """
    state = seed & _MASK64
    while True:
        state = (state + _GOLDEN) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        yield z ^ (z >> 31)


def random_bytes(seed: int, length: int) -> bytes:
    """The first ``length`` bytes that FillMemory(random_seed=seed) writes.

    Byte ``k`` of the filled range is byte ``k % 8`` (little-endian) of the
    ``k // 8``-th splitmix64 output.
    """
    if length <= 0:
        return b""
    words = (length + 7) // 8
    gen = splitmix64(seed)
    out = struct.pack("<%dQ" % words, *(next(gen) for _ in range(words)))
    return out[:length]


def byte_fill(value: int, length: int) -> bytes:
    """Bytes written by FillMemory(byte_value=value) over ``length`` bytes."""
    return bytes([value & 0xFF]) * length


def pattern_bytes(pattern64: int, length: int, phase: int = 0) -> bytes:
    """Bytes of a pattern64 fill.

    ``phase`` is the offset, in bytes, of the first returned byte from the
    start of the filled range (the pattern is anchored at the fill's start
    address: byte k of the range is ``(pattern64 >> 8*(k % 8)) & 0xff``).
    """
    if length <= 0:
        return b""
    unit = struct.pack("<Q", pattern64 & _MASK64)
    start = phase % 8
    reps = (start + length + 7) // 8
    return (unit * reps)[start:start + length]


# --------------------------------------------------------------------------
# the range digest
# --------------------------------------------------------------------------

def page_slices(address: int, length: int) -> Iterator[Tuple[int, int]]:
    """Yields (slice_address, slice_length) for every page the range touches."""
    addr = address
    end = address + length
    while addr < end:
        page_end = (addr // PAGE_SIZE + 1) * PAGE_SIZE
        n = min(page_end, end) - addr
        yield addr, n
        addr += n


def digest_bytes(address: int, data: bytes) -> str:
    """Range digest of ``data`` assumed to be stored at virtual ``address``."""
    outer = hashlib.sha256()
    view = memoryview(data)
    for addr, n in page_slices(address, len(data)):
        off = addr - address
        outer.update(hashlib.sha256(view[off:off + n]).digest())
    return outer.hexdigest()


def digest_from(address: int, length: int,
                content: Callable[[int, int], bytes]) -> str:
    """Range digest where ``content(addr, n)`` returns the n bytes at addr.

    Used for ranges too large to materialise at once (e.g. 1 GiB): the
    callback is called once per page slice.
    """
    outer = hashlib.sha256()
    for addr, n in page_slices(address, length):
        chunk = content(addr, n)
        if len(chunk) != n:
            raise ValueError("content callback returned %d bytes, wanted %d"
                             % (len(chunk), n))
        outer.update(hashlib.sha256(chunk).digest())
    return outer.hexdigest()


def pattern_digest(fill_start: int, pattern64: int,
                   address: int, length: int) -> str:
    """Range digest of [address, address+length) inside a pattern64 fill
    that started at ``fill_start`` (and covers the whole range)."""
    if address < fill_start:
        raise ValueError("range starts before the fill")
    cache = {}

    def content(addr: int, n: int) -> bytes:
        key = ((addr - fill_start) % 8, n)
        data = cache.get(key)
        if data is None:
            data = pattern_bytes(pattern64, n, phase=addr - fill_start)
            cache[key] = data
        return data

    # Hash of identical slices is identical too: memoise it as well.
    hcache = {}
    outer = hashlib.sha256()
    for addr, n in page_slices(address, length):
        key = ((addr - fill_start) % 8, n)
        h = hcache.get(key)
        if h is None:
            h = hashlib.sha256(content(addr, n)).digest()
            hcache[key] = h
        outer.update(h)
    return outer.hexdigest()


def page_sha256(data: bytes) -> str:
    """Lowercase hex SHA-256 of one page's bytes (PageFrame.content_digest)."""
    return hashlib.sha256(data).hexdigest()


__all__ = [
    "PAGE_SIZE",
    "splitmix64",
    "random_bytes",
    "byte_fill",
    "pattern_bytes",
    "page_slices",
    "digest_bytes",
    "digest_from",
    "pattern_digest",
    "page_sha256",
]
