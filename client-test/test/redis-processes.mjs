// Redis servers a test starts for itself on loopback ports (never the shared Redis), and what
// the topology tests ask them. Every process started here is killed when the test file ends.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { after } from "node:test";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";

export const dir = mkdtempSync(join(tmpdir(), "switchyard-redis-"));
const processes = [];
after(() => {
  for (const p of processes) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

export function freePort() {
  return new Promise((ok) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** Starts `redis-server` with `args` (killed when the file's tests end). */
export function redisServer(args) {
  const child = spawn("redis-server", args, { stdio: "ignore" });
  processes.push(child);
  return child;
}

/** Waits for `check` to hold, every 50 ms, `tries` times at most. */
export async function until(check, what, tries = 600) {
  for (let i = 0; i < tries; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One command to the Redis on `port`, on a connection of its own. */
export async function ask(port, ...command) {
  const client = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false } });
  client.on("error", () => {});
  await client.connect();
  try {
    return await client.sendCommand(command);
  } finally {
    await client.disconnect().catch(() => {});
  }
}
