// The typed catalogue: `switchyard catalogue --typescript` is a .d.ts that types a real
// socket.io-client socket (checked by tsc against socket.io-client's own types), and
// `--json` the same catalogue as JSON Schema.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BIN } from "./helpers.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const TSC = resolve(here, "../node_modules/typescript/bin/tsc");

/** Runs tsc (strict) on `source` beside the generated declarations; its output and status. */
function compile(dir, source) {
  const file = join(dir, `client-${Math.random().toString(36).slice(2)}.ts`);
  writeFileSync(file, source);
  const result = spawnSync(
    process.execPath,
    [TSC, "--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", file],
    { cwd: resolve(here, ".."), encoding: "utf8" },
  );
  return { status: result.status, output: result.stdout + result.stderr };
}

const header = `import { io, type Socket } from "socket.io-client";
import type { ServerToClientEvents, ClientToServerEvents } from "./switchyard-events.js";
const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://localhost:4000", { auth: { token: "t" } });
`;

test("the .d.ts compiles with tsc and types a socket.io-client socket", () => {
  // Inside client-test, so that tsc finds socket.io-client's types in its node_modules.
  const dir = mkdtempSync(join(resolve(here, ".."), ".typed-"));
  try {
    writeFileSync(join(dir, "switchyard-events.d.ts"), execFileSync(BIN, ["catalogue", "--typescript"], { encoding: "utf8" }));
    const typed = compile(
      dir,
      `${header}
socket.on("invitation-update", (data, cursor) => {
  const status: "accepted" | "revoked" | "expired" | "pending" = data.status;
  const id: string | number = data.invitationId;
  const at: string | undefined = cursor;
  console.log(status, id, at, data.somethingElse);
});
socket.on("invoice:paid", (data) => console.log(data.invoiceId));
socket.on("recovery", ({ recovered, missed }) => console.log(recovered === true, missed + 1));
socket.emit("join-project", { projectId: "p1" }, (answer) => {
  if (answer.ok) {
    const room: string = answer.room;
    console.log(room);
  } else {
    const code: string = answer.error.code;
    console.log(code);
  }
});
socket.emit("subscribe", "venue:42");
socket.emit("auth:refresh", { token: "new" });
async function refresh() {
  const answer = await socket.emitWithAck("auth:refresh", { token: "new" });
  if (answer.ok) console.log(answer.expiresAt.length);
}
void refresh;
`,
    );
    assert.equal(typed.status, 0, typed.output);

    // The types are real: a wrong payload, an unknown event, an unchecked refusal are errors.
    const wrong = compile(
      dir,
      `${header}
socket.emit("join-project", { projectId: true });
socket.on("invoice:exploded", () => {});
socket.emit("auth:refresh", { token: "t" }, (answer) => console.log(answer.expiresAt));
socket.on("user:status", (data) => { const s: "away" = data.status; console.log(s); });
`,
    );
    assert.notEqual(wrong.status, 0);
    for (const line of [5, 6, 7, 8]) assert.match(wrong.output, new RegExp(`\\(${line},\\d+\\): error TS`), wrong.output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--json is the same catalogue as JSON Schema", () => {
  const schema = JSON.parse(execFileSync(BIN, ["catalogue", "--json"], { encoding: "utf8" }));
  assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
  const status = schema.serverToClient["user:status"].payload;
  assert.deepEqual(status.required, ["status", "userId"]);
  assert.deepEqual(status.properties.status.enum, ["online", "offline"]);
  assert.equal(schema.serverToClient["invoice:paid"].contract, "org-events");
  const join = schema.clientToServer["join-project"];
  assert.equal(join.payload.anyOf.length, 2, "an object or the bare id");
  assert.deepEqual(join.answer.required, ["room"]);
  const bad = spawnSync(BIN, ["catalogue"], { encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--typescript\|--json/);
});
