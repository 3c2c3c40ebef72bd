// Filters (SPEC H5): a connection narrows what it receives from a room it is in, by event names
// (`prefix:*`) and payload fields, on Socket.IO and on /ws; the filter survives a resume, and a
// bad filter is refused with its field.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { forwarder, resumingClient, startServer, token } from "./helpers.mjs";

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

const ORG_EVENTS = ["invoice:created", "expense:created", "invoice:paid", "bank:sync_error", "invoice:sent"];

/** Publishes one of each org event to `org`, numbered from `from`; what an invoice filter passes. */
async function publishOrgEvents(org, from) {
  const invoices = [];
  for (const [i, event] of ORG_EVENTS.entries()) {
    await server.publish({ event, to: { org }, data: { n: from + i } });
    if (event.startsWith("invoice:")) invoices.push(from + i);
  }
  return invoices;
}

test("an org page filtered to invoice:* gets invoices only, and after a drop and a resume only the invoices it missed", async () => {
  const lb = await forwarder(server);
  const org = "o-filter";
  const client = resumingClient(lb.url, token("f1", { organizationId: org }));
  try {
    await client.until(() => client.recoveries.length === 1, "the first recovery event");
    const set = await client.socket.timeout(10_000).emitWithAck("filter", { room: `org:${org}`, events: ["invoice:*"] });
    assert.deepEqual(set, { ok: true, room: `org:${org}`, filter: { events: ["invoice:*"] } });
    // Beside it, an unfiltered socket of the org and two more with the same filter (one group).
    const whole = await server.connect({ auth: { token: token("f2", { organizationId: org }) } });
    const same = [];
    for (const user of ["f3", "f4"]) {
      const peer = await server.connect({ auth: { token: token(user, { organizationId: org }) } });
      assert.equal((await peer.socket.timeout(10_000).emitWithAck("filter", { room: `org:${org}`, events: ["invoice:*"] })).ok, true);
      same.push(peer);
    }

    const live = await publishOrgEvents(org, 0);
    await server.barrier();
    const ns = (recorded) => recorded.filter((e) => ORG_EVENTS.includes(e.name)).map((e) => e.args[0].n);
    assert.deepEqual(ns(await whole.beforeBarrier()), [0, 1, 2, 3, 4], "no filter, the whole room");
    for (const peer of same) assert.deepEqual(ns(await peer.beforeBarrier()), live);
    await client.until(() => client.ns("invoice:sent").length === 1, "the live invoices");
    const received = () => client.events.filter((e) => ORG_EVENTS.includes(e.event)).map((e) => e.args[0].n);
    assert.deepEqual(received(), live);

    // A publication to the org and to the user: the user's own room has no filter.
    await server.publish({ event: "expense:created", to: { org, user: "f1" }, data: { n: 100 } });
    await client.until(() => received().includes(100), "a publication through an unfiltered room");
    // The same for a socket that did not opt into recovery: through its own user room only.
    await server.publish({ event: "expense:created", to: { org, user: "f3" }, data: { n: 101 } });
    await server.barrier();
    assert.deepEqual(ns(await same[0].beforeBarrier()), [101], "f3: by its user room, which it did not filter");
    assert.deepEqual(ns(await same[1].beforeBarrier()), [], "f4: its org filter stops it");

    const gone = new Promise((ok) => client.socket.once("disconnect", ok));
    lb.hold();
    lb.cut();
    await gone;
    const missed = await publishOrgEvents(org, 10);
    lb.release();
    await client.until(() => client.recoveries.length === 2, "the resumption");
    assert.deepEqual([client.recoveries[1].recovered, client.recoveries[1].missed], [true, missed.length]);
    const after = await publishOrgEvents(org, 20);
    await client.until(() => client.ns("invoice:sent").includes(24), "live again");
    assert.deepEqual(received(), [...live, 100, ...missed, ...after], "the filter came back with the session");
  } finally {
    client.socket.close();
    await lb.close?.();
  }
});

test("a `where` on a channel, and removing the filter", async () => {
  const venue = await server.connect({ auth: { token: token("v1") } });
  const answer = await venue.socket.timeout(10_000).emitWithAck("subscribe", {
    channel: "venue:42",
    where: { status: "active", "venue.tier": { in: [1, 2] } },
  });
  assert.deepEqual(answer, { ok: true, channel: "venue:42", filter: { where: { status: "active", "venue.tier": { in: [1, 2] } } } });
  const updates = [
    { n: 1, status: "active", venue: { tier: 1 } },
    { n: 2, status: "closed", venue: { tier: 1 } },
    { n: 3, status: "active", venue: { tier: 3 } },
    { n: 4, status: "active" },
    { n: 5, status: "active", venue: { tier: 2 } },
  ];
  for (const data of updates) await server.publish({ event: "venue_update", to: { channel: "venue:42" }, data });
  await server.barrier();
  const ns = (events) => events.filter((e) => e.name === "venue_update").map((e) => e.args[0].n);
  assert.deepEqual(ns(await venue.beforeBarrier()), [1, 5]);

  const removed = await venue.socket.timeout(10_000).emitWithAck("filter", { room: "venue:42" });
  assert.deepEqual(removed, { ok: true, room: "venue:42", filter: null });
  await server.publish({ event: "venue_update", to: { channel: "venue:42" }, data: { n: 6, status: "closed" } });
  await server.barrier();
  assert.deepEqual(ns(await venue.beforeBarrier()), [6]);
});

test("a bad filter is refused with its field, and changes nothing", async () => {
  const client = await server.connect({ auth: { token: token("b1", { organizationId: "o-bad" }) } });
  const ask = (payload) => client.socket.timeout(10_000).emitWithAck("filter", payload);
  const refused = async (payload, code, field) => {
    const answer = await ask(payload);
    assert.equal(answer.ok, false, JSON.stringify(payload));
    assert.equal(answer.error.code, code);
    if (field) assert.ok(answer.error.message.startsWith(`${field}:`), answer.error.message);
  };
  await refused({ room: "org:o-bad", events: ["invoice:*", 7] }, "invalid_filter", "events[1]");
  await refused({ room: "org:o-bad", where: { status: { in: [] } } }, "invalid_filter", "where.status.in");
  await refused({ room: "org:o-bad", where: { status: { gt: 1 } } }, "invalid_filter", "where.status");
  await refused({ room: "org:o-bad", events: Array.from({ length: 40 }, (_, i) => `e${i}`) }, "invalid_filter", "events");
  await refused({ room: "org:elsewhere", events: ["invoice:*"] }, "not_in_room");
  const subscribe = await client.socket.timeout(10_000).emitWithAck("subscribe", { channel: "venue:7", where: [1] });
  assert.equal(subscribe.error.code, "invalid_filter");
  // Nothing was narrowed: the org's whole traffic still arrives.
  await server.publish({ event: "expense:created", to: { org: "o-bad" }, data: { n: 1 } });
  await server.barrier();
  assert.deepEqual((await client.beforeBarrier()).map((e) => e.name), ["expense:created"]);
});

/** A plain WebSocket client on `/ws` that records its frames. */
async function plainClient(user) {
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws?token=${token(user)}`);
  const frames = [];
  const waiters = [];
  ws.on("message", (data) => {
    frames.push(JSON.parse(data.toString()));
    for (const w of [...waiters]) if (w()) waiters.splice(waiters.indexOf(w), 1);
  });
  await new Promise((ok, fail) => {
    ws.once("open", ok);
    ws.once("error", fail);
  });
  const next = (type) =>
    new Promise((ok) => {
      const check = () => {
        const i = frames.findIndex((f) => f.type === type);
        if (i < 0) return false;
        ok(frames.splice(i, 1)[0]);
        return true;
      };
      if (!check()) waiters.push(check);
    });
  return { ws, frames, next, send: (message) => ws.send(JSON.stringify(message)) };
}

test("/ws: subscribe with events and where, filter, catch-up without what the filter excludes, a bad filter refused", async () => {
  const client = await plainClient("w1");
  try {
    client.send({ type: "subscribe", channel: "venue:9", events: ["venue_update"], where: { status: "active" } });
    assert.equal((await client.next("subscribed")).channel, "venue:9");
    const sent = [
      ["venue_update", { n: 1, status: "active" }],
      ["vibe_check", { n: 2, status: "active" }],
      ["venue_update", { n: 3, status: "closed" }],
      ["venue_update", { n: 4, status: "active" }],
    ];
    const offsets = [];
    for (const [event, data] of sent) offsets.push((await server.publish({ event, to: { channel: "venue:9" }, data })).offset);
    client.send({ type: "ping" });
    await client.next("pong");
    const delivered = () => client.frames.filter((f) => ["venue_update", "vibe_check"].includes(f.type)).map((f) => f.data.n);
    assert.deepEqual(delivered(), [1, 4]);

    // A second connection catches up on the channel's history through the same filter.
    const late = await plainClient("w2");
    late.send({ type: "subscribe", channel: "venue:9", since: offsets[0] - 1, where: { status: "active" } });
    await late.next("subscribed");
    late.send({ type: "ping" });
    await late.next("pong");
    assert.deepEqual(late.frames.filter((f) => f.data?.n).map((f) => f.data.n), [1, 2, 4]);
    late.ws.close();

    client.send({ type: "filter", channel: "venue:9", where: { status: { in: [] } } });
    const refused = await client.next("error");
    assert.equal(refused.code, "invalid_filter");
    assert.match(refused.message, /^where\.status\.in:/);
    client.send({ type: "filter", channel: "venue:9" });
    assert.deepEqual(await client.next("filtered"), { type: "filtered", channel: "venue:9", filter: null });
    await server.publish({ event: "vibe_check", to: { channel: "venue:9" }, data: { n: 5, status: "closed" } });
    client.send({ type: "ping" });
    await client.next("pong");
    assert.deepEqual(delivered(), [1, 4, 5]);
  } finally {
    client.ws.close();
  }
});
