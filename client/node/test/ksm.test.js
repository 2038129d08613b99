'use strict';
// KSM and hot-remove against the real memnoded, following
// docs/SEMANTICS.md (the linux-2.6.33 profile):
//  * scenario SC-1 exactly: two processes, one identical page each, A
//    registered (MADV_MERGEABLE) first, then B; after pass 1 volatile 2,
//    after pass 2 shared 1 / sharing 1, the KSM page is B's original pfn;
//  * scenario SC-8: offlining the block holding that KSM page migrates it
//    (kpfn changes), counters are unchanged and both processes still read
//    their data.
// The tests run in order and share the machine (SC-8 starts from SC-1's end).

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer } = require('./server');
const memnode = require('../src');

const { Client, Errno, PageState, MemoryBlockState, OfflinePhase, PAGE_SIZE } = memnode;

// Topology (machine.proto / docs/API.md 1.1): pfns are contiguous, block
// index b covers [b * PAGES_PER_BLOCK, (b + 1) * PAGES_PER_BLOCK).
const NODES = 2;
const BLOCKS_PER_NODE = 4;
const PAGES_PER_BLOCK = 64;
const blockOf = (pfn) => Number(BigInt(pfn) / BigInt(PAGES_PER_BLOCK));

// The processes live on node 1 (home_node 1): pfn 0, in block 0 on node 0, is
// the shared zero page, a reserved page, so block 0 can never be offlined
// (SEMANTICS RMV-1, HP-7; docs/API.md 1.1). Scenario SC-8 needs
// the KSM page in a block with only movable pages, which node 1's first block
// is. Allocation within a node takes the lowest-index online block
// (docs/API.md 1.1), so both pages start in node 1's first block.
const HOME_NODE = 1;

let server;
let client;
let machine;
let ksm;
let A;
let B;
let addrA;
let addrB;
let pfnA0; // A's original physical page
let pfnB0; // B's original physical page
let kpfn; // the KSM page after pass 2
const content = Buffer.alloc(PAGE_SIZE);

test.before(async () => {
  server = await startServer();
  client = new Client(server.address, { timeout: 30 });
  await client.waitReady(10);
  // MANUAL clock: ksmd runs only when stepped (machine.proto ClockMode), so
  // the scenario's "ksmd idle while the mms register" assumption holds.
  machine = await client.createMachine('ksm-scenario', {
    nodes: NODES, blocksPerNode: BLOCKS_PER_NODE, pagesPerBlock: PAGES_PER_BLOCK, clock: 'manual',
  });
  ksm = machine.ksm;
  for (let i = 0; i < PAGE_SIZE; i++) content[i] = (i * 7 + 3) & 0xff;
});

test.after(async () => {
  if (machine) await machine.dispose();
  if (client) client.close();
  if (server) await server.stop();
});

test('scenario SC-1: two processes, one identical page each', async () => {
  // Section 10 assumptions: run=1; pages written once before MADV_MERGEABLE
  // and not written again; all mms registered while the cursor is at the
  // list head, so list order = registration order (A, then B).
  const run = await ksm.set({ run: 1 });
  assert.ok(run.ok);
  assert.equal(run.ksm.run, 1);

  A = await machine.createProcess({ homeNode: HOME_NODE });
  B = await machine.createProcess({ homeNode: HOME_NODE });
  addrA = BigInt((await A.mmap(PAGE_SIZE)).address);
  addrB = BigInt((await B.mmap(PAGE_SIZE)).address);
  assert.ok((await A.write(addrA, content)).ok);
  assert.ok((await B.write(addrB, content)).ok);
  pfnA0 = await A.pfn(addrA);
  pfnB0 = await B.pfn(addrB);
  assert.notEqual(pfnA0, null);
  assert.notEqual(pfnB0, null);
  assert.notEqual(pfnA0, pfnB0);

  // MADV_MERGEABLE registers the mm with KSM (SEMANTICS MADV-6..MADV-9): A first.
  assert.ok((await A.madvise(addrA, PAGE_SIZE, 'mergeable')).ok);
  assert.ok((await B.madvise(addrB, PAGE_SIZE, 'mergeable')).ok);
  assert.equal((await A.get()).ksm_registered, true);
  assert.equal((await B.get()).ksm_registered, true);

  // Counters before ksmd ran: nothing (CNT-6: only ksmd changes them).
  assert.deepEqual(await ksm.counters(), {
    pages_shared: 0, pages_sharing: 0, pages_unshared: 0, pages_volatile: 0, full_scans: 0,
  });

  // Pass 1 (full_scans 0 -> 1): first visits only store checksums, so both
  // items are volatile (SC-1; CNT-4: items visited once).
  const step1 = await ksm.step({ fullScans: 1 });
  assert.equal(step1.passes, '1');
  assert.deepEqual(await ksm.counters(), {
    pages_shared: 0, pages_sharing: 0, pages_unshared: 0, pages_volatile: 2, full_scans: 1,
  });
  // Nothing merged yet: both still map their own pages.
  assert.equal(await A.pfn(addrA), pfnA0);
  assert.equal(await B.pfn(addrB), pfnB0);

  // Pass 2 (full_scans = 2): A's page goes into the unstable tree, B's page
  // matches it and merges: shared 1, sharing 1, unshared 0, volatile 0.
  const step2 = await ksm.step({ fullScans: 1 });
  assert.equal(step2.passes, '1');
  assert.deepEqual(await ksm.counters(), {
    pages_shared: 1, pages_sharing: 1, pages_unshared: 0, pages_volatile: 0, full_scans: 2,
  });

  // The KSM page is B's original physical page (the later-visited one), A
  // now maps it too, and A's original page is freed (SC-1).
  kpfn = await B.pfn(addrB);
  assert.equal(kpfn, pfnB0);
  assert.equal(await A.pfn(addrA), pfnB0);
  const [tA] = await A.translate(addrA);
  assert.equal(tA.state, PageState.PAGE_STATE_KSM);
  const frame = await machine.page(kpfn);
  assert.equal(frame.state, PageState.PAGE_STATE_KSM);
  assert.equal(frame.mapcount, 2);
  assert.equal((await machine.page(pfnA0)).state, PageState.PAGE_STATE_FREE);

  // One stable node whose kpfn is that page, with both mappings (DS-7..DS-9).
  const nodes = await ksm.stableNodes();
  assert.equal(nodes.length, 1);
  assert.equal(nodes[0].kpfn, pfnB0);
  assert.equal(nodes[0].stale, false);
  assert.equal(nodes[0].content_digest, crypto.createHash('sha256').update(content).digest('hex'));
  assert.deepEqual(
    nodes[0].mappings.map((m) => [m.pid, m.address]).sort(),
    [[A.pid, addrA.toString()], [B.pid, addrB.toString()]].sort(),
  );

  // Both still read the same data.
  assert.deepEqual((await A.read(addrA, PAGE_SIZE)).data, content);
  assert.deepEqual((await B.read(addrB, PAGE_SIZE)).data, content);
});

test('scenario SC-8: offline the block holding the live KSM page', async () => {
  assert.ok(kpfn, 'scenario SC-1 must have run first');
  const blockIndex = blockOf(kpfn);
  // Node 1's blocks are BLOCKS_PER_NODE .. 2*BLOCKS_PER_NODE-1 (topology rule).
  assert.ok(blockIndex >= BLOCKS_PER_NODE && blockIndex < 2 * BLOCKS_PER_NODE);
  const block = machine.block(blockIndex);
  const before = await block.get();
  assert.equal(before.state, MemoryBlockState.MEMORY_BLOCK_STATE_ONLINE);
  const start = BigInt(before.start_pfn);
  const end = start + BigInt(before.pages);
  assert.equal(start, BigInt(blockIndex * PAGES_PER_BLOCK));
  assert.ok(BigInt(kpfn) >= start && BigInt(kpfn) < end);
  assert.equal(before.ksm_pages, '1');
  const countersBefore = await ksm.counters();

  // SC-8: isolation succeeds (the page is movable); MEM_GOING_OFFLINE takes
  // ksm_thread_mutex; the KSM page is migrated (offlining=1) to a page
  // outside the section; kpfn updated; MEM_OFFLINE finds no node in range;
  // the write to `state` succeeds and the block reads "offline".
  const report = await block.offline();
  assert.equal(report.errnum, Errno.ERRNO_OK, report.failure);
  assert.ok(report.ok);
  assert.equal(report.paused, false);
  assert.equal(report.phase, OfflinePhase.OFFLINE_PHASE_DONE);
  assert.equal(report.ksm_pages_migrated, '1');
  // MEM_OFFLINE prunes only stale nodes in range (HP-16): none here.
  assert.equal(report.stable_nodes_pruned, '0');
  // KSM's callback saw MEM_GOING_OFFLINE then MEM_OFFLINE (HP-15..HP-16).
  const ksmCalls = report.notifier_calls.filter((c) => /ksm/.test(c));
  assert.ok(ksmCalls.some((c) => c.startsWith('MEM_GOING_OFFLINE')), ksmCalls.join('; '));
  assert.ok(ksmCalls.some((c) => c.startsWith('MEM_OFFLINE')), ksmCalls.join('; '));
  assert.equal(await block.state(), MemoryBlockState.MEMORY_BLOCK_STATE_OFFLINE);

  // The kpfn changed, to a frame outside the offlined block.
  const nodes = await ksm.stableNodes();
  assert.equal(nodes.length, 1);
  const newKpfn = nodes[0].kpfn;
  assert.notEqual(newKpfn, kpfn);
  assert.ok(BigInt(newKpfn) < start || BigInt(newKpfn) >= end);
  // A and B still share it.
  assert.equal(await A.pfn(addrA), newKpfn);
  assert.equal(await B.pfn(addrB), newKpfn);
  const frame = await machine.page(newKpfn);
  assert.equal(frame.state, PageState.PAGE_STATE_KSM);
  assert.equal(frame.mapcount, 2);
  // Every frame of an offline block reads OFFLINE (machine.proto PageState).
  assert.equal((await machine.page(kpfn)).state, PageState.PAGE_STATE_OFFLINE);

  // Counters unchanged: shared 1, sharing 1, full_scans unchanged.
  assert.deepEqual(await ksm.counters(), countersBefore);
  assert.deepEqual(await ksm.counters(), {
    pages_shared: 1, pages_sharing: 1, pages_unshared: 0, pages_volatile: 0, full_scans: 2,
  });
  // The offline released KSM's lock (HP-16: unlock after MEM_OFFLINE).
  assert.equal((await ksm.get()).locked_by_offline, false);

  // Both read their data.
  assert.deepEqual((await A.read(addrA, PAGE_SIZE)).data, content);
  assert.deepEqual((await B.read(addrB, PAGE_SIZE)).data, content);

  const check = await machine.check();
  assert.equal(check.ok, true, check.violations.join('\n'));
});
