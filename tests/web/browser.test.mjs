// The web view in a real browser: Debian's chromium, headless, driven by
// puppeteer-core, against the real memnoded serving the page and the API on
// its HTTP port. Everything is done through the page as a person would:
// create a small MANUAL machine, run the two-process merge scenario step by
// step, check the counters and the drawn trees after each step, predict a
// pass, then offline the KSM page's block with a pause point.
//
// Expected values come from the kernel rules as docs/SEMANTICS.md states them
// (its worked example is the same scenario with more pages; rule numbers are
// those of the kernel-semantics reference it cites):
//  * pass 1: every visit is a first visit and only stores a checksum
//    (2.3 rule 9d): shared 0, sharing 0, unshared 0, volatile 2 (3.4:
//    rmap_items 2 minus the rest), no tree node;
//  * pass 2, first visit (pid A's page): checksum unchanged, the unstable
//    tree is empty: A's item is inserted (9e): unshared 1, volatile 1;
//  * pass 2, second visit (pid B's page): equal content in the unstable tree
//    -> try_to_merge_two_pages (9f): B's page (the later-visited one, rule
//    10) becomes the KSM page, kpfn = B's pfn; A's item then B's are appended
//    (hlist_add_head: the list reads B, A): shared 1, sharing 1, unshared 0,
//    volatile 0, and the unstable tree is empty again;
//  * the end of pass 2: full_scans 2 (3.5), counters unchanged (10.1);
//  * pass 3: an item already stable on a KSM page is left alone (9): the same
//    counters, full_scans 3;
//  * offline of the KSM page's block paused after GOING_OFFLINE: KSM's
//    memory callback (priority 100) took ksm_thread_mutex at
//    MEM_GOING_OFFLINE (7.3 rule 14) so StepKsm is refused with KSM_LOCKED
//    (docs/SEMANTICS.md "Where memnode chooses" 5); resumed, the KSM page is
//    migrated (offlining migrates KSM pages, 6.1) to another block of node 1
//    (choice 8), its stable node follows it (same id, new kpfn), every
//    sharer keeps sharing and the counters do not move; MEM_OFFLINE prunes
//    nothing (no node's kpfn is left in the block, 7.3 rule 16);
//  * a write to the merged page copies it at once (5.1 rule 1) and leaves the
//    counters alone until ksmd revisits (3.7); the next pass takes A's item
//    off the node (9a) and counts it volatile (changed checksum, 9d); after
//    A unmaps the page, the pass frees its item and unregisters A's mm (2.2
//    rule 7): shared 1, sharing 0, volatile 0.
//
// Screenshots go to $MEMNODE_SCREENSHOTS (default build/release/web-screenshots).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startServer, ROOT } from "./server.mjs";
import { launch } from "./browser.mjs";

const SHOTS = process.env.MEMNODE_SCREENSHOTS ?? path.join(ROOT, "build", "release", "web-screenshots");
const PAGES_PER_BLOCK = 64;
const ADDR = "0x7f0000000000";
const WAIT = { timeout: 15_000 };

let server;
let chrome;
let page;
const pageErrors = [];

const P = (testid, pane = 0) => `[data-testid="pane-${pane}"] [data-testid="${testid}"]`;

async function shot(name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function setInput(selector, value) {
  await page.$eval(
    selector,
    (el, v) => {
      el.value = v;
      el.dispatchEvent(new Event("input", { bubbles: true }));
      el.dispatchEvent(new Event("change", { bubbles: true }));
    },
    String(value),
  );
}

async function counters(pane = 0) {
  const names = ["pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans"];
  const out = {};
  for (const n of names) out[n] = Number(await page.$eval(P(`counter-${n}`, pane), (el) => el.textContent));
  return out;
}

// Waits until the counters shown equal `want`, then asserts (a clear diff
// when they never do).
async function expectCounters(want, pane = 0) {
  await page
    .waitForFunction(
      (w, pn) =>
        Object.entries(w).every(
          ([k, v]) =>
            document.querySelector(`[data-testid="pane-${pn}"] [data-testid="counter-${k}"]`)?.textContent ===
            String(v),
        ),
      WAIT,
      want,
      pane,
    )
    .catch(() => {});
  assert.deepEqual(await counters(pane), want);
}

async function treeCount(which) {
  return Number(await page.$eval(P(which), (el) => el.dataset.count));
}

async function stableNodes() {
  return page.$$eval(`${P("stable-tree")} g.tree-node`, (gs) =>
    gs.map((g) => ({
      id: g.dataset.testid,
      kpfn: Number(g.dataset.kpfn),
      sharers: g.dataset.sharers.split(",").map(Number),
      stale: g.dataset.stale === "1",
      merged: g.classList.contains("hl-merge"),
      text: [...g.querySelectorAll("text")].map((t) => t.textContent),
    })),
  );
}

async function changes() {
  return page.$$eval(`${P("changes")} li`, (lis) => lis.map((li) => ({ kind: li.dataset.kind, text: li.textContent })));
}

async function syscall(op, fields = {}) {
  await page.select(P("syscall-op"), op);
  if (fields.pid !== undefined) await page.select(P("syscall-pid"), String(fields.pid));
  for (const [k, v] of Object.entries(fields)) {
    if (k === "pid") continue;
    await setInput(P(`syscall-${k}`), v);
  }
  await clickAndSettle(P("syscall-run"));
  return page.$eval(P("syscall-result"), (el) => el.textContent);
}

async function pids() {
  return page.$$eval(`${P("processes")} tr[data-pid]`, (rows) => rows.map((r) => Number(r.dataset.pid)));
}

// Clicks in the page itself (the view re-renders often: a click by
// coordinates could hit a replaced element).
async function click(selector) {
  await page.waitForSelector(selector, WAIT);
  await page.$eval(selector, (el) => el.click());
}

// Clicks and waits until the pane finished the action (its data-seq grows).
async function clickAndSettle(selector, pane = 0) {
  const paneSel = `[data-testid="pane-${pane}"]`;
  const before = await page.$eval(paneSel, (el) => Number(el.dataset.seq));
  await click(selector);
  await page.waitForFunction((s, b) => Number(document.querySelector(s).dataset.seq) > b, WAIT, paneSel, before);
}

// Ticks or unticks "predict, then reveal" and waits until the pane is in
// that mode (the page keeps its state in window.memnodeApp).
async function setPredict(on, pane = 0) {
  const sel = P("predict-mode", pane);
  await page.waitForSelector(sel, WAIT);
  if ((await page.$eval(sel, (el) => el.checked)) !== on) await click(sel);
  await page.waitForFunction(
    (i, want) => window.memnodeApp.panes[i].predict.on === want,
    WAIT,
    pane,
    on,
  );
}

before(async () => {
  server = await startServer(["--default_machine=false"]);
  chrome = await launch();
  page = await chrome.browser.newPage();
  page.on("pageerror", (e) => pageErrors.push(e.message));
  // Console errors, except the browser's own line for an HTTP error status
  // (the KSM_LOCKED step is one on purpose; the page shows each error).
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(m.text());
  });
  await page.goto(server.httpUrl, { waitUntil: "networkidle0" });
  await page.waitForSelector('body[data-ready="1"]', WAIT);
});

after(async () => {
  if (chrome) await chrome.close();
  if (server) await server.stop();
});

test("create a MANUAL machine through the page", async () => {
  await setInput('[data-testid="new-id"]', "lab");
  await setInput('[data-testid="new-nodes"]', 2);
  await setInput('[data-testid="new-blocks"]', 4);
  await setInput('[data-testid="new-pages"]', PAGES_PER_BLOCK);
  await page.select('[data-testid="new-clock"]', "MANUAL");
  await click('[data-testid="create-machine"]');
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent.includes("machines/lab"),
    WAIT,
    P("machine-header"),
  );
  const header = await page.$eval(P("machine-header"), (el) => el.textContent);
  assert.match(header, /linux-2\.6\.33 · MANUAL clock · 2 nodes × 4 blocks × 64 pages/);
  // 8 blocks, all online; block 0 holds the zero page (reserved, not removable).
  const blocks = await page.$$eval(`${P("topology")} .block`, (els) => els.map((e) => e.dataset.state));
  assert.deepEqual(blocks, Array(8).fill("ONLINE"));
  assert.match(await page.$eval(P("block-0"), (el) => el.textContent), /not removable/);
  await expectCounters({ pages_shared: 0, pages_sharing: 0, pages_unshared: 0, pages_volatile: 0, full_scans: 0 });
});

let pidA;
let pidB;
let pfnB;

test("two processes with one identical page each, MADV_MERGEABLE", async () => {
  // Home node 1: block 0 (node 0) holds the zero page and could never be offlined.
  for (let i = 0; i < 2; i++) await syscall("create", { home: 1 });
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 2, WAIT, `${P("processes")} tr[data-pid]`);
  [pidA, pidB] = await pids();
  for (const pid of [pidA, pidB]) {
    assert.match(await syscall("mmap", { pid, address: ADDR, pages: 1 }), /mapped at 0x7f0000000000/);
    assert.match(await syscall("write", { pid, address: ADDR, text: "same page in both" }), /wrote 17 bytes/);
    assert.match(await syscall("mergeable", { pid, address: ADDR, pages: 1 }), /^ok$/);
  }
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(sel)].every((r) => r.lastElementChild.textContent === "yes"),
    WAIT,
    `${P("processes")} tr[data-pid]`,
  );
  // B's page: its frame number, read from the API (the test's own look at
  // the machine, not the page): the KSM page must end up being this frame.
  const r = await fetch(`${server.httpUrl}memnode.v1.ProcessService/TranslateAddresses`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: `machines/lab/processes/${pidB}`, address: String(0x7f0000000000), pages: "1" }),
  });
  const t = await r.json();
  assert.equal(t.pages[0].present, true);
  pfnB = Number(t.pages[0].pfn);
  assert.equal(Math.floor(pfnB / PAGES_PER_BLOCK) >= 4, true, "node 1's blocks are 4..7");
});

test("pass 1 only records checksums", async () => {
  await clickAndSettle(P("step-pass"));
  await expectCounters({ pages_shared: 0, pages_sharing: 0, pages_unshared: 0, pages_volatile: 2, full_scans: 1 });
  assert.equal(await treeCount("stable-tree"), 0);
  assert.equal(await treeCount("unstable-tree"), 0);
  const ch = await changes();
  assert.deepEqual(
    ch.filter((c) => c.kind === "pass").map((c) => c.text),
    ["pass 1 ended"],
  );
  await shot("1-after-pass-1");
});

test("pass 2, first visit: A's page enters the unstable tree", async () => {
  await clickAndSettle(P("step-visit"));
  await expectCounters({ pages_shared: 0, pages_sharing: 0, pages_unshared: 1, pages_volatile: 1, full_scans: 1 });
  assert.equal(await treeCount("unstable-tree"), 1);
  const items = await page.$$eval(`${P("unstable-tree")} g.tree-node`, (gs) => gs.map((g) => ({ id: g.dataset.testid, hl: g.classList.contains("hl-insert") })));
  assert.deepEqual(items, [{ id: `unstable-item-${pidA}-${ADDR}`, hl: true }]);
  assert.match(await page.$eval(P("cursor"), (el) => el.textContent), new RegExp(`pid ${pidA}`));
  await shot("2-pass-2-first-visit");
});

test("pass 2, second visit: B's page merges with A's", async () => {
  await clickAndSettle(P("step-visit"));
  await expectCounters({ pages_shared: 1, pages_sharing: 1, pages_unshared: 0, pages_volatile: 0, full_scans: 1 });
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 1, WAIT, `${P("stable-tree")} g.tree-node.hl-merge`);
  const nodes = await stableNodes();
  assert.equal(nodes.length, 1);
  assert.equal(nodes[0].kpfn, pfnB, "the KSM page is B's original page (the later-visited one)");
  assert.deepEqual(nodes[0].sharers, [pidB, pidA], "hlist order: newest first");
  assert.equal(nodes[0].stale, false);
  assert.equal(nodes[0].merged, true, "the merged node is highlighted");
  assert.equal(await treeCount("unstable-tree"), 0, "A's item left the unstable tree");
  const merges = (await changes()).filter((c) => c.kind === "merge").map((c) => c.text);
  assert.equal(merges.length, 2);
  assert.match(merges[0], new RegExp(`pid ${pidA} 0x7f0000000000 joined stable node #\\d+ \\(kpfn ${pfnB}\\), a new node`));
  assert.match(merges[1], new RegExp(`pid ${pidB} 0x7f0000000000 joined stable node #\\d+ \\(kpfn ${pfnB}\\)$`));
  await shot("3-merged");
});

test("the rest of pass 2 and pass 3 (predicted, then revealed)", async () => {
  await clickAndSettle(P("step-pass"));
  await expectCounters({ pages_shared: 1, pages_sharing: 1, pages_unshared: 0, pages_volatile: 0, full_scans: 2 });
  // Predict, then reveal: the counters a student expects after pass 3.
  await setPredict(true);
  await clickAndSettle(P("step-pass"));
  await page.waitForSelector(P("predict-form"), WAIT);
  const guess = { pages_shared: 1, pages_sharing: 1, pages_unshared: 0, pages_volatile: 0, full_scans: 3 };
  for (const [k, v] of Object.entries(guess)) await setInput(P(`predict-${k}`), v);
  await clickAndSettle(P("reveal"));
  await page.waitForSelector(P("prediction-result"), WAIT);
  const rows = await page.$$eval(`${P("prediction-result")} tr.right, ${P("prediction-result")} tr.wrong`, (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)),
  );
  assert.deepEqual(rows, [
    ["pages_shared", "1", "1", "✓"],
    ["pages_sharing", "1", "1", "✓"],
    ["pages_unshared", "0", "0", "✓"],
    ["pages_volatile", "0", "0", "✓"],
    ["full_scans", "3", "3", "✓"],
  ]);
  assert.match(await page.$eval(P("prediction-score"), (el) => el.textContent), /score: 1 of 1/);
  await expectCounters(guess);
  await setPredict(false);
  await shot("4-predicted");
});

test("offline the KSM page's block with a pause point", async () => {
  const [node] = await stableNodes();
  const block = Math.floor(node.kpfn / PAGES_PER_BLOCK);
  await page.select(P("offline-block"), String(block));
  await page.select(P("offline-pause"), "2"); // OFFLINE_PHASE_GOING_OFFLINE
  await clickAndSettle(P("offline-start"));
  await page.waitForSelector(`${P("offline-report")}[data-paused="1"]`, WAIT);
  assert.equal(await page.$eval(P("offline-report"), (el) => el.dataset.phase), "GOING_OFFLINE");
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(sel)].filter((li) => li.classList.contains("reached")).length === 2,
    WAIT,
    `${P("offline-phases")} li`,
  );
  const reached = await page.$$eval(`${P("offline-phases")} li.reached`, (lis) => lis.map((li) => li.dataset.phase));
  assert.deepEqual(reached, ["ISOLATED", "GOING_OFFLINE"]);
  await page.waitForFunction((sel) => document.querySelector(sel).textContent.includes("held"), WAIT, P("ksm-lock"));
  assert.equal(await page.$eval(P(`block-${block}`), (el) => el.dataset.state), "GOING_OFFLINE");
  // ksmd's work is refused while the lock is held.
  assert.equal(await page.evaluate(() => window.memnodeApp.panes[0].predict.on), false);
  await clickAndSettle(P("step-visit"));
  await page
    .waitForFunction((sel) => document.querySelector(sel).textContent.includes("KSM_LOCKED"), WAIT, P("status"))
    .catch(() => {});
  assert.match(await page.$eval(P("status"), (el) => el.textContent), /FailedPrecondition KSM_LOCKED/);
  await shot("5-offline-paused");

  await page.select(P("offline-pause"), "0"); // run to the end
  await clickAndSettle(P("offline-resume"));
  await page.waitForSelector(`${P("offline-report")}[data-paused="0"]`, WAIT);
  const report = await page.$eval(P("offline-report"), (el) => ({ phase: el.dataset.phase, errno: el.dataset.errno, text: el.textContent }));
  assert.equal(report.phase, "DONE");
  assert.equal(report.errno, "0");
  assert.match(report.text, /pages migrated 1 \(KSM 1\) · stable nodes pruned 0/);
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.state === "OFFLINE", WAIT, P(`block-${block}`));
  await page.waitForFunction((sel) => !document.querySelector(sel).textContent.includes("held"), WAIT, P("ksm-lock"));
  // The migration the event stream reported: the KSM page, from its old frame.
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 1, WAIT, `${P("migrations")} li`);
  const migrated = await page.$$eval(`${P("migrations")} li`, (lis) => lis.map((li) => ({ pfn: Number(li.dataset.pfn), ksm: li.dataset.ksm })));
  assert.deepEqual(migrated, [{ pfn: node.kpfn, ksm: "1" }]);
  assert.match(await page.$eval(P("pruned"), (el) => el.textContent), /pruned at MEM_OFFLINE: 0/);
  // The stable node followed its page: same node, a kpfn in another block of node 1.
  await page.waitForFunction(
    (sel, old) => {
      const g = document.querySelector(sel);
      return g && Number(g.dataset.kpfn) !== old;
    },
    WAIT,
    `${P("stable-tree")} g.tree-node`,
    node.kpfn,
  );
  const [moved] = await stableNodes();
  assert.equal(moved.id, node.id);
  const newBlock = Math.floor(moved.kpfn / PAGES_PER_BLOCK);
  assert.notEqual(newBlock, block);
  assert.ok(newBlock >= 4 && newBlock < 8, `kpfn ${moved.kpfn} is on node 1`);
  assert.deepEqual(moved.sharers, [pidB, pidA]);
  await expectCounters({ pages_shared: 1, pages_sharing: 1, pages_unshared: 0, pages_volatile: 0, full_scans: 3 });
  await shot("6-offline-done");
});

test("a write breaks COW; ksmd then notices; an unmapped page's item is removed", async () => {
  // A write to a merged page copies it at once (5.1 rule 1): a COW break,
  // and the counters stay as they are until ksmd looks again (section 3
  // rule 7: writes never move them).
  assert.match(await syscall("write", { pid: pidA, address: ADDR, text: "A changed it" }), /wrote 12 bytes/);
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(sel)].some((li) => li.dataset.kind === "cow"),
    WAIT,
    `${P("changes")} li`,
  );
  const cow = (await changes()).filter((c) => c.kind === "cow").map((c) => c.text);
  assert.equal(cow.length, 1);
  assert.match(cow[0], new RegExp(`COW break: pid ${pidA} 0x7f0000000000 copied KSM page`));
  await expectCounters({ pages_shared: 1, pages_sharing: 1, pages_unshared: 0, pages_volatile: 0, full_scans: 3 });
  // Pass 4: A's item leaves the node (9a: pages_sharing -1), its page no
  // longer equals the KSM page and its checksum changed (9b, 9d): volatile.
  await clickAndSettle(P("step-pass"));
  await expectCounters({ pages_shared: 1, pages_sharing: 0, pages_unshared: 0, pages_volatile: 1, full_scans: 4 });
  assert.deepEqual((await stableNodes()).map((n) => n.sharers), [[pidB]]);
  // A unmaps the page: nothing moves until ksmd walks A's mm, finds no
  // mergeable VMA, frees its item and unregisters the mm (2.2 rule 7).
  assert.match(await syscall("munmap", { pid: pidA, address: ADDR, pages: 1 }), /^ok$/);
  await expectCounters({ pages_shared: 1, pages_sharing: 0, pages_unshared: 0, pages_volatile: 1, full_scans: 4 });
  await clickAndSettle(P("step-pass"));
  await expectCounters({ pages_shared: 1, pages_sharing: 0, pages_unshared: 0, pages_volatile: 0, full_scans: 5 });
  const removed = (await changes()).filter((c) => c.kind === "removed").map((c) => c.text);
  assert.deepEqual(removed, [`rmap item removed: ${pidA} 0x7f0000000000`]);
  await shot("7-cow-and-removed");
});

test("two machines side by side", async () => {
  await setInput('[data-testid="new-id"]', "lab2");
  await click('[data-testid="add-pane"]');
  await page.waitForSelector('[data-testid="pane-1"]', WAIT);
  await click('[data-testid="create-machine"]');
  await page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent.includes("machines/lab2"),
    WAIT,
    P("machine-header", 1),
  );
  // The second pane steps its own machine; the first is untouched.
  await clickAndSettle(P("step-pass", 1), 1);
  await expectCounters({ pages_shared: 0, pages_sharing: 0, pages_unshared: 0, pages_volatile: 0, full_scans: 0 }, 1);
  await expectCounters({ pages_shared: 1, pages_sharing: 0, pages_unshared: 0, pages_volatile: 0, full_scans: 5 }, 0);
  await shot("8-side-by-side");
  assert.deepEqual(pageErrors, [], "no script error in the page");
});
