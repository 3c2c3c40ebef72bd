// Revocation: with AUTH_REQUIRE_USER=true, a user deleted from the directory, or marked
// unverified, loses his live connections on every instance (Socket.IO: server disconnect;
// /ws: close 1008 `user_revoked`); other users keep theirs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { clusterEnv, startServer, token } from "./helpers.mjs";

let a;
let b;

before(async () => {
  const env = clusterEnv({ AUTH_REQUIRE_USER: "true" });
  a = await startServer(env);
  b = await startServer(env);
});
after(async () => {
  await a?.stop();
  await b?.stop();
});

async function verified(user) {
  assert.ok([200, 201].includes((await a.api("PUT", `/api/users/${user}`, { email: `${user}@x.io`, emailVerified: true })).status));
}

function plain(server, user) {
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws?token=${token(user)}`);
  const frames = [];
  ws.on("message", (raw) => frames.push(JSON.parse(raw.toString())));
  const closed = new Promise((ok) => ws.on("close", (code, reason) => ok({ code, reason: reason.toString() })));
  return { ws, frames, closed, open: new Promise((ok) => ws.once("open", ok)) };
}

test("a deleted user is disconnected on both instances; another user is not", async () => {
  await verified("doomed");
  await verified("bystander");
  const onB = await b.connect({ auth: { token: token("doomed") } });
  const bystander = await b.connect({ auth: { token: token("bystander") } });
  const onA = plain(a, "doomed");
  await onA.open;
  const gone = new Promise((ok) => onB.socket.on("disconnect", ok));

  assert.equal((await a.api("DELETE", "/api/users/doomed")).status, 204);
  assert.equal(await gone, "io server disconnect");
  const { code, reason } = await onA.closed;
  assert.deepEqual([code, reason], [1008, "user_revoked"]);
  assert.equal(onA.frames.at(-1).code, "user_revoked");
  assert.equal(bystander.socket.connected, true);
  assert.equal((await bystander.socket.timeout(10000).emitWithAck("subscribe", { channel: "venue:1" })).ok, true);
  // And he cannot come back.
  const refused = await b.refused({ auth: { token: token("doomed") } });
  assert.match(refused.message, /^user_unknown:/);
});

test("a user marked unverified is disconnected too", async () => {
  await verified("unverified");
  const socket = await a.connect({ auth: { token: token("unverified") } });
  const gone = new Promise((ok) => socket.socket.on("disconnect", ok));
  assert.equal((await b.api("PUT", "/api/users/unverified", { email: "u@x.io", emailVerified: false })).status, 200);
  assert.equal(await gone, "io server disconnect");
});
