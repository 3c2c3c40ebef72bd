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
