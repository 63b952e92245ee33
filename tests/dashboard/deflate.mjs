// Headless Chromium (which offers permessage-deflate on every WebSocket) against a
// ringcast room: one page opens a subscriber and a publisher on --ws, the publisher sends
// a 4 KiB JSON-like text, and the subscriber must get it intact. Prints one JSON line
// ({extensions, intact, length}); exit status 0 when the extension was agreed and the
// message came back intact. Whether the frames were compressed on the wire (RSV1) is
// for the caller to see (tests/interop.rs puts a frame-recording proxy in between).
//
// usage: node deflate.mjs --ws ws://ADDR/ws/room [--timeout 15000]

import { arg, launch } from "./browser.mjs";
const url = arg("ws", null);
const timeout = Number(arg("timeout", "15000"));
if (!url) {
  console.error("usage: node deflate.mjs --ws ws://ADDR/ws/room [--timeout 15000]");
  process.exit(2);
}

const browser = await launch();
let result = { ok: false };
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto("about:blank");
  result = await page.evaluate(({ url, timeout }) => new Promise((resolve, reject) => {
    let big = "";
    for (let i = 0; big.length < 4096; i++) {
      big += JSON.stringify({ id: i, type: "trade", symbol: `SYM${i % 13}`, price: 100 + (i % 50) }) + ",";
    }
    big = big.slice(0, 4096);
    const timer = setTimeout(() => reject(new Error(`no message within ${timeout} ms`)), timeout);
    const sub = new WebSocket(url);
    sub.onerror = () => reject(new Error("subscriber: websocket error"));
    sub.onopen = () => {
      const pub = new WebSocket(url);
      pub.onerror = () => reject(new Error("publisher: websocket error"));
      pub.onopen = () => pub.send(big);
    };
    sub.onmessage = (e) => {
      clearTimeout(timer);
      resolve({ extensions: sub.extensions, intact: e.data === big, length: e.data.length });
    };
  }), { url, timeout });
  result.ok = /^permessage-deflate/.test(result.extensions) && result.intact;
} catch (err) {
  result = { ok: false, error: String(err) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
