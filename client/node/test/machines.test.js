'use strict';
// Machines: create / get / list / delete against the real memnoded, and the
// error model (SEMANTICS CH-21, docs/API.md "Errors"): a request the
// service cannot act on is a gRPC error whose google.rpc.ErrorInfo (in the
// grpc-status-details-bin trailer) carries a stable reason.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./server');
const memnode = require('../src');

const { Client, MemnodeError, status } = memnode;

let server;
let client;

test.before(async () => {
  server = await startServer();
  client = new Client(server.address, { timeout: 30 });
  await client.waitReady(10);
});

test.after(async () => {
  if (client) client.close();
  if (server) await server.stop();
});

test('create, get, list and delete a machine', async () => {
  const topology = { nodes: 2, blocksPerNode: 3, pagesPerBlock: 128 };
  const m = await client.createMachine('node-a', topology);
  assert.equal(m.name, 'machines/node-a');
  assert.equal(m.id, 'node-a');

  const got = await m.get();
  assert.equal(got.name, 'machines/node-a');
  assert.equal(got.topology.nodes, 2);
  assert.equal(got.topology.blocks_per_node, 3);
  // uint64 fields arrive as decimal strings (longs: String).
  assert.equal(got.topology.pages_per_block, '128');
  // Topology (machine.proto): total pages = nodes * blocks_per_node * pages_per_block.
  assert.equal(got.total_pages, String(2 * 3 * 128));
  // Unspecified clock at creation means MANUAL (machine.proto, clock_mode).
  assert.equal(got.clock_mode, memnode.ClockMode.CLOCK_MODE_MANUAL);
  assert.equal(got.process_count, 0);
  assert.equal(got.nodes.length, 2);

  const other = await client.createMachine('node-b', { nodes: 1, blocksPerNode: 1, pagesPerBlock: 64 });

  // ListMachines returns machines in name order (machine.proto); the server
  // also hosts machines/default (started with its default flags).
  const names = (await client.listMachines()).map((x) => x.name);
  assert.ok(names.includes('machines/node-a'));
  assert.ok(names.includes('machines/node-b'));
  assert.deepEqual(names, [...names].sort());
  // Pagination: page_size 1 still yields every machine, via next_page_token.
  const paged = (await client.listMachines(1)).map((x) => x.name);
  assert.deepEqual(paged, names);

  await m.delete();
  await other.delete();
  const after = (await client.listMachines()).map((x) => x.name);
  assert.ok(!after.includes('machines/node-a'));
  assert.ok(!after.includes('machines/node-b'));
});

test('unknown machine: NOT_FOUND with reason MACHINE_NOT_FOUND', async () => {
  const ghost = client.machine('no-such-machine');
  for (const call of [() => ghost.get(), () => ghost.delete(), () => ghost.createProcess()]) {
    await assert.rejects(call(), (err) => {
      assert.ok(err instanceof MemnodeError);
      assert.equal(err.code, status.NOT_FOUND);
      assert.equal(err.codeName, 'NOT_FOUND');
      assert.equal(err.reason, 'MACHINE_NOT_FOUND');
      assert.equal(err.domain, 'memnode.dev');
      return true;
    });
  }
  // dispose() tolerates a machine that is already gone.
  await ghost.dispose();
});

test('deleted machine is NOT_FOUND / MACHINE_NOT_FOUND afterwards', async () => {
  const m = await client.createMachine('node-gone', { nodes: 1, blocksPerNode: 1, pagesPerBlock: 64 });
  await m.delete();
  await assert.rejects(m.get(), { code: status.NOT_FOUND, reason: 'MACHINE_NOT_FOUND' });
});

test('duplicate id: ALREADY_EXISTS with reason MACHINE_EXISTS', async () => {
  await client.withMachine('node-dup', { nodes: 1, blocksPerNode: 1, pagesPerBlock: 64 }, async () => {
    await assert.rejects(
      client.createMachine('node-dup', { nodes: 1, blocksPerNode: 1, pagesPerBlock: 64 }),
      { code: status.ALREADY_EXISTS, reason: 'MACHINE_EXISTS' },
    );
  });
  await assert.rejects(client.machine('node-dup').get(), { reason: 'MACHINE_NOT_FOUND' });
});

test('malformed name: INVALID_ARGUMENT with reason INVALID_NAME', async () => {
  // docs/API.md 1.1: a machine id is [a-z][a-z0-9-]{0,62}.
  await assert.rejects(client.machine('Not_Valid').get(), {
    code: status.INVALID_ARGUMENT,
    reason: 'INVALID_NAME',
  });
});

test('status details decoding without a server', () => {
  // A google.rpc.Status encoded by hand with protobufjs, as the server sends
  // it in grpc-status-details-bin: code, message, one Any(ErrorInfo).
  const { Status, ErrorInfo } = memnode.loadProtos();
  const info = ErrorInfo.encode(ErrorInfo.fromObject({
    reason: 'SOME_REASON', domain: 'memnode.dev', metadata: { field: 'length' },
  })).finish();
  const raw = Status.encode(Status.fromObject({
    code: 5,
    message: 'x',
    details: [{ type_url: 'type.googleapis.com/google.rpc.ErrorInfo', value: info }],
  })).finish();
  assert.deepEqual(memnode.errorInfoFromStatusBytes(Buffer.from(raw)), {
    reason: 'SOME_REASON', domain: 'memnode.dev', metadata: { field: 'length' },
  });
  assert.equal(memnode.errorInfoFromStatusBytes(Buffer.from([0xff, 0xff, 0xff])), null);
});
