// What the browser UI scripts share: their environment and Debian's Chromium, launched
// headless through playwright-core with a fresh profile per context.
"use strict";

const { chromium } = require("playwright-core");

/// The variable `name`, which the Rust test sets.
function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

/// How long one step (a connect, a reply) may take.
const STEP_MS = 30000;

function launch() {
  return chromium.launch({
    executablePath: env("CLAWGATE_CHROMIUM_BIN"),
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/// Runs `body(browser)`, then closes the browser; a failure exits 1 with its reason.
function run(body) {
  (async () => {
    const browser = await launch();
    try {
      await body(browser);
    } finally {
      await browser.close();
    }
  })().catch((e) => {
    console.error(e.stack || String(e));
    process.exit(1);
  });
}

module.exports = { env, run, STEP_MS };
