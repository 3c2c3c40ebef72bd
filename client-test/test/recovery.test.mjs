// Lossless reconnects (H3) with the real socket.io-client 4: a client opts in with
// `auth.offset`, is cut off by a forwarder (a load balancer stand-in), and resumes: what it
// missed first, in order, exactly once, then `recovery`, then live; its joined rooms restored.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { createClient } from "redis";
import { Emitter } from "@socket.io/redis-emitter";
import { BARRIER, clusterEnv, forwarder, resumingClient, startServer, token } from "./helpers.mjs";

async function publishN(server, event, to, from, count) {
  for (let n = from; n < from + count; n++) await server.publish({ event, to, data: { n } });
}

test("one instance: a dropped client gets what it missed, then recovery, then live; rooms restored", async () => {
  const server = await startServer();
  const lb = await forwarder(server);
  let client;
  try {
    for (const project of ["p-r", "p-gone"]) {
      assert.equal((await server.api("PUT", `/api/tenants/t-r/projects/${project}/members/r1`, {})).status, 201);
    }
    client = resumingClient(lb.url, token("r1", { organizationId: "o-r", tenantId: "t-r" }));
    await client.until(() => client.recoveries.length === 1, "the first recovery event");
    assert.equal(client.recoveries[0].recovered, false, "a first connection has nothing to recover");
    for (const projectId of ["p-r", "p-gone"]) {
      const joined = await client.socket.timeout(10000).emitWithAck("join-project", { projectId });
      assert.equal(joined.ok, true);
    }

    // A client that did not opt in sees exactly what was published.
    const plain = await server.connect({ auth: { token: token("r-plain", { organizationId: "o-r" }) } });

    await publishN(server, "org:tick", { org: "o-r" }, 0, 3);
    await client.until(() => client.ns("org:tick").length === 3, "live deliveries");
    assert.ok(client.events.every((e) => typeof e.cursor === "string" && e.cursor.includes(":")), "each delivery ends with a cursor");
    await plain.socket.timeout(10000).emitWithAck("room:members", { room: "org:o-r" });
    assert.deepEqual(
      plain.events.filter((e) => e.name === "org:tick").map((e) => e.args),
      [[{ n: 0 }], [{ n: 1 }], [{ n: 2 }]],
      "no cursor for a socket that did not opt in",
    );

    // Cut off; publications meanwhile go to the org and to the joined project.
    // The client stays away (its reconnection attempts refused) until they are all published.
    const gone = new Promise((ok) => client.socket.once("disconnect", ok));
    lb.hold();
    lb.cut();
    await gone;
    await publishN(server, "org:tick", { org: "o-r" }, 3, 4);
    await publishN(server, "task:tick", { tenant: "t-r", project: "p-r" }, 0, 2);
    // A membership removed while the client is away is not restored with the session.
    assert.equal((await server.api("DELETE", "/api/tenants/t-r/projects/p-gone/members/r1")).status, 204);
    await publishN(server, "gone:tick", { tenant: "t-r", project: "p-gone" }, 0, 1);
    lb.release();

    await client.until(() => client.recoveries.length === 2, "the resumption");
    const recovery = client.recoveries[1];
    assert.equal(recovery.recovered, true);
    assert.equal(recovery.missed, 6);
    await publishN(server, "org:tick", { org: "o-r" }, 7, 1);
    await publishN(server, "task:tick", { tenant: "t-r", project: "p-r" }, 2, 1);
    await client.until(() => client.ns("org:tick").length === 8 && client.ns("task:tick").length === 3, "live after the resumption");
    assert.deepEqual(client.ns("org:tick").slice(0, 8), [0, 1, 2, 3, 4, 5, 6, 7], "every org event once, in order");
    assert.deepEqual(client.ns("task:tick"), [0, 1, 2], "the project room was restored without a join");
    await publishN(server, "gone:tick", { tenant: "t-r", project: "p-gone" }, 1, 1);
    await server.publish({ event: "org:tick", to: { org: "o-r" }, data: { n: 8 } });
    await client.until(() => client.ns("org:tick").length === 9, "a last org event");
    assert.deepEqual(client.ns("gone:tick"), [], "nothing from the project he was removed from");
    // The replay came before `recovery`, in publication order; live after it.
    const resumed = client.timeline.lastIndexOf("recovery");
    assert.deepEqual(client.timeline.slice(resumed - 6), [
      "org:tick:3", "org:tick:4", "org:tick:5", "org:tick:6", "task:tick:0", "task:tick:1",
      "recovery", "org:tick:7", "task:tick:2", "org:tick:8",
    ]);
  } finally {
    client?.socket.close();
    await lb.close();
    await server.stop();
  }
});

test("an unknown cursor is not recovered: home rooms and live delivery only", async () => {
  const server = await startServer();
  try {
    const states = [];
    const socket = io(server.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      auth: { token: token("r2", { organizationId: "o-r2" }), offset: "0123456789ab0123456789ab:1-1" },
    });
    socket.on("recovery", (r) => states.push(r));
    const live = new Promise((ok) => socket.on("org:tick", (...args) => ok(args)));
    await new Promise((ok) => socket.on("recovery", ok));
    assert.equal(states[0].recovered, false);
    assert.equal(states[0].missed, 0);
    assert.match(states[0].cursor, /^[0-9a-f]{24}:\d+-\d+$/);
    await server.publish({ event: "org:tick", to: { org: "o-r2" }, data: { n: 1 } });
    const [data, cursor] = await live;
    assert.deepEqual(data, { n: 1 });
    assert.match(cursor, /^[0-9a-f]{24}:\d+-\d+$/);
    socket.close();
  } finally {
    await server.stop();
  }
});

/**
 * Alice's cursor presented by another user resumes nothing for him and does not spend her
 * session: she resumes it afterwards with everything published while she was away. Her
 * session is released at her disconnect, or, when `killed`, still held by her instance (killed,
 * with the cluster's other instance serving the rest).
 */
async function aForeignCursorIsRefusedAndLeftForItsOwner(env, { killed = false } = {}) {
  const home = await startServer(env);
  const server = killed ? await startServer(env) : home;
  const opened = [];
  const open = (at, jwt, offset) => {
    const socket = io(at.url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { token: jwt, offset } });
    opened.push(socket);
    return socket;
  };
  const recovery = (socket) => new Promise((ok) => socket.once("recovery", ok));
  try {
    const alice = token("f-alice", { organizationId: "o-f" });
    const first = open(home, alice, "");
    const { cursor } = await recovery(first);
    assert.equal((await first.timeout(10000).emitWithAck("subscribe", { channel: "venue:f1" })).ok, true);
    if (killed) {
      home.kill();
    } else {
      // Gone: her session is released before her organization hears she is offline.
      const colleague = await server.connect({ auth: { token: token("f-colleague", { organizationId: "o-f" }) } });
      const offline = new Promise((ok) =>
        colleague.socket.on("user:status", (s) => s.userId === "f-alice" && s.status === "offline" && ok()),
      );
      first.close();
      await offline;
    }
    await server.publish({ event: "org:tick", to: { org: "o-f" }, data: { n: 0 } });
    await server.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:f1", data: { n: 0 } });

    const mallory = open(server, token("f-mallory", { organizationId: "o-m" }), cursor);
    const seen = [];
    mallory.onAny((event) => !["recovery", "user:status", BARRIER].includes(event) && seen.push(event));
    const refused = await recovery(mallory);
    assert.deepEqual([refused.recovered, refused.missed], [false, 0]);
    assert.notEqual(refused.cursor.split(":")[0], cursor.split(":")[0], "a session of his own");
    await server.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:f1", data: { n: 1 } });
    const barrier = new Promise((ok) => mallory.on(BARRIER, ok));
    await server.barrier();
    await barrier;
    assert.deepEqual(seen, [], "none of her rooms, none of her events");

    const back = open(server, alice, cursor);
    const ticks = [];
    back.on("org:tick", (data) => ticks.push(data.n));
    back.on("venue_update", (data) => ticks.push(`venue:${data.n}`));
    back.on(BARRIER, () => ticks.push(BARRIER));
    const resumed = await recovery(back);
    assert.deepEqual([resumed.recovered, resumed.missed], [true, 4], "her session was still hers to resume");
    assert.deepEqual(ticks, [0, "venue:0", "venue:1", BARRIER], "what she missed, her channel restored");
  } finally {
    for (const socket of opened) socket.close();
    await server.stop();
    if (!killed) await home.stop();
  }
}

test("another user's cursor is refused without spending the session: its owner still resumes (one instance)", async () => {
  await aForeignCursorIsRefusedAndLeftForItsOwner({});
});

test("another user's cursor is refused without spending the session: its owner still resumes (Redis)", async () => {
  await aForeignCursorIsRefusedAndLeftForItsOwner(clusterEnv());
});

test("another user's cursor does not take a session a killed instance still holds: its owner resumes on the other", async () => {
  await aForeignCursorIsRefusedAndLeftForItsOwner(clusterEnv(), { killed: true });
});

test("two instances: the instance is killed, the client resumes on the other with nothing lost", async () => {
  const env = clusterEnv();
  const a = await startServer(env);
  const b = await startServer(env);
  const lb = await forwarder(a);
  let client;
  try {
    client = resumingClient(lb.url, token("r3", { organizationId: "o-r3" }));
    await client.until(() => client.recoveries.length === 1, "the first recovery event");
    await client.socket.timeout(10000).emitWithAck("subscribe", { channel: "venue:r3" });
    await publishN(b, "org:tick", { org: "o-r3" }, 0, 2);
    await client.until(() => client.ns("org:tick").length === 2, "live deliveries through the other instance");

    a.kill();
    lb.retarget(b);
    lb.hold();
    lb.cut();
    await publishN(b, "org:tick", { org: "o-r3" }, 2, 3);
    await b.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:r3", data: { n: 0 } });
    lb.release();

    await client.until(() => client.recoveries.length === 2, "the resumption on the other instance");
    assert.equal(client.recoveries[1].recovered, true);
    assert.equal(client.recoveries[1].missed, 4);
    await b.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:r3", data: { n: 1 } });
    await client.until(() => client.ns("venue_update").length === 2, "live on the restored channel");
    assert.deepEqual(client.ns("org:tick"), [0, 1, 2, 3, 4]);
    assert.deepEqual(client.ns("venue_update"), [0, 1]);
  } finally {
    client?.socket.close();
    await lb.close();
    await b.stop();
  }
});

test("a room a backend joined is kept with the session: killed instance, resumed on the other, in that room", async () => {
  const env = clusterEnv();
  const a = await startServer(env);
  const b = await startServer(env);
  const lb = await forwarder(a);
  const redis = createClient({ url: env.REDIS_URL });
  await redis.connect();
  let client;
  try {
    client = resumingClient(lb.url, token("r5", { organizationId: "o-r5" }));
    await client.until(() => client.recoveries.length === 1, "the first recovery event");
    // The backend (Node emitter) puts the user's sockets in a channel; nothing on the client.
    new Emitter(redis, { key: `${env.REDIS_CHANNEL_PREFIX}socket.io` }).in("user:r5").socketsJoin("venue:r5");
    for (let tries = 0; client.ns("venue_update").length === 0; tries++) {
      assert.ok(tries < 300, "the backend's join was never applied");
      await b.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:r5", data: { n: 0 } });
      await new Promise((r) => setTimeout(r, 50));
    }

    // Killed: no release at disconnect; the session is what was last saved.
    a.kill();
    lb.retarget(b);
    lb.hold();
    lb.cut();
    const before = client.ns("venue_update").length;
    await b.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:r5", data: { n: 100 } });
    lb.release();

    await client.until(() => client.recoveries.length === 2, "the resumption on the other instance");
    assert.equal(client.recoveries[1].recovered, true);
    await client.until(() => client.ns("venue_update").length === before + 1, "the channel's publication replayed");
    assert.equal(client.ns("venue_update").at(-1), 100, "replayed from the room the backend joined");
    assert.equal(client.ns("venue_update").filter((n) => n === 100).length, 1, "once");
  } finally {
    client?.socket.close();
    await redis.quit();
    await lb.close();
    await b.stop();
  }
});

test("past RECOVERY_MAX_DISCONNECTION the session is gone: recovered false, live only", async () => {
  const server = await startServer({ RECOVERY_MAX_DISCONNECTION: "1s" });
  try {
    const jwt = token("r4", { organizationId: "o-r4" });
    const first = io(server.url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { token: jwt, offset: "" } });
    const { cursor } = await new Promise((ok) => first.on("recovery", ok));
    first.close();
    await server.publish({ event: "org:tick", to: { org: "o-r4" }, data: { n: 0 } });
    // Well past the window, whatever the machine's load.
    await new Promise((r) => setTimeout(r, 4000));
    const again = io(server.url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { token: jwt, offset: cursor } });
    const seen = [];
    const live = new Promise((ok) =>
      again.on("org:tick", (data) => {
        seen.push(data.n);
        ok();
      }),
    );
    const recovery = await new Promise((ok) => again.on("recovery", ok));
    assert.deepEqual([recovery.recovered, recovery.missed], [false, 0]);
    await server.publish({ event: "org:tick", to: { org: "o-r4" }, data: { n: 1 } });
    await live;
    assert.deepEqual(seen, [1], "nothing from before, live after");
    again.close();
  } finally {
    await server.stop();
  }
});

test("a rolling restart: SIGTERM one of two instances mid-stream, the client resumes on the other", async () => {
  const env = clusterEnv();
  const a = await startServer(env);
  const b = await startServer(env);
  const lb = await forwarder(a);
  let client;
  try {
    client = resumingClient(lb.url, token("r5", { organizationId: "o-r5" }));
    await client.until(() => client.recoveries.length === 1, "the first recovery event");
    const total = 60;
    const stream = (async () => {
      for (let n = 0; n < total; n++) {
        await b.publish({ event: "org:tick", to: { org: "o-r5" }, data: { n } });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await client.until(() => client.ns("org:tick").length >= 10, "the stream to start");
    lb.retarget(b);
    await a.stop();
    await stream;
    await client.until(() => client.ns("org:tick").length >= total, "every publication");
    assert.deepEqual(client.ns("org:tick"), [...Array(total).keys()], "each once, in order");
    assert.equal(client.recoveries.length, 2);
    assert.equal(client.recoveries[1].recovered, true);
  } finally {
    client?.socket.close();
    await lb.close();
    await b.stop();
  }
});
