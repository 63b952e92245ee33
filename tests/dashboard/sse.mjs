// Headless Chromium's EventSource against a ringcast room: the page (about:blank, so the
// stream is a cross-origin GET that needs the server's CORS headers) opens
// `new EventSource(--sse)`, and once it is open a WebSocket publisher on --ws sends
// m1..m5. After the 5th event it prints `cut` on stdout (the caller then drops the
// connection), waits for the EventSource's error (the stream is gone, it reconnects by
// itself after the server's `retry:`), publishes m6..m10 while it is away, and waits
// for them: the browser resumes with Last-Event-ID and must get every message exactly
// once, in order. Prints one JSON line ({ok, data, ids, reconnected}); exit 0 on success.
//
// usage: node sse.mjs --sse http://ADDR/sse/room --ws ws://ADDR/ws/room [--timeout 20000]

import { arg, launch } from "./browser.mjs";
const sse = arg("sse", null);
const ws = arg("ws", null);
const timeout = Number(arg("timeout", "20000"));
if (!sse || !ws) {
  console.error("usage: node sse.mjs --sse http://ADDR/sse/room --ws ws://ADDR/ws/room");
  process.exit(2);
}

const browser = await launch();
let result = { ok: false };
try {
  const page = await (await browser.newContext()).newPage();
  await page.exposeFunction("signal", (what) => console.log(what));
  await page.goto("about:blank");
  result = await page.evaluate(({ sse, ws, timeout }) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out: ${JSON.stringify(got)}`)), timeout);
    const got = [];
    const ids = [];
    let opens = 0;
    let pub = null;
    const publish = (from, to) => {
      for (let i = from; i <= to; i++) pub.send(`m${i}`);
    };
    const es = new EventSource(sse);
    es.onopen = () => {
      opens += 1;
      if (opens === 1) {
        pub = new WebSocket(ws);
        pub.onerror = () => reject(new Error("publisher: websocket error"));
        pub.onopen = () => publish(1, 5);
      }
    };
    es.onerror = () => {
      // The stream was cut: publish while the browser waits to reconnect.
      if (got.length === 5 && es.readyState === EventSource.CONNECTING && opens === 1) {
        publish(6, 10);
      }
    };
    es.onmessage = (e) => {
      got.push(e.data);
      ids.push(e.lastEventId);
      if (got.length === 5) window.signal("cut");
      if (got.length === 10) {
        clearTimeout(timer);
        es.close();
        resolve({ data: got, ids, reconnected: opens });
      }
    };
  }), { sse, ws, timeout });
  const want = Array.from({ length: 10 }, (_, i) => `m${i + 1}`);
  result.ok = JSON.stringify(result.data) === JSON.stringify(want)
    && JSON.stringify(result.ids) === JSON.stringify(want.map((_, i) => String(i + 1)))
    && result.reconnected === 2;
} catch (err) {
  result = { ok: false, error: String(err) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
