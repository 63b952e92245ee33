// Bun broadcast peer for `make compare-peers`: Bun.serve upgrades every request on any
// path, subscribes the socket to one topic, and re-publishes every data message to
// every client, sender included, with `server.publish` (Bun's built-in pub/sub).
// Usage: bun server.js PORT   (listens on 127.0.0.1:PORT)
const port = Number(process.argv[2] ?? 9001);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response("WebSocket only\n", { status: 426 });
  },
  websocket: {
    // Defaults close a client whose backlog passes 16 MiB; the benchmark is closed loop,
    // so a backlog that large means the client is gone anyway.
    idleTimeout: 0,
    perMessageDeflate: false,
    open(ws) {
      ws.subscribe("room");
    },
    message(ws, data) {
      server.publish("room", data);
    },
  },
});
console.log(`bun peer listening on ${server.hostname}:${server.port}`);
