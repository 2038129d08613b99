'use strict';
// Starts the REAL memnoded for a test file and stops it afterwards.
//
// The binary is $MEMNODED (default ../../build/release/server/memnoded,
// relative to client/node). It listens on a free loopback port
// (--listen=127.0.0.1:0) and prints `LISTENING host:port`; the Prometheus
// endpoint is disabled (--metrics_address=) so parallel servers never clash.
// Everything is bounded in time: startup (STARTUP_MS), shutdown (SIGTERM,
// then SIGKILL after STOP_GRACE_MS), and the child is killed if the test
// process exits without calling stop().

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const STARTUP_MS = 30_000;
const STOP_GRACE_MS = 5_000;

function memnodedPath() {
  const fromEnv = process.env.MEMNODED;
  const p = fromEnv
    ? path.resolve(fromEnv)
    : path.resolve(__dirname, '..', '..', '..', 'build', 'release', 'server', 'memnoded');
  if (!fs.existsSync(p)) {
    throw new Error(`memnoded not found at ${p} (build it, or set MEMNODED)`);
  }
  return p;
}

/** Resolves to { address, stop(), logPath } once the server listens. */
function startServer(extraFlags = []) {
  const binary = memnodedPath();
  const logPath = path.join(os.tmpdir(), `memnoded-node-${process.pid}-${Date.now()}.log`);
  const log = fs.openSync(logPath, 'w');
  const child = spawn(binary, ['--listen=127.0.0.1:0', '--metrics_address=', ...extraFlags], {
    stdio: ['ignore', 'pipe', log],
  });
  fs.closeSync(log);

  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  const exited = new Promise((resolve) => child.once('exit', resolve));

  // Stops the server; its log (stderr) is removed unless keepLog or
  // MEMNODE_KEEP_LOGS is set.
  const stop = async ({ keepLog = false } = {}) => {
    process.removeListener('exit', killOnExit);
    if (!keepLog && !process.env.MEMNODE_KEEP_LOGS) fs.rmSync(logPath, { force: true });
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    let timer;
    const grace = new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS);
    });
    if ((await Promise.race([exited, grace])) === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
    clearTimeout(timer);
  };

  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => {
      stop({ keepLog: true }).finally(() => reject(new Error(`memnoded did not print LISTENING within ${STARTUP_MS} ms (log: ${logPath})`)));
    }, STARTUP_MS);
    lines.on('line', (line) => {
      const m = /^LISTENING (\S+:\d+)\s*$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ address: m[1], stop, logPath });
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('exit', killOnExit);
      reject(new Error(`memnoded exited early (code ${code}, signal ${signal}); log: ${logPath}`));
    });
  });
}

module.exports = { startServer, memnodedPath };
