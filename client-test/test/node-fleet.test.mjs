// A mixed fleet during a migration: two real Node socket.io 4.8 servers with
// @socket.io/redis-adapter 8.3 and two Switchyard instances (NODE_FLEET=true) on one Redis, behind
// one nginx, clients on both kinds. Publications from either side reach every eligible client
// exactly once; the Node servers' fetchSockets, allRooms, serverSideEmitWithAck and acknowledged
// broadcasts complete and include Switchyard's sockets; room operations from either side act on
// both.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";
import { io } from "socket.io-client";
import { SECRET, clusterEnv, startServer, token } from "./helpers.mjs";
import { freePort, until } from "./redis-processes.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const ADMIN = { ADMIN_USERNAME: "operator", ADMIN_PASSWORD: "correct horse battery" };
const EVENT = "fleet:tick";

let env;
let switchyards = [];
let nodes = [];
let nginx;
let nginxDir;
let proxy;
const clients = [];

/** The claims of a JWT signed with the test secret, as the Node servers check them; null if not. */
function verified(jwt) {
  const [header, body, signature] = String(jwt).split(".");
  const expected = createHmac("sha256", SECRET).update(`${header}.${body}`).digest("base64url");
  return signature === expected ? JSON.parse(Buffer.from(body, "base64url")) : null;
}

/** A Node socket.io server as a team runs it: the Redis adapter, JWT auth, home rooms. */
async function nodeServer(name, key) {
  const pub = createClient({ url: env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const server = new Server(http, { adapter: createAdapter(pub, sub, { key, requestsTimeout: 5000 }) });
  server.use((socket, next) => {
    const claims = verified(socket.handshake.auth?.token);
    if (!claims) return next(new Error("unauthorized"));
    socket.data.userId = claims.sub;
    socket.join([`user:${claims.sub}`, `org:${claims.organizationId}`]);
    next();
  });
  // A server-side event its peers may ask about.
  server.on("fleet:ping", (ack) => ack(name));
  await new Promise((ok) => http.listen(0, "127.0.0.1", ok));
  return {
    name,
    io: server,
    host: `127.0.0.1:${http.address().port}`,
    holds: (id) => server.of("/").sockets.has(id),
    async close() {
      server.close();
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

before(async () => {
  try {
    execFileSync("nginx", ["-v"], { stdio: "ignore" });
  } catch {
    throw new Error("nginx is required for this test (Debian: apt-get install nginx-light); .ci/run installs it");
  }
  env = clusterEnv({ NODE_FLEET: "true", ...ADMIN, RUST_LOG: "warn,switchyard::startup=info,switchyard::admin=info" });
  const key = `${env.REDIS_CHANNEL_PREFIX}socket.io`;
  switchyards = [await startServer(env), await startServer(env)];
  nodes = [await nodeServer("node-1", key), await nodeServer("node-2", key)];
  // Round robin over both kinds: the clients here use WebSocket only, which needs no stickiness
  // (long-polling would: deploy/nginx.conf.template hashes the client address).
  nginxDir = mkdtempSync(join(tmpdir(), "switchyard-fleet-nginx-"));
  const port = await freePort();
  const upstreams = [...switchyards.map((s) => new URL(s.url).host), ...nodes.map((n) => n.host)];
  const config = readFileSync(resolve(here, "../../deploy/nginx.conf.template"), "utf8")
    .replace(/hash \$remote_addr consistent;\s*server \$\{SWITCHYARD_1\};\s*server \$\{SWITCHYARD_2\};/, upstreams.map((u) => `server ${u};`).join("\n        "))
    .replaceAll("${PREFIX}", nginxDir)
    .replaceAll("${LISTEN_PORT}", String(port));
  assert.ok(config.includes(nodes[0].host), "the upstream block was rewritten");
  writeFileSync(join(nginxDir, "nginx.conf"), config);
  nginx = spawn("nginx", ["-p", nginxDir, "-c", join(nginxDir, "nginx.conf"), "-g", "daemon off; user root;"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  proxy = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${proxy}/healthz`).catch(() => null)) !== null, "nginx to answer");
});

after(async () => {
  for (const c of clients) c.close();
  nginx?.kill("SIGTERM");
  await Promise.allSettled(nodes.map((n) => n.close()));
  await Promise.allSettled(switchyards.map((s) => s.stop()));
  if (nginxDir) rmSync(nginxDir, { recursive: true, force: true });
});

/** A client through nginx, recording every `fleet:tick` it gets and acknowledging `fleet:ask`. */
async function connect(user, org) {
  const socket = io(proxy, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    auth: { token: token(user, { organizationId: org }) },
  });
  clients.push(socket);
  const client = { socket, user, org, ticks: [], barriers: 0 };
  socket.on(EVENT, (data) => client.ticks.push(data.n));
  socket.on("fleet:barrier", () => client.barriers++);
  socket.on("fleet:ask", (_data, ack) => ack(socket.id));
  await new Promise((ok, fail) => {
    socket.once("connect", ok);
    socket.once("connect_error", fail);
  });
  client.id = socket.id;
  client.onNode = nodes.some((n) => n.holds(socket.id));
  return client;
}

/** A small seeded generator, so that a failing run can be replayed. */
function generator(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let fleet = [];

test("publications from either side reach every eligible client exactly once (randomized)", async () => {
  const seed = Number(process.env.FLEET_SEED ?? Date.now() % 1_000_000);
  const random = generator(seed);
  const pick = (list) => list[Math.floor(random() * list.length)];
  for (let i = 0; i < 16; i++) fleet.push(await connect(`fleet-${i}`, random() < 0.5 ? "fleet-a" : "fleet-b"));
  const onNode = fleet.filter((c) => c.onNode).length;
  assert.ok(onNode >= 4 && fleet.length - onNode >= 4, `both kinds hold clients (${onNode} on Node)`);

  const expected = new Map(fleet.map((c) => [c, []]));
  const targets = [
    ...["fleet-a", "fleet-b"].map((org) => ({ switchyard: { org }, node: `org:${org}`, gets: (c) => c.org === org })),
    ...fleet.slice(0, 4).map((c) => ({ switchyard: { user: c.user }, node: `user:${c.user}`, gets: (d) => d === c })),
    { switchyard: { all: true }, node: null, gets: () => true },
  ];
  for (let n = 0; n < 40; n++) {
    // The first is a Node server's broadcast to everyone, sent three times byte for byte (as some
    // of the others are twice): each is delivered.
    const target = n === 0 ? targets.at(-1) : pick(targets);
    const from = n === 0 ? "node-0" : pick(["switchyard-0", "switchyard-1", "node-0", "node-1"]);
    const times = n === 0 ? 3 : from.startsWith("node") && random() < 0.25 ? 2 : 1;
    for (let t = 0; t < times; t++) {
      for (const c of fleet) if (target.gets(c)) expected.get(c).push(n);
      if (from.startsWith("switchyard")) {
        await switchyards[Number(from.at(-1))].publish({ event: EVENT, to: target.switchyard, data: { n } });
      } else {
        const server = nodes[Number(from.at(-1))].io;
        (target.node ? server.to(target.node) : server).emit(EVENT, { n });
      }
    }
  }
  const context = `seed ${seed} (FLEET_SEED to replay)`;
  await until(async () => fleet.every((c) => c.ticks.length >= expected.get(c).length), `every tick (${context})`);
  // A barrier from each side, then nothing more may have come.
  await switchyards[0].publish({ event: "fleet:barrier", to: { all: true }, data: {} });
  nodes[1].io.emit("fleet:barrier", {});
  await until(async () => fleet.every((c) => c.barriers >= 2), `both barriers (${context})`);
  for (const c of fleet) {
    assert.equal(c.barriers, 2, `${c.user}: each barrier once, ${context}`);
    const sorted = (list) => [...list].sort((x, y) => x - y);
    assert.deepEqual(sorted(c.ticks), sorted(expected.get(c)), `${c.user} on ${c.onNode ? "Node" : "Switchyard"}, ${context}`);
  }
});

test("a Node server's fetchSockets, allRooms, serverSideEmitWithAck and acknowledged broadcast include Switchyard", async () => {
  assert.ok(fleet.length > 0, "the first test connected the fleet");
  const node = nodes[0].io;
  const ids = (sockets) => sockets.map((s) => s.id).sort();
  assert.deepEqual(ids(await node.fetchSockets()), fleet.map((c) => c.id).sort());
  const inA = fleet.filter((c) => c.org === "fleet-a").map((c) => c.id).sort();
  assert.deepEqual(ids(await node.in("org:fleet-a").fetchSockets()), inA);

  const onSwitchyard = fleet.find((c) => !c.onNode);
  const [described] = await node.in(onSwitchyard.id).fetchSockets();
  assert.equal(described.data.userId, onSwitchyard.user);
  assert.ok(described.rooms.has(`org:${onSwitchyard.org}`), [...described.rooms].join());
  assert.ok(![...described.rooms].some((r) => r.startsWith("switchyard#")), "no bookkeeping rooms");
  assert.equal(described.handshake.auth.token, undefined, "the token is not handed out");

  const rooms = await node.of("/").adapter.allRooms();
  assert.ok(rooms.has(`user:${onSwitchyard.user}`), "allRooms has the rooms of Switchyard's sockets");

  const answers = await node.serverSideEmitWithAck("fleet:ping");
  assert.deepEqual([...answers].sort(), ["node-2", null, null].sort(), "every peer answered, the other Node server by name");

  const acks = await node.timeout(10_000).emitWithAck("fleet:ask", { q: 1 });
  assert.deepEqual([...acks].sort(), fleet.map((c) => c.id).sort(), "each client acknowledged once");

  // A Node server's RemoteSocket reaches a Switchyard socket too.
  const got = new Promise((ok) => onSwitchyard.socket.once("fleet:direct", ok));
  described.emit("fleet:direct", { to: onSwitchyard.id });
  assert.deepEqual(await got, { to: onSwitchyard.id });
});

test("socketsJoin, socketsLeave and disconnectSockets from either side act on both", async () => {
  assert.ok(fleet.length > 0, "the first test connected the fleet");
  const node = nodes[1].io;
  const ids = async (room) => (await node.in(room).fetchSockets()).map((s) => s.id).sort();
  const inOrg = (org) => fleet.filter((c) => c.org === org && c.socket.connected).map((c) => c.id).sort();

  node.in("org:fleet-a").socketsJoin("fleet-club");
  await until(async () => JSON.stringify(await ids("fleet-club")) === JSON.stringify(inOrg("fleet-a")), "Node's socketsJoin on both");

  const admin = io(`${switchyards[0].url}/admin`, {
    auth: { username: ADMIN.ADMIN_USERNAME, password: ADMIN.ADMIN_PASSWORD },
    forceNew: true,
    reconnection: false,
    transports: ["websocket"],
  });
  clients.push(admin);
  // Its commands are heard once it has been sent the sockets.
  await new Promise((ok, fail) => {
    admin.once("all_sockets", ok);
    admin.once("connect_error", fail);
  });
  admin.emit("leave", "/", "fleet-club", "org:fleet-a");
  await until(async () => (await ids("fleet-club")).length === 0, "Switchyard's leave on both");
  admin.emit("join", "/", "fleet-lounge", "org:fleet-b");
  await until(async () => JSON.stringify(await ids("fleet-lounge")) === JSON.stringify(inOrg("fleet-b")), "Switchyard's join on both");

  const onSwitchyard = fleet.find((c) => !c.onNode);
  const onNode = fleet.find((c) => c.onNode);
  const reasons = [onSwitchyard, onNode].map((c) => new Promise((ok) => c.socket.once("disconnect", ok)));
  node.in(`user:${onSwitchyard.user}`).disconnectSockets();
  admin.emit("_disconnect", "/", false, `user:${onNode.user}`);
  assert.deepEqual(await Promise.all(reasons), ["io server disconnect", "io server disconnect"]);
  const others = fleet.filter((c) => c !== onSwitchyard && c !== onNode);
  assert.ok(others.every((c) => c.socket.connected), "nobody else was disconnected");
  await until(async () => (await node.fetchSockets()).length === others.length, "the two gone from fetchSockets");
});

test("a request naming one socket the older way (7.x remoteDisconnect) is answered by its holder alone", async () => {
  const target = fleet.find((c) => !c.onNode && c.socket.connected);
  assert.ok(target, "a client on Switchyard is still connected");
  const redis = createClient({ url: env.REDIS_URL });
  const listener = redis.duplicate();
  await Promise.all([redis.connect(), listener.connect()]);
  try {
    const answers = [];
    await listener.subscribe(`${env.REDIS_CHANNEL_PREFIX}socket.io-response#/#legacy1#`, (m) => answers.push(JSON.parse(m)));
    const gone = new Promise((ok) => target.socket.once("disconnect", ok));
    const request = { uid: "legacy1", requestId: "r-legacy", type: 4, sid: target.id, close: true };
    await redis.publish(`${env.REDIS_CHANNEL_PREFIX}socket.io-request#/#`, JSON.stringify(request));
    await gone;
    await until(async () => answers.length > 0, "the holder's answer");
    // The Node servers and the other instance hold no such socket; a barrier through every
    // instance shows that no second answer is on its way.
    await switchyards[1].publish({ event: "fleet:barrier", to: { all: true }, data: {} });
    await until(async () => fleet.every((c) => !c.socket.connected || c.barriers >= 3), "the barrier");
    assert.deepEqual(answers, [{ requestId: "r-legacy" }]);
    assert.equal(fleet.filter((c) => c.socket.connected).length, fleet.length - 3, "nobody else was disconnected");
  } finally {
    await Promise.allSettled([redis.quit(), listener.quit()]);
  }
});

test("without NODE_FLEET, a Node server's calls complete as if Switchyard were not on the Redis", async () => {
  const alone = clusterEnv({});
  const switchyard = await startServer(alone);
  const node = await nodeServer("node-alone", `${alone.REDIS_CHANNEL_PREFIX}socket.io`);
  try {
    const client = await switchyard.connect({ auth: { token: token("alone-1", { organizationId: "alone" }) } });
    assert.ok(client.socket.connected);
    // One server in the adapter's count: nothing is waited for, nothing times out.
    assert.deepEqual(await node.io.serverSideEmitWithAck("fleet:ping"), []);
    assert.deepEqual(await node.io.fetchSockets(), []);
    assert.deepEqual([...(await node.io.of("/").adapter.allRooms())], []);
  } finally {
    await node.close();
    await switchyard.stop();
  }
});
