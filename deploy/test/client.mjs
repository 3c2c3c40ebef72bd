// The stock socket.io-client (client-test's node_modules) against containers of the image, for
// scripts/test-deploy.
//
//   node deploy/test/client.mjs roundtrip   # URLS=a,b TOKEN=... API_KEY=... ORG=...
//     Connects one client to each URL (polling, then the WebSocket upgrade), publishes through
//     POST /api/events on each URL in turn, and checks that both clients get each publication
//     exactly once (across instances: through Redis). Prints one JSON line, exits 0 on success.
//   node deploy/test/client.mjs hold        # URLS=b TOKEN=... [CLIENTS=10]
//     Connects CLIENTS clients to one URL, prints "connected N", then waits for the server to cut
//     them all (a drain) and prints the reasons and when the first and last were cut; exits 0 when
//     every one was cut with "transport close".
import { createRequire } from "node:module";

const require = createRequire(new URL("../../client-test/package.json", import.meta.url));
const { io } = require("socket.io-client");

const mode = process.argv[2];
const urls = (process.env.URLS ?? "").split(",").filter(Boolean);
const token = process.env.TOKEN;
const limit = Number(process.env.TIMEOUT_MS ?? 20000);

function fail(message) {
  console.error(`client.mjs: ${message}`);
  process.exit(1);
}
if (!urls.length || !token) fail("URLS and TOKEN are required");
setTimeout(() => fail(`${mode}: no result within ${limit} ms`), limit).unref();

function connect(url) {
  const socket = io(url, { auth: { token }, reconnection: false, timeout: 5000 });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      // Wait for the WebSocket upgrade (or its absence) to settle before publishing.
      const engine = socket.io.engine;
      if (engine.transport.name === "websocket") return resolve(socket);
      engine.once("upgrade", () => resolve(socket));
      setTimeout(() => resolve(socket), 3000);
    });
    socket.once("connect_error", (err) => reject(new Error(`${url}: connect_error ${err.message}`)));
  });
}

async function publish(url, data) {
  const response = await fetch(`${url}/api/events`, {
    method: "POST",
    headers: { Authorization: `Bearer ${process.env.API_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ event: "invoice:created", to: { org: process.env.ORG }, data }),
  });
  if (response.status !== 202) fail(`POST ${url}/api/events: ${response.status} ${await response.text()}`);
}

if (mode === "roundtrip") {
  const sockets = await Promise.all(urls.map(connect)).catch((e) => fail(e.message));
  const received = sockets.map(() => []);
  sockets.forEach((s, i) => s.on("invoice:created", (data) => received[i].push(data.invoiceId)));
  const sent = [];
  for (const [i, url] of urls.entries()) {
    const id = `deploy-${i}-${Date.now()}`;
    sent.push(id);
    await publish(url, { invoiceId: id });
  }
  const deadline = Date.now() + 10000;
  while (received.some((r) => r.length < sent.length) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive meanwhile
  const result = {
    transports: sockets.map((s) => s.io.engine.transport.name),
    sent,
    received,
  };
  console.log(JSON.stringify(result));
  sockets.forEach((s) => s.disconnect());
  const exact = received.every((r) => r.length === sent.length && sent.every((id) => r.includes(id)));
  if (!exact) fail("each client should get each publication exactly once");
  if (!result.transports.every((t) => t === "websocket")) fail("every client should have upgraded to WebSocket");
  process.exit(0);
} else if (mode === "hold") {
  const count = Number(process.env.CLIENTS ?? 10);
  const sockets = await Promise.all(Array.from({ length: count }, () => connect(urls[0]))).catch((e) => fail(e.message));
  console.log(`connected ${count}`);
  const since = Date.now();
  const cuts = [];
  for (const socket of sockets) {
    socket.on("disconnect", (reason) => {
      cuts.push({ reason, afterMs: Date.now() - since });
      if (cuts.length < count) return;
      const after = cuts.map((c) => c.afterMs);
      const reasons = [...new Set(cuts.map((c) => c.reason))];
      console.log(JSON.stringify({ disconnected: reasons, firstMs: Math.min(...after), lastMs: Math.max(...after) }));
      process.exit(reasons.length === 1 && reasons[0] === "transport close" ? 0 : 1);
    });
  }
} else {
  fail(`unknown mode ${mode} (roundtrip or hold)`);
}
