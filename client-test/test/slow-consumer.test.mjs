// Slow consumers: a client that stops reading (a phone in a tunnel, a frozen tab) while its room
// keeps publishing fills its send queue. The server cuts it instead of dropping packets behind
// its back: a Socket.IO client sees its connection end and reconnects, and one that opted in to
// recovery resumes from its cursor with every publication exactly once, in order; a plain
// WebSocket is closed with the reason. Each cut is counted in
// `switchyard_slow_disconnects_total{transport}`.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { resumingClient, startServer, token } from "./helpers.mjs";

/** Large enough that a few thousand fill the socket buffers and the send queue behind them. */
const PAD = "x".repeat(4096);

async function slowCuts(server, transport) {
  const response = await fetch(`${server.url}/metrics`);
  const text = await response.text();
  const line = text.split("\n").find((l) => l.startsWith(`switchyard_slow_disconnects_total{transport="${transport}"}`));
  return Number(line?.split(" ").at(-1) ?? NaN);
}

/** Publishes `{n}` to `to` in batches of 100 from `from`, until `done()` or `max`; the next n. */
async function publishUntil(server, to, from, max, done) {
  let n = from;
  while (n < from + max && !(await done())) {
    const events = [];
    for (let i = 0; i < 100; i++, n++) events.push({ event: "tick", to, data: { n, pad: PAD } });
    const { status } = await server.api("POST", "/api/events/batch", { events });
    assert.equal(status, 200);
  }
  return n;
}

async function until(check, what, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The TCP socket under a connected socket.io-client's WebSocket: pausing it stops reading. */
function tcpOf(socket) {
  return socket.io.engine.transport.ws._socket;
}

test("a Socket.IO client that stops reading is cut; opted in, it resumes with every publication once", async () => {
  const server = await startServer({ HISTORY_ROOMS: "none" });
  const client = resumingClient(server.url, token("slow-1", { organizationId: "o-slow" }));
  const resuming = client.socket;
  const disconnects = [];
  resuming.on("disconnect", (reason) => disconnects.push(reason));
  // One that did not opt in: it loses what it missed, but knows it was cut.
  const plain = io(server.url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { token: token("slow-2", { organizationId: "o-slow" }) } });
  const plainCut = new Promise((ok) => plain.once("disconnect", ok));
  try {
    await until(() => client.recoveries.length === 1 && plain.connected, "both connected");
    const to = { org: "o-slow" };
    let n = await publishUntil(server, to, 0, 100, async () => false);
    await until(() => client.ns("tick").length === 100, "the first hundred");

    tcpOf(resuming).pause();
    tcpOf(plain).pause();
    n = await publishUntil(server, to, n, 40_000, async () => (await slowCuts(server, "socketio")) >= 2);
    assert.equal(await slowCuts(server, "socketio"), 2, "both stalled sockets were cut");
    tcpOf(resuming).resume();
    tcpOf(plain).resume();

    const reason = await plainCut;
    assert.match(reason, /transport (close|error)/, "the plain client's connection ended, so its app can reconnect");
    await until(() => client.ns("tick").length >= n, `all ${n} publications`);
    // A last one, live after the resume.
    await server.publish({ event: "tick", to, data: { n, pad: "" } });
    await until(() => client.ns("tick").length === n + 1, "the live one");
    assert.deepEqual(client.ns("tick"), [...Array(n + 1).keys()], "every publication exactly once, in order");
    assert.ok(disconnects.length >= 1, "the resuming client was cut at least once");
    assert.ok(client.recoveries.slice(1).every((r) => r.recovered === true), JSON.stringify(client.recoveries.slice(1)));
  } finally {
    resuming.close();
    plain.close();
    await server.stop();
  }
});

test("a plain WebSocket that stops reading is closed as a slow consumer, and counted", async () => {
  const server = await startServer({ HISTORY_ROOMS: "none", WS_SEND_QUEUE: "64" });
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws?token=${token("ws-slow")}`);
  const closed = new Promise((ok) => ws.once("close", (code, reason) => ok({ code, reason: reason.toString() })));
  try {
    await new Promise((ok, fail) => ws.once("open", ok).once("error", fail));
    const subscribed = new Promise((ok) => ws.once("message", ok));
    ws.send(JSON.stringify({ type: "subscribe", channel: "venue:slow" }));
    await subscribed;
    ws._socket.pause();
    await publishUntil(server, { channel: "venue:slow" }, 0, 40_000, async () => (await slowCuts(server, "websocket")) >= 1);
    assert.equal(await slowCuts(server, "websocket"), 1);
    ws._socket.resume();
    assert.deepEqual(await closed, { code: 1008, reason: "slow consumer: send queue full" });
  } finally {
    ws.terminate();
    await server.stop();
  }
});
