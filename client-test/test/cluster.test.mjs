// Two real instances on one Redis (and one database): a publication accepted by either reaches
// every eligible connection on both exactly once; the real @socket.io/redis-emitter works
// unchanged; the Redis JSON channels act once cluster-wide.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { Emitter } from "@socket.io/redis-emitter";
import WebSocket from "ws";
import { startServer, token } from "./helpers.mjs";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `test-${randomUUID()}:`;
let a;
let b;
let redis;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-cluster-"));
  const env = {
    REDIS_URL,
    REDIS_CHANNEL_PREFIX: prefix,
    DATABASE_URL: `sqlite://${join(dir, "shared.db")}?mode=rwc`,
  };
  a = await startServer(env);
  b = await startServer(env);
  redis = createClient({ url: REDIS_URL });
  await redis.connect();
  await Promise.all([a, b].map(waitForRedis));
});

after(async () => {
  await redis?.quit();
  await a?.stop();
  await b?.stop();
});

async function waitForRedis(server) {
  for (let i = 0; i < 200; i++) {
    const { body } = await server.api("GET", "/api/websocket");
    if (body.redis === "connected") return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("redis never connected");
}

/** Barrier on both instances: publish it once (through A); it reaches everyone on A and B. */
const barrier = () => a.barrier();

test("an HTTP publish on one instance reaches each socket of the org on both instances once", async () => {
  const onA = await a.connect({ auth: { token: token("u1", { organizationId: "acme" }) } });
  const onB = await b.connect({ auth: { token: token("u2", { organizationId: "acme" }) } });
  const onB2 = await b.connect({ auth: { token: token("u1", { organizationId: "acme" }) } });
  const outsider = await b.connect({ auth: { token: token("u3", { organizationId: "other" }) } });

  const receipts = [];
  receipts.push(await a.publish({ event: "invoice:created", to: { org: "acme" }, data: { n: 1 } }));
  receipts.push(await b.publish({ event: "invoice:paid", to: { org: "acme" }, data: { n: 2 } }));
  assert.deepEqual(receipts.map((r) => r.offset), [1, 2], "one offset sequence per room across instances");
  await barrier();

  for (const client of [onA, onB, onB2]) {
    assert.deepEqual(await client.beforeBarrier(), [
      { name: "invoice:created", args: [{ n: 1 }] },
      { name: "invoice:paid", args: [{ n: 2 }] },
    ]);
  }
  assert.deepEqual(await outsider.beforeBarrier(), []);
});

test("plain WebSocket subscribers on the other instance get a channel broadcast once", async () => {
  const ws = new WebSocket(b.url.replace("http", "ws") + `/ws?token=${token("plain")}`);
  const frames = [];
  ws.on("message", (m) => frames.push(JSON.parse(m.toString())));
  await new Promise((ok) => ws.once("open", ok));
  ws.send(JSON.stringify({ type: "subscribe", channel: "venue:9" }));
  while (!frames.some((f) => f.type === "subscribed")) await new Promise((r) => setTimeout(r, 10));

  await a.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:9", data: { open: true } });
  await barrier();
  while (!frames.some((f) => f.type === "test:barrier")) await new Promise((r) => setTimeout(r, 10));
  const updates = frames.filter((f) => f.type === "venue_update");
  assert.equal(updates.length, 1);
  assert.deepEqual(updates[0].data, { open: true });
  ws.close();
});

test("the Redis notifications channel acts once cluster-wide", async () => {
  const onA = await a.connect({ auth: { token: token("notified") } });
  const onB = await b.connect({ auth: { token: token("notified") } });
  const arrived = [onA, onB].map((c) => new Promise((ok) => c.socket.once("notification:new", ok)));
  await redis.publish(`${prefix}notifications`, JSON.stringify({ userId: "notified", id: "n1", title: "hello" }));
  await Promise.all(arrived);
  // Whichever instance claimed it published it once; a second copy would arrive before this.
  await barrier();
  for (const client of [onA, onB]) {
    assert.deepEqual(await client.beforeBarrier(), [
      { name: "notification:new", args: [{ userId: "notified", id: "n1", title: "hello" }] },
    ]);
  }
});

test("@socket.io/redis-emitter: all, room, except, one socket, binary, many arguments, dates", async () => {
  const emitter = new Emitter(redis, { key: `${prefix}socket.io` });
  const x = await a.connect({ auth: { token: token("ex", { organizationId: "org-e" }) } });
  const y = await b.connect({ auth: { token: token("ey", { organizationId: "org-e" }) } });
  const z = await b.connect({ auth: { token: token("ez", { organizationId: "org-z" }) } });

  emitter.emit("everyone", 1);
  emitter.to("org:org-e").emit("org-only", "e");
  emitter.to("org:org-e").except("user:ey").emit("except-ey", true);
  emitter.to(y.socket.id).emit("just-y", { hi: "y" });
  emitter.to("user:ez").emit("binary", Buffer.from([1, 2, 3]), "text", [4]);
  emitter.to("user:ex").emit("dated", new Date("2024-05-06T07:08:09.010Z"));
  emitter.emit("test:barrier");

  const names = (events) => events.map((e) => e.name);
  const gx = await x.beforeBarrier();
  const gy = await y.beforeBarrier();
  const gz = await z.beforeBarrier();
  assert.deepEqual(names(gx), ["everyone", "org-only", "except-ey", "dated"]);
  assert.deepEqual(names(gy), ["everyone", "org-only", "just-y"]);
  assert.deepEqual(names(gz), ["everyone", "binary"]);
  assert.deepEqual(gy[2].args, [{ hi: "y" }]);
  assert.equal(gx[3].args[0], "2024-05-06T07:08:09.010Z");
  const [bin, text, list] = gz[1].args;
  assert.ok(Buffer.isBuffer(bin) || bin instanceof ArrayBuffer, "binary arrives as binary");
  assert.deepEqual([...new Uint8Array(bin)], [1, 2, 3]);
  assert.deepEqual([text, list], ["text", [4]]);
});

test("@socket.io/redis-emitter: socketsJoin, socketsLeave and disconnectSockets", async () => {
  const emitter = new Emitter(redis, { key: `${prefix}socket.io` });
  const p = await a.connect({ auth: { token: token("jp", { organizationId: "org-j" }) } });
  const q = await b.connect({ auth: { token: token("jq", { organizationId: "org-j" }) } });

  emitter.in("org:org-j").socketsJoin("promo:room");
  emitter.to("promo:room").emit("promo", 1);
  emitter.in("user:jq").socketsLeave("promo:room");
  emitter.to("promo:room").emit("promo", 2);
  emitter.emit("test:barrier");
  assert.deepEqual((await p.beforeBarrier()).map((e) => e.args[0]), [1, 2]);
  assert.deepEqual((await q.beforeBarrier()).map((e) => e.args[0]), [1]);

  const gone = new Promise((ok) => q.socket.once("disconnect", ok));
  emitter.in("user:jq").disconnectSockets();
  assert.equal(await gone, "io server disconnect");
  assert.equal(p.socket.connected, true);
});

test("beside Node servers, without NODE_FLEET: never counted as an adapter peer, and a request naming one socket the old way disconnects nobody", async () => {
  // @socket.io/redis-adapter counts its peers with PUBSUB NUMSUB on the request channel, then
  // waits for an answer from each: an instance counted there would make every Node server's
  // fetchSockets() and allRooms() time out.
  const requests = `${prefix}socket.io-request#/#`;
  const [, peers] = await redis.sendCommand(["PUBSUB", "NUMSUB", requests]);
  assert.equal(Number(peers), 0, "no instance is subscribed to the request channel by name");

  const r = await a.connect({ auth: { token: token("lr", { organizationId: "org-l" }) } });
  const s = await b.connect({ auth: { token: token("ls", { organizationId: "org-l" }) } });
  // socket.io-redis-adapter 7.x's remoteDisconnect(sid, close): no `opts`. Read as "everyone",
  // it would close every connection; a peer not holding that socket leaves it alone.
  await redis.publish(requests, JSON.stringify({ uid: "AbC12x", requestId: "r1", type: 4, sid: "nobody-here", close: true }));
  await redis.publish(requests, JSON.stringify({ uid: "AbC12x", requestId: "r2", type: 5, opts: { rooms: [], except: [] } }));
  // The emitter's requests still arrive (through the same pattern): one that does act, after them.
  const emitter = new Emitter(redis, { key: `${prefix}socket.io` });
  emitter.in("user:lr").socketsJoin("legacy:after");
  emitter.to("legacy:after").emit("after", 1);
  emitter.emit("test:barrier");
  assert.deepEqual((await r.beforeBarrier()).map((e) => e.name), ["after"]);
  assert.deepEqual((await s.beforeBarrier()).map((e) => e.name), []);
  assert.equal(r.socket.connected && s.socket.connected, true, "both still connected");
});

test("room member counts and membership removal span both instances", async () => {
  for (const user of ["m1", "m2"]) {
    assert.equal((await a.api("PUT", `/api/tenants/t-c/projects/p-c/members/${user}`, {})).status, 201);
  }
  const m1 = await a.connect({ auth: { token: token("m1", { tenantId: "t-c" }) } });
  const m2 = await b.connect({ auth: { token: token("m2", { tenantId: "t-c" }) } });
  const join = (c) => c.socket.timeout(10000).emitWithAck("join-project", { projectId: "p-c" });
  assert.equal((await join(m1)).members, 1);
  assert.equal((await join(m2)).members, 2, "the count includes the other instance");

  // Removing m2's membership through instance A takes m2's socket on B out of the room.
  assert.equal((await a.api("DELETE", "/api/tenants/t-c/projects/p-c/members/m2")).status, 204);
  const counted = await m1.socket.timeout(10000).emitWithAck("room:members", { room: "tenant:t-c:project:p-c" });
  assert.equal(counted.members, 1);
  await b.publish({ event: "task:created", to: { tenant: "t-c", project: "p-c" }, data: { id: 1 } });
  await barrier();
  assert.deepEqual((await m1.beforeBarrier()).map((e) => e.name), ["task:created"]);
  assert.deepEqual(await m2.beforeBarrier(), []);
});

test("an instance reads only the rooms it has members in; one a backend joins it to is read before the join", async () => {
  const readers = async (room) => {
    const [, count] = await redis.sendCommand(["PUBSUB", "NUMSUB", `${prefix}switchyard#room:${room}`]);
    return count;
  };
  const onA = await a.connect({ auth: { token: token("i1", { organizationId: "o-i" }) } });
  const onB = await b.connect({ auth: { token: token("i2", { organizationId: "o-i" }) } });
  assert.equal(await readers("user:i1"), 1, "only A reads i1's room");
  assert.equal(await readers("user:i2"), 1, "only B reads i2's room");
  assert.equal(await readers("org:o-i"), 2, "both read the org's");
  assert.equal(await readers("venue:i"), 0, "nobody is in the venue");

  // A backend puts i2 in a channel: B reads it from then on.
  await new Emitter(redis, { key: `${prefix}socket.io` }).in("user:i2").socketsJoin("venue:i");
  await until(async () => (await readers("venue:i")) === 1, "B reading the venue");

  // A client's join is acknowledged once its instance reads the room: a publication through the
  // other instance right after the acknowledgement reaches it.
  assert.equal((await a.api("PUT", "/api/tenants/t-i/projects/p-i/members/i3", {})).status, 201);
  const onB3 = await b.connect({ auth: { token: token("i3", { tenantId: "t-i" }) } });
  await onB3.socket.timeout(10000).emitWithAck("join-project", { projectId: "p-i" });
  await a.publish({ event: "task:created", to: { tenant: "t-i", project: "p-i" }, data: { id: 1 } });
  await a.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:i", data: { n: 1 } });
  await barrier();
  for (const c of [onA, onB, onB3]) await until(async () => c.events.some((e) => e.name === "test:barrier"), "the barrier");
  const venue = (c) => c.events.filter((e) => e.name === "venue_update").length;
  assert.deepEqual([venue(onA), venue(onB)], [0, 1], "the venue's publication once, to the member only");
  assert.deepEqual((await onB3.beforeBarrier()).map((e) => e.name), ["task:created"], "once, right after the join");
});

test("beside an instance of the build before interest-based delivery (one channel for every publication): each side gets the other's once", async () => {
  // The older build's instance, as the bus sees it: a reader and a publisher of its channel.
  const older = `${prefix}switchyard#deliver`;
  const heard = [];
  const listener = redis.duplicate();
  await listener.connect();
  await listener.subscribe(older, (message) => heard.push(JSON.parse(message.split("\n").slice(2).join("\n"))));
  const onA = await a.connect({ auth: { token: token("v1", { organizationId: "o-v" }) } });
  const onB = await b.connect({ auth: { token: token("v2", { organizationId: "o-v" }) } });
  try {
    // Once this build's instances see the older one (they count readers every few seconds),
    // what they publish reaches it too.
    for (let n = 0; !heard.some((p) => p.event === "org:tick"); n++) {
      assert.ok(n < 400, "the older instance never heard this build's publications");
      await a.publish({ event: "org:tick", to: { org: "o-v" }, data: { n: -1 } });
      await new Promise((r) => setTimeout(r, 25));
    }
    for (let n = 0; n < 3; n++) await b.publish({ event: "org:tick", to: { org: "o-v" }, data: { n } });
    // What the older instance publishes (its wire form) reaches this build's sockets.
    const wire = { id: randomUUID(), event: "org:tick", everyone: false, rooms: ["org:o-v"], except: [],
      data: { n: 100 }, historyRooms: [], ephemeral: false };
    await redis.publish(older, `\n\n${JSON.stringify(wire)}`);
    await barrier();
    for (const c of [onA, onB]) await until(async () => c.events.some((e) => e.name === "test:barrier"), "the barrier");
    const ticks = (c) => c.events.filter((e) => e.name === "org:tick").map((e) => e.args[0].n).filter((n) => n >= 0);
    assert.deepEqual(ticks(onA), [0, 1, 2, 100], "A: each once");
    assert.deepEqual(ticks(onB), [0, 1, 2, 100], "B: each once");
    await until(async () => heard.filter((p) => p.event === "org:tick" && p.data.n >= 0).length >= 3, "the older instance");
    assert.deepEqual(heard.filter((p) => p.event === "org:tick" && p.data.n >= 0 && p.data.n < 100).map((p) => p.data.n), [0, 1, 2],
      "the older instance: each once");
  } finally {
    await listener.quit();
  }
});

async function until(check, what) {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}
