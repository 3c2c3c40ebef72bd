// Token lifetime (A6) with the real clients: a connection is bound to its token's `exp`.
// Socket.IO: `auth:expiring`, then `auth:expired` and a server disconnect (the client does not
// reconnect by itself); `auth:refresh` moves the deadline and the home rooms. /ws: `refresh`,
// and at expiry an error frame `token_expired` and close 1008.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import WebSocket from "ws";
import { sign, startServer, token } from "./helpers.mjs";

let server;
before(async () => {
  server = await startServer({ TOKEN_EXPIRY_NOTICE: "2s" });
});
after(async () => {
  await server?.stop();
});

/** A token of `sub` that expires `seconds` from now. */
const expiring = (sub, seconds, extra = {}) => sign({ sub, exp: Math.floor(Date.now() / 1000) + seconds, ...extra });

test("Socket.IO: at exp the socket is told, then disconnected by the server", async () => {
  const socket = io(server.url, { transports: ["websocket"], forceNew: true, auth: { token: expiring("short", 6) } });
  const warned = new Promise((ok) => socket.on("auth:expiring", ok));
  const expired = new Promise((ok) => socket.on("auth:expired", ok));
  const gone = new Promise((ok) => socket.on("disconnect", ok));
  await new Promise((ok) => socket.on("connect", ok));
  const warning = await warned;
  assert.match(warning.expiresAt, /^\d{4}-\d\d-\d\dT/);
  const notice = await expired;
  assert.equal(notice.expiredAt, warning.expiresAt);
  assert.equal(await gone, "io server disconnect", "so the client does not reconnect with the dead token");
  assert.equal(socket.active, false);
});

test("Socket.IO: auth:refresh moves the deadline and the home rooms; a bad token changes nothing", async () => {
  const socket = io(server.url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    auth: { token: expiring("renew", 6, { organizationId: "org-old" }) },
  });
  const expired = [];
  socket.on("auth:expired", (e) => expired.push(e));
  const ticks = [];
  socket.on("tick", (d) => ticks.push(d.org));
  await new Promise((ok) => socket.on("connect", ok));

  const other = await socket.timeout(10000).emitWithAck("auth:refresh", { token: token("someone-else") });
  assert.equal(other.ok, false);
  assert.equal(other.error.code, "token_user_mismatch");
  const forged = await socket.timeout(10000).emitWithAck("auth:refresh", { token: sign({ sub: "renew", exp: 4102444800 }, "not-the-secret-not-the-secret-xx") });
  assert.equal(forged.error.code, "token_bad_signature");

  const renewed = await socket.timeout(10000).emitWithAck("auth:refresh", { token: token("renew", { organizationId: "org-new" }) });
  assert.equal(renewed.ok, true);
  assert.ok(Date.parse(renewed.expiresAt) > Date.now() + 30 * 60 * 1000);
  for (const org of ["org-old", "org-new"]) await server.publish({ event: "tick", to: { org }, data: { org } });
  await server.publish({ event: "tick", to: { org: "org-new" }, data: { org: "last" } });
  for (let i = 0; i < 500 && !ticks.includes("last"); i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(ticks, ["org-new", "last"], "the socket left the old organization's room and joined the new one");

  // Past the first token's expiry, the socket is still there.
  await new Promise((r) => setTimeout(r, 7000));
  assert.equal(socket.connected, true);
  assert.deepEqual(expired, []);
  socket.close();
});

test("/ws: refresh, and at expiry an error frame then close 1008", async () => {
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws?token=${expiring("plain", 6)}`);
  const frames = [];
  ws.on("message", (raw) => frames.push(JSON.parse(raw.toString())));
  const closed = new Promise((ok) => ws.on("close", (code, reason) => ok({ code, reason: reason.toString() })));
  await new Promise((ok) => ws.once("open", ok));
  ws.send(JSON.stringify({ type: "refresh", token: token("someone-else") }));
  for (let i = 0; i < 250 && !frames.some((f) => f.type === "error"); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(frames.find((f) => f.type === "error").code, "token_user_mismatch");
  const { code, reason } = await closed;
  assert.equal(code, 1008);
  assert.equal(reason, "token_expired");
  assert.equal(frames.at(-1).code, "token_expired");

  const renewing = new WebSocket(`${server.url.replace("http", "ws")}/ws?token=${expiring("plain2", 6)}`);
  const got = [];
  renewing.on("message", (raw) => got.push(JSON.parse(raw.toString())));
  const renewedClose = new Promise((ok) => renewing.on("close", ok));
  await new Promise((ok) => renewing.once("open", ok));
  renewing.send(JSON.stringify({ type: "refresh", token: token("plain2") }));
  for (let i = 0; i < 250 && !got.some((f) => f.type === "refreshed"); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(Date.parse(got.find((f) => f.type === "refreshed").expiresAt) > Date.now() + 30 * 60 * 1000);
  await new Promise((r) => setTimeout(r, 7000));
  assert.equal(renewing.readyState, WebSocket.OPEN, "a refreshed connection outlives its first token");
  renewing.close();
  await renewedClose;
});

test("socket.io-client 2.x: auth:expired, then a server disconnect; over the connection cap, the reason", async () => {
  const socket = ioV2(server.url, { query: { token: expiring("legacy-exp", 6) }, transports: ["websocket"], reconnection: false, forceNew: true });
  const expired = new Promise((ok) => socket.on("auth:expired", ok));
  const gone = new Promise((ok) => socket.on("disconnect", ok));
  await new Promise((ok) => socket.on("connect", ok));
  assert.match((await expired).expiredAt, /^\d{4}-/);
  assert.equal(await gone, "io server disconnect");
});
