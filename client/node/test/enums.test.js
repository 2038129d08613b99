'use strict';
// Enum display names (docs/API.md 1.7): every value of every memnode.v1 enum
// of the loaded protos has one, derived from the proto name, distinct within
// its enum, and every spelling of it is accepted back by the client's
// argument helpers. No server needed.

const test = require('node:test');
const assert = require('node:assert/strict');
const memnode = require('../src');

const { loadProtos, displayName, enumValue, enumPrefix, args } = memnode;
const { enums } = loadProtos();

test('every enum of the API is loaded', () => {
  for (const name of ['Errno', 'ClockMode', 'PageState', 'OfflinePhase', 'MemoryBlockState',
    'MemoryNotifierEvent', 'MempolicyMode', 'MbindFlag', 'Prot', 'Advice', 'ProcessState',
    'RmapState', 'EventKind', 'MigrateReason', 'PruneReason']) {
    assert.ok(name in enums, name);
  }
});

test('every value has a distinct name that parses back', () => {
  for (const [enumType, e] of Object.entries(enums)) {
    const seen = new Set();
    for (const [proto, number] of Object.entries(e.byName)) {
      const name = displayName(enumType, number);
      const where = `${enumType}.${proto} -> ${name}`;
      assert.ok(name.length > 0, where);
      assert.equal(name, name.toLowerCase(), where);
      assert.ok(proto.endsWith(name.toUpperCase()), where);
      assert.ok(proto.length === name.length || proto[proto.length - name.length - 1] === '_',
        where);
      assert.ok(!seen.has(name), `two values named ${name} in ${enumType}`);
      seen.add(name);
      for (const text of [name, name.toUpperCase(), name.replace(/_/g, '-'), proto,
        String(number)]) {
        assert.equal(enumValue(enumType, text), number, `${where}: ${text}`);
      }
    }
    assert.throws(() => enumValue(enumType, 'no-such-value'), RangeError);
  }
});

test('the rule of docs/API.md', () => {
  assert.equal(displayName('OfflinePhase', 2), 'going_offline');
  assert.equal(displayName('MemoryBlockState', 2), 'going_offline');
  assert.equal(displayName('Errno', 14), 'efault');
  assert.equal(displayName('Errno', 0), 'ok');
  assert.equal(displayName('MempolicyMode', 2), 'bind');
  assert.equal(displayName('MbindFlag', 4), 'move_all');
  assert.equal(displayName('MbindFlag', 0), 'mbind_flag_none');
  assert.equal(displayName('MemoryNotifierEvent', 4), 'going_offline');
  assert.equal(displayName('MemoryNotifierEvent', 0), 'memory_notifier_event_unspecified');
  assert.equal(displayName('Prot', 0), 'none');
  assert.equal(displayName('Advice', 12), 'mergeable');
  assert.equal(displayName('EventKind', 2), 'cow_break');
  assert.equal(displayName('MigrateReason', 1), 'memory_offline');
  assert.equal(displayName('PageState', 3), 'ksm');
  assert.equal(displayName('PageState', 99), '99');
  assert.equal(enumPrefix('MemoryNotifierEvent'), 'MEM_');
  assert.equal(enumPrefix('MempolicyMode'), 'MPOL_');
});

test('client arguments take every display name', () => {
  const cases = [
    [args.advice, 'Advice', [memnode.Advice.ADVICE_UNSPECIFIED]],
    [args.clock, 'ClockMode', []],
    [args.mode, 'MempolicyMode', []],
    [args.phase, 'OfflinePhase', [memnode.OfflinePhase.OFFLINE_PHASE_DONE]],
    [args.memEvent, 'MemoryNotifierEvent', []],
    [args.errnoValue, 'Errno', []],
  ];
  for (const [parse, enumType, refused] of cases) {
    for (const number of Object.values(enums[enumType].byName)) {
      const name = displayName(enumType, number);
      if (refused.includes(number)) {
        assert.throws(() => parse(name), RangeError);
        continue;
      }
      assert.equal(parse(name), number, name);
      assert.equal(parse(name.replace(/_/g, '-').toUpperCase()), number, name);
      assert.equal(parse(number), number);
    }
  }
  // The spellings the client documented before the names were derived.
  assert.equal(args.phase('going-offline'), memnode.OfflinePhase.OFFLINE_PHASE_GOING_OFFLINE);
  assert.equal(args.phase(undefined), memnode.OfflinePhase.OFFLINE_PHASE_NONE);
  assert.equal(args.mode('mpol_interleave'), memnode.MempolicyMode.MPOL_INTERLEAVE);
  assert.equal(args.memEvent('going-offline'), memnode.MemoryNotifierEvent.MEM_GOING_OFFLINE);
  assert.equal(args.errnoValue('EBUSY'), memnode.Errno.ERRNO_EBUSY);
  assert.equal(args.clock('manual'), memnode.ClockMode.CLOCK_MODE_MANUAL);
  assert.throws(() => args.phase('done'), RangeError);
  assert.throws(() => args.advice('sideways'), RangeError);
});
