// A failover under load, the same on every topology: four tracked clients (two per instance),
// both instances publishing one at a time as fast as they are answered; `kill()` takes the
// master away and `promoted()` resolves once another one holds its role. Then every client
// must be complete or have been told `recovered: false`, nothing twice, delivery across
// instances back by itself, and /readyz 503 whenever the bus was out longer than its patience.
import assert from "node:assert/strict";
import { resumingClient, token } from "./helpers.mjs";
import { until } from "./redis-processes.mjs";

/** How long an instance's probes may stay away before /readyz says 503 (src/cluster/probe.rs). */
const PROBE_PATIENCE_MS = 5_000;

export async function failoverUnderLoad({ a, b, kill, promoted, org }) {
  const clients = [];
  let publishing = true;
  let sampling = true;
  try {
    for (const [i, server] of [a, b, a, b].entries()) {
      const client = resumingClient(server.url, token(`${org}-${i}`, { organizationId: org }));
      // When the client heard it was not recovered: what it misses must have been accepted before.
      client.toldAt = 0;
      client.socket.on("recovery", (r) => {
        if (r.recovered === false) client.toldAt = Date.now();
      });
      clients.push(client);
      await client.until(() => client.recoveries.length === 1, "the first recovery event");
    }
    const accepted = new Map();
    const via = new Map();
    let refused = 0;
    let next = 0;
    const publisher = async (server) => {
      while (publishing) {
        const n = next++;
        // When it was sent: numbered after that, so after the client went live if it was told
        // before (its last `recovery` was sent once it was live).
        const sent = Date.now();
        try {
          await server.publish({ event: "org:tick", to: { org }, data: { n } });
          accepted.set(n, sent);
          via.set(n, server === a ? "A" : "B");
        } catch {
          refused++;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const load = [publisher(a), publisher(b)];
    await until(async () => accepted.size >= 100, "a hundred publications before the kill");

    // /readyz of both instances, sampled through the outage.
    const samples = [];
    const sampler = (async () => {
      while (sampling) {
        for (const server of [a, b]) {
          const status = await fetch(`${server.url}/readyz`).then((r) => r.status, () => 0);
          samples.push({ at: Date.now(), status });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const killedAt = accepted.size;
    const killedTime = Date.now();
    await kill();
    await promoted();
    const promotedTime = Date.now();
    // Delivery across instances is back: a publication accepted by B reaches a client on A.
    const probe = clients[0];
    for (let n = 1_000_000; !probe.ns("org:tick").some((t) => t >= 1_000_000); n++) {
      assert.ok(n < 1_001_500, "delivery across instances never came back");
      await b.publish({ event: "org:tick", to: { org }, data: { n } }).catch(() => {});
      await new Promise((r) => setTimeout(r, 20));
    }
    const backTime = Date.now();
    const during = accepted.size - killedAt;
    await until(async () => accepted.size >= during + killedAt + 100, "a hundred publications after", 1200);
    publishing = false;
    await Promise.all(load);
    for (const server of [a, b]) {
      await until(async () => (await fetch(`${server.url}/readyz`)).status === 200, "ready").catch(async (e) => {
        const why = await (await fetch(`${server.url}/readyz`)).text();
        const status = JSON.stringify((await server.api("GET", "/api/websocket")).body);
        throw new Error(`${e.message}: ${server === a ? "A" : "B"} ${why} ${status}`);
      });
    }
    sampling = false;
    await sampler;
    // Past the probes' patience and until delivery came back, no instance may call itself ready.
    const out = samples.filter((s) => s.at > killedTime + PROBE_PATIENCE_MS + 1_000 && s.at < backTime - 1_000);
    assert.deepEqual(out.filter((s) => s.status === 200), [], "ready while the bus was not delivering");

    // Every client is live again: each gets a publication sent after it last heard
    // `recovered: false` (a generation ended late may still cut and tell them meanwhile).
    for (let n = 2_000_000; ; n++) {
      const live = clients.every((c) => c.ns("org:tick").some((t) => t >= 2_000_000 && accepted.get(t) > c.toldAt));
      if (live) break;
      assert.ok(n < 2_000_600, "a client never got live deliveries again");
      const sent = Date.now();
      await b.publish({ event: "org:tick", to: { org }, data: { n } });
      accepted.set(n, sent);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const client of clients) {
      const ticks = client.ns("org:tick");
      assert.equal(new Set(ticks).size, ticks.length, "nothing twice");
      // Missed, and sent after the client last heard `recovered: false`: a silent loss.
      const silent = [...accepted].filter(([n, sent]) => !ticks.includes(n) && sent > client.toldAt);
      if (silent.length > 0) {
        const i = clients.indexOf(client);
        const detail = silent.map(([n, sent]) => `${n}@${sent - killedTime}ms via ${via.get(n) ?? "B"}`).join(" ");
        assert.fail(`client ${i} (on ${i % 2 ? "B" : "A"}, told at ${client.toldAt - killedTime} ms, back at ` +
          `${backTime - killedTime} ms) missed, untold: ${detail}; it got ${ticks.length}`);
      }
    }
    const told = clients.filter((c) => c.recoveries.some((r) => r.recovered === false)).length;
    const missed = clients.map((c) => [...accepted.keys()].filter((n) => !c.ns("org:tick").includes(n)).length);
    const notReady = samples.filter((s) => s.status !== 200).length;
    return `${accepted.size} accepted (${killedAt} before the kill), ${refused} refused; clients told recovered:false ` +
      `${told}/4, accepted publications missed per client ${missed.join("/")}; promoted ${promotedTime - killedTime} ms ` +
      `after the kill, delivery across instances back at ${backTime - killedTime} ms; /readyz not 200 in ${notReady} ` +
      `of ${samples.length} samples`;
  } finally {
    publishing = false;
    sampling = false;
    for (const client of clients) client.socket.close();
  }
}

/**
 * A failover that loses the replication tail: a tracked client behind `lb` (a forwarder to A)
 * goes away; once `sessionOnReplica()` holds, `freeze()` stops the replica and `unlink()` cuts
 * its link, three publications reach the master only, `kill()` takes the master and `thaw()`
 * wakes the replica, which `promoted()` sees take over. Once delivery through the new master is
 * back, the client returns: it must be told `recovered: false`, nothing twice. Returns it.
 */
export async function tailLostFailover({ a, b, lb, org, sessionOnReplica, freeze, unlink, kill, thaw, promoted }) {
  const client = resumingClient(lb.url, token(`${org}-1`, { organizationId: org }));
  await client.until(() => client.recoveries.length === 1, "the first recovery event");
  for (let n = 0; n < 3; n++) await b.publish({ event: "org:tick", to: { org }, data: { n } });
  await client.until(() => client.ns("org:tick").length === 3, "live deliveries");

  // Away; once its released session is on the replica, the replica is frozen and unlinked, so
  // what follows reaches the master's log only; the promoted replica has the session and a log
  // without those entries.
  const gone = new Promise((ok) => client.socket.once("disconnect", ok));
  lb.hold();
  lb.cut();
  await gone;
  await until(sessionOnReplica, "the released session on the replica");
  await freeze();
  await unlink();
  for (let n = 3; n < 6; n++) await b.publish({ event: "org:tick", to: { org }, data: { n } });
  await kill();
  await thaw();
  await promoted();
  // Both instances on the new master (a publication through it reaches A) before the client
  // comes back: it resumes from a log that lacks what it missed, not from an unreachable one.
  const watcher = await a.connect({ auth: { token: token(`${org}-w`, { organizationId: `${org}-w` }) } });
  for (let n = 0; !watcher.events.some((e) => e.name === "org:tick"); n++) {
    assert.ok(n < 600, "delivery through the new master never came back");
    // During the failover a publish may be refused (503): that is an answer, not a loss.
    await b.publish({ event: "org:tick", to: { org: `${org}-w` }, data: { n } }).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
  }
  lb.release();

  await client.until(() => client.recoveries.length >= 2, "the resumption");
  const told = client.recoveries.at(-1);
  const ticks = client.ns("org:tick");
  assert.equal(new Set(ticks).size, ticks.length, "nothing twice");
  if (told.recovered) {
    assert.deepEqual(ticks.slice(0, 6), [0, 1, 2, 3, 4, 5], "recovered: true only with nothing missing");
  }
  assert.deepEqual(ticks.slice(0, 3), [0, 1, 2]);
  assert.equal(told.recovered, false, "the tail was lost: the client is told");
  return client;
}
