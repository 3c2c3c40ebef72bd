// The Node Socket.IO reference for the benchmark: handshake JWT (HS256) auth, user and org
// rooms, `subscribe {channel}` with an ack, and POST /api/events {event, to: {user|org|channel|rooms},
// data} -> io.to(rooms).emit (and POST /api/events/batch {events: [...]}, each in order).
// The same surface the load generator drives on Switchyard, nothing more.
// With REDIS_URL set, instances share rooms through the official @socket.io/redis-adapter
// (channel prefix REDIS_CHANNEL_PREFIX), the way a multi-instance Node deployment runs; with
// ADAPTER=streams as well, through @socket.io/redis-streams-adapter instead (its stream, session
// keys and channels all under REDIS_CHANNEL_PREFIX; the stream expires 10 minutes after the last
// instance using it stops).
// RECOVERY=1 turns on Socket.IO's connection state recovery (2 minutes, as Switchyard's default);
// the Redis adapter does not support it (its sessions cannot be restored), the streams adapter
// does, across instances: a session is kept in Redis when its socket closes, and replayed from
// the stream on whichever instance the client comes back to.
// SIGTERM stops the server as a Node deployment does: io.close() closes every socket ("server
// shutting down", which recovery accepts: the streams adapter persists those sessions), then the
// process exits once its Redis clients have sent what they had.
const http = require("node:http");
const { Server } = require("socket.io");
const { verify: verifyWith } = require("./jwt");

const secret = process.env.JWT_SECRET;
const apiKey = process.env.API_KEYS;
const verify = (token) => verifyWith(token, secret);

const list = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const roomsOf = (to) => [
  ...list(to.user).map((u) => `user:${u}`),
  ...list(to.org).map((o) => `org:${o}`),
  ...list(to.channel),
  ...list(to.rooms),
];

// POST /api/events/batch {events: [...]}: each emitted in order, answered in its place.
const routes = {
  "/api/events": (body) => [202, emit(body)],
  "/api/events/batch": (body) => [200, { results: body.events.map((item) => ({ status: 202, receipt: emit(item) })) }],
};

function emit({ event, to, data }) {
  io.to(roomsOf(to)).emit(event, data);
  return {};
}

const server = http.createServer((req, res) => {
  const route = req.method === "POST" && routes[req.url];
  if (!route) {
    res.writeHead(404).end();
    return;
  }
  if (req.headers["x-api-key"] !== apiKey) {
    res.writeHead(401).end();
    return;
  }
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const [status, answer] = route(JSON.parse(body));
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(answer));
  });
});

const io = new Server(server, {
  cors: { origin: "*" },
  ...(process.env.RECOVERY === "1"
    ? { connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true } }
    : {}),
});
io.use((socket, next) => {
  const claims = verify(socket.handshake.auth?.token);
  if (!claims) return next(new Error("token_invalid"));
  socket.data.claims = claims;
  next();
});
io.on("connection", (socket) => {
  const { sub, organizationId } = socket.data.claims;
  socket.join(`user:${sub}`);
  if (organizationId) socket.join(`org:${organizationId}`);
  socket.on("subscribe", ({ channel }, ack) => {
    socket.join(channel);
    ack?.({ ok: true, channel });
  });
});

const redisClients = [];

async function start() {
  if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    const prefix = process.env.REDIS_CHANNEL_PREFIX ?? "";
    const pub = createClient({ url: process.env.REDIS_URL });
    if (process.env.ADAPTER === "streams") {
      const { createAdapter } = require("@socket.io/redis-streams-adapter");
      await pub.connect();
      redisClients.push(pub);
      const streamName = `${prefix}socket.io`;
      io.adapter(
        createAdapter(pub, { streamName, channelPrefix: streamName, sessionKeyPrefix: `${prefix}sio:session:` }),
      );
      // Benchmarks and tests share one Redis: the run's stream goes 10 minutes after its last user.
      const expire = () => pub.expire(streamName, 600).catch(() => {});
      setInterval(expire, 10_000).unref();
    } else {
      const { createAdapter } = require("@socket.io/redis-adapter");
      const sub = pub.duplicate();
      await Promise.all([pub.connect(), sub.connect()]);
      redisClients.push(pub, sub);
      io.adapter(createAdapter(pub, sub, { key: `${prefix}socket.io` }));
    }
  }
  server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
    console.log(JSON.stringify({ message: "listening", addr: `127.0.0.1:${server.address().port}` }));
  });
}

process.once("SIGTERM", () => {
  setTimeout(() => process.exit(0), 5_000).unref();
  io.close(async () => {
    // QUIT after whatever the adapter queued (the sessions it persists).
    await Promise.allSettled(redisClients.map((client) => client.quit()));
    process.exit(0);
  });
});

start().catch((error) => {
  console.error(error);
  process.exit(1);
});
