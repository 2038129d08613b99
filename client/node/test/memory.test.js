'use strict';
// Processes and memory against the real memnoded: mmap, write, read, fill,
// digest, fork, translate. Expected values come from the documented rules
// (docs/API.md sections 1.1 and 3.2, process.proto, SEMANTICS COW-5..COW-8),
// computed here, never copied from server output.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer } = require('./server');
const memnode = require('../src');

const { Client, Errno, PageState, PAGE_SIZE } = memnode;

// docs/API.md 1.1 "Virtual layout": Mmap without an address places the
// mapping at the first fit upwards from 0x7f0000000000.
const MMAP_BASE = 0x7f0000000000n;

let server;
let client;
let machine;

test.before(async () => {
  server = await startServer();
  client = new Client(server.address, { timeout: 30 });
  await client.waitReady(10);
  machine = await client.createMachine('mem', { nodes: 2, blocksPerNode: 4, pagesPerBlock: 64 });
});

test.after(async () => {
  if (machine) await machine.dispose();
  if (client) client.close();
  if (server) await server.stop();
});

// FillMemory pattern64 (docs/API.md 3.2): byte k = (pattern64 >> 8*(k%8)) & 0xff.
function pattern64Bytes(pattern, length) {
  const out = Buffer.alloc(length);
  for (let k = 0; k < length; k++) out[k] = Number((pattern >> BigInt(8 * (k % 8))) & 0xffn);
  return out;
}

// DigestMemory (docs/API.md 3.2): SHA-256 over the concatenation of the
// binary SHA-256 of each page slice of the range, in address order.
function rangeDigest(address, data) {
  const outer = crypto.createHash('sha256');
  let pos = 0;
  const base = BigInt(address);
  while (pos < data.length) {
    const inPage = Number((base + BigInt(pos)) % BigInt(PAGE_SIZE));
    const n = Math.min(PAGE_SIZE - inPage, data.length - pos);
    outer.update(crypto.createHash('sha256').update(data.subarray(pos, pos + n)).digest());
    pos += n;
  }
  return outer.digest('hex');
}

test('mmap, write, read, fill, digest and translate', async () => {
  const p = await machine.createProcess();
  assert.equal(p.pid, 1);
  const mm = await p.mmap(4 * PAGE_SIZE, 'rw');
  assert.ok(mm.ok);
  assert.equal(mm.errnum, Errno.ERRNO_OK);
  // uint64 as a decimal string: the address is above 2^32.
  assert.equal(typeof mm.address, 'string');
  assert.equal(BigInt(mm.address), MMAP_BASE);
  const a = BigInt(mm.address);
  const page = (i) => a + BigInt(i * PAGE_SIZE);

  // Page 0: a small write at offset 100.
  const hello = Buffer.from('hello, memnode');
  const w = await p.write(page(0) + 100n, hello);
  assert.ok(w.ok);
  assert.equal(w.bytes_done, String(hello.length));
  const r = await p.read(page(0) + 100n, hello.length);
  assert.ok(r.ok);
  assert.deepEqual(r.data, hello);

  // Page 1: FillMemory byte_value.
  assert.ok((await p.fill(page(1), PAGE_SIZE, { byte: 0x5a })).ok);
  assert.deepEqual((await p.read(page(1), PAGE_SIZE)).data, Buffer.alloc(PAGE_SIZE, 0x5a));

  // Page 2: FillMemory pattern64 with a value above 2^53 (passed as bigint).
  const pattern = 0xfedcba9876543210n;
  assert.ok((await p.fill(page(2), PAGE_SIZE, { pattern64: pattern })).ok);
  assert.deepEqual((await p.read(page(2), PAGE_SIZE)).data, pattern64Bytes(pattern, PAGE_SIZE));

  // Page 3 is untouched: ReadMemory observes zeros without faulting it in
  // (process.proto ReadMemory).
  assert.deepEqual((await p.read(page(3), 64)).data, Buffer.alloc(64));

  // readBytes over several chunks.
  const whole = await p.readBytes(page(0), 4 * PAGE_SIZE, 3000);
  assert.equal(whole.length, 4 * PAGE_SIZE);

  // DigestMemory over [page0+100, page3): expected from what was written.
  const page0 = Buffer.alloc(PAGE_SIZE);
  hello.copy(page0, 100);
  const expected = Buffer.concat([
    page0.subarray(100), Buffer.alloc(PAGE_SIZE, 0x5a), pattern64Bytes(pattern, PAGE_SIZE),
  ]);
  const d = await p.digest(page(0) + 100n, expected.length);
  assert.ok(d.ok);
  assert.equal(d.digest, rangeDigest(page(0) + 100n, expected));
  // populated_pages: pages of the range holding non-zero data.
  assert.equal(d.populated_pages, '3');

  // TranslateAddresses: pages 0-2 written (private anonymous pages on the
  // home node 0), page 3 mapped but not present.
  const t = await p.translate(page(0), 4);
  assert.equal(t.length, 4);
  for (let i = 0; i < 3; i++) {
    assert.equal(t[i].address, page(i).toString());
    assert.equal(t[i].mapped, true);
    assert.equal(t[i].present, true);
    assert.equal(t[i].state, PageState.PAGE_STATE_ANON);
    assert.equal(t[i].node, 0);
  }
  assert.equal(new Set(t.slice(0, 3).map((x) => x.pfn)).size, 3);
  assert.equal(t[3].mapped, true);
  assert.equal(t[3].present, false);
  assert.equal(await p.pfn(page(3)), null);
  assert.equal(await p.pfn(page(0)), t[0].pfn);
  // The frame itself (GetPageFrame) agrees: an anonymous page mapped once.
  const frame = await machine.page(t[0].pfn);
  assert.equal(frame.state, PageState.PAGE_STATE_ANON);
  assert.equal(frame.mapcount, 1);
  assert.equal(frame.content_digest, crypto.createHash('sha256').update(page0).digest('hex'));
});

test('emulated errno comes back as a value, not an exception', async () => {
  const p = await machine.createProcess();
  const mm = await p.mmap(PAGE_SIZE, 'r');
  assert.ok(mm.ok);
  const a = BigInt(mm.address);
  // Address outside any mapping: EFAULT (process.proto ReadMemoryResponse).
  const far = await p.read(a + 16n * BigInt(PAGE_SIZE), 8);
  assert.equal(far.ok, false);
  assert.equal(far.errnum, Errno.ERRNO_EFAULT);
  assert.equal(far.errnum, 14); // Linux x86_64 EFAULT
  assert.equal(far.errnoName, 'ERRNO_EFAULT');
  // Write to a PROT_READ mapping: EACCES, nothing done.
  const ro = await p.write(a, Buffer.from('x'));
  assert.equal(ro.errnum, Errno.ERRNO_EACCES);
  assert.equal(ro.bytes_done, '0');
  // mmap of length 0: EINVAL (process.proto MmapRequest).
  assert.equal((await p.mmap(0)).errnum, Errno.ERRNO_EINVAL);
  // munmap of an unaligned address: EINVAL.
  assert.equal((await p.munmap(a + 1n, PAGE_SIZE)).errnum, Errno.ERRNO_EINVAL);
});

test('fork: copy-on-write private memory', async () => {
  const parent = await machine.createProcess();
  const a = BigInt((await parent.mmap(2 * PAGE_SIZE)).address);
  const original = Buffer.from('written by the parent');
  assert.ok((await parent.write(a, original)).ok);
  assert.ok((await parent.fill(a + BigInt(PAGE_SIZE), PAGE_SIZE, { seed: 42 })).ok);
  const parentPfn = await parent.pfn(a);

  // fork(2) (process.proto ForkProcess, SEMANTICS COW-5..COW-8): private
  // anonymous memory becomes copy-on-write: the child maps the same frames.
  const child = await parent.fork();
  assert.notEqual(child.pid, parent.pid);
  assert.equal(child.proto.parent_pid, parent.pid);
  assert.deepEqual((await child.read(a, original.length)).data, original);
  assert.equal(await child.pfn(a), parentPfn);
  assert.equal((await machine.page(parentPfn)).mapcount, 2);
  // Same contents in both: same digest of both pages.
  const dp = await parent.digest(a, 2 * PAGE_SIZE);
  const dc = await child.digest(a, 2 * PAGE_SIZE);
  assert.equal(dc.digest, dp.digest);

  // A write by the child copies the page: the parent keeps its frame and data.
  const changed = Buffer.from('written by the child!');
  assert.ok((await child.write(a, changed)).ok);
  const childPfn = await child.pfn(a);
  assert.notEqual(childPfn, parentPfn);
  assert.equal(await parent.pfn(a), parentPfn);
  assert.deepEqual((await parent.read(a, original.length)).data, original);
  assert.deepEqual((await child.read(a, changed.length)).data, changed);
  assert.equal((await machine.page(parentPfn)).mapcount, 1);

  // Exit of the child, then the machine's self-check holds.
  await child.exit();
  const check = await machine.check();
  assert.equal(check.ok, true, check.violations.join('\n'));
});

test('uint64 helpers', () => {
  assert.equal(memnode.u64(2n ** 64n - 1n), '18446744073709551615');
  assert.equal(memnode.u64('0x7f0000000000'), String(0x7f0000000000));
  assert.throws(() => memnode.u64(2 ** 53));
  assert.throws(() => memnode.u64(-1));
  assert.equal(memnode.nodeMask('0-1'), '3');
  assert.equal(memnode.nodeMask([0, 63]), String((1n << 63n) | 1n));
  assert.equal(memnode.nodeMask('none'), '0');
});
