// MSGPACK=true: the server speaks socket.io-msgpack-parser, as a cluster switched to it would.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import msgpackParser from "socket.io-msgpack-parser";
import { startServer, token } from "./helpers.mjs";

let server;
before(async () => {
  server = await startServer({ MSGPACK: "true" });
});
after(async () => {
  await server?.stop();
});

test("a msgpack client connects, receives publications and gets acks", async () => {
  const client = await server.connect({ parser: msgpackParser, auth: { token: token("mp", { organizationId: "o" }) } });
  await server.publish({ event: "invoice:created", to: { org: "o" }, data: { n: 1, tags: ["a"] } });
  await server.barrier();
  assert.deepEqual(await client.beforeBarrier(), [{ name: "invoice:created", args: [{ n: 1, tags: ["a"] }] }]);
  const ack = await client.socket.timeout(10000).emitWithAck("subscribe", { channel: "stores" });
  assert.deepEqual(ack, { ok: true, channel: "stores" });
  const refused = await server.refused({ parser: msgpackParser });
  assert.match(refused.message, /^token_missing: /);
});
