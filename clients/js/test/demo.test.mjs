// The demo notification centre in headless Chromium (Debian's, driven by
// playwright-core): notifications appear as they are published, and two
// tabs, two devices of one user, keep their unread badges in step.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { test } from "node:test";
import { chromium } from "playwright-core";
import { startStack } from "./harness.mjs";

test("the notification centre: live list, badge, two tabs in step", async (t) => {
  const stack = await startStack(t, [], { console: true });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  t.after(() => browser.close());
  const ctx = await browser.newContext();
  const base = `http://${stack.console}/?user=alice&device=`;
  const a = await ctx.newPage();
  const b = await ctx.newPage();
  const errors = [];
  for (const p of [a, b]) p.on("pageerror", (e) => errors.push(String(e)));
  await a.goto(base + "tab-a");
  await b.goto(base + "tab-b");
  for (const p of [a, b]) await p.locator("#state", { hasText: "connected" }).waitFor({ timeout: 15000 });

  // Sent from tab A's admin panel, through POST /v1/publish.
  await a.fill("#message", "hello from the test");
  await a.click("#send");
  for (const p of [a, b]) {
    await p.locator("li.unread", { hasText: "hello from the test" }).waitFor({ timeout: 15000 });
    await p.waitForFunction(() => document.getElementById("badge").dataset.count === "1", null, { timeout: 15000 })
      .catch(async (e) => { throw new Error(`badge ${await p.locator("#badge").getAttribute("data-count")}: ${e}`); });
  }
  // Published from outside (the API with the console's key): shows at once.
  const key = await (await fetch(`http://${stack.console}/dev/apikey`)).text();
  const resp = await fetch(`http://${stack.console}/v1/publish`, {
    method: "POST",
    headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
    body: JSON.stringify({ type: "payment.failed", tenant: "acme", to: "user:alice", data: { message: "card declined" } }),
  });
  assert.equal(resp.status, 202);
  for (const p of [a, b]) await p.locator('#badge[data-count="2"]').waitFor({ timeout: 15000 });

  // Read on tab B: the badge drops on both.
  await b.click("#readAll");
  for (const p of [a, b]) {
    await p.locator('#badge[data-count="0"]').waitFor({ state: "attached", timeout: 15000 });
    await p.locator("li.unread").first().waitFor({ state: "detached", timeout: 15000 });
  }
  mkdirSync("test-results", { recursive: true });
  await a.screenshot({ path: "test-results/demo.png", fullPage: true });
  assert.deepEqual(errors, []);
});
