// Starts the REAL memnoded with its HTTP port for a test file and stops it.
//
// The binary is $MEMNODED (default build/release/server/memnoded). gRPC and
// HTTP listen on free loopback ports (port 0); memnoded prints
// `HTTP http://host:port/` then `LISTENING host:port`. Metrics are off so
// parallel servers never clash. Everything is bounded in time: start-up
// (STARTUP_MS), shutdown (SIGTERM, then SIGKILL after STOP_GRACE_MS); the
// child is killed if the test process exits without stop().
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const STARTUP_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, "..", "..");

export function memnodedPath() {
  const p = process.env.MEMNODED
    ? path.resolve(process.env.MEMNODED)
    : path.join(ROOT, "build", "release", "server", "memnoded");
  if (!fs.existsSync(p)) throw new Error(`memnoded not found at ${p} (build it, or set MEMNODED)`);
  return p;
}

/**
 * Resolves to { httpUrl, grpcAddress, stop(), logPath, stdout } once memnoded
 * listens. `flags` are added to --listen/--http_address/--metrics_address.
 */
export function startServer(flags = [], { httpAddress = "127.0.0.1:0" } = {}) {
  const logPath = path.join(os.tmpdir(), `memnoded-web-${process.pid}-${Date.now()}.log`);
  const log = fs.openSync(logPath, "w");
  const child = spawn(
    memnodedPath(),
    ["--listen=127.0.0.1:0", "--metrics_address=", `--http_address=${httpAddress}`, ...flags],
    { stdio: ["ignore", "pipe", log] },
  );
  fs.closeSync(log);
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.on("exit", killOnExit);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stdout = [];

  const stop = async ({ keepLog = false } = {}) => {
    process.removeListener("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      let timer;
      const grace = new Promise((r) => (timer = setTimeout(() => r("timeout"), STOP_GRACE_MS)));
      if ((await Promise.race([exited, grace])) === "timeout") {
        child.kill("SIGKILL");
        await exited;
      }
      clearTimeout(timer);
    }
    if (!keepLog && !process.env.MEMNODE_KEEP_LOGS) fs.rmSync(logPath, { force: true });
    return child.exitCode;
  };

  return new Promise((resolve, reject) => {
    let httpUrl = null;
    const lines = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => {
      stop({ keepLog: true }).finally(() =>
        reject(new Error(`memnoded did not start within ${STARTUP_MS} ms (log: ${logPath})`)),
      );
    }, STARTUP_MS);
    lines.on("line", (line) => {
      stdout.push(line);
      const h = /^HTTP (https?:\/\/\S+\/)\s*$/.exec(line);
      if (h) httpUrl = h[1];
      const m = /^LISTENING (\S+:\d+)\s*$/.exec(line);
      if (m) {
        clearTimeout(timer);
        if (!httpUrl) {
          stop({ keepLog: true });
          reject(new Error(`memnoded printed no HTTP line before LISTENING (log: ${logPath})`));
          return;
        }
        resolve({ httpUrl, grpcAddress: m[1], stop, logPath, stdout, exited });
      }
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (!httpUrl) {
        reject(
          new Error(
            `memnoded exited (${code}) before listening: ${fs.readFileSync(logPath, "utf8")}`,
          ),
        );
      }
    });
  });
}
