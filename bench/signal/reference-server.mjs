// The reference for the signalling benchmark: npm's socket.io 4 server with the w3bstreaming
// event handlers (broadcast, watch, offer, answer, candidate, stop*, disconnect), written the way
// the web app's Node backend routes them, without its chain checks (GetState per join) or
// signature checks, so it is measured at its fastest. It keys watchers by (stream, id).
//
//   node bench/signal/reference-server.mjs [--port 0]     prints "listening on http://127.0.0.1:PORT"
import { createServer } from "node:http";
import { createRequire } from "node:module";

// socket.io is installed with the test oracles (npm ci --prefix tests/js).
const require = createRequire(new URL("../../tests/js/package.json", import.meta.url));
const { Server } = require("socket.io");

const argv = process.argv.slice(2);
const port = Number(argv[argv.indexOf("--port") + 1] || 0) || 0;

const io = new Server({ cors: { origin: "*" }, maxHttpBufferSize: 1e6 });
const streams = new Map(); // streamId -> { broadcasterId, socket, watchers: Map<userId, socket> }

function counts(s) {
  const n = s.watchers.size;
  s.socket.emit("watchersCount", n);
  s.socket.emit("isStreaming", true);
  for (const w of s.watchers.values()) {
    w.emit("watchersCount", n);
    w.emit("isStreaming", true);
  }
}

io.on("connection", (socket) => {
  const mine = new Set(); // streams this socket serves or watches
  socket.on("broadcast", (broadcasterId, { streamId } = {}) => {
    if (streams.has(streamId)) return socket.emit("error", { message: "You already have a stream running" });
    streams.set(streamId, { broadcasterId, socket, watchers: new Map() });
    mine.add(streamId);
    socket.emit("isStreaming", true);
  });
  socket.on("watch", (userId, { streamId } = {}) => {
    const s = streams.get(streamId);
    if (!s) return socket.emit("error", { message: `Stream with id ${streamId} hasn't started yet` });
    s.watchers.set(userId, socket);
    mine.add(streamId);
    s.socket.emit("watch", userId, { streamId });
    counts(s);
  });
  socket.on("offer", (broadcasterId, payload = {}) => {
    const w = streams.get(payload.streamId)?.watchers.get(payload.userId);
    if (w) w.emit("offer", broadcasterId, payload);
  });
  socket.on("answer", (broadcasterId, payload = {}) => {
    const s = streams.get(payload.streamId);
    if (s) s.socket.emit("answer", broadcasterId, payload);
  });
  socket.on("candidate", (targetId, { userId, streamId, candidate } = {}) => {
    const s = streams.get(streamId);
    if (!s) return;
    const to = targetId === s.broadcasterId ? s.socket : s.watchers.get(targetId);
    if (to) to.emit("candidate", userId, { candidate });
  });
  const stopBroadcasting = (streamId) => {
    const s = streams.get(streamId);
    if (!s || s.socket !== socket) return;
    streams.delete(streamId);
    for (const [userId, w] of s.watchers) {
      w.emit("isStreaming", false);
      w.emit("stopBroadcasting", s.broadcasterId, { streamId, userId });
    }
  };
  const stopWatching = (streamId, userId) => {
    const s = streams.get(streamId);
    if (!s || s.watchers.get(userId) !== socket) return;
    s.watchers.delete(userId);
    s.socket.emit("stopWatching", userId, { streamId });
    for (const w of s.watchers.values()) w.emit("watchersCount", s.watchers.size);
  };
  socket.on("stopBroadcasting", (id, { streamId } = {}) => stopBroadcasting(streamId));
  socket.on("stopWatching", (userId, { streamId } = {}) => stopWatching(streamId, userId));
  socket.on("getWatchersCount", (id, { streamId } = {}) => socket.emit("watchersCount", streams.get(streamId)?.watchers.size ?? 0));
  socket.on("getIsStreaming", (id, { streamId } = {}) => socket.emit("isStreaming", streams.has(streamId)));
  socket.on("disconnect", () => {
    for (const streamId of mine) {
      const s = streams.get(streamId);
      if (!s) continue;
      if (s.socket === socket) stopBroadcasting(streamId);
      else for (const [userId, w] of s.watchers) if (w === socket) stopWatching(streamId, userId);
    }
  });
});

const httpServer = createServer();
io.attach(httpServer);
httpServer.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => {
  console.log(`listening on http://127.0.0.1:${httpServer.address().port}`);
});
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
