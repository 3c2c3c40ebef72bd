// TLS without a proxy: with TLS_CERT_FILE/TLS_KEY_FILE the server speaks HTTPS and WSS on its
// one port (a self-signed certificate made here with openssl); a missing file stops the start
// with the variable's name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { get, request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { API_KEY, spawnServer, startServer, token } from "./helpers.mjs";

function selfSigned() {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ], { stdio: "ignore" });
  return { dir, cert, key, ca: readFileSync(cert) };
}

/** `POST /api/events` over HTTPS, trusting `ca` (fetch cannot be given a CA). */
function publish(server, ca, body) {
  return new Promise((ok, fail) => {
    const req = request(`${server.url}/api/events`, {
      method: "POST",
      ca,
      headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
    }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 202 ? ok() : fail(new Error(`publish refused: ${res.statusCode}`))));
    });
    req.on("error", fail);
    req.end(JSON.stringify(body));
  });
}

test("HTTPS, Socket.IO over WSS and polling, and plain WSS on one port", async () => {
  const tls = selfSigned();
  const server = await startServer({ TLS_CERT_FILE: tls.cert, TLS_KEY_FILE: tls.key });
  try {
    assert.match(server.url, /^https:\/\//);
    const health = await new Promise((ok, fail) =>
      get(`${server.url}/healthz`, { ca: tls.ca }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => ok({ status: res.statusCode, body }));
      }).on("error", fail),
    );
    assert.equal(health.status, 200);

    // socket.io-client 4 over WSS, and over HTTPS long-polling, each checking the certificate.
    for (const transports of [["websocket"], ["polling"]]) {
      const socket = io(server.url, { ca: tls.ca, transports, forceNew: true, reconnection: false, auth: { token: token("tls-user") } });
      await new Promise((ok, fail) => {
        socket.once("connect", ok);
        socket.once("connect_error", fail);
      });
      const got = new Promise((ok) => socket.once("secure:hello", ok));
      await publish(server, tls.ca, { event: "secure:hello", to: { user: "tls-user" }, data: { over: transports[0] } });
      assert.deepEqual(await got, { over: transports[0] });
      socket.close();
    }

    // Plain WebSocket over TLS (`ws`), subscribed to a venue channel.
    const ws = new WebSocket(`${server.url.replace("https", "wss")}/ws?token=${token("tls-venue")}`, { ca: tls.ca });
    const frames = [];
    ws.on("message", (m) => frames.push(JSON.parse(m)));
    await new Promise((ok, fail) => {
      ws.once("open", ok);
      ws.once("error", fail);
    });
    ws.send(JSON.stringify({ type: "subscribe", channel: "venue:7" }));
    while (!frames.some((f) => f.type === "subscribed")) await new Promise((ok) => setTimeout(ok, 20));
    await publish(server, tls.ca, { event: "venue_update", to: { channel: "venue:7" }, data: { crowd: "busy" } });
    while (!frames.some((f) => f.type === "venue_update")) await new Promise((ok) => setTimeout(ok, 20));
    assert.deepEqual(frames.find((f) => f.type === "venue_update").data, { crowd: "busy" });
    ws.close();

    // A client that does not trust the certificate is refused by its own TLS check.
    const untrusting = io(server.url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { token: token("x") } });
    const error = await new Promise((ok) => untrusting.once("connect_error", ok));
    assert.ok(error, "an unknown certificate is not accepted");
    untrusting.close();
  } finally {
    await server.stop();
    rmSync(tls.dir, { recursive: true, force: true });
  }
});

test("a missing certificate file stops the start with the variable's name", async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-tls-missing-"));
  try {
    const child = spawnServer(
      dir,
      { TLS_CERT_FILE: join(dir, "missing-cert.pem"), TLS_KEY_FILE: join(dir, "missing-key.pem") },
      ["ignore", "pipe", "pipe"],
    );
    let output = "";
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    const code = await new Promise((ok) => child.once("exit", ok));
    assert.notEqual(code, 0);
    assert.match(output, /TLS_CERT_FILE: cannot read `.*missing-cert\.pem`/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
