// The /realtime-demo page served by the binary, in real Chromium: connect with a token,
// subscribe to a venue channel, watch an invitation, publish through the API, and see each
// event appear in the live log.
import { test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import { startServer, token, API_KEY } from "./helpers.mjs";
import { ARTIFACTS, launchBrowser, offlinePage } from "./browser.mjs";

test("the demo page connects, subscribes, watches an invitation and shows what is published", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const page = await offlinePage(browser);
    await page.goto(`${server.url}/realtime-demo`);
    // This server has its own JWT secret: the page offers no token of its own.
    assert.equal(await page.locator("#token").inputValue(), "");
    await page.locator("#token").fill(token("demo-alice", { organizationId: "org-demo" }));
    await page.locator("#connect").click();
    await page.locator("#status", { hasText: /^connected$/ }).waitFor();

    await page.locator("#channel").fill("venue:42");
    await page.locator("#subscribe").click();
    await page.locator("#log li", { hasText: "subscribe →" }).waitFor();
    // Only an invitation its backend registered to the watcher's organization can be watched.
    assert.equal((await server.api("PUT", "/api/invitations/inv-demo-1", { organizationId: "org-demo" })).status, 201);
    await page.locator("#invitation").fill("inv-demo-1");
    await page.locator("#watch").click();
    await page.locator("#log li", { hasText: "watch-invitation →" }).waitFor();

    await page.locator("#api-key").fill(API_KEY);
    await page.locator("#publish-data").fill('{"crowd": "packed"}');
    await page.locator("#publish").click();
    await page.locator("#log li", { hasText: '{"crowd":"packed"}' }).waitFor();
    // The delivery can reach the page before the publish request's answer does: wait for both.
    await page.locator("#receipt", { hasText: /^202: / }).waitFor();

    const update = { invitationId: "inv-demo-1", status: "accepted" };
    assert.equal((await server.api("POST", "/invitation-update", update)).status, 202);
    await page.locator("#log li", { hasText: "invitation-update" }).waitFor();

    // Each event appears once.
    assert.equal(await page.locator("#log li", { hasText: '{"crowd":"packed"}' }).count(), 1);
    const screenshot = join(ARTIFACTS, "realtime-demo.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    assert.ok(statSync(screenshot).size > 10_000, "the screenshot was saved");

    // A bad key is refused with its cause, on the page.
    await page.locator("#api-key").fill("wrong-key");
    await page.locator("#publish").click();
    await page.locator("#receipt", { hasText: /^401: / }).waitFor();
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("with the development JWT secret the demo page comes with a working token", async () => {
  const server = await startServer({ JWT_SECRET: "" });
  const browser = await launchBrowser();
  try {
    const page = await offlinePage(browser);
    await page.goto(`${server.url}/realtime-demo`);
    assert.notEqual(await page.locator("#token").inputValue(), "");
    await page.locator("#status", { hasText: /^connected$/ }).waitFor();
  } finally {
    await browser.close();
    await server.stop();
  }
});
