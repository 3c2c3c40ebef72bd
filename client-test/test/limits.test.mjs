// Limits (L1), the same for Socket.IO and plain WebSocket: client events per second, one user's
// connections, the payload of one message or publication, subscriptions per connection. Each
// refusal names its cause, and everyone else is served throughout.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import ioV2 from "socket.io-client-v2";
import WebSocket from "ws";
import { startServer, token } from "./helpers.mjs";

let server;
before(async () => {
  server = await startServer({ CLIENT_EVENT_RATE: "5", MAX_CONNECTIONS_PER_USER: "2", MAX_PAYLOAD: "4096", MAX_SUBSCRIPTIONS: "2" });
});
after(async () => {
  await server?.stop();
});

const wsUrl = (path) => server.url.replace("http", "ws") + path;

test("a flood of client events is refused past the burst; another client is served meanwhile", async () => {
  const flooder = await server.connect({ auth: { token: token("flooder") } });
  const calm = await server.connect({ auth: { token: token("calm") } });
  const acks = await Promise.all(
    Array.from({ length: 40 }, () => flooder.socket.timeout(10000).emitWithAck("subscribe", { channel: "venue:flood" })),
  );
  const limited = acks.filter((a) => a.ok === false && a.error.code === "rate_limited");
  assert.ok(acks.filter((a) => a.ok).length <= 10 + 2, "at most the burst (2 × 5) and what refilled");
  assert.ok(limited.length >= 25, `most of the flood is refused (${limited.length})`);
  assert.equal((await calm.socket.timeout(10000).emitWithAck("subscribe", { channel: "venue:calm" })).ok, true);
});

test("a user's third connection is refused, on Socket.IO and /ws alike", async () => {
  const jwt = token("capped");
  await server.connect({ auth: { token: jwt } });
  await server.connect({ auth: { token: jwt } });
  const refused = await server.refused({ auth: { token: jwt } });
  assert.match(refused.message, /^too_many_connections:/);
  const ws = new WebSocket(wsUrl(`/ws?token=${jwt}`));
  const frames = [];
  ws.on("message", (raw) => frames.push(JSON.parse(raw.toString())));
  const code = await new Promise((ok) => ws.on("close", (c) => ok(c)));
  assert.equal(code, 1008);
  assert.equal(frames[0].code, "too_many_connections");
  // A legacy 2.x client hears the same reason in its `error` event.
  const legacy = ioV2(server.url, { query: { token: jwt }, transports: ["websocket"], reconnection: false, forceNew: true });
  const reason = await new Promise((ok) => legacy.once("error", ok));
  assert.match(reason.message, /^too_many_connections: /);
  legacy.close();
});

test("MAX_PAYLOAD and MAX_SUBSCRIPTIONS: clear refusals, the connection and the server stay up", async () => {
  const big = { event: "x", to: { all: true }, data: { blob: "x".repeat(8192) } };
  const tooBig = await server.api("POST", "/api/events", big);
  assert.equal(tooBig.status, 413);
  assert.equal(tooBig.body.error.code, "payload_too_large");

  const ws = new WebSocket(wsUrl(`/ws?token=${token("subs")}`));
  const frames = [];
  const waiters = [];
  ws.on("message", (raw) => {
    frames.push(JSON.parse(raw.toString()));
    waiters.splice(0).forEach((w) => w());
  });
  await new Promise((ok) => ws.once("open", ok));
  const ask = async (message) => {
    const before = frames.length;
    ws.send(JSON.stringify(message));
    while (frames.length === before) await new Promise((ok) => waiters.push(ok));
    return frames.at(-1);
  };
  assert.equal((await ask({ type: "subscribe", channel: "venue:1" })).type, "subscribed");
  assert.equal((await ask({ type: "subscribe", channel: "venue:2" })).type, "subscribed");
  const third = await ask({ type: "subscribe", channel: "venue:3" });
  assert.equal(third.code, "too_many_subscriptions");
  assert.equal((await ask({ type: "ping" })).type, "pong", "still usable");
  const closed = new Promise((ok) => ws.on("close", (c) => ok(c)));
  ws.send("x".repeat(8192));
  assert.equal(await closed, 1009, "an oversized frame closes with 1009 (message too big)");

  const sio = await server.connect({ auth: { token: token("subs2") } });
  await sio.socket.timeout(10000).emitWithAck("subscribe", { channel: "venue:1" });
  await sio.socket.timeout(10000).emitWithAck("subscribe", { channel: "venue:2" });
  const sioThird = await sio.socket.timeout(10000).emitWithAck("subscribe", { channel: "venue:3" });
  assert.equal(sioThird.error.code, "too_many_subscriptions");
  // The server still publishes to everyone else.
  assert.equal((await server.api("POST", "/api/events", { event: "x", to: { all: true }, data: {} })).status, 202);
});
