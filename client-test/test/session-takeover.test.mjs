// Session takeover, tried as an attacker would: the victim is a real socket.io-client (4 on
// long-polling, 4 upgrading to WebSocket, 2 on long-polling) connected with its token; the
// attacker knows only its socket id and has no token. From another address, polling, posting
// an event or upgrading with that id is refused as an unknown session, and the victim goes on
// receiving its own notifications, once each, undisturbed.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import { rawRequest, startServer, token } from "./helpers.mjs";

const ATTACKER = "127.0.0.2";

/** A WebSocket upgrade from `localAddress`; resolves with the HTTP status it was refused with. */
function upgradeFrom(localAddress, url) {
  return new Promise((ok) => {
    const ws = new WebSocket(url, { localAddress });
    ws.once("open", () => {
      ws.close();
      ok(101);
    });
    ws.once("unexpected-response", (_, res) => ok(res.statusCode));
    ws.once("error", () => ok(0));
  });
}

async function attack(server, eio, sid) {
  const base = `${server.url}/socket.io/?EIO=${eio}&transport=polling&sid=${sid}`;
  const polled = await rawRequest(base, { localAddress: ATTACKER });
  assert.deepEqual(polled, { status: 400, body: '{"code":1,"message":"Session ID unknown"}' });
  const event = '42["subscribe",{"channel":"venue:1"}]';
  const payload = eio === 3 ? `${event.length}:${event}` : event;
  assert.equal((await rawRequest(base, { localAddress: ATTACKER, method: "POST", body: payload })).status, 400);
  const ws = `${server.url.replace("http", "ws")}/socket.io/?EIO=${eio}&transport=websocket&sid=${sid}`;
  assert.equal(await upgradeFrom(ATTACKER, ws), 400);
}

/** Publishes a notification to `user` and resolves once `socket` has it; all it got. */
async function notify(server, socket, user, n) {
  const got = new Promise((ok) => socket.once("notification:new", ok));
  await server.publish({ event: "notification:new", to: { user }, data: { n } });
  return got;
}

for (const [name, transports] of [
  ["long-polling", ["polling"]],
  ["upgraded to WebSocket", ["polling", "websocket"]],
]) {
  test(`socket.io-client 4 ${name}: its socket id opens nothing from another address`, async () => {
    const server = await startServer();
    const user = `victim-${transports.length}`;
    const victim = io(server.url, { transports, forceNew: true, reconnection: false, auth: { token: token(user) } });
    const disconnects = [];
    const received = [];
    victim.on("disconnect", (reason) => disconnects.push(reason));
    victim.on("notification:new", (data) => received.push(data.n));
    try {
      await new Promise((ok, fail) => victim.once("connect", ok).once("connect_error", fail));
      if (transports.length === 2 && victim.io.engine.transport.name !== "websocket") {
        await new Promise((ok) => victim.io.engine.once("upgrade", ok));
      }
      await notify(server, victim, user, 1);
      await attack(server, 4, victim.id);
      await notify(server, victim, user, 2);
      assert.deepEqual(received, [1, 2], "each once");
      assert.deepEqual(disconnects, [], "the victim was not disturbed");
      assert.equal(victim.io.engine.transport.name, transports.at(-1));
    } finally {
      victim.close();
      await server.stop();
    }
  });
}

test("socket.io-client 2 on long-polling: its session opens nothing from another address", async () => {
  const server = await startServer();
  const victim = ioV2(server.url, { transports: ["polling"], forceNew: true, reconnection: false, query: { token: token("victim-v2") } });
  const received = [];
  victim.on("notification:new", (data) => received.push(data.n));
  try {
    await new Promise((ok, fail) => victim.once("connect", ok).once("connect_error", fail));
    await attack(server, 3, victim.io.engine.id);
    await notify(server, victim, "victim-v2", 1);
    assert.deepEqual(received, [1]);
    assert.equal(victim.connected, true);
  } finally {
    victim.close();
    await server.stop();
  }
});
