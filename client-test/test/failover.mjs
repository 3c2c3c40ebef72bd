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
      clients.push(client);
      await client.until(() => client.recoveries.length === 1, "the first recovery event");
    }
    const accepted = new Set();
    let refused = 0;
    let next = 0;
    const publisher = async (server) => {
      while (publishing) {
        const n = next++;
        try {
          await server.publish({ event: "org:tick", to: { org }, data: { n } });
          accepted.add(n);
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

    // After the dust settles, a last batch reaches everyone, exactly once, in order.
    const last = [2_000_000, 2_000_001, 2_000_002, 2_000_003, 2_000_004];
    for (const n of last) await b.publish({ event: "org:tick", to: { org }, data: { n } });
    for (const client of clients) {
      await client.until(() => last.every((n) => client.ns("org:tick").includes(n)), "the last batch");
      const ticks = client.ns("org:tick");
      assert.equal(new Set(ticks).size, ticks.length, "nothing twice");
      const missing = [...accepted].filter((n) => !ticks.includes(n));
      const told = client.recoveries.some((r) => r.recovered === false);
      assert.ok(missing.length === 0 || told, `${missing.length} accepted publications missing, and the client was not told`);
      assert.deepEqual(ticks.filter((n) => n >= last[0]), last, "the last batch once, in order");
    }
    const told = clients.filter((c) => c.recoveries.some((r) => r.recovered === false)).length;
    const missed = clients.map((c) => [...accepted].filter((n) => !c.ns("org:tick").includes(n)).length);
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
