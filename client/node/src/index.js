'use strict';
// A small promise-based wrapper over memnode's gRPC API (package memnode.v1),
// mirroring the Python wrapper (client/python/memnode/client.py).
//
// The .proto files are loaded at run time from ../../protos (or the directory
// in MEMNODE_PROTOS_DIR / the `protosDir` option): no generated code.
//
// Two kinds of failure are kept apart (SPEC "Decisions" 6):
//  * an emulated syscall / sysfs outcome (EFAULT, EINVAL, ...) is data: the
//    call resolves to a `Result` whose `errnum` is the Linux errno number and
//    whose `ok` is true only for ERRNO_OK;
//  * a request the service could not act on (unknown machine, bad name,
//    limit exceeded, ...) rejects with a `MemnodeError` carrying the gRPC
//    status `code` and the `reason` of the google.rpc.ErrorInfo that the
//    server puts in the `grpc-status-details-bin` trailer.
//
// 64-bit integers: every int64/uint64/fixed64 field of a response is a
// decimal *string* (proto-loader `longs: String`), because addresses and pfns
// exceed Number.MAX_SAFE_INTEGER (2^53 - 1). Convert with BigInt(x) to do
// arithmetic. Request arguments accept a number (a safe integer), a bigint or
// a decimal string. Enums are numbers; bytes are Buffers.

const path = require('node:path');
const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PAGE_SIZE = 4096;
const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const ERROR_INFO_TYPE = 'google.rpc.ErrorInfo';

const PROTO_FILES = [
  'memnode/v1/common.proto',
  'memnode/v1/machine.proto',
  'memnode/v1/process.proto',
  'memnode/v1/ksm.proto',
  'memnode/v1/numa.proto',
  'memnode/v1/hotplug.proto',
  'memnode/v1/events.proto',
];

function defaultProtosDir() {
  if (process.env.MEMNODE_PROTOS_DIR) return process.env.MEMNODE_PROTOS_DIR;
  return path.resolve(__dirname, '..', '..', '..', 'protos');
}

// --------------------------------------------------------------------------
// proto loading (cached per directory)
// --------------------------------------------------------------------------

const loaded = new Map();

function loadProtos(protosDir = defaultProtosDir()) {
  const dir = path.resolve(protosDir);
  if (loaded.has(dir)) return loaded.get(dir);
  if (!fs.existsSync(path.join(dir, PROTO_FILES[0]))) {
    throw new Error(`memnode: protos not found in ${dir} (set MEMNODE_PROTOS_DIR)`);
  }
  const packageDefinition = protoLoader.loadSync(PROTO_FILES, {
    keepCase: true, // field names as in the .proto (snake_case), like Python
    longs: String, // 64-bit integers as decimal strings (see the top comment)
    enums: Number,
    bytes: Buffer,
    defaults: true, // zero values present (errnum 0, empty lists, ...)
    oneofs: true,
    includeDirs: [dir],
  });
  const pkg = grpc.loadPackageDefinition(packageDefinition).memnode.v1;

  // google.rpc.Status / ErrorInfo codecs for the status-details trailer.
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    const local = path.join(dir, target);
    return fs.existsSync(local) ? local : target; // google/protobuf/* are built in
  };
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  root.resolveAll();

  const enums = {};
  for (const [fullName, def] of Object.entries(packageDefinition)) {
    if (def && def.format === 'Protocol Buffer 3 EnumDescriptorProto') {
      const byName = {};
      const byNumber = {};
      for (const v of def.type.value) {
        byName[v.name] = v.number;
        if (!(v.number in byNumber)) byNumber[v.number] = v.name;
      }
      enums[fullName.replace(/^memnode\.v1\./, '')] = { byName, byNumber };
    }
  }

  const result = {
    dir,
    pkg,
    enums,
    Status: root.lookupType('google.rpc.Status'),
    ErrorInfo: root.lookupType('google.rpc.ErrorInfo'),
  };
  loaded.set(dir, result);
  return result;
}

// Enum values as numbers, read from the protos (so they can never drift).
const protos0 = loadProtos();
function enumValues(name) {
  return Object.freeze({ ...protos0.enums[name].byName });
}
const Errno = enumValues('Errno');
const ClockMode = enumValues('ClockMode');
const PageState = enumValues('PageState');
const Prot = enumValues('Prot');
const Advice = enumValues('Advice');
const MempolicyMode = enumValues('MempolicyMode');
const MbindFlag = enumValues('MbindFlag');
const OfflinePhase = enumValues('OfflinePhase');
const MemoryBlockState = enumValues('MemoryBlockState');
const MemoryNotifierEvent = enumValues('MemoryNotifierEvent');
const RmapState = enumValues('RmapState');
const EventKind = enumValues('EventKind');

/** The proto name of value `number` of `enumType` ('ERRNO_EFAULT'), or the number. */
function enumName(enumType, number) {
  const e = protos0.enums[enumType];
  return (e && e.byNumber[number]) || String(number);
}

// Enum display names (docs/API.md 1.7), derived from the loaded protos so a
// value added to a proto needs no change here: the prefix is the longest
// prefix ending in '_' that all the enum's value names share (when they
// share none: that of its non-zero values); the display name is the value
// name without it, in lower case.

function commonPrefix(names) {
  if (names.length === 0) return '';
  let prefix = names[0];
  for (const n of names) {
    let i = 0;
    while (i < prefix.length && i < n.length && prefix[i] === n[i]) i++;
    prefix = prefix.slice(0, i);
  }
  return prefix.slice(0, prefix.lastIndexOf('_') + 1);
}

function enumDef(enumType) {
  const e = protos0.enums[enumType];
  if (!e) throw new RangeError(`unknown enum ${enumType}`);
  return e;
}

/** The prefix the rule strips from the values of `enumType` ('OFFLINE_PHASE_'). */
function enumPrefix(enumType) {
  const e = enumDef(enumType);
  const prefix = commonPrefix(Object.keys(e.byName));
  if (prefix !== '') return prefix;
  return commonPrefix(Object.keys(e.byName).filter((n) => e.byName[n] !== 0));
}

function shortName(name, prefix) {
  return prefix !== '' && name.startsWith(prefix) && name.length > prefix.length
    ? name.slice(prefix.length)
    : name;
}

/** The display name of value `number` of `enumType` ('going_offline'), or the number. */
function displayName(enumType, number) {
  const name = enumDef(enumType).byNumber[number];
  return name === undefined ? String(number) : shortName(name, enumPrefix(enumType)).toLowerCase();
}

/**
 * The number of `value` of `enumType`: a number (returned as is), or the
 * display name in any case with '-' or '_', the proto name, or a decimal
 * string; `exclude` lists numbers refused. RangeError names `what`.
 */
function enumValue(enumType, value, what = enumType, exclude = []) {
  if (typeof value === 'number') return value;
  const e = enumDef(enumType);
  const prefix = enumPrefix(enumType);
  const text = String(value).trim().toUpperCase().replace(/-/g, '_');
  for (const [name, number] of Object.entries(e.byName)) {
    if (exclude.includes(number)) continue;
    if (text === name || text === shortName(name, prefix)) return number;
  }
  if (/^[0-9]+$/.test(text) && Number(text) in e.byNumber && !exclude.includes(Number(text))) {
    return Number(text);
  }
  const allowed = Object.values(e.byName)
    .filter((n, i, all) => all.indexOf(n) === i && !exclude.includes(n))
    .map((n) => displayName(enumType, n));
  throw new RangeError(`${what} must be a number or one of ${allowed.join(', ')}, not ${value}`);
}

// --------------------------------------------------------------------------
// errors and results
// --------------------------------------------------------------------------

const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

/** A gRPC error returned by memnoded (API misuse or server condition). */
class MemnodeError extends Error {
  /**
   * @param {number} code grpc.status value (e.g. grpc.status.NOT_FOUND = 5)
   * @param {string} reason google.rpc.ErrorInfo.reason, '' when absent
   * @param {string} message the status message
   * @param {string} domain ErrorInfo.domain, '' when absent
   * @param {Object<string,string>} metadata ErrorInfo.metadata
   */
  constructor(code, reason, message, domain = '', metadata = {}) {
    super(`${STATUS_NAMES[code] || code} ${reason || '-'}: ${message}`);
    this.name = 'MemnodeError';
    this.code = code;
    this.codeName = STATUS_NAMES[code] || String(code);
    this.reason = reason;
    this.details = message;
    this.domain = domain;
    this.metadata = { ...metadata };
  }

  /** Builds the error from a grpc-js ServiceError. */
  static fromServiceError(err, protos = protos0) {
    const code = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
    const message = err.details !== undefined ? err.details : String(err.message || err);
    let info = null;
    if (err.metadata && typeof err.metadata.get === 'function') {
      const values = err.metadata.get(STATUS_DETAILS_KEY);
      if (values.length > 0) info = errorInfoFromStatusBytes(values[0], protos);
    }
    if (info) return new MemnodeError(code, info.reason, message, info.domain, info.metadata);
    return new MemnodeError(code, '', message);
  }
}

/**
 * The first google.rpc.ErrorInfo packed in a serialized google.rpc.Status,
 * or null (no detail, or a malformed trailer).
 */
function errorInfoFromStatusBytes(raw, protos = protos0) {
  let status;
  try {
    status = protos.Status.decode(Buffer.isBuffer(raw) ? raw : Buffer.from(raw));
  } catch (_) {
    return null;
  }
  for (const any of status.details || []) {
    const url = any.type_url || '';
    if (url.slice(url.lastIndexOf('/') + 1) !== ERROR_INFO_TYPE) continue;
    try {
      const info = protos.ErrorInfo.toObject(protos.ErrorInfo.decode(any.value), {
        defaults: true,
      });
      return { reason: info.reason, domain: info.domain, metadata: info.metadata || {} };
    } catch (_) {
      return null;
    }
  }
  return null;
}

/**
 * An emulated syscall / sysfs outcome. Every field of the response is copied
 * onto the Result (`result.address`, `result.data`, `result.digest`, ...);
 * `errnum` is the Linux errno number (0 on success), `ok` is errnum === 0,
 * `errnoName` the proto enum name ('ERRNO_EFAULT'), `response` the message.
 */
class Result {
  constructor(response) {
    Object.assign(this, response);
    Object.defineProperty(this, 'response', { value: response, enumerable: false });
  }

  get ok() {
    return this.errnum === Errno.ERRNO_OK;
  }

  get errnoName() {
    return enumName('Errno', this.errnum);
  }
}

// --------------------------------------------------------------------------
// argument helpers
// --------------------------------------------------------------------------

/** A 64-bit unsigned request value (number, bigint or decimal string). */
function u64(value) {
  if (typeof value === 'bigint') {
    if (value < 0n || value >= 1n << 64n) throw new RangeError(`not a uint64: ${value}`);
    return value.toString();
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`not a safe non-negative integer: ${value} (pass a bigint or string)`);
    }
    return String(value);
  }
  if (typeof value === 'string' && /^(0|[1-9][0-9]*|0x[0-9a-fA-F]+)$/.test(value)) {
    return BigInt(value).toString();
  }
  throw new TypeError(`not a uint64: ${value}`);
}

// Protections as mprotect-style letters (a bit mask, not an enum name).
const PROT_NAMES = { '': 0, '-': 0, none: 0, r: 1, w: 2, rw: 3, wr: 3 };

function lookupName(table, value, what) {
  if (typeof value === 'number') return value;
  const key = String(value).toLowerCase();
  if (!(key in table)) {
    throw new RangeError(`${what} must be a number or one of ${Object.keys(table).sort().join(', ')}`);
  }
  return table[key];
}

// Enum arguments take the display names (enumValue).
const prot = (p) => lookupName(PROT_NAMES, p, 'prot');
const advice = (a) => enumValue('Advice', a, 'advice', [Advice.ADVICE_UNSPECIFIED]);
const clock = (c) => enumValue('ClockMode', c, 'clock');
const mode = (m) => enumValue('MempolicyMode', m, 'mode');
function phase(p) {
  if (p === undefined || p === null) return OfflinePhase.OFFLINE_PHASE_NONE;
  // DONE is where an offline ends, not a place to pause.
  return enumValue('OfflinePhase', p, 'pauseAfter', [OfflinePhase.OFFLINE_PHASE_DONE]);
}
const memEvent = (e) => enumValue('MemoryNotifierEvent', e, 'memory notifier event');
const errnoValue = (e) => enumValue('Errno', e, 'errno');

/**
 * A node mask (bit n = node n) as a decimal string, from a number / bigint
 * mask, an array of node ids, or a string such as '0,1', '0-3', 'none', ''.
 */
function nodeMask(nodes) {
  if (nodes === undefined || nodes === null) return '0';
  if (typeof nodes === 'number' || typeof nodes === 'bigint') return u64(nodes);
  let ids = [];
  if (typeof nodes === 'string') {
    const text = nodes.trim().toLowerCase();
    if (text === '' || text === 'none') return '0';
    for (const part of text.split(',')) {
      const [lo, hi] = part.trim().split('-');
      const first = Number.parseInt(lo, 10);
      const last = hi === undefined ? first : Number.parseInt(hi, 10);
      if (!(first >= 0 && first <= last && last < 64)) throw new RangeError(`bad node range ${part}`);
      for (let n = first; n <= last; n++) ids.push(n);
    }
  } else {
    ids = Array.from(nodes, Number);
  }
  let mask = 0n;
  for (const n of ids) {
    if (!Number.isInteger(n) || n < 0 || n >= 64) throw new RangeError(`node ${n} out of range 0..63`);
    mask |= 1n << BigInt(n);
  }
  return mask.toString();
}

const pidOf = (target) => (target instanceof Process ? target.pid : Number(target));

// --------------------------------------------------------------------------
// client
// --------------------------------------------------------------------------

const SERVICES = {
  machines: 'MachineService',
  processes: 'ProcessService',
  ksm: 'KsmService',
  numa: 'NumaService',
  blocks: 'MemoryBlockService',
  events: 'EventService',
};

/** A connection to memnoded: one channel shared by the six service stubs. */
class Client {
  /**
   * @param {string} target 'host:port'
   * @param {object} [opts]
   * @param {number|null} [opts.timeout=60] per-call deadline in seconds (null: none)
   * @param {object} [opts.options] grpc-js channel options
   * @param {grpc.ChannelCredentials} [opts.credentials] default insecure
   * @param {string} [opts.protosDir] where memnode/v1/*.proto live
   */
  constructor(target, opts = {}) {
    this.target = target;
    this.timeout = opts.timeout === undefined ? 60 : opts.timeout;
    this.protos = loadProtos(opts.protosDir || defaultProtosDir());
    const options = opts.options || {
      'grpc.max_receive_message_length': 64 << 20,
      'grpc.max_send_message_length': 64 << 20,
    };
    const credentials = opts.credentials || grpc.credentials.createInsecure();
    this.channel = new grpc.Channel(target, credentials, options);
    this.stubs = {};
    for (const [key, service] of Object.entries(SERVICES)) {
      this.stubs[key] = new this.protos.pkg[service](target, credentials, {
        ...options,
        channelOverride: this.channel,
      });
    }
  }

  /** Closes the channel. */
  close() {
    this.channel.close();
  }

  /** Resolves once the channel is connected (rejects after `seconds`). */
  waitReady(seconds = 10) {
    const deadline = Date.now() + seconds * 1000;
    return new Promise((resolve, reject) => {
      this.stubs.machines.waitForReady(deadline, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Calls a unary RPC (`service` one of machines, processes, ksm, numa,
   * blocks), translating gRPC errors to MemnodeError. `timeout` in seconds
   * overrides the client's deadline for this call.
   */
  call(service, method, request, timeout) {
    const stub = this.stubs[service];
    if (!stub || typeof stub[method] !== 'function') {
      throw new TypeError(`no RPC ${service}.${method}`);
    }
    const seconds = timeout === undefined ? this.timeout : timeout;
    const callOptions = {};
    if (seconds !== null && seconds !== undefined) {
      callOptions.deadline = new Date(Date.now() + seconds * 1000);
    }
    return new Promise((resolve, reject) => {
      stub[method](request, new grpc.Metadata(), callOptions, (err, response) => {
        if (err) reject(MemnodeError.fromServiceError(err, this.protos));
        else resolve(response);
      });
    });
  }

  async paginate(service, method, request, field) {
    const out = [];
    let page_token = '';
    for (;;) {
      const resp = await this.call(service, method, { ...request, page_token });
      out.push(...resp[field]);
      page_token = resp.next_page_token;
      if (!page_token) return out;
    }
  }

  // machines --------------------------------------------------------------

  /**
   * CreateMachine: a new machine `machines/{machineId}`. `clock` is 'manual'
   * (deterministic: ksmd only steps on request), 'realtime' or a ClockMode.
   */
  async createMachine(machineId, opts = {}) {
    const {
      nodes = 2, blocksPerNode = 4, pagesPerBlock = 64, clock: c = 'manual', profile = '',
    } = opts;
    const proto = await this.call('machines', 'CreateMachine', {
      machine_id: machineId,
      machine: {
        topology: { nodes, blocks_per_node: blocksPerNode, pages_per_block: u64(pagesPerBlock) },
        clock_mode: clock(c),
        profile,
      },
    });
    return new Machine(this, proto.name, proto);
  }

  /** A handle on an existing machine (no RPC): 'demo' or 'machines/demo'. */
  machine(idOrName) {
    const name = idOrName.startsWith('machines/') ? idOrName : `machines/${idOrName}`;
    return new Machine(this, name);
  }

  /** ListMachines, all pages (Machine messages). */
  listMachines(pageSize = 0) {
    return this.paginate('machines', 'ListMachines', { page_size: pageSize }, 'machines');
  }

  /**
   * Creates a machine, runs `fn(machine)` and deletes the machine afterwards
   * (also when fn throws), like the Python wrapper's `with` block.
   */
  async withMachine(machineId, opts, fn) {
    const m = await this.createMachine(machineId, opts);
    try {
      return await fn(m);
    } finally {
      await m.dispose();
    }
  }
}

/** A handle on `machines/{machine}`. */
class Machine {
  constructor(client, name, proto = null) {
    this.client = client;
    this.name = name;
    this.proto = proto;
    this.ksm = new Ksm(client, `${name}/ksm`);
  }

  get id() {
    return this.name.split('/')[1];
  }

  /** GetMachine (topology, per-node page counts, ...). */
  async get() {
    this.proto = await this.client.call('machines', 'GetMachine', { name: this.name });
    return this.proto;
  }

  /** DeleteMachine. */
  async delete() {
    await this.client.call('machines', 'DeleteMachine', { name: this.name });
  }

  /** DeleteMachine, ignoring NOT_FOUND (the machine is already gone). */
  async dispose() {
    try {
      await this.delete();
    } catch (err) {
      if (!(err instanceof MemnodeError) || err.code !== grpc.status.NOT_FOUND) throw err;
    }
  }

  /** CheckMachine: self-check (`ok`, `violations`) and state digest. */
  check() {
    return this.client.call('machines', 'CheckMachine', { name: this.name });
  }

  /** GetPageFrame: the struct page of `pfn`. */
  page(pfn) {
    return this.client.call('machines', 'GetPageFrame', { machine: this.name, pfn: u64(pfn) });
  }

  /** ListPageFrames over [startPfn, startPfn + count), all pages. */
  pages(startPfn, count, { skipFree = false, pageSize = 0 } = {}) {
    return this.client.paginate('machines', 'ListPageFrames', {
      machine: this.name, start_pfn: u64(startPfn), count: u64(count),
      skip_free: skipFree, page_size: pageSize,
    }, 'frames');
  }

  // processes -------------------------------------------------------------

  /** CreateProcess: a process with an empty address space. */
  async createProcess({ uid = 0, privileged = false, homeNode = 0 } = {}) {
    const proto = await this.client.call('processes', 'CreateProcess', {
      parent: this.name,
      process: { uid, privileged, home_node: homeNode },
    });
    return new Process(this.client, proto.name, proto);
  }

  /** A handle on process `pid` (no RPC). */
  process(pid) {
    return new Process(this.client, `${this.name}/processes/${pid}`);
  }

  /** ListProcesses, all pages, as Process handles (`.proto` filled). */
  async processes({ showExited = false, pageSize = 0 } = {}) {
    const protos = await this.client.paginate('processes', 'ListProcesses', {
      parent: this.name, page_size: pageSize, show_exited: showExited,
    }, 'processes');
    return protos.map((p) => new Process(this.client, p.name, p));
  }

  // memory blocks and hotplug ---------------------------------------------

  /** ListMemoryBlocks, all pages, as MemoryBlock handles (`.proto` filled). */
  async blocks(pageSize = 0) {
    const protos = await this.client.paginate('blocks', 'ListMemoryBlocks', {
      parent: this.name, page_size: pageSize,
    }, 'memory_blocks');
    return protos.map((b) => new MemoryBlock(this.client, b.name, b));
  }

  /** A handle on memory block `block` (no RPC). */
  block(block) {
    return new MemoryBlock(this.client, `${this.name}/memoryBlocks/${block}`);
  }

  /** AddMemoryBlock: hot-adds a block to `node` (it starts OFFLINE). */
  async addBlock(node) {
    const proto = await this.client.call('blocks', 'AddMemoryBlock', { parent: this.name, node });
    return new MemoryBlock(this.client, proto.name, proto);
  }

  /**
   * InjectNotifierFailure: calls of `event` ('going-offline',
   * 'MEM_GOING_OFFLINE' or a number) reach a notifier at `priority` that
   * fails with `errnum` ('EBUSY' or a number); `count` failures, 0 = until
   * cleared.
   */
  async injectNotifierFailure(event, priority, errnum, count = 0) {
    await this.client.call('blocks', 'InjectNotifierFailure', {
      parent: this.name, event: memEvent(event), priority, errnum: errnoValue(errnum), count,
    });
  }

  /** ClearNotifierFailures: removes every injected notifier. */
  async clearNotifierFailures() {
    await this.client.call('blocks', 'ClearNotifierFailures', { parent: this.name });
  }

  /**
   * WatchEvents: the grpc-js readable stream of MachineEvent messages (an
   * async iterable). Cancel it with `.cancel()`. `kinds` are EventKind
   * numbers (empty: all).
   */
  watchEvents(kinds = []) {
    return this.client.stubs.events.WatchEvents({ name: this.name, kinds });
  }
}

/**
 * A handle on `machines/{machine}/memoryBlocks/{block}` (sysfs
 * /sys/devices/system/memory/memoryN). offline / resume / cancel resolve to
 * the OfflineReport as a Result; online / remove to a Result over
 * SyscallResult.
 */
class MemoryBlock {
  constructor(client, name, proto = null) {
    this.client = client;
    this.name = name;
    this.proto = proto;
  }

  get id() {
    return Number(this.name.slice(this.name.lastIndexOf('/') + 1));
  }

  get machineName() {
    return this.name.split('/memoryBlocks/')[0];
  }

  _rpc(method, request, timeout) {
    return this.client.call('blocks', method, request, timeout);
  }

  /** GetMemoryBlock (state, node, pfns, page counts, removable). */
  async get() {
    this.proto = await this._rpc('GetMemoryBlock', { name: this.name });
    return this.proto;
  }

  /** The block's current MemoryBlockState (one GetMemoryBlock). */
  async state() {
    return (await this.get()).state;
  }

  /**
   * OfflineMemoryBlock (`echo offline > state`). `pauseAfter` is undefined,
   * 'isolated', 'going-offline', 'migrated' or an OfflinePhase number;
   * `timeoutMs` the migration-loop deadline in emulated ms (0: the server's
   * 120 s); `timeout` the call's deadline in seconds.
   */
  async offline(pauseAfter, { timeoutMs = 0, pauseTtlSeconds = 0, timeout } = {}) {
    return new Result(await this._rpc('OfflineMemoryBlock', {
      name: this.name, pause_after: phase(pauseAfter), timeout_ms: u64(timeoutMs),
      pause_ttl_seconds: pauseTtlSeconds,
    }, timeout));
  }

  /** ResumeOffline of a paused offline, optionally pausing again later. */
  async resume(pauseAfter, { timeout } = {}) {
    return new Result(await this._rpc('ResumeOffline', {
      name: this.name, pause_after: phase(pauseAfter),
    }, timeout));
  }

  /** CancelOffline of a paused offline (MEM_CANCEL_OFFLINE; EINTR). */
  async cancel() {
    return new Result(await this._rpc('CancelOffline', { name: this.name }));
  }

  /** OnlineMemoryBlock (`echo online > state`). */
  async online() {
    return new Result(await this._rpc('OnlineMemoryBlock', { name: this.name }));
  }

  /** RemoveMemoryBlock of an OFFLINE block (EBUSY otherwise). */
  async remove() {
    return new Result(await this._rpc('RemoveMemoryBlock', { name: this.name }));
  }

  /** AllocateKernelPages: `count` kernel pages (unmovable or non-LRU). */
  async kernelPages(count, unmovable = false) {
    const resp = await this._rpc('AllocateKernelPages', {
      name: this.name, count: u64(count), unmovable,
    });
    this.proto = resp.memory_block;
    return resp;
  }

  /** FreeKernelPages: frees up to `count` kernel pages of the block. */
  async freeKernelPages(count) {
    const resp = await this._rpc('FreeKernelPages', { name: this.name, count: u64(count) });
    this.proto = resp.memory_block;
    return resp;
  }
}

/**
 * A handle on `machines/{machine}/processes/{pid}` and its syscalls. Methods
 * that emulate a syscall resolve to a Result (check `.ok` / `.errnum`); they
 * reject with MemnodeError only for unusable requests.
 */
class Process {
  constructor(client, name, proto = null) {
    this.client = client;
    this.name = name;
    this.proto = proto;
  }

  get pid() {
    return Number(this.name.slice(this.name.lastIndexOf('/') + 1));
  }

  get machineName() {
    return this.name.split('/processes/')[0];
  }

  _rpc(method, request) {
    return this.client.call('processes', method, request);
  }

  _numa(method, request) {
    return this.client.call('numa', method, request);
  }

  // lifecycle -------------------------------------------------------------

  /** GetProcess (VMAs, page counts, ksm_registered, ...). */
  async get() {
    this.proto = await this._rpc('GetProcess', { name: this.name });
    return this.proto;
  }

  /** fork(2): resolves to the child. */
  async fork() {
    const proto = await this._rpc('ForkProcess', { name: this.name });
    return new Process(this.client, proto.name, proto);
  }

  /** exit(2): the ExitProcessResponse (pages_freed). */
  exit() {
    return this._rpc('ExitProcess', { name: this.name });
  }

  // address space ---------------------------------------------------------

  /** mmap(2) of anonymous memory; `result.address` is the start. */
  async mmap(length, p = 'rw', { shared = false, address = 0, fixed = false } = {}) {
    return new Result(await this._rpc('Mmap', {
      name: this.name, address: u64(address), length: u64(length), prot: prot(p), shared, fixed,
    }));
  }

  /** munmap(2). */
  async munmap(address, length) {
    return new Result(await this._rpc('Munmap', {
      name: this.name, address: u64(address), length: u64(length),
    }));
  }

  /** mprotect(2). */
  async mprotect(address, length, p) {
    return new Result(await this._rpc('Mprotect', {
      name: this.name, address: u64(address), length: u64(length), prot: prot(p),
    }));
  }

  /** madvise(2): 'mergeable', 'unmergeable', 'dontneed' or an Advice. */
  async madvise(address, length, a) {
    return new Result(await this._rpc('Madvise', {
      name: this.name, address: u64(address), length: u64(length), advice: advice(a),
    }));
  }

  // memory contents -------------------------------------------------------

  /** WriteMemory: stores `data` (Buffer / Uint8Array / string) at `address`. */
  async write(address, data) {
    return new Result(await this._rpc('WriteMemory', {
      name: this.name, address: u64(address), data: Buffer.from(data),
    }));
  }

  /**
   * FillMemory with exactly one of `byte`, `pattern64` or `seed` (splitmix64
   * random stream, see docs/API.md).
   */
  async fill(address, length, { byte, pattern64, seed } = {}) {
    const given = [byte, pattern64, seed].filter((x) => x !== undefined && x !== null);
    if (given.length !== 1) throw new TypeError('give exactly one of byte, pattern64, seed');
    const req = { name: this.name, address: u64(address), length: u64(length) };
    if (byte !== undefined && byte !== null) req.byte_value = byte;
    else if (pattern64 !== undefined && pattern64 !== null) req.pattern64 = u64(pattern64);
    else req.random_seed = u64(seed);
    return new Result(await this._rpc('FillMemory', req));
  }

  /** ReadMemory (observation only); bytes in `result.data` (a Buffer). */
  async read(address, length) {
    return new Result(await this._rpc('ReadMemory', {
      name: this.name, address: u64(address), length: u64(length),
    }));
  }

  /**
   * Reads a range in ReadMemory calls of at most `chunk` bytes; rejects with
   * an Error carrying `errnum` if any part fails.
   */
  async readBytes(address, length, chunk = 256 << 10) {
    const parts = [];
    let addr = BigInt(u64(address));
    const end = addr + BigInt(u64(length));
    while (addr < end) {
      const n = end - addr < BigInt(chunk) ? end - addr : BigInt(chunk);
      const res = await this.read(addr, n);
      if (!res.ok) {
        const err = new Error(`ReadMemory ${res.errnoName} at 0x${addr.toString(16)}`);
        err.errnum = res.errnum;
        throw err;
      }
      parts.push(res.data);
      addr += n;
    }
    return Buffer.concat(parts);
  }

  /** DigestMemory; hex digest in `result.digest` (see docs/API.md). */
  async digest(address, length) {
    return new Result(await this._rpc('DigestMemory', {
      name: this.name, address: u64(address), length: u64(length),
    }));
  }

  /** TouchMemory: read fault on every page of the range. */
  async touch(address, length) {
    return new Result(await this._rpc('TouchMemory', {
      name: this.name, address: u64(address), length: u64(length),
    }));
  }

  /** PinPages (get_user_pages); `result.pages` pinned. */
  async pin(address, length) {
    return new Result(await this._rpc('PinPages', {
      name: this.name, address: u64(address), length: u64(length),
    }));
  }

  /** UnpinPages; `result.pages` unpinned. */
  async unpin(address, length) {
    return new Result(await this._rpc('UnpinPages', {
      name: this.name, address: u64(address), length: u64(length),
    }));
  }

  /** TranslateAddresses: one PageTranslation per page (pagemap). */
  async translate(address, pages = 1) {
    const resp = await this._rpc('TranslateAddresses', {
      name: this.name, address: u64(address), pages: u64(pages),
    });
    return resp.pages;
  }

  /** The pfn (decimal string) mapped at `address`, or null when no pte. */
  async pfn(address) {
    const [t] = await this.translate(address, 1);
    return t.present ? t.pfn : null;
  }

  /** ListRmapItems of this process (KSM's view of its pages). */
  rmapItems(pageSize = 0) {
    return new Ksm(this.client, `${this.machineName}/ksm`).rmapItems(this.pid, pageSize);
  }

  // NUMA policy and migration ---------------------------------------------

  /** set_mempolicy(2): mode 'default' | 'preferred' | 'bind' | 'interleave'. */
  async setMempolicy(m, nodes = 0) {
    return new Result(await this._numa('SetMempolicy', {
      name: this.name, mode: mode(m), nodes: nodeMask(nodes),
    }));
  }

  /** get_mempolicy(2): task policy, or of the VMA at `address`. */
  async getMempolicy(address, node = false) {
    const req = { name: this.name, node_of_address: node };
    if (address !== undefined && address !== null) req.address = u64(address);
    return new Result(await this._numa('GetMempolicy', req));
  }

  /** mbind(2) over [address, address + length). */
  async mbind(address, length, m, nodes = 0, { flags = 0, strict = false, move = false, moveAll = false } = {}) {
    let bits = flags;
    if (strict) bits |= MbindFlag.MPOL_MF_STRICT;
    if (move) bits |= MbindFlag.MPOL_MF_MOVE;
    if (moveAll) bits |= MbindFlag.MPOL_MF_MOVE_ALL;
    return new Result(await this._numa('Mbind', {
      name: this.name, address: u64(address), length: u64(length), mode: mode(m),
      nodes: nodeMask(nodes), flags: bits,
    }));
  }

  /** migrate_pages(2) called by this process on `target` (pid, Process, 0). */
  async migratePages(target, oldNodes, newNodes) {
    return new Result(await this._numa('MigratePages', {
      caller: this.name, pid: pidOf(target), old_nodes: nodeMask(oldNodes),
      new_nodes: nodeMask(newNodes),
    }));
  }

  /** move_pages(2); without `nodes` query mode. `result.status` per address. */
  async movePages(addresses, nodes, { target = 0, flags = MbindFlag.MPOL_MF_MOVE } = {}) {
    const req = {
      caller: this.name, pid: pidOf(target), addresses: addresses.map(u64), flags,
    };
    if (nodes) req.nodes = nodes.map(Number);
    return new Result(await this._numa('MovePages', req));
  }
}

/** A handle on `machines/{machine}/ksm` (sysfs knobs, ksmd, trees). */
class Ksm {
  constructor(client, name) {
    this.client = client;
    this.name = name;
  }

  get machineName() {
    return this.name.slice(0, this.name.lastIndexOf('/ksm'));
  }

  _rpc(method, request, timeout) {
    return this.client.call('ksm', method, request, timeout);
  }

  /** GetKsm: knobs and counters. */
  get() {
    return this._rpc('GetKsm', { name: this.name });
  }

  /** UpdateKsm with the given knobs; `result.ksm` is the state after. */
  async set({ run, pagesToScan, sleepMillisecs, timeout } = {}) {
    const req = { name: this.name };
    if (run !== undefined) req.run = u64(run);
    if (pagesToScan !== undefined) req.pages_to_scan = u64(pagesToScan);
    if (sleepMillisecs !== undefined) req.sleep_millisecs = u64(sleepMillisecs);
    return new Result(await this._rpc('UpdateKsm', req, timeout));
  }

  /** WriteKsmSysfs: writes `value` as text to /sys/kernel/mm/ksm/`file`. */
  async writeSysfs(file, value, { timeout } = {}) {
    return new Result(await this._rpc('WriteKsmSysfs', { name: this.name, file, value }, timeout));
  }

  /** StepKsm: exactly one of `visits` or `fullScans`. */
  step({ visits, fullScans, maxVisits = 0 } = {}) {
    if ((visits === undefined) === (fullScans === undefined)) {
      throw new TypeError('give exactly one of visits, fullScans');
    }
    const req = { name: this.name, max_visits: u64(maxVisits) };
    if (visits !== undefined) req.visits = u64(visits);
    else req.full_scans = u64(fullScans);
    return this._rpc('StepKsm', req);
  }

  /** ListStableNodes, all pages, in tree order. */
  stableNodes(pageSize = 0) {
    return this.client.paginate('ksm', 'ListStableNodes', {
      parent: this.name, page_size: pageSize,
    }, 'stable_nodes');
  }

  /** ListUnstableItems, all pages, in tree order. */
  unstableItems(pageSize = 0) {
    return this.client.paginate('ksm', 'ListUnstableItems', {
      parent: this.name, page_size: pageSize,
    }, 'items');
  }

  /** ListRmapItems of process `pid`, all pages, in address order. */
  rmapItems(pid, pageSize = 0) {
    return this.client.paginate('ksm', 'ListRmapItems', {
      process: `${this.machineName}/processes/${pid}`, page_size: pageSize,
    }, 'items');
  }

  /** The five sysfs counters as numbers (they fit easily in 2^53). */
  async counters() {
    const k = await this.get();
    return {
      pages_shared: Number(k.pages_shared),
      pages_sharing: Number(k.pages_sharing),
      pages_unshared: Number(k.pages_unshared),
      pages_volatile: Number(k.pages_volatile),
      full_scans: Number(k.full_scans),
    };
  }
}

module.exports = {
  Client,
  Machine,
  Process,
  Ksm,
  MemoryBlock,
  Result,
  MemnodeError,
  loadProtos,
  errorInfoFromStatusBytes,
  nodeMask,
  u64,
  enumName,
  enumPrefix,
  displayName,
  enumValue,
  // Argument helpers (exported for tests).
  args: { advice, clock, mode, phase, memEvent, errnoValue },
  status: grpc.status,
  PAGE_SIZE,
  Errno,
  ClockMode,
  PageState,
  Prot,
  Advice,
  MempolicyMode,
  MbindFlag,
  OfflinePhase,
  MemoryBlockState,
  MemoryNotifierEvent,
  RmapState,
  EventKind,
};
