// Redis as production runs it (issue #25): two instances given `redis+sentinel://…/sy` find the
// master through three Sentinels, deliver across instances exactly once, and follow a failover
// (the master SIGKILLed, a replica promoted) without anyone editing REDIS_URL; `rediss://` talks
// TLS and checks the server's certificate; an instance whose bus stops delivering end to end
// says so on /readyz and in its metrics. Each test runs its own
// Redis processes (never the shared one).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { clusterEnv, forwarder, resumingClient, startServer, token } from "./helpers.mjs";
import { failoverUnderLoad, tailLostFailover } from "./failover.mjs";
import { ask, dir, freePort, redisServer, until } from "./redis-processes.mjs";

/**
 * A master, a replica and three Sentinels watching them as `sy`, on loopback ports of their own,
 * killed when test `t` ends (a Sentinel left running could take a later test's server, on a port
 * it reused, for the master or replica it watched).
 */
async function sentinelTopology(t) {
  const [master, replica] = [await freePort(), await freePort()];
  const plain = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
  const masterProcess = redisServer(["--port", `${master}`, ...plain, "--dbfilename", `${master}.rdb`]);
  const replicaProcess = redisServer(["--port", `${replica}`, ...plain, "--dbfilename", `${replica}.rdb`,
    "--replicaof", "127.0.0.1", `${master}`]);
  const processes = [masterProcess, replicaProcess];
  t.after(() => processes.forEach((p) => p.kill("SIGKILL")));
  const sentinels = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const conf = join(dir, `sentinel-${port}.conf`);
    writeFileSync(conf, [
      `port ${port}`, "bind 127.0.0.1", `dir ${dir}`,
      `sentinel monitor sy 127.0.0.1 ${master} 2`,
      "sentinel down-after-milliseconds sy 1000",
      "sentinel failover-timeout sy 4000",
    ].join("\n") + "\n");
    processes.push(redisServer([conf, "--sentinel"]));
    sentinels.push(port);
  }
  await until(async () => (await ask(master, "INFO", "replication")).includes("connected_slaves:1"), "the replica");
  await until(async () => (await ask(sentinels[0], "SENTINEL", "REPLICAS", "sy")).length === 1, "the Sentinels to see the replica");
  const promoted = () => until(
    async () => (await ask(sentinels[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sy"))[1] === `${replica}`,
    "the Sentinels to promote the replica", 1200);
  const url = `redis+sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(",")}/sy`;
  return { master, replica, masterProcess, replicaProcess, sentinels, url, promoted };
}

test("through Sentinels: exactly once across instances, and again after the master is killed and a replica promoted", async (t) => {
  const { masterProcess, url, promoted } = await sentinelTopology(t);
  const env = clusterEnv({ REDIS_URL: url });
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const client = await a.connect({ auth: { token: token("s1", { organizationId: "o-s" }) } });
    const ticks = () => client.events.filter((e) => e.name === "org:tick").map((e) => e.args[0].n);
    for (let n = 0; n < 5; n++) await b.publish({ event: "org:tick", to: { org: "o-s" }, data: { n } });
    await until(async () => ticks().length === 5, "five publications through the other instance");
    assert.deepEqual(ticks(), [0, 1, 2, 3, 4], "each once, in order");

    masterProcess.kill("SIGKILL");
    await promoted();

    // Delivery across instances comes back by itself: both instances move to the new master.
    let n = 100;
    await until(async () => {
      await b.publish({ event: "org:tick", to: { org: "o-s" }, data: { n: n++ } });
      return ticks().some((t) => t >= 100);
    }, "delivery through the new master", 600);
    for (let k = 1000; k < 1005; k++) await b.publish({ event: "org:tick", to: { org: "o-s" }, data: { n: k } });
    await until(async () => ticks().filter((t) => t >= 1000).length === 5, "five more after the failover");
    assert.deepEqual(ticks().filter((t) => t >= 1000), [1000, 1001, 1002, 1003, 1004], "each once, in order, after the failover");
    const since = ticks().filter((t) => t >= 100);
    assert.equal(new Set(since).size, since.length, "nothing twice");
  } finally {
    await a.stop();
    await b.stop();
  }
});

test("through Sentinels, the master killed under load: no silent loss, no duplicate, delivery back by itself", async (t) => {
  const { masterProcess, url, promoted } = await sentinelTopology(t);
  const env = clusterEnv({ REDIS_URL: url });
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const figures = await failoverUnderLoad({ a, b, org: "o-l", kill: async () => masterProcess.kill("SIGKILL"), promoted });
    console.log(`# sentinel failover under load: ${figures}`);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test("a bus whose probes stop coming back is not ready, counts it, and is ready again once they do", async () => {
  const port = await freePort();
  redisServer(["--port", `${port}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]);
  await until(async () => (await ask(port, "PING")) === "PONG", "the private Redis");
  const a = await startServer(clusterEnv({ REDIS_URL: `redis://127.0.0.1:${port}` }));
  const readyz = async () => (await fetch(`${a.url}/readyz`)).status;
  const probeErrors = async () => {
    const text = await (await fetch(`${a.url}/metrics`)).text();
    return Number(/^switchyard_redis_errors_total\{kind="probe"\} (\S+)$/m.exec(text)?.[1] ?? NaN);
  };
  try {
    await until(async () => (await readyz()) === 200, "ready");
    assert.equal(await probeErrors(), 0);

    // Writes (PUBLISH among them) wait: the subscriber stays connected, yet nothing goes through.
    await ask(port, "CLIENT", "PAUSE", "60000", "WRITE");
    await until(async () => (await readyz()) === 503, "not ready while nothing goes through", 1200);
    const refused = await (await fetch(`${a.url}/readyz`)).json();
    assert.equal(refused.error.code, "redis_unavailable");
    await until(async () => (await probeErrors()) === 1, "the late probes counted", 1200);

    await ask(port, "CLIENT", "UNPAUSE");
    await until(async () => (await readyz()) === 200, "ready again", 1200);
    assert.equal(await probeErrors(), 1, "counted once for the outage");
    const client = await a.connect({ auth: { token: token("p1", { organizationId: "o-p" }) } });
    await a.publish({ event: "org:tick", to: { org: "o-p" }, data: { n: 1 } });
    await until(async () => client.events.some((e) => e.name === "org:tick"), "delivery through the bus");
  } finally {
    await a.stop();
  }
});

test("rediss://: two instances over TLS deliver exactly once; an untrusted certificate stops the start", async () => {
  const openssl = (...args) => execFileSync("openssl", args, { stdio: "ignore", cwd: dir });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=switchyard-test-ca");
  openssl("req", ...ec, "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=localhost");
  writeFileSync(join(dir, "redis.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
  openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "redis.crt", "-days", "1", "-extfile", "redis.ext");
  const port = await freePort();
  redisServer([
    "--port", "0", "--tls-port", `${port}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
    "--tls-cert-file", join(dir, "redis.crt"), "--tls-key-file", join(dir, "redis.key"),
    "--tls-ca-cert-file", join(dir, "ca.crt"), "--tls-auth-clients", "no",
  ]);
  const url = `rediss://127.0.0.1:${port}`;
  await until(async () => {
    execFileSync("redis-cli", ["--tls", "--cacert", join(dir, "ca.crt"), "-p", `${port}`, "PING"], { stdio: "ignore" });
    return true;
  }, "the TLS Redis");

  // The system's trust store does not know this CA: refused, and the variable is named.
  await assert.rejects(startServer(clusterEnv({ REDIS_URL: url })), /exited early/);

  // Trusting it (rustls reads SSL_CERT_FILE as the system's store), two instances deliver.
  const env = clusterEnv({ REDIS_URL: url, SSL_CERT_FILE: join(dir, "ca.crt") });
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const client = await a.connect({ auth: { token: token("t1", { organizationId: "o-t" }) } });
    for (let n = 0; n < 3; n++) await b.publish({ event: "org:tick", to: { org: "o-t" }, data: { n } });
    const ticks = () => client.events.filter((e) => e.name === "org:tick").map((e) => e.args[0].n);
    await until(async () => ticks().length === 3, "three publications over TLS");
    await b.barrier();
    await until(async () => client.events.some((e) => e.name === "test:barrier"), "the barrier");
    assert.deepEqual(ticks(), [0, 1, 2], "each once, in order");
  } finally {
    await a.stop();
    await b.stop();
  }
});

test("a failover that loses the replication tail: the resuming client is told recovered false, never a silent hole", async (t) => {
  const { master, replica, masterProcess, replicaProcess, url, promoted } = await sentinelTopology(t);
  const env = clusterEnv({ REDIS_URL: url });
  const a = await startServer(env);
  const b = await startServer(env);
  const lb = await forwarder(a);
  let client;
  try {
    client = await tailLostFailover({
      a, b, lb, org: "o-f",
      sessionOnReplica: async () => (await ask(replica, "KEYS", `${env.REDIS_CHANNEL_PREFIX}switchyard:session:*`)).length === 1,
      freeze: async () => replicaProcess.kill("SIGSTOP"),
      // Its link closed too: nothing more can reach it, even through buffers.
      unlink: () => ask(master, "CLIENT", "KILL", "TYPE", "replica"),
      kill: async () => masterProcess.kill("SIGKILL"),
      thaw: async () => replicaProcess.kill("SIGCONT"),
      promoted,
    });

    // Delivery comes back by itself, and the client is tracked again.
    for (let n = 100; !client.ns("org:tick").some((t) => t >= 100); n++) {
      assert.ok(n < 400, "delivery never came back after the failover");
      await b.publish({ event: "org:tick", to: { org: "o-f" }, data: { n } }).catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(client.events.filter((e) => e.args[0].n >= 100).every((e) => typeof e.cursor === "string"), "tracked again");
  } finally {
    client?.socket.close();
    await lb.close();
    await a.stop();
    await b.stop();
  }
});

test("a publication delivered alone while Redis was unreachable: tracked clients elsewhere are told recovered false", async () => {
  const port = await freePort();
  const data = mkdtempSync(join(dir, "aof-"));
  const durable = ["--port", `${port}`, "--bind", "127.0.0.1", "--save", "", "--dir", data,
    "--appendonly", "yes", "--appendfsync", "always"];
  let redis = redisServer(durable);
  await until(async () => (await ask(port, "PING")) === "PONG", "the private Redis");
  const env = clusterEnv({ REDIS_URL: `redis://127.0.0.1:${port}` });
  const a = await startServer(env);
  const b = await startServer(env);
  let client;
  try {
    client = resumingClient(a.url, token("d1", { organizationId: "o-d" }));
    await client.until(() => client.recoveries.length === 1, "the first recovery event");
    await b.publish({ event: "org:tick", to: { org: "o-d" }, data: { n: 0 } });
    await client.until(() => client.ns("org:tick").length === 1, "a live delivery through Redis");

    // Redis goes away (its data kept on disk): B delivers this one to its own connections only.
    redis.kill("SIGKILL");
    await new Promise((ok) => redis.once("exit", ok));
    await b.publish({ event: "org:tick", to: { org: "o-d" }, data: { n: 1 } });
    redis = redisServer(durable);

    // Once Redis answers, the client on A, which never saw n=1, is cut and told. (A's own
    // subscriber coming back may cut it first, with nothing in the log to replay; B's new
    // generation then cuts it again.)
    await client.until(() => client.recoveries.slice(1).some((r) => r.recovered === false),
      "the client told after the outage", 3000);
    assert.deepEqual(client.ns("org:tick"), [0], "n=1 never reached it, and it knows");
    await b.publish({ event: "org:tick", to: { org: "o-d" }, data: { n: 2 } });
    await client.until(() => client.ns("org:tick").includes(2), "live again");
  } finally {
    client?.socket.close();
    await a.stop();
    await b.stop();
  }
});
