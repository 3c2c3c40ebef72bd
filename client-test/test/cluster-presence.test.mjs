// Presence across two instances: announced once when a user's first connection anywhere opens
// and his last closes, and announced offline when the instance holding him is killed.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, token } from "./helpers.mjs";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
let env;
let a;
let b;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-presence-"));
  env = {
    REDIS_URL,
    REDIS_CHANNEL_PREFIX: `test-${randomUUID()}:`,
    DATABASE_URL: `sqlite://${join(dir, "shared.db")}?mode=rwc`,
    // Long enough that a loaded machine's scheduling pauses never expire a live instance's
    // heartbeat; the kill test waits for the condition, however long the expiry takes.
    PRESENCE_TTL: "3s",
  };
  a = await startServer(env);
  b = await startServer(env);
});

after(async () => {
  await a?.stop();
  await b?.stop();
});

/** Every user:status a client receives, kept apart from the recorder's queue. */
function statusLog(client) {
  const log = [];
  client.socket.on("user:status", (s) => log.push(s));
  return log;
}
const statusEvents = (log, user) => log.filter((s) => s.userId === user).map((s) => s.status);

async function until(check, what) {
  for (let i = 0; i < 3000; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test("a user on both instances is online once and offline once, seen from both", async () => {
  const watchAClient = await a.connect({ auth: { token: token("watch-a", { organizationId: "p-org" }) } });
  const watchBClient = await b.connect({ auth: { token: token("watch-b", { organizationId: "p-org" }) } });
  const watchA = statusLog(watchAClient);
  const watchB = statusLog(watchBClient);
  const claims = { organizationId: "p-org" };
  const onA = await a.connect({ auth: { token: token("roamer", claims) } });
  await until(() => statusEvents(watchA, "roamer").length === 1, "online");
  const onB = await b.connect({ auth: { token: token("roamer", claims) } });
  onA.socket.disconnect();
  // Let the closed tab's sync finish: a barrier through the cluster, after a short settle.
  await new Promise((r) => setTimeout(r, 300));
  await a.barrier();
  await watchAClient.beforeBarrier();
  await watchBClient.beforeBarrier();
  assert.deepEqual(statusEvents(watchA, "roamer"), ["online"]);
  assert.deepEqual(statusEvents(watchB, "roamer"), ["online"]);

  onB.socket.disconnect();
  await until(() => statusEvents(watchA, "roamer").length === 2 && statusEvents(watchB, "roamer").length === 2, "offline");
  assert.deepEqual(statusEvents(watchA, "roamer"), ["online", "offline"]);
  assert.deepEqual(statusEvents(watchB, "roamer"), ["online", "offline"]);
});

test("users of a killed instance are announced offline by the survivors", async () => {
  const c = await startServer(env);
  const watcher = statusLog(await a.connect({ auth: { token: token("survivor", { organizationId: "k-org" }) } }));
  await c.connect({ auth: { token: token("doomed", { organizationId: "k-org" }) } });
  await until(() => statusEvents(watcher, "doomed").length === 1, "online");
  c.kill();
  await until(() => statusEvents(watcher, "doomed").length === 2, "offline after the kill");
  assert.deepEqual(statusEvents(watcher, "doomed"), ["online", "offline"]);
});

test("an instance stalled past its heartbeat is reaped, then announces its users online again", async () => {
  const c = await startServer(env);
  try {
    const watcher = statusLog(await a.connect({ auth: { token: token("observer", { organizationId: "s-org" }) } }));
    const sleeper = await c.connect({ auth: { token: token("sleeper", { organizationId: "s-org" }) } });
    await until(() => statusEvents(watcher, "sleeper").length === 1, "online");
    // Stalled longer than PRESENCE_TTL, the instance cannot be told from a dead one: the others
    // reap it. (The client keeps its connection: Socket.IO's ping timeout is far longer.)
    c.pause();
    await until(() => statusEvents(watcher, "sleeper").length === 2, "offline while stalled");
    c.resume();
    // Its next heartbeat finds it was reaped: it syncs its users again.
    await until(() => statusEvents(watcher, "sleeper").length === 3, "online after the stall");
    assert.deepEqual(statusEvents(watcher, "sleeper"), ["online", "offline", "online"]);
    assert.equal(sleeper.socket.connected, true);
  } finally {
    c.resume();
    await c.stop();
  }
});
