// A drained deploy: SIGTERM to one of two instances with SHUTDOWN_DRAIN set. The instance stops
// accepting, keeps every opted-in session resumable, and closes its connections one by one over
// the drain while publications keep flowing; each client reconnects to the other instance and
// resumes there with every publication exactly once, in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { clusterEnv, forwarder, resumingClient, startServer, token } from "./helpers.mjs";

test("a drained instance's clients all resume on the other with nothing lost", async (t) => {
  const env = clusterEnv();
  const a = await startServer({ ...env, SHUTDOWN_DRAIN: "2s" });
  const b = await startServer(env);
  const lb = await forwarder(a);
  const clients = [];
  try {
    for (let i = 0; i < 20; i++) {
      const client = resumingClient(lb.url, token(`drain-${i}`, { organizationId: "o-drain" }));
      client.cuts = [];
      client.socket.on("disconnect", () => client.cuts.push(Date.now()));
      clients.push(client);
    }
    for (const client of clients) await client.until(() => client.recoveries.length === 1, "connected");

    let n = 0;
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        await b.publish({ event: "org:tick", to: { org: "o-drain" }, data: { n: n++ } });
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await clients[0].until(() => clients[0].ns("org:tick").length >= 5, "the stream to start");
    lb.retarget(b);
    await a.stop();
    for (const client of clients) await client.until(() => client.recoveries.length === 2, "the resume");
    streaming = false;
    await stream;

    for (const client of clients) {
      await client.until(() => client.ns("org:tick").length >= n, `all ${n} publications`);
      assert.deepEqual(client.ns("org:tick"), [...Array(n).keys()], "each once, in order");
      assert.equal(client.recoveries[1].recovered, true);
      assert.equal(client.cuts.length, 1, "cut once, by the drain");
    }
    const cuts = clients.map((c) => c.cuts[0]).sort((x, y) => x - y);
    t.diagnostic(`20 connections closed over ${cuts.at(-1) - cuts[0]} ms (SHUTDOWN_DRAIN=2s)`);
  } finally {
    for (const client of clients) client.socket.close();
    await lb.close();
    await a.stop();
    await b.stop();
  }
});
