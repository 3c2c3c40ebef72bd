// The Node plain-WebSocket reference for the benchmark: the smallest `ws` server with the
// surface of Switchyard's `/ws` that an idle client touches: the token in the query (HS256),
// the user's room, `{"type":"ping"}` answered `{"type":"pong"}`, `{"type":"subscribe",channel}`,
// and a WebSocket ping every 25 s (a client silent for a whole interval is cut), as `ws`'s own
// documentation writes a heartbeat. What the venue app's own server is built on.
const http = require("node:http");
const { WebSocketServer } = require("ws");
const { verify } = require("./jwt");

const secret = process.env.JWT_SECRET;
const rooms = new Map();

function join(ws, room) {
  if (!rooms.has(room)) rooms.set(room, new Set());
  rooms.get(room).add(ws);
  ws.rooms.add(room);
}

function leaveAll(ws) {
  for (const room of ws.rooms) {
    const members = rooms.get(room);
    members?.delete(ws);
    if (members?.size === 0) rooms.delete(room);
  }
}

const server = http.createServer((req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server, path: "/ws" });

wss.on("connection", (ws, req) => {
  const token = new URL(req.url, "http://localhost").searchParams.get("token");
  const claims = verify(token, secret);
  if (!claims) {
    ws.close(1008, "token_invalid");
    return;
  }
  ws.rooms = new Set();
  ws.alive = true;
  join(ws, `user:${claims.sub}`);
  ws.on("pong", () => (ws.alive = true));
  ws.on("message", (data) => {
    ws.alive = true;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      ws.send(JSON.stringify({ type: "error", code: "invalid_json" }));
      return;
    }
    if (message.type === "ping") ws.send('{"type":"pong"}');
    else if (message.type === "subscribe" && typeof message.channel === "string") {
      join(ws, message.channel);
      ws.send(JSON.stringify({ type: "subscribed", channel: message.channel }));
    }
  });
  ws.on("close", () => leaveAll(ws));
});

const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.alive) {
      ws.terminate();
      continue;
    }
    ws.alive = false;
    ws.ping();
  }
}, 25_000);
wss.on("close", () => clearInterval(heartbeat));

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ message: "listening", addr: `127.0.0.1:${server.address().port}` }));
});
