// Plain WebSocket clients (the `ws` package, as the venue and commerce apps' own hooks use the
// browser WebSocket): subscribe/unsubscribe, refusals that keep the connection usable, commerce
// deliveries to exactly the right customer, and polling with `since`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { BARRIER, startServer, token } from "./helpers.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

/** Opens a plain WebSocket and queues every JSON frame it receives. */
async function open(path) {
  const ws = new WebSocket(server.url.replace("http", "ws") + path);
  const frames = [];
  const waiters = [];
  ws.on("message", (raw) => {
    frames.push(JSON.parse(raw.toString()));
    while (waiters.length && frames.length) waiters.shift()(frames.shift());
  });
  await new Promise((ok, fail) => {
    ws.once("open", ok);
    ws.once("error", fail);
  });
  const next = () =>
    new Promise((ok, fail) => {
      if (frames.length) return ok(frames.shift());
      const timer = setTimeout(() => fail(new Error("no frame within 5 s")), 5000);
      waiters.push((f) => {
        clearTimeout(timer);
        ok(f);
      });
    });
  return {
    ws,
    next,
    async ask(message) {
      ws.send(typeof message === "string" ? message : JSON.stringify(message));
      return next();
    },
    async beforeBarrier() {
      const seen = [];
      for (;;) {
        const frame = await next();
        if (frame.type === BARRIER) return seen;
        if (frame.type !== "user:status") seen.push(frame);
      }
    },
    close: () => ws.close(),
  };
}

test("/ws: subscribe, deliveries, unsubscribe, and refusals that keep the connection usable", async () => {
  const fan = await open(`/ws?token=${token("ws-fan")}`);
  assert.deepEqual(await fan.ask({ type: "subscribe", channel: "vibe_checks:3" }), {
    type: "subscribed",
    channel: "vibe_checks:3",
  });
  const refused = await fan.ask({ type: "subscribe", channel: "user:someone-else" });
  assert.deepEqual([refused.type, refused.code], ["error", "private_channel"]);
  const garbage = await fan.ask("{oops");
  assert.deepEqual([garbage.type, garbage.code], ["error", "invalid_json"]);
  assert.deepEqual(await fan.ask({ type: "ping" }), { type: "pong" });

  await server.api("POST", "/api/websocket", { action: "broadcast", channel: "vibe_checks:3", data: { vibe: "lively" } });
  await server.barrier();
  const got = await fan.beforeBarrier();
  assert.equal(got.length, 1);
  assert.deepEqual([got[0].type, got[0].channel, got[0].data, got[0].offset], ["vibe_check", "vibe_checks:3", { vibe: "lively" }, 1]);

  assert.deepEqual(await fan.ask({ type: "unsubscribe", channel: "vibe_checks:3" }), {
    type: "unsubscribed",
    channel: "vibe_checks:3",
  });
  await server.api("POST", "/api/websocket", { action: "broadcast", channel: "vibe_checks:3", data: {} });
  await server.barrier();
  assert.deepEqual(await fan.beforeBarrier(), []);
  fan.close();
});

test("/api/ws: order_updated reaches only its customer", async () => {
  const alice = await open(`/api/ws?userId=cust-a&role=customer&token=${token("cust-a")}`);
  const bob = await open(`/api/ws?userId=cust-b&role=customer&token=${token("cust-b")}`);
  const order = { orderId: "ord-1", order: { status: "delivered" } };
  await server.publish({ event: "order_updated", to: { user: "cust-a" }, data: order });
  await server.barrier();
  assert.deepEqual(await alice.beforeBarrier(), [{ type: "order_updated", data: order }]);
  assert.deepEqual(await bob.beforeBarrier(), []);

  const impostor = await open(`/api/ws?userId=cust-a&role=customer&token=${token("cust-b")}`);
  assert.equal((await impostor.next()).code, "user_mismatch");
  alice.close();
  bob.close();
});

test("polling with since returns each update once, in order", async () => {
  for (const n of [1, 2, 3]) {
    await server.api("POST", "/api/websocket", { action: "broadcast", channel: "promotions:8", data: { n } });
  }
  const headers = { authorization: `Bearer ${token("poller")}` };
  const page = await (await fetch(`${server.url}/api/venues/8/promotions?limit=2`, { headers })).json();
  assert.deepEqual(page.items.map((i) => i.data.n), [1, 2]);
  const rest = await (await fetch(`${server.url}/api/venues/8/promotions?since=${page.nextSince}`, { headers })).json();
  assert.deepEqual(rest.items.map((i) => [i.offset, i.data.n]), [[3, 3]]);
  const forbidden = await fetch(`${server.url}/api/history?room=user:someone-else`, { headers });
  assert.equal(forbidden.status, 403);
});

test("/ws subscribe with since: history then live at the seam, under concurrent publishing, each once in order", async () => {
  const total = 150;
  const broadcast = (n) =>
    server.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:seam", data: { n } });
  // Half published before the client exists; the rest while it subscribes and catches up.
  for (let n = 0; n < total / 2; n++) assert.equal((await broadcast(n)).status, 202);
  const stream = (async () => {
    for (let n = total / 2; n < total; n++) assert.equal((await broadcast(n)).status, 202);
  })();
  const client = await open(`/ws?token=${token("seam")}`);
  const subscribed = await client.ask({ type: "subscribe", channel: "venue:seam", since: 0 });
  assert.deepEqual(subscribed, { type: "subscribed", channel: "venue:seam" });
  const seen = [];
  const offsets = [];
  while (seen.length < total) {
    const frame = await client.next();
    if (frame.type !== "venue_update") continue;
    seen.push(frame.data.n);
    offsets.push(frame.offset);
  }
  await stream;
  assert.deepEqual(seen, [...Array(total).keys()], "no gap, nothing twice, in order");
  assert.deepEqual(offsets, [...Array(total).keys()].map((n) => n + 1), "offsets 1..total");

  // Resuming from an offset gives what came after it.
  const again = await open(`/ws?token=${token("seam")}`);
  await again.ask({ type: "subscribe", channel: "venue:seam", since: total - 3 });
  const tail = [(await again.next()).data.n, (await again.next()).data.n, (await again.next()).data.n];
  assert.deepEqual(tail, [total - 3, total - 2, total - 1]);
  const bad = await again.ask({ type: "subscribe", channel: "venue:seam", since: "yesterday" });
  assert.equal(bad.code, "invalid_since");
  client.ws.close();
  again.ws.close();
});

test("/ws?since= replays the home rooms' history, then live", async () => {
  const user = `home-${Date.now()}`;
  for (let n = 0; n < 3; n++) await server.publish({ event: "note", to: { user }, data: { n } });
  const client = await open(`/ws?since=0&token=${token(user)}`);
  const got = [];
  while (got.length < 3) {
    const frame = await client.next();
    if (frame.type === "note") got.push(frame.data.n);
  }
  await server.publish({ event: "note", to: { user }, data: { n: 3 } });
  while (got.length < 4) {
    const frame = await client.next();
    if (frame.type === "note") got.push(frame.data.n);
  }
  assert.deepEqual(got, [0, 1, 2, 3]);
  client.ws.close();
});
