"""Self-checks of memnode.digest, the client-side reference used by the other
tests to compute expected values (no server needed)."""

import hashlib
import struct

from memnode import digest as D


def test_splitmix64_matches_published_vectors():
    # Reference outputs of Vigna's splitmix64.c (state += golden gamma before
    # mixing), the generator FillMemoryRequest.random_seed names.
    g = D.splitmix64(1234567)
    assert [next(g) for _ in range(5)] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423,
        4593380528125082431, 16408922859458223821]
    assert next(D.splitmix64(0)) == 0xE220A8397B1DCDAF


def test_random_bytes_are_little_endian_outputs_in_order():
    g = D.splitmix64(42)
    words = [next(g) for _ in range(3)]
    data = D.random_bytes(42, 20)
    assert data[:8] == struct.pack("<Q", words[0])
    assert data[8:16] == struct.pack("<Q", words[1])
    assert data[16:20] == struct.pack("<Q", words[2])[:4]
    assert D.random_bytes(42, 0) == b""


def test_pattern_bytes_anchored_at_fill_start():
    p = 0x0807060504030201
    assert D.pattern_bytes(p, 10) == bytes([1, 2, 3, 4, 5, 6, 7, 8, 1, 2])
    assert D.pattern_bytes(p, 4, phase=6) == bytes([7, 8, 1, 2])


def test_digest_is_sha256_of_concatenated_slice_digests():
    data = bytes(range(256)) * 40  # 10240 bytes
    address = 0x7F0000000000 + 4000  # slices: 96, 4096, 4096, 1952 bytes
    slices = [data[:96], data[96:4192], data[4192:8288], data[8288:]]
    assert [len(s) for s in slices] == [96, 4096, 4096, 1952]
    expected = hashlib.sha256(b"".join(hashlib.sha256(s).digest() for s in slices)).hexdigest()
    assert D.digest_bytes(address, data) == expected
    assert D.digest_from(address, len(data),
                         lambda a, n: data[a - address:a - address + n]) == expected
    # Empty range: SHA-256 of nothing.
    assert D.digest_bytes(address, b"") == hashlib.sha256(b"").hexdigest()


def test_pattern_digest_equals_generic_digest():
    p = 0xDEADBEEFCAFEF00D
    base = 0x7F0000001000
    for off, n in [(0, 3 * 4096), (5, 9000), (4095, 2), (123, 1)]:
        data = D.pattern_bytes(p, n, phase=off)
        assert D.pattern_digest(base, p, base + off, n) == D.digest_bytes(base + off, data)
