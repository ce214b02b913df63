// A browser the gateway has never seen, where it asks for an approval: the page shows the
// request id and the exact approve command, and connects by itself once the test has run it.
// Prints `PAIRING <request id>` when the page shows the request, then one JSON line of what
// it saw once connected; exits non-zero with the reason otherwise.
//
// Environment: WEBCHAT_URL, WEBCHAT_TOKEN, WEBCHAT_SHOTS, CLAWGATE_CHROMIUM_BIN.
"use strict";

const path = require("path");
const { env, run, STEP_MS } = require("./browser.cjs");

run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
  const page = await context.newPage();
  await page.goto(`${env("WEBCHAT_URL")}#token=${encodeURIComponent(env("WEBCHAT_TOKEN"))}`);
  const command = page.locator("#approve-command");
  await command.waitFor({ timeout: STEP_MS });
  const commandText = await command.innerText();
  const notice = await page.locator("#notice").innerText();
  await page.screenshot({ path: path.join(env("WEBCHAT_SHOTS"), "pairing.png"), fullPage: true });
  const requestId = commandText.split(" ").pop();
  console.log(`PAIRING ${requestId}`);
  // Approved out of band: the page's own retries bring it in (backoff at most 15 s).
  await page.waitForSelector("#status.ok", { timeout: 4 * STEP_MS });
  const noticeHidden = await page.locator("#notice").isHidden();
  const deviceToken = await page.evaluate(() => localStorage.getItem("clawgate.deviceTokens.v1"));
  console.log(JSON.stringify({ commandText, notice, noticeHidden, hasDeviceToken: Boolean(deviceToken) }));
});
