// Runs the curl examples of docs/API.md section 6 against the real memnoded
// and compares their output with the output the document shows, so that the
// document cannot drift from the server.
//
// The examples are the ```sh blocks of section 6, run in document order by
// bash (-e -o pipefail) with $MEMNODE_HTTP set to the server's URL (no
// trailing slash). A block followed by an "output" block (```json or
// ```text, next to it) must print that: JSON outputs are compared as JSON
// values (one per line when the block holds several lines of JSON, else the
// whole text), text outputs exactly. A block preceded by the line
// `<!-- test: server=tokens -->` runs against a second server started with
// the token file the section shows (admin and read tokens).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startServer, ROOT } from "./server.mjs";

const DOC = path.join(ROOT, "docs", "API.md");
const SECTION = /^## 6\. /;

export function examples(markdown) {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => SECTION.test(l));
  if (start < 0) throw new Error("docs/API.md has no section 6");
  let end = lines.findIndex((l, i) => i > start && /^## \d+\. /.test(l));
  if (end < 0) end = lines.length;
  const blocks = [];
  for (let i = start; i < end; i++) {
    const m = /^```(\w*)\s*$/.exec(lines[i]);
    if (!m) continue;
    let j = i + 1;
    while (j < end && !/^```\s*$/.test(lines[j])) j++;
    blocks.push({ lang: m[1], body: lines.slice(i + 1, j).join("\n"), line: i + 1, before: lines[i - 1] ?? "", endLine: j });
    i = j;
  }
  const out = [];
  blocks.forEach((b, k) => {
    if (b.lang !== "sh") return;
    const next = blocks[k + 1];
    const adjacent = next && (next.lang === "json" || next.lang === "text") && next.line <= b.endLine + 4;
    out.push({
      line: b.line,
      script: b.body,
      server: /<!-- test: server=tokens -->/.test(b.before) ? "tokens" : "plain",
      expect: adjacent ? { lang: next.lang, text: next.body } : null,
    });
  });
  return out;
}

function jsonValues(text) {
  const t = text.trim();
  try {
    return [JSON.parse(t)];
  } catch {
    return t
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
  }
}

let plain;
let tokens;
let tokenDir;
const ADMIN = "admin-token-0123456789";
const READER = "read-token-0123456789";

before(async () => {
  plain = await startServer(["--default_machine=false"]);
  tokenDir = fs.mkdtempSync(path.join(os.tmpdir(), "memnode-doc-"));
  fs.writeFileSync(path.join(tokenDir, "tokens"), `${ADMIN} admin\n${READER} read\n`);
  tokens = await startServer([
    `--token_file=${path.join(tokenDir, "tokens")}`,
    "--nodes=1",
    "--blocks_per_node=2",
    "--pages_per_block=64",
    "--clock=manual",
  ]);
});

after(async () => {
  if (plain) await plain.stop();
  if (tokens) await tokens.stop();
  if (tokenDir) fs.rmSync(tokenDir, { recursive: true, force: true });
});

test("docs/API.md section 6 has curl examples, each run as shown", () => {
  const md = fs.readFileSync(DOC, "utf8");
  const ex = examples(md);
  assert.ok(ex.length >= 6, `expected curl examples in section 6, found ${ex.length}`);
  assert.ok(md.includes(`${ADMIN} admin`) && md.includes(`${READER} read`), "the doc shows the token file the test uses");
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "memnode-doc-run-"));
  try {
    for (const e of ex) {
      assert.match(e.script, /curl/, `docs/API.md:${e.line}: an example without curl`);
      const server = e.server === "tokens" ? tokens : plain;
      let stdout;
      try {
        stdout = execFileSync("bash", ["-e", "-o", "pipefail", "-c", e.script], {
          cwd: work,
          env: { ...process.env, MEMNODE_HTTP: server.httpUrl.replace(/\/$/, "") },
          encoding: "utf8",
          timeout: 60_000,
        });
      } catch (err) {
        assert.fail(`docs/API.md:${e.line}: the example failed: ${err.stderr || err.message}`);
      }
      if (!e.expect) continue;
      if (e.expect.lang === "json")
        assert.deepEqual(jsonValues(stdout), jsonValues(e.expect.text), `docs/API.md:${e.line}: output differs:\n${stdout}`);
      else assert.equal(stdout.trimEnd(), e.expect.text.trimEnd(), `docs/API.md:${e.line}: output differs`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
