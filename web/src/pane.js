// One machine's view: topology, processes and syscalls, KSM (counters over
// time, the stable and unstable trees, the scan cursor, stepping with what
// changed highlighted, predict-then-reveal) and hot-remove. Everything it
// shows comes from the API; what changed comes from the machine's event
// stream (WatchEvents) and from comparing listings before and after a step.
import { api, describeError, reasonOf, Code, ConnectError } from "./api.js";
import { h, s, put, hex, parseNum, option } from "./dom.js";
import { drawTree } from "./tree.js";
import { drawChart, legend, COUNTERS } from "./chart.js";
import { ClockMode } from "../gen/memnode/v1/common_pb.js";
import { Advice } from "../gen/memnode/v1/process_pb.js";
import { RmapState, StableNodeSchema } from "../gen/memnode/v1/ksm_pb.js";
import { EventKind, PruneReason, MigrateReason } from "../gen/memnode/v1/events_pb.js";
import {
  MemoryBlockState,
  OfflinePhase,
  MemoryNotifierEvent,
} from "../gen/memnode/v1/hotplug_pb.js";

const PAGE = 4096n;
const MAX_RMAP_PROCESSES = 16;
const MAX_EVENTS = 300;
const MAX_CHANGES = 200;
const MAX_DRAWN = 200; // larger trees are listed, not drawn
const PHASES = [
  OfflinePhase.ISOLATED,
  OfflinePhase.GOING_OFFLINE,
  OfflinePhase.MIGRATED,
  OfflinePhase.DONE,
];
const digest12 = (d) => (d ? d.slice(0, 12) : "-");
const itemKey = (pid, addr) => `${pid}:${hex(addr)}`;

// Fields of StableNode this view draws itself; any other field (for example
// the chains and dups of a later profile, once in the proto) is shown as
// "name=value" lines, so the tree shows what the server sends.
const KNOWN_STABLE_FIELDS = new Set([
  "id",
  "kpfn",
  "node",
  "contentDigest",
  "mappings",
  "stale",
  "mapcount",
  "depth",
]);

function extraLines(node) {
  const lines = [];
  for (const f of StableNodeSchema.fields) {
    if (KNOWN_STABLE_FIELDS.has(f.localName)) continue;
    const v = node[f.localName];
    if (v === undefined || v === null || v === false || v === 0 || v === 0n || v === "") continue;
    if (Array.isArray(v)) {
      if (v.length === 0) continue;
      lines.push(`${f.name}: ${v.length}`);
      for (const x of v.slice(0, 6))
        lines.push(
          "  " +
            (typeof x === "object"
              ? Object.entries(x)
                  .filter(([k]) => k !== "$typeName")
                  .map(([k, y]) => `${k}=${typeof y === "bigint" ? y : JSON.stringify(y)}`)
                  .join(" ")
              : String(x)),
        );
    } else {
      lines.push(`${f.name}=${typeof v === "object" ? JSON.stringify(v) : v}`);
    }
  }
  return lines;
}

export class Pane {
  constructor(app, index) {
    this.app = app;
    this.index = index;
    this.machine = "";
    this.data = null;
    this.history = [];
    this.events = [];
    this.changes = [];
    this.hl = { merge: new Set(), inserted: new Set() };
    this.removed = [];
    this.offline = null; // {block, report, phases: [], migrations: [], pruned: [], notes: []}
    this.predict = { on: false, pending: null, result: null, score: [0, 0] };
    this.stream = null;
    this.refreshTimer = null;
    this.pollTimer = null;
    this.busy = 0;
    this.seq = 0; // user actions completed (data-seq: tests wait on it)
    this.el = h("section", { class: "pane", "data-testid": `pane-${index}`, "data-seq": "0" });
    this.build();
  }

  // ---- skeleton --------------------------------------------------------------

  build() {
    this.select = h("select", {
      "data-testid": "pane-select",
      onchange: () => this.setMachine(this.select.value),
    });
    this.status = h("div", { class: "status", "data-testid": "status" });
    this.sec = {
      header: h("div", { class: "machine-header", "data-testid": "machine-header" }),
      topology: h("div", { class: "topology", "data-testid": "topology" }),
      syscalls: h("div", { class: "syscalls" }),
      ksm: h("div", { class: "ksm" }),
      trees: h("div", { class: "trees" }),
      offline: h("div", { class: "offline" }),
      events: h("div", { class: "events" }),
    };
    put(
      this.el,
      h("div", { class: "pane-bar" }, h("label", {}, `Pane ${this.index + 1}: machine `, this.select), this.status),
      this.sec.header,
      h("details", { open: true }, h("summary", {}, "Topology"), this.sec.topology),
      h("details", { open: true }, h("summary", {}, "Processes and system calls"), this.sec.syscalls),
      h("details", { open: true }, h("summary", {}, "KSM"), this.sec.ksm, this.sec.trees),
      h("details", { open: true }, h("summary", {}, "Hot-remove"), this.sec.offline),
      h("details", { open: false }, h("summary", {}, "Event stream"), this.sec.events),
    );
    this.buildSyscallForm();
  }

  setMachines(names) {
    const cur = this.machine;
    put(
      this.select,
      option("", "(none)", !cur),
      names.map((n) => option(n, n.replace(/^machines\//, ""), n === cur)),
    );
  }

  note(text, kind = "info") {
    put(this.status, h("span", { class: `note note-${kind}` }, text));
  }

  // Marks the end of a user action (after its refresh).
  done() {
    this.seq += 1;
    this.el.dataset.seq = String(this.seq);
  }

  async guard(what, fn) {
    this.busy++;
    try {
      return await fn();
    } catch (err) {
      this.note(`${what}: ${describeError(err)}`, "error");
      return undefined;
    } finally {
      this.busy--;
    }
  }

  // ---- machine, stream, refresh ----------------------------------------------

  async setMachine(name) {
    if (this.stream) this.stream.abort();
    clearInterval(this.pollTimer);
    this.machine = name;
    this.data = null;
    this.history = [];
    this.events = [];
    this.changes = [];
    this.changesDropped = 0;
    this.hl = { merge: new Set(), inserted: new Set() };
    this.removed = [];
    this.offline = null;
    this.predict.pending = null;
    this.predict.result = null;
    this.select.value = name;
    this.note(name ? `watching ${name}` : "");
    if (!name) {
      this.render();
      return;
    }
    this.openStream(name);
    await this.refresh(true);
    this.done();
  }

  openStream(name) {
    const ac = new AbortController();
    this.stream = ac;
    (async () => {
      for (let attempt = 0; !ac.signal.aborted && attempt < 20; attempt++) {
        try {
          for await (const ev of api.events.watchEvents({ name }, { signal: ac.signal })) {
            attempt = 0;
            this.onEvent(ev);
          }
        } catch (err) {
          if (ac.signal.aborted) return;
          const e = ConnectError.from(err);
          if (e.code === Code.NotFound) {
            this.note(`${name} was deleted`, "error");
            this.app.reloadMachines();
            return;
          }
          this.note(`event stream: ${describeError(err)} (reconnecting)`, "error");
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
  }

  onEvent(ev) {
    this.events.unshift(ev);
    if (this.events.length > MAX_EVENTS) this.events.length = MAX_EVENTS;
    const change = this.describeEvent(ev);
    if (change) this.changes.push(change);
    if (ev.kind === EventKind.MERGE) this.hl.merge.add(String(ev.stableNodeId));
    if (this.offline && ev.block === this.offline.block) {
      if (ev.kind === EventKind.OFFLINE_PHASE) this.offline.phases.push(ev.offlinePhase);
      if (ev.kind === EventKind.MEMORY_NOTIFY)
        this.offline.notes.push(
          `${MemoryNotifierEvent[ev.memoryEvent]} ${ev.notifier}(${ev.notifierPriority}) ${ev.errnum ? "errno " + ev.errnum : "ok"}`,
        );
    }
    if (this.offline && ev.kind === EventKind.MIGRATE && ev.migrateReason === MigrateReason.MEMORY_OFFLINE)
      this.offline.migrations.push(ev);
    if (this.offline && ev.kind === EventKind.PRUNE && ev.pruneReason === PruneReason.OFFLINE)
      this.offline.pruned.push(ev);
    if (this.changes.length > MAX_CHANGES) {
      this.changesDropped += this.changes.length - MAX_CHANGES;
      this.changes.splice(0, this.changes.length - MAX_CHANGES);
    }
    // Coalesced refresh (the listings follow the events) and rendering (a
    // REALTIME machine can send thousands of events a second).
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), this.isRealtime() ? 700 : 120);
    if (!this.renderPending) {
      this.renderPending = true;
      setTimeout(() => {
        this.renderPending = false;
        this.renderEvents();
        this.renderChanges();
      }, 50);
    }
  }

  describeEvent(ev) {
    const k = ev.kind;
    const at = (pid, a) => `pid ${pid} ${hex(a)}`;
    switch (k) {
      case EventKind.MERGE:
        return {
          kind: "merge",
          text: `merge: ${at(ev.pid, ev.address)} joined stable node #${ev.stableNodeId} (kpfn ${ev.pfn})${ev.newNode ? ", a new node" : ""}`,
        };
      case EventKind.COW_BREAK:
        return { kind: "cow", text: `COW break: ${at(ev.pid, ev.address)} copied KSM page ${ev.pfn}` };
      case EventKind.PRUNE:
        return {
          kind: "prune",
          text: `stable node #${ev.stableNodeId} (kpfn ${ev.pfn}) pruned: ${PruneReason[ev.pruneReason]}, ${ev.value} items stripped`,
        };
      case EventKind.PASS_END:
        return { kind: "pass", text: `pass ${ev.value} ended` };
      case EventKind.PROCESS_EXIT:
        return { kind: "exit", text: `pid ${ev.pid} exited` };
      case EventKind.MIGRATE:
        return {
          kind: "migrate",
          text: `migrate (${MigrateReason[ev.migrateReason]}): ${ev.ksm ? "KSM " : ""}page ${ev.pfn} ${ev.errnum ? "failed, errno " + ev.errnum : "moved"}`,
        };
      case EventKind.OFFLINE_PHASE:
        return { kind: "offline", text: `block ${ev.block}: phase ${OfflinePhase[ev.offlinePhase]}` };
      case EventKind.OFFLINE_RESULT:
        return { kind: "offline", text: `block ${ev.block}: offline ${ev.errnum ? "failed, errno " + ev.errnum : "done"}` };
      case EventKind.KSM_BATCH_HELD:
        return { kind: "lock", text: "ksmd batch held: an offline holds KSM's lock" };
      case EventKind.DROPPED:
        return { kind: "dropped", text: `${ev.dropped} events lost (slow reader)` };
      default:
        return null;
    }
  }

  isRealtime() {
    return this.data?.machine?.clockMode === ClockMode.REALTIME;
  }

  async refresh(first = false) {
    const name = this.machine;
    if (!name) return;
    const got = await this.guard("refresh", async () => {
      const [machine, blocks, procs, ksm, stable, unstable] = await Promise.all([
        api.machines.getMachine({ name }),
        api.blocks.listMemoryBlocks({ parent: name, pageSize: 4096 }),
        api.processes.listProcesses({ parent: name, pageSize: 1000 }),
        api.ksm.getKsm({ name: `${name}/ksm` }),
        api.ksm.listStableNodes({ parent: `${name}/ksm`, pageSize: 1000 }),
        api.ksm.listUnstableItems({ parent: `${name}/ksm`, pageSize: 1000 }),
      ]);
      const rmap = new Map();
      await Promise.all(
        procs.processes.slice(0, MAX_RMAP_PROCESSES).map(async (p) => {
          const r = await api.ksm.listRmapItems({ process: p.name, pageSize: 1000 });
          rmap.set(p.pid, r.items);
        }),
      );
      return { machine, blocks: blocks.memoryBlocks, procs: procs.processes, ksm, stable: stable.stableNodes, unstable: unstable.items, rmap };
    });
    if (!got || name !== this.machine) return;
    this.data = got;
    const k = got.ksm;
    const last = this.history[this.history.length - 1];
    if (!last || COUNTERS.some(([c]) => last[c] !== k[c]) || first)
      this.history.push(Object.fromEntries(COUNTERS.map(([c]) => [c, k[c]])));
    if (this.history.length > 300) this.history.shift();
    if (first && this.isRealtime()) this.pollTimer = setInterval(() => this.refresh(), 1000);
    this.render();
  }

  // ---- rendering -----------------------------------------------------------

  render() {
    const d = this.data;
    if (!d) {
      for (const el of Object.values(this.sec)) if (el !== this.sec.syscalls) put(el);
      return;
    }
    this.renderHeader();
    this.renderTopology();
    this.renderSyscallTargets();
    this.renderKsm();
    this.renderTrees();
    this.renderOffline();
    this.renderEvents();
  }

  renderHeader() {
    const m = this.data.machine;
    put(
      this.sec.header,
      h("h2", {}, m.name),
      h(
        "span",
        { class: "facts" },
        `${m.profile} · ${ClockMode[m.clockMode]} clock · ${m.topology.nodes} nodes × ${m.topology.blocksPerNode} blocks × ${m.topology.pagesPerBlock} pages · ${m.processCount} processes · emulated time ${(Number(m.emulatedTimeNs) / 1e6).toFixed(1)} ms`,
      ),
    );
  }

  renderTopology() {
    const { machine: m, blocks, procs } = this.data;
    const nodes = h(
      "table",
      { class: "grid", "data-testid": "nodes" },
      h("tr", {}, ["node", "blocks", "present", "free", "anon", "ksm", "shmem", "reserved"].map((c) => h("th", {}, c))),
      m.nodes.map((n) =>
        h("tr", {}, [n.node, n.blocks, n.presentPages, n.freePages, n.anonPages, n.ksmPages, n.shmemPages, n.reservedPages].map((c) => h("td", {}, String(c)))),
      ),
    );
    const kinds = [
      ["anonPages", "anon"],
      ["ksmPages", "ksm"],
      ["shmemPages", "shmem"],
      ["reservedPages", "reserved"],
      ["freePages", "free"],
    ];
    const blockBoxes = h(
      "div",
      { class: "blocks" },
      blocks.map((b) => {
        const total = Number(b.pages) || 1;
        const bar = s("svg", { class: "pagebar", width: 120, height: 8, viewBox: "0 0 120 8" });
        let x = 0;
        for (const [f, cls] of kinds) {
          const w = (120 * Number(b[f])) / total;
          if (w > 0) bar.append(s("rect", { class: `kind-${cls}`, x, y: 0, width: w, height: 8 }));
          x += w;
        }
        const state = MemoryBlockState[b.state];
        return h(
          "div",
          { class: `block state-${state.toLowerCase()}`, "data-testid": `block-${b.block}`, "data-state": state },
          h("div", { class: "block-title" }, `memory${b.block} · node ${b.node}`),
          h("div", { class: "block-state" }, state.replace("_", "-").toLowerCase()),
          bar,
          h(
            "div",
            { class: "block-counts" },
            `pfn ${b.startPfn}–${b.startPfn + b.pages - 1n} · anon ${b.anonPages} ksm ${b.ksmPages} free ${b.freePages}${b.reservedPages ? " reserved " + b.reservedPages : ""}${b.removable ? "" : " · not removable"}`,
          ),
        );
      }),
    );
    const procTable = h(
      "table",
      { class: "grid", "data-testid": "processes" },
      h("tr", {}, ["pid", "home node", "state", "VMAs", "anon", "ksm", "zero", "KSM registered"].map((c) => h("th", {}, c))),
      procs.map((p) =>
        h(
          "tr",
          { "data-pid": p.pid },
          h("td", {}, String(p.pid)),
          h("td", {}, String(p.homeNode)),
          h("td", {}, p.state === 1 ? "running" : "exited"),
          h("td", {}, p.vmas.map((v) => `${hex(v.start)}–${hex(v.end)}${v.mergeable ? " mergeable" : ""}`).join(", ") || "-"),
          h("td", {}, String(p.anonPages)),
          h("td", {}, String(p.ksmPages)),
          h("td", {}, String(p.zeroPages)),
          h("td", {}, p.ksmRegistered ? "yes" : "no"),
        ),
      ),
    );
    put(
      this.sec.topology,
      h("div", { class: "legend" }, kinds.map(([, c]) => h("span", { class: `key kind-${c}` }, c))),
      nodes,
      blockBoxes,
      procTable,
    );
  }

  // ---- processes and syscalls --------------------------------------------------

  buildSyscallForm() {
    const f = (this.form = {
      op: h(
        "select",
        { "data-testid": "syscall-op", onchange: () => this.updateFormFields() },
        option("create", "create process"),
        option("mmap", "mmap (anonymous, read/write)"),
        option("write", "write text"),
        option("fill", "fill with a byte"),
        option("mergeable", "madvise MADV_MERGEABLE"),
        option("unmergeable", "madvise MADV_UNMERGEABLE"),
        option("munmap", "munmap"),
        option("fork", "fork"),
        option("exit", "exit"),
      ),
      pid: h("select", { "data-testid": "syscall-pid" }),
      home: h("input", { type: "number", min: 0, value: "0", "data-testid": "syscall-home", size: 3 }),
      addr: h("input", { type: "text", value: "0x7f0000000000", "data-testid": "syscall-address", size: 16 }),
      pages: h("input", { type: "number", min: 1, value: "1", "data-testid": "syscall-pages", size: 4 }),
      text: h("input", { type: "text", value: "AAAA", "data-testid": "syscall-text", size: 12 }),
      run: h("button", { "data-testid": "syscall-run", onclick: () => this.runSyscall() }, "Run"),
      result: h("span", { class: "result", "data-testid": "syscall-result" }),
    });
    this.formLabels = {
      pid: h("label", {}, "pid ", f.pid),
      home: h("label", {}, "home node ", f.home),
      addr: h("label", {}, "address ", f.addr),
      pages: h("label", {}, "pages ", f.pages),
      text: h("label", {}, "text / byte ", f.text),
    };
    put(
      this.sec.syscalls,
      h("div", { class: "form" }, f.op, Object.values(this.formLabels), f.run),
      f.result,
    );
    this.updateFormFields();
  }

  updateFormFields() {
    const op = this.form.op.value;
    const need = {
      create: ["home"],
      mmap: ["pid", "addr", "pages"],
      write: ["pid", "addr", "text"],
      fill: ["pid", "addr", "pages", "text"],
      mergeable: ["pid", "addr", "pages"],
      unmergeable: ["pid", "addr", "pages"],
      munmap: ["pid", "addr", "pages"],
      fork: ["pid"],
      exit: ["pid"],
    }[op];
    for (const [k, label] of Object.entries(this.formLabels)) label.hidden = !need.includes(k);
  }

  renderSyscallTargets() {
    const cur = this.form.pid.value;
    const running = this.data.procs.filter((p) => p.state === 1);
    put(this.form.pid, running.map((p) => option(String(p.pid), String(p.pid), String(p.pid) === cur)));
  }

  async runSyscall() {
    const m = this.machine;
    if (!m) return;
    const f = this.form;
    const op = f.op.value;
    const pname = `${m}/processes/${f.pid.value}`;
    const addr = () => parseNum(f.addr.value);
    const len = () => BigInt(f.pages.value || "1") * PAGE;
    const errno = (r) => (r.errnum ? `errno ${r.errnum}` : "ok");
    this.beginChanges(`${f.op.selectedOptions[0].textContent}`);
    const out = await this.guard(op, async () => {
      switch (op) {
        case "create": {
          const p = await api.processes.createProcess({ parent: m, process: { homeNode: Number(f.home.value || 0) } });
          return `created pid ${p.pid}`;
        }
        case "mmap": {
          const r = await api.processes.mmap({ name: pname, address: addr(), length: len(), prot: 3, fixed: false });
          return r.errnum ? errno(r) : `mapped at ${hex(r.address)}`;
        }
        case "write": {
          const r = await api.processes.writeMemory({ name: pname, address: addr(), data: new TextEncoder().encode(f.text.value) });
          return r.errnum ? `${errno(r)} at ${hex(r.faultAddress)}` : `wrote ${r.bytesDone} bytes`;
        }
        case "fill": {
          const r = await api.processes.fillMemory({ name: pname, address: addr(), length: len(), pattern: { case: "byteValue", value: Number(f.text.value) & 255 } });
          return r.errnum ? errno(r) : `filled ${r.bytesDone} bytes`;
        }
        case "mergeable":
        case "unmergeable": {
          const r = await api.processes.madvise({ name: pname, address: addr(), length: len(), advice: op === "mergeable" ? Advice.MERGEABLE : Advice.UNMERGEABLE });
          return errno(r);
        }
        case "munmap":
          return errno(await api.processes.munmap({ name: pname, address: addr(), length: len() }));
        case "fork": {
          const p = await api.processes.forkProcess({ name: pname });
          return `forked pid ${p.pid}`;
        }
        case "exit": {
          const r = await api.processes.exitProcess({ name: pname });
          return `exited, ${r.pagesFreed} pages freed`;
        }
      }
      return "";
    });
    if (out !== undefined) {
      put(f.result, out);
      this.note(`${op}: ${out}`);
    }
    await this.refresh();
    this.endChanges();
    this.done();
  }

  // ---- KSM ---------------------------------------------------------------------

  renderKsm() {
    const k = this.data.ksm;
    const manual = !this.isRealtime();
    const counters = h(
      "table",
      { class: "counters", "data-testid": "counters" },
      COUNTERS.map(([c, name], i) =>
        h("tr", {}, h("th", { class: `key key-${i}` }, name), h("td", { "data-testid": `counter-${name}` }, String(k[c]))),
      ),
    );
    const extras = h(
      "div",
      { class: "extras" },
      h("div", {}, `rmap items ${k.rmapItems} · stable nodes ${k.stableNodes} · mm slots ${k.mmSlots} · visits ${k.visitsTotal}`),
      h(
        "div",
        { "data-testid": "cursor" },
        k.cursorPid ? `scan cursor: pid ${k.cursorPid} at ${hex(k.cursorAddress)}` : "scan cursor: between passes",
      ),
      h(
        "div",
        { class: k.lockedByOffline ? "lock held" : "lock", "data-testid": "ksm-lock" },
        k.lockedByOffline ? "KSM lock: held by an offline (ksmd waits)" : "KSM lock: free",
      ),
      h("div", {}, `run ${k.run} · pages_to_scan ${k.pagesToScan} · sleep_millisecs ${k.sleepMillisecs}`),
    );
    const steps = h(
      "div",
      { class: "steps" },
      h("button", { "data-testid": "step-visit", disabled: !manual, onclick: () => this.step("visit") }, "Step 1 visit"),
      h("button", { "data-testid": "step-batch", disabled: !manual, onclick: () => this.step("batch") }, `Step 1 batch (${k.pagesToScan} visits)`),
      h("button", { "data-testid": "step-pass", disabled: !manual, onclick: () => this.step("pass") }, "Step 1 full pass"),
      h(
        "label",
        { class: "predict-toggle" },
        h("input", {
          type: "checkbox",
          "data-testid": "predict-mode",
          checked: this.predict.on ? true : undefined,
          onchange: (e) => {
            this.predict.on = e.target.checked;
            this.predict.pending = null;
            this.renderKsm();
          },
        }),
        " predict, then reveal",
      ),
      h(
        "span",
        { class: "run-knob" },
        h("button", { "data-testid": "ksm-run-1", onclick: () => this.setRun(1) }, "run=1"),
        h("button", { "data-testid": "ksm-run-0", onclick: () => this.setRun(0) }, "run=0"),
        h("button", { "data-testid": "ksm-run-2", onclick: () => this.setRun(2) }, "run=2 (unmerge)"),
      ),
    );
    put(
      this.sec.ksm,
      h("div", { class: "ksm-top" }, h("div", {}, counters, extras), h("div", {}, legend(), drawChart(this.history))),
      steps,
      manual ? null : h("p", { class: "hint" }, "REALTIME machine: ksmd runs by itself while run=1; stepping is for MANUAL machines."),
      this.renderPredict(),
      h("div", { class: "changes", "data-testid": "changes" }),
    );
    this.renderChanges();
  }

  async setRun(run) {
    this.beginChanges(`run=${run}`);
    await this.guard("run", () => api.ksm.updateKsm({ name: `${this.machine}/ksm`, run: BigInt(run) }));
    await this.refresh();
    this.endChanges();
    this.done();
  }

  async step(kind) {
    if (this.predict.on) {
      this.predict.pending = kind;
      this.predict.result = null;
      this.renderKsm();
      this.done();
      return;
    }
    await this.doStep(kind);
  }

  async doStep(kind) {
    const k = this.data.ksm;
    const until =
      kind === "visit"
        ? { case: "visits", value: 1n }
        : kind === "batch"
          ? { case: "visits", value: BigInt(k.pagesToScan || 1) }
          : { case: "fullScans", value: 1n };
    this.beginChanges(kind === "pass" ? "one full pass" : kind === "batch" ? "one batch" : "one visit");
    const r = await this.guard("step", () => api.ksm.stepKsm({ name: `${this.machine}/ksm`, until }));
    if (r) this.note(`step: ${r.visits} visits, ${r.passes} passes completed`);
    await this.refresh();
    this.endChanges();
    this.done();
    return r;
  }

  renderPredict() {
    const p = this.predict;
    if (!p.on) return null;
    if (p.pending) {
      const k = this.data.ksm;
      const inputs = COUNTERS.map(([c, name]) =>
        h("label", {}, name, " ", h("input", { type: "number", min: 0, value: String(k[c]), "data-testid": `predict-${name}`, "data-counter": c, size: 4 })),
      );
      const form = h(
        "div",
        { class: "predict", "data-testid": "predict-form" },
        h("div", {}, `Your prediction after ${p.pending === "pass" ? "one full pass" : p.pending === "batch" ? "one batch" : "one visit"}:`),
        inputs,
        h(
          "button",
          {
            "data-testid": "reveal",
            onclick: async () => {
              const guess = Object.fromEntries(inputs.map((l) => l.querySelector("input")).map((i) => [i.dataset.counter, BigInt(i.value || "0")]));
              const kind = p.pending;
              p.pending = null;
              await this.doStep(kind);
              const actual = this.data.ksm;
              p.result = COUNTERS.map(([c, name]) => ({ name, guess: guess[c], actual: actual[c], ok: guess[c] === actual[c] }));
              p.score[0] += p.result.every((x) => x.ok) ? 1 : 0;
              p.score[1] += 1;
              this.renderKsm();
            },
          },
          "Reveal",
        ),
      );
      return form;
    }
    if (p.result)
      return h(
        "div",
        { class: "predict" },
        h(
          "table",
          { class: "grid", "data-testid": "prediction-result" },
          h("tr", {}, h("th", {}, "counter"), h("th", {}, "you said"), h("th", {}, "kernel rules"), h("th", {}, "")),
          p.result.map((x) =>
            h("tr", { class: x.ok ? "right" : "wrong" }, h("td", {}, x.name), h("td", {}, String(x.guess)), h("td", {}, String(x.actual)), h("td", {}, x.ok ? "✓" : "✗")),
          ),
        ),
        h("div", { "data-testid": "prediction-score" }, `score: ${p.score[0]} of ${p.score[1]} steps predicted exactly`),
      );
    return h("p", { class: "hint" }, "Predict mode: a step button first asks for the counters you expect.");
  }

  // ---- what changed -------------------------------------------------------

  beginChanges(label) {
    this.changeLabel = label;
    this.changes = [];
    this.changesDropped = 0;
    this.hl = { merge: new Set(), inserted: new Set() };
    this.removed = [];
    this.before = this.snapshot();
  }

  snapshot() {
    if (!this.data) return null;
    const items = new Set();
    for (const [pid, list] of this.data.rmap) for (const it of list) items.add(itemKey(pid, it.address));
    const unstable = new Set(this.data.unstable.filter((i) => !i.previousPass).map((i) => itemKey(i.pid, i.address)));
    const stable = new Set(this.data.stable.map((n) => String(n.id)));
    return { items, unstable, stable };
  }

  endChanges() {
    const b = this.before;
    const a = this.snapshot();
    if (!b || !a) return;
    for (const key of b.items) if (!a.items.has(key)) this.removed.push(key);
    for (const key of a.unstable) if (!b.unstable.has(key)) this.hl.inserted.add(key);
    this.renderTrees();
    this.renderChanges();
  }

  renderChanges() {
    const box = this.el.querySelector('[data-testid="changes"]');
    if (!box) return;
    const chips = [
      ...this.changes.map((c) => h("li", { class: `chg chg-${c.kind}`, "data-kind": c.kind }, c.text)),
      ...[...this.hl.inserted].map((k) => h("li", { class: "chg chg-insert", "data-kind": "insert" }, `unstable tree: inserted ${k.replace(":", " ")}`)),
      ...this.removed.map((k) => h("li", { class: "chg chg-removed", "data-kind": "removed" }, `rmap item removed: ${k.replace(":", " ")}`)),
    ];
    if (this.changesDropped) chips.unshift(h("li", { class: "chg" }, `… and ${this.changesDropped} earlier changes`));
    put(
      box,
      this.changeLabel ? h("div", { class: "changes-title" }, `What changed (${this.changeLabel}):`) : null,
      chips.length ? h("ul", {}, chips) : this.changeLabel ? h("div", { class: "hint" }, "nothing visible changed") : null,
    );
  }

  renderTrees() {
    if (!this.data) return;
    const { stable, unstable, rmap, ksm } = this.data;
    const stableNodes = stable.map((n) => ({
      depth: n.depth,
      testid: `stable-node-${n.id}`,
      attrs: { "data-kpfn": String(n.kpfn), "data-sharers": n.mappings.map((m) => m.pid).join(","), "data-stale": n.stale ? "1" : "0" },
      classes: [n.stale ? "stale" : "", this.hl.merge.has(String(n.id)) ? "hl-merge" : ""].join(" "),
      lines: [
        `#${n.id} kpfn ${n.kpfn} (node ${n.node})${n.stale ? " STALE" : ""}`,
        `digest ${digest12(n.contentDigest)} · mapcount ${n.mapcount}`,
        ...n.mappings.map((m) => `← pid ${m.pid} ${hex(m.address)}`),
        ...extraLines(n),
      ],
    }));
    const current = unstable.filter((i) => !i.previousPass);
    const previous = unstable.filter((i) => i.previousPass);
    const unstableNodes = current.map((i) => ({
      depth: i.depth,
      testid: `unstable-item-${i.pid}-${hex(i.address)}`,
      classes: this.hl.inserted.has(itemKey(i.pid, i.address)) ? "hl-insert" : "",
      lines: [`pid ${i.pid} ${hex(i.address)}`, `digest ${digest12(i.contentDigest)}`, `checksum ${i.oldchecksum.toString(16).padStart(8, "0")} · seqnr ${i.seqnr}`],
    }));
    const rmapTables = [...rmap.entries()].sort((x, y) => x[0] - y[0]).map(([pid, items]) =>
      h(
        "table",
        { class: "grid rmap", "data-testid": `rmap-${pid}` },
        h("tr", {}, h("th", { colspan: 4 }, `pid ${pid}: rmap items`)),
        items.map((it) =>
          h(
            "tr",
            { class: ksm.cursorPid === pid && it.address >= ksm.cursorAddress && !items.some((x) => x.address >= ksm.cursorAddress && x.address < it.address) ? "at-cursor" : "" },
            h("td", {}, hex(it.address)),
            h("td", { class: `rmap-${RmapState[it.state]?.toLowerCase()}` }, RmapState[it.state] ?? "?"),
            h("td", {}, it.stableNodeId ? `node #${it.stableNodeId}` : it.previousPass ? "previous pass" : ""),
            h("td", {}, digest12(it.contentDigest)),
          ),
        ),
        items.length === 0 ? h("tr", {}, h("td", { colspan: 4, class: "hint" }, "no rmap item")) : null,
      ),
    );
    // A tree too large to draw is listed in content order instead.
    const treeOrList = (nodes) =>
      nodes.length > MAX_DRAWN
        ? h(
            "div",
            {},
            h("div", { class: "hint" }, `${nodes.length} elements: too many to draw; the first ${MAX_DRAWN} in content order (depth in the tree first):`),
            h("ol", { class: "tree-list" }, nodes.slice(0, MAX_DRAWN).map((n) => h("li", {}, `[${n.depth}] ${n.lines.join(" · ")}`))),
          )
        : (drawTree(nodes) ?? h("span", { class: "hint" }, "empty"));
    put(
      this.sec.trees,
      h("h3", {}, `Stable tree (${stable.length} node${stable.length === 1 ? "" : "s"})`),
      h("div", { class: "tree-box", "data-testid": "stable-tree", "data-count": stable.length }, treeOrList(stableNodes)),
      h("h3", {}, `Unstable tree of this pass (${current.length} item${current.length === 1 ? "" : "s"})`),
      h("div", { class: "tree-box", "data-testid": "unstable-tree", "data-count": current.length }, treeOrList(unstableNodes)),
      previous.length
        ? h("div", { class: "hint", "data-testid": "previous-pass" }, `still flagged unstable from the previous pass (counted in pages_unshared until revisited): ${previous.map((i) => `pid ${i.pid} ${hex(i.address)}`).join(", ")}`)
        : null,
      h("h3", {}, "Rmap items by process (the row at the scan cursor is marked)"),
      h("div", { class: "rmaps" }, rmapTables),
    );
  }

  // ---- hot-remove ----------------------------------------------------------

  renderOffline() {
    const { blocks, ksm } = this.data;
    const o = this.offline;
    if (!this.offForm) {
      this.offForm = {
        block: h("select", { "data-testid": "offline-block" }),
        pause: h(
          "select",
          { "data-testid": "offline-pause" },
          option(String(OfflinePhase.NONE), "run to the end"),
          option(String(OfflinePhase.ISOLATED), "pause after ISOLATED"),
          option(String(OfflinePhase.GOING_OFFLINE), "pause after GOING_OFFLINE"),
          option(String(OfflinePhase.MIGRATED), "pause after MIGRATED"),
        ),
      };
    }
    const f = this.offForm;
    const cur = f.block.value;
    put(f.block, blocks.map((b) => option(String(b.block), `memory${b.block} (node ${b.node}, ${MemoryBlockState[b.state].toLowerCase()})`, String(b.block) === cur)));
    const reached = new Set(o ? o.phases : []);
    if (o?.report) for (const p of PHASES) if (p <= o.report.phase) reached.add(p);
    const phaseBar = h(
      "ol",
      { class: "phases", "data-testid": "offline-phases" },
      PHASES.map((p) =>
        h("li", { class: reached.has(p) ? "reached" : "", "data-phase": OfflinePhase[p] }, OfflinePhase[p]),
      ),
    );
    const r = o?.report;
    put(
      this.sec.offline,
      h(
        "div",
        { class: "form" },
        h("label", {}, "block ", f.block),
        f.pause,
        h("button", { "data-testid": "offline-start", onclick: () => this.offlineStart() }, "Offline"),
        h("button", { "data-testid": "offline-resume", disabled: !r?.paused, onclick: () => this.offlineResume() }, "Resume"),
        h("button", { "data-testid": "offline-cancel", disabled: !r?.paused, onclick: () => this.offlineCancel() }, "Cancel"),
        h("button", { "data-testid": "online", onclick: () => this.online() }, "Online"),
      ),
      o ? h("div", {}, `offline of memory${o.block}:`) : h("p", { class: "hint" }, "Offline a block (on node 1 for the processes of a two-node machine: block 0 holds the zero page and is never removable)."),
      o ? phaseBar : null,
      r
        ? h(
            "div",
            { class: "report", "data-testid": "offline-report", "data-paused": r.paused ? "1" : "0", "data-phase": OfflinePhase[r.phase], "data-errno": String(r.errnum) },
            `${r.paused ? "paused after" : r.errnum ? "failed at" : "finished:"} ${OfflinePhase[r.phase]} · errno ${r.errnum} · pages migrated ${r.pagesMigrated} (KSM ${r.ksmPagesMigrated}) · stable nodes pruned ${r.stableNodesPruned} · rounds ${r.rounds}${r.failure ? " · " + r.failure : ""}`,
          )
        : null,
      o
        ? h(
            "div",
            { class: ksm.lockedByOffline ? "lock held" : "lock" },
            ksm.lockedByOffline ? "KSM's lock (ksm_thread_mutex) is held: ksmd and StepKsm wait" : "KSM's lock is free",
          )
        : null,
      o && o.notes.length ? h("ul", { class: "notify" }, o.notes.map((n) => h("li", {}, n))) : null,
      o
        ? h(
            "div",
            { "data-testid": "migrations" },
            `pages migrated: ${o.migrations.length}`,
            h("ul", {}, o.migrations.map((m) => h("li", { "data-pfn": String(m.pfn), "data-ksm": m.ksm ? "1" : "0" }, `${m.ksm ? "KSM " : ""}page ${m.pfn} ${m.errnum ? "failed, errno " + m.errnum : "moved"}`))),
          )
        : null,
      o
        ? h(
            "div",
            { "data-testid": "pruned" },
            `stable nodes pruned at MEM_OFFLINE: ${o.pruned.length}`,
            h("ul", {}, o.pruned.map((p) => h("li", {}, `#${p.stableNodeId} (kpfn ${p.pfn})`))),
          )
        : null,
    );
  }

  async offlineStart() {
    const block = BigInt(this.offForm.block.value);
    const pauseAfter = Number(this.offForm.pause.value);
    this.offline = { block, report: null, phases: [], migrations: [], pruned: [], notes: [] };
    this.beginChanges(`offline memory${block}`);
    const r = await this.guard("offline", () => api.blocks.offlineMemoryBlock({ name: `${this.machine}/memoryBlocks/${block}`, pauseAfter }));
    if (r) {
      this.offline.report = r;
      this.note(`offline memory${block}: ${r.paused ? "paused after" : "ended at"} ${OfflinePhase[r.phase]}, errno ${r.errnum}`);
    }
    await this.refresh();
    this.endChanges();
    this.done();
  }

  async offlineResume() {
    const o = this.offline;
    const pauseAfter = Number(this.offForm.pause.value);
    this.beginChanges(`resume the offline of memory${o.block}`);
    const r = await this.guard("resume", () =>
      api.blocks.resumeOffline({ name: `${this.machine}/memoryBlocks/${o.block}`, pauseAfter: pauseAfter > (o.report?.phase ?? 0) ? pauseAfter : OfflinePhase.NONE }),
    );
    if (r) {
      o.report = r;
      this.note(`offline memory${o.block}: ${r.paused ? "paused after" : "ended at"} ${OfflinePhase[r.phase]}, errno ${r.errnum}`);
    }
    await this.refresh();
    this.endChanges();
    this.done();
  }

  async offlineCancel() {
    const o = this.offline;
    this.beginChanges(`cancel the offline of memory${o.block}`);
    const r = await this.guard("cancel", () => api.blocks.cancelOffline({ name: `${this.machine}/memoryBlocks/${o.block}` }));
    if (r) {
      o.report = r;
      this.note(`offline memory${o.block} cancelled: errno ${r.errnum}`);
    }
    await this.refresh();
    this.endChanges();
    this.done();
  }

  async online() {
    const block = this.offForm.block.value;
    const r = await this.guard("online", () => api.blocks.onlineMemoryBlock({ name: `${this.machine}/memoryBlocks/${block}` }));
    if (r) this.note(`online memory${block}: ${r.errnum ? "errno " + r.errnum : "ok"}`);
    await this.refresh();
    this.done();
  }

  // ---- events --------------------------------------------------------------

  renderEvents() {
    put(
      this.sec.events,
      h(
        "ol",
        { class: "event-log", "data-testid": "event-log" },
        this.events.slice(0, 100).map((ev) => {
          const c = this.describeEvent(ev);
          return h("li", { class: `chg chg-${c?.kind ?? "other"}` }, `#${ev.sequence} ${EventKind[ev.kind]}${c ? ": " + c.text : ""}`);
        }),
      ),
    );
  }
}

export { reasonOf };
