// What an anonymous (or merely flaky) peer can exhaust, tried as an attacker's client would drive
// it: raw TCP, raw Engine.IO frames, the real client. Each attack runs beside a well-behaved
// client, which must go on being served; each limit's refusals are counted in
// switchyard_refused_total{reason}.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { rawRequest, startServer, token, API_KEY } from "./helpers.mjs";

const ATTACKER = "127.0.0.1";
const NEIGHBOUR = "127.0.0.2";

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Waits until `condition()` is true (polled), failing after `seconds`. */
async function until(what, condition, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function refused(server, reason) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`switchyard_refused_total{reason="${reason}"}`));
  return Number(line?.split(" ")[1] ?? NaN);
}

function rssKb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

function portOf(url) {
  return Number(new URL(url).port);
}

/** Connects a v4 client from `localAddress`; resolves once connected. */
function connectFrom(server, localAddress, jwt) {
  const socket = server.track(
    io(server.url, { transports: ["websocket"], forceNew: true, reconnection: false, localAddress, auth: { token: jwt } }),
  );
  return new Promise((ok, fail) => socket.once("connect", () => ok(socket)).once("connect_error", fail));
}

test("1,100 half-open connections from one address leave /healthz and a new client served; each is closed", async () => {
  const server = await startServer({ REQUEST_HEADER_TIMEOUT: "3s" });
  try {
    // The descriptor limit a default Linux service runs with: without the cap, 1,100 idle
    // connections took every descriptor and nobody else was served.
    execFileSync("prlimit", [`--pid=${server.pid}`, "--nofile=1024:1024"]);
    const port = portOf(server.url);
    const attackers = [];
    let closed = 0;
    for (let i = 0; i < 1100; i++) {
      const socket = tcpConnect({ host: "127.0.0.1", port, localAddress: ATTACKER });
      socket.on("error", () => {});
      socket.on("close", () => closed++);
      // Half of them send half a request head; the other half nothing at all.
      if (i % 2 === 0) socket.on("connect", () => socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
      attackers.push(socket);
      if (i % 100 === 99) await sleep(10);
    }
    await until("every attacker connected", () => attackers.every((s) => !s.connecting || s.destroyed));

    const started = Date.now();
    const health = await rawRequest(`${server.url}/healthz`, { localAddress: NEIGHBOUR });
    assert.equal(health.status, 200);
    const client = await connectFrom(server, NEIGHBOUR, token("neighbour"));
    console.log(`# /healthz and a new Socket.IO client served in ${Date.now() - started} ms beside 1,100 half-open connections`);
    assert.ok(client.connected);

    // Those over the per-address cap were closed at once; the rest when their head timed out.
    await until("every half-open connection closed by the server", () => closed === 1100);
    assert.ok((await refused(server, "pending_connections")) >= 1100 - 512, "the cap refused the rest");
    assert.ok((await refused(server, "header_timeout")) >= 1, "the pending ones timed out");
    assert.equal((await rawRequest(`${server.url}/healthz`, { localAddress: ATTACKER })).status, 200, "the address is served again");
  } finally {
    await server.stop();
  }
});

test("a request body that never comes is answered after REQUEST_BODY_TIMEOUT, on the API and on long-polling", async () => {
  const server = await startServer({ REQUEST_BODY_TIMEOUT: "2s" });
  try {
    const port = portOf(server.url);
    const handshake = await rawRequest(`${server.url}/socket.io/?EIO=4&transport=polling`);
    const sid = JSON.parse(handshake.body.slice(1)).sid;
    const heads = [
      `POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"event":`,
      `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n40`,
    ];
    for (const head of heads) {
      const ended = await new Promise((ok) => {
        const socket = tcpConnect({ host: "127.0.0.1", port }, () => socket.write(head));
        let answer = "";
        socket.on("data", (chunk) => (answer += chunk));
        socket.on("error", () => {});
        socket.on("close", () => ok(answer));
      });
      // Answered with an error status, or closed: either way the connection is let go.
      assert.ok(ended === "" || /^HTTP\/1\.1 [45]\d\d/.test(ended), ended.slice(0, 80));
    }
    assert.ok((await refused(server, "body_timeout")) >= 2);
  } finally {
    await server.stop();
  }
});

test("eight anonymous 60 MiB WebSocket messages are refused unread; a 2 MiB event of a socket is not acted on", async () => {
  const server = await startServer();
  try {
    const watcher = await server.connect({ auth: { token: token("watcher") } });
    const before = rssKb(server.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(server.pid))), 20);
    const fragment = Buffer.alloc(15 * 1024 * 1024, "a");
    const attacks = Array.from({ length: 8 }, () => {
      const ws = new WebSocket(`${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
      ws.on("error", () => {});
      return new Promise((ok) => {
        ws.on("open", () => {
          for (let i = 0; i < 4; i++) ws.send(fragment, { binary: false, fin: i === 3 });
        });
        ws.on("close", ok);
      });
    });
    await Promise.all(attacks);
    clearInterval(sampler);
    const grownMb = (peak - before) / 1024;
    console.log(`# RSS grew by ${grownMb.toFixed(1)} MB under eight 60 MiB messages`);
    assert.ok(grownMb < 20, `RSS grew by ${grownMb.toFixed(1)} MB`);

    // On /ws the same message is refused with the documented close code.
    const plain = new WebSocket(`${server.url.replace("http", "ws")}/ws?token=${token("plain-big")}`);
    plain.on("error", () => {});
    const code = await new Promise((ok) => {
      plain.on("open", () => {
        for (let i = 0; i < 4; i++) plain.send(fragment, { binary: false, fin: i === 3 });
      });
      plain.on("close", ok);
    });
    assert.equal(code, 1009);

    // An authenticated socket's event over MAX_PAYLOAD (1 MiB) ends its connection unread.
    const big = await server.connect({ auth: { token: token("big") } });
    const gone = new Promise((ok) => big.socket.once("disconnect", ok));
    big.socket.emit("subscribe", { channel: "venue:big", padding: "x".repeat(2 * 1024 * 1024) });
    await gone;
    // The watcher was served throughout.
    const got = new Promise((ok) => watcher.socket.once("notification:new", ok));
    await server.publish({ event: "notification:new", to: { user: "watcher" }, data: { n: 1 } });
    assert.deepEqual(await got, { n: 1 });
  } finally {
    await server.stop();
  }
});

test("120 handshakes cut right after their CONNECT packet leave the user offline and his count at zero", async () => {
  const server = await startServer({ MAX_CONNECTIONS_PER_USER: "5", PRESENCE_ANNOUNCE_INTERVAL: "0" });
  try {
    const observer = await server.connect({ auth: { token: token("observer", { organizationId: "o-flaky" }) } });
    const jwt = token("flaky", { organizationId: "o-flaky" });
    const statuses = [];
    observer.socket.on("user:status", (s) => s.userId === "flaky" && statuses.push(s.status));
    const ws = `${server.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`;
    const cut = (delay) =>
      new Promise((ok) => {
        const socket = new WebSocket(ws);
        socket.on("error", () => {});
        socket.on("close", ok);
        socket.once("message", () => {
          socket.send(`40${JSON.stringify({ token: jwt })}`);
          setTimeout(() => socket.terminate(), delay);
        });
      });
    for (let i = 0; i < 120; i += 4) {
      await Promise.all([0, 1, 3, 5].map(cut));
    }
    // Nothing of them is left: five fresh connections are admitted (MAX_CONNECTIONS_PER_USER),
    // and once they close the user is offline.
    await until("five fresh connections admitted", async () => {
      const attempts = await Promise.allSettled(Array.from({ length: 5 }, () => connectFrom(server, NEIGHBOUR, jwt)));
      const admitted = attempts.filter((a) => a.status === "fulfilled").map((a) => a.value);
      for (const s of admitted) s.close();
      return admitted.length === 5;
    });
    await until("the user announced offline", () => statuses.at(-1) === "offline");
  } finally {
    await server.stop();
  }
});

test("one user churning connections is announced at most once per PRESENCE_ANNOUNCE_INTERVAL, ending offline", async () => {
  const server = await startServer({ PRESENCE_ANNOUNCE_INTERVAL: "2s" });
  try {
    const observer = await server.connect({ auth: { token: token("observer", { organizationId: "o-churn" }) } });
    const received = [];
    observer.socket.on("user:status", (s) => s.userId === "churner" && received.push({ status: s.status, at: Date.now() }));
    const jwt = token("churner", { organizationId: "o-churn" });
    for (let i = 0; i < 60; i++) {
      const socket = await connectFrom(server, NEIGHBOUR, jwt);
      socket.close();
      await sleep(5);
    }
    await until("the user announced offline in the end", () => received.at(-1)?.status === "offline");
    const span = (received.at(-1).at - received[0].at) / 1000;
    // One announcement opens each window; a window's end tells only the last held change.
    assert.ok(received.length <= 2 + Math.floor(span / 2) + 1, `${received.length} announcements over ${span} s`);
    assert.ok(received.length < 60);
    assert.ok((await refused(server, "presence_churn")) > 0);
  } finally {
    await server.stop();
  }
});

test("20,000 acked events in one polling POST are answered, or the client is cut: none is dropped silently", async () => {
  const server = await startServer({ MAX_PAYLOAD: "2000000" });
  try {
    const other = await server.connect({ auth: { token: token("other") } });
    const base = `${server.url}/socket.io/?EIO=4&transport=polling`;
    const sid = JSON.parse((await rawRequest(base)).body.slice(1)).sid;
    const url = `${base}&sid=${sid}`;
    assert.equal((await rawRequest(url, { method: "POST", body: `40${JSON.stringify({ token: token("flooder") })}` })).body, "ok");
    const connected = await rawRequest(url);
    assert.match(connected.body, /(^|\x1e)40\{/);
    const packets = Array.from({ length: 20000 }, (_, i) => `42${i}["subscribe",{"channel":"venue:flood"}]`);
    await rawRequest(url, { method: "POST", body: packets.join("\x1e") });
    const answered = new Set();
    let ended = false;
    await until("every event answered or the session ended", async () => {
      const poll = await rawRequest(url).catch(() => ({ status: 0, body: "" }));
      if (poll.status !== 200) {
        ended = true;
        return true;
      }
      for (const packet of poll.body.split("\x1e")) {
        const ack = /^43(\d+)/.exec(packet);
        if (ack) answered.add(Number(ack[1]));
        if (packet === "1") ended = true;
      }
      return ended || answered.size === 20000;
    });
    if (answered.size < 20000) {
      assert.ok(ended, `${20000 - answered.size} events unanswered and the session still open`);
      assert.ok((await refused(server, "ack_overflow")) >= 1);
    }
    const got = new Promise((ok) => other.socket.once("notification:new", ok));
    await server.publish({ event: "notification:new", to: { user: "other" }, data: { n: 7 } });
    assert.deepEqual(await got, { n: 7 });
  } finally {
    await server.stop();
  }
});
