// socket.io-client 2.x (Engine.IO v3) with the token in the query string, as legacy
// frontends connect.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import ioV2 from "socket.io-client-v2";
import { BARRIER, recorder, startServer, token } from "./helpers.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

function connectV2(query, transports) {
  const socket = server.track(ioV2(server.url, { query, transports, reconnection: false, forceNew: true }));
  const rec = recorder(socket);
  // 2.x has no onAny: listen to the events the test uses.
  for (const name of ["invoice:paid", BARRIER]) socket.on(name, (...args) => rec.onEvent(name, ...args));
  return { socket, rec };
}

for (const transport of ["websocket", "polling"]) {
  test(`a 2.x client over ${transport} connects with ?token= and receives an org publish once`, async () => {
    const { socket, rec } = connectV2({ token: token("legacy", { organizationId: "9" }) }, [transport]);
    await new Promise((ok, fail) => {
      socket.once("connect", ok);
      socket.once("error", fail);
      socket.once("connect_error", fail);
    });
    const { socket: outsiderSocket, rec: outsider } = connectV2({ token: token("other", { organizationId: "8" }) }, [
      transport,
    ]);
    await new Promise((ok) => outsiderSocket.once("connect", ok));

    await server.publish({ event: "invoice:paid", to: { org: "9" }, data: { invoiceId: "i-2" } });
    await server.barrier();
    assert.deepEqual(await rec.beforeBarrier(), [{ name: "invoice:paid", args: [{ invoiceId: "i-2" }] }]);
    assert.deepEqual(await outsider.beforeBarrier(), []);
  });
}

test("a 2.x client without a token is refused with the reason", async () => {
  const socket = server.track(ioV2(server.url, { transports: ["websocket"], reconnection: false, forceNew: true }));
  // socketioxide sends the refusal as `{message}` on every protocol version; 2.x clients
  // receive that object as their `error` event.
  const reason = await new Promise((ok) => socket.once("error", ok));
  assert.match(reason.message, /^token_missing: /);
});
