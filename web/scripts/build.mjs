// Builds the web view's bundle web/dist/app.js (committed; memnoded embeds
// it at build time, see server/CMakeLists.txt):
//   node scripts/build.mjs gen            stubs from protos/ into gen/ (protoc +
//                                         protoc-gen-es from node_modules)
//   node scripts/build.mjs build          gen, then esbuild src/main.js -> dist/app.js
//   node scripts/build.mjs check          gen, bundle into a temporary file and
//                                         fail unless it equals dist/app.js
// protoc is Debian's (protobuf-compiler, installed by scripts/deps.sh).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = path.resolve(WEB, "..");
const PROTOS = path.join(ROOT, "protos");

function gen() {
  const out = path.join(WEB, "gen");
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const files = [
    ...fs.readdirSync(path.join(PROTOS, "memnode", "v1")).map((f) => `memnode/v1/${f}`),
    ...fs.readdirSync(path.join(PROTOS, "google", "rpc")).map((f) => `google/rpc/${f}`),
  ].filter((f) => f.endsWith(".proto"));
  execFileSync(
    "protoc",
    [
      `-I${PROTOS}`,
      `--plugin=protoc-gen-es=${path.join(WEB, "node_modules", ".bin", "protoc-gen-es")}`,
      `--es_out=${out}`,
      "--es_opt=target=js,import_extension=js",
      ...files.sort(),
    ],
    { stdio: "inherit" },
  );
}

async function bundle(outfile) {
  await esbuild.build({
    entryPoints: [path.join(WEB, "src", "main.js")],
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    legalComments: "none",
    charset: "utf8",
    outfile,
    logLevel: "warning",
  });
}

const cmd = process.argv[2];
if (cmd === "gen") {
  gen();
} else if (cmd === "build") {
  gen();
  await bundle(path.join(WEB, "dist", "app.js"));
  console.log("web: wrote dist/app.js");
} else if (cmd === "check") {
  gen();
  const tmp = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "memnode-web-")), "app.js");
  await bundle(tmp);
  const want = fs.readFileSync(tmp);
  const have = fs.readFileSync(path.join(WEB, "dist", "app.js"));
  if (!want.equals(have)) {
    console.error(
      "web: dist/app.js is not the bundle of src/ and protos/: run `cd web && npm run build` and commit it",
    );
    process.exit(1);
  }
  console.log("web: dist/app.js is up to date");
} else {
  console.error("usage: build.mjs gen|build|check");
  process.exit(2);
}
