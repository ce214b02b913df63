// Drives the gateway's browser UI in headless Chromium (playwright-core), for
// crates/cli/tests/webchat_browser.rs: open the page with #token=, connect, send a message,
// approve the node command inline, see its tool card and the streamed reply, then a stalled
// reply stopped with Stop; a second tab that gets in with the device token; then a wrong
// token in a fresh profile. Prints one JSON line of what it saw; exits non-zero with the
// reason otherwise.
//
// Environment: WEBCHAT_URL (the page, without the fragment), WEBCHAT_TOKEN, WEBCHAT_REPLY (the
// final reply text), WEBCHAT_COMMAND (the command to approve), WEBCHAT_TOOL_OUTPUT (text only
// the node can have printed), WEBCHAT_STALLED (the text of the reply that never ends),
// WEBCHAT_SHOTS (a directory for screenshots), CLAWGATE_CHROMIUM_BIN.
"use strict";

const fs = require("fs");
const path = require("path");
const { env, run, STEP_MS } = require("./browser.cjs");

run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
  const problems = [];
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  const shots = env("WEBCHAT_SHOTS");
  fs.mkdirSync(shots, { recursive: true });
  try {
    await page.goto(`${env("WEBCHAT_URL")}#token=${encodeURIComponent(env("WEBCHAT_TOKEN"))}`);
    await page.waitForSelector("#status.ok", { timeout: STEP_MS });
    const afterLoad = await page.evaluate(() => ({
      hash: location.hash,
      session: sessionStorage.getItem("clawgate.token"),
      local: Object.keys(localStorage).map((k) => localStorage.getItem(k)).join("\n"),
    }));
    if (afterLoad.hash !== "") throw new Error(`the token stayed in the URL: ${afterLoad.hash}`);
    if (afterLoad.session !== env("WEBCHAT_TOKEN")) throw new Error("the token is not in sessionStorage");
    if (afterLoad.local.includes(env("WEBCHAT_TOKEN"))) throw new Error("the token leaked into localStorage");

    // Turn 1: the model runs a command on the node, which asks first; then it answers in
    // two chunks.
    await page.fill("#message", "where do you run?");
    await page.press("#message", "Enter");
    const approval = page.locator(".card.approval", { hasText: env("WEBCHAT_COMMAND") });
    await approval.waitFor({ timeout: STEP_MS });
    await page.screenshot({ path: path.join(shots, "chat-approval.png"), fullPage: true });
    await approval.getByRole("button", { name: "Approve once" }).click();
    await approval.locator(".state.done", { hasText: "approved once" }).waitFor({ timeout: STEP_MS });
    const card = page.locator(".card.tool", { hasText: env("WEBCHAT_TOOL_OUTPUT") });
    await card.waitFor({ timeout: STEP_MS });
    const reply = page.locator(".msg.assistant:not(.streaming)", { hasText: env("WEBCHAT_REPLY") });
    await reply.waitFor({ timeout: STEP_MS });
    const cardText = await card.innerText();
    await page.screenshot({ path: path.join(shots, "chat.png"), fullPage: true });
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: path.join(shots, "chat-dark.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 760 });
    await page.screenshot({ path: path.join(shots, "chat-phone.png"), fullPage: true });
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 900, height: 760 });

    // Turn 2: a reply that starts streaming and never ends, stopped with Stop.
    await page.fill("#message", "take your time");
    await page.press("#message", "Enter");
    const streaming = page.locator(".msg.assistant.streaming", { hasText: env("WEBCHAT_STALLED") });
    await streaming.waitFor({ timeout: STEP_MS });
    await page.click("#stop");
    await page.locator(".msg.error", { hasText: "stopped" }).waitFor({ timeout: STEP_MS });
    await page.waitForSelector("#stop:disabled", { timeout: STEP_MS });
    await page.screenshot({ path: path.join(shots, "chat-stopped.png"), fullPage: true });

    // A second tab of this browser: no token in its URL or its sessionStorage, in with the
    // device token the gateway issued, and the same history.
    const tab = await context.newPage();
    await tab.goto(env("WEBCHAT_URL"));
    await tab.waitForSelector("#status.ok", { timeout: STEP_MS });
    await tab.locator(".msg.assistant", { hasText: env("WEBCHAT_REPLY") }).waitFor({ timeout: STEP_MS });
    const secondTab = {
      settingsHidden: await tab.locator("#settings").isHidden(),
      sessionToken: await tab.evaluate(() => sessionStorage.getItem("clawgate.token")),
    };
    await tab.close();

    if (problems.length) throw new Error(problems.join("\n"));

    // A wrong token, in a browser that has never connected: the page says where the right
    // one is, and stops retrying.
    const stranger = await browser.newContext({ viewport: { width: 900, height: 760 } });
    const wrong = await stranger.newPage();
    await wrong.goto(`${env("WEBCHAT_URL")}#token=not-the-token`);
    const notice = wrong.locator("#notice", { hasText: "did not accept the token" });
    await notice.waitFor({ timeout: STEP_MS });
    const noticeText = await notice.innerText();
    await wrong.screenshot({ path: path.join(shots, "wrong-token.png"), fullPage: true });
    const settingsOpen = await wrong.locator("#settings").isVisible();
    await stranger.close();

    console.log(JSON.stringify({ ok: true, cardText, noticeText, settingsOpen, secondTab }));
  } catch (e) {
    await page.screenshot({ path: path.join(shots, "failure.png"), fullPage: true }).catch(() => {});
    const log = await page.locator("body").innerText().catch(() => "");
    throw new Error(`${e.stack || e}\n--- page text\n${log}\n--- problems\n${problems.join("\n")}`);
  }
});
