// Headless-browser check of the ringcast dashboard: loads the page in Debian's Chromium
// (driven by playwright-core over the DevTools protocol), waits until the element
// #total-connections shows the expected count, and optionally saves a screenshot.
//
// Optionally opens WebSocket clients from a second browser page that each send a message
// every --send-interval ms (so a screenshot shows traffic and a latency sparkline).
//
// usage: node check.mjs --url http://127.0.0.1:9100/ [--expect 50] [--timeout 20000]
//          [--screenshot out.png] [--settle 0] [--clients N --ws ws://ADDR/ws/room]
//          [--send-interval 1000] [--hold 0]
// Prints one JSON line with what the page showed; exit status 0 when it matched.

import { chromium } from "playwright-core";

function parseArgs(argv) {
  const out = {
    url: null, expect: null, timeout: 20000, screenshot: null, settle: 0,
    clients: 0, ws: null, sendInterval: 1000, hold: 0,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-(.)/g, (_, c) => c.toUpperCase());
    if (!(key in out) || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    const v = argv[i + 1];
    out[key] = typeof out[key] === "number" || key === "expect" ? Number(v) : v;
  }
  if (!out.url) throw new Error("--url is required");
  return out;
}

const args = parseArgs(process.argv.slice(2));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  headless: true,
  timeout: 30000,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

let result = { ok: false };
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });

  if (args.clients > 0) {
    if (!args.ws) throw new Error("--clients needs --ws");
    const load = await context.newPage();
    await load.goto("about:blank");
    await load.evaluate(({ url, n, every }) => new Promise((resolve, reject) => {
      let open = 0;
      window.__clients = [];
      for (let i = 0; i < n; i++) {
        const ws = new WebSocket(url);
        ws.onopen = () => {
          open += 1;
          setTimeout(() => setInterval(() => ws.send(`tick from ${i} at ${Date.now()}`), every),
            (every * i) / n);
          if (open === n) resolve();
        };
        ws.onerror = () => reject(new Error(`client ${i} failed to connect to ${url}`));
        window.__clients.push(ws);
      }
    }), { url: args.ws, n: args.clients, every: args.sendInterval });
  }

  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(args.url, { waitUntil: "load", timeout: args.timeout });

  if (args.expect !== null) {
    try {
      await page.waitForFunction(
        (n) => document.getElementById("total-connections")?.textContent === String(n),
        args.expect,
        { timeout: args.timeout, polling: 100 },
      );
    } catch (e) {
      // Fall through: the result below records what the page shows instead.
    }
  }
  if (args.settle > 0) await page.waitForTimeout(args.settle);

  const shown = await page.evaluate(() => ({
    total: document.getElementById("total-connections")?.textContent ?? null,
    shards: Array.from(document.querySelectorAll("#shards .shard"))
      .map((r) => Number(r.dataset.connections)),
    status: document.getElementById("status")?.textContent ?? null,
    inRate: document.getElementById("msg-in-rate")?.textContent ?? null,
    outRate: document.getElementById("msg-out-rate")?.textContent ?? null,
    drops: document.getElementById("drops")?.textContent ?? null,
    sparkline: document.getElementById("spark-line")?.getAttribute("d") ?? "",
  }));
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
  if (args.hold > 0) await page.waitForTimeout(args.hold);
  result = {
    ok: errors.length === 0 && (args.expect === null || shown.total === String(args.expect)),
    expected: args.expect,
    ...shown,
    sparkline: shown.sparkline.length > 0,
    errors,
    screenshot: args.screenshot,
  };
} catch (e) {
  result = { ok: false, error: String(e && e.stack || e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
