// Node `ws` broadcast peer for `make compare-peers`: the textbook broadcast loop. Every
// data message goes to every client, sender included, on any path.
// Usage: node server.js PORT   (listens on 127.0.0.1:PORT)
const { WebSocketServer, WebSocket } = require("ws");

const port = Number(process.argv[2] ?? 9001);
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    wss.clients.forEach((c) => {
      if (c.readyState === WebSocket.OPEN) c.send(data, { binary: isBinary });
    });
  });
});
wss.on("listening", () => console.log(`node-ws peer listening on 127.0.0.1:${port}`));
