// The client contracts (../shared/contracts) over the real socket.io-client 4.x: invitations,
// workspace rooms, typing, presence, venue channels. Each event's happy path, its refusal, and
// delivery exactly once to exactly the right sockets.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startServer, token } from "./helpers.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const ack = (client, event, payload) => client.socket.timeout(10000).emitWithAck(event, payload);

test("invitations: watchers get invitation-update once; a foreign or unregistered invitation is refused", async () => {
  assert.equal((await server.api("PUT", "/api/invitations/inv-theirs", { organizationId: "org-b" })).status, 201);
  for (const id of ["inv-1", "inv-2"]) {
    assert.equal((await server.api("PUT", `/api/invitations/${id}`, { organizationId: "org-a" })).status, 201);
  }
  const watcher = await server.connect({ auth: { token: token("vendor-admin", { organizationId: "org-a" }) } });
  const bystander = await server.connect({ auth: { token: token("someone", { organizationId: "org-c" }) } });

  assert.deepEqual(await ack(watcher, "watch-invitation", { invitationIds: ["inv-1", "inv-2"] }), {
    ok: true,
    invitationIds: ["inv-1", "inv-2"],
  });
  const refused = await ack(watcher, "watch-invitation", "inv-theirs");
  assert.equal(refused.ok, false);
  assert.equal(refused.error.code, "forbidden");
  // One the directory does not know (or knows no organization of) is nobody's to watch yet.
  const unknown = await ack(watcher, "watch-invitation", "inv-unregistered");
  assert.equal(unknown.ok, false);
  assert.equal(unknown.error.code, "invitation_unknown");

  const update = { invitationId: "inv-1", status: "accepted", usedAt: "2024-01-01T00:00:00Z" };
  assert.equal((await server.api("POST", "/invitation-update", update)).status, 202);
  const bad = await server.api("POST", "/invitation-update", { invitationId: "inv-1", status: "nope" });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /status/);
  await server.api("POST", "/invitation-update", { invitationId: "inv-theirs", status: "revoked" });
  await server.barrier();

  assert.deepEqual(await watcher.beforeBarrier(), [{ name: "invitation-update", args: [update] }]);
  assert.deepEqual(await bystander.beforeBarrier(), []);
});

test("workspace: members join project rooms; typing reaches the other members; presence", async () => {
  for (const user of ["ws-alice", "ws-bob"]) {
    await server.api("PUT", `/api/tenants/acme/projects/p1/members/${user}`, {});
    await server.api("PUT", `/api/tenants/acme/channels/general/members/${user}`, {});
  }
  const alice = await server.connect({ auth: { token: token("ws-alice", { tenantId: "acme" }) } });
  const bob = await server.connect({ auth: { token: token("ws-bob", { tenantId: "acme" }) } });
  const mallory = await server.connect({ auth: { token: token("ws-mallory", { tenantId: "acme" }) } });

  assert.deepEqual(await ack(alice, "join-project", { projectId: "p1" }), {
    ok: true,
    room: "tenant:acme:project:p1",
    members: 1,
  });
  const denied = await ack(mallory, "join-project", { projectId: "p1" });
  assert.deepEqual([denied.ok, denied.error.code], [false, "forbidden"]);
  for (const member of [alice, bob]) {
    assert.equal((await ack(member, "join-channel", { channelId: "general" })).ok, true);
  }

  await server.publish({ event: "task:created", to: { tenant: "acme", project: "p1" }, data: { id: "t1" } });
  alice.socket.emit("typing:start", { channelId: "general" });
  const notMember = await ack(mallory, "typing:start", { channelId: "general" });
  assert.equal(notMember.error.code, "not_in_room");
  assert.deepEqual(await ack(bob, "room:members", { room: "tenant:acme:channel:general" }), {
    ok: true,
    room: "tenant:acme:channel:general",
    members: 2,
  });
  await server.barrier();

  assert.deepEqual(await alice.beforeBarrier(), [{ name: "task:created", args: [{ id: "t1" }] }]);
  assert.deepEqual(await bob.beforeBarrier(), [
    { name: "typing:start", args: [{ channelId: "general", userId: "ws-alice" }] },
  ]);
  assert.deepEqual(await mallory.beforeBarrier(), []);

  // Presence: carol's first connection and her last are announced to the tenant, once each.
  const carol = await server.connect({ auth: { token: token("ws-carol", { tenantId: "acme" }) } });
  await server.barrier();
  assert.deepEqual(await alice.beforeBarrier({ presence: true }), [
    { name: "user:status", args: [{ userId: "ws-carol", status: "online" }] },
  ]);
  const offline = new Promise((ok) =>
    alice.socket.on("user:status", (s) => s.userId === "ws-carol" && s.status === "offline" && ok(s)),
  );
  carol.socket.disconnect();
  await offline;
});

test("venue channels: subscribers get broadcasts once; private names are refused", async () => {
  const fan = await server.connect({ auth: { token: token("fan") } });
  const other = await server.connect({ auth: { token: token("other") } });
  assert.deepEqual(await ack(fan, "subscribe", { channel: "venue:42" }), { ok: true, channel: "venue:42" });
  const privateRoom = await ack(other, "subscribe", { channel: "user:fan" });
  assert.deepEqual([privateRoom.ok, privateRoom.error.code], [false, "private_channel"]);

  const data = { id: "42", name: "Blue Note", status: "active" };
  assert.equal((await server.api("POST", "/api/websocket", { action: "broadcast", channel: "venue:42", data })).status, 202);
  const note = { id: "n1", type: "venue_update", title: "Venue Updated", message: "Blue Note has been updated" };
  await server.api("POST", "/api/websocket", { action: "notify", userId: "other", data: note });
  await server.barrier();

  assert.deepEqual(await fan.beforeBarrier(), [{ name: "venue_update", args: [data] }]);
  assert.deepEqual(await other.beforeBarrier(), [{ name: "notification:new", args: [note] }]);
  const status = await server.api("GET", "/api/websocket");
  assert.equal(status.body.redis, "disabled");
  assert.ok(status.body.connections >= 2);
});
