// Two instances behind nginx with the repository's configuration (deploy/nginx.conf.template):
// long-polling clients stay on the instance that holds their session, WebSocket clients are
// upgraded, and a publication reaches every client once whichever instance holds it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { Agent } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import { rawRequest, recorder, startServer, token } from "./helpers.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
let a;
let b;
let nginx;
let proxy;
const clients = [];

function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

before(async () => {
  try {
    execFileSync("nginx", ["-v"], { stdio: "ignore" });
  } catch {
    throw new Error("nginx is required for this test (Debian: apt-get install nginx-light); .ci/run installs it");
  }
  const dir = mkdtempSync(join(tmpdir(), "switchyard-nginx-"));
  const env = {
    REDIS_URL,
    REDIS_CHANNEL_PREFIX: `test-${randomUUID()}:`,
    DATABASE_URL: `sqlite://${join(dir, "shared.db")}?mode=rwc`,
    // nginx connects from here; the client is the address it forwards.
    TRUSTED_PROXIES: "127.0.0.1",
  };
  a = await startServer(env);
  b = await startServer(env);
  const port = await freePort();
  const config = readFileSync(resolve(here, "../../deploy/nginx.conf.template"), "utf8")
    .replaceAll("${PREFIX}", dir)
    .replaceAll("${LISTEN_PORT}", String(port))
    .replaceAll("${SWITCHYARD_1}", new URL(a.url).host)
    .replaceAll("${SWITCHYARD_2}", new URL(b.url).host);
  writeFileSync(join(dir, "nginx.conf"), config);
  nginx = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off; user root;"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  proxy = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${proxy}/healthz`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error("nginx did not start");
});

after(async () => {
  for (const c of clients) c.close();
  nginx?.kill("SIGTERM");
  await a?.stop();
  await b?.stop();
});

/** A client from its own loopback address, so that the hash spreads clients over instances. */
async function connect(n, transports) {
  const agent = new Agent({ localAddress: `127.0.0.${n + 2}`, keepAlive: true });
  const socket = io(proxy, {
    transports,
    agent,
    forceNew: true,
    reconnection: false,
    auth: { token: token(`proxied-${n}`, { organizationId: "behind-nginx" }) },
  });
  clients.push(socket);
  await new Promise((ok, fail) => {
    socket.once("connect", ok);
    socket.once("connect_error", fail);
  });
  return recorder(socket);
}

test("polling and websocket clients behind nginx each get a publication once", async () => {
  const polling = [];
  for (let n = 0; n < 10; n++) polling.push(await connect(n, ["polling"]));
  const upgraded = [];
  for (let n = 10; n < 14; n++) upgraded.push(await connect(n, ["websocket"]));

  const [onA, onB] = await Promise.all([a, b].map(async (s) => (await s.api("GET", "/api/websocket")).body.connections));
  assert.equal(onA + onB, 14);
  assert.ok(onA > 0 && onB > 0, `both instances hold clients (${onA} + ${onB})`);

  await a.publish({ event: "invoice:created", to: { org: "behind-nginx" }, data: { via: "a" } });
  await b.publish({ event: "invoice:sent", to: { org: "behind-nginx" }, data: { via: "b" } });
  await a.barrier();
  for (const client of [...polling, ...upgraded]) {
    assert.deepEqual(await client.beforeBarrier(), [
      { name: "invoice:created", args: [{ via: "a" }] },
      { name: "invoice:sent", args: [{ via: "b" }] },
    ]);
  }
});

/** The instance that holds `n`'s connections (nginx hashes the client address). */
async function instanceOf(n) {
  const before = await Promise.all([a, b].map(async (s) => (await s.api("GET", "/api/websocket")).body.connections));
  const probe = await connect(n, ["websocket"]);
  const after = await Promise.all([a, b].map(async (s) => (await s.api("GET", "/api/websocket")).body.connections));
  probe.socket.close();
  return after[0] > before[0] ? a : b;
}

test("behind nginx, a long-polling session opens nothing for another client, even on its instance", async () => {
  const victim = await connect(20, ["polling"]);
  const home = await instanceOf(20);
  let attacker = 21;
  while ((await instanceOf(attacker)) !== home) attacker++;
  await new Promise((r) => setTimeout(r, 100));

  const base = `${proxy}/socket.io/?EIO=4&transport=polling&sid=${victim.socket.id}`;
  const agent = new Agent({ localAddress: `127.0.0.${attacker + 2}` });
  const polled = await rawRequest(base, { agent });
  assert.deepEqual(polled, { status: 400, body: '{"code":1,"message":"Session ID unknown"}' });
  const subscribe = '42["subscribe",{"channel":"venue:1"}]';
  assert.equal((await rawRequest(base, { agent, method: "POST", body: subscribe })).status, 400);

  const got = new Promise((ok) => victim.socket.once("notification:new", ok));
  await home.publish({ event: "notification:new", to: { user: "proxied-20" }, data: { n: 1 } });
  assert.deepEqual(await got, { n: 1 });
  assert.equal(victim.socket.connected, true);
});
