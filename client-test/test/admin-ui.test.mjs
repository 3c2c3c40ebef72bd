// The official @socket.io/admin-ui against Switchyard: the protocol as the UI's Node server
// speaks it (socket.io-client on /admin), across two instances, and the real UI page from the
// npm package in Chromium until it lists Switchyard's sockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { io } from "socket.io-client";
import { startServer, token, clusterEnv } from "./helpers.mjs";
import { ARTIFACTS, launchBrowser, offlinePage, serveDirectory } from "./browser.mjs";

const LOGIN = { ADMIN_USERNAME: "operator", ADMIN_PASSWORD: "correct horse battery" };
const AUTH = { username: "operator", password: "correct horse battery" };

function adminSocket(url, auth = AUTH) {
  return io(`${url}/admin`, { auth, forceNew: true, reconnection: false, transports: ["websocket"] });
}

/** Resolves with the arguments of the first `event` that satisfies `match`. */
function next(socket, event, match = () => true) {
  return new Promise((ok) => {
    const handler = (...args) => {
      if (!match(...args)) return;
      socket.off(event, handler);
      ok(args);
    };
    socket.on(event, handler);
  });
}

function refusal(socket) {
  return new Promise((ok, fail) => {
    socket.once("connect", () => fail(new Error("admin connection was accepted")));
    socket.once("connect_error", ok);
  });
}

test("without ADMIN_USERNAME/ADMIN_PASSWORD /admin is refused with admin_disabled; a wrong password with the UI's words", async () => {
  const off = await startServer();
  const on = await startServer(LOGIN);
  try {
    const disabled = adminSocket(off.url);
    assert.match((await refusal(disabled)).message, /^admin_disabled: /);
    disabled.close();
    const wrong = adminSocket(on.url, { username: "operator", password: "guess" });
    assert.equal((await refusal(wrong)).message, "invalid credentials");
    wrong.close();
    // Everyone else is served.
    const user = await on.connect({ auth: { token: token("alice") } });
    assert.ok(user.socket.connected);
  } finally {
    await off.stop();
    await on.stop();
  }
});

test("logins are throttled per address: past ADMIN_LOGIN_RATE even the right password is refused unchecked, named and counted", async () => {
  // Behind a trusted proxy (the test's loopback), X-Forwarded-For names each client.
  const server = await startServer({ ...LOGIN, ADMIN_LOGIN_RATE: "3", TRUSTED_PROXIES: "127.0.0.1" });
  const from = (address, auth) =>
    io(`${server.url}/admin`, {
      auth,
      forceNew: true,
      reconnection: false,
      transports: ["websocket"],
      extraHeaders: { "x-forwarded-for": address },
    });
  const opened = [];
  try {
    for (let n = 0; n < 3; n++) {
      const guess = from("198.51.100.7", { username: "operator", password: `guess ${n}` });
      opened.push(guess);
      assert.equal((await refusal(guess)).message, "invalid credentials", `guess ${n} is checked`);
    }
    // The burst is spent: the right password is not even looked at.
    const right = from("198.51.100.7", AUTH);
    opened.push(right);
    assert.match(
      (await refusal(right)).message,
      /^admin_login_rate: too many login attempts from this address; retry in \d+s$/,
    );
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.ok(metrics.includes('switchyard_refused_total{reason="admin_login_rate"} 1'), "counted once");

    // The operator, from elsewhere, logs in at once.
    const operator = from("198.51.100.8", AUTH);
    opened.push(operator);
    await new Promise((ok, fail) => {
      operator.once("connect", ok);
      operator.once("connect_error", fail);
    });
  } finally {
    for (const socket of opened) socket.close();
    await server.stop();
  }
});

test("the admin protocol: config, all_sockets, server_stats, sockets coming and going, join and _disconnect", async () => {
  const server = await startServer(LOGIN);
  try {
    const alice = await server.connect({ auth: { token: token("alice") }, query: { token: "not-shown" } });
    const admin = adminSocket(server.url);
    const config = next(admin, "config");
    const all = next(admin, "all_sockets");
    const stats = next(admin, "server_stats");
    await new Promise((ok, fail) => {
      admin.once("connect", ok);
      admin.once("connect_error", fail);
    });
    const [{ supportedFeatures }] = await config;
    for (const feature of ["ALL_EVENTS", "JOIN", "LEAVE", "DISCONNECT", "MDISCONNECT"]) assert.ok(supportedFeatures.includes(feature), feature);

    const [sockets] = await all;
    const listed = sockets.find((s) => s.id === alice.socket.id);
    assert.ok(listed, "alice's socket is listed");
    assert.equal(listed.nsp, "/");
    assert.equal(listed.transport, "websocket");
    assert.deepEqual(listed.data, { userId: "alice" });
    assert.ok(listed.rooms.includes(alice.socket.id) && listed.rooms.includes("user:alice"), JSON.stringify(listed.rooms));
    assert.equal(typeof listed.handshake.issued, "number");
    assert.equal(listed.handshake.query.token, "[redacted]", "a token in the query is not shown");
    assert.ok(sockets.some((s) => s.nsp === "/admin" && s.id === admin.id), "the admin UI's own socket is listed");

    const [report] = await stats;
    assert.equal(report.pid > 0 && typeof report.uptime === "number" && typeof report.hostname === "string", true);
    assert.match(report.serverId, /#/);
    assert.equal(report.clientsCount, 2);
    assert.deepEqual(report.namespaces.find((n) => n.name === "/"), { name: "/", socketsCount: 1 });

    const connected = next(admin, "socket_connected", (s) => s.data?.userId === "bob");
    const bob = await server.connect({ auth: { token: token("bob") } });
    const [bobListed, at] = await connected;
    assert.equal(bobListed.id, bob.socket.id);
    assert.ok(!Number.isNaN(Date.parse(at)));

    const joined = next(admin, "room_joined", (nsp, room, id) => room === "vip" && id === bob.socket.id);
    admin.emit("join", "/", "vip", bob.socket.id);
    await joined;
    // The room is real: a publication to it reaches bob, and only bob.
    await server.publish({ event: "vip:news", to: { rooms: "vip" }, data: { n: 1 } });
    await server.barrier();
    assert.deepEqual(await bob.beforeBarrier(), [{ name: "vip:news", args: [{ n: 1 }] }]);
    assert.deepEqual(await alice.beforeBarrier(), []);

    // `emit` to one socket (by its id) goes through the publish path: alice alone gets it.
    const hello = new Promise((ok) => alice.socket.once("admin:hello", ok));
    admin.emit("emit", "/", alice.socket.id, "admin:hello", { from: "operator" });
    await hello;
    await server.barrier();
    assert.deepEqual(await alice.beforeBarrier(), [{ name: "admin:hello", args: [{ from: "operator" }] }]);
    assert.deepEqual(await bob.beforeBarrier(), []);

    // (socket.io-client forgets a socket's id once it is disconnected.)
    const bobId = bob.socket.id;
    const gone = next(admin, "socket_disconnected", (nsp, id) => id === bobId);
    const left = next(admin, "room_left", (nsp, room, id) => room === "vip" && id === bobId);
    const reason = new Promise((ok) => bob.socket.once("disconnect", ok));
    admin.emit("_disconnect", "/", false, bob.socket.id);
    assert.equal(await reason, "io server disconnect");
    await gone;
    await left;
    assert.ok(alice.socket.connected, "only the addressed socket was disconnected");
    admin.close();
  } finally {
    await server.stop();
  }
});

test("across two instances the admin UI sees both servers and every socket, and its commands reach them", async () => {
  const env = clusterEnv(LOGIN);
  const a = await startServer(env);
  const b = await startServer(env);
  try {
    const carol = await b.connect({ auth: { token: token("carol") } });
    const admin = adminSocket(a.url);
    const servers = new Set();
    const bothServers = new Promise((ok) =>
      admin.on("server_stats", (s) => {
        servers.add(s.serverId);
        if (servers.size === 2) ok();
      }),
    );
    // Instance B introduces its sockets when A asks (a roll call).
    const introduced = next(admin, "socket_connected", (s) => s.id === carol.socket.id);
    await new Promise((ok, fail) => {
      admin.once("connect", ok);
      admin.once("connect_error", fail);
    });
    await bothServers;
    const [listed] = await introduced;
    assert.deepEqual(listed.data, { userId: "carol" });

    const reason = new Promise((ok) => carol.socket.once("disconnect", ok));
    const gone = next(admin, "socket_disconnected", (nsp, id) => id === listed.id);
    admin.emit("_disconnect", "/", false, carol.socket.id);
    assert.equal(await reason, "io server disconnect");
    await gone; // told by instance B, through Redis
    admin.close();
  } finally {
    await a.stop();
    await b.stop();
  }
});

test("the official admin UI page (from the npm package) logs in and lists Switchyard's sockets in Chromium", async () => {
  const require = createRequire(import.meta.url);
  const dist = join(dirname(require.resolve("@socket.io/admin-ui/package.json")), "ui", "dist");
  const page_server = await serveDirectory(dist);
  // The UI polls first, with credentials: its origin must be trusted.
  const server = await startServer({ ...LOGIN, CORS_ORIGINS: page_server.url });
  const browser = await launchBrowser();
  try {
    const dave = await server.connect({ auth: { token: token("dave") } });
    const page = await offlinePage(browser);
    await page.goto(`${page_server.url}/`, { waitUntil: "domcontentloaded" });
    await page.getByLabel("Server URL").fill(server.url);
    await page.getByLabel("Username").fill("operator");
    await page.getByLabel("Password").fill("wrong");
    await page.getByRole("button", { name: "Connect" }).click();
    await page.getByText("Invalid credentials").waitFor();

    await page.getByLabel("Password").fill(AUTH.password);
    await page.getByRole("button", { name: "Connect" }).click();
    await page.locator(".v-dialog--active").waitFor({ state: "detached" });
    await page.goto(`${page_server.url}/#/sockets/`);
    await page.locator(".v-data-table tbody tr", { hasText: dave.socket.id }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "admin-ui-sockets.png") });

    // Sockets that come later appear too.
    const erin = await server.connect({ auth: { token: token("erin") } });
    await page.locator(".v-data-table tbody tr", { hasText: erin.socket.id }).waitFor();
  } finally {
    await browser.close();
    await server.stop();
    await page_server.close();
  }
});
