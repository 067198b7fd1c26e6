// The Socket.IO 4 peer triad-bench measures Triad against: a small chat server written
// the way Socket.IO's documentation shows it.
//
// - Authentication: a middleware checks the HS256 JWT the client sends in its connect
//   packet (`auth.token`), with the same issuer and audience as Triad.
// - Rooms: `join` puts the socket in a room (acknowledged).
// - `msg`: emitted to everyone in the room at once (the sender included), then acknowledged.
// - `durable`: appended to the room's Redis stream (XADD) first, then emitted to the room,
//   then acknowledged with the entry id, so an ack means the message is in Redis.
// - The Redis adapter (`@socket.io/redis-adapter`) carries room broadcasts between
//   server processes, as a deployment of several nodes needs.
//
// Settings come from the environment: PORT (0 picks one), REDIS_URL, JWT_SECRET.
// It prints `socketio listening on 127.0.0.1:<port>` once ready.

const { createServer } = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");
const jwt = require("jsonwebtoken");

const port = Number(process.env.PORT || 0);
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const secret = process.env.JWT_SECRET;
if (!secret) {
  console.error("JWT_SECRET is required");
  process.exit(2);
}

async function main() {
  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  const store = pubClient.duplicate();
  for (const client of [pubClient, subClient, store]) {
    client.on("error", (err) => console.error("redis:", err.message));
  }
  await Promise.all([pubClient.connect(), subClient.connect(), store.connect()]);

  const httpServer = createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pubClient, subClient),
    transports: ["websocket"],
  });

  io.use((socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    try {
      const claims = jwt.verify(token, secret, {
        algorithms: ["HS256"],
        issuer: "triad",
        audience: "triad",
      });
      socket.data.person = claims.sub;
      next();
    } catch (err) {
      next(new Error("unauthorized"));
    }
  });

  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(room);
      if (typeof ack === "function") ack();
    });

    socket.on("msg", (room, body, ack) => {
      if (!socket.rooms.has(room)) return;
      io.to(room).emit("msg", { room, author: socket.data.person, body });
      if (typeof ack === "function") ack({ ok: true });
    });

    socket.on("durable", async (room, body, ack) => {
      if (!socket.rooms.has(room)) return;
      try {
        const id = await store.xAdd(`room:${room}`, "*", {
          author: socket.data.person,
          body,
        });
        io.to(room).emit("msg", { room, author: socket.data.person, body, id });
        if (typeof ack === "function") ack({ id });
      } catch (err) {
        if (typeof ack === "function") ack({ error: err.message });
      }
    });
  });

  httpServer.listen(port, "127.0.0.1", () => {
    console.log(`socketio listening on 127.0.0.1:${httpServer.address().port}`);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
