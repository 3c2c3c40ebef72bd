// A Redis outage: each instance keeps serving its own clients, says it is degraded, reconnects
// by itself when Redis is back, and cross-instance delivery resumes without a restart.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, token } from "./helpers.mjs";

let port;
let redis;
let a;
let b;

function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function startRedis() {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  await new Promise((ok, fail) => {
    child.once("error", (e) => fail(new Error(`redis-server could not start (is it installed?): ${e.message}`)));
    setTimeout(ok, 300);
  });
  return child;
}

async function status(server) {
  return (await server.api("GET", "/api/websocket")).body.redis;
}

async function until(check, what) {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

before(async () => {
  port = await freePort();
  redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "switchyard-outage-"));
  const env = { REDIS_URL: `redis://127.0.0.1:${port}`, DATABASE_URL: `sqlite://${join(dir, "shared.db")}?mode=rwc` };
  a = await startServer(env);
  b = await startServer(env);
  await until(async () => (await status(a)) === "connected" && (await status(b)) === "connected", "both subscribed");
});

after(async () => {
  await a?.stop();
  await b?.stop();
  redis?.kill("SIGKILL");
});

test("local delivery survives a Redis outage and cross-instance delivery resumes after it", async () => {
  const onA = await a.connect({ auth: { token: token("ua", { organizationId: "o" }) } });
  const onB = await b.connect({ auth: { token: token("ub", { organizationId: "o" }) } });

  redis.kill("SIGKILL");
  await until(async () => (await status(a)) === "disconnected", "A to notice the outage");
  const ready = await fetch(`${a.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal((await ready.json()).error.code, "redis_unavailable");

  const arrived = new Promise((ok) => onA.socket.once("invoice:created", ok));
  const during = await a.publish({ event: "invoice:created", to: { org: "o" }, data: { phase: "outage" } });
  assert.ok(during.id);
  const gotDuring = await arrived;
  assert.deepEqual(gotDuring, { phase: "outage" });

  redis = await startRedis();
  await until(async () => (await status(a)) === "connected" && (await status(b)) === "connected", "both to resubscribe");
  assert.equal((await fetch(`${a.url}/readyz`)).status, 200);

  await a.publish({ event: "invoice:paid", to: { org: "o" }, data: { phase: "after" } });
  await a.barrier();
  const afterA = (await onA.beforeBarrier()).filter((e) => e.name !== "invoice:created");
  const afterB = await onB.beforeBarrier();
  assert.deepEqual(afterA, [{ name: "invoice:paid", args: [{ phase: "after" }] }]);
  // B could not hear the outage publication; it gets everything after, once.
  assert.deepEqual(afterB, [{ name: "invoice:paid", args: [{ phase: "after" }] }]);
});
