// Starts a real Switchyard server for one test file and gives the tests what a backend and a
// frontend have: a JWT signer, the publish API, and the real socket.io-client.
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { createInterface } from "node:readline";
import { request as httpRequest } from "node:http";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.SWITCHYARD_BIN ?? resolve(here, "../../target/debug/switchyard");
export const SECRET = "client-test-secret-0123456789abcdef012345";
export const API_KEY = "client-test-api-key";
export const BARRIER = "test:barrier";

/**
 * The environment of instances that form one cluster: the test Redis under a prefix of their
 * own (tests sharing a Redis never see each other's messages) and one SQLite file.
 */
export function clusterEnv(extra = {}) {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-cluster-"));
  return {
    REDIS_URL: process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379",
    REDIS_CHANNEL_PREFIX: `test-${randomUUID()}:`,
    DATABASE_URL: `sqlite://${join(dir, "shared.db")}?mode=rwc`,
    ...extra,
  };
}

/**
 * Spawns the server in `dir` (its SQLite file there) on a free port, with the test environment
 * and `env` over it. `stdio` as for child_process.spawn (stdout is where it logs `listening`).
 */
export function spawnServer(dir, env = {}, stdio = ["ignore", "pipe", "inherit"]) {
  return spawn(BIN, ["serve"], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      HOST: "127.0.0.1",
      PORT: "0",
      APP_ENV: "test",
      LOG_FORMAT: "json",
      RUST_LOG: "warn,switchyard::startup=info",
      DATABASE_URL: `sqlite://${join(dir, "test.db")}?mode=rwc`,
      JWT_SECRET: SECRET,
      API_KEYS: API_KEY,
      // The tests publish probe and barrier events that no contract names.
      EVENTS_ALLOW_UNKNOWN: "true",
      // Stopping closes every connection at once (drain.test.mjs tests the drain).
      SHUTDOWN_DRAIN: "0",
      ...env,
    },
    stdio,
  });
}

/** Starts the server on a free port with a fresh SQLite database. */
export async function startServer(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-client-test-"));
  const child = spawnServer(dir, env);
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not log `listening` in 30 s")), 30_000);
    child.once("exit", (code) => reject(new Error(`server exited early with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.message === "listening") {
        clearTimeout(timer);
        resolveUrl(`${entry.scheme ?? "http"}://${entry.addr}`);
      }
    });
  });
  const sockets = [];
  return {
    url,
    /** The server's process id (for its memory and descriptors in /proc). */
    pid: child.pid,
    /** Connects the v4 client; resolves once connected. */
    async connect(options = {}) {
      const socket = io(url, { reconnection: false, forceNew: true, transports: ["websocket"], ...options });
      sockets.push(socket);
      await new Promise((ok, fail) => {
        socket.once("connect", ok);
        socket.once("connect_error", fail);
      });
      return recorder(socket);
    },
    /** Connects and expects a refusal; resolves with the connect_error. */
    async refused(options = {}) {
      const socket = io(url, { reconnection: false, forceNew: true, transports: ["websocket"], ...options });
      sockets.push(socket);
      return new Promise((fail, ok) => {
        socket.once("connect", () => fail(new Error("connection was accepted")));
        socket.once("connect_error", ok);
      }).then(
        () => {
          throw new Error("connection was accepted");
        },
        (err) => err,
      );
    },
    track(socket) {
      sockets.push(socket);
      return socket;
    },
    /** Calls the server API with the API key; resolves with {status, body}. */
    async api(method, path, body) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    async publish(body) {
      const { status, body: receipt } = await this.api("POST", "/api/events", body);
      if (status !== 202) throw new Error(`publish refused: ${status} ${JSON.stringify(receipt)}`);
      return receipt;
    },
    barrier() {
      return this.publish({ event: BARRIER, to: { all: true } });
    },
    /** Pauses (SIGSTOP) or resumes (SIGCONT) the process, as a long stall would. */
    pause() {
      child.kill("SIGSTOP");
    },
    resume() {
      child.kill("SIGCONT");
    },
    /** Kills the process without a chance to clean up, as a crash would. */
    kill() {
      for (const s of sockets) s.io?.reconnection?.(false);
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      for (const s of sockets) s.close?.() ?? s.disconnect?.();
      const exited = new Promise((ok) => child.once("exit", ok));
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Records every event a socket receives, so tests can check what arrived before the barrier. */
export function recorder(socket) {
  const events = [];
  const waiters = [];
  const onEvent = (name, ...args) => {
    events.push({ name, args });
    for (const w of [...waiters]) if (w.check()) waiters.splice(waiters.indexOf(w), 1);
  };
  if (socket.onAny) socket.onAny(onEvent);
  return {
    socket,
    events,
    onEvent,
    /** Events received before the barrier, without presence announcements (`user:status`). */
    beforeBarrier({ presence = false } = {}) {
      return new Promise((ok, fail) => {
        const timer = setTimeout(() => fail(new Error("barrier never arrived")), 10_000);
        const check = () => {
          const i = events.findIndex((e) => e.name === BARRIER);
          if (i < 0) return false;
          clearTimeout(timer);
          ok(events.splice(0, i + 1).slice(0, i).filter((e) => presence || e.name !== "user:status"));
          return true;
        };
        if (!check()) waiters.push({ check });
      });
    },
  };
}

function b64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** An HS256 JWT, as a backend would mint one. */
export function sign(claims, secret = SECRET, header = { alg: "HS256", typ: "JWT" }) {
  const body = `${b64url(header)}.${b64url(claims)}`;
  const signature = createHmac("sha256", secret).update(body).digest("base64url");
  return `${body}.${signature}`;
}

export function token(sub, extra = {}) {
  return sign({ sub, exp: Math.floor(Date.now() / 1000) + 3600, ...extra });
}

/**
 * A TCP forwarder standing in for a load balancer: clients connect to `url`, it forwards to
 * the target server; `cut()` drops every connection at once (as a network failure would),
 * `hold()` refuses new ones until `release()`, and `retarget(server)` sends new connections
 * elsewhere.
 */
export async function forwarder(server) {
  const { createServer, connect } = await import("node:net");
  let target = new URL(server.url);
  let holding = false;
  const pipes = new Set();
  const proxy = createServer((client) => {
    if (holding) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    pipes.add(pair);
    const close = () => {
      client.destroy();
      upstream.destroy();
      pipes.delete(pair);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((ok) => proxy.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${proxy.address().port}`,
    cut() {
      for (const { client, upstream } of [...pipes]) {
        client.destroy();
        upstream.destroy();
      }
      pipes.clear();
    },
    retarget(next) {
      target = new URL(next.url);
    },
    /** Refuses new connections (a client retries) until `release()`. */
    hold() {
      holding = true;
    },
    release() {
      holding = false;
    },
    close() {
      this.cut();
      return new Promise((ok) => proxy.close(ok));
    },
  };
}

/** A client that opts into recovery and keeps the last cursor it was given, as an app would. */
export function resumingClient(url, jwt) {
  const state = { cursor: "", events: [], recoveries: [], timeline: [] };
  const socket = io(url, {
    transports: ["websocket"],
    forceNew: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 200,
    auth: (cb) => cb({ token: jwt, offset: state.cursor }),
  });
  socket.onAny((event, ...args) => {
    if (event === "recovery") {
      state.recoveries.push(args[0]);
      state.timeline.push("recovery");
      state.cursor = args[0].cursor;
      return;
    }
    state.timeline.push(`${event}:${args[0]?.n}`);
    state.cursor = args.at(-1);
    state.events.push({ event, args: args.slice(0, -1), cursor: args.at(-1) });
  });
  state.socket = socket;
  state.until = async (check, what) => {
    for (let i = 0; i < 1500; i++) {
      if (check()) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  state.ns = (event) => state.events.filter((e) => e.event === event).map((e) => e.args[0].n);
  return state;
}

/**
 * An HTTP request with node:http's own options (`localAddress`, `agent`, ...): a client from a
 * loopback address of the test's choosing. Resolves with {status, body}.
 */
export function rawRequest(url, { method = "GET", body, ...options } = {}) {
  return new Promise((ok, fail) => {
    const req = httpRequest(url, { method, ...options }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => ok({ status: res.statusCode, body: text }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s: the request was taken as a long poll")));
    req.on("error", fail);
    req.end(body);
  });
}
