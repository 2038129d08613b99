// memnode's web view: machines side by side (one pane each), served by
// memnoded at / on its HTTP port and talking to it with the Connect web
// client. See docs/API.md section 6.
import { api, describeError, getToken, setToken } from "./api.js";
import { h, put, option } from "./dom.js";
import { Pane } from "./pane.js";
import { ClockMode } from "../gen/memnode/v1/common_pb.js";

class App {
  constructor(root) {
    this.panes = [];
    this.machines = [];
    this.status = h("span", { class: "status", "data-testid": "app-status" });
    this.token = h("input", {
      type: "password",
      placeholder: "bearer token (if the server needs one)",
      value: getToken(),
      "data-testid": "token",
      size: 28,
      onchange: () => {
        setToken(this.token.value.trim());
        this.reloadMachines();
      },
    });
    const f = (this.create = {
      id: h("input", { type: "text", value: "lab", "data-testid": "new-id", size: 10 }),
      nodes: h("input", { type: "number", min: 1, max: 64, value: "2", "data-testid": "new-nodes", size: 3 }),
      blocks: h("input", { type: "number", min: 1, value: "4", "data-testid": "new-blocks", size: 4 }),
      pages: h("input", { type: "number", min: 64, step: 64, value: "64", "data-testid": "new-pages", size: 6 }),
      clock: h("select", { "data-testid": "new-clock" }, option("MANUAL", "MANUAL (step by step)"), option("REALTIME", "REALTIME (ksmd thread)")),
      profile: h("input", { type: "text", value: "", placeholder: "linux-2.6.33", "data-testid": "new-profile", size: 12 }),
    });
    this.panesEl = h("main", { class: "panes", "data-testid": "panes" });
    put(
      root,
      h(
        "header",
        {},
        h("h1", {}, "memnode"),
        h("span", { class: "tagline" }, "emulated NUMA machines with KSM and memory hot-remove"),
        this.token,
        this.status,
      ),
      h(
        "section",
        { class: "create form" },
        h("strong", {}, "New machine "),
        h("label", {}, "id ", f.id),
        h("label", {}, "nodes ", f.nodes),
        h("label", {}, "blocks/node ", f.blocks),
        h("label", {}, "pages/block ", f.pages),
        h("label", {}, "clock ", f.clock),
        h("label", {}, "profile ", f.profile),
        h("button", { "data-testid": "create-machine", onclick: () => this.createMachine() }, "Create"),
        h("button", { "data-testid": "delete-machine", onclick: () => this.deleteMachine() }, "Delete pane 1's machine"),
        h("button", { "data-testid": "add-pane", onclick: () => this.addPane() }, "Side by side: add a pane"),
      ),
      this.panesEl,
    );
    this.addPane();
  }

  note(text, kind = "info") {
    put(this.status, h("span", { class: `note note-${kind}` }, text));
  }

  addPane() {
    if (this.panes.length >= 2) return;
    const p = new Pane(this, this.panes.length);
    this.panes.push(p);
    this.panesEl.append(p.el);
    this.panesEl.classList.toggle("two", this.panes.length === 2);
    p.setMachines(this.machines);
    // A new pane shows a machine the other panes do not.
    const free = this.machines.find((m) => !this.panes.some((q) => q.machine === m));
    if (free) p.setMachine(free);
  }

  async reloadMachines() {
    try {
      const names = [];
      let pageToken = "";
      do {
        const r = await api.machines.listMachines({ pageSize: 1000, pageToken });
        names.push(...r.machines.map((m) => m.name));
        pageToken = r.nextPageToken;
      } while (pageToken);
      this.machines = names;
      for (const p of this.panes) {
        p.setMachines(names);
        if (p.machine && !names.includes(p.machine)) p.setMachine("");
      }
      // (after a token was entered, for example) the first pane shows a machine.
      const first = this.panes[0];
      if (first && !first.machine && names.length) await first.setMachine(names[0]);
      this.note(`${names.length} machine${names.length === 1 ? "" : "s"}`);
      return names;
    } catch (err) {
      this.note(describeError(err), "error");
      return [];
    }
  }

  async createMachine() {
    const f = this.create;
    try {
      const m = await api.machines.createMachine({
        machineId: f.id.value.trim(),
        machine: {
          topology: { nodes: Number(f.nodes.value), blocksPerNode: Number(f.blocks.value), pagesPerBlock: BigInt(f.pages.value) },
          clockMode: f.clock.value === "REALTIME" ? ClockMode.REALTIME : ClockMode.MANUAL,
          profile: f.profile.value.trim(),
        },
      });
      this.note(`created ${m.name}`);
      await this.reloadMachines();
      // Shown in the first pane without a machine, else in the last pane.
      const target = this.panes.find((p) => !p.machine) ?? this.panes[this.panes.length - 1];
      await target.setMachine(m.name);
    } catch (err) {
      this.note(`create: ${describeError(err)}`, "error");
    }
  }

  async deleteMachine() {
    const p = this.panes[0];
    if (!p.machine) return;
    try {
      await api.machines.deleteMachine({ name: p.machine });
      this.note(`deleted ${p.machine}`);
      await p.setMachine("");
      await this.reloadMachines();
    } catch (err) {
      this.note(`delete: ${describeError(err)}`, "error");
    }
  }
}

const app = new App(document.getElementById("app"));
window.memnodeApp = app; // for debugging from the console
app.reloadMachines().then(() => {
  document.body.dataset.ready = "1";
});
