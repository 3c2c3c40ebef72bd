// Redis Cluster (issue #25): instances given `redis+cluster://…` keep every bus key and channel
// in one slot (one hash tag), publish on sharded channels, and read only the rooms they have
// members in; delivery across instances is exactly once, and a killed master (its replica
// promoted) never loses silently. A cluster of three masters with a replica each is started
// here on loopback ports, never the shared Redis.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { clusterEnv, forwarder, startServer, token } from "./helpers.mjs";
import { failoverUnderLoad, tailLostFailover } from "./failover.mjs";
import { createServer } from "node:net";
import { ask, dir, redisServer, until } from "./redis-processes.mjs";

/**
 * Three masters and three replicas, `cluster_state:ok` on every node; `stop()` kills them.
 * A creation that fails (it rarely does, on a loaded machine) is tried again on other ports.
 */
async function redisCluster(attempts = 3) {
  const nodes = new Map();
  for (let i = 0; i < 6; i++) {
    const port = await clusterPort();
    nodes.set(port, redisServer([
      "--port", `${port}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
      "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", "1500",
      // A replica takes over however long ago it last heard from its master (no writes for a while).
      "--cluster-replica-validity-factor", "0",
    ]));
  }
  const ports = [...nodes.keys()];
  const stop = () => nodes.forEach((node) => node.kill("SIGKILL"));
  try {
    for (const port of ports) await until(async () => (await ask(port, "PING")) === "PONG", `node ${port}`);
    execFileSync("redis-cli", ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas", "1", "--cluster-yes"], { encoding: "utf8", stdio: "pipe" });
    for (const port of ports) {
      await until(async () => (await ask(port, "CLUSTER", "INFO")).includes("cluster_state:ok"), `node ${port} ok`, 1200);
    }
  } catch (e) {
    stop();
    if (attempts > 1) return redisCluster(attempts - 1);
    throw new Error(`no cluster: ${e.message} ${e.stdout ?? ""}`);
  }
  const url = `redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}`;
  return { nodes, ports, url, stop };
}

/** A port free with its cluster bus port (10000 above it), both below the ephemeral range. */
async function clusterPort() {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if ((await isFree(port)) && (await isFree(port + 10_000))) return port;
  }
}

function isFree(port) {
  return new Promise((ok) => {
    const server = createServer().once("error", () => ok(false)).listen(port, "127.0.0.1", () => server.close(() => ok(true)));
  });
}

/** The port of the master holding `key`'s slot, as `port`'s node sees the cluster. */
async function masterOf(port, key) {
  const slot = await ask(port, "CLUSTER", "KEYSLOT", key);
  const ranges = await ask(port, "CLUSTER", "SLOTS");
  const range = ranges.find(([start, end]) => start <= slot && slot <= end);
  return Number(range[2][1]);
}

test("on a Redis Cluster: exactly once across instances, to a room, a user, several rooms and everyone; each instance reads only its rooms", async () => {
  const { ports, url, stop } = await redisCluster();
  const env = clusterEnv({ REDIS_URL: url });
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const c1 = await a.connect({ auth: { token: token("c1", { organizationId: "o-c" }) } });
    const c2 = await b.connect({ auth: { token: token("c2", { organizationId: "o-c" }) } });
    for (let n = 0; n < 5; n++) await b.publish({ event: "org:tick", to: { org: "o-c" }, data: { n } });
    await b.publish({ event: "org:tick", to: { user: "c1" }, data: { n: 10 } });
    await a.publish({ event: "org:tick", to: { org: "o-c", user: "c1" }, data: { n: 20 } });
    await b.publish({ event: "org:tick", to: { all: true }, data: { n: 30 } });
    await a.barrier();
    for (const c of [c1, c2]) await until(async () => c.events.some((e) => e.name === "test:barrier"), "the barrier");
    const ticks = (c) => c.events.filter((e) => e.name === "org:tick").map((e) => e.args[0].n);
    assert.deepEqual(ticks(c1), [0, 1, 2, 3, 4, 10, 20, 30], "c1: each once, in order");
    assert.deepEqual(ticks(c2), [0, 1, 2, 3, 4, 20, 30], "c2: each once, in order, nothing of c1's");

    // Sharded channels, one slot: the master holding it counts each room's readers.
    const channel = (room) => `{${env.REDIS_CHANNEL_PREFIX}switchyard}#room:${room}`;
    const holder = await masterOf(ports[0], channel("org:o-c"));
    const readers = async (room) => (await ask(holder, "PUBSUB", "SHARDNUMSUB", channel(room)))[1];
    assert.equal(await readers("org:o-c"), 2, "both instances have a member of the org");
    assert.equal(await readers("user:c1"), 1, "only A has c1");
    assert.equal(await readers("user:c2"), 1, "only B has c2");
    assert.equal(await readers("user:nobody"), 0);
  } finally {
    await a.stop();
    await b.stop();
    stop();
  }
});

test("on a Redis Cluster, the bus's master killed under load: no silent loss, no duplicate, delivery back by itself", async () => {
  const { nodes, ports, url, stop } = await redisCluster();
  const env = clusterEnv({ REDIS_URL: url });
  const a = await startServer(env);
  const b = await startServer(env);
  const slotKey = `{${env.REDIS_CHANNEL_PREFIX}switchyard}:log-generation`;
  try {
    const victim = await masterOf(ports[0], slotKey);
    const survivor = ports.find((p) => p !== victim);
    const figures = await failoverUnderLoad({
      a, b, org: "o-k",
      kill: async () => nodes.get(victim).kill("SIGKILL"),
      promoted: () => until(async () => (await masterOf(survivor, slotKey)) !== victim, "a replica promoted", 1200),
    });
    console.log(`# cluster failover under load: ${figures}`);
  } finally {
    await a.stop();
    await b.stop();
    stop();
  }
});

test("on a Redis Cluster, a failover that loses the replication tail: the resuming client is told recovered false", async () => {
  const { nodes, ports, url, stop } = await redisCluster();
  const env = clusterEnv({ REDIS_URL: url });
  const a = await startServer(env);
  const b = await startServer(env);
  const lb = await forwarder(a);
  const tag = `{${env.REDIS_CHANNEL_PREFIX}switchyard}`;
  let client;
  try {
    const master = await masterOf(ports[0], `${tag}:log-generation`);
    const masterId = await ask(master, "CLUSTER", "MYID");
    let replica;
    await until(async () => {
      const line = (await ask(master, "CLUSTER", "NODES")).split("\n").find((l) => l.includes(`slave ${masterId}`));
      replica = line && Number(line.split(" ")[1].split("@")[0].split(":")[1]);
      return Boolean(replica);
    }, "the master's replica");
    const survivor = ports.find((p) => p !== master && p !== replica);
    client = await tailLostFailover({
      a, b, lb, org: "o-t",
      sessionOnReplica: async () => (await ask(replica, "KEYS", `${tag}:session:*`)).length === 1,
      freeze: async () => nodes.get(replica).kill("SIGSTOP"),
      unlink: () => ask(master, "CLIENT", "KILL", "TYPE", "replica"),
      kill: async () => nodes.get(master).kill("SIGKILL"),
      thaw: async () => nodes.get(replica).kill("SIGCONT"),
      promoted: () => until(async () => (await masterOf(survivor, `${tag}:log-generation`)) === replica, "the replica promoted", 1200),
    });
  } finally {
    client?.socket.close();
    await lb.close();
    await a.stop();
    await b.stop();
    stop();
  }
});
