// Debian's chromium (/usr/bin/chromium, installed by scripts/deps.sh),
// headless, driven by puppeteer-core (which never downloads a browser).
// Each launch gets a fresh profile directory, removed at close.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export async function launch() {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (scripts/deps.sh)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "memnode-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: [
      "--no-sandbox", // root in a container: chromium's sandbox needs user namespaces
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--no-default-browser-check",
      "--window-size=1500,1100",
    ],
    defaultViewport: { width: 1500, height: 1100 },
    timeout: 60_000,
  });
  const close = async () => {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}
