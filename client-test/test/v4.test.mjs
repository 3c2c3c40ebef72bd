// socket.io-client 4.x against Switchyard: every token source, on websocket and polling;
// refusals as connect_error; an org publish received exactly once and by no other org.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { SECRET, sign, startServer, token } from "./helpers.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

for (const transport of ["websocket", "polling"]) {
  describe(`over ${transport}`, () => {
    const transports = [transport];

    test("auth.token connects and lands in the user and org rooms", async () => {
      const client = await server.connect({ transports, auth: { token: token("ana", { organizationId: "o1" }) } });
      await server.publish({ event: "probe", to: { user: "ana" }, data: "user" });
      await server.publish({ event: "probe", to: { org: "o1" }, data: "org" });
      await server.barrier();
      const got = await client.beforeBarrier();
      assert.deepEqual(got.map((e) => e.args[0]), ["user", "org"]);
    });

    test("the Authorization header is a token source", async () => {
      const client = await server.connect({
        transports,
        extraHeaders: { authorization: `Bearer ${token("hdr")}` },
      });
      await server.publish({ event: "probe", to: { user: "hdr" }, data: 1 });
      await server.barrier();
      assert.equal((await client.beforeBarrier()).length, 1);
    });

    test("the token query parameter is a token source", async () => {
      const client = await server.connect({ transports, query: { token: token("qry") } });
      await server.publish({ event: "probe", to: { user: "qry" }, data: 1 });
      await server.barrier();
      assert.equal((await client.beforeBarrier()).length, 1);
    });

    test("refusals reach connect_error with a stable code", async () => {
      const missing = await server.refused({ transports });
      assert.match(missing.message, /^token_missing: /);
      const expired = await server.refused({
        transports,
        auth: { token: sign({ sub: "x", exp: Math.floor(Date.now() / 1000) - 600 }) },
      });
      assert.match(expired.message, /^token_expired: /);
      const forged = await server.refused({ transports, auth: { token: token("x").slice(0, -4) + "AAAA" } });
      assert.match(forged.message, /^token_bad_signature: /);
      assert.ok(!forged.message.includes(SECRET));
    });

    test("an org publish is received once by each socket of the org and never by another org", async () => {
      const a1 = await server.connect({ transports, auth: { token: token("a1", { organizationId: "42" }) } });
      const a2 = await server.connect({ transports, auth: { token: token("a2", { orgId: 42 }) } });
      const other = await server.connect({ transports, auth: { token: token("b1", { organizationId: "7" }) } });
      const receipt = await server.publish({
        event: "invoice:created",
        to: { org: "42" },
        data: { invoiceId: "inv-9", amount: 12.5 },
      });
      assert.ok(receipt.id);
      await server.barrier();
      for (const client of [a1, a2]) {
        const got = await client.beforeBarrier();
        assert.deepEqual(got, [{ name: "invoice:created", args: [{ invoiceId: "inv-9", amount: 12.5 }] }]);
      }
      assert.deepEqual(await other.beforeBarrier(), []);
    });
  });
}
